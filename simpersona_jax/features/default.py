"""The embedded default dataset: synthetic stores -> canonical events -> buyer vectors.

Built on first use under `data_dir` (a few seconds at the default size) and reused afterwards;
a partially built directory is completed, never trusted (the generator skips finished shards and
the buyer step is redone unless its stats.json exists).
"""

from __future__ import annotations

import json
import os

import ml_collections
import polars as pl

from simpersona_jax.features.build import build_buyers
from simpersona_jax.synth.generate import default_config, generate


def ensure_default(data_dir: str, cfg: ml_collections.ConfigDict | None = None) -> str:
    """Returns `<data_dir>/buyers`, building synthetic events and buyer vectors if missing."""
    cfg = default_config() if cfg is None else cfg
    buyers_dir = os.path.join(data_dir, "buyers")
    if os.path.exists(os.path.join(buyers_dir, "stats.json")):
        return buyers_dir
    if not os.path.exists(os.path.join(data_dir, "stores.json")):
        generate(cfg, data_dir)
    with open(os.path.join(data_dir, "stores.json")) as f:
        plan = json.load(f)
    truth = pl.scan_parquet(os.path.join(data_dir, "truth", "**", "*.parquet"))
    build_buyers(os.path.join(data_dir, "events"), buyers_dir, plan["train"], truth)
    return buyers_dir
