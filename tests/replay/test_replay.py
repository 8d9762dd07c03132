"""Replay fidelity in the browser: synthetic sessions and the REES46 sample."""

import os

import polars as pl
import pytest

from simpersona_jax.data.schema import COLUMNS
from simpersona_jax.replay.replay import replay_sessions
from simpersona_jax.rollout.driver import DriverConfig
from simpersona_jax.storefront.catalog import catalogs_from_events, read_catalogs, write_catalogs
from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.storefront.server import StorefrontServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from simpersona_jax.rollout.testing import LoopBrowser

    b = LoopBrowser()
    yield b
    b.close()


def pick_sessions(events: pl.DataFrame, n: int) -> pl.DataFrame:
    """n sessions of at most 25 events: a quarter each with a removal, a purchase, a search,
    the rest the first others."""
    et = pl.col("event_type").cast(pl.String)
    flags = (
        events.group_by("store_id", "session_id", maintain_order=True)
        .agg(
            (et == "product_removed_from_cart").any().alias("rm"),
            (et == "checkout_completed").any().alias("buy"),
            (et == "search_submitted").any().alias("search"),
            pl.len().alias("n"),
        )
        .filter(pl.col("n") <= 25)
    )
    keep: list[tuple] = []
    for flag in ("rm", "buy", "search", None):
        pool = flags if flag is None else flags.filter(pl.col(flag))
        want = n - len(keep) if flag is None else n // 4
        for key in pool.select("store_id", "session_id").iter_rows():
            if want == 0:
                break
            if key not in keep:
                keep.append(key)
                want -= 1
    keys = pl.DataFrame(keep, schema=["store_id", "session_id"], orient="row")
    return events.join(keys, on=["store_id", "session_id"])


def in_order(expected, logged):
    """Independent check: every expected event occurs in `logged` after the previous one."""
    pos = 0
    for e in expected:
        while pos < len(logged) and logged[pos] != e:
            pos += 1
        if pos == len(logged):
            return False
        pos += 1
    return True


def check_replay(report, events, log_dir):
    log = read_log(log_dir)
    et = pl.col("event_type").cast(pl.String)
    replayed = {(r["store_id"], r["session_id"]) for r in report.rows}
    assert len(replayed) == report.replayed
    for store_id, session_id in replayed:

        def seq(frame):
            f = frame.filter(store_id=store_id, session_id=session_id).filter(
                et.is_in(["product_viewed", "product_added_to_cart", "product_removed_from_cart"])
            )
            return [(e, p) for e, p in f.select(et, "product_id").iter_rows()]

        original = seq(events.sort("event_time", maintain_order=True))
        assert in_order(original, seq(log)), (session_id, original)
        n_bought = events.filter(
            store_id=store_id, session_id=session_id, event_type="checkout_completed"
        ).height
        assert (
            log.filter(
                store_id=store_id, session_id=session_id, event_type="checkout_completed"
            ).height
            == n_bought
        )
    # Trace rows: steps 0..n-1 per session, history = the previous <= 5 actions, ends in stop().
    by_session = {}
    for r in report.rows:
        by_session.setdefault((r["store_id"], r["session_id"]), []).append(r)
    for rows in by_session.values():
        assert [r["step"] for r in rows] == list(range(len(rows)))
        actions = [r["action"] for r in rows]
        assert actions[-1] == "stop()"
        for i, r in enumerate(rows):
            assert r["history"] == actions[max(0, i - 5) : i]
            assert r["observation"].startswith("page: ")
            assert r["goal_intent"].endswith(".") and r["goal_neutral"]
    assert report.sessions_in == report.replayed + sum(report.dropped.values())
    assert report.steps == len(report.rows) and report.tokens > report.steps


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from simpersona_jax.synth.generate import default_config, generate

    root = str(tmp_path_factory.mktemp("synth"))
    cfg = default_config()
    cfg.num_stores, cfg.buyers_per_store, cfg.products_per_store = 2, 30, 80
    generate(cfg, root)
    events = pl.scan_parquet(f"{root}/events/**/*.parquet", hive_partitioning=True).collect()
    return root, pick_sessions(events, 14)


def test_replay_synthetic_sessions(synthetic, browser, tmp_path):
    root, events = synthetic
    kinds = set(events["event_type"].cast(pl.String))
    assert {
        "product_removed_from_cart",
        "checkout_completed",
        "search_submitted",
        "collection_viewed",
        "cart_viewed",
        "checkout_started",
    } <= kinds
    catalogs = read_catalogs(f"{root}/catalog")
    with StorefrontServer(f"{root}/catalog", str(tmp_path / "log")) as server:
        report = browser.run(
            replay_sessions(
                events,
                catalogs,
                server,
                DriverConfig(concurrency=6, step_limit=120),
                pool=browser.pool,
            )
        )
    assert report.sessions_in == 14
    assert report.replayed == 14, report.summary()
    check_replay(report, events, str(tmp_path / "log"))


def test_replay_rees46_sample(shared_datasets, browser, tmp_path):
    from simpersona_jax.data.sources import load_events

    path = os.path.join(shared_datasets, "rees46", "2019-Oct-head.csv")
    events = load_events([path], store_id="rees46").select(*COLUMNS).collect()
    catalogs = catalogs_from_events(events)
    write_catalogs(catalogs, str(tmp_path / "catalog"))
    sample = pick_sessions(events, 10)
    assert sample["event_type"].cast(pl.String).is_in(["checkout_completed"]).any()
    with StorefrontServer(str(tmp_path / "catalog"), str(tmp_path / "log")) as server:
        report = browser.run(
            replay_sessions(
                sample,
                catalogs,
                server,
                DriverConfig(concurrency=6, step_limit=150),
                pool=browser.pool,
            )
        )
    assert report.sessions_in == 10
    assert report.replayed >= 9, report.summary()
    check_replay(report, sample, str(tmp_path / "log"))
