"""The thin asyncio Playwright driver: runs shopping episodes with a batched async policy.

`run_episodes(specs, policy, ...)` runs every EpisodeSpec in its own browser context (one per
simulated buyer, at most `concurrency` at once) and returns exactly one EpisodeResult per spec,
in spec order. The policy is an async callable taking a list of Turns (all episodes currently
waiting for an action) and returning one action string per turn, so a batched LM server, a
scripted agent or a replay plan drive the browser the same way.

Each step: the policy's action is parsed strictly (`actions.parse_action`) and executed on the
element with that `bid`; a malformed or impossible action (unknown bid, unfillable element, a
navigation off the store's origin by any scheme, no page to go back to) is not raised but
reported as the `error:` line of the next observation, and the episode goes on. Outcomes (one per
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
from urllib.parse import urlencode, urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from simpersona_jax.rollout.actions import Action, ActionError, parse_action
from simpersona_jax.rollout.browser import BrowserPool
from simpersona_jax.rollout.observe import Observation, observe

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


# Performs one action on element `bid` in the page, in a single round trip, and says what
# happened: "missing", "notext" (fill on a non-text element), "invalid:<browser validation
# message>" (a form the browser refuses to send), "blocked:<url>" (the link or form leads off the
# store's origin, whatever the scheme: it is not followed; or the page tried to navigate there and
# the guard script of browser.py cancelled it), "nav" (a link followed or a form sent: a new
# document is coming) or "plain". Clicks are DOM clicks (HTMLElement.click()), which is what a
# server-rendered storefront reacts to, at about half the browser CPU of Playwright's pointer
# click with its actionability checks; fill sets the value and fires input/change; Enter in a
# field submits its form the way the browser's implicit submission does (requestSubmit).
ACT_JS = r"""
([bid, verb, text]) => {
  const el = document.querySelector(`[bid="${bid}"]`);
  if (!el) return 'missing';
  const form = el.form || null;
  const invalid = () => {
    const bad = form.querySelector(':invalid');
    return 'invalid:' + (bad ? bad.validationMessage : 'invalid form');
  };
  const away = (url) => {  // '' when `url` stays on this origin, else the URL
    let u;
    try { u = new URL(url, location.href); } catch (_) { return String(url); }
    return u.origin === location.origin && /^https?:$/.test(u.protocol) ? '' : u.href;
  };
  const cancelled = () => {
    const b = window.__spBlocked || [];
    return b.length ? 'blocked:' + b.splice(0).pop() : '';
  };
  const target = (button) => (button && button.hasAttribute('formaction')) ? button.formAction
                                                                            : form.action;
  if (verb === 'fill') {
    const type = (el.getAttribute('type') || 'text').toLowerCase();
    const text_input = el.tagName === 'INPUT' && !['submit', 'button', 'reset', 'checkbox',
        'radio', 'hidden', 'image', 'file', 'range', 'color'].includes(type);
    if (!(text_input || el.tagName === 'TEXTAREA') || el.readOnly || el.disabled) return 'notext';
    el.focus();
    el.value = text;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
    return 'plain';
  }
  if (verb === 'Enter') {
    if (!form || el.tagName === 'TEXTAREA') return 'plain';
    if (away(target(null))) return 'blocked:' + away(target(null));
    if (!form.noValidate && !form.checkValidity()) return invalid();
    form.requestSubmit();
    return cancelled() || 'nav';
  }
  const href = el.tagName === 'A' ? (el.getAttribute('href') || '') : '';
  let kind = 'plain';
  if (href && !href.startsWith('#')) {
    if (away(el.href)) return 'blocked:' + away(el.href);
    kind = 'nav';
  } else if (form && (el.type === 'submit' || el.type === 'image')) {
    if (away(target(el))) return 'blocked:' + away(target(el));
    if (!form.noValidate && !el.formNoValidate && !form.checkValidity()) return invalid();
    kind = 'nav';
  }
  el.click();
  return cancelled() || kind;
}
"""

TAKE_BLOCKED_JS = "() => (window.__spBlocked || []).splice(0).pop() || ''"


def _blocked(action: Action, url: str) -> str:
    return f"{action}: navigation to {url[:200]} blocked; only this store can be visited"


async def _observe(page, retries: int = 3) -> Observation:
    """Observes after the page settles; retries when a navigation replaces the document."""
    for attempt in range(retries):
        await page.wait_for_load_state("domcontentloaded")
        try:
            return await observe(page)
        except PlaywrightError as e:
            if attempt == retries - 1 or "context was destroyed" not in str(e):
                raise
    raise AssertionError("unreachable")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _execute(page, context, obs: Observation, action: Action, cfg: DriverConfig) -> str:
    """Performs `action`; returns "" or the error line for the agent. Browser failures raise."""
    timeout_ms = cfg.action_timeout_s * 1000
    if action.name == "go_back":
        origin, before = _origin(obs.url), page.url
        await page.go_back(wait_until="domcontentloaded", timeout=timeout_ms)
        if _origin(page.url) == origin and page.url != before:
            return ""
        if _origin(page.url) != origin:  # back to the blank page the visit started from
            await page.go_forward(wait_until="domcontentloaded", timeout=timeout_ms)
        return "go_back(): there is no previous page"
    bid = action.args[0]
    element = obs.element(bid)
    if element is None:
        return f'{action}: no element with bid "{bid}" on this page'
    blocked_before = len(context.blocked)
    loaded = asyncio.get_running_loop().create_future()

    def on_loaded(*_):  # a new document, or a navigation the guard answered with "no content"
        if not loaded.done():
            loaded.set_result(None)

    def on_gone(*_):
        if not loaded.done():
            loaded.set_exception(PlaywrightError("page or browser closed while navigating"))

    left: list[str] = []  # off-origin navigations the route guard does not see (redirects)

    def on_request(request):
        if request.is_navigation_request() and _origin(request.url) != _origin(obs.url):
            left.append(request.url)

    # Armed before acting, so no navigation is missed; a crash or a lost browser ends the wait.
    page.on("domcontentloaded", on_loaded)
    page.on("crash", on_gone)
    page.on("close", on_gone)
    page.on("request", on_request)
    context.on_blocked.append(on_loaded)
    browser = context.browser
    browser.on("disconnected", on_gone)
    try:
        if action.name == "press" and action.args[1] != "Enter":
            await page.locator(f'[bid="{bid}"]').press(
                action.args[1], timeout=cfg.element_timeout_s * 1000
            )
            cancelled = await page.evaluate(TAKE_BLOCKED_JS)
            kind = f"blocked:{cancelled}" if cancelled else "plain"
        else:
            verb = {"click": "click", "fill": "fill", "press": "Enter"}[action.name]
            text = action.args[1] if action.name == "fill" else ""
            kind = await page.evaluate(ACT_JS, [bid, verb, text])
        if kind == "missing":
            return f'{action}: no element with bid "{bid}" on this page'
        if kind == "notext":
            return f"{action}: element [{bid}] is a {element.role}, not a text field"
        if kind.startswith("invalid:"):
            return f"{action}: the form was not sent: {kind[8:]}"
        if kind.startswith("blocked:"):
            return _blocked(action, kind[8:])
        if kind == "nav":
            await asyncio.wait_for(loaded, cfg.action_timeout_s)
    except PlaywrightTimeoutError:
        return f"{action}: element [{bid}] could not be used"
    except PlaywrightError as e:
        if page.is_closed() or "closed" in str(e).lower() or "crash" in str(e).lower():
            raise
        if "context was destroyed" in str(e):  # the action navigated before evaluate returned
            await asyncio.wait_for(loaded, cfg.action_timeout_s)
        elif len(context.blocked) == blocked_before:
            return f"{action}: {str(e).splitlines()[0][:160]}"
    finally:
        page.remove_listener("domcontentloaded", on_loaded)
        page.remove_listener("crash", on_gone)
        page.remove_listener("close", on_gone)
        page.remove_listener("request", on_request)
        context.on_blocked.remove(on_loaded)
        browser.remove_listener("disconnected", on_gone)
        if loaded.done() and not loaded.cancelled():
            loaded.exception()  # retrieved: an unawaited failure is not an error here
    if len(context.blocked) > blocked_before:  # one the guard script could not cancel
        return _blocked(action, context.blocked[-1])
    if _origin(page.url) != _origin(obs.url):  # left the store some other way: come back
        url = left[-1] if left else page.url
        await page.go_back(wait_until="domcontentloaded", timeout=timeout_ms)
        if _origin(page.url) != _origin(obs.url):
            await page.goto(obs.url, wait_until="domcontentloaded", timeout=timeout_ms)
        return _blocked(action, url)
    return ""


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
            pool.new_context(_origin(spec.start_url)), cfg.action_timeout_s
        )
        page = await context.new_page()
        page.on("crash", lambda _: crash.setdefault("reason", "page_crash"))
        await asyncio.wait_for(
            page.goto(spec.entry_url(), wait_until="domcontentloaded"), cfg.action_timeout_s
        )
        obs = await asyncio.wait_for(_observe(page), cfg.action_timeout_s)
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
                err = await _execute(page, context, obs, action, cfg)
                return err, await _observe(page)

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
