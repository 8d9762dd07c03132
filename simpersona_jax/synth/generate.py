"""Synthetic multi-store traffic in the canonical schema: the embedded default dataset.

Layout written under `out_dir`:
  events/store_id=<s>/bucket=<b>/part-0.parquet   canonical events; a bucket holds whole buyers
  truth/store_id=<s>/bucket=<b>.parquet           (store_id, buyer_id, type): never in events
  catalog/store_id=<s>.parquet                    product_id, category, brand, title, price
  stores.json                                     store split {"train": [...], "heldout": [...]}
                                                  plus each store's type mix

Deterministic by seed: a (store, shard) pair has its own RNG stream, so shards can be generated
in any order, in parallel, or resumed (a shard whose file exists is skipped). Paper scale
(8.37M buyers over ~80 stores) is `--config.synth.num_stores=81 --config.synth.buyers_per_store=
103333`, generated shard by shard without holding it all.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import ml_collections
import numpy as np
import polars as pl

from simpersona_jax.data import schema
from simpersona_jax.synth.catalog import make_catalog
from simpersona_jax.synth.sessions import EventSink, StoreCatalog, simulate_buyer
from simpersona_jax.synth.types import BUYER_TYPES, TYPE_NAMES


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            seed=0,
            num_stores=12,
            buyers_per_store=400,  # mean; store sizes vary log-normally around it
            store_size_sigma=0.3,
            products_per_store=300,
            heldout_fraction=0.5,  # the paper: 39 train / 42 held-out stores
            mix_concentration=1.5,  # Dirichlet concentration of each store's type mix
            window_start="2026-10-01",
            window_days=30.0,
            buyers_per_shard=50_000,
            workers=1,
        )
    )


def store_ids(cfg) -> list[str]:
    return [f"store{i:03d}" for i in range(cfg.num_stores)]


def store_plan(cfg) -> dict:
    """Per-store size, type mix and split, all drawn from the top-level seed."""
    rng = np.random.default_rng([cfg.seed, 0])
    ids = store_ids(cfg)
    sizes = np.maximum(
        1,
        np.round(
            cfg.buyers_per_store
            * np.exp(rng.normal(-0.5 * cfg.store_size_sigma**2, cfg.store_size_sigma, len(ids)))
        ),
    ).astype(int)
    mixes = rng.dirichlet(np.full(len(BUYER_TYPES), cfg.mix_concentration), len(ids))
    order = rng.permutation(len(ids))
    n_heldout = int(round(cfg.heldout_fraction * len(ids)))
    heldout = sorted(ids[i] for i in order[:n_heldout])
    return {
        "train": sorted(set(ids) - set(heldout)),
        "heldout": heldout,
        "stores": {
            s: {"buyers": int(n), "type_mix": dict(zip(TYPE_NAMES, map(float, m)))}
            for s, n, m in zip(ids, sizes, mixes)
        },
    }


def _shard_path(out_dir: str, kind: str, store: str, shard: int) -> str:
    if kind == "events":
        return os.path.join(
            out_dir, "events", f"store_id={store}", f"bucket={shard}", "part-0.parquet"
        )
    return os.path.join(out_dir, "truth", f"store_id={store}", f"bucket={shard}.parquet")


def generate_shard(
    cfg,
    out_dir: str,
    store_index: int,
    shard: int,
    n_buyers: int,
    mix: np.ndarray,
    catalog: pl.DataFrame,
) -> int:
    """Simulates buyers [shard * buyers_per_shard, +n_buyers) of one store; returns #events."""
    store = store_ids(cfg)[store_index]
    rng = np.random.default_rng([cfg.seed, 1, store_index, shard])
    cat = StoreCatalog.from_frame(store, catalog)
    window_start = dt.datetime.fromisoformat(cfg.window_start).replace(tzinfo=dt.timezone.utc)
    start_us = int(window_start.timestamp() * 1e6)
    types = rng.choice(len(BUYER_TYPES), n_buyers, p=mix)
    sink = EventSink()
    first = shard * cfg.buyers_per_shard
    buyer_ids = [f"{store}-b{first + i:07d}" for i in range(n_buyers)]
    for buyer_id, k in zip(buyer_ids, types):
        simulate_buyer(sink, cat, BUYER_TYPES[k], buyer_id, rng, start_us, cfg.window_days)
    events = pl.DataFrame(
        sink.cols, schema={k: v for k, v in schema.SCHEMA.items() if k != "store_id"}, strict=False
    )
    events = events.with_columns(
        pl.from_epoch(
            pl.Series("event_time", sink.cols["event_time"], pl.Int64), "us"
        ).dt.replace_time_zone("UTC"),
        pl.lit(store).alias("store_id"),
    ).select(schema.COLUMNS)
    truth = pl.DataFrame(
        {
            "store_id": [store] * n_buyers,
            "buyer_id": buyer_ids,
            "type": [TYPE_NAMES[k] for k in types],
        }
    )
    for kind, frame in (("truth", truth), ("events", events)):  # events last: marks shard done
        path = _shard_path(out_dir, kind, store, shard)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        frame.write_parquet(path + ".tmp")
        os.replace(path + ".tmp", path)
    return events.height


def generate(cfg, out_dir: str, progress=None) -> dict:
    """Writes the whole synthetic dataset; returns the store plan with event counts."""
    plan = store_plan(cfg)
    os.makedirs(os.path.join(out_dir, "catalog"), exist_ok=True)
    jobs = []
    for i, store in enumerate(store_ids(cfg)):
        catalog = make_catalog(
            store, np.random.default_rng([cfg.seed, 2, i]), cfg.products_per_store
        )
        catalog.write_parquet(os.path.join(out_dir, "catalog", f"store_id={store}.parquet"))
        mix = np.asarray(list(plan["stores"][store]["type_mix"].values()))
        n = plan["stores"][store]["buyers"]
        for shard, lo in enumerate(range(0, n, cfg.buyers_per_shard)):
            if not os.path.exists(_shard_path(out_dir, "events", store, shard)):
                jobs.append((i, shard, min(cfg.buyers_per_shard, n - lo), mix, catalog))
    total = 0
    if cfg.workers > 1:
        # spawn, not fork: a forked child of a process with polars' thread pool can deadlock.
        with ProcessPoolExecutor(
            cfg.workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            futures = [pool.submit(generate_shard, cfg, out_dir, *job) for job in jobs]
            for f in futures:
                total += f.result()
                progress and progress(1)
    else:
        for job in jobs:
            total += generate_shard(cfg, out_dir, *job)
            progress and progress(1)
    plan["events_written"] = total
    with open(os.path.join(out_dir, "stores.json"), "w") as f:
        json.dump(plan, f, indent=1)
    return plan
