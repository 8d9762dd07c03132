"""Run an absl flag sweep: every combination of --config.* overrides into its own workdir.

  python launch/sweep.py --config=experiments/vqvae.py --workdir=runs/sweep \
      --grid='loss.contrastive_weight=0,0.1,0.3' --grid='vq.cosine=False,True' \
      [--module=simpersona_jax.train] [--parallel=1] [--dry_run] [-- extra flags]

Each run is `python -m <module> --config=<config> --workdir=<workdir>/<name> --config.k=v ...`
where <name> joins the overrides (e.g. loss.contrastive_weight=0.1,vq.cosine=True). Runs that
already finished (their workdir has report.txt) are skipped, so a sweep resumes; unfinished
ones resume from their own checkpoints. Ends with a summary of each run's eval.json. Several
sweeps can be spread over machines with --shard=i/n (run i of every n combinations).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from simpersona_jax.training.sweep import combinations, command, parse_grid, run_name  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "experiment config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "sweep root; one sub-directory per run")
_GRID = flags.DEFINE_multi_string("grid", [], "'dotted.key=v1,v2,...' (repeat for more axes)")
_MODULE = flags.DEFINE_string("module", "simpersona_jax.train", "python -m module to run")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "runs at once on this machine")
_SHARD = flags.DEFINE_string("shard", "0/1", "i/n: run only combinations with index % n == i")
_DRY = flags.DEFINE_bool("dry_run", False, "print the commands only")


def main(argv):
    extra = argv[1:]
    shard_i, shard_n = (int(p) for p in _SHARD.value.split("/"))
    combos = [
        c for i, c in enumerate(combinations(parse_grid(_GRID.value))) if i % shard_n == shard_i
    ]
    pending, procs, done = [], [], []
    for overrides in combos:
        wd = os.path.join(_WORKDIR.value, run_name(overrides))
        cmd = command(_MODULE.value, _CONFIG.value, wd, overrides, extra)
        if _DRY.value:
            print(shlex.join(cmd))
            continue
        if os.path.exists(os.path.join(wd, "report.txt")):
            print(f"skip (finished): {wd}")
            done.append(wd)
            continue
        pending.append((wd, cmd))
    failed = []
    while pending or procs:
        while pending and len(procs) < _PARALLEL.value:
            wd, cmd = pending.pop(0)
            os.makedirs(wd, exist_ok=True)
            log = open(os.path.join(wd, "sweep.log"), "a")
            print(f"start: {shlex.join(cmd)}", flush=True)
            procs.append((wd, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
        wd, proc, log = procs.pop(0)
        rc = proc.wait()
        log.close()
        (done if rc == 0 else failed).append(wd)
        print(f"{'done' if rc == 0 else f'FAILED rc={rc}'}: {wd} (log: {wd}/sweep.log)", flush=True)
    for wd in done:
        path = os.path.join(wd, "eval.json")
        if os.path.exists(path):
            with open(path) as f:
                ev = json.load(f)
            print(
                os.path.basename(wd)
                + ": "
                + ", ".join(
                    f"{k}={v:.4g}" for k, v in ev.items() if not k.startswith("incoherence_")
                )
            )
    if failed:
        sys.exit(f"{len(failed)} runs failed: {failed}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
