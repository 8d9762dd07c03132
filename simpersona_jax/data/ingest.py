"""Raw event logs -> validated, sessionised, partitioned canonical events + quarantine + report.

Two streaming phases, bounded in memory by the partition size, not the input size:
 1. stage: scan every input once (lazy/streaming polars), map to canonical, attach a quarantine
    reason per row, and sink good rows partitioned by (store_id, bucket = hash(buyer) % buckets)
    and bad rows to quarantine/invalid; rows read per file are counted in the same pass.
 2. finish: per partition (whole buyers): drop exact duplicates to quarantine/duplicates, re-key
    buyer ids with a salted hash when asked, cut sessions at inactivity where the source has none,
    sort, and write `events/store_id=<s>/bucket=<b>/part-0.parquet`.
A finished phase-1 leaves `_staging/_SUCCESS`; finished partitions are skipped, so an interrupted
run resumes where it stopped. The report (ingest_report.json) always satisfies
read = kept + sum(quarantined), per run; `ingest()` raises if it would not.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil

import polars as pl

from simpersona_jax.data import schema, sessionize, validate
from simpersona_jax.data.sources import Mapping, SchemaError, load_events

QUARANTINE_COLUMNS = (*schema.COLUMNS, "_raw_time", "_raw_event", "_raw_price", "_file", "_row",
                      "reason")


def pseudonymize(ids: pl.Series, salt: str) -> pl.Series:
    """Salted SHA-256 re-keying of ids (first 16 hex digits); stable for a given salt."""
    uniq = ids.unique()
    keyed = [hashlib.sha256((salt + v).encode()).hexdigest()[:16] for v in uniq.to_list()]
    return ids.replace_strict(uniq, keyed, return_dtype=pl.String)


def _check_first_rows(events: pl.LazyFrame, sample: int = 1000) -> None:
    """Fails fast when a whole column is unusable (wrong time format, wrong event column)."""
    head = events.head(sample).collect()
    if head.height == 0:
        return
    for col, raw, what in (("event_time", "_raw_time", "a time"),
                           ("event_type", "_raw_event", "a known event type")):
        if head[col].null_count() == head.height and head[raw].null_count() < head.height:
            example = head[raw].drop_nulls()[0]
            raise SchemaError(f"{head['_file'][0]}: column for {col!r}: none of the first "
                              f"{head.height} values parse as {what} (e.g. {example!r}); "
                              "check ingest.source / ingest.mapping")


def stage(events: pl.LazyFrame, staging: str, buckets: int) -> dict[str, int]:
    """Phase 1; returns rows read per input file."""
    if os.path.exists(os.path.join(staging, "_SUCCESS")):
        with open(os.path.join(staging, "_SUCCESS")) as f:
            return json.load(f)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    rows = events.with_columns(reason=validate.reason_expr())
    good = (rows.filter(pl.col("reason").is_null())
            .select(*schema.COLUMNS, bucket=(pl.col("buyer_id").hash(seed=17) % buckets)
                    .cast(pl.Int32)))
    sinks = [
        good.sink_parquet(pl.PartitionBy(os.path.join(staging, "good"), key=["store_id", "bucket"],
                                         include_key=False), lazy=True, mkdir=True),
        rows.filter(pl.col("reason").is_not_null()).select(QUARANTINE_COLUMNS)
        .sink_parquet(os.path.join(staging, "invalid.parquet"), lazy=True),
        rows.group_by("_file").agg(pl.len()),
    ]
    counts = pl.collect_all(sinks)[-1]
    read = dict(zip(counts["_file"].to_list(), counts["len"].to_list()))
    with open(os.path.join(staging, "_SUCCESS"), "w") as f:
        json.dump(read, f)
    return read


def finish_partition(part_dir: str, out_dir: str, salt: str | None, gap_minutes: float) -> None:
    """Phase 2 for one staged partition (hive dir store_id=<s>/bucket=<b>)."""
    rel = os.path.relpath(part_dir, os.path.join(out_dir, "_staging", "good"))
    target = os.path.join(out_dir, "events", rel, "part-0.parquet")
    if os.path.exists(target):
        return
    store, bucket = (kv.split("=", 1)[1] for kv in rel.split(os.sep))
    frame = pl.read_parquet(os.path.join(part_dir, "*.parquet")).with_columns(
        store_id=pl.lit(store)).select(schema.COLUMNS)
    first = frame.select(pl.struct(pl.all()).is_first_distinct()).to_series()
    dupes = frame.filter(~first)
    if dupes.height:
        dupes.with_columns(*[pl.lit(None, pl.String).alias(c) for c in
                             ("_raw_time", "_raw_event", "_raw_price", "_file")],
                           _row=pl.lit(None, pl.Int64), reason=pl.lit("duplicate")) \
            .write_parquet(os.path.join(out_dir, "quarantine", f"duplicate-{store}-{bucket}.parquet"))
    frame = frame.filter(first)
    if salt:
        frame = frame.with_columns(buyer_id=pseudonymize(frame["buyer_id"], salt))
    frame = (sessionize.sessionize(frame.lazy(), gap_minutes)
             .sort("buyer_id", "event_time", "session_id", maintain_order=True).collect())
    os.makedirs(os.path.dirname(target), exist_ok=True)
    frame.write_parquet(target + ".tmp")
    os.replace(target + ".tmp", target)


def summarize(out_dir: str, read: dict[str, int]) -> dict:
    events = pl.scan_parquet(os.path.join(out_dir, "events", "**", "*.parquet"), hive_partitioning=True)
    quarantine = pl.scan_parquet(os.path.join(out_dir, "quarantine", "*.parquet"))
    reasons = dict(quarantine.group_by("reason").agg(pl.len()).collect().rows())
    kept = events.select(pl.len()).collect().item()
    strata = dict(sessionize.assign_strata(events).group_by("stratum").agg(pl.len())
                  .collect().sort("stratum").rows())
    report = {
        "read": int(sum(read.values())), "read_per_file": read, "kept": int(kept),
        "quarantined": int(sum(reasons.values())), "quarantined_by_reason": reasons,
        "buyers": events.select(pl.struct("store_id", "buyer_id").n_unique()).collect().item(),
        "sessions": events.select(pl.struct("store_id", "session_id").n_unique()).collect().item(),
        "stores": sorted(events.select(pl.col("store_id").unique()).collect()["store_id"].to_list()),
        "events_by_type": {str(k): v for k, v in events.group_by("event_type").agg(pl.len())
                           .collect().sort("event_type").rows()},
        "strata": {str(k): v for k, v in strata.items()},
    }
    if report["read"] != report["kept"] + report["quarantined"]:
        raise AssertionError(f"row accounting broken: read {report['read']} != kept "
                             f"{report['kept']} + quarantined {report['quarantined']}")
    return report


def ingest(paths, out_dir: str, *, source: str = "auto", store_id: str | None = None,
           mapping: Mapping | dict | None = None, buckets: int = 8, session_gap_minutes: float = 30.0,
           pseudonymize_salt: str | None = None, progress=None) -> dict:
    """Runs both phases and writes `ingest_report.json`; returns the report."""
    if isinstance(mapping, dict):
        mapping = Mapping.from_config(mapping)
    os.makedirs(os.path.join(out_dir, "quarantine"), exist_ok=True)
    staging = os.path.join(out_dir, "_staging")
    events = load_events(paths, source=source, store_id=store_id, mapping=mapping,
                         tmp_dir=os.path.join(out_dir, "_tmp"))
    if not os.path.exists(os.path.join(staging, "_SUCCESS")):
        _check_first_rows(events)
    read = stage(events, staging, buckets)
    shutil.copyfile(os.path.join(staging, "invalid.parquet"),
                    os.path.join(out_dir, "quarantine", "invalid.parquet"))
    parts = sorted(glob.glob(os.path.join(staging, "good", "store_id=*", "bucket=*")))
    for part in parts:
        finish_partition(part, out_dir, pseudonymize_salt, session_gap_minutes)
        progress and progress(1)
    report = summarize(out_dir, read)
    with open(os.path.join(out_dir, "ingest_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    shutil.rmtree(os.path.join(out_dir, "_tmp"), ignore_errors=True)
    return report
