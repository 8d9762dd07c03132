"""Visits and forms cannot be hijacked or replayed: signed visits, one buyer per session, checked
ids, bounded memory, server-issued nonces, strict quantities, orders and encoded product links."""

import re

import polars as pl
import pytest
from starlette.testclient import TestClient

from simpersona_jax.storefront.app import Storefront
from simpersona_jax.storefront.catalog import catalogs_from_events
from simpersona_jax.storefront.eventlog import EventLog, read_log
from simpersona_jax.storefront.testing import tiny_events
from simpersona_jax.storefront.visits import SESSION_IDLE_S, Visits

CHECKOUT = dict(name="A", email="a@b.c", address="x")


@pytest.fixture()
def shop(tmp_path):
    sf = Storefront(catalogs_from_events(tiny_events()), EventLog(str(tmp_path)))

    def log():
        sf.log.flush()
        return read_log(str(tmp_path))

    return sf, TestClient(sf.app), log


def nonce(html):
    return re.search(r'name="nonce" value="(\w+)"', html).group(1)


def add(c, quantity, nonce_value, pid="a004"):
    return c.post(
        "/s/shop_a/cart/add", data=dict(product_id=pid, quantity=quantity, nonce=nonce_value)
    )


def cart_count(html):
    return int(re.search(r"data-cart-count>(\d+)<", html).group(1))


def test_missing_invented_and_reused_nonces_change_nothing(shop):
    sf, c, log = shop
    n = nonce(c.get("/s/shop_a/p/a004?buyer=B&session=S").text)
    assert cart_count(add(c, "1", n).text) == 1
    for bad in (n, "", "deadbeef" * 3, nonce(c.get("/s/shop_a/cart").text)):  # reused, missing,
        r = add(c, "3", bad)  # invented, issued for another form
        assert r.status_code == 409 and "nothing was changed" in r.text and cart_count(r.text) == 1
    r = c.post("/s/shop_a/cart/update", data=dict(product_id="a004", quantity="5"))
    assert r.status_code == 409 and cart_count(r.text) == 1
    r = c.post("/s/shop_a/cart/remove", data=dict(product_id="a004", nonce="x"))
    assert r.status_code == 409 and cart_count(r.text) == 1
    c.get("/s/shop_a/checkout")
    r = c.post("/s/shop_a/checkout", data=dict(CHECKOUT, nonce="forged"))
    assert r.status_code == 409 and 'data-page="checkout"' in r.text
    adds = log().filter(pl.col("event_type").is_in(["product_added_to_cart", "checkout_completed"]))
    assert adds["quantity"].to_list() == [1]


@pytest.mark.parametrize("quantity", ["+5", " 7 ", "1_0", "٣", "３", "-1", "0", "100", "1.0", ""])
def test_quantities_are_ascii_digits_from_1_to_99(shop, quantity):
    sf, c, log = shop
    r = add(c, quantity, nonce(c.get("/s/shop_a/p/a004").text))
    assert r.status_code == 400 and "whole number from 1 to 99" in r.text
    assert cart_count(r.text) == 0


def test_a_cart_line_holds_at_most_99(shop):
    sf, c, log = shop
    r = add(c, "60", nonce(c.get("/s/shop_a/p/a004").text))
    assert cart_count(r.text) == 60
    r = add(c, "60", nonce(r.text))
    assert r.status_code == 400 and "At most 99" in r.text and cart_count(r.text) == 60
    r = add(c, "39", nonce(r.text))
    assert cart_count(r.text) == 99
    r = c.get("/s/shop_a/cart")
    r = c.post(
        "/s/shop_a/cart/update", data=dict(product_id="a004", quantity="100", nonce=nonce(r.text))
    )
    assert r.status_code == 400 and cart_count(r.text) == 99


def test_a_forged_or_copied_session_cannot_reach_another_cart(shop):
    sf, victim, log = shop
    add(victim, "2", nonce(victim.get("/s/shop_a/p/a004?buyer=B&session=S").text))
    for cookies in (
        dict(sp_session="S", sp_buyer="B"),  # the old, unsigned cookies
        dict(sp_visit="S", sp_buyer="B"),
        dict(sp_visit=victim.cookies["sp_buyer"]),
    ):
        thief = TestClient(sf.app, cookies=cookies)
        r = thief.get("/s/shop_a/cart")
        assert "Your cart is empty" in r.text and cart_count(r.text) == 0
        r = thief.post("/s/shop_a/cart/remove", data=dict(product_id="a004", nonce="x"))
        assert r.status_code == 400
    thief = TestClient(sf.app)
    r = thief.get("/s/shop_a/cart?buyer=B&session=S")  # knowing the ids starts a new visit
    assert cart_count(r.text) == 0
    assert cart_count(victim.get("/s/shop_a/cart").text) == 2


def test_a_session_belongs_to_one_buyer(shop):
    sf, c, log = shop
    c.get("/s/shop_a/?buyer=B&session=S")
    for other in (c, TestClient(sf.app)):
        r = other.get("/s/shop_a/c/apparel?buyer=X&session=S")
        assert r.status_code == 409 and "belongs to another buyer" in r.text
    frame = log()
    assert frame.height == 1 and set(frame["buyer_id"]) == {"B"}


@pytest.mark.parametrize(
    "ids",
    [
        "buyer=" + "b" * 15000,
        "session=a%20b",
        "buyer=%3Cb%3E",
        "session=s%C3%A9",
        "buyer=" + "b" * 129,
    ],
    ids=["15k", "space", "markup", "non_ascii", "129"],
)
def test_client_ids_are_checked_before_the_log(shop, ids):
    sf, c, log = shop
    r = c.get(f"/s/shop_a/?{ids}")
    assert r.status_code == 400 and "must be 1 to 128 characters" in r.text
    assert len(r.text) < 1000 and log().height == 0


def test_idle_visits_are_dropped_and_their_number_bounded(tmp_path):
    now = [0.0]
    sf = Storefront(
        catalogs_from_events(tiny_events()),
        EventLog(str(tmp_path)),
        visits=Visits(max_visits=50, clock=lambda: now[0]),
    )
    for i in range(200):  # new browsers (no cookies) keep coming
        TestClient(sf.app).get(f"/s/shop_a/?buyer=b{i}&session=s{i}")
    assert len(sf.visits) == 50
    c = TestClient(sf.app)
    add(c, "1", nonce(c.get("/s/shop_a/p/a004").text))
    now[0] += SESSION_IDLE_S - 1
    assert cart_count(c.get("/s/shop_a/cart").text) == 1 and len(sf.visits) == 50
    now[0] += 2  # the others are idle for longer than a session lasts
    assert cart_count(c.get("/s/shop_a/cart").text) == 1 and len(sf.visits) == 1
    now[0] += SESSION_IDLE_S + 1  # so is this one now
    assert cart_count(c.get("/s/shop_a/cart").text) == 0 and len(sf.visits) == 1


def test_order_page_only_for_orders_placed_in_this_visit(shop):
    sf, c, log = shop
    assert c.get("/s/shop_a/order/ANYTHING").status_code == 404
    add(c, "1", nonce(c.get("/s/shop_a/p/a004").text))
    n = nonce(c.get("/s/shop_a/checkout").text)
    r = c.post("/s/shop_a/checkout", data=dict(CHECKOUT, nonce=n))
    order_id = re.search(r"data-order-id>(\w+)<", r.text).group(1)
    assert c.get(f"/s/shop_a/order/{order_id}").status_code == 200
    assert TestClient(sf.app).get(f"/s/shop_a/order/{order_id}").status_code == 404
    assert c.get("/s/shop_a/order/ANYTHING").status_code == 404


def test_product_ids_with_url_characters_can_be_opened(tmp_path):
    odd = "a/0 0?x#y%"
    events = tiny_events().with_columns(pl.col("product_id").replace("a000", odd))
    sf = Storefront(catalogs_from_events(events), EventLog(str(tmp_path)))
    c = TestClient(sf.app)
    home = c.get("/s/shop_a/").text
    href = re.search(r'href="([^"]+)" data-product-id="a/0 0\?x#y%"', home).group(1)
    assert href == "/s/shop_a/p/a%2F0%200%3Fx%23y%25"
    r = c.get(href)
    assert r.status_code == 200 and 'data-page="product"' in r.text
    r = add(c, "1", nonce(r.text), pid=odd)
    assert cart_count(r.text) == 1 and 'data-page="product"' in r.text
    sf.log.flush()
    assert read_log(str(tmp_path))["product_id"].to_list()[1:] == [odd, odd]
