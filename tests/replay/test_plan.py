import datetime as dt

import polars as pl
import pytest

from simpersona_jax.data.schema import SCHEMA
from simpersona_jax.replay.plan import (
    Target,
    Unreplayable,
    expected_events,
    is_subsequence,
    make_plan,
)
from simpersona_jax.storefront.catalog import catalogs_from_events
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture(scope="module")
def cat():
    return catalogs_from_events(tiny_events())["shop_a"]


def session(*events):
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    rows = []
    for k, (etype, pid, extra) in enumerate(events):
        rows.append(
            dict(
                store_id="shop_a",
                buyer_id="b",
                session_id="s",
                event_time=t0 + dt.timedelta(seconds=k),
                event_type=etype,
                product_id=pid,
                **extra,
            )
        )
    return pl.DataFrame(rows, schema=SCHEMA)


def test_landing_on_product_and_purchase_without_cart(cat):
    plan = make_plan(
        session(
            ("product_viewed", "a001", {}),
            ("product_viewed", "a002", {}),
            ("checkout_completed", "a002", {"quantity": 2}),
        ),
        cat,
    )
    assert plan.start_path == "p/a001" and plan.landing == Target("product_viewed", "a001")
    assert plan.targets == (
        Target("product_viewed", "a002"),
        Target("product_added_to_cart", "a002", quantity=2),
        Target("checkout_completed", "a002", quantity=2),
    )
    assert expected_events(plan)[0] == ("product_viewed", "a001", None)


def test_cart_lines_not_bought_are_removed_before_checkout(cat):
    plan = make_plan(
        session(
            ("page_viewed", None, {}),
            ("product_added_to_cart", "a001", {"quantity": 1}),
            ("product_added_to_cart", "a002", {"quantity": 3}),
            ("checkout_started", None, {}),
            ("checkout_completed", "a001", {"quantity": 1}),
        ),
        cat,
    )
    assert plan.start_path == "" and plan.landing is None
    assert [t.event_type for t in plan.targets] == [
        "product_added_to_cart",
        "product_added_to_cart",
        "checkout_started",
        "product_removed_from_cart",
        "checkout_completed",
    ]
    assert plan.targets[3] == Target("product_removed_from_cart", "a002", quantity=3)


def test_search_and_collection_landings(cat):
    plan = make_plan(
        session(("search_submitted", None, {"query": "trail"}), ("product_viewed", "a002", {})), cat
    )
    assert plan.start_path == "search?q=trail"
    plan = make_plan(session(("collection_viewed", None, {"category": "apparel.tops"})), cat)
    assert plan.start_path == "c/apparel.tops" and plan.targets == ()


@pytest.mark.parametrize(
    "events,reason",
    [
        ((("product_removed_from_cart", "a001", {"quantity": 1}),), "remove_not_in_cart"),
        ((("product_viewed", "zzz", {}),), "product_not_in_catalog"),
        ((("collection_viewed", None, {"category": "nope"}),), "collection_not_in_catalog"),
        ((("checkout_started", None, {}),), "checkout_with_empty_cart"),
        ((("checkout_completed", None, {}),), "purchase_without_product"),
    ],
)
def test_unreplayable_reasons(cat, events, reason):
    with pytest.raises(Unreplayable) as e:
        make_plan(session(*events), cat)
    assert e.value.reason == reason


def test_empty_session(cat):
    with pytest.raises(Unreplayable, match="empty_session"):
        make_plan(pl.DataFrame(schema=SCHEMA), cat)


def test_is_subsequence():
    logged = [
        ("product_viewed", "1", None),
        ("collection_viewed", None, None),
        ("product_added_to_cart", "1", 2),
        ("checkout_completed", "1", 2),
    ]
    assert is_subsequence([("product_viewed", "1", None), ("checkout_completed", "1", 2)], logged)
    assert not is_subsequence(
        [("checkout_completed", "1", 2), ("product_viewed", "1", None)], logged
    )
    assert not is_subsequence([("product_added_to_cart", "1", 1)], logged)  # quantity differs
    assert is_subsequence([], [])
