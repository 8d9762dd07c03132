"""Replays recorded sessions in the browser and turns the faithful ones into trace rows.

For each session: make a Plan (or drop it: Unreplayable reason), run all plans through the
driver with the ReplayPolicy, then check the storefront's own log of the replay: the session's
product/cart/checkout events must appear in it in order (extra navigation events are allowed).
A session is dropped, with its reason counted, when it could not be planned, crashed, hit the
step limit, the planner got stuck, or the log does not contain its events.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable

import polars as pl

from simpersona_jax.replay import goals
from simpersona_jax.replay.plan import (
    PRODUCT_EVENTS,
    Unreplayable,
    expected_events,
    is_subsequence,
    make_plan,
)
from simpersona_jax.replay.planner import ReplayPolicy
from simpersona_jax.rollout.driver import (
    HISTORY,
    DriverConfig,
    EpisodeResult,
    EpisodeSpec,
    run_episodes,
)
from simpersona_jax.storefront.catalog import StoreCatalog
from simpersona_jax.storefront.eventlog import read_log


@dataclasses.dataclass
class ReplayReport:
    sessions_in: int = 0
    replayed: int = 0
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    steps: int = 0
    tokens: int = 0
    rows: list[dict] = dataclasses.field(default_factory=list)  # trace rows of replayed sessions
    results: list[EpisodeResult] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        drops = ", ".join(f"{k}={v}" for k, v in self.dropped.most_common()) or "none"
        return (
            f"sessions in {self.sessions_in}, replayed {self.replayed}, dropped "
            f"{sum(self.dropped.values())} ({drops}); steps {self.steps}, tokens {self.tokens}"
        )


def count_tokens(row: dict) -> int:
    """Whitespace tokens of one training example (goal, history, observation, action)."""
    return sum(
        len(str(x).split())
        for x in (row["goal_intent"], " ".join(row["history"]), row["observation"], row["action"])
    )


def trace_rows(result: EpisodeResult, goal_intent: str) -> list[dict]:
    spec, history, rows = result.spec, [], []
    for step in result.steps:
        rows.append(
            dict(
                store_id=spec.store_id,
                buyer_id=spec.buyer_id,
                session_id=spec.session_id,
                persona=spec.persona,
                step=step.step,
                goal_neutral=spec.goal,
                goal_intent=goal_intent,
                history=history[-HISTORY:],
                observation=step.observation,
                action=step.action,
            )
        )
        history = history + [step.action]
    return rows


def _logged(log: pl.DataFrame) -> dict[tuple[str, str], list[tuple]]:
    log = log.filter(pl.col("event_type").cast(pl.String).is_in(PRODUCT_EVENTS))
    out: dict[tuple[str, str], list[tuple]] = collections.defaultdict(list)
    for s, sess, et, pid, q in log.select(
        "store_id", "session_id", pl.col("event_type").cast(pl.String), "product_id", "quantity"
    ).iter_rows():
        out[(s, sess)].append((et, pid, q))
    return out


async def replay_sessions(
    events: pl.DataFrame,
    catalogs: dict[str, StoreCatalog],
    server,
    cfg: DriverConfig | None = None,
    *,
    pool=None,
    on_result: Callable[[EpisodeResult], None] | None = None,
) -> ReplayReport:
    """events: canonical events of the sessions to replay; server: a started StorefrontServer."""
    cfg = dataclasses.replace(cfg or DriverConfig(), stop_at_order=False)
    report = ReplayReport()
    specs, intents = [], []
    for (store_id, _), session in events.partition_by(
        "store_id", "session_id", as_dict=True, maintain_order=True
    ).items():
        report.sessions_in += 1
        cat = catalogs.get(store_id)
        try:
            if cat is None:
                raise Unreplayable("store_not_served", store_id)
            plan = make_plan(session, cat)
        except Unreplayable as e:
            report.dropped[e.reason] += 1
            continue
        specs.append(
            EpisodeSpec(
                server.store_url(store_id) + plan.start_path,
                store_id,
                plan.buyer_id,
                plan.session_id,
                goals.neutral_goal(store_id),
                meta=plan,
            )
        )
        intents.append(goals.intent_goal(session, cat))
    policy = ReplayPolicy(catalogs)
    report.results = await run_episodes(specs, policy, cfg, pool=pool, on_result=on_result)
    server.flush()
    logged = _logged(read_log(server.log_dir))
    for result, intent in zip(report.results, intents):
        state = policy.states.get(result.index)
        plan = result.spec.meta
        if result.outcome == "crashed":
            reason = f"crashed:{result.reason.split(':')[0]}"
        elif state is not None and state.failed:
            reason = state.failed
        elif result.outcome == "step_limit":
            reason = "step_limit"
        elif not is_subsequence(
            expected_events(plan), logged.get((plan.store_id, plan.session_id), [])
        ):
            reason = "log_mismatch"
        else:
            reason = ""
        if reason:
            report.dropped[reason] += 1
            continue
        rows = trace_rows(result, intent)
        report.replayed += 1
        report.steps += len(rows)
        report.tokens += sum(count_tokens(r) for r in rows)
        report.rows += rows
    return report
