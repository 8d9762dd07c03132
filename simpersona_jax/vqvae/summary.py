"""Per-store code distributions p_store(k) and a readable summary of each code (polars)."""

from __future__ import annotations

import numpy as np
import polars as pl

from simpersona_jax.vqvae.metrics import BINARY_LABELS, QualityAccumulator

STRATA = "ABCDE"


def p_store(assigned: pl.DataFrame, k: int) -> pl.DataFrame:
    """Long table (store_id, code, count, p) over all codes 0..k-1 of every store (zeros kept)."""
    stores = assigned.select("store_id").unique().sort("store_id")
    grid = stores.join(pl.DataFrame({"code": np.arange(k, dtype=np.int32)}), how="cross")
    counts = assigned.group_by("store_id", "code").agg(count=pl.len().cast(pl.Int64))
    out = grid.join(counts, on=["store_id", "code"], how="left").with_columns(
        pl.col("count").fill_null(0)
    )
    return out.with_columns(p=pl.col("count") / pl.col("count").sum().over("store_id")).sort(
        "store_id", "code"
    )


def p_store_wide(long: pl.DataFrame) -> pl.DataFrame:
    """store_id, n_buyers, p_0 .. p_{k-1}: one row per store."""
    wide = long.pivot(on="code", index="store_id", values="p", sort_columns=False)
    wide = wide.rename({c: f"p_{c}" for c in wide.columns if c != "store_id"})
    n = long.group_by("store_id").agg(n_buyers=pl.col("count").sum())
    return n.join(wide, on="store_id").sort("store_id")


def code_table(sums: QualityAccumulator, scalar_names: list[str]) -> pl.DataFrame:
    """One row per used code: size, share, strata mix, label rates, mean standardised scalars,
    from the per-code sums and counts of a streamed pass (never the buyers themselves)."""
    size = sums.sizes
    used = np.nonzero(size)[0]
    cols: dict[str, np.ndarray] = {
        "code": used.astype(np.int32),
        "size": size[used],
        "share": size[used] / size.sum(),
    }
    strata = sums.label_table("stratum", len(STRATA))
    for s, name in enumerate(STRATA):
        cols[f"stratum_{name}"] = strata[used, s] / size[used]
    for label in BINARY_LABELS:
        cols[label] = sums.label_table(label, 2)[used, 1] / size[used]
    means = sums.means()[used]
    for j, name in enumerate(scalar_names):
        cols[name] = means[:, j]
    return pl.DataFrame(cols).sort("size", descending=True)


def describe(
    table: pl.DataFrame, scalar_names: list[str], top: int | None = None, n_traits: int = 3
) -> str:
    """Text: one line per code, largest first, e.g.
    `code  17  312 buyers (6.6%) | A 80% B 5% C 10% D 5% E 0% | purchase 95% explore 20%
     engage 70% | sessions +1.2σ, purchases_per_session +2.0σ, search_rate -0.8σ`."""
    lines = []
    for row in table.head(top or len(table)).iter_rows(named=True):
        strata = " ".join(f"{s} {row[f'stratum_{s}']:.0%}" for s in STRATA)
        labels = " ".join(f"{k.split('_')[0]} {row[k]:.0%}" for k in BINARY_LABELS)
        traits = sorted(scalar_names, key=lambda n: -abs(row[n]))[:n_traits]
        trait_s = ", ".join(f"{n} {row[n]:+.1f}σ" for n in traits)
        lines.append(
            f"code {row['code']:>4} {row['size']:>7} buyers ({row['share']:.1%}) | "
            f"{strata} | {labels} | {trait_s}"
        )
    return "\n".join(lines)
