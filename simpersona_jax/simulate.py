"""Simulate held-out stores' buyer populations in Chromium and score them against the real ones.

    python -m simpersona_jax.simulate --config=experiments/simulate.py

For each store: draws simulated buyers from the store's type distribution (a real buyer's code,
from `python -m simpersona_jax.assign`), serves the store on the local storefront, runs one agent
episode (session) per simulated buyer through the async Playwright driver, reads the storefront's
canonical event log and scores it with the same metrics code as real traffic: stratified ARA,
conversion-rate alignment and stratum-mix JSD per store, crash and unparseable-action rates,
actions per session. Writes `<out_dir>/report.json` and the simulated events.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import polars as pl
from absl import app, flags
from ml_collections import config_flags

from simpersona_jax.data.schema import COLUMNS
from simpersona_jax.features import store as buyer_store
from simpersona_jax.replay.goals import neutral_goal
from simpersona_jax.rollout.driver import DriverConfig, EpisodeSpec, run
from simpersona_jax.sim.population import apply_control, sample_buyers
from simpersona_jax.sim.score import agent_metrics, score
from simpersona_jax.storefront.catalog import catalogs_from_events, read_catalogs, write_catalogs
from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.storefront.server import StorefrontServer

_CONFIG = config_flags.DEFINE_config_file("config", None, "Simulation config.", lock_config=True)
flags.mark_flags_as_required(["config"])


def real_buyers(data_dir: str, codes_path: str) -> pl.DataFrame:
    """One row per real buyer: store_id, buyer_id, split, stratum, labels, true_type, code."""
    meta = buyer_store.read_meta(os.path.join(data_dir, "buyers"))
    if not codes_path:
        return meta.with_columns(code=pl.lit(-1, pl.Int32))
    codes = pl.read_parquet(codes_path).select("store_id", "buyer_id", "code")
    return meta.join(codes, on=["store_id", "buyer_id"], how="inner")


def episode_specs(sim: pl.DataFrame, server: StorefrontServer, policy: str, catalogs) -> list:
    if policy == "scripted":
        from simpersona_jax.rollout.scripted import scripted_specs
        from simpersona_jax.synth.types import BUYER_TYPES

        specs = []
        for row in sim.iter_rows(named=True):
            if row["true_type"] < 0:
                raise ValueError("the scripted policy acts out true synthetic types; "
                                 f"buyer {row['source_buyer_id']} has none (real data: use lm)")
            spec, = scripted_specs(server.store_url(row["store_id"]), catalogs[row["store_id"]],
                                   [(BUYER_TYPES[row["true_type"]], row["sim_buyer_id"])],
                                   session_prefix="sim")
            specs.append(dataclasses.replace(spec, persona=row["persona"]))
        return specs
    return [EpisodeSpec(server.store_url(r["store_id"]), r["store_id"], r["sim_buyer_id"],
                        f"{r['sim_buyer_id']}-s0", goal=neutral_goal(r["store_id"]),
                        persona=r["persona"], meta={"persona_text": r.get("persona_text")})
            for r in sim.iter_rows(named=True)]


def make_policy(cfg):
    if cfg.policy == "scripted":
        from simpersona_jax.rollout.scripted import ScriptedBuyer

        return ScriptedBuyer(seed=cfg.seed)
    if cfg.policy == "lm":
        from simpersona_jax.lm.policy import LMPolicy
        from simpersona_jax.sim.policies import lm_policy

        return lm_policy(LMPolicy(cfg.lm.folder, temperature=cfg.lm.temperature,
                                  max_new_tokens=cfg.lm.max_new_tokens), seed=cfg.seed)
    raise ValueError(f"policy must be 'scripted' or 'lm', got {cfg.policy!r}")


def simulate(cfg) -> dict:
    events_dir = os.path.join(cfg.data_dir, "events")
    real = real_buyers(cfg.data_dir, cfg.codes)
    stores = list(cfg.stores) or sorted(real.filter(pl.col("split") == "heldout")["store_id"].unique())
    sim = apply_control(sample_buyers(real, stores, cfg.buyers_per_store, cfg.seed), real,
                        cfg.control, cfg.seed)
    real_events = (pl.scan_parquet(os.path.join(events_dir, "**", "*.parquet"), hive_partitioning=True)
                   .filter(pl.col("store_id").is_in(stores)).select(COLUMNS).collect())
    catalog_dir = os.path.join(cfg.data_dir, "catalog")
    if not os.path.isdir(catalog_dir):  # ingested real data: the catalog comes from its events
        catalog_dir = os.path.join(cfg.out_dir, "catalog")
        write_catalogs(catalogs_from_events(real_events), catalog_dir)
    log_dir = os.path.join(cfg.out_dir, "sim_events")
    shutil.rmtree(log_dir, ignore_errors=True)
    with StorefrontServer(catalog_dir, log_dir, mode=cfg.server_mode) as server:
        specs = episode_specs(sim, server, cfg.policy, read_catalogs(catalog_dir))
        driver_cfg = DriverConfig(**cfg.driver.to_dict())
        results = run(specs, make_policy(cfg), driver_cfg)
    sim_events = read_log(log_dir)
    report = {"stores": stores, "control": cfg.control, "policy": cfg.policy,
              **agent_metrics(results), **score(real_events, sim_events, sim)}
    os.makedirs(cfg.out_dir, exist_ok=True)
    sim.write_parquet(os.path.join(cfg.out_dir, "sim_buyers.parquet"))
    with open(os.path.join(cfg.out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    return report


def format_report(r: dict) -> str:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    per = "  ".join(f"{k} {pct(v)}" for k, v in r["ara_per_stratum"].items())
    return "\n".join([
        f"simulated {r['episodes']} sessions in {len(r['stores'])} stores "
        f"(policy {r['policy']}, persona {r['control']})",
        f"stratified ARA {pct(r['stratified_ara'])}  ({per})",
        f"conversion-rate alignment (mean over stores) {pct(r['mean_cr_alignment'])}   "
        f"stratum JSD (mean) {r['mean_stratum_jsd']:.3f}",
        f"crash rate {pct(r['crash_rate'])}  unparseable actions {pct(r['unparseable_action_rate'])}"
        f"  actions/session {r['actions_per_session']:.1f}  checkout reach {pct(r['sim_checkout_reach'])}",
        "outcomes " + "  ".join(f"{k} {v}" for k, v in r["outcomes"].items()),
    ])


def main(argv):
    del argv
    print(format_report(simulate(_CONFIG.value)))


if __name__ == "__main__":
    app.run(main)
