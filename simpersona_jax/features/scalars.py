"""The 16 behavioural scalars, funnel stratum and product slots of each buyer (polars).

Input: canonical events of whole buyers (one partition), session_id filled. Output: one row per
(store_id, buyer_id) with raw scalars (heavy-tailed ones already log1p'd), the stratum, raw
counts used for labels, and the three product slots with their content columns.
"""

from __future__ import annotations

import polars as pl

SCALAR_NAMES: tuple[str, ...] = (
    "log_sessions",  # volume
    "log_events",
    "log_events_per_session",
    "log_session_duration_s",  # time: mean session duration
    "log_gap_s",  # time: mean inter-event gap within sessions
    "log_active_days",  # time: first to last event
    "log_distinct_products",  # exploration
    "log_distinct_categories",
    "revisit_rate",  # repeat product views / product views
    "search_rate",  # searches / events
    "browse_rate",  # collection views / events
    "atc_per_view",  # funnel: adds / product views
    "removals_per_add",
    "checkouts_per_session",
    "purchases_per_session",  # orders (sessions with a completed checkout) / sessions
    "price_position",  # mean log(viewed price / store median viewed price)
)
SLOTS: tuple[str, ...] = ("most_viewed", "last_carted", "last_purchased")
CONTENT: tuple[str, ...] = ("category", "brand", "title", "price")

_ET = pl.col("event_type")


def _count(event_type: str) -> pl.Expr:
    return (_ET == event_type).sum().cast(pl.Float64)


def buyer_table(
    events: pl.LazyFrame | pl.DataFrame, store_median_price: pl.LazyFrame | pl.DataFrame
) -> pl.DataFrame:
    """Per-buyer raw features, one row per (store_id, buyer_id), sorted by those.

    `store_median_price`: (store_id, median_price). The events are sorted once by buyer and time;
    every group-by after that is keyed by a dense integer buyer index `_b`, and a slot's content
    is gathered by the row index `_i` of its event, so the wide string columns are read once.
    """
    keys = ("store_id", "buyer_id")
    # Stable: events of one instant keep their input order (an order's lines, say).
    new_buyer = pl.any_horizontal(pl.col(k) != pl.col(k).shift() for k in keys).fill_null(True)
    ev = (
        events.lazy()
        .sort(*keys, "event_time", maintain_order=True)
        .with_columns(_b=new_buyer.cum_sum() - 1)
        .with_row_index("_i")
        .collect()
    )
    lz = ev.lazy()
    per_session = (
        lz.group_by("_b", "session_id")
        .agg(
            duration_s=(
                pl.col("event_time").max() - pl.col("event_time").min()
            ).dt.total_microseconds()
            / 1e6,
            ordered=(_ET == "checkout_completed").any(),
        )
        .group_by("_b")
        .agg(
            n_sessions=pl.len().cast(pl.Float64),
            sum_duration_s=pl.col("duration_s").sum(),
            mean_duration_s=pl.col("duration_s").mean(),
            orders=pl.col("ordered").sum().cast(pl.Float64),
        )
    )
    views = _ET == "product_viewed"
    has_product = pl.col("product_id").is_not_null()
    most_viewed = (  # most views, then latest viewed, then largest id; content of its last view
        lz.filter(views & has_product)
        .group_by("_b", "product_id")
        .agg(n=pl.len(), last_time=pl.col("event_time").max(), _i=pl.col("_i").last())
        .sort("n", "last_time", "product_id", descending=True)
        .group_by("_b")
        .agg(**{f"{SLOTS[0]}_i": pl.col("_i").first()})
    )
    agg = lz.group_by("_b").agg(
        pl.col(keys).first(),
        n_events=pl.len().cast(pl.Float64),
        first=pl.col("event_time").min(),
        last=pl.col("event_time").max(),
        n_views=_count("product_viewed"),
        distinct_viewed=pl.col("product_id").filter(views).n_unique().cast(pl.Float64),
        distinct_products=pl.col("product_id").drop_nulls().n_unique().cast(pl.Float64),
        distinct_categories=pl.col("category").drop_nulls().n_unique().cast(pl.Float64),
        n_search=_count("search_submitted"),
        n_browse=_count("collection_viewed"),
        n_add=_count("product_added_to_cart"),
        n_remove=_count("product_removed_from_cart"),
        n_checkout=_count("checkout_started"),
        n_purchase_rows=_count("checkout_completed"),
        mean_log_view_price=pl.col("price").filter(views & (pl.col("price") > 0)).log().mean(),
        **{
            f"{slot}_i": pl.col("_i").filter((_ET == event_type) & has_product).last()
            for slot, event_type in zip(SLOTS[1:], ("product_added_to_cart", "checkout_completed"))
        },
    )
    stratum = (
        pl.when(pl.col("n_purchase_rows") > 0)
        .then(0)
        .when(pl.col("n_checkout") > 0)
        .then(1)
        .when(pl.col("n_add") > 0)
        .then(2)
        .when(pl.col("n_views") > 0)
        .then(3)
        .otherwise(4)
    ).cast(pl.Int32)
    gaps = pl.col("n_events") - pl.col("n_sessions")
    table = (
        agg.join(per_session, on="_b", how="left")
        .join(most_viewed, on="_b", how="left")
        .join(store_median_price.lazy(), on="store_id", how="left")
        .sort("_b")  # = sorted by (store_id, buyer_id)
        .select(
            *keys,
            stratum=stratum,
            n_events=pl.col("n_events"),
            log_sessions=pl.col("n_sessions").log1p(),
            log_events=pl.col("n_events").log1p(),
            log_events_per_session=(pl.col("n_events") / pl.col("n_sessions")).log1p(),
            log_session_duration_s=pl.col("mean_duration_s").log1p(),
            log_gap_s=pl.when(gaps > 0)
            .then(pl.col("sum_duration_s") / gaps)
            .otherwise(0.0)
            .log1p(),
            log_active_days=(
                (pl.col("last") - pl.col("first")).dt.total_microseconds() / 86_400e6
            ).log1p(),
            log_distinct_products=pl.col("distinct_products").log1p(),
            log_distinct_categories=pl.col("distinct_categories").log1p(),
            revisit_rate=pl.when(pl.col("n_views") > 0)
            .then((pl.col("n_views") - pl.col("distinct_viewed")) / pl.col("n_views"))
            .otherwise(0.0),
            search_rate=pl.col("n_search") / pl.col("n_events"),
            browse_rate=pl.col("n_browse") / pl.col("n_events"),
            atc_per_view=pl.col("n_add") / pl.max_horizontal(pl.col("n_views"), 1.0),
            removals_per_add=pl.col("n_remove") / pl.max_horizontal(pl.col("n_add"), 1.0),
            checkouts_per_session=pl.col("n_checkout") / pl.col("n_sessions"),
            purchases_per_session=pl.col("orders") / pl.col("n_sessions"),
            price_position=(pl.col("mean_log_view_price") - pl.col("median_price").log())
            .fill_null(0.0)
            .fill_nan(0.0),
            *[f"{slot}_i" for slot in SLOTS],
        )
        .collect()
    )
    content = ev.select("product_id", *CONTENT)
    slots = [
        content.select(pl.all().gather(table[f"{slot}_i"]).name.prefix(f"{slot}."))
        for slot in SLOTS
    ]  # a null index (no such event) gives an all-null slot
    return pl.concat([table.drop(*[f"{slot}_i" for slot in SLOTS]), *slots], how="horizontal")


def store_median_prices(events: pl.LazyFrame) -> pl.LazyFrame:
    """Median viewed price per store (the reference for `price_position`)."""
    return (
        events.filter((_ET == "product_viewed") & (pl.col("price") > 0))
        .group_by("store_id")
        .agg(median_price=pl.col("price").median())
    )
