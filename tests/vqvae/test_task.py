"""The VQ-VAE task in the generic loop: sharded == single device, it learns, it resumes."""

import jax
import numpy as np

from simpersona_jax.training import train
from simpersona_jax.vqvae.task import VQVAETask

from .tiny import tiny_arrays, tiny_config


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def test_eight_devices_data_fsdp_match_one_device(tmp_path):
    arrays = tiny_arrays()
    one = train(
        tiny_config(data=1, num_devices=1), str(tmp_path / "one"), VQVAETask(tiny_config(), arrays)
    )
    eight = train(
        tiny_config(data=2, fsdp=4), str(tmp_path / "eight"), VQVAETask(tiny_config(), arrays)
    )
    hidden = eight.state.params["encoder"]["dense_0"]["kernel"]
    assert hidden.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
    assert int(eight.state.step) == 6
    # The EMA codebook saw the whole global batch on every device (cross-device reduction).
    for a, b in zip(_leaves(one.state), _leaves(eight.state)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(one.eval["stratum_purity"], eight.eval["stratum_purity"])
    assert "purity" in one.report and "kmeans" not in one.report  # baseline off in tiny config


def test_training_reduces_loss_and_uses_codes(tmp_path):
    cfg = tiny_config(data=8)
    cfg.num_steps = 60
    cfg.log_every_steps = 5
    cfg.checkpoint.every_steps = 60
    cfg.optimizer.learning_rate = 1e-2
    result = train(cfg, str(tmp_path / "long"), VQVAETask(cfg, tiny_arrays()))
    first, last = result.history[0][1], result.history[-1][1]
    assert last["loss"] < 0.7 * first["loss"] and last["recon"] < first["recon"]
    assert result.eval["used_codes"] >= 4
    assert result.eval["nmi_true_type"] > 0.8  # 4 well separated types, 8 codes
    assert result.eval["stratum_purity"] > 0.9
