import datetime as dt

import polars as pl

from simpersona_jax.data.schema import SCHEMA
from simpersona_jax.replay import goals
from simpersona_jax.storefront.catalog import catalogs_from_events
from simpersona_jax.storefront.testing import tiny_events


def _session(events):
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return pl.DataFrame([dict(store_id="shop_a", buyer_id="b", session_id="s",
                              event_time=t0 + dt.timedelta(seconds=k), event_type=e, product_id=p,
                              query=q) for k, (e, p, q) in enumerate(events)], schema=SCHEMA)


def test_intent_goal_states_what_the_session_did():
    cat = catalogs_from_events(tiny_events())["shop_a"]
    s = _session([("product_viewed", "a000", None), ("product_viewed", "a004", None),
                  ("product_added_to_cart", "a004", None)])
    assert goals.intent_goal(s, cat) == (
        "Look for running under $35, compare about 2 products, add one to the cart, "
        "then leave without buying.")
    s = _session([("search_submitted", None, "trail"), ("product_viewed", "a001", None),
                  ("product_added_to_cart", "a001", None), ("checkout_started", None, None),
                  ("checkout_completed", "a001", None)])
    assert goals.intent_goal(s, cat) == 'Search for "trail" (boots) under $25, add one to the cart, then buy it.'
    assert goals.intent_goal(_session([("page_viewed", None, None)]), cat) == (
        "Look for something that catches your eye, just look around without opening a product.")


def test_neutral_goal_has_no_intent():
    g = goals.neutral_goal("shop_a")
    assert "Shop A" in g and "cart" not in g and "buy" not in g
