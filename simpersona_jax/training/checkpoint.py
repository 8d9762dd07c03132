"""Orbax CheckpointManager holding the TrainState and the Grain iterator state together."""

from __future__ import annotations

import os

import grain
import orbax.checkpoint as ocp

from simpersona_jax.training.task import TrainState


def make_manager(workdir: str, cfg) -> ocp.CheckpointManager:
    """Checkpoints under <workdir>/checkpoints/<step>/{state,data}; async saves by default."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg.get("max_to_keep", 3),
        enable_async_checkpointing=cfg.get("async_save", True),
        create=True,
    )
    return ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        options=options,
        item_names=("state", "data"),
    )


def save(manager: ocp.CheckpointManager, state: TrainState, data_iter, *, force=False) -> bool:
    step = int(state.step)
    return manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(data_iter)
        ),
        force=force,
    )


def restore_latest(manager: ocp.CheckpointManager, abstract_state: TrainState, data_iter):
    """(state, step) from the newest checkpoint, with data_iter moved to its saved position;
    (None, None) when the workdir has no checkpoint."""
    step = manager.latest_step()
    if step is None:
        return None, None
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iter),
        ),
    )
    return restored["state"], step


def restore_params(
    workdir: str, abstract_state: TrainState, step: int | None = None
) -> tuple[TrainState, int]:
    """The newest (or given) checkpointed TrainState of a workdir, without the data iterator."""
    manager = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        item_names=("state", "data"),
        options=ocp.CheckpointManagerOptions(read_only=True),
    )
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(
                f"no checkpoint under {workdir}/checkpoints: train first with "
                f"python -m simpersona_jax.train --workdir={workdir}"
            )
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        )
    finally:
        manager.close()
    return restored["state"], step
