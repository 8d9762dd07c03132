"""The server lifecycle (thread and process) and hundreds of concurrent sessions."""

import asyncio
import re

import httpx
import pytest

from simpersona_jax.storefront.catalog import catalogs_from_events, write_catalogs
from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.storefront.server import StorefrontServer
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("catalog"))
    write_catalogs(catalogs_from_events(tiny_events()), path)
    return path


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


async def _shopper(client: httpx.AsyncClient, origin: str, i: int) -> None:
    q = f"?buyer=b{i}&session=s{i}"
    r = await client.get(f"{origin}/s/shop_a/{q}")
    r.raise_for_status()
    cookies = dict(r.cookies)
    pid = f"a{i % 60:03d}"
    r = await client.get(f"{origin}/s/shop_a/p/{pid}", cookies=cookies)
    n = re.search(r'name="nonce" value="(\w+)"', r.text).group(1)
    r = await client.post(f"{origin}/s/shop_a/cart/add", cookies=cookies,
                          data=dict(product_id=pid, quantity="1", nonce=n))
    assert r.status_code == 303
    r = await client.get(f"{origin}/s/shop_a/cart", cookies=cookies)
    assert "data-cart-count>1<" in r.text, r.text[:300]


def test_process_mode_hundreds_of_concurrent_sessions(catalog_dir, tmp_path):
    n = 200
    with StorefrontServer(catalog_dir, str(tmp_path), mode="process") as server:
        async def main():
            limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
            async with httpx.AsyncClient(limits=limits, timeout=60) as client:
                await asyncio.gather(*(_shopper(client, server.origin, i) for i in range(n)))

        asyncio.run(main())
    log = read_log(str(tmp_path))  # stop() flushed everything
    assert log.height == 4 * n
    per_session = log.group_by("session_id").len()
    assert per_session.height == n and set(per_session["len"]) == {4}
    assert set(log.filter(log["session_id"] == "s7")["buyer_id"]) == {"b7"}


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        StorefrontServer("x", "y", mode="fork")
