"""Rollout throughput: agent steps/s and step latency at 1, 8, 32, 64 concurrent buyers.

    python bench/rollout.py          # ~4 min on 2 cores
    python bench/rollout.py --full   # more episodes, 3 repeats, up to 128 buyers

A trivial policy (click a random on-store link) drives the real driver (observation, strict
parser, fault handling, batching) against the storefront served in its own process. The
reference, measured in the same run, alternating with the driver: bare Playwright with the same
concurrency doing the same work per step (navigate to a link + the same DOM observation), with
none of the driver's machinery. Reports per level: steps/s (median over repeats), p50/p95 step
latency (execution + observation, policy excluded), driver/reference throughput ratio, crashes,
browser memory per live context (USS of the Chromium processes above the idle browser), and CPU
per step of everything involved (this process, Playwright's driver, Chromium, the storefront),
which, unlike wall-clock throughput, hardly depends on what else the machine is running.
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
import zlib

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
        links = [
            e.bid for e in t.observation.elements if e.role == "link" and e.href.startswith("/")
        ]
        seed = zlib.crc32(f"{t.spec.session_id}/{t.step}".encode())
        out.append(f'click("{random.Random(seed).choice(links)}")')
    return out


class ResourceProbe:
    """Samples, every second, the Chromium memory (peak summed USS) and the CPU seconds used by
    this process and all its descendants (Chromium, Playwright's driver, the storefront); the CPU
    of a process is its last sample, so a renderer that exits between samples loses < 1 s."""

    def __init__(self):
        self.peak = 0.0
        self._cpu0: dict[int, float] = {}
        self._cpu: dict[int, float] = {}
        self._task = None

    def _sample_cpu(self, into):
        procs = [psutil.Process()] + psutil.Process().children(recursive=True)
        for p in procs:
            try:
                t = p.cpu_times()
                into[p.pid] = t.user + t.system
            except psutil.Error:
                pass

    async def _run(self):
        while True:
            self._sample_cpu(self._cpu)
            self.peak = max(self.peak, chromium_uss_mb())
            await asyncio.sleep(1.0)

    @property
    def cpu_s(self) -> float:
        return sum(v - self._cpu0.get(pid, 0.0) for pid, v in self._cpu.items())

    def __enter__(self):
        self._sample_cpu(self._cpu0)
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc):
        self._task.cancel()
        self._sample_cpu(self._cpu)


async def run_driver(pool, server, concurrency, episodes, steps, tag):
    specs = [
        EpisodeSpec(server.store_url("shop_a"), "shop_a", f"bench-{tag}-{i}", f"bench-{tag}-{i}")
        for i in range(episodes)
    ]
    cfg = DriverConfig(
        concurrency=concurrency, step_limit=steps, action_timeout_s=60, episode_timeout_s=900
    )
    t0 = time.perf_counter()
    with ResourceProbe() as probe:
        results = await run_episodes(specs, trivial_policy, cfg, pool=pool)
    wall = time.perf_counter() - t0
    lat = [s.latency_s for r in results for s in r.steps]
    crashes = sum(r.outcome == "crashed" for r in results)
    return dict(
        steps_per_s=len(lat) / wall,
        lat=lat,
        crashes=crashes,
        peak_mb=probe.peak,
        cpu_ms_per_step=1000 * probe.cpu_s / max(1, len(lat)),
    )


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
                links = [
                    e.href for e in obs.elements if e.role == "link" and e.href.startswith("/")
                ]
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
    print(
        f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} "
        f"chromium={pool._executable or 'playwright'}",
        flush=True,
    )
    at32 = None
    with StorefrontServer(
        os.path.join(root, "catalog"), os.path.join(root, "events"), mode="process"
    ) as server:
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
            cpu = statistics.median(d["cpu_ms_per_step"] for d in drv)
            p50, p95 = pct(lat, 0.5) * 1000, pct(lat, 0.95) * 1000
            print(
                f"concurrency={c:3d} steps/s={sps:6.1f} p50={p50:6.0f}ms p95={p95:6.0f}ms "
                f"ratio_vs_bare_playwright={sps / ref_sps:.2f} crashes={crashes} "
                f"mem_per_context={mem:5.1f}MB cpu_per_step={cpu:5.1f}ms "
                f"(=> {1000 * os.cpu_count() / cpu:5.1f} steps/s if the cores were ours) "
                f"load={os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if c == 32:
                at32 = (sps, crashes)
    await pool.close()
    if at32 is None:
        print("TARGET rollout_steps_per_s_at_32 measured=nan goal=20 MISS (32 not in --levels)")
        return
    sps, crashes = at32
    ok = sps >= GOAL and crashes == 0
    print(
        f"TARGET rollout_steps_per_s_at_32 measured={sps:.1f} goal={GOAL:.0f} "
        f"{'PASS' if ok else 'MISS'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--steps", type=int, default=8, help="steps per episode")
    parser.add_argument("--chromium_args", default="", help="extra Chromium flags")
    parser.add_argument(
        "--levels", default="1,8,32,64", help="concurrency levels (the target is at 32)"
    )
    asyncio.run(main(parser.parse_args()))
