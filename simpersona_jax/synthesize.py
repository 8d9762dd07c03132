"""Generate the synthetic multi-store dataset (the embedded default) and its buyer vectors.

    python -m simpersona_jax.synthesize --config=experiments/synth.py
    python -m simpersona_jax.synthesize --config=experiments/synth.py --config.synth.num_stores=81 \
        --config.synth.buyers_per_store=103333 --config.synth.workers=2   # paper scale, 8.37M buyers
"""

from __future__ import annotations

import collections
import json
import os

import polars as pl
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from simpersona_jax.features.build import build_buyers
from simpersona_jax.synth.generate import generate


def main(argv):
    del argv
    cfg = _CONFIG.value
    with tqdm(desc="shards", unit="shard") as bar:
        plan = generate(cfg.synth, cfg.out_dir, progress=bar.update)
    print(
        f"stores: {len(plan['train'])} train, {len(plan['heldout'])} held-out; "
        f"events written this run: {plan['events_written']:,}"
    )
    truth = pl.read_parquet(os.path.join(cfg.out_dir, "truth", "**", "*.parquet"))
    print(
        "buyer types: "
        + ", ".join(
            f"{k} {v:,}" for k, v in sorted(collections.Counter(truth["type"].to_list()).items())
        )
    )
    if cfg.build_buyers:
        with tqdm(desc="buyers", unit="buyer") as bar:
            stats = build_buyers(
                os.path.join(cfg.out_dir, "events"),
                os.path.join(cfg.out_dir, "buyers"),
                plan["train"],
                truth,
                progress=bar.update,
            )
        print(
            f"buyer vectors: {stats['buyers']:,} x {stats['dim']}  "
            f"strata {json.dumps(dict(stats['strata']))}"
        )


if __name__ == "__main__":  # flags only here: other tools and tests import this module
    _CONFIG = config_flags.DEFINE_config_file(
        "config", None, "Synthetic data config.", lock_config=True
    )
    flags.mark_flags_as_required(["config"])
    app.run(main)
