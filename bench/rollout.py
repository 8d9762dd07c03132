"""Rollout throughput: agent steps/s and step latency at 1, 8, 32, 64 concurrent buyers.

    python bench/rollout.py          # ~4 min on 2 cores
    python bench/rollout.py --full   # more episodes, 3 repeats, up to 128 buyers

A trivial policy (click a random on-store link) drives the real driver (observation, strict
parser, fault handling, batching) against the storefront served in its own process. The
reference, measured in the same run, alternating with the driver: bare Playwright with the same
concurrency doing the same work per step (navigate to a link + the same DOM observation), with
none of the driver's machinery. Reports per level: steps/s (median over repeats), p50/p95 step
latency (execution + observation, policy excluded), driver/reference throughput ratio, crashes,
and browser memory per live context (USS of the Chromium processes above the idle browser).
Ends with `TARGET rollout_steps_per_s_at_32 measured=<v> goal=20 PASS|MISS` (PASS also needs
zero crashes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from simpersona_jax.rollout.browser import BrowserPool  # noqa: E402
from simpersona_jax.rollout.driver import DriverConfig, EpisodeSpec, run_episodes  # noqa: E402
from simpersona_jax.rollout.observe import observe  # noqa: E402
from simpersona_jax.storefront.catalog import catalogs_from_events, write_catalogs  # noqa: E402
from simpersona_jax.storefront.server import StorefrontServer  # noqa: E402
from simpersona_jax.storefront.testing import tiny_events  # noqa: E402

GOAL = 20.0


def chromium_uss_mb() -> float:
    """Summed USS (memory unique to each process) of the Chromium processes. RSS would count the
    pages every renderer shares with the zygote once per renderer; USS leaves them out."""
    total = 0
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" in p.name():
                total += p.memory_full_info().uss
        except psutil.Error:
            pass
    return total / 2**20


async def trivial_policy(turns):
    out = []
    for t in turns:
        links = [e.bid for e in t.observation.elements if e.role == "link" and e.href.startswith("/")]
        out.append(f'click("{random.Random(hash((t.spec.session_id, t.step))).choice(links)}")')
    return out


class MemoryProbe:
    def __init__(self):
        self.peak = 0.0
        self._task = None

    async def _run(self):
        while True:
            self.peak = max(self.peak, chromium_uss_mb())
            await asyncio.sleep(2.0)

    def __enter__(self):
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


async def run_driver(pool, server, concurrency, episodes, steps, tag):
    specs = [EpisodeSpec(server.store_url("shop_a"), "shop_a", f"bench-{tag}-{i}", f"bench-{tag}-{i}")
             for i in range(episodes)]
    cfg = DriverConfig(concurrency=concurrency, step_limit=steps, action_timeout_s=60,
                       episode_timeout_s=900)
    t0 = time.perf_counter()
    with MemoryProbe() as mem:
        results = await run_episodes(specs, trivial_policy, cfg, pool=pool)
    wall = time.perf_counter() - t0
    lat = [s.latency_s for r in results for s in r.steps]
    crashes = sum(r.outcome == "crashed" for r in results)
    return dict(steps_per_s=len(lat) / wall, lat=lat, crashes=crashes, peak_mb=mem.peak)


async def run_reference(pool, server, concurrency, episodes, steps):
    """Bare Playwright: per step, goto a random on-store link and observe; same concurrency."""
    gate = asyncio.Semaphore(concurrency)
    n_steps = 0

    async def one(i):
        nonlocal n_steps
        async with gate:
            context, _ = await pool.new_context(server.origin)
            page = await context.new_page()
            await page.goto(server.store_url("shop_a"), wait_until="domcontentloaded")
            obs = await observe(page)
            for step in range(steps):
                links = [e.href for e in obs.elements if e.role == "link" and e.href.startswith("/")]
                href = random.Random(hash((i, step))).choice(links)
                await page.goto(server.origin + href, wait_until="domcontentloaded")
                obs = await observe(page)
                n_steps += 1
            await context.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(episodes)))
    return n_steps / (time.perf_counter() - t0)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main(args):
    levels = [int(x) for x in args.levels.split(",")] + ([128] if args.full else [])
    repeats = 3 if args.full else 2
    root = tempfile.mkdtemp(prefix="bench_rollout_")
    write_catalogs(catalogs_from_events(tiny_events(n_products=200)), os.path.join(root, "catalog"))
    pool = await BrowserPool(extra_args=tuple(a for a in args.chromium_args.split() if a)).start()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} "
          f"chromium={pool._executable or 'playwright'}", flush=True)
    rows, at32 = [], None
    with StorefrontServer(os.path.join(root, "catalog"), os.path.join(root, "events"),
                          mode="process") as server:
        await run_reference(pool, server, 2, 2, 2)  # warm up the browser and server
        base_mb = chromium_uss_mb()
        for c in levels:
            episodes = max(c, 4) * (2 if args.full else 1)
            steps = args.steps
            drv, ref = [], []
            for rep in range(repeats):  # alternate driver and reference
                drv.append(await run_driver(pool, server, c, episodes, steps, f"{c}-{rep}"))
                ref.append(await run_reference(pool, server, c, episodes, steps))
            sps = statistics.median(d["steps_per_s"] for d in drv)
            ref_sps = statistics.median(ref)
            lat = [x for d in drv for x in d["lat"]]
            crashes = sum(d["crashes"] for d in drv)
            mem = (max(d["peak_mb"] for d in drv) - base_mb) / c
            row = (c, sps, pct(lat, 0.5) * 1000, pct(lat, 0.95) * 1000, sps / ref_sps, crashes, mem)
            rows.append(row)
            print(f"concurrency={c:3d} steps/s={sps:6.1f} p50={row[2]:6.0f}ms p95={row[3]:6.0f}ms "
                  f"ratio_vs_bare_playwright={row[4]:.2f} crashes={crashes} "
                  f"mem_per_context={mem:5.1f}MB", flush=True)
            if c == 32:
                at32 = (sps, crashes)
    await pool.close()
    sps, crashes = at32
    ok = sps >= GOAL and crashes == 0
    print(f"TARGET rollout_steps_per_s_at_32 measured={sps:.1f} goal={GOAL:.0f} "
          f"{'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--steps", type=int, default=8, help="steps per episode")
    parser.add_argument("--chromium_args", default="", help="extra Chromium flags")
    parser.add_argument("--levels", default="1,8,32,64", help="concurrency levels (must include 32)")
    asyncio.run(main(parser.parse_args()))
