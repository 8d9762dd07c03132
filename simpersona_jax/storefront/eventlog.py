"""Append-only canonical event log written by the storefront.

Events are buffered in memory and flushed as Parquet segments in the canonical on-disk layout,
`<log_dir>/store_id=<s>/bucket=0/part-<writer>-<seq>.parquet`, each written to a temporary name
and renamed into place, so a reader (the buyer pipeline, `read_log`) only ever sees whole
segments. Every event is written exactly once: a flush takes the buffer under a lock and a
segment is never rewritten. Several processes can share one log directory (the writer id holds
the pid and a random tag).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid

import polars as pl

from simpersona_jax.data.schema import COLUMNS, SCHEMA


class EventLog:
    def __init__(self, log_dir: str, max_buffer: int = 2000):
        self.log_dir = log_dir
        self.max_buffer = max_buffer
        self.writer_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._rows: list[tuple] = []
        self._seq = 0
        self._lock = threading.Lock()
        self.written = 0
        os.makedirs(log_dir, exist_ok=True)

    def append(self, store_id: str, buyer_id: str, session_id: str, event_type: str, *,
               product_id=None, category=None, brand=None, title=None, price=None,
               quantity=None, query=None, event_time: dt.datetime | None = None) -> None:
        if event_type not in SCHEMA["event_type"].categories:
            raise ValueError(f"unknown event_type {event_type!r}")
        t = event_time or dt.datetime.now(dt.timezone.utc)
        row = (store_id, buyer_id, session_id, t, event_type, product_id, category, brand, title,
               price, quantity, query)
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.max_buffer
        if full:
            self.flush()

    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Writes buffered events as one segment per store; returns the number written."""
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return 0
            seq = self._seq
            self._seq += 1
            frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
            for (store_id,), part in frame.partition_by("store_id", as_dict=True).items():
                folder = os.path.join(self.log_dir, f"store_id={store_id}", "bucket=0")
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, f"part-{self.writer_id}-{seq:06d}.parquet")
                part.write_parquet(path + ".tmp")
                os.replace(path + ".tmp", path)
            self.written += len(rows)
            return len(rows)


def read_log(log_dir: str) -> pl.DataFrame:
    """All flushed events as a canonical frame, in event-time order (ties: write order)."""
    pattern = os.path.join(log_dir, "**", "*.parquet")
    if not any(True for _ in _iter_parquet(log_dir)):
        return pl.DataFrame(schema=SCHEMA)
    frame = pl.scan_parquet(pattern, hive_partitioning=True).select(COLUMNS).collect()
    return frame.sort("event_time", maintain_order=True)


def _iter_parquet(log_dir: str):
    for root, _, files in os.walk(log_dir):
        for f in files:
            if f.endswith(".parquet"):
                yield os.path.join(root, f)
