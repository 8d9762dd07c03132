"""Buyer tables and populations: the one code path from canonical events to what the fidelity
figures (metrics/fidelity.py) are computed from, for real and simulated buyers alike.

`buyer_table` gives per buyer its sessions, sessions with an add-to-cart, sessions with a
purchase, and the share of its sessions whose deepest funnel stage is each stratum A-E
(`session_table`: one row per session). Real buyers carry their stratum (over all their
sessions, from the buyer pipeline) and VQ-VAE code; a simulated buyer carries its source
buyer's stratum and code, and `given`, the code whose behaviour the agent was asked to show (the
persona token; the source code when no token was given: text persona, no persona, scripted
oracle). `Population` holds a buyer table as arrays, stores as indices into its `stores`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from simpersona_jax.data import schema


def session_table(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """One row per (store, buyer, session): viewed (a product), atc, reached_checkout, purchased."""
    et = pl.col("event_type")
    return (
        events.lazy()
        .group_by("store_id", "buyer_id", "session_id")
        .agg(
            viewed=(et == "product_viewed").any(),
            atc=(et == "product_added_to_cart").any(),
            reached_checkout=(et == "checkout_started").any() | (et == "checkout_completed").any(),
            purchased=(et == "checkout_completed").any(),
        )
        .collect()
    )


def buyer_table(
    events: pl.DataFrame | pl.LazyFrame, buyers: pl.DataFrame, min_sessions: int = 0
) -> pl.DataFrame:
    """`buyers` (store_id, buyer_id, ...) with sessions, atc, purchased and s_A..s_E added.

    atc / purchased count sessions; s_k is the share of the buyer's sessions whose deepest stage
    is k. min_sessions=1 (simulated buyers: one episode each) counts a buyer without a logged
    session as one session that reached nothing (stage E), so no episode is dropped.
    """
    st = session_table(events).with_columns(
        stage=pl.when("purchased")
        .then(0)
        .when("reached_checkout")
        .then(1)
        .when("atc")
        .then(2)
        .when("viewed")
        .then(3)
        .otherwise(4)
    )
    per = st.group_by("store_id", "buyer_id").agg(
        sessions=pl.len().cast(pl.Float64),
        atc=pl.col("atc").sum().cast(pl.Float64),
        purchased=pl.col("purchased").sum().cast(pl.Float64),
        **{f"s_{k}": (pl.col("stage") == i).mean() for i, k in enumerate(schema.STRATA)},
    )
    out = buyers.join(per, on=["store_id", "buyer_id"], how="left")
    zero = pl.col("sessions").is_null()
    return out.with_columns(
        sessions=pl.when(zero).then(float(min_sessions)).otherwise("sessions"),
        atc=pl.col("atc").fill_null(0.0),
        purchased=pl.col("purchased").fill_null(0.0),
        **{
            f"s_{k}": pl.col(f"s_{k}").fill_null(float(k == "E" and min_sessions > 0))
            for k in schema.STRATA
        },
    )


@dataclasses.dataclass(frozen=True)
class Population:
    """A buyer table as arrays; store indexes `stores`, stratum 0..4, code/given -1 = none."""

    stores: tuple[str, ...]
    store: np.ndarray
    stratum: np.ndarray
    code: np.ndarray
    given: np.ndarray
    sessions: np.ndarray
    atc: np.ndarray
    purchased: np.ndarray
    stage_Nx5: np.ndarray

    @classmethod
    def from_table(cls, table: pl.DataFrame, stores) -> "Population":
        stores = tuple(stores)
        missing = set(table["store_id"].unique()) - set(stores)
        if missing:
            raise ValueError(f"buyer table has stores outside {stores}: {sorted(missing)[:5]}")

        def col(name, default, dtype):
            values = table[name].to_numpy() if name in table.columns else default
            return np.broadcast_to(values, (table.height,)).astype(dtype)

        code = col("code", -1, np.int64)
        return cls(
            stores,
            np.array([stores.index(s) for s in table["store_id"]], np.int64),
            col("stratum", -1, np.int64),
            code,
            col("given", code, np.int64),
            col("sessions", 0.0, float),
            col("atc", 0.0, float),
            col("purchased", 0.0, float),
            table.select([f"s_{k}" for k in schema.STRATA]).to_numpy().astype(float),
        )

    def replace(self, **kw) -> "Population":
        return dataclasses.replace(self, **kw)
