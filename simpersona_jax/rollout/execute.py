"""Executes one parsed action in the page and keeps the episode on the store's origin.

`execute(page, context, obs, action, cfg)` performs a click, fill, press or go_back on the
element with the action's `bid` and returns "" when it went through, or the error line the agent
sees in its next observation (no such element, not a text field, a form the browser refuses to
send, no previous page, a navigation off the store's origin). Browser failures (a crash, a closed
page, a lost browser) raise, for the episode loop in driver.py to classify.

Off-origin navigation is stopped in layers: ACT_JS refuses a link or form that leads off the
origin (any scheme) before acting; browser.py's init script cancels a navigation the page starts
itself (reported through `window.__spBlocked`) and its route answers an off-origin navigation
request, e.g. a redirect, with 204 (reported through `context.blocked`); a navigation that still
leaves the origin is undone by going back, or to the observed URL. `observe_settled(page)`
observes once the document has loaded, retrying when a navigation replaces it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from simpersona_jax.rollout.actions import Action
from simpersona_jax.rollout.observe import Observation, observe

if TYPE_CHECKING:
    from simpersona_jax.rollout.driver import DriverConfig

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


async def observe_settled(page, retries: int = 3) -> Observation:
    """Observes after the page settles; retries when a navigation replaces the document."""
    for attempt in range(retries):
        await page.wait_for_load_state("domcontentloaded")
        try:
            return await observe(page)
        except PlaywrightError as e:
            if attempt == retries - 1 or "context was destroyed" not in str(e):
                raise
    raise AssertionError("unreachable")


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of `url`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def execute(page, context, obs: Observation, action: Action, cfg: DriverConfig) -> str:
    """Performs `action`; returns "" or the error line for the agent. Browser failures raise."""
    timeout_ms = cfg.action_timeout_s * 1000
    if action.name == "go_back":
        origin, before = origin_of(obs.url), page.url
        await page.go_back(wait_until="domcontentloaded", timeout=timeout_ms)
        if origin_of(page.url) == origin and page.url != before:
            return ""
        if origin_of(page.url) != origin:  # back to the blank page the visit started from
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
        if request.is_navigation_request() and origin_of(request.url) != origin_of(obs.url):
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
    if origin_of(page.url) != origin_of(obs.url):  # left the store some other way: come back
        url = left[-1] if left else page.url
        await page.go_back(wait_until="domcontentloaded", timeout=timeout_ms)
        if origin_of(page.url) != origin_of(obs.url):
            await page.goto(obs.url, wait_until="domcontentloaded", timeout=timeout_ms)
        return _blocked(action, url)
    return ""
