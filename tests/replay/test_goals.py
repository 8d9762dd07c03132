import datetime as dt

import polars as pl

from simpersona_jax.data.schema import SCHEMA
from simpersona_jax.replay import goals
from simpersona_jax.storefront.catalog import catalogs_from_events
from simpersona_jax.storefront.testing import tiny_events


def _session(events):
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    return pl.DataFrame(
        [
            dict(
                store_id="shop_a",
                buyer_id="b",
                session_id="s",
                event_time=t0 + dt.timedelta(seconds=k),
                event_type=e,
                product_id=p,
                query=q,
            )
            for k, (e, p, q) in enumerate(events)
        ],
        schema=SCHEMA,
    )


def test_intent_goal_states_what_the_session_did():
    cat = catalogs_from_events(tiny_events())["shop_a"]
    s = _session(
        [
            ("product_viewed", "a000", None),
            ("product_viewed", "a004", None),
            ("product_added_to_cart", "a004", None),
            ("product_viewed", "a001", None),
            ("product_added_to_cart", "a001", None),
        ]
    )
    assert goals.intent_goal(s, cat) == (
        "Look for running and boots under $35, compare about 3 products, add 2 items to the cart, "
        "then leave without buying."
    )
    s = _session(
        [
            ("search_submitted", None, "trail"),
            ("product_viewed", "a001", None),
            ("product_added_to_cart", "a001", None),
            ("checkout_started", None, None),
            ("checkout_completed", "a001", None),
        ]
    )
    # "trail" does not match what was bought (a001 is "Nordic Urban Boots I952"): general phrasing
    assert (
        goals.intent_goal(s, cat)
        == 'Search for "trail" (boots) under $25, add one to the cart, then buy it.'
    )
    assert goals.intent_goal(_session([("page_viewed", None, None)]), cat) == (
        "Look for something that catches your eye, just look around without opening a product."
    )


def test_sessions_of_the_three_task_shapes_get_the_task_sentences():
    cat = catalogs_from_events(tiny_events())["shop_a"]
    key = "shop_a/s"
    s = _session(
        [
            ("product_viewed", "a000", None),
            ("product_viewed", "a004", None),
            ("product_added_to_cart", "a004", None),
        ]
    )
    assert goals.intent_goal(s, cat) == goals.find_and_add("Trail Runner 4", key)
    assert goals.parse_goal(goals.intent_goal(s, cat)) == ("find_add", {"title": "Trail Runner 4"})
    s = _session(
        [
            ("search_submitted", None, "trail"),
            ("search_submitted", None, "boots"),
            ("product_viewed", "a001", None),
            ("product_added_to_cart", "a001", None),
            ("checkout_started", None, None),
            ("checkout_completed", "a001", None),
        ]
    )
    assert goals.intent_goal(s, cat) == goals.search_and_buy("boots", 25, 1, key)  # a001: $23.70
    assert goals.parse_goal(goals.intent_goal(s, cat)) == (
        "search_buy",
        {"query": "boots", "what": "one", "cap": "25"},
    )
    s = _session(
        [
            ("collection_viewed", None, None),
            ("product_viewed", "a000", None),
            ("product_viewed", "a001", None),
        ]
    )
    s = s.with_columns(
        category=pl.when(pl.col("event_type") == "collection_viewed")
        .then(pl.lit("apparel.shoes"))
        .otherwise(pl.col("category"))
    )
    assert goals.intent_goal(s, cat) == goals.browse_and_leave("apparel.shoes", key)
    assert "Apparel > Shoes section" in goals.intent_goal(s, cat)
    # a view outside the category (a002 is in apparel.tops) widens it to Apparel
    s = _session([("product_viewed", "a000", None), ("product_viewed", "a002", None)])
    assert goals.intent_goal(s, cat) == goals.browse_and_leave("apparel", key)
    # views in two top-level categories: general phrasing (a003 is a kettle)
    s = _session([("product_viewed", "a000", None), ("product_viewed", "a003", None)])
    assert goals.parse_goal(goals.intent_goal(s, cat)) is None
    # an add followed by checkout without buying: general phrasing
    s = _session(
        [
            ("product_viewed", "a000", None),
            ("product_added_to_cart", "a000", None),
            ("checkout_started", None, None),
        ]
    )
    assert goals.parse_goal(goals.intent_goal(s, cat)) is None


def test_goal_wordings_parse_back_and_vary_by_key():
    made = {goals.find_and_add("Blue Kettle", str(k)) for k in range(16)}
    assert len(made) == len(goals._TEMPLATES["find_add"])
    for g in made:
        assert goals.parse_goal(g) == ("find_add", {"title": "Blue Kettle"})
    for k in range(16):
        assert goals.parse_goal(goals.search_and_buy("red mug", 15, 2, str(k))) == (
            "search_buy",
            {"query": "red mug", "what": "2 items", "cap": "15"},
        )
        assert goals.parse_goal(goals.browse_and_leave("home.kitchen", str(k))) == (
            "browse",
            {"section": "Home > Kitchen"},
        )
    assert goals.find_and_add("X", "k") == goals.find_and_add("X", "k")  # deterministic
    assert goals.parse_goal(goals.neutral_goal("shop_a")) is None


def test_price_cap_is_a_round_amount_strictly_above():
    assert [goals.price_cap(x) for x in (0, 0.3, 8.5, 23.7, 25, 49.58, 341.13, 1234)] == [
        1,
        1,
        9,
        25,
        30,
        50,
        350,
        1500,
    ]


def test_neutral_goal_has_no_intent():
    g = goals.neutral_goal("shop_a")
    assert "Shop A" in g and "cart" not in g and "buy" not in g
