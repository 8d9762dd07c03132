"""Offline check that persona tokens steer the agent, before any browser run.

On held-out trace steps with the intent-neutral goal (the simulator's prompt):
- next-action NLL (nats per step) with the buyer's own persona ("matched"), with the persona of
  another held-out session whose code differs ("mismatched"), and with no persona token ("none");
  the paired differences carry a 95% normal CI over steps. A model that reads the token has
  matched < mismatched; one that ignores it has them equal.
- the add-to-cart and checkout decisions: on every product page with an "Add to cart" button and
  every cart page with a "Proceed to checkout" link, P(the agent takes that action) under the
  matched persona, thresholded at 0.5, against what the buyer did; accuracy overall and per
  funnel stratum (when the buyers' strata are given), next to the majority-class accuracy.
"""

from __future__ import annotations

import re
from typing import Sequence

import jax
import numpy as np

from simpersona_jax.lm import sft
from simpersona_jax.lm.config import pad_to_multiple
from simpersona_jax.rollout.actions import format_action

DECISIONS = {
    "add_to_cart": ("product", 'button "Add to cart"'),
    "checkout": ("cart", 'link "Proceed to checkout"'),
}


def decision_action(observation: str, decision: str) -> str | None:
    """The action that takes `decision` on this page (e.g. click("12")), or None."""
    kind, element = DECISIONS[decision]
    if not observation.startswith(f"page: {kind} "):
        return None
    m = re.search(r"^\[(\d+)\] " + re.escape(element) + "$", observation, re.MULTILINE)
    return format_action("click", m.group(1)) if m else None


def mismatched(personas: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each row gets the persona of another row whose persona differs (own kept if none does)."""
    rng = np.random.default_rng(seed)
    out = personas.copy()
    for i, k in enumerate(personas):
        others = np.flatnonzero(personas != k)
        if len(others):
            out[i] = personas[others[rng.integers(len(others))]]
    return out


def example_nll(
    task, params, rows: Sequence[dict], *, use_persona: bool = True, batch_size: int = 32
) -> np.ndarray:
    """[N] summed NLL of each row's action (neutral goal) under `params`."""
    if not rows:
        return np.zeros((0,), np.float64)
    max_len = int(task.config.data.seq_len)
    ex = sft.encode_examples(
        task.tokenizer,
        rows,
        goal_field="goal_neutral",
        max_len=max_len,
        use_persona=use_persona and task.use_persona,
    )
    length = min(max_len, pad_to_multiple(max(len(ids) - 1 for ids, _ in ex), 64))
    padded = sft.pad_rows(ex, length, task.tokenizer.pad_token_id or 0)
    fn = _nll_fn(task)
    out = []
    for i in range(0, len(ex), batch_size):
        chunk = {k: v[i : i + batch_size] for k, v in padded.items()}
        m = len(chunk["inputs"])
        if m < batch_size:  # one compiled shape per length
            chunk = {
                k: np.concatenate([v, np.repeat(v[-1:], batch_size - m, 0)])
                for k, v in chunk.items()
            }
        out.append(np.asarray(fn(params, chunk))[:m])
    return np.concatenate(out).astype(np.float64)


def _nll_fn(task):
    if getattr(task, "_persona_nll_fn", None) is None:

        def nll(params, rows):
            losses = sft.token_losses(task.logits(params, rows), rows["targets"])
            return (losses * rows["loss_mask"]).sum(-1)

        task._persona_nll_fn = jax.jit(nll)
    return task._persona_nll_fn


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = b - a
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)]}


def evaluate(task, params, rows: Sequence[dict], strata: dict | None = None, seed: int = 0) -> dict:
    """The persona report (module docstring). rows: held-out trace rows; strata: optional
    {(store_id, buyer_id): stratum letter}."""
    rows = [r for r in rows if r.get("persona", -1) is not None and int(r["persona"]) >= 0]
    if not rows or not task.use_persona:
        return {"steps": 0}
    personas = np.asarray([int(r["persona"]) for r in rows])
    swapped = mismatched(personas, seed)
    nll = {
        "matched": example_nll(task, params, rows),
        "mismatched": example_nll(
            task, params, [dict(r, persona=int(k)) for r, k in zip(rows, swapped)]
        ),
        "none": example_nll(task, params, rows, use_persona=False),
    }
    out = {
        "steps": len(rows),
        "nll": {k: float(v.mean()) for k, v in nll.items()},
        "nll_gain_vs_mismatched": _paired(nll["matched"], nll["mismatched"]),
        "nll_gain_vs_none": _paired(nll["matched"], nll["none"]),
    }
    for decision in DECISIONS:
        picks = [(r, a) for r in rows if (a := decision_action(r["observation"], decision))]
        if not picks:
            continue
        score_rows = [dict(r, action=a) for r, a in picks]
        p = np.exp(-example_nll(task, params, score_rows))
        took = np.asarray([r["action"] == a for r, a in picks])
        pred = p >= 0.5
        res = {
            "n": len(picks),
            "accuracy": float((pred == took).mean()),
            "majority_accuracy": float(max(took.mean(), 1 - took.mean())),
            "rate_real": float(took.mean()),
            "mean_p_model": float(p.mean()),
        }
        if strata:
            keys = np.asarray([strata.get((r["store_id"], r["buyer_id"]), "?") for r, _ in picks])
            res["per_stratum"] = {
                str(s): {
                    "n": int((keys == s).sum()),
                    "accuracy": float((pred == took)[keys == s].mean()),
                    "rate_real": float(took[keys == s].mean()),
                    "mean_p_model": float(p[keys == s].mean()),
                }
                for s in sorted(set(keys.tolist()))
            }
        out[decision] = res
    return out


def format_report(r: dict) -> str:
    if not r.get("steps"):
        return "persona check: no held-out steps with a persona"
    g, h = r["nll_gain_vs_mismatched"], r["nll_gain_vs_none"]
    lines = [
        f"persona check on {r['steps']} held-out steps (neutral goal): next-action NLL "
        f"matched {r['nll']['matched']:.3f} | mismatched {r['nll']['mismatched']:.3f} | "
        f"none {r['nll']['none']:.3f}; mismatched - matched {g['mean']:+.3f} "
        f"[{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}], none - matched {h['mean']:+.3f} "
        f"[{h['ci95'][0]:+.3f}, {h['ci95'][1]:+.3f}]"
    ]
    for decision in DECISIONS:
        if decision in r:
            d = r[decision]
            per = "  ".join(
                f"{s}: {v['accuracy']:.2f} (real {v['rate_real']:.2f}, model "
                f"{v['mean_p_model']:.2f}, n={v['n']})"
                for s, v in d.get("per_stratum", {}).items()
            )
            lines.append(
                f"  {decision} decision: accuracy {d['accuracy']:.3f} vs majority "
                f"{d['majority_accuracy']:.3f} (n={d['n']}; real rate "
                f"{d['rate_real']:.2f}, model {d['mean_p_model']:.2f})  {per}"
            )
    return "\n".join(lines)
