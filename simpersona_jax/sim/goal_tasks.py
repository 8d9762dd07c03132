"""Goal-directed tasks (the paper's instruction-following check of stage 2): make, run, score.

Three kinds with explicit intents, made deterministically from a store's catalog; their goal
sentences come from `simpersona_jax.replay.goals`, the same templates stage-2 traces train on:
  find_add    'Find "<title>" and add it to the cart.'
              success: the episode's log has product_added_to_cart of that product
  search_buy  'Search for "<query>" and buy one under $<cap>.'  (query: a category noun)
              success: a checkout_completed whose products all cost less than the cap, at least
              one of them found by the query (the storefront's own search)
  browse      'Browse the <section> section and leave without adding anything to the cart.'
              success: a collection or product view in that category, no add to cart, no
              checkout, and the agent ended the episode itself (stop())
Every episode starts on the store's home page without a persona token (persona -1) and is scored
from the storefront's canonical event log of that episode's session. Per kind: success rate, n
and a 95% Wilson interval; failures are counted by reason (no_add, wrong_product, no_purchase,
over_cap, no_match, added_to_cart, checkout, not_in_category, not_stopped:<outcome>).

    report = run_goal_tasks(catalog_dir, ["store009"], policy, n_per_kind=30, seed=0,
                            driver_cfg=DriverConfig(), out_dir="runs/goal_tasks")
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import shutil
from typing import Sequence

import numpy as np
import polars as pl
from scipy.stats import binomtest
from tqdm import tqdm

from simpersona_jax.data.schema import COLUMNS
from simpersona_jax.features import store as buyer_store
from simpersona_jax.features.default import resolve_data_dir
from simpersona_jax.replay import goals
from simpersona_jax.rollout.driver import DriverConfig, EpisodeResult, EpisodeSpec, Policy, run
from simpersona_jax.sim import score as sim_score
from simpersona_jax.storefront.catalog import (
    UNCATEGORIZED,
    StoreCatalog,
    catalog_dir_for,
    read_catalogs,
)
from simpersona_jax.storefront.eventlog import read_log
from simpersona_jax.storefront.server import StorefrontServer

KINDS = goals.GOAL_KINDS


@dataclasses.dataclass(frozen=True)
class GoalTask:
    task_id: str
    kind: str
    store_id: str
    goal: str
    product_id: str = ""  # find_add: the product to add
    query: str = ""  # search_buy: the search phrase
    cap: int = 0  # search_buy: every purchased product must cost less
    category: str = ""  # browse: the category path
    matches: frozenset = frozenset()  # search_buy: the product ids the query finds

    def row(self) -> dict:
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "matches"
        }


def _rng(seed: int, store_id: str, kind: str) -> np.random.Generator:
    digest = hashlib.blake2b(f"{store_id}/{kind}".encode(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def search_phrases(cat: StoreCatalog) -> list[str]:
    """Search phrases that find products: category nouns (leaf names), else brands."""
    leaves = {
        p.category.rsplit(".", 1)[-1].replace("_", " ")
        for p in cat.products
        if p.category != UNCATEGORIZED
    }
    phrases = sorted(q for q in leaves if not q.isdigit() and cat.search(q))
    if not phrases:
        phrases = sorted({p.brand for p in cat.products if p.brand and cat.search(p.brand)})
    return phrases


def make_tasks(cat: StoreCatalog, kind: str, n: int, seed: int = 0) -> list[GoalTask]:
    """n tasks of one kind on one store, deterministic in (seed, store, kind); distinct targets
    (product, phrase or category) until the store runs out, then they repeat."""
    if kind == "find_add":
        targets: list = cat.products
    elif kind == "search_buy":
        targets = search_phrases(cat)
    elif kind == "browse":
        targets = sorted(c for c in cat.collections if c != UNCATEGORIZED)
    else:
        raise ValueError(f"unknown goal task kind {kind!r}; expected one of {KINDS}")
    if n and not targets:
        raise ValueError(
            f"store {cat.store_id!r}: nothing to make {kind} tasks from "
            "(no categorised products, no brands)"
        )
    order = _rng(seed, cat.store_id, kind).permutation(len(targets)) if targets else []
    tasks = []
    for i in range(n):
        target = targets[int(order[i % len(targets)])]
        task_id = f"{cat.store_id}-{kind}-{i}"
        if kind == "find_add":
            tasks.append(
                GoalTask(
                    task_id,
                    kind,
                    cat.store_id,
                    goals.find_and_add(target.title, task_id),
                    product_id=target.product_id,
                )
            )
        elif kind == "search_buy":
            found = cat.search(target)
            prices = sorted(p.price for p in found)
            cap = goals.price_cap(prices[(len(prices) - 1) // 2])  # about half the hits qualify
            tasks.append(
                GoalTask(
                    task_id,
                    kind,
                    cat.store_id,
                    goals.search_and_buy(target, cap, 1, task_id),
                    query=target,
                    cap=cap,
                    matches=frozenset(p.product_id for p in found),
                )
            )
        else:
            tasks.append(
                GoalTask(
                    task_id,
                    kind,
                    cat.store_id,
                    goals.browse_and_leave(target, task_id),
                    category=target,
                )
            )
    return tasks


def tasks_for(
    catalogs: dict[str, StoreCatalog], stores: Sequence[str], n_per_kind: int, seed: int = 0
) -> list[GoalTask]:
    """n_per_kind tasks of each kind, dealt round-robin over `stores`."""
    if not stores:
        raise ValueError("goal tasks need at least one store")
    missing = [s for s in stores if s not in catalogs]
    if missing:
        raise ValueError(f"goal-task stores not in the catalog: {missing}")
    tasks = []
    for kind in KINDS:
        for j, store in enumerate(stores):
            n = len(range(j, n_per_kind, len(stores)))
            tasks += make_tasks(catalogs[store], kind, n, seed)
    return tasks


def _in_category(category: str | None, path: str) -> bool:
    return category is not None and (category == path or category.startswith(path + "."))


def score_episode(task: GoalTask, events: pl.DataFrame, outcome: str) -> tuple[bool, str]:
    """(success, failure reason or "") of one episode from its session's canonical events."""

    def of(*event_types: str) -> pl.DataFrame:
        return events.filter(pl.col("event_type").cast(pl.String).is_in(event_types))

    added = of("product_added_to_cart")["product_id"].to_list()
    if task.kind == "find_add":
        if task.product_id in added:
            return True, ""
        return False, "wrong_product" if added else "no_add"
    if task.kind == "search_buy":
        bought = of("checkout_completed")
        if bought.height == 0:
            return False, "no_purchase"
        if bought["price"].null_count():
            raise ValueError(f"task {task.task_id}: checkout_completed without a price in the log")
        if (bought["price"] >= task.cap).any():
            return False, "over_cap"
        if not set(bought["product_id"].to_list()) & task.matches:
            return False, "no_match"
        return True, ""
    if task.kind == "browse":
        if added:
            return False, "added_to_cart"
        if of("checkout_started", "checkout_completed").height:
            return False, "checkout"
        seen = of("collection_viewed", "product_viewed")["category"].to_list()
        if not any(_in_category(c, task.category) for c in seen):
            return False, "not_in_category"
        if outcome != "stopped":
            return False, f"not_stopped:{outcome}"
        return True, ""
    raise ValueError(f"task {task.task_id}: unknown kind {task.kind!r}")


def wilson_ci(successes: int, n: int) -> list[float] | None:
    """95% Wilson score interval [low, high] of a success rate (None when n is 0)."""
    if n == 0:
        return None
    ci = binomtest(successes, n).proportion_ci(0.95, method="wilson")
    return [float(ci.low), float(ci.high)]


def summarize(tasks: Sequence[GoalTask], scored: Sequence[tuple[bool, str]]) -> dict:
    """Per kind: n, successes, rate, ci95; failure reasons counted per kind."""
    success, failures = {}, {}
    for kind in KINDS:
        mine = [s for t, s in zip(tasks, scored) if t.kind == kind]
        k = sum(ok for ok, _ in mine)
        success[kind] = {
            "n": len(mine),
            "successes": k,
            "rate": k / len(mine) if mine else None,
            "ci95": wilson_ci(k, len(mine)),
        }
        failures[kind] = dict(collections.Counter(r for ok, r in mine if not ok).most_common())
    return {"success": success, "failure_reasons": failures}


def score_log(
    tasks: Sequence[GoalTask],
    specs: Sequence[EpisodeSpec],
    results: Sequence[EpisodeResult],
    log: pl.DataFrame,
) -> list[tuple[bool, str]]:
    """Scores each episode on the events of its own session in the storefront's log."""
    sessions = log.partition_by("store_id", "session_id", as_dict=True)
    return [
        score_episode(t, sessions.get((s.store_id, s.session_id), log.clear()), r.outcome)
        for t, s, r in zip(tasks, specs, results)
    ]


def run_goal_tasks(
    catalog_dir: str,
    stores: Sequence[str],
    policy: Policy,
    n_per_kind: int,
    seed: int = 0,
    driver_cfg: DriverConfig | None = None,
    out_dir: str = "",
    *,
    server_mode: str = "thread",
    progress: bool = True,
) -> dict:
    """Runs n_per_kind tasks of each kind over `stores` (round-robin) with `policy` (any driver
    policy, e.g. `sim.policies.lm_policy(...)`) and scores them from the storefront's log.

    Writes `<out_dir>/events/` (the storefront's log, made anew), `<out_dir>/episodes.jsonl` (one
    line per episode: task, outcome, success, reason, actions) and `<out_dir>/goal_tasks.json`
    (the returned report: success per kind with n and 95% Wilson CI, failure reasons, outcomes,
    crash and unparseable-action rates).
    """
    if not out_dir:
        raise ValueError("run_goal_tasks needs an out_dir for the storefront's event log")
    catalogs = read_catalogs(catalog_dir)
    tasks = tasks_for(catalogs, list(stores), n_per_kind, seed)
    log_dir = os.path.join(out_dir, "events")
    shutil.rmtree(log_dir, ignore_errors=True)
    with (
        StorefrontServer(catalog_dir, log_dir, mode=server_mode) as server,
        tqdm(total=len(tasks), desc="goal tasks", unit="episode", disable=not progress) as bar,
    ):
        specs = [
            EpisodeSpec(
                server.store_url(t.store_id),
                t.store_id,
                f"goal-{t.task_id}",
                f"goal-{seed}-{t.task_id}",
                goal=t.goal,
                persona=-1,
            )
            for t in tasks
        ]
        results = run(specs, policy, driver_cfg, on_result=lambda _: bar.update())
    scored = score_log(tasks, specs, results, read_log(log_dir))
    report = {
        "stores": list(stores),
        "n_per_kind": n_per_kind,
        "seed": seed,
        **summarize(tasks, scored),
        **sim_score.failures(results),
    }
    with open(os.path.join(out_dir, "episodes.jsonl"), "w") as f:
        for t, r, (ok, reason) in zip(tasks, results, scored):
            f.write(
                json.dumps(
                    {
                        **t.row(),
                        "outcome": r.outcome,
                        "crash_reason": r.reason,
                        "success": ok,
                        "failure": reason,
                        "actions": [s.action for s in r.steps],
                    }
                )
                + "\n"
            )
    with open(os.path.join(out_dir, "goal_tasks.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


def from_config(cfg) -> dict:
    """run_goal_tasks from an experiments/goal_tasks.py config (the CLI's work)."""
    stores = list(cfg.stores)
    need = (() if stores else ("buyers/meta.parquet",)) + (() if cfg.catalog_dir else ("events",))
    data_dir = resolve_data_dir(cfg.data.dir, "config.data.dir", need=need)
    if not stores:
        heldout = buyer_store.split_meta(os.path.join(data_dir, "buyers"), "heldout", ["store_id"])
        stores = sorted(heldout["store_id"].unique().to_list())
    events = (
        pl.scan_parquet(os.path.join(data_dir, "events", "**", "*.parquet"), hive_partitioning=True)
        .filter(pl.col("store_id").is_in(stores))
        .select(COLUMNS)
    )  # lazy: read if needed
    catalog_dir = cfg.catalog_dir or catalog_dir_for(data_dir, cfg.out_dir, events)
    if cfg.policy == "solver":
        from simpersona_jax.sim.goal_solver import GoalSolver

        policy = GoalSolver()
    elif cfg.policy == "lm":
        from simpersona_jax.sim.policies import lm_policy, load_lm

        policy = lm_policy(load_lm(cfg.lm), seed=cfg.seed)
    else:
        raise ValueError(f"policy must be 'lm' or 'solver', got {cfg.policy!r}")
    return run_goal_tasks(
        catalog_dir,
        stores,
        policy,
        cfg.n_per_kind,
        cfg.seed,
        DriverConfig(**cfg.driver.to_dict()),
        cfg.out_dir,
        server_mode=cfg.server_mode,
    )


def format_report(report: dict) -> str:
    lines = [f"goal-directed tasks on {len(report['stores'])} store(s), seed {report['seed']}"]
    for kind, s in report["success"].items():
        if not s["n"]:
            continue
        lo, hi = s["ci95"]
        fails = ", ".join(f"{k} {v}" for k, v in report["failure_reasons"][kind].items())
        lines.append(
            f"  {kind:<10} {100 * s['rate']:5.1f}%  [{100 * lo:.1f}, {100 * hi:.1f}]  "
            f"n={s['n']}" + (f"  failures: {fails}" if fails else "")
        )
    lines.append(
        f"  crash rate {100 * report['crash_rate']:.1f}%  unparseable actions "
        f"{100 * report['unparseable_action_rate']:.1f}%  outcomes "
        + " ".join(f"{k} {v}" for k, v in report["outcomes"].items())
    )
    return "\n".join(lines)
