"""Async driver policies for simulation: the persona-conditioned LM, or a scripted oracle.

`lm_policy(LMPolicy)` adapts the batched, synchronous LM sampler to the driver's async policy
protocol: each Turn becomes an `lm.policy.Request` (persona token, goal, recent actions,
observation text) with a per-(episode, step) seed, and the batch is decoded in a worker thread
so the browsers keep going while the model samples.
"""

from __future__ import annotations

import asyncio
import hashlib

from simpersona_jax.rollout.driver import Turn


def turn_seed(seed: int, turn: Turn) -> int:
    """Stable per (run seed, episode, step): an action never depends on its batch-mates."""
    key = f"{seed}/{turn.spec.buyer_id}/{turn.spec.session_id}/{turn.step}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


def _persona_text(turn: Turn) -> str | None:
    meta = turn.spec.meta
    return meta.get("persona_text") if isinstance(meta, dict) else None


def load_lm(lm_cfg):
    """The LMPolicy of a config's `lm` block: `folder` plus any LMPolicy keyword (decoding,
    temperature, max_text_tokens, ...), so tools take new decoding settings without changes."""
    from simpersona_jax.lm.policy import LMPolicy

    return LMPolicy(lm_cfg.folder, **{k: v for k, v in lm_cfg.items() if k != "folder"})


def lm_policy(model, seed: int = 0):
    """Driver policy backed by `simpersona_jax.lm.policy.LMPolicy` (or anything with `.act`)."""
    from simpersona_jax.lm.policy import Request

    async def policy(turns: list[Turn]) -> list[str]:
        requests = [
            Request(
                goal=t.spec.goal,
                history=list(t.history),
                observation=t.observation.text,
                persona=t.spec.persona,
                seed=turn_seed(seed, t),
                persona_text=_persona_text(t),
            )
            for t in turns
        ]
        return await asyncio.to_thread(model.act, requests)

    return policy
