"""Population metrics: one code path for real and simulated canonical events (DESIGN.md, Metrics).

An agent episode is one shopping session, so rates are per session for real and simulated traffic
alike; strata (and persona types) belong to buyers. For simulated traffic, a buyer's stratum is
the stratum of the real buyer whose persona it was given (`strata` argument), not the stratum the
agent reached, so per-stratum rates compare like with like.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simpersona_jax.data import schema
from simpersona_jax.data.sessionize import assign_strata


def session_table(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """One row per (store, buyer, session): viewed (a product), atc, reached_checkout, purchased."""
    et = pl.col("event_type")
    return (events.lazy().group_by("store_id", "buyer_id", "session_id")
            .agg(viewed=(et == "product_viewed").any(), atc=(et == "product_added_to_cart").any(),
                 reached_checkout=(et == "checkout_started").any() | (et == "checkout_completed").any(),
                 purchased=(et == "checkout_completed").any())
            .collect())


def rates_by_stratum(sessions: pl.DataFrame, strata: pl.DataFrame) -> pl.DataFrame:
    """ATC and purchase rate per session, per buyer stratum. strata: (store_id, buyer_id, stratum)."""
    return (sessions.join(strata.select("store_id", "buyer_id", pl.col("stratum").cast(pl.String)),
                          on=["store_id", "buyer_id"], how="inner")
            .group_by("stratum").agg(sessions=pl.len(), atc_rate=pl.col("atc").mean(),
                                     purchase_rate=pl.col("purchased").mean())
            .sort("stratum"))


def stratified_ara(real: pl.DataFrame, sim: pl.DataFrame,
                   strata_used: tuple[str, ...] = schema.ALIGNMENT_STRATA) -> dict:
    """ARA_s = ½(1−|ΔATC|) + ½(1−|ΔPUR|) per stratum, and their mean over `strata_used`.

    `real` and `sim` are outputs of `rates_by_stratum`. A stratum missing on either side is
    reported as None and left out of the mean (and named in `missing`).
    """
    r = {row["stratum"]: row for row in real.iter_rows(named=True)}
    s = {row["stratum"]: row for row in sim.iter_rows(named=True)}
    per, missing = {}, []
    for k in strata_used:
        if k not in r or k not in s:
            per[k] = None
            missing.append(k)
            continue
        per[k] = 0.5 * (1 - abs(r[k]["atc_rate"] - s[k]["atc_rate"])) + \
            0.5 * (1 - abs(r[k]["purchase_rate"] - s[k]["purchase_rate"]))
    vals = [v for v in per.values() if v is not None]
    return {"per_stratum": per, "stratified_ara": float(np.mean(vals)) if vals else None,
            "missing": missing}


def conversion_rate(sessions: pl.DataFrame) -> pl.DataFrame:
    """(store_id, sessions, cr): purchasing sessions / sessions per store."""
    return sessions.group_by("store_id").agg(sessions=pl.len(), cr=pl.col("purchased").mean()) \
        .sort("store_id")


def cr_alignment(real: pl.DataFrame, sim: pl.DataFrame) -> pl.DataFrame:
    """1 − |CR_sim − CR_real| / CR_real per store (null where the real CR is 0)."""
    return (conversion_rate(real).join(conversion_rate(sim), on="store_id", suffix="_sim")
            .with_columns(alignment=pl.when(pl.col("cr") > 0)
                          .then(1 - (pl.col("cr_sim") - pl.col("cr")).abs() / pl.col("cr")))
            .select("store_id", cr_real="cr", cr_sim="cr_sim", alignment="alignment"))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JSD in bits (base 2) between two discrete distributions (normalised here)."""
    p = np.asarray(p, np.float64) / np.sum(p)
    q = np.asarray(q, np.float64) / np.sum(q)
    m = 0.5 * (p + q)

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def stratum_mix(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """(store_id, A..E shares) of buyers by deepest funnel stage, from the buyer pipeline."""
    counts = assign_strata(events.lazy()).collect().with_columns(pl.col("stratum").cast(pl.String))
    wide = counts.group_by("store_id").agg(
        *[(pl.col("stratum") == k).sum().alias(k) for k in schema.STRATA])
    return wide.sort("store_id")


def stratum_jsd(real_events, sim_events) -> pl.DataFrame:
    """JSD between the real and the simulated stratum mix, per store present in both."""
    real, sim = stratum_mix(real_events), stratum_mix(sim_events)
    joined = real.join(sim, on="store_id", suffix="_sim")
    return joined.select("store_id", jsd=pl.struct(pl.all()).map_elements(
        lambda row: jensen_shannon([row[k] for k in schema.STRATA],
                                   [row[k + "_sim"] for k in schema.STRATA]),
        return_dtype=pl.Float64))
