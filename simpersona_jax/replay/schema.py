"""Trace schema (one row per agent step) and the shard writer (`traces-%05d.parquet`)."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

TRACE_SCHEMA = pa.schema(
    [
        ("store_id", pa.string()),
        ("buyer_id", pa.string()),
        ("session_id", pa.string()),
        ("persona", pa.int32()),  # -1 until buyers are assigned VQ codes
        ("step", pa.int32()),
        ("goal_neutral", pa.string()),
        ("goal_intent", pa.string()),
        ("history", pa.list_(pa.string())),  # the last <= 5 actions before this step
        ("observation", pa.string()),
        ("action", pa.string()),
    ]
)


class TraceWriter:
    """Buffers rows and writes shards of `rows_per_shard` rows, each atomically (tmp + rename)."""

    def __init__(self, out_dir: str, rows_per_shard: int = 20_000):
        self.out_dir, self.rows_per_shard = out_dir, rows_per_shard
        self.rows: list[dict] = []
        self.shards: list[str] = []
        self.n_rows = 0
        os.makedirs(out_dir, exist_ok=True)

    def add(self, rows: list[dict]) -> None:
        self.rows += rows
        while len(self.rows) >= self.rows_per_shard:
            self._write(self.rows[: self.rows_per_shard])
            self.rows = self.rows[self.rows_per_shard :]

    def close(self) -> list[str]:
        if self.rows:
            self._write(self.rows)
            self.rows = []
        return self.shards

    def _write(self, rows: list[dict]) -> None:
        path = os.path.join(self.out_dir, f"traces-{len(self.shards):05d}.parquet")
        table = pa.Table.from_pylist(rows, schema=TRACE_SCHEMA)
        pq.write_table(table, path + ".tmp", compression="zstd")
        os.replace(path + ".tmp", path)
        self.shards.append(path)
        self.n_rows += len(rows)
