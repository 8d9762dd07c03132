"""Raw event files -> canonical LazyFrames: format sniffing, source detection, schema checks.

`load_events(paths, source="auto", store_id=None)` accepts files, directories and globs; CSV/TSV
(plain, .gz, .zst), Parquet and JSONL (OTTO). Each file's source is detected from its header (or
named); a file missing a column its source needs fails fast with a `SchemaError` naming the file
and the column. Row-level problems are not handled here but by `simpersona_jax.data.validate`.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import shutil
import tempfile

import polars as pl
import zstandard

from simpersona_jax.data import schema
from simpersona_jax.data.sources import builtin, items, text
from simpersona_jax.data.sources.mapping import (
    BOOKKEEPING,
    Mapping,
    SchemaError,
    load_mapping_file,
    to_canonical,
)

__all__ = [
    "SchemaError",
    "Mapping",
    "expand_paths",
    "load_events",
    "load_mapping_file",
    "read_file",
    "detect",
]

OTTO = Mapping(
    name="otto",
    signature=("session", "events"),
    columns=dict(buyer_id="session", event_time="ts", product_id="aid"),
    event_column="type",
    events=dict(
        clicks="product_viewed", carts="product_added_to_cart", orders="checkout_completed"
    ),
    time_format="epoch_ms",
    default_quantity=1,
)


def expand_paths(paths) -> list[str]:
    """Files from paths, directories (recursively) and globs, sorted; errors on no match."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(
                f
                for f in glob.glob(os.path.join(p, "**", "*"), recursive=True)
                if os.path.isfile(f)
            )
        else:
            found = sorted(glob.glob(p, recursive=True)) if any(c in p for c in "*?[") else [p]
        if not found or not all(os.path.isfile(f) for f in found):
            raise FileNotFoundError(f"input {p!r} matches no readable file")
        out += found
    return out


def _open_text(path: str) -> io.BufferedReader:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst") or path.endswith(".zstd"):
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))
    return open(path, "rb")


def _kind(path: str) -> str:
    base = path.lower()
    for ext in (".gz", ".zst", ".zstd"):
        base = base.removesuffix(ext)
    if base.endswith(".parquet"):
        return "parquet"
    if base.endswith(".jsonl") or base.endswith(".ndjson") or base.endswith(".json"):
        return "jsonl"
    return "csv"


def _header(path: str) -> tuple[list[str], str]:
    with _open_text(path) as f:
        line = f.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
    sep = max((";", ",", "\t", "|"), key=line.count)
    return [c.strip().strip('"') for c in line.split(sep)], sep


def detect(path: str, source: str = "auto") -> Mapping | str:
    """The mapping for a file, or the kind of an item table (items.KINDS, e.g.
    "diginetica_categories") for a file that describes products, not events."""
    kind = _kind(path)
    if kind == "jsonl":
        return OTTO
    if kind == "parquet":
        header = pl.read_parquet_schema(path).names()
    else:
        header, _ = _header(path)
    item_kind = items.kind_of(header)
    if item_kind:
        return item_kind
    candidates = [m for m in builtin.MAPPINGS if source == "auto" or m.name.startswith(source)]
    for m in candidates:
        if set(m.signature) <= set(header):
            return m
    if source != "auto" and candidates:
        return candidates[0]  # named source: read_file reports the columns it misses
    raise SchemaError(
        f"{path}: cannot tell the source from its header {header}; name it with "
        f"--config.ingest.source (one of rees46, retailrocket, diginetica, otto, "
        f"canonical) or give a --config.ingest.mapping"
    )


def _local_copy(path: str, tmp_dir: str) -> str:
    """A compressed text file streamed to an uncompressed temp copy (once per run), so that
    polars can scan it lazily; other files are returned as they are."""
    if not path.endswith((".gz", ".zst", ".zstd")):
        return path
    os.makedirs(tmp_dir, exist_ok=True)
    out = os.path.join(tmp_dir, f"{abs(hash(path)):x}-" + os.path.basename(path) + ".txt")
    if not os.path.exists(out):
        with _open_text(path) as src, open(out + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst, 16 << 20)
        os.replace(out + ".part", out)
    return out


def _check_parquet_types(path: str) -> None:
    allowed = {
        "event_time": (pl.Datetime, pl.Date, pl.String),
        "price": (pl.Float64, pl.Float32, pl.Int64, pl.Int32, pl.Decimal),
        "quantity": (pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt32, pl.UInt16, pl.UInt8),
    }
    for col, dtype in pl.read_parquet_schema(path).items():
        ok = allowed.get(col)
        if ok and not isinstance(dtype, ok) and dtype not in ok and dtype != pl.Null:
            raise SchemaError(
                f"{path}: column {col!r} has type {dtype}, expected one of "
                f"{[t.__name__ if isinstance(t, type) else str(t) for t in ok]}"
            )


def _scan_text(path: str, mapping: Mapping, tmp_dir: str, n_rows: int | None) -> pl.LazyFrame:
    """A delimited text file as strings with `_row`, `_truncated` and `_extra`; blank lines
    dropped (they are not rows). `n_rows`: only the first rows, without the line checks."""
    local = _local_copy(path, tmp_dir)
    sep = mapping.separator
    if sep == ",":  # the default: trust the first line's own separator
        sep = _header(path)[1]
    text.check_width(local, sep, mapping, path)
    header = text.has_header(local, sep, mapping)
    raw = pl.scan_csv(
        local,
        separator=sep,
        has_header=header,
        new_columns=list(mapping.column_names) if mapping.column_names else None,
        infer_schema=False,
        null_values=list(mapping.null_values),
        n_rows=n_rows,
        truncate_ragged_lines=True,
    ).with_row_index("_row", offset=1)
    width = len(raw.collect_schema().names()) - 1
    if n_rows:
        return raw.with_columns(_truncated=pl.lit(False), _extra=pl.lit(False))
    blank, extra = text.line_issues(local, sep, width, header)
    cut = text.truncated_last_row(local, sep, width, header)
    row = pl.col("_row").cast(pl.Int64)
    return raw.filter(~row.is_in(blank)).with_columns(
        _truncated=pl.lit(False) if cut is None else row == cut, _extra=row.is_in(extra)
    )


def read_file(
    path: str, mapping: Mapping, store_id: str | None, tmp_dir: str, n_rows: int | None = None
) -> pl.LazyFrame:
    """One file as a canonical LazyFrame with bookkeeping columns (see mapping.BOOKKEEPING).

    `n_rows` reads only the first rows (a cheap look at a file before the real pass).
    """
    kind = _kind(path)
    if kind == "parquet":
        raw = pl.scan_parquet(path)
        _check_parquet_types(path)
        if mapping.name == "canonical":
            raw = raw.with_columns(pl.col("event_time").cast(pl.String))
        header = raw.collect_schema().names()
    elif kind == "jsonl":
        raw = (
            pl.scan_ndjson(
                _local_copy(path, tmp_dir),
                schema={
                    "session": pl.Int64,
                    "events": pl.List(
                        pl.Struct({"aid": pl.Int64, "ts": pl.Int64, "type": pl.String})
                    ),
                },
                ignore_errors=True,
            )
            .with_row_index("_row", offset=1)
            .explode("events")
            .unnest("events")
        )
        header = ["session", "aid", "ts", "type", "_row"]
    else:
        raw = _scan_text(path, mapping, tmp_dir, n_rows)
        header = [
            c for c in raw.collect_schema().names() if c not in ("_row", "_truncated", "_extra")
        ]
    mapping = mapping.for_header(header)
    missing = sorted(mapping.source_columns() - set(header))
    if missing:
        raise SchemaError(
            f"{path}: missing column(s) {missing} required by source "
            f"{mapping.name!r} (header: {header})"
        )
    if n_rows and kind != "csv":
        raw = raw.head(n_rows)
    if "_row" not in raw.collect_schema().names():
        raw = raw.with_row_index("_row", offset=1)
    if "_truncated" not in raw.collect_schema().names():
        raw = raw.with_columns(_truncated=pl.lit(False), _extra=pl.lit(False))
    raw = raw.with_columns(pl.col("_row").cast(pl.Int64), pl.lit(path).alias("_file"))
    return to_canonical(raw, mapping, store_id)


def load_events(
    paths,
    source: str = "auto",
    store_id: str | None = None,
    mapping: Mapping | None = None,
    tmp_dir: str | None = None,
    n_rows: int | None = None,
) -> pl.LazyFrame:
    """All inputs as one canonical LazyFrame (with bookkeeping columns, not yet validated)."""
    tmp_dir = tmp_dir or tempfile.mkdtemp(prefix="simpersona_ingest_")
    frames, item_tables = [], []
    for path in expand_paths(paths):
        m = mapping or detect(path, source)
        if isinstance(m, str):  # an item table (items.KINDS)
            item_tables.append((m, path, _header(path)[1]))
        else:
            frames.append(read_file(path, m, store_id, tmp_dir, n_rows))
    if not frames:
        raise FileNotFoundError(f"no event files among {paths} (only item tables)")
    events = items.attach(pl.concat(frames, how="vertical"), item_tables)
    return events.select(*schema.COLUMNS, *BOOKKEEPING)
