"""Every storefront page and the events each writes (in-process ASGI client, no browser)."""

import re

import pytest
from starlette.testclient import TestClient

from simpersona_jax.storefront.app import Storefront
from simpersona_jax.storefront.catalog import catalogs_from_events
from simpersona_jax.storefront.eventlog import EventLog, read_log
from simpersona_jax.storefront.pages import PAGE_SIZE
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture()
def shop(tmp_path):
    sf = Storefront(catalogs_from_events(tiny_events()), EventLog(str(tmp_path)))
    client = TestClient(sf.app)

    def events():
        sf.log.flush()
        log = read_log(str(tmp_path))
        return [
            (r["event_type"], r["product_id"], r["quantity"], r["category"], r["query"])
            for r in log.iter_rows(named=True)
        ], log

    return sf, client, events


def nonce(html):
    return re.search(r'name="nonce" value="(\w+)"', html).group(1)


def test_home_sets_ids_from_entry_url_and_cookies(shop):
    sf, c, events = shop
    r = c.get("/s/shop_a/?buyer=B1&session=S1")
    assert r.status_code == 200 and 'data-page="home"' in r.text
    assert "Apparel" in r.text and r.text.count("data-product-id") == PAGE_SIZE
    c.get("/s/shop_a/c/apparel")  # cookies carry the ids
    got, log = events()
    assert [e[0] for e in got] == ["page_viewed", "collection_viewed"]
    assert set(log["buyer_id"]) == {"B1"} and set(log["session_id"]) == {"S1"}
    assert set(log["store_id"]) == {"shop_a"}


def test_first_visit_without_ids_gets_new_ones(shop):
    sf, c, events = shop
    c.get("/s/shop_b/")
    _, log = events()
    assert len(log["buyer_id"][0]) == 32 and log["session_id"][0]


def test_collection_paging_and_sorting(shop):
    sf, c, events = shop
    r = c.get("/s/shop_a/c/apparel")
    assert "Page 1 of 4" in r.text and "Next page" in r.text and "Previous page" not in r.text
    assert "apparel.shoes" in r.text  # subcollection link
    r = c.get("/s/shop_a/c/apparel?page=4&sort=price_desc")
    assert "Page 4 of 4" in r.text and "Next page" not in r.text
    prices = [float(x.replace(",", "")) for x in re.findall(r"— \$([\d,.]+)</a>", r.text)]
    assert prices == sorted(prices, reverse=True) and len(prices) == 45 - 3 * PAGE_SIZE
    r = c.get("/s/shop_a/c/apparel?page=99&sort=bogus")  # clamped, default sort
    assert "Page 4 of 4" in r.text
    got, _ = events()
    assert [(e[0], e[3]) for e in got] == [("collection_viewed", "apparel")] * 3
    assert c.get("/s/shop_a/c/nope").status_code == 404
    assert c.get("/s/nostore/").status_code == 404


def test_search_logs_query_once(shop):
    sf, c, events = shop
    r = c.get("/s/shop_a/search?q=trail+runner")
    assert 'data-page="search"' in r.text and "30 products" in r.text
    c.get("/s/shop_a/search?q=trail+runner&page=2&sort=featured")  # paging: not a new search
    r = c.get("/s/shop_a/search?q=zzzz")
    assert "No products match" in r.text
    got, _ = events()
    assert [(e[0], e[4]) for e in got] == [
        ("search_submitted", "trail runner"),
        ("search_submitted", "zzzz"),
    ]


def test_product_cart_checkout_flow_logs_each_event_once(shop):
    sf, c, events = shop
    r = c.get("/s/shop_a/p/a004?buyer=B&session=S")
    assert "Trail Runner 4" in r.text and "data-price" in r.text and "Related products" in r.text
    n = nonce(r.text)
    r = c.post("/s/shop_a/cart/add", data=dict(product_id="a004", quantity="2", nonce=n))
    assert r.status_code == 200 and "Added 2 to your cart" in r.text
    assert "data-cart-count>2<" in r.text
    c.post("/s/shop_a/cart/add", data=dict(product_id="a004", quantity="2", nonce=n))  # resubmit
    r = c.post("/s/shop_a/cart/add", data=dict(product_id="a004", quantity="0", nonce="x"))
    assert r.status_code == 400 and "Quantity must be" in r.text
    r = c.get("/s/shop_a/p/a008")
    c.post("/s/shop_a/cart/add", data=dict(product_id="a008", quantity="1", nonce=nonce(r.text)))
    r = c.get("/s/shop_a/cart")
    assert 'data-page="cart"' in r.text and "Remove Trail Runner 4" in r.text
    for q in ("5", "3"):
        r = c.post(
            "/s/shop_a/cart/update", data=dict(product_id="a004", quantity=q, nonce=nonce(r.text))
        )
    r = c.post("/s/shop_a/cart/remove", data=dict(product_id="a008", nonce=nonce(r.text)))
    assert "Cart updated." in r.text and "data-cart-count>3<" in r.text
    r = c.post("/s/shop_a/cart/remove", data=dict(product_id="a008", nonce=nonce(r.text)))
    assert r.status_code == 400 and "not in your cart" in r.text
    r = c.get("/s/shop_a/checkout")
    assert 'data-page="checkout"' in r.text and "3 items" in r.text
    r = c.post(
        "/s/shop_a/checkout", data=dict(name="A", email="bad", address="x", nonce=nonce(r.text))
    )
    assert r.status_code == 400 and "Please fill in: email" in r.text
    n = nonce(r.text)
    r = c.post("/s/shop_a/checkout", data=dict(name="A", email="a@b.c", address="x", nonce=n))
    assert 'data-page="confirmation"' in r.text and "data-order-id" in r.text
    assert "data-cart-count>0<" in r.text
    r = c.post("/s/shop_a/checkout", data=dict(name="A", email="a@b.c", address="x", nonce=n))
    assert "Your cart is empty" in r.text  # placing the same order again does nothing
    got, _ = events()
    assert [(e[0], e[1], e[2]) for e in got] == [
        ("product_viewed", "a004", None),
        ("product_added_to_cart", "a004", 2),
        ("product_viewed", "a008", None),
        ("product_added_to_cart", "a008", 1),
        ("cart_viewed", None, None),
        ("product_added_to_cart", "a004", 3),
        ("product_removed_from_cart", "a004", 2),
        ("product_removed_from_cart", "a008", 1),
        ("checkout_started", None, None),
        ("checkout_completed", "a004", 3),
    ]
    _, log = events()
    bought = log.filter(log["event_type"] == "checkout_completed").row(0, named=True)
    assert bought["price"] == pytest.approx(34.8) and bought["title"] == "Trail Runner 4"
    assert bought["category"] == "apparel.shoes.running"


def test_checkout_with_empty_cart_logs_nothing(shop):
    sf, c, events = shop
    r = c.get("/s/shop_a/checkout")
    assert "Your cart is empty" in r.text
    assert events()[0] == []


def test_store_index_and_health(shop):
    sf, c, _ = shop
    assert "/s/shop_b/" in c.get("/").text
    assert c.get("/_health").json()["stores"] == 2
