"""Row-level validation: each bad row gets exactly one quarantine reason (the first that applies).

Reasons, in order: truncated_row (a cut-off last line), extra_fields (more fields than columns),
missing_buyer_id, unparseable_time, implausible_time (outside the plausible window, e.g. epoch
milliseconds read as seconds), unknown_event_type, bad_price (negative, NaN, infinite or not a
number), bad_quantity (not a positive integer where given), missing_product (a product event
without product_id). Exact duplicates are found per partition (ingest.py),
where all of a buyer's rows meet, with reason `duplicate` (the first copy is kept).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from simpersona_jax.data.sources import times

REASONS: tuple[str, ...] = (
    "truncated_row",
    "extra_fields",
    "missing_buyer_id",
    "unparseable_time",
    "implausible_time",
    "unknown_event_type",
    "bad_price",
    "bad_quantity",
    "missing_product",
    "duplicate",
)
PRODUCT_EVENTS = (
    "product_viewed",
    "product_added_to_cart",
    "product_removed_from_cart",
    "checkout_completed",
)


def _blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).str.strip_chars() == "")


def reason_expr(bounds: tuple[dt.datetime, dt.datetime] | None = None) -> pl.Expr:
    """The quarantine reason of a row (null when the row is good); `bounds`: the plausible
    time window (times.window(), by default 1995-01-01 .. now + 1 day)."""
    price = pl.col("price")
    return (
        pl.when(pl.col("_truncated"))
        .then(pl.lit("truncated_row"))
        .when(pl.col("_extra"))
        .then(pl.lit("extra_fields"))
        .when(_blank("buyer_id"))
        .then(pl.lit("missing_buyer_id"))
        .when(pl.col("event_time").is_null())
        .then(pl.lit("unparseable_time"))
        .when(times.implausible(pl.col("event_time"), bounds or times.window()))
        .then(pl.lit("implausible_time"))
        .when(pl.col("event_type").is_null())
        .then(pl.lit("unknown_event_type"))
        .when(
            (pl.col("_raw_price").is_not_null() & price.is_null())
            | price.is_nan()
            | price.is_infinite()
            | (price < 0)
        )
        .then(pl.lit("bad_price"))
        .when(pl.col("quantity").is_not_null() & (pl.col("quantity") <= 0))
        .then(pl.lit("bad_quantity"))
        .when(pl.col("event_type").is_in(PRODUCT_EVENTS) & _blank("product_id"))
        .then(pl.lit("missing_product"))
        .otherwise(pl.lit(None, pl.String))
    )
