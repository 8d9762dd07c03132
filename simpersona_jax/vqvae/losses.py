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
    if positives_BxB is None:  # one positive per anchor: the diagonal, no BxB mask needed
        diag = jnp.diagonal(logits)
        rows = jax.nn.logsumexp(logits, axis=-1) - diag
        cols = jax.nn.logsumexp(logits, axis=0) - diag
        return 0.5 * (jnp.mean(rows) + jnp.mean(cols))
    pos = (positives_BxB | jnp.eye(n, dtype=bool)).astype(jnp.float32)

    def one_side(lg):
        logp = jax.nn.log_softmax(lg, axis=-1)
        return -jnp.mean(jnp.sum(pos * logp, axis=-1) / jnp.sum(pos, axis=-1))

    return 0.5 * (one_side(logits) + one_side(logits.T))


def augment(rng, x_BxI, dropout: float, noise_std: float):
    """A view of x: each entry zeroed with probability `dropout`, plus N(0, noise_std^2) noise.

    Both come from ONE draw of random bits (the mask compares 32-bit integers with the dropout
    threshold; the noise is the inverse normal CDF of a uniform, as jax.random.normal does):
    on CPU each threefry call costs about 1 ms for a 512 x 403 batch, so two calls made the
    augmentation a sixth of a training step."""
    bits = jax.random.bits(rng, (2,) + x_BxI.shape, jnp.uint32)
    threshold = min(round(dropout * 2**32), 2**32 - 1)
    keep = bits[0] >= jnp.uint32(threshold)
    mantissa = (bits[1] >> 9).astype(jnp.float32)  # 23 random bits, exact in float32
    u = (mantissa + 0.5) * (2.0**-22) - 1.0  # uniform on (-1, 1), symmetric, never +-1
    noise = 2.0**0.5 * jax.lax.erf_inv(u)
    return jnp.where(keep, x_BxI, 0.0) + noise_std * noise


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
    p = jax.ops.segment_sum(jnp.ones_like(codes_B, jnp.float32), codes_B, k) / codes_B.shape[0]
    return jnp.exp(-jnp.sum(p * jnp.log(jnp.maximum(p, 1e-12))))
