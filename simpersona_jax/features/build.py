"""Canonical events -> 403-number buyer vectors, unit by unit, bounded in memory.

Each partition (`store_id=<s>/bucket=<b>`) holds whole buyers, so partitions are packed into
units of about `rows_per_unit` events and a few units are processed at once: scalars, stratum and
slots (scalars.py), embeddings of the slot products, written into the unit's row range of the
zarr matrix. Products are embedded by their content (embed.py), or, in a store whose events
carry no content at all (ids only), by a behavioural embedding fitted on that store's own
sessions (cooc.py); stats.json names the embedder of each store (`product_embedders`). The 16
scalars are then standardised in place with mean/std fitted on training stores only (saved in
stats.json, reused for held-out and future stores), and the behaviour labels are thresholded at
the training-store medians.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from simpersona_jax.data import parallel
from simpersona_jax.features import cooc, embed, scalars, store

DIM = len(scalars.SCALAR_NAMES) + len(scalars.SLOTS) * embed.DIM + len(scalars.SLOTS)  # 403
# Label -> (scalar column, threshold rule): high = value > training-store median.
LABEL_SOURCES = {
    "purchase_hi": "purchases_per_session",
    "explore_hi": "log_distinct_products",
    "engage_hi": "log_events",
}


def list_partitions(events_dir: str) -> list[str]:
    parts = sorted(
        {
            os.path.dirname(p)
            for p in glob.glob(os.path.join(events_dir, "store_id=*", "bucket=*", "*.parquet"))
        }
    )
    if not parts:
        raise FileNotFoundError(
            f"no canonical event partitions under {events_dir} "
            "(expected store_id=<s>/bucket=<b>/*.parquet)"
        )
    return parts


def group_partitions(parts: list[str], rows_per_unit: int) -> list[list[str]]:
    """Consecutive partitions packed into work units of about `rows_per_unit` events.

    A unit holds whole partitions (so whole buyers); many small partitions (small stores) share
    one unit, which saves the fixed cost per query. Row counts come from Parquet metadata.
    """
    units, unit, rows = [], [], 0
    for part in parts:
        n = sum(pq.read_metadata(f).num_rows for f in glob.glob(os.path.join(part, "*.parquet")))
        if unit and rows + n > rows_per_unit:
            units.append(unit)
            unit, rows = [], 0
        unit.append(part)
        rows += n
    return units + [unit] if unit else units


def _scan(events_dir_or_partitions: str | list[str]) -> pl.LazyFrame:
    dirs = (
        [events_dir_or_partitions]
        if isinstance(events_dir_or_partitions, str)
        else events_dir_or_partitions
    )
    return pl.scan_parquet(
        [os.path.join(d, "**", "*.parquet") for d in dirs], hive_partitioning=False
    )  # store_id is a column of every file


def vectors_from_table(
    table: pl.DataFrame, item_vectors: dict[str, cooc.ItemVectors] | None = None
) -> np.ndarray:
    """[B, 403]: raw scalars ‖ 3 slot embeddings ‖ 3 slot masks (scalars standardised later).

    `item_vectors`: store -> behavioural product vectors, used for that store's buyers instead
    of the content embedding (id-only stores)."""
    x = np.zeros((table.height, DIM), np.float32)
    n_s = len(scalars.SCALAR_NAMES)
    x[:, :n_s] = table.select(scalars.SCALAR_NAMES).to_numpy().astype(np.float32)
    for k, slot in enumerate(scalars.SLOTS):
        present = table[f"{slot}.product_id"].is_not_null().to_numpy()
        cols = [table[f"{slot}.{c}"].to_list() for c in scalars.CONTENT]
        emb = embed.embed_products(*cols)
        for store_id, items in (item_vectors or {}).items():
            rows = (table["store_id"] == store_id).to_numpy()
            if rows.any():
                emb[rows] = items.lookup(table[f"{slot}.product_id"].filter(rows))
        lo = n_s + k * embed.DIM
        x[:, lo : lo + embed.DIM] = emb * present[:, None]
        x[:, n_s + len(scalars.SLOTS) * embed.DIM + k] = present
    return x


def _fit_standardisation(meta: pl.LazyFrame, train_stores: list[str], reference: dict | None):
    """Scalar mean/std and label thresholds: from `reference`, else from the training stores."""
    if reference is not None:
        if reference["scalar_names"] != list(scalars.SCALAR_NAMES):
            raise ValueError(
                f"reference stats were built with other scalars: {reference['scalar_names']}"
            )
        return (
            np.asarray(reference["mean"]),
            np.asarray(reference["std"]),
            dict(reference["label_thresholds"]),
        )
    train = meta.filter(pl.col("split") == "train")
    names = scalars.SCALAR_NAMES
    fit = (
        train.select(
            n=pl.len(),
            **{f"mean.{c}": pl.col(c).mean() for c in names},
            **{f"std.{c}": pl.col(c).std(ddof=0) for c in names},
            **{f"median.{k}": pl.col(v).median() for k, v in LABEL_SOURCES.items()},
        )
        .collect()
        .row(0, named=True)
    )
    if fit["n"] == 0:
        raise ValueError(
            f"no buyers in the training stores {train_stores[:5]}: "
            "standardisation statistics would be undefined"
        )
    mean = np.asarray([fit[f"mean.{c}"] for c in names])
    std = np.asarray([fit[f"std.{c}"] for c in names])
    std = np.where(std > 1e-8, std, 1.0)
    return mean, std, {k: float(fit[f"median.{k}"]) for k in LABEL_SOURCES}


def build_buyers(
    events_dir: str,
    buyers_dir: str,
    train_stores: list[str] | None = None,
    truth: pl.DataFrame | pl.LazyFrame | None = None,
    progress=None,
    reference_stats: dict | None = None,
    workers: int | None = None,
    rows_per_unit: int = 2_000_000,
    id_embedding: bool = True,
) -> dict:
    """Writes vectors.zarr, meta.parquet and stats.json under `buyers_dir`; returns stats.

    Memory is bounded by a few partitions: per-partition metadata goes to disk and every statistic
    is a streaming aggregate. `reference_stats` (another build's stats.json) standardises and
    labels these buyers with that build's training-store statistics, e.g. new stores or simulated
    traffic scored by a model trained elsewhere; all stores here are then "heldout".
    `workers`: units of about `rows_per_unit` events computed at once (threads; default: the
    cores, at most 4); memory holds about `workers` units.
    `id_embedding`: embed the products of id-only stores behaviourally (cooc.py); False leaves
    them to the content embedder (zero vectors). stats["zero_share"]: the share of zero entries.
    """
    os.makedirs(buyers_dir, exist_ok=True)
    parts_dir = os.path.join(buyers_dir, "_meta_parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    os.makedirs(parts_dir)
    medians = scalars.store_median_prices(_scan(events_dir)).collect()
    item_vectors = {
        s: cooc.fit(_scan(events_dir).filter(pl.col("store_id") == s))
        for s in (cooc.id_only_stores(_scan(events_dir)) if id_embedding else [])
    }
    matrix = store.create_matrix(os.path.join(buyers_dir, "vectors.zarr"), 0, DIM)
    offset = zeros = 0

    def one(unit):
        table = scalars.buyer_table(_scan(unit), medians)
        return table, vectors_from_table(table, item_vectors)

    units = group_partitions(list_partitions(events_dir), rows_per_unit)
    for k, (table, x) in enumerate(parallel.ordered_map(one, units, workers)):
        n = table.height
        matrix = matrix.resize(exclusive_max=[offset + n, DIM]).result()
        matrix[offset : offset + n].write(x).result()
        table.select(
            "buyer_id", "store_id", "stratum", "n_events", *scalars.SCALAR_NAMES
        ).with_columns(row=pl.int_range(offset, offset + n, dtype=pl.Int64)).write_parquet(
            os.path.join(parts_dir, f"{k:06d}.parquet")
        )
        offset += n
        zeros += int((x[:, len(scalars.SCALAR_NAMES) :] == 0).sum())  # scalars: once standardised
        progress and progress(n)
    meta = pl.scan_parquet(os.path.join(parts_dir, "*.parquet"))
    stores_sorted = sorted(meta.select(pl.col("store_id").unique()).collect()["store_id"].to_list())
    train_stores = stores_sorted if train_stores is None else list(train_stores)
    if reference_stats is not None:
        train_stores = []
    meta = meta.with_columns(
        split=pl.when(pl.col("store_id").is_in(train_stores))
        .then(pl.lit("train"))
        .otherwise(pl.lit("heldout")),
        store=pl.col("store_id").replace_strict(
            stores_sorted, range(len(stores_sorted)), return_dtype=pl.Int32
        ),
    )
    mean, std, thresholds = _fit_standardisation(meta, train_stores, reference_stats)
    meta = meta.with_columns(
        *[(pl.col(v) > thresholds[k]).cast(pl.Int32).alias(k) for k, v in LABEL_SOURCES.items()]
    )
    if truth is not None:
        from simpersona_jax.synth.types import TYPE_NAMES

        meta = meta.join(
            truth.lazy().select(
                "store_id",
                "buyer_id",
                pl.col("type")
                .replace_strict(TYPE_NAMES, range(len(TYPE_NAMES)), return_dtype=pl.Int32)
                .alias("true_type"),
            ),
            on=["store_id", "buyer_id"],
            how="left",
            maintain_order="left",
        )
    else:
        meta = meta.with_columns(true_type=pl.lit(None, pl.Int32))
    meta = meta.with_columns(pl.col("true_type").fill_null(-1))
    n_s = len(scalars.SCALAR_NAMES)
    for lo in range(0, offset, 1 << 16):  # standardise the scalar columns in place
        block = matrix[lo : min(lo + (1 << 16), offset), :n_s]
        scaled = ((block.read().result() - mean) / std).astype(np.float32)
        block.write(scaled).result()
        zeros += int((scaled == 0).sum())
    meta_path = os.path.join(buyers_dir, "meta.parquet")
    meta.select(
        "row",
        "buyer_id",
        "store_id",
        "store",
        "split",
        "stratum",
        *LABEL_SOURCES,
        "true_type",
        "n_events",
    ).sink_parquet(meta_path)  # parts are in row order
    shutil.rmtree(parts_dir)
    strata = pl.scan_parquet(meta_path).group_by("stratum").agg(pl.len()).sort("stratum").collect()
    stats = {
        "dim": DIM,
        "scalar_names": list(scalars.SCALAR_NAMES),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "label_thresholds": thresholds,
        "label_sources": LABEL_SOURCES,
        "train_stores": train_stores,
        "stores": stores_sorted,
        "buyers": offset,
        "zero_share": zeros / max(offset * DIM, 1),
        "product_embedders": {s: "cooc" if s in item_vectors else "content" for s in stores_sorted},
        "strata": strata.rows(),
    }
    with open(os.path.join(buyers_dir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    return stats
