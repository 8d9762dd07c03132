"""Does the persona agent work? The fidelity targets of issue 12, on the embedded default.

    python bench/fidelity.py --workdir=runs/simpersona            # pipeline (if not current) + 3 seeds
    python bench/fidelity.py --workdir=runs/simpersona --seeds=0 --buyers=20   # a quick look

Runs `python -m simpersona_jax.pipeline` into --workdir (every current stage is skipped; its wall
time is the last target), then for each seed `python -m simpersona_jax.simulate` on the held-out
stores with every arm (scripted oracle, matched / mismatched / no / text persona) on the same
sampled buyers, and the goal-directed tasks with the stage-2 agent. Paths come from the
pipeline's stage folders; --data_dir/--codes/--agent point at another run instead. Prints each
seed's table (figures with 95% bootstrap CIs, baselines from the same real buyers), then one
TARGET line per target, measured on every seed (PASS when every seed meets it):
  ara_vs_constant      matched stratified ARA - best persona-blind constant >= 5 pts, CIs apart
  ara_vs_mismatched    matched - mismatched stratified ARA >= 8 pts, CIs apart
  ara_vs_oracle        oracle - matched stratified ARA <= 3 pts
  code_alignment       matched - mismatched per-code alignment >= 10 pts
  cr_stores            stores whose conversion is not significantly different >= 5 of 6
  cr_vs_oracle         oracle - matched mean CR alignment <= 5 pts
  unparseable          unparseable actions = 0
  crash_rate           crashed episodes <= 1%
  cohens_d_atc         Cohen's d of per-episode ATC, high vs low purchase-intensity codes >= 1.5
  goal_<kind>          goal-task success >= 90 / 80 / 70% (find_add / search_buy / browse)
  pipeline_wall_min    the one command on the embedded default <= 45 min (when it ran here)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

GOAL_TARGETS = {"find_add": 0.9, "search_buy": 0.8, "browse": 0.7}


def _run(cmd: list[str], log: str) -> float:
    """Runs cmd with output to `log` (and a tail on failure); returns wall seconds."""
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); {log}:\n{tail}")
    return time.time() - t0


def _target(name: str, values: list[float], ok: list[bool], goal: str) -> str:
    shown = ",".join(f"{v:.3g}" for v in values)
    return f"TARGET {name} measured={shown} goal={goal} {'PASS' if all(ok) else 'MISS'}"


def _fig(figs: dict, key: str) -> tuple[float, float, float]:
    f = figs[key]
    return f["value"], f.get("lo", f["value"]), f.get("hi", f["value"])


def seed_targets(rep: dict) -> dict[str, tuple[float, bool]]:
    """(measured, met) per target from one simulate report.json."""
    arms, base = rep["fidelity"]["arms"], rep["fidelity"]["baselines"]
    m, mm, orc = arms["matched"], arms.get("mismatched"), arms.get("oracle")
    const = base["average_buyer"]
    out = {}
    v, lo, _ = _fig(m, "stratified_ara")
    cv, _, chi = _fig(const, "stratified_ara")
    out["ara_vs_constant"] = (100 * (v - cv), v - cv >= 0.05 and lo > chi)
    if mm:
        w, _, whi = _fig(mm, "stratified_ara")
        out["ara_vs_mismatched"] = (100 * (v - w), v - w >= 0.08 and lo > whi)
        out["code_alignment"] = (
            100 * (m["code_alignment"]["value"] - mm["code_alignment"]["value"]),
            m["code_alignment"]["value"] - mm["code_alignment"]["value"] >= 0.10,
        )
    if orc:
        o = orc["stratified_ara"]["value"]
        out["ara_vs_oracle"] = (100 * (o - v), o - v <= 0.03)
        oc, mc = orc["mean_cr_alignment"]["value"], m["mean_cr_alignment"]["value"]
        if oc is not None and mc is not None:
            out["cr_vs_oracle"] = (100 * (oc - mc), oc - mc <= 0.05)
    n = len(rep["stores"])
    out["cr_stores"] = (m["stores_not_significant"], m["stores_not_significant"] >= min(5, n - 1))
    fail = rep["failures"]["matched"]
    out["unparseable"] = (
        100 * fail["unparseable_action_rate"],
        fail["unparseable_action_rate"] == 0,
    )
    out["crash_rate"] = (100 * fail["crash_rate"], fail["crash_rate"] <= 0.01)
    d = m["cohens_d_atc"]["value"]
    out["cohens_d_atc"] = (float("nan") if d is None else d, d is not None and d >= 1.5)
    return out


GOALS = {
    "ara_vs_constant": ">=5pts,CIs apart",
    "ara_vs_mismatched": ">=8pts,CIs apart",
    "ara_vs_oracle": "<=3pts",
    "code_alignment": ">=10pts",
    "cr_stores": ">=5of6",
    "cr_vs_oracle": "<=5pts",
    "unparseable": "0%",
    "crash_rate": "<=1%",
    "cohens_d_atc": ">=1.5",
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", default="runs/simpersona")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--buyers", type=int, default=60, help="simulated buyers per held-out store")
    ap.add_argument("--goal_tasks", type=int, default=30, help="goal tasks per kind (0 = skip)")
    ap.add_argument("--skip_pipeline", action="store_true")
    ap.add_argument(
        "--data_dir",
        default="",
        help="the data root, passed as --config.data.dir (default: <workdir>/data)",
    )
    ap.add_argument("--codes", default="", help="default: <workdir>/assign/codes.parquet")
    ap.add_argument("--agent", default="", help="default: <workdir>/agent_stage2/hf")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    w = args.workdir
    out = os.path.join(w, "bench_fidelity")
    os.makedirs(out, exist_ok=True)
    py = [sys.executable, "-m"]
    lines = []
    if not args.skip_pipeline:
        wall = _run(
            py
            + ["simpersona_jax.pipeline", "--config=experiments/simpersona.py", f"--workdir={w}"],
            os.path.join(out, "pipeline.log"),
        )
        print(f"pipeline: {wall / 60:.1f} min wall (current stages skipped)", flush=True)
        lines.append(_target("pipeline_wall_min", [wall / 60], [wall <= 45 * 60], "<=45"))
    data_dir = args.data_dir or os.path.join(w, "data")
    codes = args.codes or os.path.join(w, "assign", "codes.parquet")
    agent = args.agent or os.path.join(w, "agent_stage2", "hf")
    per_seed = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        sim_out = os.path.join(out, f"simulate_seed{seed}")
        wall = _run(
            py
            + [
                "simpersona_jax.simulate",
                "--config=experiments/simulate.py",
                f"--config.data.dir={data_dir}",
                f"--config.codes={codes}",
                f"--config.lm.folder={agent}",
                f"--config.buyers_per_store={args.buyers}",
                f"--config.seed={seed}",
                f"--config.out_dir={sim_out}",
                f"--config.driver.concurrency={args.concurrency}",
            ],
            os.path.join(out, f"simulate_seed{seed}.log"),
        )
        with open(os.path.join(sim_out, "report.json")) as f:
            rep = json.load(f)
        from simpersona_jax.sim import report as sim_report

        print(f"--- seed {seed} ({wall / 60:.1f} min)\n{sim_report.format_table(rep)}", flush=True)
        per_seed.append(seed_targets(rep))
    for name, goal in GOALS.items():
        got = [s[name] for s in per_seed if name in s]
        if got:
            lines.append(_target(name, [v for v, _ in got], [ok for _, ok in got], goal))
    if args.goal_tasks:
        goal_out = os.path.join(out, "goal_tasks")
        _run(
            py
            + [
                "simpersona_jax.goal_tasks",
                "--config=experiments/goal_tasks.py",
                f"--config.data.dir={data_dir}",
                f"--config.lm.folder={agent}",
                f"--config.n_per_kind={args.goal_tasks}",
                f"--config.out_dir={goal_out}",
            ],
            os.path.join(out, "goal_tasks.log"),
        )
        with open(os.path.join(goal_out, "goal_tasks.json")) as f:
            goals = json.load(f)
        for kind, need in GOAL_TARGETS.items():
            rate = goals["success"][kind]["rate"] or 0.0
            lines.append(
                _target(f"goal_{kind}", [100 * rate], [rate >= need], f">={100 * need:.0f}%")
            )
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    main()
