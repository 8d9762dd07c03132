"""SFT data and loss: trace rows -> (prompt, action) token sequences -> packed rows; masked loss.

Pure functions. An example is prompt ids + target ids (action + "\\n" + EOS); inputs are
ids[:-1], targets ids[1:], and the loss mask is 1 only where the target is an action token.
`pack` places whole examples first-fit-decreasing into rows of `seq_len` with segment ids
(1, 2, ...; 0 = padding) and positions restarting per example, so attention never crosses
examples and little compute goes to padding.
"""

from __future__ import annotations

import glob
import os
import zlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from simpersona_jax.lm import prompt

TRACE_COLUMNS = (
    "store_id",
    "buyer_id",
    "session_id",
    "persona",
    "step",
    "goal_neutral",
    "goal_intent",
    "history",
    "observation",
    "action",
)
ROW_KEYS = ("inputs", "targets", "loss_mask", "segment_ids", "positions")


def read_traces(traces_dir: str) -> pl.DataFrame:
    files = sorted(glob.glob(os.path.join(traces_dir, "traces-*.parquet")))
    if not files:
        raise FileNotFoundError(f"no traces-*.parquet under {traces_dir}")
    df = pl.read_parquet(files)
    missing = [c for c in TRACE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{traces_dir}: trace files lack columns {missing} (see replay/schema.py)")
    return df


def attach_personas(df: pl.DataFrame, codes_path: str) -> pl.DataFrame:
    """Set each row's persona to its buyer's VQ code from assign.py's codes.parquet
    (store_id, buyer_id, code); rows of buyers without a code keep their persona (-1)."""
    codes = pl.read_parquet(codes_path)
    missing = [c for c in ("store_id", "buyer_id", "code") if c not in codes.columns]
    if missing:
        raise ValueError(
            f"{codes_path}: lacks columns {missing} (expected assign.py's codes.parquet)"
        )
    codes = codes.select(
        "store_id", "buyer_id", pl.col("code").cast(pl.Int32).alias("_code")
    ).unique(["store_id", "buyer_id"], keep="first")
    out = df.join(codes, on=["store_id", "buyer_id"], how="left")
    return out.with_columns(pl.coalesce("_code", "persona").alias("persona")).drop("_code")


def session_share(df: pl.DataFrame, fraction: float, salt: str) -> np.ndarray:
    """[rows] bool: True for the rows of about `fraction` of the sessions, chosen by a salted hash
    of (store, buyer, session), so a session is wholly in or out and the choice is reproducible."""
    keys = (df["store_id"] + "/" + df["buyer_id"] + "/" + df["session_id"]).to_list()
    return np.array(
        [(zlib.crc32(f"{salt}:{k}".encode()) % 10_000) < fraction * 10_000 for k in keys], bool
    )


def split_sessions(
    df: pl.DataFrame, eval_fraction: float, salt: str = "sft"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Deterministic (train, heldout) split by session: a session lies wholly on one side."""
    held = pl.Series(session_share(df, eval_fraction, salt))
    return df.filter(~held), df.filter(held)


MIXED_GOAL = "goal_train"  # column written by mix_goals


def mix_goals(
    df: pl.DataFrame, goal_field: str, neutral_fraction: float, salt: str = "goal"
) -> pl.DataFrame:
    """Adds MIXED_GOAL: `goal_field`, or goal_neutral for a `neutral_fraction` of the sessions
    (chosen by a hash of the session, so a session keeps one goal for all its steps)."""
    if not 0.0 <= neutral_fraction <= 1.0:
        raise ValueError(f"data.neutral_fraction={neutral_fraction} must lie in [0, 1]")
    neutral = session_share(df, neutral_fraction, salt)
    return df.with_columns(
        pl.when(pl.Series(neutral))
        .then(pl.col("goal_neutral"))
        .otherwise(pl.col(goal_field))
        .alias(MIXED_GOAL)
    )


def drop_personas(df: pl.DataFrame, fraction: float, salt: str = "drop") -> pl.DataFrame:
    """Persona -1 (no token) for a `fraction` of the sessions, chosen by a hash of the session:
    the agent also learns the no-persona prompt (goal tasks, the no-token control)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"data.persona_dropout={fraction} must lie in [0, 1]")
    drop = session_share(df, fraction, salt)
    return df.with_columns(
        pl.when(pl.Series(drop))
        .then(pl.lit(-1, pl.Int32))
        .otherwise(pl.col("persona").cast(pl.Int32))
        .alias("persona")
    )


DECISION_PAGES = ("page: product ", "page: cart ", "page: checkout ")


def oversample_decisions(rows: list[dict], k: int) -> list[dict]:
    """Every row observed on a product, cart or checkout page repeated k times: these are the
    pages where the buyer decides to add, check out and pay, i.e. where personas differ. All
    actions on such pages are repeated alike, so P(action | page, persona) is unchanged; only
    the share of training signal spent there grows."""
    if k < 1:
        raise ValueError(f"data.decision_oversample={k} must be >= 1")
    out = []
    for r in rows:
        out += [r] * (k if r["observation"].startswith(DECISION_PAGES) else 1)
    return out


def encode_examples(
    tokenizer, rows: Sequence[dict], *, goal_field: str, max_len: int, use_persona: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(ids, loss_on_ids)] per trace row; loss_on_ids marks action tokens (incl. newline, EOS)."""
    out = []
    for i, row in enumerate(rows):
        tgt = prompt.encode_target(tokenizer, row["action"])
        if len(tgt) >= max_len - 8:
            raise ValueError(
                f"trace row {i} (session {row.get('session_id')}): action of {len(tgt)} tokens "
                f"does not fit max_len={max_len}"
            )
        p, _ = prompt.encode_row(
            tokenizer,
            row,
            goal_field=goal_field,
            use_persona=use_persona,
            max_prompt_tokens=max_len + 1 - len(tgt),
        )
        ids = np.asarray(p + tgt, np.int32)
        on = np.zeros(len(ids), np.int32)
        on[len(p) :] = 1
        out.append((ids, on))
    return out


def pack(
    examples: Sequence[tuple[np.ndarray, np.ndarray]], seq_len: int, pad_id: int = 0
) -> dict[str, np.ndarray]:
    """First-fit-decreasing packing into [N, seq_len] arrays (ROW_KEYS)."""
    seqs = []
    for ids, on in examples:
        if len(ids) - 1 > seq_len:
            raise ValueError(f"example of {len(ids) - 1} shifted tokens exceeds seq_len={seq_len}")
        seqs.append((ids[:-1], ids[1:], on[1:]))
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = len(seqs[i][0])
        for r, room in enumerate(free):
            if room >= n:
                rows[r].append(i)
                free[r] -= n
                break
        else:
            rows.append([i])
            free.append(seq_len - n)
    out = {k: np.zeros((len(rows), seq_len), np.int32) for k in ROW_KEYS}
    out["inputs"][:] = pad_id
    for r, members in enumerate(rows):
        t = 0
        for seg, i in enumerate(members, start=1):
            x, y, m = seqs[i]
            n = len(x)
            out["inputs"][r, t : t + n] = x
            out["targets"][r, t : t + n] = y
            out["loss_mask"][r, t : t + n] = m
            out["segment_ids"][r, t : t + n] = seg
            out["positions"][r, t : t + n] = np.arange(n)
            t += n
    return out


def pad_rows(
    examples: Sequence[tuple[np.ndarray, np.ndarray]], seq_len: int, pad_id: int = 0
) -> dict[str, np.ndarray]:
    """One example per row (no packing), right-padded; used for per-example evaluation."""
    out = {k: np.zeros((len(examples), seq_len), np.int32) for k in ROW_KEYS}
    out["inputs"][:] = pad_id
    for r, (ids, on) in enumerate(examples):
        n = min(len(ids) - 1, seq_len)
        out["inputs"][r, :n] = ids[:n]
        out["targets"][r, :n] = ids[1 : n + 1]
        out["loss_mask"][r, :n] = on[1 : n + 1]
        out["segment_ids"][r, :n] = 1
        out["positions"][r, :n] = np.arange(n)
    return out


def packing_efficiency(rows: dict[str, np.ndarray]) -> float:
    return float((rows["segment_ids"] > 0).mean())


def token_losses(logits_BxTxV, targets_BxT):
    logz = jax.nn.logsumexp(logits_BxTxV.astype(jnp.float32), axis=-1)
    tgt = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0].astype(
        jnp.float32
    )
    return logz - tgt


def masked_loss(logits_BxTxV, batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean cross-entropy over action tokens, and token accuracy on them."""
    mask = batch["loss_mask"].astype(jnp.float32)
    n = jnp.maximum(mask.sum(), 1.0)
    loss = (token_losses(logits_BxTxV, batch["targets"]) * mask).sum() / n
    correct = (jnp.argmax(logits_BxTxV, axis=-1) == batch["targets"]).astype(jnp.float32)
    return loss, {"token_acc": (correct * mask).sum() / n, "action_tokens": mask.sum()}


def example_correct(logits_BxTxV, rows) -> jax.Array:
    """[B] bool: every action token is the argmax (== greedy decoding reproduces the action)."""
    wrong = (jnp.argmax(logits_BxTxV, axis=-1) != rows["targets"]) & (rows["loss_mask"] > 0)
    return ~jnp.any(wrong, axis=-1)
