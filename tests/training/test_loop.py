"""The generic loop: sharded == single device, kill-and-resume is exact, non-finite stops."""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from simpersona_jax.training import NonFiniteLossError, train

from .toy import ToyTask, toy_config


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_eight_device_data_fsdp_matches_single_device(tmp_path):
    assert jax.device_count() == 8
    single = train(toy_config(data=1, num_devices=1), str(tmp_path / "one"), ToyTask())
    sharded = train(toy_config(data=2, fsdp=4), str(tmp_path / "eight"), ToyTask())
    assert single.mesh.devices.size == 1 and sharded.mesh.devices.size == 8
    kernel = sharded.state.params["Dense_0"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
    for a, b in zip(_leaves(single.state), _leaves(sharded.state)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert int(sharded.state.step) == 8
    assert sharded.eval["mse"] < 1.0
    assert os.listdir(tmp_path / "eight" / "tensorboard")


def test_kill_and_resume_gives_identical_params_and_data_order(tmp_path):
    full_log, part_log = [], []
    full = train(toy_config(data=4, fsdp=2), str(tmp_path / "full"), ToyTask(log=full_log))
    first = train(
        toy_config(data=4, fsdp=2),
        str(tmp_path / "resumed"),
        ToyTask(log=part_log),
        stop_after_steps=5,
    )
    assert int(first.state.step) == 5 and first.report is None
    # A fresh process would build everything again: new task, new iterator, restore from disk.
    second = train(toy_config(data=4, fsdp=2), str(tmp_path / "resumed"), ToyTask(log=part_log))
    assert second.resumed_from == 5
    assert len(part_log) == len(full_log) == 8
    for a, b in zip(full_log, part_log):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(full.state), _leaves(second.state)):
        np.testing.assert_array_equal(a, b)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    with pytest.raises(NonFiniteLossError, match="Last good checkpoint: step 4"):
        train(toy_config(data=8), workdir, ToyTask(nan_at_step=5))
    mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
    assert mngr.latest_step() == 4
    mngr.close()
