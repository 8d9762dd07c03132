"""Loss terms of the behaviour-aware VQ-VAE (all means over the global batch)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from simpersona_jax.vqvae.codebook import l2_normalize


def block_mse(x_hat_BxI, x_BxI, blocks: tuple[tuple[int, int, float], ...]):
    """Weighted sum over feature blocks (start, stop, weight) of the block's mean squared error."""
    total = 0.0
    for start, stop, w in blocks:
        total = total + w * jnp.mean((x_hat_BxI[:, start:stop] - x_BxI[:, start:stop]) ** 2)
    return total


def commitment(z_BxD, zq_BxD):
    """||z - sg(z_q)||^2 per latent, averaged: pulls the encoder towards its code."""
    return jnp.mean(jnp.sum((z_BxD - jax.lax.stop_gradient(zq_BxD)) ** 2, axis=-1))


def info_nce(a_BxD, b_BxD, temperature: float, positives_BxB=None):
    """Symmetric InfoNCE between two views (row i of a and b are one buyer).

    positives_BxB (optional bool): extra positives, e.g. buyers sharing behaviour labels; the
    loss is then the supervised-contrastive mean over all positives of each anchor.
    """
    a, b = l2_normalize(a_BxD), l2_normalize(b_BxD)
    logits = (a @ b.T) / temperature
    n = logits.shape[0]
    pos = (
        jnp.eye(n, dtype=bool) if positives_BxB is None else positives_BxB | jnp.eye(n, dtype=bool)
    )
    pos = pos.astype(jnp.float32)

    def one_side(lg):
        logp = jax.nn.log_softmax(lg, axis=-1)
        return -jnp.mean(jnp.sum(pos * logp, axis=-1) / jnp.sum(pos, axis=-1))

    return 0.5 * (one_side(logits) + one_side(logits.T))


def aux_cross_entropy(logits: dict, labels: dict):
    """Per-head mean cross-entropy and accuracy."""
    ce, acc = {}, {}
    for k, lg in logits.items():
        y = labels[k].astype(jnp.int32)
        ce[k] = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, y))
        acc[k] = jnp.mean((jnp.argmax(lg, -1) == y).astype(jnp.float32))
    return ce, acc


def perplexity(codes_B, k: int):
    """exp(entropy) of the batch's code usage (k = all codes used equally)."""
    p = jax.nn.one_hot(codes_B, k, dtype=jnp.float32).mean(0)
    return jnp.exp(-jnp.sum(p * jnp.log(jnp.maximum(p, 1e-12))))
