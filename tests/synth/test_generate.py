"""The synthetic generator: deterministic, storefront-valid paths, truth kept out of events."""

import json
import os

import polars as pl
import pytest

from simpersona_jax.synth.generate import default_config, generate
from simpersona_jax.synth.types import BUYER_TYPES


def _cfg(**kw):
    cfg = default_config()
    cfg.update(
        dict(num_stores=4, buyers_per_store=150, buyers_per_shard=60, products_per_store=80, **kw)
    )
    return cfg


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth"))
    plan = generate(_cfg(), out)
    events = pl.read_parquet(os.path.join(out, "events", "**", "*.parquet"), hive_partitioning=True)
    return out, plan, events


def test_deterministic_and_resumable(dataset, tmp_path):
    out, plan, events = dataset
    plan2 = generate(_cfg(), str(tmp_path))
    ev2 = pl.read_parquet(
        os.path.join(tmp_path, "events", "**", "*.parquet"), hive_partitioning=True
    )
    assert plan2["stores"] == plan["stores"]
    assert ev2.equals(events)
    os.remove(os.path.join(tmp_path, "events", "store_id=store001", "bucket=1", "part-0.parquet"))
    again = generate(_cfg(), str(tmp_path))  # regenerates only the missing shard
    assert 0 < again["events_written"] < events.height
    ev3 = pl.read_parquet(
        os.path.join(tmp_path, "events", "**", "*.parquet"), hive_partitioning=True
    )
    assert ev3.sort("buyer_id", "event_time").equals(events.sort("buyer_id", "event_time"))
    assert generate(_cfg(seed=1), str(tmp_path / "other"))["stores"] != plan["stores"]


def test_store_split_and_truth(dataset):
    out, plan, events = dataset
    with open(os.path.join(out, "stores.json")) as f:
        saved = json.load(f)
    assert sorted(saved["train"] + saved["heldout"]) == [f"store{i:03d}" for i in range(4)]
    assert not set(saved["train"]) & set(saved["heldout"])
    truth = pl.read_parquet(os.path.join(out, "truth", "**", "*.parquet"))
    assert truth.height == sum(s["buyers"] for s in plan["stores"].values())
    assert set(truth["type"]) <= {t.name for t in BUYER_TYPES}
    assert "type" not in events.columns
    assert set(events["buyer_id"].unique()) <= set(truth["buyer_id"])


def test_sessions_follow_storefront_paths(dataset):
    _, _, events = dataset
    for (session,), ev in events.sort("event_time", maintain_order=True).group_by(
        "session_id", maintain_order=True
    ):
        types = ev["event_type"].to_list()
        products = ev["product_id"].to_list()
        cart = set()
        for i, (t, p) in enumerate(zip(types, products)):
            if t == "product_viewed" and i > 0:
                assert types[i - 1] in (
                    "collection_viewed",
                    "search_submitted",
                    "product_viewed",
                    "product_added_to_cart",
                ), (session, types)
            if t == "product_added_to_cart":
                assert types[i - 1] == "product_viewed" and products[i - 1] == p
                cart.add(p)
            if t == "product_removed_from_cart":
                assert p in cart and "cart_viewed" in types[:i]
                cart.discard(p)
            if t == "checkout_started":
                assert types[i - 1] in ("cart_viewed", "product_removed_from_cart") and cart
            if t == "checkout_completed":
                assert "checkout_started" in types[:i] and p in cart


def test_types_differ_in_behaviour(dataset):
    out, _, events = dataset
    truth = pl.read_parquet(os.path.join(out, "truth", "**", "*.parquet"))
    per_buyer = events.group_by("buyer_id").agg(
        n=pl.len(), bought=(pl.col("event_type") == "checkout_completed").any()
    )
    by_type = (
        per_buyer.join(truth, on="buyer_id")
        .group_by("type")
        .agg(pl.col("n").mean(), pl.col("bought").mean())
    )
    rows = dict(zip(by_type["type"], zip(by_type["n"], by_type["bought"])))
    assert rows["researcher"][0] > 3 * rows["bouncer"][0]
    assert rows["decisive_buyer"][1] > 0.5 > rows["cart_abandoner"][1]


def test_parallel_workers_give_the_same_dataset(dataset, tmp_path):
    _, _, events = dataset
    generate(_cfg(workers=2), str(tmp_path))
    ev = pl.read_parquet(
        os.path.join(tmp_path, "events", "**", "*.parquet"), hive_partitioning=True
    )
    assert ev.equals(events)
