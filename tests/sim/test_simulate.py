"""The whole loop in Chromium: sample buyers once, run every arm on the storefront, report."""

import json

import ml_collections
import polars as pl
import pytest

from simpersona_jax.features.default import ensure_default
from simpersona_jax.synth.generate import default_config


class FakeLM:
    """An LM policy stand-in: one unparseable action, then stop(); counts text-persona prompts."""

    def __init__(self):
        self.stats = {"truncated_prompts": 0}

    def act(self, requests):
        self.stats["truncated_prompts"] += sum(r.persona_text is not None for r in requests)
        return ["stop()" if r.history else "add to cart please" for r in requests]


def _cfg(tmp_path, data_dir, arms):
    return ml_collections.ConfigDict(
        dict(
            data=dict(dir=data_dir),
            codes="",
            stores=(),
            buyers_per_store=6,
            arms=arms,
            lm=dict(folder="", temperature=1.0, max_new_tokens=8),
            n_boot=100,
            seed=0,
            out_dir=str(tmp_path / "sim"),
            server_mode="thread",
            driver=dict(
                concurrency=6, step_limit=30, action_timeout_s=20.0, episode_timeout_s=120.0
            ),
        )
    )


@pytest.mark.browser
def test_arms_on_the_same_buyers_end_to_end(tmp_path):
    from simpersona_jax.sim.run import simulate

    synth = default_config()
    synth.update(
        dict(num_stores=2, buyers_per_store=60, products_per_store=40, heldout_fraction=0.5)
    )
    data_dir = str(tmp_path / "data")
    ensure_default(data_dir, synth)
    report = simulate(_cfg(tmp_path, data_dir, ("oracle", "matched", "text")), model=FakeLM())
    assert report["arms"] == ["oracle", "matched", "text"] and report["skipped"] == {}
    fails = report["failures"]
    assert fails["oracle"]["episodes"] == 6 and sum(fails["oracle"]["outcomes"].values()) == 6
    assert fails["oracle"]["counts"]["crashed"] == 0
    assert fails["oracle"]["counts"]["unparseable_action"] == 0
    # the fake LM: one unparseable action, then stop(), in each of the 6 episodes
    assert fails["matched"]["counts"]["unparseable_action"] == 6
    assert fails["matched"]["outcomes"]["stopped"] == 6
    assert fails["matched"]["counts"]["context_length"] == 0
    assert fails["text"]["counts"]["context_length"] == 12  # per-arm delta of the policy's stats
    arms = report["fidelity"]["arms"]
    assert 0 <= arms["oracle"]["stratified_ara"]["value"] <= 1
    assert arms["matched"]["cr"][report["stores"][0]]["value"] == 0.0  # stop() never buys
    assert set(report["fidelity"]["baselines"]) == {"never_buy", "average_buyer"}
    out = tmp_path / "sim"
    assert json.loads((out / "report.json").read_text())["arms"] == report["arms"]
    assert "plot-conversion" in (out / "report.html").read_text()
    for arm in report["arms"]:  # the same sampled buyers, each arm on its own event log
        buyers = pl.read_parquet(out / arm / "sim_buyers.parquet")
        store = report["stores"][0]
        assert buyers["sim_buyer_id"].to_list() == [f"sim-{store}-{i}" for i in range(6)]
        assert (out / arm / "events").is_dir()


def test_arms_that_cannot_run_are_skipped_with_a_reason():
    from simpersona_jax.sim.run import plan_arms

    synthetic = pl.DataFrame({"true_type": [0, 2]})
    real = pl.DataFrame({"true_type": [-1, -1]})
    cfg = ml_collections.ConfigDict(dict(arms=("oracle", "matched", "none")))
    assert plan_arms(cfg, synthetic, have_lm=True) == (["oracle", "matched", "none"], {})
    run, skipped = plan_arms(cfg, real, have_lm=False)
    assert run == [] and set(skipped) == {"oracle", "matched", "none"}
    assert "no true synthetic type" in skipped["oracle"] and "lm.folder" in skipped["none"]
    with pytest.raises(ValueError, match="arms must be a non-empty subset"):
        plan_arms(ml_collections.ConfigDict(dict(arms=("oracle", "shuffled"))), synthetic, True)


def test_mistyped_data_root_is_an_error(tmp_path):
    from simpersona_jax.sim.run import simulate

    cfg = _cfg(tmp_path, str(tmp_path / "no_such_root"), ("oracle",))
    with pytest.raises(FileNotFoundError, match=r"config.data.dir=.*no_such_root.* is not a dir"):
        simulate(cfg)
    cfg.data.dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"lacks buyers/meta.parquet, events"):
        simulate(cfg)
    assert not (tmp_path / "sim").exists()
