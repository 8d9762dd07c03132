"""Cluster-quality metrics and the k-means baseline."""

import numpy as np

from simpersona_jax.vqvae import metrics

from .tiny import synthetic_buyers


def test_purity_and_incoherence_by_hand():
    codes = np.array([0, 0, 0, 0, 1, 1, 2])
    strata = np.array([1, 1, 1, 2, 3, 3, 0])
    assert metrics.purity(codes, strata) == 6 / 7
    label = np.array([1, 1, 1, 0, 0, 0, 1])  # cluster 0 minority 25%, others pure
    assert metrics.incoherence(codes, label, tol=0.1) == 1 / 3
    assert metrics.incoherence(codes, label, tol=0.3) == 0.0


def test_code_usage():
    u = metrics.code_usage(np.array([0, 0, 1, 1]), 4)
    assert u["used_codes"] == 2 and u["dead_codes"] == 2
    np.testing.assert_allclose(u["perplexity"], 2.0)


def test_quality_true_clusters_beat_random_and_kmeans_finds_blobs():
    data = synthetic_buyers(n=400, types=4)
    truth = data["true_type"]
    good = metrics.quality(truth, data, k=8)
    bad = metrics.quality(np.random.default_rng(0).integers(0, 4, 400), data, k=8)
    assert good["nmi_true_type"] == 1.0 and good["ari_true_type"] == 1.0
    assert good["calinski_harabasz"] > 10 * bad["calinski_harabasz"]
    assert good["incoherence_purchase_hi"] == 0.0 and bad["incoherence_purchase_hi"] == 1.0
    km = metrics.kmeans_baseline(data["x"], data["x"], 4, seed=0)
    assert metrics.quality(km, data, k=4)["ari_true_type"] > 0.9
    table = metrics.format_table({"truth": good, "random": bad})
    assert "truth" in table and "NMI" in table and "*" in table
    c = metrics.compare(good, bad)
    assert c["calinski_harabasz"] == c["nmi_true_type"] == "win" and c["dead_codes"] == "tie"
    v = metrics.verdict(good, bad)
    assert v.startswith("VQ-VAE vs k-means: better on") and "ties: " in v and "dead_codes" in v
