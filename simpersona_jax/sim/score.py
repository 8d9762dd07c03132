"""Scores a simulated population against the real buyers of the same stores (one code path)."""

from __future__ import annotations

import polars as pl

from simpersona_jax.data import schema
from simpersona_jax.metrics import population as pop


def agent_metrics(results) -> dict:
    """Crash rate, unparseable-action rate, actions per session, outcomes (driver results)."""
    n = len(results)
    steps = sum(len(r.steps) for r in results)
    outcomes = {k: sum(r.outcome == k for r in results) for k in ("completed", "stopped",
                                                                  "step_limit", "crashed")}
    return {
        "episodes": n,
        "outcomes": outcomes,
        "crash_rate": outcomes["crashed"] / max(n, 1),
        "crash_reasons": sorted({r.reason for r in results if r.outcome == "crashed"}),
        "unparseable_action_rate": sum(r.n_invalid for r in results) / max(steps, 1),
        "actions_per_session": steps / max(n, 1),
    }


def score(real_events: pl.DataFrame, sim_events: pl.DataFrame, sim: pl.DataFrame) -> dict:
    """Stratified ARA, per-store conversion-rate alignment and stratum-mix JSD.

    sim: the simulated buyers (sim_buyer_id, store_id, stratum of the source buyer).
    """
    stores = sorted(sim["store_id"].unique().to_list())
    real_events = real_events.filter(pl.col("store_id").is_in(stores))
    real_sessions = pop.session_table(real_events)
    sim_sessions = pop.session_table(sim_events)
    real_strata = pop.assign_strata(real_events.lazy()).collect()
    sim_strata = sim.select("store_id", buyer_id="sim_buyer_id", stratum=pl.col("stratum").replace_strict(
        list(range(len(schema.STRATA))), list(schema.STRATA), return_dtype=pl.String))
    ara = pop.stratified_ara(pop.rates_by_stratum(real_sessions, real_strata),
                             pop.rates_by_stratum(sim_sessions, sim_strata))
    cr = pop.cr_alignment(real_sessions, sim_sessions)
    jsd = pop.stratum_jsd(real_events, sim_events)
    return {"stratified_ara": ara["stratified_ara"], "ara_per_stratum": ara["per_stratum"],
            "ara_missing_strata": ara["missing"],
            "cr_alignment": {r["store_id"]: r for r in cr.iter_rows(named=True)},
            "mean_cr_alignment": cr["alignment"].mean(),
            "stratum_jsd": dict(jsd.rows()), "mean_stratum_jsd": jsd["jsd"].mean(),
            "sim_sessions": sim_sessions.height, "sim_checkout_reach": sim_sessions["reached_checkout"].mean()
            if sim_sessions.height else None}
