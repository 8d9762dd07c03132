"""Assignment of every buyer to a code with a trained VQ-VAE, p_store(k), per-code summary and the
quality table (the library behind `python -m simpersona_jax.assign`).

One streamed pass over the split: each batch of buyer vectors is read from the zarr matrix,
encoded, and folded into the per-code sums of the VQ-VAE codes and of the k-means baseline's
codes; only codes and distances (a few bytes per buyer) are kept, never the matrix."""

from __future__ import annotations

import json
import operator
import os
import time


def _kept(coded, parts: list, clock: list):
    """Passes the coded batches through, keeping (row, code, distance) of each and adding to
    clock[0] the seconds spent producing them (reading + encoding, not the metrics)."""
    it = iter(coded)
    while True:
        t0 = time.perf_counter()
        batch = next(it, None)
        clock[0] += time.perf_counter() - t0
        if batch is None:
            return
        parts.append((batch["row"], batch["code"], batch["distance"]))
        yield batch


def run(config, workdir: str, out: str | None = None, step: int | None = None) -> str:
    """Assignment + tables; returns the printed report."""
    import numpy as np
    import polars as pl

    from simpersona_jax.features import store
    from simpersona_jax.training.loop import load_trained
    from simpersona_jax.vqvae import metrics, summary
    from simpersona_jax.vqvae.task import VQVAETask

    out = out or os.path.join(workdir, "assign")
    os.makedirs(out, exist_ok=True)
    task = VQVAETask(config)
    state, step = load_trained(config, workdir, task, step)
    buyers_dir = task._buyers_dir
    split = config.get("assign", {}).get("split", "all")
    columns = ["row", "buyer_id", "store_id", "split"]
    meta = store.split_meta(buyers_dir, split, columns).sort("row")
    k = task.k
    methods = {"vqvae": operator.itemgetter("code"), **task.baseline_methods()}
    source = store.BuyerSource(buyers_dir, split, in_memory_bytes=0)
    batches = store.iter_batches(source, int(config.eval.batch_size))
    parts, clock = [], [0.0]
    coded = _kept(task.with_codes(state.params, state.extra, batches), parts, clock)
    accs = task.score(coded, methods)
    seconds = clock[0]
    row_ids, codes, dist = (
        np.concatenate([np.zeros(0, dtype)] + [p[i] for p in parts])
        for i, dtype in enumerate((np.int64, np.int32, np.float32))
    )
    order = np.argsort(row_ids, kind="stable")  # meta's row order
    if not np.array_equal(row_ids[order], meta["row"].to_numpy()):
        raise ValueError(f"assigned rows do not match meta.parquet's {split!r} rows")
    assigned = meta.with_columns(
        code=pl.Series(codes[order], dtype=pl.Int32),
        distance=pl.Series(dist[order], dtype=pl.Float32),
    )
    assigned.write_parquet(os.path.join(out, "codes.parquet"))
    long = summary.p_store(assigned, k)
    long.write_parquet(os.path.join(out, "p_store.parquet"))
    summary.p_store_wide(long).write_csv(os.path.join(out, "p_store.csv"))

    names = list(store.read_stats(buyers_dir)["scalar_names"])
    table = summary.code_table(accs["vqvae"], names)
    table.write_parquet(os.path.join(out, "codes_summary.parquet"))
    text = summary.describe(table, names)
    with open(os.path.join(out, "codes_summary.txt"), "w") as f:
        f.write(
            f"{len(table)} used codes of {k}, {len(codes)} buyers ({split}); scalars are "
            "standardised means (σ from the training stores)\n" + text + "\n"
        )

    rows = {name: acc.result() for name, acc in accs.items()}
    with open(os.path.join(out, "quality.json"), "w") as f:
        json.dump(rows, f, indent=2)
    return "\n".join(
        [
            f"assigned {len(codes):,} buyers ({split}) with checkpoint step {step} in {seconds:.2f}s "
            f"({len(codes) / max(seconds, 1e-9):,.0f} buyers/s) -> {out}",
            "largest codes:",
            summary.describe(table, names, top=10),
            "",
            metrics.quality_text(rows, f"buyer-type quality ({split}, K={k})", k),
        ]
    )
