"""The whole loop in Chromium: sample buyers, run agents on the storefront, score the log."""

import json
import os

import ml_collections
import pytest

from simpersona_jax.features.default import ensure_default
from simpersona_jax.synth.generate import default_config


@pytest.mark.browser
def test_scripted_population_end_to_end(tmp_path):
    from simpersona_jax.simulate import format_report, simulate

    synth = default_config()
    synth.update(dict(num_stores=2, buyers_per_store=60, products_per_store=40, heldout_fraction=0.5))
    data_dir = str(tmp_path / "data")
    ensure_default(data_dir, synth)
    cfg = ml_collections.ConfigDict(dict(
        data_dir=data_dir, codes="", stores=(), buyers_per_store=6, control="none",
        policy="scripted", lm=dict(folder="", temperature=1.0, max_new_tokens=8), seed=0,
        out_dir=str(tmp_path / "sim"), server_mode="thread",
        driver=dict(concurrency=6, step_limit=30, action_timeout_s=20.0, episode_timeout_s=120.0)))
    report = simulate(cfg)
    assert report["episodes"] == 6 and sum(report["outcomes"].values()) == 6
    assert report["crash_rate"] == 0.0 and report["unparseable_action_rate"] == 0.0
    assert report["sim_sessions"] == 6  # every episode is one logged session of its own buyer
    assert 0.0 <= report["stratified_ara"] <= 1.0
    assert set(report["stratum_jsd"]) == set(report["stores"])
    with open(tmp_path / "sim" / "report.json") as f:
        assert json.load(f)["episodes"] == 6
    assert "stratified ARA" in format_report(report)
    assert os.path.exists(tmp_path / "sim" / "sim_buyers.parquet")
