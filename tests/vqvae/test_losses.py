"""Loss terms of the behaviour-aware VQ-VAE."""

import jax
import jax.numpy as jnp
import numpy as np

from simpersona_jax.vqvae import losses


def test_block_mse_weights_each_block_mean():
    x = jnp.zeros((2, 5))
    x_hat = jnp.array([[1.0, 1.0, 2.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0, 2.0]])
    got = losses.block_mse(x_hat, x, ((0, 2, 1.0), (2, 5, 0.5)))
    np.testing.assert_allclose(got, 1.0 * 1.0 + 0.5 * 4.0)


def test_commitment_only_moves_the_encoder_output():
    z = jnp.array([[1.0, 2.0]])
    zq = jnp.array([[0.0, 0.0]])
    np.testing.assert_allclose(losses.commitment(z, zq), 5.0)
    g_z, g_q = jax.grad(losses.commitment, argnums=(0, 1))(z, zq)
    np.testing.assert_allclose(g_z, 2 * z)
    np.testing.assert_allclose(g_q, 0.0)


def test_info_nce_prefers_aligned_views_and_label_positives():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(16, 8)), jnp.float32)
    aligned = losses.info_nce(a, a + 0.01, 0.1)
    shuffled = losses.info_nce(a, a[::-1], 0.1)
    assert float(aligned) < 0.2 and float(shuffled) > 1.0
    # Label positives reward collapsing a label group; view positives reward distinct buyers.
    groups = jnp.repeat(jnp.arange(4), 4)
    same = groups[:, None] == groups[None, :]
    grouped = jax.nn.one_hot(groups, 16) * 5.0
    distinct = jnp.eye(16) * 5.0
    assert float(losses.info_nce(grouped, grouped, 0.1, same)) < float(
        losses.info_nce(distinct, distinct, 0.1, same)
    )
    assert float(losses.info_nce(distinct, distinct, 0.1)) < float(
        losses.info_nce(grouped, grouped, 0.1)
    )
    np.testing.assert_allclose(
        losses.info_nce(grouped, grouped, 0.1, same), np.log(4.0), rtol=1e-4
    )  # uniform over the 4 positives: the minimum


def test_aux_cross_entropy_and_accuracy():
    logits = {"purchase_hi": jnp.array([[10.0, -10.0], [-10.0, 10.0], [10.0, -10.0]])}
    ce, acc = losses.aux_cross_entropy(logits, {"purchase_hi": jnp.array([0, 1, 1])})
    np.testing.assert_allclose(acc["purchase_hi"], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(ce["purchase_hi"], 20.0 / 3, rtol=1e-4)


def test_perplexity_counts_effective_codes():
    np.testing.assert_allclose(losses.perplexity(jnp.arange(8) % 4, 16), 4.0, rtol=1e-6)
    np.testing.assert_allclose(losses.perplexity(jnp.zeros(8, jnp.int32), 16), 1.0, rtol=1e-6)


def test_info_nce_views_matches_the_masked_form():
    """The one-positive (diagonal) path equals the general masked form with no extra positives."""
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.normal(size=(12, 6)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(12, 6)), jnp.float32)
    none = jnp.zeros((12, 12), bool)
    np.testing.assert_allclose(
        losses.info_nce(a, b, 0.2), losses.info_nce(a, b, 0.2, none), rtol=1e-5
    )


def test_augment_drops_and_adds_gaussian_noise_at_the_configured_rates():
    x = jnp.ones((400, 250))
    view = np.asarray(losses.augment(jax.random.key(3), x, 0.1, 0.05))
    dropped = np.abs(view) < 0.5  # kept entries stay near 1, dropped ones near 0
    assert abs(dropped.mean() - 0.1) < 0.005
    noise = np.where(dropped, view, view - 1.0)
    assert abs(noise.mean()) < 0.001 and abs(noise.std() - 0.05) < 0.001
    # Gaussian tails: about 4.55% of draws beyond 2 sigma (a uniform would have none).
    assert abs((np.abs(noise) > 0.1).mean() - 0.0455) < 0.004
    np.testing.assert_array_equal(view, losses.augment(jax.random.key(3), x, 0.1, 0.05))
    assert not np.array_equal(view, losses.augment(jax.random.key(4), x, 0.1, 0.05))
    np.testing.assert_array_equal(losses.augment(jax.random.key(3), x, 0.0, 0.0), x)
