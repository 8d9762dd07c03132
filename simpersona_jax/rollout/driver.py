"""The thin asyncio Playwright driver: runs shopping episodes with a batched async policy.

`run_episodes(specs, policy, ...)` runs every EpisodeSpec in its own browser context (one per
simulated buyer, at most `concurrency` at once) and returns exactly one EpisodeResult per spec,
in spec order. The policy is an async callable taking a list of Turns (all episodes currently
waiting for an action) and returning one action string per turn, so a batched LM server, a
scripted agent or a replay plan drive the browser the same way.

Each step: the policy's action is parsed strictly (`actions.parse_action`) and executed on the
element with that `bid` (`execute.py`, which also keeps the page on the store's origin); a
malformed or impossible action (unknown bid, unfillable element, a navigation off the store's
origin by any scheme, no page to go back to) is not raised but reported as the `error:` line of
the next observation, and the episode goes on. Outcomes (one per
episode, never lost, never counted twice):
  completed   an order was placed (the confirmation page is showing; with
              `stop_at_order=False`, as for replays, the episode goes on instead)
  stopped     the agent said stop()
  step_limit  `step_limit` actions were taken without either
  crashed     with reason: page_crash, browser_disconnected, action_deadline (one step's
              execution + observation took longer than `action_timeout_s`), episode_deadline
              (the whole episode exceeded `episode_timeout_s`), policy_error: ..., driver_error: ...
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import urlencode

from simpersona_jax.rollout.actions import ActionError, parse_action
from simpersona_jax.rollout.browser import BrowserPool
from simpersona_jax.rollout.execute import execute, observe_settled, origin_of
from simpersona_jax.rollout.observe import Observation

OUTCOMES = ("completed", "stopped", "step_limit", "crashed")
HISTORY = 5


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
    """One simulated or replayed shopping session.

    start_url: where the visit lands (a store page); buyer_id/session_id are given to the
    storefront in the entry URL, so its event log carries them. goal/persona/meta are for the
    policy (meta: anything, e.g. a replay plan).
    """

    start_url: str
    store_id: str = ""
    buyer_id: str = ""
    session_id: str = ""
    goal: str = ""
    persona: int = -1
    meta: Any = None

    def entry_url(self) -> str:
        ids = {k: v for k, v in (("buyer", self.buyer_id), ("session", self.session_id)) if v}
        if not ids:
            return self.start_url
        return self.start_url + ("&" if "?" in self.start_url else "?") + urlencode(ids)


@dataclasses.dataclass(frozen=True)
class Turn:
    """What the policy sees for one episode: its spec, step number, observation, recent actions."""

    index: int
    spec: EpisodeSpec
    step: int
    observation: Observation
    history: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Step:
    step: int
    observation: str  # the text the policy saw
    action: str  # what the policy answered
    error: str  # the driver's report on this action ("" when it went through)
    latency_s: float  # execution + next observation (excludes policy time)


@dataclasses.dataclass
class EpisodeResult:
    index: int
    spec: EpisodeSpec
    outcome: str = ""
    reason: str = ""
    steps: list[Step] = dataclasses.field(default_factory=list)
    final_observation: str = ""
    wall_s: float = 0.0

    @property
    def n_invalid(self) -> int:
        return sum(s.error.startswith("invalid action") for s in self.steps)


Policy = Callable[[list[Turn]], Awaitable[Sequence[str]]]


class PolicyError(RuntimeError):
    pass


class _Batcher:
    """Collects the turns of all waiting episodes and answers them with one policy call."""

    def __init__(self, policy: Policy, max_batch: int):
        self.policy, self.max_batch = policy, max_batch
        self.pending: list[tuple[Turn, asyncio.Future]] = []
        self.wake = asyncio.Event()

    async def ask(self, turn: Turn) -> str:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((turn, future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(0)  # let episodes that are about to ask join this batch
            while self.pending:
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                live = [(t, f) for t, f in batch if not f.done()]
                if not live:
                    continue
                try:
                    actions = list(await self.policy([t for t, _ in live]))
                    if len(actions) != len(live):
                        raise PolicyError(
                            f"policy returned {len(actions)} actions for {len(live)} turns"
                        )
                except Exception as e:  # noqa: BLE001 - reported as the episodes' outcome
                    for _, f in live:
                        if not f.done():
                            f.set_exception(PolicyError(f"{type(e).__name__}: {e}"))
                    continue
                for (_, f), a in zip(live, actions):
                    if not f.done():
                        f.set_result(a)


@dataclasses.dataclass
class DriverConfig:
    concurrency: int = 8
    step_limit: int = 30
    action_timeout_s: float = 20.0
    element_timeout_s: float = 3.0
    episode_timeout_s: float = 600.0
    max_batch: int = 256
    contexts_per_browser: int = 200
    stop_at_order: bool = True  # end the episode ("completed") on the order confirmation page


async def _episode(
    index: int,
    spec: EpisodeSpec,
    pool: BrowserPool,
    batcher: _Batcher,
    cfg: DriverConfig,
    result: EpisodeResult,
    step_hook,
) -> None:
    context = page = browser = None
    crash: dict[str, str] = {}
    try:
        context, browser = await asyncio.wait_for(
            pool.new_context(origin_of(spec.start_url)), cfg.action_timeout_s
        )
        page = await context.new_page()
        page.on("crash", lambda _: crash.setdefault("reason", "page_crash"))
        await asyncio.wait_for(
            page.goto(spec.entry_url(), wait_until="domcontentloaded"), cfg.action_timeout_s
        )
        obs = await asyncio.wait_for(observe_settled(page), cfg.action_timeout_s)
        history: list[str] = []
        for step in range(cfg.step_limit):
            if step_hook is not None:
                await step_hook(index, step, page)
            try:
                action_text = await batcher.ask(
                    Turn(index, spec, step, obs, tuple(history[-HISTORY:]))
                )
            except PolicyError as e:
                result.outcome, result.reason = "crashed", f"policy_error: {e}"[:300]
                return
            t0 = time.perf_counter()
            history.append(action_text if isinstance(action_text, str) else repr(action_text))
            try:
                action = parse_action(action_text)
            except ActionError as e:
                error = f"invalid action: {e}"
                result.steps.append(Step(step, obs.text, history[-1], error, 0.0))
                obs = obs.with_error(error)
                continue
            if action.name == "stop":
                result.steps.append(Step(step, obs.text, history[-1], "", 0.0))
                result.outcome = "stopped"
                return

            async def act():
                err = await execute(page, context, obs, action, cfg)
                return err, await observe_settled(page)

            try:
                error, new_obs = await asyncio.wait_for(act(), cfg.action_timeout_s)
            except asyncio.TimeoutError:
                result.steps.append(
                    Step(step, obs.text, history[-1], "action_deadline", time.perf_counter() - t0)
                )
                raise
            result.steps.append(Step(step, obs.text, history[-1], error, time.perf_counter() - t0))
            obs = new_obs.with_error(error) if error else new_obs
            if cfg.stop_at_order and obs.kind == "confirmation":
                result.outcome = "completed"
                break
        else:
            result.outcome = "step_limit"
        result.final_observation = obs.text
    except asyncio.TimeoutError:
        result.outcome, result.reason = "crashed", "action_deadline"
    except Exception as e:  # noqa: BLE001 - every failure becomes this episode's outcome
        await asyncio.sleep(0.1)  # let crash/disconnect events arrive before classifying
        result.outcome = "crashed"
        if crash:
            result.reason = crash["reason"]
        elif browser is not None and not browser.is_connected():
            result.reason = "browser_disconnected"
        else:
            result.reason = f"driver_error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        if context is not None and browser.is_connected():
            try:
                await asyncio.wait_for(asyncio.shield(context.close()), 10)
            except Exception:  # noqa: BLE001 - the browser may be gone
                pass


async def run_episodes(
    specs: Sequence[EpisodeSpec],
    policy: Policy,
    cfg: DriverConfig | None = None,
    *,
    pool: BrowserPool | None = None,
    on_result: Callable[[EpisodeResult], None] | None = None,
    step_hook: Callable[[int, int, Any], Awaitable[None]] | None = None,
) -> list[EpisodeResult]:
    """Runs all episodes; returns one result per spec, in order.

    pool: a started BrowserPool to reuse (else one is made and closed here).
    on_result: called once per finished episode (progress, streaming writers).
    step_hook: awaited before each policy call with (episode index, step, page); for fault
    injection and instrumentation.
    """
    cfg = cfg or DriverConfig()
    own_pool = pool is None
    if own_pool:
        pool = await BrowserPool(cfg.contexts_per_browser).start()
    batcher = _Batcher(policy, cfg.max_batch)
    batch_task = asyncio.create_task(batcher.run())
    slots: list[EpisodeResult | None] = [None] * len(specs)
    gate = asyncio.Semaphore(cfg.concurrency)

    async def one(i: int, spec: EpisodeSpec) -> None:
        async with gate:
            result = EpisodeResult(i, spec)
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(
                    _episode(i, spec, pool, batcher, cfg, result, step_hook), cfg.episode_timeout_s
                )
            except asyncio.TimeoutError:
                result.outcome, result.reason = "crashed", "episode_deadline"
            result.wall_s = time.perf_counter() - t0
            if result.outcome not in OUTCOMES:
                raise AssertionError(f"episode {i} ended without an outcome")
            if slots[i] is not None:
                raise AssertionError(f"episode {i} reported twice")
            slots[i] = result
            if on_result is not None:
                on_result(result)

    try:
        await asyncio.gather(*(one(i, s) for i, s in enumerate(specs)))
    finally:
        batch_task.cancel()
        if own_pool:
            await pool.close()
    missing = [i for i, r in enumerate(slots) if r is None]
    if missing:
        raise AssertionError(f"episodes without a result: {missing[:10]}")
    return slots  # type: ignore[return-value]


def run(
    specs: Sequence[EpisodeSpec], policy: Policy, cfg: DriverConfig | None = None, **kw
) -> list[EpisodeResult]:
    """Synchronous wrapper around run_episodes."""
    return asyncio.run(run_episodes(specs, policy, cfg, **kw))
