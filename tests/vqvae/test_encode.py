"""Assignment is deterministic and independent of the batch size."""

import jax
import numpy as np

from simpersona_jax.vqvae import encode
from simpersona_jax.vqvae.codebook import nearest
from simpersona_jax.vqvae.task import VQVAETask

from .tiny import tiny_arrays, tiny_config


def test_assignment_deterministic_and_batch_size_independent():
    cfg = tiny_config()
    task = VQVAETask(cfg, tiny_arrays(n=300))
    variables = jax.jit(task.init)(jax.random.key(0), task.init_sample())
    params = variables["params"]
    import flax.linen as nn

    params, embed = nn.meta.unbox(params), nn.meta.unbox(variables["codebook"])["embed"]
    x = task.arrays("eval")["x"]
    fn = encode.make_assign_fn(task.model, cosine=False, chunk=16)
    ref_codes, ref_dist = encode.assign_array(fn, params, embed, x, batch_size=300, chunk=16)
    assert ref_codes.shape == (300,) and ref_codes.dtype == np.int32
    for bs in (1, 7, 16, 64, 299):
        codes, dist = encode.assign_array(fn, params, embed, x, batch_size=bs, chunk=16)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(dist, ref_dist)
    again, _ = encode.assign_array(fn, params, embed, x, batch_size=300, chunk=16)
    np.testing.assert_array_equal(again, ref_codes)
    # Same answer as the training-time nearest-code rule.
    z = task.model.apply({"params": params}, x, method=type(task.model).encode)
    np.testing.assert_array_equal(np.asarray(nearest(z, embed)), ref_codes)
    assert len(np.unique(ref_codes)) > 1
