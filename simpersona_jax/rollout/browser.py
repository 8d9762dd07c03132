"""One Chromium at a time, handing out isolated contexts; relaunched after N contexts or on crash.

Uses Playwright's own Chromium when it is installed, else the system one via `executable_path`
(`chromium-headless-shell` when headless and installed, else /usr/bin/chromium).

Every context only reaches one origin, whatever the scheme of the way out (other hosts,
javascript:, about:, data:, file:):
- an init script (GUARD_JS) cancels, through the Navigation API, every navigation the page starts
  towards another origin and records its URL in `window.__spBlocked` (the driver reads it);
- requests elsewhere (redirects, subresources) are caught by a route whose URL pattern (a regex
  matched inside Playwright, so same-origin requests never round-trip to Python) matches
  everything off the origin: a navigation is answered 204 No Content, so the page stays where it
  is, and anything else is aborted. Such navigations are appended to `context.blocked` and each
  callable in `context.on_blocked` is called with the URL.

`LoopBrowser` is a started BrowserPool on a private event loop, for synchronous callers (the
simulation runs every arm through one; tests use it too).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
)

GUARD_JS = r"""
(() => {
  window.__spBlocked = [];
  if (!window.navigation) return;
  navigation.addEventListener('navigate', (e) => {
    let url;
    try { url = new URL(e.destination.url); } catch (_) { url = null; }
    if (url && url.origin === location.origin && /^https?:$/.test(url.protocol)) return;
    if (e.cancelable) e.preventDefault();
    window.__spBlocked.push(e.destination.url);
  });
})();
"""


def chromium_executable(playwright: Playwright, headless: bool = True) -> str | None:
    """None to use Playwright's own Chromium when installed, else a system Chromium's path.

    $SIMPERSONA_CHROMIUM, when set, names the executable to use.
    Headless runs prefer Debian's `chromium-headless-shell` (the old headless mode: no GPU
    process or compositor, about a third of full Chromium's CPU per page load here).
    """
    forced = os.environ.get("SIMPERSONA_CHROMIUM")
    if forced:
        if not os.path.exists(forced):
            raise FileNotFoundError(f"SIMPERSONA_CHROMIUM={forced} does not exist")
        return forced
    try:
        own = playwright.chromium.executable_path
    except Exception:  # noqa: BLE001 - Playwright raises when its registry has no entry
        own = ""
    if own and os.path.exists(own):
        return None
    names = (("chromium-headless-shell",) if headless else ()) + (
        "chromium",
        "chromium-browser",
        "google-chrome",
    )
    for name in names:
        for path in (f"/usr/bin/{name}", shutil.which(name)):
            if path and os.path.exists(path):
                return path
    raise FileNotFoundError(
        "no Chromium: install Playwright's (`playwright install chromium`) "
        "or the system package (apt-get install chromium)"
    )


class BrowserPool:
    """Launches Chromium lazily; `new_context(origin)` returns (context, browser)."""

    def __init__(
        self,
        contexts_per_browser: int = 200,
        headless: bool = True,
        extra_args: tuple[str, ...] = (),
    ):
        self.contexts_per_browser = contexts_per_browser
        self.headless = headless
        self.extra_args = tuple(extra_args)
        self.launches = 0
        self._pw = None
        self._browser: Browser | None = None
        self._made = 0
        self._lock = asyncio.Lock()
        self._retired: list[Browser] = []

    async def start(self) -> "BrowserPool":
        self._pw = await async_playwright().start()
        self._executable = chromium_executable(self._pw, self.headless)
        return self

    async def _launch(self) -> Browser:
        self.launches += 1
        return await self._pw.chromium.launch(
            executable_path=self._executable,
            headless=self.headless,
            args=list(CHROMIUM_ARGS + self.extra_args),
        )

    @property
    def browser(self) -> Browser | None:
        return self._browser

    async def new_context(self, origin: str) -> tuple[BrowserContext, Browser]:
        async with self._lock:
            if (
                self._browser is None
                or not self._browser.is_connected()
                or self._made >= self.contexts_per_browser
            ):
                if self._browser is not None:
                    self._retired.append(self._browser)
                self._browser = await self._launch()
                self._made = 0
            self._made += 1
            browser = self._browser
            await self._close_idle_retired()
            # Created under the lock so a browser is never retired between choice and use.
            context = await browser.new_context(
                viewport={"width": 1024, "height": 768}, service_workers="block"
            )
        off_origin = re.compile("^(?!" + re.escape(origin.rstrip("/")) + "(/|$))")
        context.blocked = []  # navigation URLs refused by the origin guard
        context.on_blocked = []

        async def guard(route):
            if route.request.is_navigation_request():
                context.blocked.append(route.request.url)
                for callback in list(context.on_blocked):
                    callback(route.request.url)
                await route.fulfill(status=204)  # no content: the page stays where it is
            else:
                await route.abort("blockedbyclient")

        await context.add_init_script(GUARD_JS)
        await context.route(off_origin, guard)
        return context, browser

    async def _close_idle_retired(self) -> None:
        for b in list(self._retired):
            if not b.is_connected() or not b.contexts:
                self._retired.remove(b)
                try:
                    await b.close()
                except Exception:  # noqa: BLE001 - already gone
                    pass

    async def close(self) -> None:
        for b in self._retired + ([self._browser] if self._browser else []):
            try:
                await b.close()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._retired, self._browser = [], None
        if self._pw is not None:
            await self._pw.stop()
            self._pw = None


class LoopBrowser:
    """Owns an event loop and a started BrowserPool; `run(coro)` runs a coroutine on that loop."""

    def __init__(self, contexts_per_browser: int = 200):
        self.loop = asyncio.new_event_loop()
        self.pool = self.run(BrowserPool(contexts_per_browser).start())

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.pool.close())
        self.loop.close()
