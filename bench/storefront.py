"""Storefront under load and under kill -9: throughput, latency, and events lost.

    python bench/storefront.py                       # ~3 min on 2 cores
    python bench/storefront.py --full                # 1000 sessions, 6 kills
    python bench/storefront.py --server_root=DIR     # serve from another checkout (before/after)

Load: `--sessions` concurrent HTTP shoppers (storefront/load.py: home, product, add to cart, cart,
checkout, place the order; six events and requests each) against the storefront in its own
process. Reports sessions/s, requests/s, p50/p95 request latency (all in flight at once, so
latency is mostly queueing), the server's and this client's CPU per request (which, unlike
wall-clock figures, hardly depend on what else the machine runs), and whether every answered
event is in the log exactly once.
Kill: `--kills` times, a server is SIGKILLed, alternately under load (40 concurrent shoppers, two
flush intervals after it has answered 150 events) and two flush intervals after a burst of 30
sessions ended; counts the events it had answered at least one flush interval before the kill
that are not on disk (and all answered events not on disk).
Ends with TARGET lines: storefront_events_lost_per_kill (worst kill, goal 0),
storefront_load_exactly_once (missing + duplicated, goal 0), storefront_requests_per_s (goal 100:
five times the rollout benchmark's 20 agent steps/s, so the storefront is never the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile

import numpy as np
import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from simpersona_jax.storefront.catalog import catalogs_from_events, write_catalogs  # noqa: E402
from simpersona_jax.storefront.eventlog import read_log  # noqa: E402
from simpersona_jax.storefront.load import kill_after_burst, kill_under_load, run_load  # noqa: E402
from simpersona_jax.storefront.server import StorefrontServer  # noqa: E402
from simpersona_jax.storefront.testing import SHOP_A_PRODUCTS, tiny_events  # noqa: E402

GOAL_RPS = 100.0


@contextlib.contextmanager
def cwd(path: str | None):
    """The server process imports the package from its working directory (python -m)."""
    old = os.getcwd()
    os.chdir(path or old)
    try:
        yield
    finally:
        os.chdir(old)


def start(catalog_dir: str, log_dir: str, root: str | None, interval: float) -> StorefrontServer:
    with cwd(root):
        return StorefrontServer(
            catalog_dir, log_dir, mode="process", flush_interval_s=interval
        ).start(timeout_s=120)


def load_run(catalog_dir: str, root: str | None, n: int) -> dict:
    with tempfile.TemporaryDirectory() as log_dir:
        server = start(catalog_dir, log_dir, root, 1.0)
        proc = psutil.Process(server._proc.pid)
        me = psutil.Process()
        cpu0, my0 = sum(proc.cpu_times()[:2]), sum(me.cpu_times()[:2])
        try:
            report = asyncio.run(
                run_load(server.origin, "shop_a", SHOP_A_PRODUCTS, n, concurrency=n)
            )
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            client_cpu = sum(me.cpu_times()[:2]) - my0
        finally:
            server.stop()
        check = report.check(read_log(log_dir))
    lat = np.array(report.latencies_s) * 1000
    return dict(
        sessions_per_s=report.sessions_per_s,
        rps=len(lat) / report.wall_s,
        p50=float(np.percentile(lat, 50)),
        p95=float(np.percentile(lat, 95)),
        cpu_ms=1000 * cpu / len(lat),
        client_cpu_ms=1000 * client_cpu / len(lat),
        done=report.sessions_done,
        bad=check["missing"] + check["duplicated"],
        check=check,
    )


def kill_run(catalog_dir: str, root: str | None, interval: float, kill) -> dict:
    with tempfile.TemporaryDirectory() as log_dir:
        server = start(catalog_dir, log_dir, root, interval)
        try:
            report, t_kill = asyncio.run(kill(server, "shop_a", SHOP_A_PRODUCTS, interval))
        finally:
            server.stop()
        log = read_log(log_dir)
        old = report.check(log, answered_before=t_kill - interval)
        every = report.check(log)
    return dict(
        lost=old["missing"],
        expected=old["expected"],
        lost_any=every["missing"],
        answered=every["expected"],
        duplicated=every["duplicated"],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--sessions", type=int, default=None)
    ap.add_argument("--kills", type=int, default=None)
    ap.add_argument("--flush_interval_s", type=float, default=0.5)
    ap.add_argument("--server_root", default=None, help="checkout to serve from (default: this)")
    args = ap.parse_args()
    n = args.sessions or (1000 if args.full else 200)
    kills = args.kills if args.kills is not None else (6 if args.full else 4)
    root = os.path.abspath(args.server_root) if args.server_root else None
    with tempfile.TemporaryDirectory() as catalog_dir:
        write_catalogs(catalogs_from_events(tiny_events()), catalog_dir)
        r = load_run(catalog_dir, root, n)
        print(
            f"load: {r['done']}/{n} sessions, {r['sessions_per_s']:.1f} sessions/s, "
            f"{r['rps']:.0f} requests/s, latency p50 {r['p50']:.0f} ms p95 {r['p95']:.0f} ms, "
            f"CPU per request: server {r['cpu_ms']:.2f} ms, client {r['client_cpu_ms']:.2f} ms; "
            f"log check {r['check']}",
            flush=True,
        )
        worst = 0
        for k in range(kills):
            kill = (kill_under_load, kill_after_burst)[k % 2]
            kr = kill_run(catalog_dir, root, args.flush_interval_s, kill)
            worst = max(worst, kr["lost"])
            print(
                f"kill {k} ({kill.__name__}): lost {kr['lost']} of {kr['expected']} events "
                f"answered >= {args.flush_interval_s}s before the kill; {kr['lost_any']} of all "
                f"{kr['answered']} answered; duplicated {kr['duplicated']}",
                flush=True,
            )
    print(
        f"TARGET storefront_events_lost_per_kill measured={worst} goal=0 "
        f"{'PASS' if worst == 0 else 'MISS'}"
    )
    print(
        f"TARGET storefront_load_exactly_once measured={r['bad']} goal=0 "
        f"{'PASS' if r['bad'] == 0 and r['done'] == n else 'MISS'}"
    )
    print(
        f"TARGET storefront_requests_per_s measured={r['rps']:.1f} goal={GOAL_RPS:.0f} "
        f"{'PASS' if r['rps'] >= GOAL_RPS else 'MISS'}"
    )


if __name__ == "__main__":
    main()
