"""The whole loop on the embedded default, one command:

    python -m simpersona_jax.pipeline --config=experiments/simpersona.py --workdir=runs/simpersona
    python -m simpersona_jax.pipeline --config=experiments/simpersona.py:full --workdir=runs/full

Stages (each into <workdir>/<stage>/ with manifest.json; a current stage is skipped, an
interrupted one resumes): data (synthetic stores + buyer vectors) -> vqvae -> assign (codes,
p_store, codebook.npy) -> traces (browser replay) -> agent_base -> agent_stage1 -> agent_stage2
-> simulate (every arm on the held-out stores: report.html) -> goals (goal-directed tasks) ->
report (report.txt: per-stage times and the figures each stage recorded). Prints one line per
stage with its wall time.

Each stage's sub-config is the get_config() of its own experiments/<stage>.py; presets change
sizes only: "budget" (default) targets <= 45 min wall on 2 CPU cores, "full" keeps the stage
configs as they are. Paths and numbers that one stage hands to the next (data root, K, vector
layout, codes.parquet, codebook.npy, traces, each stage's <dir>/hf) come from the manifests:
the values shown as FROM_MANIFEST below are replaced. `--config.stages=vqvae,assign` runs a
subset; `--config.data.dir=<data root>` uses other buyers (synthesize or ingest output).
"""

import importlib.util
import os

import ml_collections

from simpersona_jax.synth.generate import default_config

FROM_MANIFEST = "(set from an earlier stage's manifest)"


def _experiment(name: str) -> ml_collections.ConfigDict:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config(preset: str = "budget") -> ml_collections.ConfigDict:
    if preset not in ("budget", "full"):
        raise ValueError(f"experiments/simpersona.py: preset {preset!r}, expected budget or full")
    c = ml_collections.ConfigDict()
    c.preset = preset
    c.stages = "all"  # or a comma-separated subset, e.g. "vqvae,assign"
    c.data = ml_collections.ConfigDict(
        dict(
            dir="synthetic:default",  # built in <workdir>/data with `synth`; or an existing data root
            synth=default_config(),
        )
    )
    c.vqvae = _experiment("vqvae")
    c.vqvae.data.dir = FROM_MANIFEST
    c.assign = ml_collections.ConfigDict(dict(split="all"))
    c.traces = _experiment("traces")
    c.traces.data.dir = c.traces.out_dir = c.traces.codes_path = FROM_MANIFEST
    for stage in ("agent_base", "agent_stage1", "agent_stage2"):
        c[stage] = _experiment(stage)
        c[stage].data.traces_dir = FROM_MANIFEST
        if stage != "agent_base":  # persona.num_personas = K, codes and codebook.npy: assign's
            c[stage].lm.init_from = c[stage].data.codes_path = FROM_MANIFEST
            c[stage].persona.codes_path = c[stage].data.meta_path = FROM_MANIFEST
            # Persona rows as a learned projection of the VQ codebook (stage 2 continues it):
            # codes with few traces share what the others teach (offline, stage 1 on the default:
            # NLL gain vs mismatched +0.005 [+0.001, +0.010] nats/step, mean init -0.002).
            c[stage].persona.init = "code_projection"
    c.simulate = _experiment("simulate")
    c.simulate.data.dir = c.simulate.codes = c.simulate.lm.folder = FROM_MANIFEST
    c.simulate.out_dir = FROM_MANIFEST
    c.goals = _experiment("goal_tasks")
    c.goals.data.dir = c.goals.lm.folder = c.goals.out_dir = FROM_MANIFEST
    if preset == "budget":
        c.vqvae.num_steps = 1500
        c.vqvae.eval_every_steps = 0
        c.vqvae.checkpoint.every_steps = 500
        c.traces.max_sessions = 400
        c.agent_base.num_steps = 400
        c.agent_stage1.num_steps = 200
        c.agent_stage2.num_steps = 200
        c.simulate.buyers_per_store = 30
    return c
