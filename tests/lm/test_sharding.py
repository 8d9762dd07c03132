"""On 8 CPU devices the loop's compiled LM train step has the intended shardings: the model's
activation constraints take effect (training.mesh.activate), logits and MLP activations are
split over 'tensor', the batch over ('data', 'fsdp'), parameters over 'fsdp' (gathered for use)."""

import jax
import pytest

from simpersona_jax.lm.config import LMConfig
from simpersona_jax.lm.experiment import sft_config
from simpersona_jax.lm.task import SFTTask
from simpersona_jax.training import compile as compile_lib


def _config(mode="all", mesh=None):
    c = sft_config()
    c.global_batch_size = 8
    c.data.seq_len = 64
    c.persona.num_personas = 8
    c.train.mode = mode
    c.lm.loss_chunk = 16
    c.mesh = mesh or {"data": 2, "fsdp": 2, "tensor": 2}
    return c


def _compiled(mode="all", mesh=None):
    c = _config(mode, mesh)
    cfg = LMConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=192,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
    )
    task = SFTTask.for_shapes(c, cfg, 512)
    assert task.cfg.vocab_size == 640  # 520 ids padded to persona.vocab_multiple=128
    return compile_lib.compile_train_step(c, task, jax.devices()[:8])


@pytest.fixture(scope="module")
def stage2():
    return _compiled()


def test_logits_and_mlp_activations_are_sharded_on_tensor(stage2):
    hlo = stage2.hlo
    # Per device: batch 8 / (data 2 x fsdp 2) = 2 rows; one loss chunk of 16 positions; vocab 640 / 2.
    assert "f32[2,16,320]" in hlo
    assert "f32[2,16,640]" not in hlo and "f32[8,16,640]" not in hlo
    # MLP hidden 192 / tensor 2, batch 2 per device.
    assert "f32[2,64,96]" in hlo
    assert "f32[2,64,192]" not in hlo


@pytest.fixture(scope="module")
def fsdp_only():
    return _compiled(mesh={"data": 1, "fsdp": 8, "tensor": 1})


def test_fsdp_mesh_shards_activations_on_batch(fsdp_only):
    """On an fsdp-only mesh, sharding propagation alone leaves the logits whole on every device;
    the constraints (in effect only inside mesh + rules) split them by batch."""
    assert fsdp_only.lowered.as_text().count("sharding_constraint") >= 5
    assert "f32[1,16,640]" in fsdp_only.hlo
    assert "f32[8,16,640]" not in fsdp_only.hlo


def test_parameters_stay_sharded_and_are_gathered(fsdp_only):
    colls = compile_lib.collectives(fsdp_only.hlo)
    assert colls.get("all-gather", (0, 0))[0] > 0
    mem = compile_lib.memory(fsdp_only)
    cfg = LMConfig(
        vocab_size=640,
        hidden_size=64,
        intermediate_size=192,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
    )
    replicated_state = 3 * 4 * cfg.num_params()  # params + Adam mu, nu in f32 on every device
    assert mem["argument"] < 0.5 * replicated_state
