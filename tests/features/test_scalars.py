"""Buyer scalars, stratum and slots, checked against hand computation."""

import datetime as dt
import math
import os

import polars as pl
import pytest

from simpersona_jax.data import schema
from simpersona_jax.data.ingest import ingest
from simpersona_jax.features import scalars

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def _events(rows):
    cols = {c: [] for c in schema.COLUMNS}
    for r in rows:
        for c in schema.COLUMNS:
            cols[c].append(r.get(c))
    return pl.DataFrame(cols, schema=schema.SCHEMA)


def _ev(sec, etype, session="s1", pid=None, price=None, cat=None, buyer="b1"):
    return dict(
        store_id="st",
        buyer_id=buyer,
        session_id=session,
        event_time=T0 + dt.timedelta(seconds=sec),
        event_type=etype,
        product_id=pid,
        price=price,
        category=cat,
        brand="br" if pid else None,
        title=f"t {pid}" if pid else None,
        quantity=1 if "cart" in etype else None,
    )


def test_hand_computed_buyer():
    ev = _events(
        [
            _ev(0, "page_viewed"),
            _ev(10, "collection_viewed", cat="a.b"),
            _ev(20, "product_viewed", pid="p1", price=10.0, cat="a.b"),
            _ev(40, "product_viewed", pid="p2", price=40.0, cat="a.c"),
            _ev(60, "product_viewed", pid="p1", price=10.0, cat="a.b"),
            _ev(70, "product_added_to_cart", pid="p1", price=10.0, cat="a.b"),
            _ev(86400 + 0, "search_submitted", session="s2"),
            _ev(86400 + 30, "product_viewed", session="s2", pid="p2", price=40.0, cat="a.c"),
            _ev(86400 + 50, "product_added_to_cart", session="s2", pid="p2", price=40.0, cat="a.c"),
            _ev(86400 + 60, "cart_viewed", session="s2"),
            _ev(
                86400 + 70,
                "product_removed_from_cart",
                session="s2",
                pid="p2",
                price=40.0,
                cat="a.c",
            ),
        ]
    )
    medians = pl.LazyFrame({"store_id": ["st"], "median_price": [20.0]})
    row = scalars.buyer_table(ev, medians).row(0, named=True)
    assert row["stratum"] == 2  # C: carted, no checkout
    assert row["log_sessions"] == pytest.approx(math.log1p(2))
    assert row["log_events"] == pytest.approx(math.log1p(11))
    assert row["log_events_per_session"] == pytest.approx(math.log1p(5.5))
    assert row["log_session_duration_s"] == pytest.approx(math.log1p((70 + 70) / 2))
    assert row["log_gap_s"] == pytest.approx(math.log1p(140 / (11 - 2)))
    assert row["log_active_days"] == pytest.approx(math.log1p((86400 + 70) / 86400))
    assert row["log_distinct_products"] == pytest.approx(math.log1p(2))
    assert row["log_distinct_categories"] == pytest.approx(math.log1p(2))
    assert row["revisit_rate"] == pytest.approx(2 / 4)  # p1 and p2 each seen twice
    assert row["search_rate"] == pytest.approx(1 / 11)
    assert row["browse_rate"] == pytest.approx(1 / 11)
    assert row["atc_per_view"] == pytest.approx(2 / 4)
    assert row["removals_per_add"] == pytest.approx(1 / 2)
    assert row["checkouts_per_session"] == 0 and row["purchases_per_session"] == 0
    mean_log = (2 * math.log(10) + 2 * math.log(40)) / 4
    assert row["price_position"] == pytest.approx(mean_log - math.log(20))
    assert row["most_viewed.product_id"] == "p2"  # tie on 2 views: the latest viewed wins
    assert row["last_carted.product_id"] == "p2"
    assert row["last_purchased.product_id"] is None


def test_rees46_buyer_by_hand(shared_datasets, tmp_path):
    ingest(
        [os.path.join(shared_datasets, "rees46", "2019-Oct-head.csv")],
        str(tmp_path),
        store_id="rees46",
    )
    events = pl.scan_parquet(str(tmp_path / "events" / "**" / "*.parquet"), hive_partitioning=True)
    table = scalars.buyer_table(events, scalars.store_median_prices(events))
    purchasers = table.filter(pl.col("stratum") == 0)
    assert purchasers.height == 193 and table.height == 4504
    buyer = purchasers.sort("buyer_id").row(0, named=True)
    raw = events.filter(pl.col("buyer_id") == buyer["buyer_id"]).collect()
    views = raw.filter(pl.col("event_type") == "product_viewed")
    assert buyer["log_events"] == pytest.approx(math.log1p(raw.height))
    assert buyer["log_sessions"] == pytest.approx(math.log1p(raw["session_id"].n_unique()))
    assert buyer["atc_per_view"] == pytest.approx(
        (raw["event_type"] == "product_added_to_cart").sum() / max(views.height, 1)
    )
    bought = raw.filter(pl.col("event_type") == "checkout_completed").sort("event_time")
    assert buyer["last_purchased.product_id"] == bought["product_id"][-1]
