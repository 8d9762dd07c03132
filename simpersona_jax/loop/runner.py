"""Runs the whole loop's stages in order: skip the current, resume the unfinished, run the rest.

One line per stage with its wall time (above a tqdm bar over the stages). `stages` selects a
subset ("all" or e.g. "vqvae,assign"): the stages a selected one reads must then be current,
else the error names the missing stage and the subset that would make it.
"""

from __future__ import annotations

import os
import time

from tqdm import tqdm

from simpersona_jax.loop import manifest
from simpersona_jax.loop.checks import PipelineError
from simpersona_jax.loop.stages import NAMES, STAGES

_BY_NAME = {s.name: s for s in STAGES}


def select(value: str) -> list[str]:
    """The selected stage names in pipeline order ("all"/"" = every stage)."""
    if value in ("", "all"):
        return list(NAMES)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise PipelineError(
            f"config.stages: unknown stage(s) {unknown}; the stages are {','.join(NAMES)}"
        )
    return [n for n in NAMES if n in names]


def _needed(selected: list[str]) -> set[str]:
    """Stages that selected ones read, transitively, and that are not selected themselves."""
    seen, todo = set(), list(selected)
    while todo:
        for dep in _BY_NAME[todo.pop()].inputs:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen - set(selected)


def run(pcfg, workdir: str) -> dict[str, dict]:
    """Runs the selected stages under `workdir`; returns {stage: manifest} of every stage used."""
    if not workdir:
        raise PipelineError("--workdir is required (every stage writes <workdir>/<stage>/)")
    workdir = os.path.abspath(workdir)
    selected = select(pcfg.stages)
    needed = _needed(selected)
    done: dict[str, dict] = {}
    bar = tqdm(total=len(selected), desc="pipeline", unit="stage")
    for stage in STAGES:
        if stage.name not in selected and stage.name not in needed:
            continue
        stage_dir = os.path.join(workdir, stage.name)
        stage_cfg = stage.configure(pcfg, done, stage_dir)
        cfg = stage_cfg.to_dict()
        config_digest = manifest.digest(manifest.portable(cfg, workdir))
        inputs = {name: done[name]["digest"] for name in stage.inputs}
        reason = manifest.stale_reason(stage_dir, config_digest, inputs)
        if stage.name not in selected:
            if reason is not None:
                users = [n for n in selected if stage.name in _BY_NAME[n].inputs] or selected
                raise PipelineError(
                    f"stage {stage.name} (read by {','.join(users)}) has no current manifest in "
                    f"{stage_dir} ({reason}); run it first: "
                    f"--config.stages={','.join(select(','.join([stage.name, *selected])))}"
                )
            done[stage.name] = manifest.read(stage_dir)
            continue
        if reason is None:
            done[stage.name] = manifest.read(stage_dir)
            status, seconds = "current, skipped", 0.0
        else:
            resumed = manifest.begin(stage_dir, config_digest, inputs)
            tqdm.write(f"{stage.name}: {'resuming' if resumed else 'running'} ({reason})")
            t0 = time.time()
            outputs, artifacts = stage.execute(stage_cfg, stage_dir, done)
            seconds = time.time() - t0
            done[stage.name] = manifest.finish(
                stage_dir, stage.name, cfg, config_digest, inputs, outputs, artifacts, seconds
            )
            status = "resumed and done" if resumed else "done"
        bar.update(1)
        tqdm.write(
            f"[{bar.n}/{bar.total}] {stage.name:<13} {status:<17} {seconds:8.1f}s"
            + (f"  (ran in {done[stage.name]['seconds']:.1f}s)" if seconds == 0.0 else "")
        )
    bar.close()
    return done
