"""lm/loss.py: the chunked loss equals sft.masked_loss on full logits, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpersona_jax.lm import loss as lm_loss
from simpersona_jax.lm import sft


def _inputs(b=2, t=12, e=8, v=40, seed=0):
    rng = np.random.RandomState(seed)
    hidden = jnp.asarray(rng.normal(size=(b, t, e)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(e, v)), jnp.float32)
    batch = {
        "targets": jnp.asarray(rng.randint(0, v, (b, t)), jnp.int32),
        "loss_mask": jnp.asarray(rng.rand(b, t) < 0.6, jnp.int32),
    }
    return hidden, w, batch


@pytest.mark.parametrize("chunk", [0, 1, 4, 5, 12])
def test_chunked_loss_matches_full_logits(chunk):
    hidden, w, batch = _inputs()

    def full(h, w):
        return sft.masked_loss(jnp.dot(h, w), batch)

    def chunked(h, w):
        return lm_loss.masked_loss(h, w, batch, chunk=chunk, dtype=jnp.float32)

    (ref, ref_m), ref_g = jax.value_and_grad(full, argnums=(0, 1), has_aux=True)(hidden, w)
    (got, got_m), got_g = jax.value_and_grad(chunked, argnums=(0, 1), has_aux=True)(hidden, w)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    for k in ref_m:
        np.testing.assert_allclose(got_m[k], ref_m[k], rtol=1e-6)
    for a, b in zip(got_g, ref_g):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_chunk_size_divides_the_sequence():
    assert lm_loss.chunk_size(12, 5) == 4
    assert lm_loss.chunk_size(12, 0) == 12
    assert lm_loss.chunk_size(7, 4) == 1


def test_no_full_logits_in_the_compiled_loss():
    """The compiled gradient never holds [B, T, V] logits, only [B, chunk, V] ones."""
    hidden, w, batch = _inputs(t=64, v=1000)
    fn = jax.jit(
        jax.grad(
            lambda h, w: lm_loss.masked_loss(h, w, batch, chunk=8, dtype=jnp.float32)[0],
            argnums=(0, 1),
        )
    )
    hlo = fn.lower(hidden, w).compile().as_text()
    assert "f32[2,8,1000]" in hlo
    assert "f32[2,64,1000]" not in hlo
