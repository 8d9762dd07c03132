"""The event log under failure: a quiet server, a failing folder, kill -9 (under load and after a
burst), a restart."""

import asyncio
import os
import time

import pytest
from starlette.testclient import TestClient

from simpersona_jax.storefront.app import Storefront
from simpersona_jax.storefront.catalog import catalogs_from_events
from simpersona_jax.storefront.eventlog import (
    FAILURES_TO_REPORT,
    EventLog,
    EventLogWriteError,
    read_log,
)
from simpersona_jax.storefront.load import EVENTS, kill_after_burst, kill_under_load, run_load
from simpersona_jax.storefront.server import StorefrontServer
from simpersona_jax.storefront.testing import SHOP_A_PRODUCTS, tiny_events


def test_quiet_server_writes_its_events_within_the_flush_interval(tmp_path):
    sf = Storefront(
        catalogs_from_events(tiny_events()), EventLog(str(tmp_path)), flush_interval_s=0.2
    )
    with TestClient(sf.app) as c:  # runs the lifespan: the background flusher
        c.get("/s/shop_a/?buyer=b&session=s")
        deadline = time.monotonic() + 5
        while c.get("/_health").json()["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        health = c.get("/_health").json()
        assert (health["pending"], health["written"]) == (0, 1)
        assert read_log(str(tmp_path)).height == 1


def test_failed_write_keeps_its_events_retries_and_reports(tmp_path, caplog):
    log = EventLog(str(tmp_path), max_buffer=6)
    (tmp_path / "store_id=s2").write_text("not a folder")  # s2's segments cannot be written
    for i in range(6):  # the 6th fills the buffer: a flush that fails but loses nothing
        log.append("s1" if i % 2 else "s2", "b", "x", "product_viewed", product_id=str(i))
    assert (log.written, log.pending(), log.failures) == (3, 3, 1)
    for attempt in range(FAILURES_TO_REPORT - 1):
        with pytest.raises(EventLogWriteError, match="3 events not written.*store_id=s2"):
            log.flush()
        assert (log.written, log.pending()) == (3, 3)  # s1's went out once, s2's are kept
    assert "store_id=s2" in log.error and log.failures == FAILURES_TO_REPORT
    assert sum("events not written" in r.message for r in caplog.records) == 1  # one line
    assert sorted(read_log(str(tmp_path))["product_id"]) == ["1", "3", "5"]
    os.remove(tmp_path / "store_id=s2")
    assert log.flush() == 3 and (log.written, log.pending(), log.error) == (6, 0, "")
    assert sorted(read_log(str(tmp_path))["product_id"]) == [str(i) for i in range(6)]
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.endswith(".tmp")]


def test_health_and_flush_report_a_failing_log(tmp_path):
    sf = Storefront(catalogs_from_events(tiny_events()), EventLog(str(tmp_path)))
    (tmp_path / "store_id=shop_a").write_text("not a folder")
    c = TestClient(sf.app)
    c.get("/s/shop_a/")
    assert c.get("/_health").json()["ok"] is True
    for _ in range(FAILURES_TO_REPORT):
        r = c.post("/_admin/flush")
        assert r.status_code == 500 and r.json()["pending"] == 1
    r = c.get("/_health")
    assert r.status_code == 503 and r.json()["ok"] is False
    assert "store_id=shop_a" in r.json()["error"]


def test_kill_9_loses_no_event_answered_a_flush_interval_before(catalog_dir, tmp_path):
    interval, log_dir = 0.5, str(tmp_path)

    def server():
        return StorefrontServer(catalog_dir, log_dir, mode="process", flush_interval_s=interval)

    # Killed under load, then killed after a burst once the server has been quiet.
    runs = []
    for kill in (kill_under_load, kill_after_burst):
        started = server().start()
        try:
            report, t_kill = asyncio.run(kill(started, "shop_a", SHOP_A_PRODUCTS, interval))
        finally:
            started.stop()
        runs.append((report, t_kill - interval))
        got = report.check(read_log(log_dir), answered_before=t_kill - interval)
        assert got["expected"] > 100 and got["missing"] == 0, (kill.__name__, got)
        assert got["duplicated"] == 0 and got["unknown"] == 0, (kill.__name__, got)
    assert runs[0][0].sessions_done < 10_000  # the first was killed mid-load
    # A restarted server on the same log adds its own events; nothing is written twice.
    with server() as started:
        after = asyncio.run(run_load(started.origin, "shop_a", SHOP_A_PRODUCTS, 10, prefix="again"))
    log = read_log(log_dir)
    for report, cutoff in runs:
        assert report.check(log, cutoff)["missing"] == report.check(log)["duplicated"] == 0
    assert after.check(log) == dict(expected=10 * len(EVENTS), missing=0, duplicated=0, unknown=0)
