"""Assignment of every buyer to a code with a trained VQ-VAE, p_store(k), per-code summary and the
quality table (the library behind `python -m simpersona_jax.assign`)."""

from __future__ import annotations

import json
import os
import time


def _row_batches(buyers_dir: str, rows, batch_size: int):
    """Reads the split's rows from the zarr matrix batch by batch (never the whole matrix)."""
    import numpy as np
    import tensorstore as ts
    from simpersona_jax.features import store

    matrix = store.open_matrix(os.path.join(buyers_dir, "vectors.zarr"))
    for i in range(0, len(rows), batch_size):
        r = np.asarray(rows[i : i + batch_size])
        yield matrix[ts.d[0].translate_to[0]][r].read().result()


def run(config, workdir: str, out: str | None = None, step: int | None = None) -> str:
    """Assignment + tables; returns the printed report."""
    import numpy as np
    import polars as pl
    from simpersona_jax.features import store
    from simpersona_jax.training.loop import load_trained
    from simpersona_jax.vqvae import encode, metrics, summary
    from simpersona_jax.vqvae.task import VQVAETask

    out = out or os.path.join(workdir, "assign")
    os.makedirs(out, exist_ok=True)
    task = VQVAETask(config)
    state, step = load_trained(config, workdir, task, step)
    buyers_dir = task._buyers_dir
    split = config.get("assign", {}).get("split", "all")
    meta = store.read_meta(buyers_dir)
    if split != "all":
        meta = meta.filter(pl.col("split") == split)
    meta = meta.sort("row")
    bs, chunk = int(config.eval.batch_size), int(config.eval.chunk)
    fn = task.assign_fn()
    embed = state.extra["codebook"]["embed"]
    t0 = time.perf_counter()
    parts = list(
        encode.assign_batches(
            fn,
            state.params,
            embed,
            _row_batches(buyers_dir, meta["row"].to_numpy(), bs),
            chunk=chunk,
        )
    )
    seconds = time.perf_counter() - t0
    codes = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
    dist = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.float32)
    assigned = meta.select("row", "buyer_id", "store_id", "split").with_columns(
        code=pl.Series(codes, dtype=pl.Int32), distance=pl.Series(dist, dtype=pl.Float32)
    )
    assigned.write_parquet(os.path.join(out, "codes.parquet"))
    k = task.k
    long = summary.p_store(assigned, k)
    long.write_parquet(os.path.join(out, "p_store.parquet"))
    summary.p_store_wide(long).write_csv(os.path.join(out, "p_store.csv"))

    arrays = store.load_arrays(buyers_dir, split)
    names = list(store.read_stats(buyers_dir)["scalar_names"])
    table = summary.code_table(codes, arrays, names, k)
    table.write_parquet(os.path.join(out, "codes_summary.parquet"))
    text = summary.describe(table, names)
    with open(os.path.join(out, "codes_summary.txt"), "w") as f:
        f.write(
            f"{len(table)} used codes of {k}, {len(codes)} buyers ({split}); scalars are "
            "standardised means (σ from the training stores)\n" + text + "\n"
        )

    rows = {
        "vqvae": metrics.quality(
            codes, arrays, k, incoherence_tol=float(config.eval.incoherence_tol)
        )
    }
    if config.eval.get("kmeans_baseline", True):
        km = metrics.kmeans_baseline(
            task.arrays("train")["x"], arrays["x"], k, seed=int(config.seed)
        )
        rows[f"minibatch_kmeans(K={k})"] = metrics.quality(
            km, arrays, k, incoherence_tol=float(config.eval.incoherence_tol)
        )
    with open(os.path.join(out, "quality.json"), "w") as f:
        json.dump(rows, f, indent=2)
    report = "\n".join(
        [
            f"assigned {len(codes):,} buyers ({split}) with checkpoint step {step} in {seconds:.2f}s "
            f"({len(codes) / max(seconds, 1e-9):,.0f} buyers/s) -> {out}",
            "largest codes:",
            summary.describe(table, names, top=10),
            "",
            metrics.format_table(rows, title=f"buyer-type quality ({split}, K={k})"),
        ]
        + (
            [metrics.verdict(rows["vqvae"], rows[f"minibatch_kmeans(K={k})"])]
            if len(rows) > 1
            else []
        )
    )
    return report
