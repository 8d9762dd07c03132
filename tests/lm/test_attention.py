"""lm/attention.py: the flash-style causal path (blocked forward, recomputing backward) against
plain softmax attention differentiated by JAX, on packed segments with padding and grouped heads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpersona_jax.lm import attention

B, T, H, KV, D = 2, 200, 4, 2, 16  # T > CAUSAL_BLOCK


def _reference(q, k, v, mask):
    """softmax(q.k / sqrt(D) masked) . v, all f32, keys/values repeated per query group."""
    k = jnp.repeat(k, H // KV, axis=1).astype(jnp.float32)  # [B, H, S, D]
    v = jnp.repeat(v, H // KV, axis=1).astype(jnp.float32)
    s = jnp.einsum("bthd,bhsd->bhts", q.astype(jnp.float32), k) / np.sqrt(D)
    p = jax.nn.softmax(jnp.where(mask[:, None], s, attention.NEG_INF), -1)
    return jnp.einsum("bhts,bhsd->bthd", p, v)


def _inputs(dtype):
    rng = np.random.RandomState(0)
    q = rng.normal(size=(B, T, H, D)) * 2
    k = rng.normal(size=(B, KV, T, D)) * 2
    v = rng.normal(size=(B, KV, T, D))
    seg = np.zeros((B, T), np.int32)
    seg[0, :90], seg[0, 90:170] = 1, 2  # two packed sessions, then padding
    seg[1, :] = 1
    causal = np.tril(np.ones((T, T), bool))
    mask = causal & (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] != 0)
    cot = rng.normal(size=(B, T, H, D))
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return cast(q), cast(k), cast(v), jnp.asarray(mask), cast(cot), seg


def _vjp(fn, q, k, v, mask, cot):
    out, pull = jax.vjp(lambda q, k, v: fn(q, k, v, mask), q, k, v)
    return out, pull(cot)


@pytest.mark.parametrize("scores_f32,blocks", [(True, 4), (False, 4), (True, 1), (True, 3)])
def test_flash_matches_softmax_attention_f32(scores_f32, blocks):
    """T=200: 4 blocks of 64 (the last one short), one block, 3 blocks of 67."""
    q, k, v, mask, cot, seg = _inputs(jnp.float32)
    flash = jax.jit(lambda q, k, v, m: attention.attend(q, k, v, m, "xla", scores_f32, blocks))
    out, grads = _vjp(flash, q, k, v, mask, cot)
    ref, ref_grads = _vjp(_reference, q, k, v, mask, cot)
    live = (seg != 0)[:, :, None, None]  # padding rows attend to nothing: their output is moot
    np.testing.assert_allclose(np.where(live, out, 0), np.where(live, ref, 0), atol=2e-5)
    cot_live = jnp.where(live, cot, 0)
    _, grads = _vjp(flash, q, k, v, mask, cot_live)
    _, ref_grads = _vjp(_reference, q, k, v, mask, cot_live)
    for name, g, r in zip("qkv", grads, ref_grads):
        np.testing.assert_allclose(g, r, atol=5e-5, err_msg=f"d{name}")


def test_flash_in_bf16_close_to_f32():
    q, k, v, mask, cot, seg = _inputs(jnp.bfloat16)
    live = jnp.asarray((seg != 0)[:, :, None, None])
    cot = jnp.where(live, cot, 0)
    got = _vjp(lambda *a: attention.attend(*a, "xla", True, 4), q, k, v, mask, cot)
    f32 = [x.astype(jnp.float32) for x in (q, k, v)]
    ref = _vjp(_reference, *f32, mask, cot.astype(jnp.float32))
    for g, r in zip([got[0], *got[1]], [ref[0], *ref[1]]):
        g = np.asarray(g.astype(jnp.float32))
        rel = np.linalg.norm(g - np.asarray(r)) / np.linalg.norm(r)
        assert rel < 0.02, rel


def test_decode_block_matches_reference():
    """Queries against a longer cache (one masked block, no custom backward)."""
    q, k, v, mask, _, _ = _inputs(jnp.float32)
    got = attention.attend(q[:, -3:], k, v, mask[:, -3:], "xla", True, 4)
    np.testing.assert_allclose(got, _reference(q, k, v, mask)[:, -3:], atol=2e-5)


def test_padding_rows_pass_no_gradient():
    """A row that sees no key (segment 0) contributes nothing to dq, dk, dv."""
    q, k, v, mask, cot, seg = _inputs(jnp.float32)
    pad_only = jnp.where(jnp.asarray(seg == 0)[:, :, None, None], cot, 0)
    assert float(jnp.abs(pad_only).sum()) > 0
    _, grads = _vjp(lambda *a: attention.attend(*a, "xla", True, 4), q, k, v, mask, pad_only)
    for g in grads:
        assert float(jnp.abs(g).max()) == 0.0


def test_dot_product_attention_path_takes_the_same_mask():
    """lm.attention_impl='jax' (and 'cudnn', the same call with the GPU kernel) gets the packed
    segment mask in jax.nn.dot_product_attention's layout: same output as the flash path."""
    q, k, v, mask, _, seg = _inputs(jnp.float32)
    live = (seg != 0)[:, :, None, None]
    got = attention.attend(q, k, v, mask, "jax", True, 4)
    want = attention.attend(q, k, v, mask, "xla", True, 4)
    np.testing.assert_allclose(np.where(live, got, 0), np.where(live, want, 0), atol=2e-5)
