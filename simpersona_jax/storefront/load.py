"""Concurrent HTTP shoppers against a running storefront, recording every event answered to them.

Each shopper is one visit with its own ids and cookies: home (entry URL with its ids), a product,
add to cart (with the page's nonce), cart, checkout form and placing the order: six events, six
requests, each event answered by one response. `run_load` runs `n_sessions` shoppers, at most
`concurrency` at a time, over one httpx connection pool (no browser) and returns what was
answered and when, so a test or benchmark can check the storefront's log against it
(`LoadReport.check`): every answered event on disk exactly once. A shopper stops quietly when
the server goes away: `kill_under_load` and `kill_after_burst` SIGKILL a process-mode server
while shoppers are in flight, or once a burst of them is over and the server has been quiet,
and say when.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import http.cookiejar
import re
import time

import httpx
import numpy as np
import polars as pl

EVENTS = (
    "page_viewed",
    "product_viewed",
    "product_added_to_cart",
    "cart_viewed",
    "checkout_started",
    "checkout_completed",
)
_NONCE = re.compile(r'name="nonce" value="(\w+)"')
_CHECKOUT = dict(name="Load Shopper", email="load@example.com", address="1 Test Road")


@dataclasses.dataclass
class LoadReport:
    answered: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    requested: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # answered or not
    latencies_s: list[float] = dataclasses.field(default_factory=list)
    sessions_done: int = 0
    wall_s: float = 0.0

    @property
    def sessions_per_s(self) -> float:
        return self.sessions_done / self.wall_s if self.wall_s else 0.0

    def p95_ms(self) -> float:
        return float(np.percentile(self.latencies_s, 95) * 1000) if self.latencies_s else 0.0

    def check(self, log: pl.DataFrame, answered_before: float = float("inf")) -> dict:
        """Compares the storefront's log with this load's events (session, event type).

        Returns counts: expected (answered before `answered_before`, a time.monotonic()
        value), missing (expected, not in the log), duplicated (in the log more than once),
        unknown (in the log for a load session but never requested)."""
        sessions = {s for s, _, _ in self.answered}
        logged = collections.Counter(
            (s, e)
            for s, e in log.select("session_id", pl.col("event_type").cast(pl.String)).iter_rows()
            if s in sessions
        )
        expected = {(s, e) for s, e, t in self.answered if t <= answered_before}
        return dict(
            expected=len(expected),
            missing=sum(k not in logged for k in expected),
            duplicated=sum(n > 1 for n in logged.values()),
            unknown=sum(k not in self.requested for k in logged),
        )


class _Shopper:
    def __init__(self, client: httpx.AsyncClient, report: LoadReport, session: str):
        self.client, self.report, self.session = client, report, session
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, url: str, event: str, status: int = 200, **kw
    ) -> httpx.Response:
        """One request that logs `event`; a POST is answered with a redirect, not followed (the
        page it leads to logs nothing), which spares the client a quarter of its work."""
        self.report.requested.add((self.session, event))
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        t0 = time.monotonic()
        r = await self.client.request(method, url, headers=headers, **kw)
        t1 = time.monotonic()
        self.cookies.update(r.cookies)
        if r.status_code != status:
            raise AssertionError(f"{method} {url} answered {r.status_code}: {r.text[:200]}")
        self.report.latencies_s.append(t1 - t0)
        self.report.answered.append((self.session, event, t1))
        return r

    async def shop(self, base: str, buyer: str, product_id: str) -> None:
        await self.request("GET", f"{base}/?buyer={buyer}&session={self.session}", EVENTS[0])
        r = await self.request("GET", f"{base}/p/{product_id}", EVENTS[1])
        await self.request(
            "POST",
            f"{base}/cart/add",
            EVENTS[2],
            303,
            data=dict(product_id=product_id, quantity="1", nonce=_NONCE.search(r.text).group(1)),
        )
        await self.request("GET", f"{base}/cart", EVENTS[3])
        r = await self.request("GET", f"{base}/checkout", EVENTS[4])
        r = await self.request(
            "POST",
            f"{base}/checkout",
            EVENTS[5],
            303,
            data=dict(_CHECKOUT, nonce=_NONCE.search(r.text).group(1)),
        )
        if "/order/" not in r.headers["location"]:
            raise AssertionError(f"no order for session {self.session}: {r.headers['location']}")


async def run_load(
    origin: str,
    store_id: str,
    product_ids: list[str],
    n_sessions: int,
    concurrency: int = 200,
    prefix: str = "load",
    report: LoadReport | None = None,
) -> LoadReport:
    """Runs `n_sessions` shoppers (session ids `<prefix>-s<i>`); stops early when the server
    stops answering."""
    report = report or LoadReport()
    gate = asyncio.Semaphore(concurrency)
    reject_all = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.monotonic()
    async with httpx.AsyncClient(
        limits=limits, timeout=60, cookies=reject_all
    ) as client:  # cookies are per shopper
        gone = asyncio.Event()  # the server went away: start no more shoppers

        async def one(i: int) -> None:
            async with gate:
                if gone.is_set():
                    return
                shopper = _Shopper(client, report, f"{prefix}-s{i}")
                try:
                    await shopper.shop(
                        f"{origin}/s/{store_id}",
                        f"{prefix}-b{i}",
                        product_ids[i % len(product_ids)],
                    )
                except httpx.TransportError:
                    gone.set()
                    return
                report.sessions_done += 1

        await asyncio.gather(*(one(i) for i in range(n_sessions)))
    report.wall_s = time.monotonic() - t0
    return report


async def kill_under_load(
    server, store_id: str, product_ids: list[str], interval_s: float, prefix: str = "load"
) -> tuple[LoadReport, float]:
    """SIGKILLs `server` (a process-mode StorefrontServer) two flush intervals after it has
    answered 150 events of 40 concurrent shoppers; returns what was answered and the kill time."""
    report, killed = LoadReport(), []

    async def kill() -> None:
        while len(report.answered) < 150:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2 * interval_s)
        killed.append(time.monotonic())
        server.kill()

    await asyncio.gather(
        run_load(
            server.origin,
            store_id,
            product_ids,
            10_000,
            concurrency=40,
            prefix=prefix,
            report=report,
        ),
        kill(),
    )
    return report, killed[0]


async def kill_after_burst(
    server,
    store_id: str,
    product_ids: list[str],
    interval_s: float,
    n_sessions: int = 30,
    prefix: str = "burst",
) -> tuple[LoadReport, float]:
    """Runs `n_sessions` shoppers to the end, leaves the server quiet for two flush intervals,
    then SIGKILLs it; returns what was answered and the kill time."""
    report = await run_load(
        server.origin, store_id, product_ids, n_sessions, concurrency=10, prefix=prefix
    )
    await asyncio.sleep(2 * interval_s)
    t = time.monotonic()
    server.kill()
    return report, t
