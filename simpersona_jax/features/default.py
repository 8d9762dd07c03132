"""The data root every tool reads, and the embedded default dataset behind its default.

A data root is a directory holding `events/` (canonical events), `buyers/` (vectors, meta,
stats) and, for synthetic data, `stores.json` and `catalog/` (what `synthesize` or `ingest`
writes). Configs name it with one key, `data.dir`, whose one default is "synthetic:default":
the embedded synthetic default, built on first use under data/default (a few seconds) and
reused afterwards. Any other value must be an existing directory: a mistyped path is an error,
never a place to generate data.

A partially built default is completed, never trusted (the generator skips finished shards and
the buyer step is redone unless its stats.json exists).
"""

from __future__ import annotations

import json
import os

import ml_collections
import polars as pl

from simpersona_jax.features.build import build_buyers
from simpersona_jax.synth.generate import default_config, generate

SYNTHETIC_DEFAULT = "synthetic:default"
DEFAULT_DIR = "data/default"


def resolve_data_dir(value: str, key: str = "data.dir", need: tuple[str, ...] = ()) -> str:
    """The directory a config's data root names; `need`: paths inside it that must exist.

    "synthetic:default" builds the embedded default under data/default if missing; any other
    value must be an existing directory (errors name `key` and what is missing)."""
    if value == SYNTHETIC_DEFAULT:
        ensure_default(DEFAULT_DIR)
        path = DEFAULT_DIR
    elif value.startswith("synthetic:"):
        raise ValueError(f"{key}={value!r}: the only synthetic data root is {SYNTHETIC_DEFAULT!r}")
    elif not value or not os.path.isdir(value):
        raise FileNotFoundError(
            f"{key}={value!r} is not a directory; give a data root written by synthesize or "
            f"ingest, or {SYNTHETIC_DEFAULT!r} for the embedded synthetic default"
        )
    else:
        path = value
    missing = [n for n in need if not os.path.exists(os.path.join(path, n))]
    if missing:
        raise FileNotFoundError(f"{key}={value!r}: {path} lacks {', '.join(missing)}")
    return path


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
