"""The generic sharded train loop: mesh, sharded init or resume, jitted steps, checkpoints,
TensorBoard + console progress, non-finite stop."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax

from simpersona_jax.training import checkpoint as ckpt
from simpersona_jax.training import host, optim, validate
from simpersona_jax.training import mesh as mesh_lib
from simpersona_jax.training import progress as progress_lib
from simpersona_jax.training import state as state_lib
from simpersona_jax.training import step as step_lib
from simpersona_jax.training.task import TrainState


class NonFiniteLossError(RuntimeError):
    """The loss or gradient became NaN/Inf; the newest checkpoint is the last good state."""


@dataclasses.dataclass
class TrainResult:
    state: TrainState
    metrics: dict[str, float]
    eval: dict[str, float]
    report: str | None
    resumed_from: int | None
    mesh: Any
    history: list[tuple[int, dict[str, float]]]  # (step, mean metrics) at every log point


def _hook(task, name, default):
    fn = getattr(task, name, None)
    return fn if fn is not None else default


def global_batch(local: dict, sharding, global_batch_size: int) -> dict:
    """This process's slice -> global jax.Arrays sharded along the batch dimension.

    Host arrays are first made 64-byte aligned (host.device_ready) so a CPU device adopts them
    without its slow copy."""
    out = {}
    for k, v in local.items():
        v = host.device_ready(v)
        out[k] = jax.make_array_from_process_local_data(
            sharding, v, (global_batch_size,) + v.shape[1:]
        )
    return out


def build(config, task, init_rng, sample, devices=None):
    """Mesh, rules, optimiser (with the task's freezing mask) and the planned state shardings:
    everything decided from shapes alone (jax.eval_shape), before data or parameters exist.
    devices: the mesh's devices (default all; compile_check passes a TPU topology's)."""
    mesh = mesh_lib.make_mesh(dict(config.get("mesh", {"data": -1})), devices)
    rules = mesh_lib.rules_from_config(config.get("logical_axis_rules", None))
    batch_sh = mesh_lib.batch_sharding(mesh, rules)
    tx = _hook(task, "make_optimizer", lambda c: None)(config.optimizer)
    if tx is None:
        tx = optim.default_optimizer(config.optimizer, int(config.num_steps))
    boxed = jax.eval_shape(task.init, init_rng, sample)
    mask = _hook(task, "trainable_mask", lambda p: None)(nn.meta.unbox(boxed.get("params", {})))
    tx = optim.apply_trainable_mask(tx, mask)
    abstract, shardings = state_lib.state_shardings(boxed, tx, mesh, rules)
    return mesh, rules, batch_sh, tx, abstract, shardings


def in_context(fn, mesh, rules):
    """fn called (and so traced) inside mesh_lib.activate(mesh, rules): the model's activation
    constraints take effect in the compiled step."""

    def called(*args, **kwargs):
        with mesh_lib.activate(mesh, rules):
            return fn(*args, **kwargs)

    return called


def train(config, workdir: str, task, *, stop_after_steps: int | None = None) -> TrainResult:
    """Train `task` for config.num_steps, resuming from the newest checkpoint under
    <workdir>/checkpoints that restores (see checkpoint.py). The config is checked first
    (validate.py: ConfigError listing every problem).

    stop_after_steps: end this invocation early (after saving) at that step, as if killed
    right after a checkpoint; used by the resume tests.
    """
    validate.check(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    gbs, num_steps = int(config.global_batch_size), int(config.num_steps)
    init_rng, step_rng = jax.random.split(jax.random.key(int(config.seed)))
    sample = task.init_sample()
    mesh, rules, batch_sh, tx, abstract, shardings = build(config, task, init_rng, sample)
    data_iter = task.make_loader(
        global_batch_size=gbs,
        seed=int(config.seed),
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
    ccfg = config.checkpoint
    manager = ckpt.make_manager(workdir, ccfg)
    try:
        state, resumed = ckpt.restore_latest(manager, abstract, data_iter)
    except BaseException:
        manager.close()
        raise
    if state is None:
        state = state_lib.create_state(task, tx, shardings, init_rng, sample, rules)

    step_fn = in_context(
        step_lib.jit_train_step(
            step_lib.make_train_step(task, tx, step_rng), shardings, batch_sh, mesh
        ),
        mesh,
        rules,
    )
    step = int(state.step)
    prog = progress_lib.Progress(
        workdir,
        total_steps=num_steps,
        global_batch_size=gbs,
        example_name=getattr(task, "example_name", "examples"),
        start_step=step,
        console_metrics=getattr(task, "console_metrics", None),
    )
    if resumed is not None:
        prog.print(f"resumed from {workdir}/checkpoints step {resumed}")
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
    log_every = int(config.get("log_every_steps", 50))
    save_every = int(ccfg.get("every_steps", 500))
    eval_every = int(config.get("eval_every_steps", 0) or 0)
    evaluate = in_context(_hook(task, "evaluate", lambda p, e: {}), mesh, rules)
    history: list[dict] = []
    logged: list[tuple[int, dict[str, float]]] = []
    last: dict[str, float] = {}
    last_saved = resumed
    try:
        while step < num_steps:
            batch = global_batch(next(data_iter), batch_sh, gbs)
            state, metrics = step_fn(state, batch)
            step += 1
            history.append(metrics)
            at_end = step == num_steps or step == stop_after_steps
            saving = step % save_every == 0 or at_end
            if step % log_every == 0 or saving:
                last = progress_lib.mean_metrics(history)
                if last["nonfinite"] > 0:
                    manager.wait_until_finished()
                    raise NonFiniteLossError(
                        f"non-finite loss or gradient between steps {step - len(history)} and {step} "
                        f"(metrics {last}); those updates were not applied. Last good checkpoint: "
                        f"step {last_saved} in {workdir}/checkpoints (rerun with --workdir to resume, "
                        f"e.g. with a lower learning rate)."
                    )
                history = []
                logged.append((step, last))
                prog.line(step, last)
                prog.scalars(step, last)
            if eval_every and step % eval_every == 0 and not at_end:
                prog.scalars(step, evaluate(state.params, state.extra), prefix="eval")
            if saving:
                ckpt.save(manager, state, data_iter, force=True)
                last_saved = step
            if stop_after_steps is not None and step >= stop_after_steps:
                break
        manager.wait_until_finished()
    finally:
        manager.close()
    result_eval, report = {}, None
    if step >= num_steps:
        result_eval = evaluate(state.params, state.extra)
        prog.scalars(step, result_eval, prefix="eval")
        report = _hook(task, "report", lambda p, e, w, m: None)(
            state.params, state.extra, workdir, result_eval
        )
        if report and jax.process_index() == 0:
            with open(os.path.join(workdir, "report.txt"), "w") as f:
                f.write(report + "\n")
            with open(os.path.join(workdir, "eval.json"), "w") as f:
                json.dump(result_eval, f, indent=2)
    prog.close()
    return TrainResult(
        state=state,
        metrics=last,
        eval=result_eval,
        report=report,
        resumed_from=resumed,
        mesh=mesh,
        history=logged,
    )


def load_trained(config, workdir: str, task, step: int | None = None) -> tuple[TrainState, int]:
    """(TrainState, step) restored from a training workdir, sharded as training would shard it."""
    init_rng, _ = jax.random.split(jax.random.key(int(config.seed)))
    *_, abstract, _ = build(config, task, init_rng, task.init_sample())
    return ckpt.restore_params(workdir, abstract, step)
