"""Scores simulated arms against the real buyers of the same stores (one code path for both).

`real_population` and `sim_population` turn canonical events into the buyer tables of
`metrics.population`; `failures` counts what went wrong in an arm's episodes, each kind apart;
`timelines` keeps a few episodes as (step, page kind, action, error) rows for the report.
"""

from __future__ import annotations

import polars as pl

from simpersona_jax.metrics.population import Population, buyer_table

FAILURE_KINDS = (
    "unparseable_action",
    "impossible_action",
    "step_limit",
    "context_length",
    "crashed",
)


def real_population(real_events: pl.DataFrame, real: pl.DataFrame, stores: list[str]) -> Population:
    """The real buyers of `stores` (store_id, buyer_id, stratum 0..4, code) with their sessions."""
    buyers = real.filter(pl.col("store_id").is_in(stores)).select(
        "store_id", "buyer_id", "stratum", "code"
    )
    table = buyer_table(real_events, buyers)
    lost = table.filter(pl.col("sessions") == 0).height
    if lost:
        raise ValueError(
            f"{lost} of {table.height} real buyers of {stores} have no events in the "
            "events table: the buyer table and the events do not match"
        )
    return Population.from_table(table, stores)


def sim_population(sim_events: pl.DataFrame, sim: pl.DataFrame, stores: list[str]) -> Population:
    """One row per simulated buyer, in `sim`'s order; `given` = persona, else the source code."""
    buyers = sim.select(
        "store_id",
        buyer_id="sim_buyer_id",
        stratum="stratum",
        code="code",
        given=pl.when(pl.col("persona") >= 0).then("persona").otherwise("code"),
    )
    return Population.from_table(buyer_table(sim_events, buyers, min_sessions=1), stores)


def failures(results, policy_stats: dict | None = None) -> dict:
    """Failure counts by kind, with the rates they are counted against.

    unparseable_action: the driver's strict parser refused the action (per step);
    impossible_action: parsed, but no such element / not usable / off the store (per step);
    step_limit, crashed: episode outcomes; context_length: prompts the policy had to truncate
    (`policy_stats["truncated_prompts"]`, 0 when the policy keeps no stats).
    """
    steps = [s for r in results for s in r.steps]
    unparseable = sum(s.error.startswith("invalid action") for s in steps)
    impossible = sum(
        bool(s.error) and not s.error.startswith("invalid action") and s.error != "action_deadline"
        for s in steps
    )
    n, n_steps = len(results), len(steps)
    outcomes = {
        k: sum(r.outcome == k for r in results)
        for k in ("completed", "stopped", "step_limit", "crashed")
    }
    counts = {
        "unparseable_action": unparseable,
        "impossible_action": impossible,
        "step_limit": outcomes["step_limit"],
        "context_length": int((policy_stats or {}).get("truncated_prompts", 0)),
        "crashed": outcomes["crashed"],
    }
    return {
        "episodes": n,
        "steps": n_steps,
        "outcomes": outcomes,
        "counts": counts,
        "unparseable_action_rate": unparseable / max(n_steps, 1),
        "impossible_action_rate": impossible / max(n_steps, 1),
        "step_limit_rate": outcomes["step_limit"] / max(n, 1),
        "crash_rate": outcomes["crashed"] / max(n, 1),
        "crash_reasons": sorted({r.reason for r in results if r.outcome == "crashed"}),
        "actions_per_session": n_steps / max(n, 1),
    }


def _page_kind(observation: str) -> str:
    first = observation.split("\n", 1)[0]
    return first.split()[1] if first.startswith("page: ") and len(first.split()) > 1 else "?"


def timelines(results, n: int = 3) -> list[dict]:
    """The first `n` episodes as action timelines: step, page kind, action, error."""
    return [
        {
            "buyer_id": r.spec.buyer_id,
            "store_id": r.spec.store_id,
            "persona": r.spec.persona,
            "outcome": r.outcome,
            "reason": r.reason,
            "steps": [
                {
                    "step": s.step,
                    "page": _page_kind(s.observation),
                    "action": s.action,
                    "error": s.error,
                }
                for s in r.steps
            ],
        }
        for r in list(results)[:n]
    ]
