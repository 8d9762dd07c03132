"""Deviceless TPU compile (libtpu, installed by the `tpu` extra): a tiny LM's real train step
compiled for v5e:2x2 fits, gathers its fsdp-sharded parameters, and the 1-/2-layer probes
correct the FLOPs of the scanned layers (XLA counts a loop body once)."""

import pytest

pytest.importorskip("libtpu")

from simpersona_jax import sizing  # noqa: E402
from simpersona_jax.lm.config import LMConfig  # noqa: E402
from simpersona_jax.lm.experiment import sft_config  # noqa: E402
from simpersona_jax.training import chips  # noqa: E402
from simpersona_jax.training import compile as compile_lib


def _config():
    c = sft_config()
    c.global_batch_size = 8
    c.data.seq_len = 64
    c.persona.num_personas = 8
    c.lm.dtype = "bfloat16"
    c.lm.loss_chunk = 32
    c.mesh = {"data": 1, "fsdp": 4, "tensor": 1}
    c.lm.model.num_layers = 4
    c.lm.model.unroll_layers = False
    return c


def test_tiny_lm_compiles_for_v5e_with_scan_corrected_flops():
    c = _config()
    devices = compile_lib.topology_devices("v5e:2x2")
    assert len(devices) == 4
    r = sizing.check(c, devices, chips.for_topology("v5e:2x2"), model=None, probe=True)
    # 2048 BPE ids + 8 personas, padded to 128 rows.
    assert r["params"] == LMConfig(vocab_size=2176, **dict(c.lm.model)).num_params()
    assert 0 < r["memory"]["peak"] < 0.9 * r["chip"].hbm_bytes and sizing.fits(r, 0.9)
    assert r["collectives"]["all-gather"][0] > 0  # fsdp: parameters gathered for use
    assert r["roofline"]["step_s"] > 0 and 0 < r["roofline"]["mfu"] < 1
    # 4 scanned layers: the compiled count holds one layer body, the probes' extrapolation all 4.
    corrected, scanned = r["cost"].flops, r["compiled_cost"].flops
    assert corrected > 1.5 * scanned
    # Within 25% of the analytic count (6N + attention; XLA also counts softmax, norms, AdamW).
    analytic = r["model_flops"] / r["devices"]
    assert 0.9 * analytic < corrected < 1.25 * analytic
