"""Straight-through gradient, EMA arithmetic, dead-code revival, k-means++ init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpersona_jax.vqvae import codebook as cb


def test_quantize_picks_nearest_and_passes_gradient_straight_through():
    embed = jnp.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = jnp.array([[1.0, 1.0], [9.0, 2.0], [-1.0, 7.0]])
    zq_st, codes, zq = cb.quantize(z, embed)
    np.testing.assert_array_equal(codes, [0, 1, 2])
    np.testing.assert_allclose(zq_st, embed[np.array([0, 1, 2])])
    np.testing.assert_allclose(zq, zq_st)
    w = jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    g_z = jax.grad(lambda z: jnp.sum(w * cb.quantize(z, embed)[0]))(z)
    np.testing.assert_allclose(g_z, w)  # identity Jacobian: d loss/d z_q copied to z
    g_e = jax.grad(lambda e: jnp.sum(w * cb.quantize(z, e)[0]))(embed)
    np.testing.assert_allclose(g_e, 0.0)  # the codebook learns by EMA only


def test_cosine_quantize_uses_directions():
    embed = jnp.array([[1.0, 0.0], [0.0, 5.0]])
    z = jnp.array([[100.0, 1.0], [0.1, 0.2]])
    _, codes, zq = cb.quantize(z, embed, cosine=True)
    np.testing.assert_array_equal(codes, [0, 1])
    np.testing.assert_allclose(jnp.linalg.norm(zq, axis=-1), 1.0, rtol=1e-6)


def test_ema_update_arithmetic():
    state = {
        "embed": jnp.array([[0.0, 0.0], [4.0, 4.0]]),
        "cluster_size": jnp.array([2.0, 1.0]),
        "embed_sum": jnp.array([[0.0, 0.0], [4.0, 4.0]]),
    }
    z = jnp.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])
    codes = jnp.array([0, 0, 1])
    decay, eps = 0.9, 1e-5
    new = cb.ema_update(state, z, codes, decay=decay, eps=eps)
    size = np.array([0.9 * 2 + 0.1 * 2, 0.9 * 1 + 0.1 * 1])
    sums = np.array([[0.1 * 4, 0.1 * 4], [0.9 * 4 + 0.1 * 5, 0.9 * 4 + 0.1 * 5]])
    n = size.sum()
    smoothed = (size + eps) / (n + 2 * eps) * n
    np.testing.assert_allclose(new["cluster_size"], size, rtol=1e-6)
    np.testing.assert_allclose(new["embed_sum"], sums, rtol=1e-6)
    np.testing.assert_allclose(new["embed"], sums / smoothed[:, None], rtol=1e-5)


def test_ema_converges_to_cluster_means():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-3, 0.1, (50, 2)), rng.normal(3, 0.1, (50, 2))])
    state = cb.init_state(jnp.array([[-1.0, -1.0], [1.0, 1.0]]))
    for _ in range(300):
        codes = cb.nearest(jnp.asarray(z), state["embed"])
        state = cb.ema_update(state, jnp.asarray(z), codes, decay=0.9)
    np.testing.assert_allclose(state["embed"], [z[:50].mean(0), z[50:].mean(0)], atol=1e-2)


def test_revive_dead_replaces_only_rarely_used_codes_with_batch_latents():
    state = cb.init_state(jnp.arange(8.0).reshape(4, 2), jnp.array([5.0, 0.01, 3.0, 0.0]))
    z = jnp.array([[100.0, 100.0], [200.0, 200.0], [300.0, 300.0]])
    new, n_dead = cb.revive_dead(state, z, jax.random.key(0), threshold=0.5)
    assert int(n_dead) == 2
    np.testing.assert_array_equal(new["embed"][np.array([0, 2])], state["embed"][np.array([0, 2])])
    for i in (1, 3):
        assert any(np.allclose(new["embed"][i], row) for row in np.asarray(z))
        assert float(new["cluster_size"][i]) == 0.5
        np.testing.assert_allclose(new["embed_sum"][i], new["embed"][i] * 0.5)
    np.testing.assert_array_equal(new["cluster_size"][np.array([0, 2])], [5.0, 3.0])


def test_kmeans_plus_plus_seeds_one_centre_per_blob():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [50, 0], [0, 50], [50, 50], [-50, 20]], np.float32)
    x = np.concatenate([c + rng.normal(0, 0.5, (40, 2)) for c in centres]).astype(np.float32)
    for seed in range(3):
        got, counts = cb.kmeans_plus_plus(jax.random.key(seed), jnp.asarray(x), 5, iters=0)
        nearest_blob = np.argmin(((np.asarray(got)[:, None] - centres[None]) ** 2).sum(-1), 1)
        assert sorted(nearest_blob.tolist()) == [0, 1, 2, 3, 4]
        assert all(any(np.allclose(c, row) for row in x) for c in np.asarray(got))  # data points
        np.testing.assert_array_equal(np.sort(np.asarray(counts)), [40] * 5)
    refined, _ = cb.kmeans_plus_plus(jax.random.key(0), jnp.asarray(x), 5, iters=5)
    np.testing.assert_allclose(
        np.sort(np.asarray(refined), 0),
        np.sort(np.stack([x[i * 40 : (i + 1) * 40].mean(0) for i in range(5)]), 0),
        atol=1e-4,
    )


def test_kmeans_plus_plus_needs_enough_points():
    with pytest.raises(ValueError, match="at least k=8"):
        cb.kmeans_plus_plus(jax.random.key(0), jnp.zeros((4, 2)), 8)


def test_first_argmin_is_argmin_with_ties_to_the_lowest_index():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 4, size=(64, 9)).astype(np.float32)  # many exact ties
    idx, best = cb.first_argmin(jnp.asarray(d))
    np.testing.assert_array_equal(np.asarray(idx), np.argmin(d, axis=1))
    np.testing.assert_array_equal(np.asarray(best), d.min(1))
    z = jnp.asarray(rng.normal(size=(50, 3)), jnp.float32)
    embed = jnp.asarray(rng.normal(size=(7, 3)), jnp.float32)
    brute = ((np.asarray(z)[:, None] - np.asarray(embed)[None]) ** 2).sum(-1)
    codes, dist = cb.nearest_with_distance(z, embed)
    np.testing.assert_array_equal(np.asarray(codes), brute.argmin(1))
    np.testing.assert_allclose(np.asarray(dist), brute.min(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(cb.nearest(z, embed)), brute.argmin(1))
