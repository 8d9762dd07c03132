"""Checkpoints that do not restore: skipped with one line, the run resumes from an older one;
when none restores, one clear error naming the files."""

import glob
import os
import shutil
import sys
import types

import numpy as np
import pytest

from simpersona_jax.training import train
from simpersona_jax.training.checkpoint import CheckpointError
from simpersona_jax.training.loop import load_trained

from .toy import ToyTask, toy_config


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped at step 6 (checkpoints 4 and 6) and the rows of its 6 batches."""
    workdir = str(tmp_path_factory.mktemp("ckpt") / "run")
    log = []
    train(toy_config(data=8), workdir, ToyTask(log=log), stop_after_steps=6)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "6"]
    return workdir, log


def _copy(stopped_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(stopped_run[0], workdir)
    return workdir


def _truncate(path, fraction):
    os.truncate(path, int(os.path.getsize(path) * fraction))


@pytest.mark.parametrize(
    "pattern,fraction",
    [("state/d/*", 0.8), ("data/process_0-of-1.json", 0.5)],
    ids=["truncated_state", "truncated_loader_state"],
)
def test_unreadable_latest_checkpoint_is_skipped_and_run_resumes(
    stopped_run, tmp_path, capsys, monkeypatch, pattern, fraction
):
    workdir = _copy(stopped_run, tmp_path)
    bad = sorted(glob.glob(os.path.join(workdir, "checkpoints", "6", pattern)))
    assert bad
    for path in bad:
        _truncate(path, fraction)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    log = []
    result = train(toy_config(data=8), workdir, ToyTask(log=log))

    assert result.resumed_from == 4 and int(result.state.step) == 8
    # Steps 5 and 6 saw the batches the first run saw there: the loader state of step 4.
    for a, b in zip(log[:2], stopped_run[1][4:6]):
        np.testing.assert_array_equal(a, b)
    skipped = [s for s in capsys.readouterr().err.splitlines() if "skipped checkpoint" in s]
    aside = os.path.join(workdir, "checkpoints_unreadable", "6")
    assert len(skipped) == 1
    assert skipped[0].startswith("skipped checkpoint step 6 (")
    assert any(f"({path}: " in skipped[0] for path in bad)
    assert f"moved to {aside}; resuming from 4" in skipped[0]
    assert os.path.isdir(aside)
    # The new step 6 and 8 were saved where the unreadable one was.
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["6", "8"]
    # A failed restore leaves TensorStore callbacks on a closed event loop: those errors are
    # dropped, any other unraisable exception still reaches the previous hook.
    closed = RuntimeError("Event loop is closed")
    assert not [a for a in unraisable if str(a.exc_value) == str(closed)]
    sys.unraisablehook(types.SimpleNamespace(exc_value=closed))
    other = types.SimpleNamespace(exc_value=RuntimeError("something else"))
    sys.unraisablehook(other)
    assert unraisable[-1] is other


def test_no_checkpoint_restores_is_one_line_naming_the_files(stopped_run, tmp_path, capsys):
    workdir = _copy(stopped_run, tmp_path)
    ckpts = os.path.join(workdir, "checkpoints")
    _truncate(os.path.join(ckpts, "6", "data", "process_0-of-1.json"), 0.5)
    _truncate(os.path.join(ckpts, "4", "state", "_METADATA"), 0.5)
    with pytest.raises(CheckpointError) as err:
        train(toy_config(data=8), workdir, ToyTask())
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"no checkpoint under {ckpts} restores: step 6: ")
    assert os.path.join(ckpts, "6", "data", "process_0-of-1.json") + ": not valid JSON" in message
    assert os.path.join(ckpts, "4", "state", "_METADATA") + ": not valid JSON" in message
    # Nothing is moved or overwritten when no step restores.
    assert sorted(os.listdir(ckpts)) == ["4", "6"]
    assert not os.path.exists(os.path.join(workdir, "checkpoints_unreadable"))
    assert "skipped checkpoint" not in capsys.readouterr().err
    # Reading parameters alone (assign, export) needs no loader state: step 6 serves.
    state, step = load_trained(toy_config(data=8), workdir, ToyTask())
    assert step == 6 and int(state.step) == 6
    _truncate(os.path.join(ckpts, "6", "state", "_METADATA"), 0.5)
    with pytest.raises(CheckpointError, match="step 4: .*_METADATA: not valid JSON"):
        load_trained(toy_config(data=8), workdir, ToyTask())
