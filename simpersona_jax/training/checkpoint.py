"""Orbax CheckpointManager holding the TrainState and the Grain iterator state together.

Restoring falls back: a checkpoint that does not restore (a truncated file, a bad data-loader
state) is skipped with one line naming the step, the file and the reason, and the next older one
is tried. When a training run resumes from an older step, the newer unreadable steps are moved
to <workdir>/checkpoints_unreadable/ (kept for inspection, out of the way of new saves). When no
checkpoint restores, CheckpointError says so in one line naming each step's file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from simpersona_jax.training.task import TrainState

UNREADABLE_DIR = "checkpoints_unreadable"


class CheckpointError(RuntimeError):
    """No checkpoint of a workdir restores; the message (one line) names each step's file."""


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


def _warn(text: str) -> None:
    if jax.process_index() == 0:
        print(text, file=sys.stderr, flush=True)


def _ignore_closed_loop_errors() -> None:
    """Drop (process-wide, from now on) the 'Event loop is closed' errors a failed restore leaves.
    Installed before the first restore: the errors can arrive before the failed restore returns.

    Orbax runs a restore on an event loop it closes when the restore fails, while TensorStore
    still completes the other reads in flight; each of their callbacks then raises
    RuntimeError('Event loop is closed') as an unraisable exception, up to a second later
    (hundreds of tracebacks for a model of any size). Every other unraisable exception still
    reaches the previous hook."""
    previous = sys.unraisablehook
    if getattr(previous, "_drops_closed_loop_errors", False):
        return

    def hook(args):
        e = args.exc_value
        if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
            previous(args)

    hook._drops_closed_loop_errors = True
    sys.unraisablehook = hook


def _bad_json_file(item_dir: str) -> tuple[str, str] | None:
    """(path, why) of the first metadata file under an item folder that is not valid JSON."""
    for root, dirs, files in os.walk(item_dir):
        dirs[:] = sorted(d for d in dirs if d != "d" and not d.startswith("ocdbt.process_"))
        for name in sorted(files):
            if name.endswith(".json") or name.startswith("_") or "metadata" in root:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        json.loads(f.read())
                except (ValueError, UnicodeDecodeError) as e:
                    return path, f"not valid JSON ({e}); truncated?"
                except OSError as e:
                    return path, f"unreadable ({e.strerror})"
    return None


def describe_failure(item_dir: str, error: BaseException) -> str:
    """'<file>: <why>' for a restore of `item_dir` that raised `error`, naming the file when the
    error (or a look at the folder's metadata files) tells which."""
    message = str(error)
    files = re.findall(r'local file "([^"]+)"', message)
    if files:  # TensorStore: '... of local file "<path>": <why> [tensorstore_spec=...'
        why = message.rsplit(f'local file "{files[-1]}"', 1)[1]
        why = why.split(" [tensorstore_spec")[0].lstrip(": ").strip() or type(error).__name__
        return f"{files[-1]}: {why}"
    cause, seen = error, []
    while cause is not None and cause not in seen:
        if isinstance(cause, json.JSONDecodeError):
            bad = _bad_json_file(item_dir)
            if bad:
                return f"{bad[0]}: {bad[1]}"
        if isinstance(cause, OSError) and cause.filename:
            return f"{cause.filename}: {cause.strerror or type(cause).__name__}"
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    first = message.strip().splitlines()[0][:300] if message.strip() else ""
    return f"{item_dir}: {type(error).__name__}: {first}"


def _all_processes_agree(ok: bool) -> bool:
    if jax.process_count() == 1:
        return ok
    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok, np.int32))))


def _restore_newest(manager: ocp.CheckpointManager, items: dict, step: int | None):
    """(restored items, step, [(skipped step, why)]): the newest step (or `step`) all of whose
    `items` ({name: restore args}) restore, each item restored on its own so a failure names it."""
    steps = [step] if step is not None else sorted(manager.all_steps(), reverse=True)
    skipped = []
    _ignore_closed_loop_errors()
    for s in steps:
        restored, why = {}, None
        for name, args in items.items():
            try:
                restored.update(manager.restore(s, args=ocp.args.Composite(**{name: args})))
            except Exception as e:  # noqa: BLE001 - any failure means this step does not restore
                why = describe_failure(os.path.join(str(manager.directory), str(s), name), e)
                break
        if _all_processes_agree(why is None):
            return restored, s, skipped
        skipped.append((s, why or "another process could not restore it"))
    if skipped:
        raise CheckpointError(
            f"no checkpoint under {manager.directory} restores: "
            + "; ".join(f"step {s}: {why}" for s, why in skipped)
        )
    return None, None, skipped


def _set_aside(manager: ocp.CheckpointManager, steps: list[int]) -> list[str]:
    """Move `steps` to <workdir>/checkpoints_unreadable/ (process 0) and reload the manager."""
    root = os.path.join(os.path.dirname(str(manager.directory)), UNREADABLE_DIR)
    moved = []
    for s in steps:
        dest = os.path.join(root, str(s))
        n = 1
        while os.path.exists(dest):
            dest, n = os.path.join(root, f"{s}.{n}"), n + 1
        moved.append(dest)
        if jax.process_index() == 0:
            os.makedirs(root, exist_ok=True)
            shutil.move(os.path.join(str(manager.directory), str(s)), dest)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("simpersona_jax:checkpoints_set_aside")
    manager.reload()
    return moved


def restore_latest(manager: ocp.CheckpointManager, abstract_state: TrainState, data_iter):
    """(state, step) from the newest checkpoint that restores, with data_iter moved to its saved
    position; (None, None) when the workdir has no checkpoint. Newer steps that do not restore
    are reported (one line each) and set aside; CheckpointError when none restores."""
    items = {  # the small data-loader state first: a bad one skips the step before the big read
        "data": grain.checkpoint.CheckpointRestore(data_iter),
        "state": ocp.args.StandardRestore(abstract_state),
    }
    restored, step, skipped = _restore_newest(manager, items, None)
    if skipped:
        moved = _set_aside(manager, [s for s, _ in skipped])
        for (s, why), dest in zip(skipped, moved):
            _warn(f"skipped checkpoint step {s} ({why}); moved to {dest}; resuming from {step}")
    return (restored["state"], step) if restored else (None, None)


def restore_params(
    workdir: str, abstract_state: TrainState, step: int | None = None
) -> tuple[TrainState, int]:
    """The newest (or given) checkpointed TrainState of a workdir that restores, without the data
    iterator (newer ones that do not restore are reported, one line each, and left in place)."""
    manager = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "checkpoints"),
        item_names=("state", "data"),
        options=ocp.CheckpointManagerOptions(read_only=True),
    )
    try:
        restored, found, skipped = _restore_newest(
            manager, {"state": ocp.args.StandardRestore(abstract_state)}, step
        )
    finally:
        manager.close()
    if restored is None:
        raise FileNotFoundError(
            f"no checkpoint under {workdir}/checkpoints: train first with "
            f"python -m simpersona_jax.train --workdir={workdir}"
        )
    for s, why in skipped:
        _warn(f"skipped checkpoint step {s} ({why}); using step {found}")
    return restored["state"], found
