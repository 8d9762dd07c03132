"""The canonical event schema shared by every part of simpersona_jax (see DESIGN.md).

One row per customer event. Real sources are mapped onto it by `simpersona_jax.data.sources`;
the synthetic generator and the storefront write it directly; the buyer pipeline reads only it.
"""

from __future__ import annotations

import polars as pl

# Event types, named after the standard storefront customer events, in funnel order.
EVENT_TYPES: tuple[str, ...] = (
    "page_viewed",
    "collection_viewed",
    "search_submitted",
    "product_viewed",
    "product_added_to_cart",
    "product_removed_from_cart",
    "cart_viewed",
    "checkout_started",
    "checkout_completed",
)
EVENT_TYPE_DTYPE = pl.Enum(list(EVENT_TYPES))

# Column name -> polars dtype, in canonical order.
SCHEMA: dict[str, pl.DataType] = {
    "store_id": pl.String(),
    "buyer_id": pl.String(),
    "session_id": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "event_type": EVENT_TYPE_DTYPE,
    "product_id": pl.String(),
    "category": pl.String(),
    "brand": pl.String(),
    "title": pl.String(),
    "price": pl.Float64(),
    "quantity": pl.Int32(),
    "query": pl.String(),
}
COLUMNS: tuple[str, ...] = tuple(SCHEMA)
REQUIRED: tuple[str, ...] = ("store_id", "buyer_id", "event_time", "event_type")

# Funnel strata per buyer: deepest stage reached in the window.
STRATA: tuple[str, ...] = ("A", "B", "C", "D", "E")
STRATUM_DESCRIPTIONS: dict[str, str] = {
    "A": "purchaser (checkout_completed)",
    "B": "reached checkout, no purchase",
    "C": "added to cart, no checkout",
    "D": "viewed a product, no cart (window shopper)",
    "E": "no product view (bounce)",
}
ALIGNMENT_STRATA: tuple[str, ...] = ("A", "B", "C", "D")  # ARA is reported over A-D.


def empty_frame() -> pl.DataFrame:
    """A zero-row frame with the canonical schema."""
    return pl.DataFrame(schema=SCHEMA)


def conform(frame: pl.LazyFrame, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """Adds missing optional columns as nulls and orders/casts columns canonically.

    Columns in `keep` are passed through after the canonical ones; all others are dropped.
    """
    names = frame.collect_schema().names()
    exprs = []
    for name, dtype in SCHEMA.items():
        if name in names:
            exprs.append(pl.col(name).cast(dtype, strict=False).alias(name))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(*exprs, *keep)
