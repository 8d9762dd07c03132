"""Cluster-quality metrics and the k-means baseline."""

import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

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


def _old_purity(codes, labels):
    """quality()'s definitions before streaming, kept as the reference."""
    table = np.zeros((codes.max() + 1, labels.max() + 1), np.int64)
    np.add.at(table, (codes, labels), 1)
    return table.max(1).sum() / len(codes)


def _old_incoherence(codes, binary, tol):
    size = np.bincount(codes)
    hi = np.bincount(codes, weights=binary, minlength=len(size))
    used = size > 0
    return np.mean(np.minimum(hi[used], size[used] - hi[used]) / size[used] > tol)


def _random_buyers(n, k, seed, *, offset=0.0, unknown=0.2):
    rng = np.random.default_rng(seed)
    codes = rng.choice(np.arange(0, k, 3), n)  # every third code used only
    x = rng.normal(size=(n, 7)) + codes[:, None] * 0.3 + offset
    truth = np.where(rng.random(n) < unknown, -1, (codes + rng.integers(0, 2, n)) % 5)
    data = {"x": x, "stratum": rng.integers(0, 5, n), "true_type": truth}
    data.update({name: rng.integers(0, 2, n) for name in metrics.BINARY_LABELS})
    return codes, data


def _streamed(codes, data, k, cuts, tol=0.1):
    acc = metrics.QualityAccumulator(k, incoherence_tol=tol)
    for a, b in itertools.pairwise(cuts):
        acc.update(codes[a:b], {key: v[a:b] for key, v in data.items()})
    return acc.result()


def _reference(codes, data, k, tol=0.1):
    known = data["true_type"] >= 0
    used = len(np.unique(codes))
    ch = skm.calinski_harabasz_score(data["x"], codes) if 1 < used < len(codes) else np.nan
    per = {n: _old_incoherence(codes, data[n], tol) for n in metrics.BINARY_LABELS}
    p = np.bincount(codes, minlength=k) / len(codes)
    nz = p[p > 0]
    out = {
        "calinski_harabasz": ch,
        "stratum_purity": _old_purity(codes, data["stratum"]),
        "incoherence": np.mean(list(per.values())),
        **{f"incoherence_{n}": v for n, v in per.items()},
        "perplexity": np.exp(-(nz * np.log(nz)).sum()),
        "used_codes": used,
        "dead_codes": k - used,
    }
    if known.any():
        out["nmi_true_type"] = skm.normalized_mutual_info_score(
            data["true_type"][known], codes[known]
        )
        out["ari_true_type"] = skm.adjusted_rand_score(data["true_type"][known], codes[known])
    return out


def _assert_same(got, want):
    assert set(got) == set(want)
    for key, v in want.items():
        np.testing.assert_allclose(got[key], v, rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_streamed_quality_equals_sklearn_and_old_definitions(offset):
    codes, data = _random_buyers(700, 20, seed=1, offset=offset)
    cuts = [0, 1, 1, 64, 300, 301, 700]  # uneven batches, one empty
    got = _streamed(codes, data, 20, cuts)
    _assert_same(got, _reference(codes, data, 20))
    assert got["dead_codes"] == 13
    _assert_same(metrics.quality(codes, data, 20), got)  # one code path, fed once


def test_streamed_quality_edge_cases():
    codes, data = _random_buyers(300, 9, seed=2, unknown=1.0)  # no buyer of known type
    got = _streamed(codes, data, 9, [0, 100, 300])
    assert "nmi_true_type" not in got and "ari_true_type" not in got
    _assert_same(got, _reference(codes, data, 9))
    del data["true_type"]  # no true types at all
    assert "nmi_true_type" not in _streamed(codes, data, 9, [0, 300])
    one = np.zeros(300, np.int64)  # one used code: no CH
    data["true_type"] = np.arange(300) % 3
    got = _streamed(one, data, 9, [0, 7, 300])
    assert np.isnan(got["calinski_harabasz"]) and got["used_codes"] == 1
    _assert_same(got, _reference(one, data, 9))
    data["true_type"] = np.zeros(300, np.int64)  # one type, one code: perfect agreement
    _assert_same(_streamed(one, data, 9, [0, 150, 300]), _reference(one, data, 9))
    each = np.arange(5)  # every buyer its own code: no CH either
    small = {key: v[:5] for key, v in data.items()}
    assert np.isnan(_streamed(each, small, 9, [0, 2, 5])["calinski_harabasz"])
    with pytest.raises(ValueError, match="codes outside"):
        metrics.quality(np.full(300, 9), data, 9)


def test_contingency_metrics_match_sklearn_on_many_tables():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 200))
        truth, pred = rng.integers(0, rng.integers(1, 6), n), rng.integers(0, rng.integers(1, 9), n)
        table = metrics.count_table(truth, pred)
        np.testing.assert_allclose(
            metrics.nmi_of(table), skm.normalized_mutual_info_score(truth, pred), rtol=1e-12
        )
        np.testing.assert_allclose(
            metrics.ari_of(table), skm.adjusted_rand_score(truth, pred), rtol=1e-12
        )


def test_a_label_out_of_range_is_named():
    acc = metrics.QualityAccumulator(4)
    batch = {"x": np.zeros((3, 2)), "stratum": np.array([0, -1, 2])}
    with pytest.raises(ValueError, match="label 'stratum' has value -1"):
        acc.update(np.array([0, 1, 2]), batch)
