"""Which sessions to replay into SFT traces: uniform, or balanced over the buyers' VQ codes.

A persona token learns only from the traces of buyers that carry it. A uniform sample of a few
hundred sessions leaves most of K=256 codes without a single trace (the issue measured 122 of
256 covered by 200 sessions), so a simulated buyer often carries an untrained token. With codes,
`sample_sessions` draws round-robin over codes, the codes that held-out buyers use first, each
code's sessions in a seeded random order, until `n` sessions: every code that has a training
session gets about n / K of them before any code gets more.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def session_sizes(events: pl.DataFrame) -> pl.DataFrame:
    """(store_id, buyer_id, session_id, len) per session, in a stable order."""
    return (
        events.group_by("store_id", "buyer_id", "session_id")
        .len()
        .sort("store_id", "buyer_id", "session_id")
    )


def sample_sessions(
    events: pl.DataFrame,
    n: int,
    max_events: int,
    seed: int,
    codes: pl.DataFrame | None = None,
    priority_codes: set[int] | None = None,
) -> tuple[pl.DataFrame, dict]:
    """(events of up to n sampled sessions, stats).

    codes: (store_id, buyer_id, code) for the buyers of `events`; None samples uniformly.
    priority_codes: codes to cover first (those held-out buyers use). Sessions longer than
    `max_events` are never drawn (counted in stats["too_long"]).
    """
    sizes = session_sizes(events)
    too_long = sizes.filter(pl.col("len") > max_events)
    sizes = sizes.filter(pl.col("len") <= max_events)
    stats = {"too_long": too_long.height}
    if codes is None:
        keys = sizes.sample(min(n, sizes.height), seed=seed, shuffle=True)
        stats["codes_covered"] = None
    else:
        keys = _balanced(sizes, codes, n, seed, priority_codes or set())
        covered = set(keys["code"].to_list())
        stats["codes_covered"] = len(covered)
        if priority_codes:
            stats["priority_codes"] = len(priority_codes)
            stats["priority_codes_covered"] = len(covered & set(priority_codes))
    keys = keys.select("store_id", "session_id")
    return events.join(keys, on=["store_id", "session_id"], how="semi"), stats


def _balanced(
    sizes: pl.DataFrame, codes: pl.DataFrame, n: int, seed: int, priority: set[int]
) -> pl.DataFrame:
    """Round-robin over codes: sort sessions by (rank within their code, code order), take n."""
    joined = sizes.join(
        codes.select("store_id", "buyer_id", pl.col("code").cast(pl.Int64)),
        on=["store_id", "buyer_id"],
        how="inner",
    )
    if joined.height == 0:
        raise ValueError(
            "no session's buyer has a code: the codes do not cover these events' "
            "buyers (check that codes.parquet comes from the same data)"
        )
    rng = np.random.default_rng(seed)
    order = joined["code"].unique().sort().to_numpy().copy()
    rng.shuffle(order)
    order = sorted(order.tolist(), key=lambda k: k not in priority)  # stable: priority first
    return (
        joined.with_columns(_u=pl.Series(rng.random(joined.height)))
        .sort("_u")
        .with_columns(
            _rank=pl.int_range(pl.len()).over("code"),
            _order=pl.col("code").replace_strict(order, list(range(len(order)))),
        )
        .sort("_rank", "_order")
        .head(n)
        .drop("_u", "_rank", "_order")
    )
