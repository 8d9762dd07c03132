"""The stages of the whole loop, in order, each as (inputs, configure, execute).

`configure(pcfg, done, stage_dir)` returns the stage's resolved config: its sub-config of the
pipeline config (experiments/simpersona.py) with every path and number that an earlier stage
decided filled in from that stage's manifest (`done[name]`), never restated. `execute(cfg,
stage_dir, done)` runs it and returns (outputs, artifacts): what later stages read, and the
paths (relative to stage_dir, or absolute) whose presence says the artifact is there.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import ml_collections

from simpersona_jax.loop.checks import PipelineError, check_code_range, persona_coverage
from simpersona_jax.replay import generate as traces_lib
from simpersona_jax.sim import goal_tasks
from simpersona_jax.sim import report as sim_report
from simpersona_jax.sim import run as sim_run


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    configure: Callable
    execute: Callable


def _copy(cfg) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(cfg.to_dict())


def _out(done, stage: str) -> dict:
    return done[stage]["outputs"]


# data ----------------------------------------------------------------------------------------


def _data_configure(pcfg, done, stage_dir):
    from simpersona_jax.features.default import SYNTHETIC_DEFAULT

    d = pcfg.data
    if d.dir == SYNTHETIC_DEFAULT:  # built inside the workdir, with the pipeline's synth sizes
        return ml_collections.ConfigDict(dict(dir=d.dir, synth=d.synth.to_dict()))
    return ml_collections.ConfigDict(dict(dir=os.path.abspath(d.dir)))


def _data_execute(cfg, stage_dir, done):
    from simpersona_jax.features import build, embed, scalars, store
    from simpersona_jax.features.default import SYNTHETIC_DEFAULT, ensure_default, resolve_data_dir

    if cfg.dir == SYNTHETIC_DEFAULT:
        ensure_default(stage_dir, cfg.synth)
        root = stage_dir
    else:
        root = resolve_data_dir(cfg.dir, "config.data.dir", need=("buyers/stats.json", "events"))
    buyers_dir = os.path.join(root, "buyers")
    stats = store.read_stats(buyers_dir)
    if stats["dim"] != build.DIM:
        raise PipelineError(
            f"{buyers_dir}/stats.json: vectors of width {stats['dim']}, expected "
            f"{build.DIM} (rebuild the buyer vectors)"
        )
    meta = store.read_meta(buyers_dir)
    n_slots = len(scalars.SLOTS)
    outputs = dict(
        dir=root,
        buyers_dir=buyers_dir,
        width=stats["dim"],
        block_sizes=[len(stats["scalar_names"]), n_slots * embed.DIM, n_slots],
        buyers=stats["buyers"],
        buyers_per_split=dict(meta.group_by("split").len().rows()),
        train_stores=stats["train_stores"],
        heldout_stores=sorted(set(stats["stores"]) - set(stats["train_stores"])),
        strata=dict(stats["strata"]),
    )
    artifacts = [os.path.join(buyers_dir, "stats.json"), os.path.join(root, "events")]
    return outputs, artifacts


# VQ-VAE, assignment ---------------------------------------------------------------------------


def _vqvae_configure(pcfg, done, stage_dir):
    cfg, data = _copy(pcfg.vqvae), _out(done, "data")
    cfg.data.dir = data["dir"]
    cfg.model.input_dim = data["width"]
    cfg.model.block_sizes = tuple(data["block_sizes"])
    return cfg


def _train(cfg, stage_dir):
    from simpersona_jax.training import train

    if cfg.task == "vqvae":
        from simpersona_jax.vqvae.task import VQVAETask as task_cls
    else:
        from simpersona_jax.lm.task import SFTTask as task_cls
    result = train(cfg, stage_dir, task_cls(cfg))
    if result.report:
        print(result.report, flush=True)
    return result


def _vqvae_execute(cfg, stage_dir, done):
    result = _train(cfg, stage_dir)
    outputs = dict(
        K=int(cfg.model.codebook_size),
        latent_dim=int(cfg.model.latent_dim),
        steps=int(cfg.num_steps),
        eval=result.eval,
        workdir=stage_dir,
    )
    return outputs, ["checkpoints", "report.txt"]


def _assign_configure(pcfg, done, stage_dir):
    cfg = ml_collections.ConfigDict(done["vqvae"]["config"])
    cfg.assign = _copy(pcfg.assign)
    return cfg


def _assign_execute(cfg, stage_dir, done):
    import jax
    import numpy as np
    import polars as pl

    from simpersona_jax.training.loop import load_trained
    from simpersona_jax.vqvae.assignment import run
    from simpersona_jax.vqvae.task import VQVAETask

    vq = _out(done, "vqvae")
    print(run(cfg, vq["workdir"], stage_dir), flush=True)
    state, _ = load_trained(cfg, vq["workdir"], VQVAETask(cfg))
    codebook_KxC = np.asarray(jax.device_get(state.extra["codebook"]["embed"]), np.float32)
    k = vq["K"]
    if codebook_KxC.shape[0] != k:
        raise PipelineError(
            f"{vq['workdir']}: codebook has {codebook_KxC.shape[0]} codes, "
            f"the vqvae manifest says K={k}"
        )
    np.save(os.path.join(stage_dir, "codebook.npy"), codebook_KxC)
    codes_path = os.path.join(stage_dir, "codes.parquet")
    codes = pl.read_parquet(codes_path)
    check_code_range(codes, k, codes_path)
    used = codes.group_by("split").agg(
        pl.col("code").n_unique().alias("codes"), pl.len().alias("n")
    )
    outputs = dict(
        K=k,
        codes_path=codes_path,
        codebook_path=os.path.join(stage_dir, "codebook.npy"),
        codebook_shape=list(codebook_KxC.shape),
        p_store_path=os.path.join(stage_dir, "p_store.parquet"),
        used_codes=int(codes["code"].n_unique()),
        per_split={
            r["split"]: dict(buyers=r["n"], codes=r["codes"]) for r in used.iter_rows(named=True)
        },
    )
    return outputs, ["codes.parquet", "p_store.parquet", "codebook.npy", "quality.json"]


# traces ---------------------------------------------------------------------------------------


def _traces_configure(pcfg, done, stage_dir):
    cfg = _copy(pcfg.traces)
    cfg.data.dir = _out(done, "data")["dir"]
    cfg.codes_path = _out(done, "assign")["codes_path"]  # sessions balanced over codes
    cfg.out_dir = stage_dir
    return cfg


def _traces_execute(cfg, stage_dir, done):
    summary = traces_lib.run(cfg)
    if summary["replayed"] == 0:
        raise PipelineError(f"traces: no session could be replayed (see {stage_dir})")
    a = _out(done, "assign")
    coverage = persona_coverage(stage_dir, a["codes_path"], a["K"])
    print(
        f"persona coverage: traces carry {coverage['traced_codes']} codes; "
        f"{coverage['heldout_codes_traced']} of the {coverage['heldout_codes']} codes held-out "
        f"buyers use, covering {coverage['heldout_buyers_with_traced_code']:.0%} of them",
        flush=True,
    )
    outputs = dict(
        traces_dir=stage_dir,
        replayed=summary["replayed"],
        steps=summary["steps"],
        tokens=summary["tokens"],
        dropped=summary["dropped"],
        coverage=coverage,
    )
    return outputs, ["summary.json", *summary["shards"]]


# agent SFT ------------------------------------------------------------------------------------


def _agent_configure(sub: str, prev: str | None):
    def configure(pcfg, done, stage_dir):
        cfg = _copy(pcfg[sub])
        cfg.data.traces_dir = _out(done, "traces")["traces_dir"]
        if prev is not None:  # the persona stages
            cfg.lm.init_from = _out(done, prev)["hf"]
            a = _out(done, "assign")
            cfg.persona.num_personas = a["K"]
            cfg.persona.codes_path = a["codebook_path"]
            cfg.data.codes_path = a["codes_path"]
            cfg.data.meta_path = os.path.join(_out(done, "data")["dir"], "buyers", "meta.parquet")
        return cfg

    return configure


def _agent_execute(cfg, stage_dir, done):
    outputs = dict(hf=os.path.join(stage_dir, "hf"), persona_tokens=0)
    if int(cfg.persona.num_personas) > 0:
        outputs["coverage"] = persona_coverage(
            cfg.data.traces_dir, cfg.data.codes_path, int(cfg.persona.num_personas)
        )
        outputs["persona_tokens"] = int(cfg.persona.num_personas)
    outputs["eval"] = _train(cfg, stage_dir).eval
    return outputs, ["hf/config.json", "report.txt"]


# simulation, goal tasks, report ---------------------------------------------------------------


def _agent_run_configure(sub: str):
    """simulate / goals: the data root and the stage-2 agent (+ assign's codes for simulate)."""

    def configure(pcfg, done, stage_dir):
        cfg = _copy(pcfg[sub])
        cfg.data.dir = _out(done, "data")["dir"]
        if "codes" in cfg:
            cfg.codes = _out(done, "assign")["codes_path"]
        cfg.lm.folder = _out(done, "agent_stage2")["hf"]
        cfg.out_dir = stage_dir
        return cfg

    return configure


def _simulate_execute(cfg, stage_dir, done):
    out = sim_run.simulate(cfg)
    print(sim_report.format_table(out), flush=True)
    outputs = dict(
        arms=out["arms"],
        skipped=out["skipped"],
        stores=out["stores"],
        report=os.path.join(stage_dir, "report.json"),
        html=os.path.join(stage_dir, "report.html"),
    )
    return outputs, ["report.json", "report.html"]


def _goals_execute(cfg, stage_dir, done):
    result = goal_tasks.from_config(cfg)
    print(goal_tasks.format_report(result), flush=True)
    success = {kind: s["rate"] for kind, s in result["success"].items() if s["n"]}
    return dict(success=success, report=os.path.join(stage_dir, "goal_tasks.json")), [
        "goal_tasks.json"
    ]


def _report_configure(pcfg, done, stage_dir):
    return ml_collections.ConfigDict(dict(stages=[s.name for s in STAGES[:-1]]))


def _report_execute(cfg, stage_dir, done):
    from simpersona_jax.loop.summary import write_summary

    write_summary(stage_dir, {name: done[name] for name in cfg.stages})
    return dict(report=os.path.join(stage_dir, "report.json")), ["report.json", "report.txt"]


STAGES: tuple[Stage, ...] = (
    Stage("data", (), _data_configure, _data_execute),
    Stage("vqvae", ("data",), _vqvae_configure, _vqvae_execute),
    Stage("assign", ("vqvae",), _assign_configure, _assign_execute),
    Stage("traces", ("data", "assign"), _traces_configure, _traces_execute),
    Stage("agent_base", ("traces",), _agent_configure("agent_base", None), _agent_execute),
    Stage(
        "agent_stage1",
        ("traces", "assign", "agent_base"),
        _agent_configure("agent_stage1", "agent_base"),
        _agent_execute,
    ),
    Stage(
        "agent_stage2",
        ("traces", "assign", "agent_stage1"),
        _agent_configure("agent_stage2", "agent_stage1"),
        _agent_execute,
    ),
    Stage(
        "simulate",
        ("data", "assign", "agent_stage2"),
        _agent_run_configure("simulate"),
        _simulate_execute,
    ),
    Stage("goals", ("data", "agent_stage2"), _agent_run_configure("goals"), _goals_execute),
    Stage(
        "report",
        (
            "data",
            "vqvae",
            "assign",
            "traces",
            "agent_base",
            "agent_stage1",
            "agent_stage2",
            "simulate",
            "goals",
        ),
        _report_configure,
        _report_execute,
    ),
)
NAMES = tuple(s.name for s in STAGES)
