"""The scripted buyer acts out synthetic buyer types through the driver."""

import collections

import polars as pl
import pytest

from simpersona_jax.rollout.driver import DriverConfig, run_episodes
from simpersona_jax.rollout.scripted import ScriptedBuyer, scripted_specs
from simpersona_jax.storefront.catalog import read_catalogs
from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.synth.types import type_by_name

pytestmark = pytest.mark.browser


def test_types_shop_differently(shop, browser):
    catalog = read_catalogs(shop.catalog_dir)["shop_a"]
    names = ("bouncer", "decisive_buyer", "cart_abandoner")
    buyers = [(type_by_name(n), f"{n}-{i}") for n in names for i in range(3)]
    specs = scripted_specs(shop.store_url("shop_a"), catalog, buyers, seed=1)
    results = browser.run(
        run_episodes(
            specs,
            ScriptedBuyer(seed=1),
            DriverConfig(concurrency=6, step_limit=40),
            pool=browser.pool,
        )
    )
    assert all(r.outcome in ("stopped", "completed") for r in results), [r.reason for r in results]
    assert all(s.error == "" for r in results for s in r.steps)
    shop.flush()
    log = read_log(shop.log_dir).filter(pl.col("buyer_id").is_in([b for _, b in buyers]))
    assert set(log["session_id"]) == {s.session_id for s in specs}  # every visit was logged
    events = {
        n: collections.Counter(
            log.filter(pl.col("buyer_id").str.starts_with(n))["event_type"].cast(pl.String)
        )
        for n in names
    }
    steps = {n: sum(len(r.steps) for r in results if r.spec.meta.name == n) for n in names}
    assert steps["bouncer"] < steps["decisive_buyer"]
    assert events["bouncer"]["product_added_to_cart"] == 0
    assert events["decisive_buyer"]["checkout_completed"] >= 1
    assert (
        sum(r.outcome == "completed" for r in results if r.spec.meta.name == "decisive_buyer") >= 1
    )
    assert events["cart_abandoner"]["product_added_to_cart"] >= 1


def test_specs_land_by_type_and_are_deterministic(shop):
    catalog = read_catalogs(shop.catalog_dir)["shop_a"]
    buyers = [(type_by_name("searcher"), f"s{i}") for i in range(20)]
    a = scripted_specs("http://x/s/shop_a/", catalog, buyers, seed=3)
    b = scripted_specs("http://x/s/shop_a/", catalog, buyers, seed=3)
    assert [s.start_url for s in a] == [s.start_url for s in b]
    landings = collections.Counter(s.start_url.split("/s/shop_a/")[1].split("?")[0] for s in a)
    assert landings["search"] >= 12  # searchers land on search 80% of the time
