"""Partition-parallel map for the ETL: threads, results in input order, bounded in flight.

Partitions are independent and polars releases the GIL while it works, so a few threads keep
every core busy on the many small per-partition queries (which polars itself mostly runs on one
thread). At most `workers + 1` results are in flight, so memory stays bounded by a few
partitions however many there are.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None
) -> Iterator[R]:
    """Yields fn(item) for each item, in order, computing up to `workers` at once."""
    workers = workers or default_workers()
    if workers == 1:
        yield from map(fn, items)
        return
    with cf.ThreadPoolExecutor(workers) as pool:
        pending: collections.deque[cf.Future] = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
