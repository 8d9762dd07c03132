"""Buyer vectors on disk (tensorstore zarr + Parquet metadata) and their Grain loaders.

`<buyers_dir>/vectors.zarr` holds the dense [N, 403] float32 matrix, chunked by rows;
`meta.parquet` is row-aligned (buyer_id, store_id, store, split, stratum, labels, true_type);
`stats.json` holds the standardisation statistics and label thresholds fitted on training stores.
"""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import tensorstore as ts

LABELS: tuple[str, ...] = (
    "stratum",
    "purchase_hi",
    "explore_hi",
    "engage_hi",
    "store",
    "true_type",
)
SPLITS = ("train", "heldout", "all")
CHUNK_ROWS = 1024


def _spec(path: str) -> dict:
    return {"driver": "zarr", "kvstore": {"driver": "file", "path": os.path.abspath(path)}}


def create_matrix(path: str, rows: int, dim: int) -> ts.TensorStore:
    # No fsync per chunk: the matrix is derived data, and stats.json (written last) marks it done.
    return ts.open(
        {
            **_spec(path),
            "metadata": {
                "dtype": "<f4",
                "shape": [rows, dim],
                "chunks": [CHUNK_ROWS, dim],
                "compressor": None,
            },
            "context": {"file_io_sync": False},
        },
        create=True,
        delete_existing=True,
    ).result()


def open_matrix(path: str) -> ts.TensorStore:
    return ts.open(
        {**_spec(path), "context": {"cache_pool": {"total_bytes_limit": 256 << 20}}},
        open=True,
        read=True,
    ).result()


def read_meta(buyers_dir: str) -> pl.DataFrame:
    return pl.read_parquet(os.path.join(buyers_dir, "meta.parquet"))


def split_meta(buyers_dir: str, split: str, columns: list[str]) -> pl.DataFrame:
    """`columns` of a split's rows of meta.parquet ("train", "heldout" or "all"), in file (row)
    order; only those columns are read (buyer ids and store names cost more than labels)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    meta = pl.scan_parquet(os.path.join(buyers_dir, "meta.parquet"))
    if split != "all":
        meta = meta.filter(pl.col("split") == split)
    return meta.select(columns).collect()


def read_stats(buyers_dir: str) -> dict:
    with open(os.path.join(buyers_dir, "stats.json")) as f:
        return json.load(f)


def split_rows(buyers_dir: str, split: str) -> np.ndarray:
    """Sorted row indices of a split ("train", "heldout" or "all")."""
    return split_meta(buyers_dir, split, ["row"])["row"].to_numpy().astype(np.int64)


class BuyerSource:
    """Random access to one split's buyers: `source[i]` -> dict of x [403] and int labels.

    Implements Grain's RandomAccessDataSource protocol (`__len__`, `__getitem__`, `__getitems__`)
    for per-buyer pipelines, and `take(positions)` for whole batches (ShuffledBatches, which the
    training loaders use). Holds the split in memory when it is smaller than `in_memory_bytes`,
    else reads rows from the zarr array through tensorstore (one sorted read per batch).
    """

    def __init__(self, buyers_dir: str, split: str = "train", in_memory_bytes: int = 2 << 30):
        self.buyers_dir = buyers_dir
        self.split = split
        meta = split_meta(buyers_dir, split, ["row", *LABELS])
        self._rows = meta["row"].to_numpy().astype(np.int64)
        self._labels = {k: meta[k].to_numpy().astype(np.int32) for k in LABELS}
        self._matrix = open_matrix(os.path.join(buyers_dir, "vectors.zarr"))
        self.dim = int(self._matrix.shape[1])
        self._dense = None
        if len(self._rows) * self.dim * 4 <= in_memory_bytes:
            self._dense = self._read(np.arange(len(self._rows)))

    @property
    def in_memory(self) -> bool:
        return self._dense is not None

    def __len__(self) -> int:
        return len(self._rows)

    def _read(self, idx: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return self._dense[idx]
        rows = self._rows[idx]
        order = np.argsort(rows)
        out = np.empty((len(rows), self.dim), np.float32)
        out[order] = self._matrix[ts.d[0].translate_to[0]][rows[order]].read().result()
        return out

    def take(self, idx) -> dict[str, np.ndarray]:
        """Buyers at positions `idx` of the split as stacked arrays (x [n, 403], labels, row)."""
        idx = np.asarray(idx, np.int64)
        out = {k: v[idx] for k, v in self._labels.items()}
        out["x"] = self._read(idx)
        out["row"] = self._rows[idx]
        return out

    def __getitem__(self, i) -> dict:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"buyer index {i} out of range for split {self.split!r} ({len(self)})")
        return self.__getitems__([i])[0]

    def __getitems__(self, indices) -> list[dict]:
        batch = self.take(indices)
        return [{k: v[n] for k, v in batch.items()} for n in range(len(batch["x"]))]

    def __repr__(self) -> str:
        return f"BuyerSource({self.buyers_dir!r}, split={self.split!r}, n={len(self)})"


def load_arrays(buyers_dir: str, split: str = "all") -> dict[str, np.ndarray]:
    """The whole split as stacked numpy arrays (x [N, 403], labels [N], row [N]).
    At scale prefer iter_batches / sample_positions: this holds N x 403 floats."""
    src = BuyerSource(buyers_dir, split, in_memory_bytes=0)
    return src.take(np.arange(len(src)))


def iter_batches(source, batch_size: int):
    """Consecutive batches (dicts of stacked arrays) of anything with len() and take(positions),
    e.g. a BuyerSource opened with in_memory_bytes=0: only one batch of x is read at a time."""
    for start in range(0, len(source), batch_size):
        yield source.take(np.arange(start, min(start + batch_size, len(source))))


def sample_positions(n: int, m: int, seed: int) -> np.ndarray:
    """Sorted positions of min(m, n) of n buyers drawn without replacement (all n, in order,
    when m >= n); sorted so that reading them from the matrix is one ordered pass."""
    return np.sort(np.random.default_rng(seed).choice(n, min(m, n), replace=False))


def host_positions(n: int, shard_index: int, shard_count: int) -> np.ndarray:
    """This host's positions of a split of n buyers: the contiguous range [i * s, (i + 1) * s)
    with s = n // count on every host (so all hosts make the same number of batches; the last
    n % count buyers are left out); each host reads its own chunks of the matrix."""
    share = n // shard_count
    return np.arange(shard_index * share, (shard_index + 1) * share)


def epoch_order(n: int, seed: int, epoch: int, pool_rows: int | None = None) -> np.ndarray:
    """The order of positions 0..n-1 in one epoch.

    pool_rows None or >= n: a uniform random permutation. Otherwise a pool shuffle that keeps
    reads local: blocks of CHUNK_ROWS consecutive positions in random order, taken
    pool_rows // CHUNK_ROWS blocks at a time, each pool's rows shuffled. A batch then touches
    only its pool's chunks (which the tensorstore cache holds while the pool is read) instead of
    one chunk per buyer.
    """
    rng = np.random.default_rng([seed, epoch])
    if pool_rows is None or n <= pool_rows:
        return rng.permutation(n)
    starts = rng.permutation(np.arange(0, n, CHUNK_ROWS))
    per_pool = max(1, pool_rows // CHUNK_ROWS)
    pools = []
    for p in range(0, len(starts), per_pool):
        rows = np.concatenate(
            [np.arange(a, min(a + CHUNK_ROWS, n)) for a in starts[p : p + per_pool]]
        )
        pools.append(rows[rng.permutation(len(rows))])
    return np.concatenate(pools)


class ShuffledBatches:
    """Grain random-access source whose element i is batch i of a run of epochs over
    `positions` of `source` (anything with `take(positions) -> dict of stacked arrays`: a
    BuyerSource reads one sorted tensorstore request per batch). Each epoch has its own order
    (epoch_order, seeded by (seed, epoch)); `shuffle=False` keeps position order. Whole batches
    are read at once: a per-buyer Grain pipeline costs ~0.1 ms a buyer in Python alone."""

    ENDLESS = 1 << 20  # epochs when num_epochs is None

    def __init__(
        self,
        source,
        batch_size: int,
        *,
        seed: int,
        positions=None,
        shuffle: bool = True,
        num_epochs: int | None = None,
        drop_remainder: bool = True,
        pool_rows: int | None = None,
    ):
        self.source, self.batch_size, self.seed = source, batch_size, seed
        self.positions = np.arange(len(source)) if positions is None else np.asarray(positions)
        n = len(self.positions)
        self.per_epoch = n // batch_size if drop_remainder else -(-n // batch_size)
        if self.per_epoch == 0:
            raise ValueError(f"{n} buyers on this host < batch {batch_size}")
        self.epochs = self.ENDLESS if num_epochs is None else num_epochs
        self.shuffle, self.pool_rows = shuffle, pool_rows
        self._orders: dict[int, np.ndarray] = {}  # the last two epochs' orders (reader threads)

    def __len__(self) -> int:
        return self.per_epoch * self.epochs

    def __getitem__(self, i) -> dict[str, np.ndarray]:
        if not 0 <= int(i) < len(self):
            raise IndexError(f"batch {i} out of range ({len(self)})")
        epoch, j = divmod(int(i), self.per_epoch)
        order = self._orders.get(epoch)
        if order is None:  # threads at an epoch boundary read two epochs: both stay cached
            n = len(self.positions)
            order = (
                epoch_order(n, self.seed, epoch, self.pool_rows) if self.shuffle else np.arange(n)
            )
            self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1} | {
                epoch: order
            }
        return self.source.take(
            self.positions[order[j * self.batch_size : (j + 1) * self.batch_size]]
        )


def make_dataset(
    buyers_dir: str,
    split: str,
    global_batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    drop_remainder: bool = True,
    pool_rows: int = 32 * CHUNK_ROWS,
    in_memory_bytes: int = 2 << 30,
):
    """This host's slice of the split as a grain.MapDataset of per-host batches (dicts of x
    [b, 403], labels, row), shuffled per epoch (a pool shuffle of `pool_rows` when read from
    disk: see epoch_order)."""
    import grain  # local: building vectors needs neither grain nor jax start-up
    import jax

    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
    if global_batch_size % shard_count:
        raise ValueError(
            f"global batch {global_batch_size} is not divisible by {shard_count} hosts"
        )
    source = BuyerSource(buyers_dir, split, in_memory_bytes=in_memory_bytes)
    batches = ShuffledBatches(
        source,
        global_batch_size // shard_count,
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        positions=host_positions(len(source), shard_index, shard_count),
        drop_remainder=drop_remainder,
        pool_rows=None if source.in_memory else pool_rows,
    )
    return grain.MapDataset.source(batches)


def make_loader(buyers_dir: str, split: str, global_batch_size: int, **kwargs):
    """A checkpointable iterator (`get_state()` / `set_state()`) over host-local batches."""
    return iter(make_dataset(buyers_dir, split, global_batch_size, **kwargs).to_iter_dataset())
