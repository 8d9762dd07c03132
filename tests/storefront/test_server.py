"""The server lifecycle (thread and process) and hundreds of concurrent sessions."""

import asyncio

import httpx
import pytest

from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.storefront.load import EVENTS, run_load
from simpersona_jax.storefront.server import StorefrontServer
from simpersona_jax.storefront.testing import SHOP_A_PRODUCTS


def test_thread_mode_start_flush_stop(catalog_dir, tmp_path):
    server = StorefrontServer(catalog_dir, str(tmp_path), mode="thread").start()
    try:
        r = httpx.get(server.store_url("shop_a") + "?buyer=b&session=s")
        assert r.status_code == 200
        server.flush()
        assert read_log(str(tmp_path)).height == 1
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.store_url("shop_a"), timeout=2)


def test_process_mode_200_concurrent_sessions_every_event_exactly_once(catalog_dir, tmp_path):
    n = 200
    with StorefrontServer(catalog_dir, str(tmp_path), mode="process") as server:
        report = asyncio.run(run_load(server.origin, "shop_a", SHOP_A_PRODUCTS, n, concurrency=n))
    log = read_log(str(tmp_path))  # stop() flushed everything
    assert report.sessions_done == n and len(report.answered) == len(EVENTS) * n
    assert report.check(log) == dict(expected=len(EVENTS) * n, missing=0, duplicated=0, unknown=0)
    assert log.height == len(EVENTS) * n
    assert set(log.filter(log["session_id"] == "load-s7")["buyer_id"]) == {"load-b7"}
    print(f"load: {report.sessions_per_s:.1f} sessions/s, p95 {report.p95_ms():.0f} ms")


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        StorefrontServer("x", "y", mode="fork")
