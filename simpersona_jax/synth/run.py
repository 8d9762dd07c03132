"""The synthesize tool's job: generate the synthetic multi-store dataset into cfg.out_dir and,
with cfg.build_buyers, its buyer vectors (python -m simpersona_jax.synthesize parses flags and
calls `run`)."""

from __future__ import annotations

import collections
import json
import os

import polars as pl
from tqdm import tqdm

from simpersona_jax.features.build import build_buyers
from simpersona_jax.synth.generate import generate


def run(cfg, log=print) -> dict:
    """Generate (resuming a partial run), report store and buyer-type counts, build buyer vectors.
    Returns the generation plan, plus the buyer-vector stats under 'buyers' when built."""
    with tqdm(desc="shards", unit="shard") as bar:
        plan = generate(cfg.synth, cfg.out_dir, progress=bar.update)
    log(
        f"stores: {len(plan['train'])} train, {len(plan['heldout'])} held-out; "
        f"events written this run: {plan['events_written']:,}"
    )
    truth = pl.read_parquet(os.path.join(cfg.out_dir, "truth", "**", "*.parquet"))
    types = collections.Counter(truth["type"].to_list())
    log("buyer types: " + ", ".join(f"{k} {v:,}" for k, v in sorted(types.items())))
    if cfg.build_buyers:
        with tqdm(desc="buyers", unit="buyer") as bar:
            stats = build_buyers(
                os.path.join(cfg.out_dir, "events"),
                os.path.join(cfg.out_dir, "buyers"),
                plan["train"],
                truth,
                progress=bar.update,
            )
        log(
            f"buyer vectors: {stats['buyers']:,} x {stats['dim']}  "
            f"strata {json.dumps(dict(stats['strata']))}"
        )
        plan = {**plan, "buyers": stats}
    return plan
