"""Generates SFT traces by replaying recorded sessions in Chromium on the local storefront.

`run(cfg)` is the library call behind `python -m simpersona_jax.traces` and the pipeline's traces
stage. It loads canonical events (synthetic stores of the data root `data.dir`, or raw files:
`load`), samples sessions (balanced over the buyers' VQ codes when `codes_path` is set:
`sample_sessions`), serves their stores' catalogs, replays each session through the driver with
the path planner (`replay.replay`), keeps the sessions whose events the storefront's log
reproduces, and writes trace shards `<out_dir>/traces-%05d.parquet` plus `<out_dir>/summary.json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time

import polars as pl

from simpersona_jax.data.schema import COLUMNS
from simpersona_jax.features.default import resolve_data_dir
from simpersona_jax.replay import sample as replay_sample
from simpersona_jax.replay.replay import replay_sessions
from simpersona_jax.replay.schema import TraceWriter
from simpersona_jax.rollout.driver import DriverConfig
from simpersona_jax.storefront.catalog import catalogs_from_events, read_catalogs, write_catalogs
from simpersona_jax.storefront.server import StorefrontServer


def load(cfg) -> tuple[pl.DataFrame, str]:
    """(events of the candidate stores, catalog dir)."""
    ev = cfg.events
    if ev.kind == "synthetic":
        root = resolve_data_dir(
            cfg.data.dir, "config.data.dir", need=("events", "stores.json", "catalog")
        )
        with open(os.path.join(root, "stores.json")) as f:
            split = json.load(f)
        stores = split["train"] + split["heldout"] if ev.split == "all" else split[ev.split]
        events = (
            pl.scan_parquet(os.path.join(root, "events", "**", "*.parquet"), hive_partitioning=True)
            .filter(pl.col("store_id").is_in(stores))
            .select(COLUMNS)
            .collect()
        )
        return events, os.path.join(root, "catalog")
    if ev.kind == "files":
        from simpersona_jax.data.sources import load_events

        paths = [p for p in ev.paths.split(",") if p]
        if not paths:
            raise ValueError("events.kind='files' needs --config.events.paths=<file>[,<file>...]")
        events = (
            load_events(paths, source=ev.source, store_id=ev.store_id or None)
            .select(COLUMNS)
            .collect()
        )
        catalog_dir = os.path.join(cfg.out_dir, "_storefront", "catalog")
        write_catalogs(catalogs_from_events(events), catalog_dir)
        return events, catalog_dir
    raise ValueError(f"events.kind must be 'synthetic' or 'files', got {ev.kind!r}")


def sample_sessions(events: pl.DataFrame, cfg) -> tuple[pl.DataFrame, dict]:
    """(events of the sessions to replay, sampling stats): balanced over the buyers' VQ codes
    when `cfg.codes_path` is set (held-out stores' codes first), else uniform."""
    codes = priority = None
    if cfg.get("codes_path", ""):
        codes = pl.read_parquet(cfg.codes_path).select("store_id", "buyer_id", "code")
        stores = set(events["store_id"].unique().to_list())
        priority = set(codes.filter(~pl.col("store_id").is_in(list(stores)))["code"].to_list())
    return replay_sample.sample_sessions(
        events, cfg.max_sessions, cfg.max_events_per_session, cfg.seed, codes, priority
    )


def run(cfg) -> dict:
    """Replays sampled sessions and writes the trace shards; returns summary.json's dict."""
    t0 = time.time()
    events, catalog_dir = load(cfg)
    sample, stats = sample_sessions(events, cfg)
    too_long = stats["too_long"]
    n = sample.select("store_id", "session_id").n_unique()
    print(
        f"{events.height:,} events, {events['session_id'].n_unique():,} sessions; replaying {n} "
        f"({too_long} longer than {cfg.max_events_per_session} events not drawn; codes covered: "
        f"{stats['codes_covered']})",
        flush=True,
    )
    os.makedirs(cfg.out_dir, exist_ok=True)
    log_dir = os.path.join(cfg.out_dir, "_storefront", "events")
    shutil.rmtree(log_dir, ignore_errors=True)  # the fidelity check reads this run's log only
    catalogs = read_catalogs(catalog_dir)
    done = {"n": 0, "steps": 0}

    def progress(result):
        done["n"] += 1
        done["steps"] += len(result.steps)
        if done["n"] % max(1, n // 20) == 0 or done["n"] == n:
            dt = time.time() - t0
            print(
                f"  {done['n']}/{n} sessions, {done['steps']} steps, "
                f"{done['steps'] / dt:.1f} steps/s",
                flush=True,
            )

    d = cfg.driver
    driver_cfg = DriverConfig(
        concurrency=d.concurrency,
        step_limit=d.step_limit,
        action_timeout_s=d.action_timeout_s,
        episode_timeout_s=d.episode_timeout_s,
        contexts_per_browser=d.contexts_per_browser,
    )
    with StorefrontServer(catalog_dir, log_dir, mode=cfg.server_mode) as server:
        report = asyncio.run(
            replay_sessions(sample, catalogs, server, driver_cfg, on_result=progress)
        )
    for old in [f for f in os.listdir(cfg.out_dir) if f.startswith("traces-")]:
        os.remove(os.path.join(cfg.out_dir, old))
    writer = TraceWriter(cfg.out_dir, cfg.rows_per_shard)
    writer.add(report.rows)
    shards = writer.close()
    summary = dict(
        sampling=stats,
        sessions_in=report.sessions_in,
        replayed=report.replayed,
        dropped=dict(report.dropped),
        steps=report.steps,
        tokens=report.tokens,
        shards=[os.path.basename(s) for s in shards],
        seconds=round(time.time() - t0, 1),
    )
    with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(report.summary())
    print(
        f"wrote {len(shards)} shard(s), {writer.n_rows} rows to {cfg.out_dir} "
        f"in {summary['seconds']}s"
    )
    return summary
