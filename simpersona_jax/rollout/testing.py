"""For synchronous tests: `LoopBrowser` (defined in `simpersona_jax.rollout.browser`)."""

from simpersona_jax.rollout.browser import LoopBrowser

__all__ = ["LoopBrowser"]
