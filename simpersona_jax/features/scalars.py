"""The 16 behavioural scalars, funnel stratum and product slots of each buyer (polars).

Input: canonical events of whole buyers (one partition), session_id filled. Output: one row per
(store_id, buyer_id) with raw scalars (heavy-tailed ones already log1p'd), the stratum, raw
counts used for labels, and the three product slots with their content columns.
"""

from __future__ import annotations

import polars as pl

SCALAR_NAMES: tuple[str, ...] = (
    "log_sessions",            # volume
    "log_events",
    "log_events_per_session",
    "log_session_duration_s",  # time: mean session duration
    "log_gap_s",               # time: mean inter-event gap within sessions
    "log_active_days",         # time: first to last event
    "log_distinct_products",   # exploration
    "log_distinct_categories",
    "revisit_rate",            # repeat product views / product views
    "search_rate",             # searches / events
    "browse_rate",             # collection views / events
    "atc_per_view",            # funnel: adds / product views
    "removals_per_add",
    "checkouts_per_session",
    "purchases_per_session",   # orders (sessions with a completed checkout) / sessions
    "price_position",          # mean log(viewed price / store median viewed price)
)
SLOTS: tuple[str, ...] = ("most_viewed", "last_carted", "last_purchased")
CONTENT: tuple[str, ...] = ("category", "brand", "title", "price")

_ET = pl.col("event_type")


def _count(event_type: str) -> pl.Expr:
    return (_ET == event_type).sum().cast(pl.Float64)


def _slot(name: str, event_type: str) -> list[pl.Expr]:
    """Content of the buyer's last product with `event_type` (events sorted by time)."""
    mask = (_ET == event_type) & pl.col("product_id").is_not_null()
    return [pl.col(c).filter(mask).last().alias(f"{name}.{c}") for c in ("product_id",) + CONTENT]


def buyer_table(events: pl.LazyFrame, store_median_price: pl.LazyFrame) -> pl.LazyFrame:
    """Per-buyer raw features. `store_median_price`: (store_id, median_price)."""
    # Stable: events of one instant keep their input order (an order's lines, say).
    ev = events.sort("store_id", "buyer_id", "event_time", maintain_order=True)
    per_session = (
        ev.group_by("store_id", "buyer_id", "session_id")
        .agg(duration_s=(pl.col("event_time").max() - pl.col("event_time").min())
             .dt.total_microseconds() / 1e6,
             ordered=(_ET == "checkout_completed").any())
        .group_by("store_id", "buyer_id")
        .agg(sum_duration_s=pl.col("duration_s").sum(), mean_duration_s=pl.col("duration_s").mean(),
             orders=pl.col("ordered").sum().cast(pl.Float64))
    )
    views = _ET == "product_viewed"
    most_viewed = (
        ev.filter(views & pl.col("product_id").is_not_null())
        .group_by("store_id", "buyer_id", "product_id")
        .agg(n=pl.len(), last_time=pl.col("event_time").max(),
             **{c: pl.col(c).last() for c in CONTENT})
        .sort("n", "last_time", "product_id", descending=True)
        .group_by("store_id", "buyer_id")
        .agg(pl.col("product_id").first().alias("most_viewed.product_id"),
             *[pl.col(c).first().alias(f"most_viewed.{c}") for c in CONTENT])
    )
    agg = ev.group_by("store_id", "buyer_id").agg(
        n_sessions=pl.col("session_id").n_unique().cast(pl.Float64),
        n_events=pl.len().cast(pl.Float64),
        first=pl.col("event_time").min(), last=pl.col("event_time").max(),
        n_views=_count("product_viewed"),
        distinct_viewed=pl.col("product_id").filter(views).n_unique().cast(pl.Float64),
        distinct_products=pl.col("product_id").drop_nulls().n_unique().cast(pl.Float64),
        distinct_categories=pl.col("category").drop_nulls().n_unique().cast(pl.Float64),
        n_search=_count("search_submitted"), n_browse=_count("collection_viewed"),
        n_add=_count("product_added_to_cart"), n_remove=_count("product_removed_from_cart"),
        n_checkout=_count("checkout_started"), n_purchase_rows=_count("checkout_completed"),
        mean_log_view_price=pl.col("price").filter(views & (pl.col("price") > 0)).log().mean(),
        *_slot("last_carted", "product_added_to_cart"),
        *_slot("last_purchased", "checkout_completed"),
    )
    stratum = (pl.when(pl.col("n_purchase_rows") > 0).then(0)
               .when(pl.col("n_checkout") > 0).then(1)
               .when(pl.col("n_add") > 0).then(2)
               .when(pl.col("n_views") > 0).then(3).otherwise(4)).cast(pl.Int32)
    gaps = pl.col("n_events") - pl.col("n_sessions")
    return (
        agg.join(per_session, on=["store_id", "buyer_id"], how="left")
        .join(most_viewed, on=["store_id", "buyer_id"], how="left")
        .join(store_median_price, on="store_id", how="left")
        .with_columns(
            log_sessions=pl.col("n_sessions").log1p(),
            log_events=pl.col("n_events").log1p(),
            log_events_per_session=(pl.col("n_events") / pl.col("n_sessions")).log1p(),
            log_session_duration_s=pl.col("mean_duration_s").log1p(),
            log_gap_s=pl.when(gaps > 0).then(pl.col("sum_duration_s") / gaps).otherwise(0.0).log1p(),
            log_active_days=((pl.col("last") - pl.col("first")).dt.total_microseconds()
                             / 86_400e6).log1p(),
            log_distinct_products=pl.col("distinct_products").log1p(),
            log_distinct_categories=pl.col("distinct_categories").log1p(),
            revisit_rate=pl.when(pl.col("n_views") > 0)
            .then((pl.col("n_views") - pl.col("distinct_viewed")) / pl.col("n_views")).otherwise(0.0),
            search_rate=pl.col("n_search") / pl.col("n_events"),
            browse_rate=pl.col("n_browse") / pl.col("n_events"),
            atc_per_view=pl.col("n_add") / pl.max_horizontal(pl.col("n_views"), 1.0),
            removals_per_add=pl.col("n_remove") / pl.max_horizontal(pl.col("n_add"), 1.0),
            checkouts_per_session=pl.col("n_checkout") / pl.col("n_sessions"),
            purchases_per_session=pl.col("orders") / pl.col("n_sessions"),
            price_position=(pl.col("mean_log_view_price") - pl.col("median_price").log())
            .fill_null(0.0).fill_nan(0.0),
            stratum=stratum,
        )
        .select("store_id", "buyer_id", "stratum", "n_events", *SCALAR_NAMES,
                *[f"{s}.{c}" for s in SLOTS for c in ("product_id",) + CONTENT])
        .sort("store_id", "buyer_id")
    )


def store_median_prices(events: pl.LazyFrame) -> pl.LazyFrame:
    """Median viewed price per store (the reference for `price_position`)."""
    return (events.filter((_ET == "product_viewed") & (pl.col("price") > 0))
            .group_by("store_id").agg(median_price=pl.col("price").median()))
