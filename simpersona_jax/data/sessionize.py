"""Sessionisation (source session ids, else inactivity cuts) and the funnel strata per buyer."""

from __future__ import annotations

import datetime as dt

import polars as pl

from simpersona_jax.data import schema


def sessionize(events: pl.LazyFrame, gap_minutes: float = 30.0) -> pl.LazyFrame:
    """Fills missing session ids by cutting each buyer's events at `gap_minutes` of inactivity.

    Rows that already have a session id keep it. Cut sessions are named
    `<buyer_id>#<n>` with n counting from 0 in time order per buyer.
    """
    gap = dt.timedelta(minutes=gap_minutes)
    keys = ["store_id", "buyer_id"]
    missing = pl.col("session_id").is_null()
    cut = (
        events.filter(missing)
        .sort(*keys, "event_time")
        .with_columns(
            _n=(
                (pl.col("event_time").diff().over(keys) > gap).fill_null(False).cum_sum().over(keys)
            )
        )
        .with_columns(session_id=pl.col("buyer_id") + "#" + pl.col("_n").cast(pl.String))
        .drop("_n")
    )
    return pl.concat([events.filter(~missing), cut])


def assign_strata(events: pl.LazyFrame) -> pl.LazyFrame:
    """(store_id, buyer_id, stratum) with stratum the deepest funnel stage, "A".."E"."""
    et = pl.col("event_type")
    return events.group_by("store_id", "buyer_id").agg(
        stratum=pl.when((et == "checkout_completed").any())
        .then(pl.lit("A"))
        .when((et == "checkout_started").any())
        .then(pl.lit("B"))
        .when((et == "product_added_to_cart").any())
        .then(pl.lit("C"))
        .when((et == "product_viewed").any())
        .then(pl.lit("D"))
        .otherwise(pl.lit("E"))
        .cast(pl.Enum(list(schema.STRATA)))
    )
