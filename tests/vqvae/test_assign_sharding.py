"""The assignment runs in one pass with its rows split over the devices: no per-chunk loop that
would run every chunk on every device, and outputs that stay sharded on 'data'."""

import flax.linen as nn
import jax
import numpy as np

from simpersona_jax.vqvae import encode
from simpersona_jax.vqvae.task import build_model

from .tiny import tiny_config


def test_assignment_is_sharded_on_data_without_a_loop():
    cfg = tiny_config()
    model = build_model(cfg.model)
    x = np.random.RandomState(0).normal(size=(64, int(cfg.model.input_dim))).astype(np.float32)
    params = nn.meta.unbox(model.init(jax.random.key(0), x[:8]))["params"]
    embed = jax.random.normal(
        jax.random.key(1), (int(cfg.model.codebook_size), int(cfg.model.latent_dim))
    )
    assign = encode.Assigner(model, cosine=False, chunk=16)
    assert len(jax.local_devices()) == 8
    # 8 rows on each of the 8 devices at least; then a power of two up to a chunk, then chunks.
    big = encode.Assigner(model, cosine=False, chunk=1024)
    assert [big.padded_size(n) for n in (1, 64, 65, 256, 300, 1024, 1500)] == [
        64,
        64,
        128,
        256,
        512,
        1024,
        2048,
    ]
    codes, dist = assign(params, embed, x)
    for out in (codes, dist):
        assert out.sharding.spec == jax.sharding.PartitionSpec("data")
        assert {s.data.shape for s in out.addressable_shards} == {(8,)}
    hlo = assign.fn.lower(params, embed, x).compile().as_text()
    assert " while(" not in hlo
    z = model.apply({"params": params}, x, method=type(model).encode)
    ref = np.argmin(((np.asarray(z)[:, None] - np.asarray(embed)[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(np.asarray(codes), ref)
