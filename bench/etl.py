"""Raw CSV -> buyer vectors: this pipeline vs a straightforward pandas implementation.

    python bench/etl.py            # two sizes (~0.3M and ~1.2M events), < 5 min on 2 cores
    python bench/etl.py --full     # ~1.2M and ~10M events

Generates synthetic stores, writes them as one canonical CSV per size, then times, each in a
fresh subprocess (so peak RSS is its own), alternating and taking medians:
  ours:   ingest (validate, quarantine, partition, sessionise) + buyer vectors (zarr)
  pandas: read_csv + the same 16 scalars, strata and slot embeddings with pandas groupby
Prints events/s, buyers/s and peak RSS per size, then TARGET lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

RUN_OURS = "ours"
# Partition size bounds memory; fixed here so that peak RSS can be compared across input sizes.
ROWS_PER_PARTITION = 500_000
RUN_PANDAS = "pandas"


def make_csv(workdir: str, buyers_per_store: int, num_stores: int) -> tuple[str, int]:
    import polars as pl

    from simpersona_jax.synth.generate import default_config, generate

    cfg = default_config()
    cfg.update(
        dict(
            num_stores=num_stores,
            buyers_per_store=buyers_per_store,
            products_per_store=500,
            buyers_per_shard=20_000,
            workers=2,
        )
    )
    gen = os.path.join(workdir, "gen")
    generate(cfg, gen)
    csv = os.path.join(workdir, "events.csv")
    events = pl.scan_parquet(os.path.join(gen, "events", "**", "*.parquet"), hive_partitioning=True)
    events.drop("bucket").sink_csv(csv)
    n = events.select(pl.len()).collect().item()
    shutil.rmtree(gen)
    return csv, n


def ours(csv: str, out: str) -> int:
    from simpersona_jax.data.ingest import ingest
    from simpersona_jax.features.build import build_buyers

    ingest([csv], out, rows_per_partition=ROWS_PER_PARTITION)
    return build_buyers(
        os.path.join(out, "events"), os.path.join(out, "buyers"), rows_per_unit=ROWS_PER_PARTITION
    )["buyers"]


def pandas_reference(csv: str, out: str) -> int:
    """The same features, written the obvious way with pandas (no validation or partitioning)."""
    import pandas as pd

    from simpersona_jax.features import embed

    df = pd.read_csv(csv, dtype={"product_id": str, "buyer_id": str, "session_id": str})
    df["event_time"] = pd.to_datetime(df["event_time"], utc=True, format="ISO8601")
    df = df.sort_values(["store_id", "buyer_id", "event_time"])
    key = ["store_id", "buyer_id"]
    g = df.groupby(key, sort=True)
    et = df["event_type"]
    for t in (
        "product_viewed",
        "search_submitted",
        "collection_viewed",
        "product_added_to_cart",
        "product_removed_from_cart",
        "checkout_started",
        "checkout_completed",
    ):
        df["is_" + t] = (et == t).astype(float)
    sums = g[[c for c in df.columns if c.startswith("is_")]].sum()
    sess = df.groupby(key + ["session_id"]).agg(
        start=("event_time", "min"),
        end=("event_time", "max"),
        ordered=("is_checkout_completed", "max"),
    )
    sess["dur"] = (sess["end"] - sess["start"]).dt.total_seconds()
    ps = sess.groupby(level=[0, 1]).agg(
        n_sessions=("dur", "size"),
        mean_dur=("dur", "mean"),
        sum_dur=("dur", "sum"),
        orders=("ordered", "sum"),
    )
    n_events = g.size()
    views = df[et == "product_viewed"]
    distinct_viewed = views.groupby(key)["product_id"].nunique()
    med = views[views["price"] > 0].groupby("store_id")["price"].median()
    lp = views[views["price"] > 0].assign(lp=lambda d: np.log(d["price"]))
    mean_lp = lp.groupby(key)["lp"].mean()
    span = (g["event_time"].max() - g["event_time"].min()).dt.total_seconds() / 86400
    f = pd.DataFrame(index=n_events.index)
    f["log_sessions"] = np.log1p(ps["n_sessions"])
    f["log_events"] = np.log1p(n_events)
    f["log_events_per_session"] = np.log1p(n_events / ps["n_sessions"])
    f["log_session_duration_s"] = np.log1p(ps["mean_dur"])
    gaps = n_events - ps["n_sessions"]
    f["log_gap_s"] = np.log1p(np.where(gaps > 0, ps["sum_dur"] / gaps.clip(lower=1), 0.0))
    f["log_active_days"] = np.log1p(span)
    f["log_distinct_products"] = np.log1p(g["product_id"].nunique())
    f["log_distinct_categories"] = np.log1p(g["category"].nunique())
    nv = sums["is_product_viewed"]
    f["revisit_rate"] = np.where(
        nv > 0, (nv - distinct_viewed.reindex(f.index, fill_value=0)) / nv.clip(lower=1), 0
    )
    f["search_rate"] = sums["is_search_submitted"] / n_events
    f["browse_rate"] = sums["is_collection_viewed"] / n_events
    f["atc_per_view"] = sums["is_product_added_to_cart"] / nv.clip(lower=1)
    f["removals_per_add"] = sums["is_product_removed_from_cart"] / sums[
        "is_product_added_to_cart"
    ].clip(lower=1)
    f["checkouts_per_session"] = sums["is_checkout_started"] / ps["n_sessions"]
    f["purchases_per_session"] = ps["orders"] / ps["n_sessions"]
    store_med = np.log(med.reindex(f.index.get_level_values(0)).to_numpy())
    f["price_position"] = np.nan_to_num(mean_lp.reindex(f.index).to_numpy() - store_med)
    x = np.zeros((len(f), 403), np.float32)
    x[:, :16] = f.to_numpy(np.float32)
    slot_frames = [
        views.groupby(key + ["product_id"])
        .agg(
            n=("event_time", "size"),
            t=("event_time", "max"),
            category=("category", "last"),
            brand=("brand", "last"),
            title=("title", "last"),
            price=("price", "last"),
        )
        .reset_index()
        .sort_values(["n", "t"])
        .groupby(key)
        .last(),
        df[et == "product_added_to_cart"].groupby(key).last(),
        df[et == "checkout_completed"].groupby(key).last(),
    ]
    for k, s in enumerate(slot_frames):
        s = s.reindex(f.index)
        present = s["product_id"].notna().to_numpy()
        vals = [
            [None if pd.isna(v) else v for v in s[c].tolist()]
            for c in ("category", "brand", "title", "price")
        ]
        x[:, 16 + 128 * k : 16 + 128 * (k + 1)] = embed.embed_products(*vals) * present[:, None]
        x[:, 400 + k] = present
    x[:, :16] = (x[:, :16] - x[:, :16].mean(0)) / np.where(
        x[:, :16].std(0) > 0, x[:, :16].std(0), 1
    )
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "x.npy"), x)
    return len(f)


def check_parity(workdir: str) -> float:
    """Both implementations give the same buyer matrix (max abs difference, rows aligned)."""
    from simpersona_jax.features import store

    csv, _ = make_csv(os.path.join(workdir, "parity"), 200, 3)
    ours(csv, os.path.join(workdir, "parity", "ours"))
    pandas_reference(csv, os.path.join(workdir, "parity", "pandas"))
    buyers = os.path.join(workdir, "parity", "ours", "buyers")
    order = store.read_meta(buyers).with_row_index("i").sort("store_id", "buyer_id")["i"].to_numpy()
    x_ours = store.load_arrays(buyers, "all")["x"][order]
    x_ref = np.load(os.path.join(workdir, "parity", "pandas", "x.npy"))
    return float(np.abs(x_ours - x_ref).max())


def child(kind: str, csv: str, out: str) -> None:
    import pandas  # noqa: F401  imports are not part of the timed work

    import simpersona_jax.data.ingest  # noqa: F401
    import simpersona_jax.features.build  # noqa: F401

    start = time.perf_counter()
    cpu_start = time.process_time()
    buyers = (ours if kind == RUN_OURS else pandas_reference)(csv, out)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "buyers": buyers,
                "peak_rss": usage.ru_maxrss * 1024,
                "cpu_seconds": time.process_time() - cpu_start,
            }
        )
    )


def run_child(kind: str, csv: str, workdir: str) -> dict:
    out = tempfile.mkdtemp(dir=workdir)
    res = subprocess.run(
        [sys.executable, __file__, "--child", kind, csv, out],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(out)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    sizes = [(2_000, 12), (8_000, 12)] if not args.full else [(8_000, 12), (64_000, 12)]
    workdir = tempfile.mkdtemp(prefix="bench_etl_")
    results = {}
    try:
        diff = check_parity(workdir)
        print(f"parity: max |ours - pandas| over the 403 features = {diff:.2e}", flush=True)
        if diff > 1e-4:
            raise SystemExit("the two implementations disagree; timings would be meaningless")
        for buyers_per_store, stores in sizes:
            csv, n_events = make_csv(
                os.path.join(workdir, f"s{buyers_per_store}"), buyers_per_store, stores
            )
            runs = {RUN_OURS: [], RUN_PANDAS: []}
            for _ in range(args.repeats):
                for kind in (RUN_OURS, RUN_PANDAS):  # alternate
                    runs[kind].append(run_child(kind, csv, workdir))
            row = {}
            for kind, rs in runs.items():
                sec = statistics.median(r["seconds"] for r in rs)
                row[kind] = dict(
                    seconds=sec,
                    events_per_s=n_events / sec,
                    buyers_per_s=rs[0]["buyers"] / sec,
                    peak_rss_mb=max(r["peak_rss"] for r in rs) / 2**20,
                    buyers=rs[0]["buyers"],
                    cpu_seconds=statistics.median(r["cpu_seconds"] for r in rs),
                )
            results[n_events] = row
            for kind, r in row.items():
                print(
                    f"{n_events:>10,} events {kind:>6}: {r['seconds']:7.2f} s  "
                    f"{r['events_per_s']:>12,.0f} events/s  {r['buyers_per_s']:>10,.0f} buyers/s  "
                    f"peak RSS {r['peak_rss_mb']:7.0f} MB  cpu {r['cpu_seconds']:6.1f} s  "
                    f"({r['buyers']:,} buyers)"
                )
            print(
                f"{'':>10} speed-up vs pandas: {row[RUN_OURS]['events_per_s'] / row[RUN_PANDAS]['events_per_s']:.2f}x",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    small, large = sorted(results)
    ours_l, pandas_l = results[large][RUN_OURS], results[large][RUN_PANDAS]
    rss_growth = ours_l["peak_rss_mb"] / results[small][RUN_OURS]["peak_rss_mb"]
    size_growth = large / small

    def target(name, measured, goal, ok):
        print(f"TARGET {name} measured={measured} goal={goal} {'PASS' if ok else 'MISS'}")

    target(
        "etl_events_per_s",
        f"{ours_l['events_per_s']:.0f}",
        "1000000",
        ours_l["events_per_s"] >= 1e6,
    )
    speedup = ours_l["events_per_s"] / pandas_l["events_per_s"]
    target("etl_speedup_vs_pandas", f"{speedup:.2f}", "5.0", speedup >= 5.0)
    target(
        "etl_rss_growth",
        f"{rss_growth:.2f}x_for_{size_growth:.1f}x_input",
        "flat(<1.5x)",
        rss_growth < 1.5,
    )


if __name__ == "__main__":
    main()  # guarded: the generator's spawn workers re-import this file
