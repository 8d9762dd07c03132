"""Delimited text files: header decision, column-count check and ragged / blank / cut-off lines.

polars reads the rows; what it would silently get wrong is settled here first, from the file's
own lines: whether the first line is a header when the mapping gives `column_names` (never lose
a data row), a `column_names` of the wrong length (named with the file and its first line), rows
with more fields than columns (quarantined as `extra_fields`, not cut), blank lines (not rows at
all) and a cut-off last line (`truncated_row`). Row numbers are 1-based data rows, as `_row`.
"""

from __future__ import annotations

import os

import polars as pl

from simpersona_jax.data.sources.mapping import Mapping, SchemaError
from simpersona_jax.data.sources.times import parse_time

_LINE = "\x1f"  # a separator no log uses: each line is read whole


def first_line(path: str) -> str:
    with open(path, "rb") as f:
        return f.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")


def _first_rows(path: str, sep: str, n: int) -> pl.DataFrame:
    return pl.read_csv(
        path,
        separator=sep,
        has_header=False,
        n_rows=n,
        infer_schema=False,
        truncate_ragged_lines=True,
    )


def check_width(path: str, sep: str, mapping: Mapping, shown: str) -> None:
    """`column_names` must name every column of the first line."""
    if not mapping.column_names:
        return
    found = _first_rows(path, sep, 1).width
    if found != len(mapping.column_names):
        raise SchemaError(
            f"{shown}: column_names gives {len(mapping.column_names)} names "
            f"{list(mapping.column_names)} but the first line has {found} fields separated by "
            f"{sep!r}: {first_line(path)[:200]!r}; give one name per column (or set separator)"
        )


def has_header(path: str, sep: str, mapping: Mapping) -> bool:
    """The mapping's has_header, else decided from the data when column_names are given: the
    first line is a header when its cells are the column names, or when its time does not parse
    while most of the next lines' do; otherwise it is a data row."""
    if mapping.has_header is not None:
        return mapping.has_header
    if not mapping.column_names:
        return True
    head = _first_rows(path, sep, 21)
    head.columns = list(mapping.column_names)
    cells = [str(v).strip().strip('"').lower() for v in head.row(0)]
    if cells == [c.lower() for c in mapping.column_names]:
        return True
    time_col = mapping.columns.get("event_time")
    if not isinstance(time_col, str) or time_col not in head.columns or head.height < 2:
        return False
    ok = head.select(parse_time(pl.col(time_col), mapping.time_format).is_not_null())[time_col]
    return not ok[0] and ok[1:].sum() * 2 > head.height - 1


def line_issues(path: str, sep: str, width: int, header: bool) -> tuple[list[int], list[int]]:
    """(blank rows, rows with more than `width` fields), as data-row numbers. Fields are
    counted outside double quotes, one line at a time."""
    lines = pl.scan_csv(
        path,
        separator=_LINE,
        quote_char=None,
        has_header=False,
        new_columns=["line"],
        infer_schema=False,
        truncate_ragged_lines=True,
    )
    line = pl.col("line")
    n_fields = line.str.replace_all(r'"[^"]*"', "").str.count_matches(sep, literal=True) + 1
    found = (
        lines.with_row_index("_row", offset=0 if header else 1)
        .filter(pl.col("_row") >= 1)
        .select(
            "_row", blank=line.is_null() | (line.str.strip_chars() == ""), extra=n_fields > width
        )
        .filter(pl.col("blank") | pl.col("extra"))
        .collect()
    )
    return (
        found.filter("blank")["_row"].cast(pl.Int64).to_list(),
        found.filter(~pl.col("blank") & pl.col("extra"))["_row"].cast(pl.Int64).to_list(),
    )


def truncated_last_row(path: str, sep: str, n_fields: int, header: bool = True) -> int | None:
    """Data-row number of a cut-off last line (no newline, too few fields), else None."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (1 << 16)))
        tail = f.read()
        if not tail or tail.endswith(b"\n"):
            return None
        last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
        if last.count(sep) + 1 >= n_fields:
            return None
        f.seek(0)
        newlines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(16 << 20), b""))
    # The last line is line newlines + 1; with a header line first, that is data row `newlines`.
    return newlines if header else newlines + 1
