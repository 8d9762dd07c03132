"""Grid expansion for flag sweeps (launch/sweep.py): overrides, run names, commands."""

from __future__ import annotations

import itertools
import sys


def parse_grid(specs: list[str]) -> list[tuple[str, list[str]]]:
    axes = []
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--grid={spec!r}: expected key=v1,v2,...")
        key, values = spec.split("=", 1)
        vals = [v for v in values.split(",") if v != ""]
        if not key.strip() or not vals:
            raise ValueError(f"--grid={spec!r}: empty key or no values")
        axes.append((key.strip(), vals))
    return axes


def combinations(axes) -> list[dict[str, str]]:
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*[v for _, v in axes])]


def run_name(overrides: dict[str, str]) -> str:
    name = ",".join(f"{k}={v}" for k, v in overrides.items()) or "base"
    return "".join(c if c.isalnum() or c in "=,._-" else "_" for c in name)


def command(module, config, workdir, overrides, extra) -> list[str]:
    return (
        [sys.executable, "-m", module, f"--config={config}", f"--workdir={workdir}"]
        + [f"--config.{k}={v}" for k, v in overrides.items()]
        + list(extra)
    )
