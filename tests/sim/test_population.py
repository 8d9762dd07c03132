"""Sampling simulated buyers from a store's type distribution, and the persona controls."""

import numpy as np
import polars as pl
import pytest

from simpersona_jax.sim.population import apply_control, sample_buyers

REAL = pl.DataFrame(
    {
        "store_id": ["a"] * 4 + ["b"] * 2,
        "buyer_id": ["a1", "a2", "a3", "a4", "b1", "b2"],
        "code": [5, 5, 9, 7, 1, 2],
        "stratum": [0, 0, 3, 4, 0, 0],
        "true_type": [0, 0, 1, 2, 3, 3],
    }
).with_columns(pl.col("code", "stratum", "true_type").cast(pl.Int32))


def test_codes_follow_the_store_distribution_and_keep_source_strata():
    sim = sample_buyers(REAL, ["a"], 4000, seed=0)
    share = sim["code"].value_counts(normalize=True).sort("code")
    assert dict(share.rows()) == pytest.approx({5: 0.5, 7: 0.25, 9: 0.25}, abs=0.03)
    joined = sim.join(REAL, left_on="source_buyer_id", right_on="buyer_id")
    assert (joined["stratum"] == joined["stratum_right"]).all()
    assert sim["sim_buyer_id"].n_unique() == 4000
    assert sample_buyers(REAL, ["a"], 50, seed=0).equals(sample_buyers(REAL, ["a"], 50, seed=0))
    with pytest.raises(ValueError, match="no assigned buyers"):
        sample_buyers(REAL, ["zzz"], 3, seed=0)


def test_controls():
    sim = sample_buyers(REAL, ["a", "b"], 200, seed=1)
    assert (apply_control(sim, REAL, "matched", 0)["persona"] == sim["code"]).all()
    assert (apply_control(sim, REAL, "none", 0)["persona"] == -1).all()
    mis = apply_control(sim, REAL, "mismatched", 0).filter(pl.col("store_id") == "a")
    # a persona from the same store but another stratum: stratum 0 buyers get 9 or 7, never 5
    s0 = mis.filter(pl.col("stratum") == 0)["persona"].to_numpy()
    assert set(np.unique(s0)) <= {7, 9} and len(s0) > 0
    # store b has one stratum only: nothing to mismatch with, the own code stays
    b = apply_control(sim, REAL, "mismatched", 0).filter(pl.col("store_id") == "b")
    assert (b["persona"] == b["code"]).all()
    with pytest.raises(ValueError, match="control must be"):
        apply_control(sim, REAL, "shuffled", 0)


def test_text_control_describes_the_code_in_words():
    real = REAL.with_columns(
        purchase_hi=pl.Series([1, 1, 0, 0, 1, 1], dtype=pl.Int32),
        explore_hi=pl.Series([0, 0, 1, 1, 0, 0], dtype=pl.Int32),
        engage_hi=pl.Series([1, 1, 1, 0, 0, 0], dtype=pl.Int32),
    )
    sim = apply_control(sample_buyers(real, ["a"], 20, seed=0), real, "text", 0)
    assert (sim["persona"] == -1).all()
    text = dict(zip(sim["code"].to_list(), sim["persona_text"].to_list()))
    assert text[5] == (
        "A shopper who buys often, looks at few products, is very active; "
        "buyers like this are 100% purchaser (checkout_completed)."
    )
    assert "window shopper" in text[9] and "rarely buys" in text[9]
