"""Simulated buyer populations of held-out stores, run in Chromium and scored against the real ones.

`simulate(cfg)` is the library call behind `python -m simpersona_jax.simulate` and the
pipeline's simulate stage. It draws simulated buyers once from each store's type distribution
(a real buyer's code, from `python -m simpersona_jax.assign`) and runs the same buyers through
every arm of `cfg.arms` (`ARMS`; `plan_arms` says which can run and why the others cannot):
`oracle` (the scripted shopper acting out the source buyer's true synthetic type) and the LM
agent with a matched, mismatched, no, or text persona. All arms share one Chromium
(`rollout.browser.LoopBrowser`); each arm gets its own storefront and event log
(`<out_dir>/<arm>/events`), and one agent episode (session) per simulated buyer runs through the
async Playwright driver with a progress bar. The logs are scored with the same metrics code as
real traffic (`metrics.fidelity`: every figure with a bootstrap CI, next to the never-buy and
average-buyer baselines) and written as `<out_dir>/report.json` and `<out_dir>/report.html`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import polars as pl
from tqdm import tqdm

from simpersona_jax.data.schema import COLUMNS
from simpersona_jax.features import store as buyer_store
from simpersona_jax.features.default import resolve_data_dir
from simpersona_jax.metrics import fidelity
from simpersona_jax.replay.goals import neutral_goal
from simpersona_jax.rollout.browser import LoopBrowser
from simpersona_jax.rollout.driver import DriverConfig, EpisodeSpec, run_episodes
from simpersona_jax.rollout.scripted import ScriptedBuyer, scripted_specs
from simpersona_jax.sim import report
from simpersona_jax.sim.policies import lm_policy, load_lm
from simpersona_jax.sim.population import apply_control, sample_buyers
from simpersona_jax.sim.score import failures, real_population, sim_population, timelines
from simpersona_jax.storefront.catalog import catalog_dir_for, read_catalogs
from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.storefront.server import StorefrontServer
from simpersona_jax.synth.types import BUYER_TYPES


def real_buyers(data_dir: str, codes_path: str) -> pl.DataFrame:
    """One row per real buyer: store_id, buyer_id, split, stratum, labels, true_type, code."""
    meta = buyer_store.read_meta(os.path.join(data_dir, "buyers"))
    if not codes_path:
        return meta.with_columns(code=pl.lit(-1, pl.Int32))
    codes = pl.read_parquet(codes_path).select("store_id", "buyer_id", "code")
    return meta.join(codes, on=["store_id", "buyer_id"], how="inner")


def episode_specs(sim: pl.DataFrame, server: StorefrontServer, scripted: bool, catalogs) -> list:
    """One episode per simulated buyer: the scripted oracle's, or the LM agent's neutral goal."""
    if scripted:
        specs = []
        for row in sim.iter_rows(named=True):
            if row["true_type"] < 0:
                raise ValueError(
                    "the oracle arm acts out true synthetic types; "
                    f"buyer {row['source_buyer_id']} has none (real data)"
                )
            (spec,) = scripted_specs(
                server.store_url(row["store_id"]),
                catalogs[row["store_id"]],
                [(BUYER_TYPES[row["true_type"]], row["sim_buyer_id"])],
                session_prefix="sim",
            )
            specs.append(dataclasses.replace(spec, persona=row["persona"]))
        return specs
    return [
        EpisodeSpec(
            server.store_url(r["store_id"]),
            r["store_id"],
            r["sim_buyer_id"],
            f"{r['sim_buyer_id']}-s0",
            goal=neutral_goal(r["store_id"]),
            persona=r["persona"],
            meta={"persona_text": r.get("persona_text")},
        )
        for r in sim.iter_rows(named=True)
    ]


ARMS = ("oracle", "matched", "mismatched", "none", "text")


def plan_arms(cfg, sim: pl.DataFrame, have_lm: bool) -> tuple[list[str], dict[str, str]]:
    """(arms to run, {arm: why it is skipped}) for `cfg.arms`; an unknown arm is an error."""
    unknown = [a for a in cfg.arms if a not in ARMS]
    if unknown or not cfg.arms:
        raise ValueError(f"config arms must be a non-empty subset of {ARMS}, got {tuple(cfg.arms)}")
    skipped = {}
    for arm in cfg.arms:
        if arm == "oracle" and (sim["true_type"] < 0).any():
            skipped[arm] = "the buyers have no true synthetic type (real data)"
        elif arm != "oracle" and not have_lm:
            skipped[arm] = "no LM policy (config lm.folder is empty)"
    return [a for a in cfg.arms if a not in skipped], skipped


def run_arm(
    arm: str, sim_arm: pl.DataFrame, policy, cfg, catalog_dir: str, catalogs, browser: LoopBrowser
) -> tuple:
    """Runs one arm's episodes on its own storefront log; (results, logged events)."""
    log_dir = os.path.join(cfg.out_dir, arm, "events")
    shutil.rmtree(log_dir, ignore_errors=True)
    with StorefrontServer(catalog_dir, log_dir, mode=cfg.server_mode) as server:
        specs = episode_specs(sim_arm, server, arm == "oracle", catalogs)
        with tqdm(total=len(specs), desc=f"simulate {arm}", unit="episode") as bar:
            driver_cfg = DriverConfig(**cfg.driver.to_dict())
            results = browser.run(
                run_episodes(
                    specs, policy, driver_cfg, pool=browser.pool, on_result=lambda _: bar.update(1)
                )
            )
    sim_arm.write_parquet(os.path.join(cfg.out_dir, arm, "sim_buyers.parquet"))
    return results, read_log(log_dir)


def _stats(model) -> dict:
    """The policy's numeric counters (e.g. truncated_prompts), if it keeps any."""
    stats = getattr(model, "stats", None) or {}
    return {k: v for k, v in stats.items() if isinstance(v, (int, float))}


def simulate(cfg, *, model=None) -> dict:
    """Runs every arm of `cfg.arms` on the same sampled buyers, scores them, writes the report.

    model: an already loaded LM policy (anything with `.act(requests)`); by default one is
    loaded from `cfg.lm` when `cfg.lm.folder` is set, and shared by the LM arms.
    """
    data_dir = resolve_data_dir(
        cfg.data.dir, "config.data.dir", need=("buyers/meta.parquet", "events")
    )
    events_dir = os.path.join(data_dir, "events")
    real = real_buyers(data_dir, cfg.codes)
    stores = list(cfg.stores) or sorted(
        real.filter(pl.col("split") == "heldout")["store_id"].unique()
    )
    sim = sample_buyers(real, stores, cfg.buyers_per_store, cfg.seed)
    if model is None and cfg.lm.folder and set(cfg.arms) - {"oracle"}:
        model = load_lm(cfg.lm)
    arms, skipped = plan_arms(cfg, sim, model is not None)
    for arm, why in skipped.items():
        print(f"arm {arm} skipped: {why}")
    if not arms:
        raise ValueError(f"no arm of {tuple(cfg.arms)} can run: {skipped}")
    real_events = (
        pl.scan_parquet(os.path.join(events_dir, "**", "*.parquet"), hive_partitioning=True)
        .filter(pl.col("store_id").is_in(stores))
        .select(COLUMNS)
        .collect()
    )
    catalog_dir = catalog_dir_for(data_dir, cfg.out_dir, real_events)
    catalogs = read_catalogs(catalog_dir)
    pops, fails, lines = {}, {}, {}
    browser = LoopBrowser(cfg.driver.get("contexts_per_browser", 200))  # one Chromium for all arms
    try:
        for arm in arms:
            if arm == "oracle":
                sim_arm, policy = sim.with_columns(persona=pl.col("code")), ScriptedBuyer(cfg.seed)
            else:
                sim_arm = apply_control(sim, real, arm, cfg.seed)
                policy = lm_policy(model, cfg.seed)
            before = _stats(model)
            results, sim_events = run_arm(arm, sim_arm, policy, cfg, catalog_dir, catalogs, browser)
            after = _stats(model) if arm != "oracle" else before
            pops[arm] = sim_population(sim_events, sim_arm, stores)
            fails[arm] = failures(results, {k: v - before.get(k, 0) for k, v in after.items()})
            lines[arm] = timelines(results)
    finally:
        browser.close()
    evaluation = fidelity.evaluate(
        real_population(real_events, real, stores),
        pops,
        fidelity.code_intensity(real),
        cfg.n_boot,
        cfg.seed,
    )
    out = report.build(evaluation, fails, lines, skipped, cfg.to_dict())
    report.write(out, cfg.out_dir)
    return out
