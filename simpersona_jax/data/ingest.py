"""Raw event logs -> validated, sessionised, partitioned canonical events + quarantine + report.

Two streaming phases, bounded in memory by the partition size, not the input size:
 1. stage: scan every input once (lazy/streaming polars), map to canonical, attach a quarantine
    reason per row, and sink good rows partitioned by bucket = hash(store_id, buyer_id) % buckets
    and bad rows to quarantine/invalid; rows read per file are counted in the same pass. Buckets
    are sized from the input, not per store, so a partition holds about `rows_per_partition`
    rows however the rows spread over stores, and phase 1 keeps few partitions open.
 2. finish: per partition (whole buyers): drop exact duplicates to quarantine/duplicates, re-key
    buyer ids with a salted hash when asked, cut sessions at inactivity where the source has none,
    sort, and write `events/store_id=<s>/bucket=<b>/part-0.parquet` for each store in it.
A finished phase-1 leaves `_staging/_SUCCESS` and a finished partition its list of outputs in
`_FINISHED`; finished partitions are skipped, so an interrupted run resumes where it stopped
(`_staging/` is removed once a run completes). The report (ingest_report.json) always satisfies
read = kept + sum(quarantined), per run; `ingest()` raises if it would not.
"""

from __future__ import annotations

import collections
import functools
import glob
import hashlib
import json
import os
import shutil
import urllib.parse

import numpy as np
import polars as pl

from simpersona_jax.data import parallel, schema, sessionize, validate
from simpersona_jax.data.sources import (
    Mapping,
    SchemaError,
    detect,
    expand_paths,
    load_events,
    load_mapping_file,
    times,
)

QUARANTINE_SCHEMA = {
    **schema.SCHEMA,
    "_raw_time": pl.String(),
    "_raw_event": pl.String(),
    "_raw_price": pl.String(),
    "_file": pl.String(),
    "_row": pl.Int64(),
    "reason": pl.String(),
}
QUARANTINE_COLUMNS = tuple(QUARANTINE_SCHEMA)


def pseudonymize(ids: pl.Series, salt: str) -> pl.Series:
    """Salted SHA-256 re-keying of ids (first 16 hex digits); stable for a given salt."""
    uniq = ids.unique()
    keyed = [hashlib.sha256((salt + v).encode()).hexdigest()[:16] for v in uniq.to_list()]
    return ids.replace_strict(uniq, keyed, return_dtype=pl.String)


def _time_source(path: str, mapping: Mapping | None, source: str) -> tuple[str, str]:
    """(source column, time format) of a file's event_time, for error messages."""
    m = mapping or detect(path, source)
    col = m.columns["event_time"]
    return (col if isinstance(col, str) else str(col)), m.time_format


def _check_first_rows(head: pl.LazyFrame, time_source, bounds) -> None:
    """Fails fast when a file's column is unusable: no time parses (naming the formats that
    would), most times are implausible (naming the unit that would make them plausible), or no
    event type is known. Checked on each file's first rows."""
    head = head.collect()
    for (path,), rows in head.partition_by("_file", as_dict=True, maintain_order=True).items():
        raw = rows["_raw_time"].drop_nulls()
        if raw.len():
            column, fmt = time_source(path)
            parsed = rows["event_time"].drop_nulls()
            bad = parsed.len() == 0 or (~parsed.is_between(*bounds)).sum() * 2 > rows.height
            if bad:
                what = "none parse" if parsed.len() == 0 else "most are implausible times"
                fits = times.suggest_formats(raw.head(50).to_list(), bounds)
                hint = (
                    f"values look like {times.describe(fits[0])}"
                    if fits
                    else "no known format fits them; give a strptime time_format"
                )
                raise SchemaError(
                    f"{path}: time column {column!r}: of the first {rows.height} rows, {what} "
                    f"under time_format={fmt!r} (e.g. {raw[0]!r}; plausible: "
                    f"{bounds[0]:%Y-%m-%d} .. {bounds[1]:%Y-%m-%d}); {hint}"
                    + (f" (also: {', '.join(fits[1:])})" if len(fits) > 1 else "")
                )
        if (
            rows["event_type"].null_count() == rows.height
            and rows["_raw_event"].null_count() < rows.height
        ):
            example = rows["_raw_event"].drop_nulls()[0]
            raise SchemaError(
                f"{path}: column for 'event_type': none of the first {rows.height} "
                f"values is a known event type (e.g. {example!r}); check "
                "ingest.source / ingest.mapping"
            )


def stage(events: pl.LazyFrame, staging: str, buckets: int, bounds=None) -> None:
    """Phase 1: one streaming pass, every row lands in exactly one staged partition.

    Good rows go to `_q=false/bucket=<b>/`, rejected rows (with their reason) to
    `_q=true/bucket=0/`; all keep their raw values (a good row may turn out a duplicate in
    phase 2), `_file` and `_row`, so that every quarantined row can be located and explained.
    `bounds`: the plausible time window (validate.reason_expr).
    """
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    reason = validate.reason_expr(bounds)
    rejected = pl.col("reason").is_not_null()
    rows = events.with_columns(reason=reason).with_columns(
        _q=rejected,
        bucket=pl.when(rejected)
        .then(0)
        .otherwise(pl.struct("store_id", "buyer_id").hash(seed=17) % buckets)
        .cast(pl.Int32),
    )
    rows.select(*QUARANTINE_COLUMNS, "_q", "bucket").sink_parquet(
        pl.PartitionBy(staging, key=["_q", "bucket"], include_key=False),
        mkdir=True,
        # Temporary data: cheap to write beats small. Every open partition buffers a row group,
        # so small row groups keep memory low when there are many partitions.
        compression="lz4",
        row_group_size=16_384,
    )
    open(os.path.join(staging, "_SUCCESS"), "w").close()


def _staged_partitions(staging: str, quarantined: bool) -> list[str]:
    return sorted(glob.glob(os.path.join(staging, f"_q={str(quarantined).lower()}", "bucket=*")))


def duplicate_mask(frame: pl.DataFrame) -> pl.Series:
    """True for each row that exactly repeats an earlier row (all canonical columns equal).

    Rows are matched by a 64-bit hash of all columns, then confirmed column by column against
    the first row with that hash, so a hash collision never drops a distinct row.
    """
    h = frame.select(pl.struct(schema.COLUMNS).hash(seed=3)).to_series()
    candidate = ~h.is_first_distinct()
    if not candidate.any():
        return candidate
    rows = frame.with_columns(_h=h, _i=pl.int_range(frame.height))
    firsts = rows.filter(~candidate & pl.col("_h").is_in(h.filter(candidate).implode()))
    confirmed = (
        rows.filter(candidate)
        .join(firsts.select("_h", *schema.COLUMNS), on="_h", suffix="_first")
        .filter(
            pl.all_horizontal([pl.col(c).eq_missing(pl.col(c + "_first")) for c in schema.COLUMNS])
        )["_i"]
    )
    return pl.Series(np.isin(np.arange(frame.height), confirmed.to_numpy()))


def _store_dir(store_id: str) -> str:
    return "store_id=" + urllib.parse.quote(store_id, safe="")


def finish_partition(
    part_dir: str, out_dir: str, salt: str | None, gap_minutes: float
) -> list[str]:
    """Phase 2 for one staged partition of good rows (whole buyers); the files it wrote."""
    bucket = os.path.basename(part_dir)
    marker = os.path.join(part_dir, "_FINISHED")
    if os.path.exists(marker):
        with open(marker) as f:
            done = json.load(f)
        if all(os.path.exists(p) for p in done):
            return done
    frame = pl.read_parquet(os.path.join(part_dir, "*.parquet"))
    dup = duplicate_mask(frame)
    dupes = frame.filter(dup)
    if dupes.height:
        dupes.with_columns(reason=pl.lit("duplicate")).select(QUARANTINE_COLUMNS).write_parquet(
            os.path.join(out_dir, "quarantine", f"duplicate-{bucket}.parquet")
        )
    frame = frame.filter(~dup).select(schema.COLUMNS)  # input order kept: no sort needed here
    if salt:
        frame = frame.with_columns(buyer_id=pseudonymize(frame["buyer_id"], salt))
    if frame["session_id"].null_count():
        frame = (
            sessionize.sessionize(frame.lazy(), gap_minutes)
            .sort("buyer_id", "event_time", maintain_order=True)
            .collect()
        )
    written = []
    for (store_id,), events in frame.partition_by(
        "store_id", as_dict=True, maintain_order=True
    ).items():
        target = os.path.join(out_dir, "events", _store_dir(store_id), bucket, "part-0.parquet")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        events.write_parquet(target + ".tmp", compression="lz4")
        os.replace(target + ".tmp", target)
        written.append(target)
    with open(marker, "w") as f:
        json.dump(written, f)
    return written


def rows_read(staging: str) -> dict[str, int]:
    """Rows per input file, counted over everything staged (good + rejected)."""
    counts = (
        pl.scan_parquet(os.path.join(staging, "**", "*.parquet"), hive_partitioning=False)
        .group_by("_file")
        .agg(pl.len())
        .collect()
    )
    return dict(sorted(zip(counts["_file"].to_list(), counts["len"].to_list())))


def partition_summary(paths: list[str]) -> dict:
    """Counts of one finished partition (whole buyers, so counts add up across partitions)."""
    events = pl.scan_parquet(paths) if paths else schema.empty_frame().lazy()
    one = (
        events.select(
            kept=pl.len(),
            buyers=pl.struct("store_id", "buyer_id").n_unique(),
            sessions=pl.struct("store_id", "buyer_id", "session_id").n_unique(),
        )
        .collect()
        .row(0, named=True)
    )
    one["stores"] = set(events.select(pl.col("store_id").unique()).collect()["store_id"])
    one["events_by_type"] = dict(events.group_by("event_type").agg(pl.len()).collect().rows())
    one["strata"] = dict(
        sessionize.assign_strata(events).group_by("stratum").agg(pl.len()).collect().rows()
    )
    return one


def summarize(out_dir: str, read: dict[str, int], partitions: list[dict]) -> dict:
    """The run report from the rows read and every finished partition's `partition_summary`."""
    quarantine = pl.scan_parquet(os.path.join(out_dir, "quarantine", "*.parquet"))
    reasons = dict(quarantine.group_by("reason").agg(pl.len()).collect().rows())
    total = {"kept": 0, "buyers": 0, "sessions": 0}
    stores, by_type, strata = set(), collections.Counter(), collections.Counter()
    for one in partitions:
        for k in total:
            total[k] += one[k]
        stores |= one["stores"]
        by_type.update({str(k): v for k, v in one["events_by_type"].items()})
        strata.update({str(k): v for k, v in one["strata"].items()})
    report = {
        "read": int(sum(read.values())),
        "read_per_file": read,
        "kept": total["kept"],
        "quarantined": int(sum(reasons.values())),
        "quarantined_by_reason": reasons,
        "buyers": total["buyers"],
        "sessions": total["sessions"],
        "stores": sorted(stores),
        "events_by_type": {k: by_type[k] for k in schema.EVENT_TYPES if k in by_type},
        "strata": {k: strata[k] for k in schema.STRATA if k in strata},
    }
    if report["read"] != report["kept"] + report["quarantined"]:
        raise AssertionError(
            f"row accounting broken: read {report['read']} != kept "
            f"{report['kept']} + quarantined {report['quarantined']}"
        )
    return report


def auto_buckets(paths, rows_per_partition: int = 2_000_000) -> int:
    """Buyer-hash buckets so that a partition stays near `rows_per_partition` rows.

    Estimated from input bytes (~100 bytes a row uncompressed, compressed files ~5x smaller), so
    that phase 2's memory is bounded whatever the input size. Buckets span stores.
    """
    est_bytes = sum(
        os.path.getsize(p) * (5 if p.endswith((".gz", ".zst", ".zstd")) else 1)
        for p in expand_paths(paths)
    )
    return max(1, -(-est_bytes // (100 * rows_per_partition)))


def ingest(
    paths,
    out_dir: str,
    *,
    source: str = "auto",
    store_id: str | None = None,
    mapping: Mapping | dict | str | None = None,
    buckets: int | str = "auto",
    session_gap_minutes: float = 30.0,
    pseudonymize_salt: str | None = None,
    rows_per_partition: int = 2_000_000,
    workers: int | None = None,
    keep_staging: bool = False,
    plausible_times: tuple[str | None, str | None] = (times.EARLIEST, None),
    progress=None,
) -> dict:
    """Runs both phases and writes `ingest_report.json`; returns the report.

    `buckets`: buyer-hash partitions (across stores), or "auto": about `rows_per_partition` rows a
    partition (phase 2 and the buyer step hold one partition per worker in memory at a time).
    `workers`: partitions finished at once (threads; default: the cores, at most 4).
    `mapping`: a Mapping, its fields as a dict, or the path of a mapping file (.json / .py).
    `keep_staging`: keep `_staging/` after a complete run (it is a second copy of the input, there
    only so that an interrupted run resumes; by default it is removed once the report is written).
    `plausible_times`: (earliest, latest) ISO dates; a time outside is quarantined as
    implausible_time (None: 1995-01-01 / now + 1 day).
    """
    if buckets == "auto":
        buckets = auto_buckets(paths, rows_per_partition)
    if isinstance(mapping, str):
        mapping = load_mapping_file(mapping)
    elif isinstance(mapping, dict):
        mapping = Mapping.from_config(mapping)
    staging = os.path.join(out_dir, "_staging")
    if not os.path.exists(os.path.join(staging, "_SUCCESS")):  # else resume after phase 1
        for old in ("events", "quarantine"):  # a fresh run: no outputs of an earlier one survive
            shutil.rmtree(os.path.join(out_dir, old), ignore_errors=True)
        read = functools.partial(
            load_events,
            paths,
            source=source,
            store_id=store_id,
            mapping=mapping,
            tmp_dir=os.path.join(out_dir, "_tmp"),
        )
        bounds = times.window(plausible_times)
        _check_first_rows(
            read(n_rows=1000),
            functools.partial(_time_source, mapping=mapping, source=source),
            bounds,
        )
        stage(read(), staging, buckets, bounds)
    os.makedirs(os.path.join(out_dir, "quarantine"), exist_ok=True)
    read = rows_read(staging)
    invalid = [os.path.join(p, f) for p in _staged_partitions(staging, True) for f in os.listdir(p)]
    pl.scan_parquet(invalid).sink_parquet(
        os.path.join(out_dir, "quarantine", "invalid.parquet")
    ) if invalid else pl.DataFrame(schema=QUARANTINE_SCHEMA).write_parquet(
        os.path.join(out_dir, "quarantine", "invalid.parquet")
    )
    finish = functools.partial(
        finish_partition, out_dir=out_dir, salt=pseudonymize_salt, gap_minutes=session_gap_minutes
    )
    summaries = []
    for one in parallel.ordered_map(
        lambda part: partition_summary(finish(part)), _staged_partitions(staging, False), workers
    ):
        summaries.append(one)
        progress and progress(1)
    report = summarize(out_dir, read, summaries)
    with open(os.path.join(out_dir, "ingest_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    shutil.rmtree(os.path.join(out_dir, "_tmp"), ignore_errors=True)
    if not keep_staging:
        shutil.rmtree(staging)
    return report
