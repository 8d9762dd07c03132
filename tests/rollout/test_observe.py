"""Observation text for every page kind, built from the live DOM while shopping end to end."""

import pytest

from simpersona_jax.rollout.driver import DriverConfig, EpisodeSpec, run_episodes
from simpersona_jax.storefront.eventlog import read_log

pytestmark = pytest.mark.browser

JOURNEY = [
    ("click", "Apparel"),
    ("click", "Next page"),
    ("click", "Price: low to high"),
    ("fill", "Search products", "trail runner 12"),
    ("press", "Search products", "Enter"),
    ("click", "Trail Runner 12 — $64.40"),
    ("fill", "Quantity", "2"),
    ("click", "Add to cart"),
    ("click", "Cart (2)"),
    ("fill", "Quantity of Trail Runner 12", "3"),
    ("click", "Update Trail Runner 12"),
    ("click", "Proceed to checkout"),
    ("fill", "Full name", "Ada"),
    ("fill", "Email", "ada@example.com"),
    ("fill", "Address", "1 Loop Road"),
    ("click", "Place order"),
]


@pytest.fixture(scope="module")
def journey(shop, browser, script_cls):
    policy = script_cls()
    spec = EpisodeSpec(shop.store_url("shop_a"), "shop_a", "obs-buyer", "obs-session", meta=JOURNEY)
    [result] = browser.run(
        run_episodes([spec], policy, DriverConfig(step_limit=30), pool=browser.pool)
    )
    shop.flush()
    return result, [o for _, _, o in policy.seen]


def test_outcome_completed(journey):
    result, obs = journey
    assert result.outcome == "completed", (result.reason, result.steps[-1])
    assert len(result.steps) == len(JOURNEY)
    assert all(s.error == "" for s in result.steps)
    assert result.final_observation.startswith("page: confirmation /s/shop_a/order/")


def test_home(journey):
    text = journey[1][0].text
    lines = text.splitlines()
    assert lines[:3] == ["page: home /s/shop_a/", "heading: Welcome to Shop A", "cart: 0"]
    assert lines[3:7] == [
        '[1] link "Shop A"',
        '[2] searchbox "Search products"',
        '[3] button "Search"',
        '[4] link "Cart (0)"',
    ]
    assert '[5] link "Apparel"' in lines and lines[-1].endswith('link "Follow us"')
    assert "buyer" not in text and "session" not in text  # visit ids never shown


def test_collection_paging_sorting(journey):
    o = journey[1]
    assert o[1].text.startswith("page: collection /s/shop_a/c/apparel\nheading: Apparel\ncart: 0")
    assert '] link "Next page"' in o[1].text and '] link "Shoes"' in o[1].text
    assert o[2].path == "/s/shop_a/c/apparel?sort=featured&page=2"
    assert '] link "Previous page"' in o[2].text
    assert o[3].path == "/s/shop_a/c/apparel?sort=price_asc&page=1"
    assert '] link "Trail Runner 0 — $20.00"' in o[3].text


def test_search(journey):
    o = journey[1]
    assert '] searchbox "Search products" value="trail runner 12"' in o[4].text
    assert o[5].text.startswith("page: search /s/shop_a/search?q=trail+runner+12")
    assert "heading: Results for “trail runner 12”" in o[5].text


def test_product(journey):
    o = journey[1][6]
    assert o.text.splitlines()[:4] == [
        "page: product /s/shop_a/p/a012",
        "title: Trail Runner 12",
        "price: $64.40",
        "cart: 0",
    ]
    assert '] spinbutton "Quantity" value="1"' in o.text and '] button "Add to cart"' in o.text
    assert '] link "Running"' in o.text  # breadcrumb
    added = journey[1][8]
    assert "notice: Added 2 to your cart." in added.text and "cart: 2" in added.text


def test_cart_checkout_confirmation(journey):
    o = journey[1]
    assert o[9].text.startswith("page: cart /s/shop_a/cart\nheading: Your cart\ncart: 2")
    assert '] button "Remove Trail Runner 12"' in o[9].text
    assert "notice: Cart updated." in o[11].text and "cart: 3" in o[11].text
    assert o[12].text.startswith("page: checkout /s/shop_a/checkout\nheading: Checkout\ncart: 3")
    assert '] textbox "Full name" value="Ada"' in o[13].text
    assert '] textbox "Email"' in o[13].text


def test_storefront_logged_the_journey_once(journey, shop):
    log = read_log(shop.log_dir).filter(session_id="obs-session")
    assert set(log["buyer_id"]) == {"obs-buyer"}
    got = [(r["event_type"], r["product_id"], r["quantity"]) for r in log.iter_rows(named=True)]
    assert got == [
        ("page_viewed", None, None),
        ("collection_viewed", None, None),
        ("collection_viewed", None, None),
        ("collection_viewed", None, None),
        ("search_submitted", None, None),
        ("product_viewed", "a012", None),
        ("product_added_to_cart", "a012", 2),
        ("cart_viewed", None, None),
        ("product_added_to_cart", "a012", 1),
        ("checkout_started", None, None),
        ("checkout_completed", "a012", 3),
    ]


def test_alert_and_not_found_pages(shop, browser, script_cls):
    policy = script_cls()
    specs = [
        EpisodeSpec(shop.store_url("shop_a") + "checkout", "shop_a", "o2", "o2", meta=[]),
        EpisodeSpec(shop.store_url("shop_a") + "p/nope", "shop_a", "o3", "o3", meta=[]),
    ]
    results = browser.run(
        run_episodes(specs, policy, DriverConfig(concurrency=2), pool=browser.pool)
    )
    assert [r.outcome for r in results] == ["stopped", "stopped"]
    empty, missing = (results[i].steps[0].observation for i in range(2))
    assert empty.startswith(
        "page: cart /s/shop_a/checkout\nheading: Your cart\ncart: 0\nalert: Your cart is empty."
    )
    assert missing.startswith("page: notfound /s/shop_a/p/nope\nheading: Not found\ncart: 0")
    assert '] link "Back to the home page"' in missing
