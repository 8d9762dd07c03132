"""The report stage's summary of a whole run: report.json + report.txt from the stage manifests."""

from __future__ import annotations

import json
import os


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def summary_lines(manifests: dict[str, dict]) -> list[str]:
    lines = ["stage           seconds  finished"]
    lines += [f"{name:<15} {m['seconds']:>7.1f}  {m['finished']}" for name, m in manifests.items()]
    lines.append(f"{'total':<15} {sum(m['seconds'] for m in manifests.values()):>7.1f}")
    out = {name: m["outputs"] for name, m in manifests.items()}
    if "data" in out:
        d = out["data"]
        lines.append(
            f"data: {d['buyers']:,} buyers x {d['width']} ({d['dir']}); stores "
            f"{len(d['train_stores'])} train / {len(d['heldout_stores'])} held-out"
        )
    if "assign" in out:
        a = out["assign"]
        lines.append(
            f"buyer types: K={a['K']}, {a['used_codes']} used; codebook {a['codebook_shape']}"
        )
    if "traces" in out:
        t, c = out["traces"], out["traces"]["coverage"]
        lines.append(
            f"traces: {t['replayed']} sessions, {t['steps']:,} steps; codes traced "
            f"{c['traced_codes']}, held-out codes traced {c['heldout_codes_traced']} of "
            f"{c['heldout_codes']} ({_pct(c['heldout_buyers_with_traced_code'])} of "
            "held-out buyers)"
        )
    if "simulate" in out:
        s = out["simulate"]
        lines.append(
            f"simulate: arms {', '.join(s['arms'])} on {len(s['stores'])} held-out "
            f"stores -> {s['html']}"
        )
    if "goals" in out:
        lines.append(
            "goal tasks: " + ", ".join(f"{k} {_pct(v)}" for k, v in out["goals"]["success"].items())
        )
    return lines


def write_summary(out_dir: str, manifests: dict[str, dict]) -> None:
    """report.json ({stage: seconds, outputs}) and report.txt; prints the text."""
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(
            {
                name: dict(seconds=m["seconds"], outputs=m["outputs"])
                for name, m in manifests.items()
            },
            f,
            indent=1,
            default=str,
        )
    text = "\n".join(summary_lines(manifests))
    with open(os.path.join(out_dir, "report.txt"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)
