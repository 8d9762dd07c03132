"""A started BrowserPool on a private event loop, for synchronous tests and scripts."""

from __future__ import annotations

import asyncio

from simpersona_jax.rollout.browser import BrowserPool


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
