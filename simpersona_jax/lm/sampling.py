"""Batched KV-cache decoding: left-padded prompts, per-row positions, per-row RNG, stop strings.

`decode` is one jitted function over static shapes (batch bucket, prompt bucket, max_new_tokens),
so a stream of requests of varying lengths compiles once per bucket, not once per request.
Each row samples with its own key `fold_in(key(seed_row), step)`: a row's output depends on its
prompt and seed only, not on which other rows share the batch or where it sits.

Stop strings: any vocabulary token whose text contains a stop string ends its row on device
(together with EOS); stop strings spread over several tokens are cut on the host afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simpersona_jax.lm.config import LMConfig
from simpersona_jax.lm.model import Decoder, init_cache

PROMPT_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def bucket(n: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if n <= b:
            return b
    raise ValueError(f"length {n} exceeds the largest bucket {buckets[-1]}")


def filter_logits(logits_BxV, top_k_B, top_p_B):
    """Mask logits outside each row's top-k (0 = off) and top-p nucleus (1.0 = off) with -inf."""
    v = logits_BxV.shape[-1]
    sorted_desc = -jnp.sort(-logits_BxV, axis=-1)
    k = jnp.where(top_k_B > 0, jnp.minimum(top_k_B, v), v)
    kth = jnp.take_along_axis(sorted_desc, (k - 1)[:, None], axis=-1)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (the token crossing it is kept).
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = mass_before < top_p_B[:, None]
    n_keep = jnp.maximum(jnp.sum(keep_sorted, axis=-1), 1)
    pth = jnp.take_along_axis(sorted_desc, (n_keep - 1)[:, None], axis=-1)
    thresh = jnp.maximum(kth, pth)
    return jnp.where(logits_BxV >= thresh, logits_BxV, -jnp.inf)


def sample_next(logits_BxV, keys_B, step, temperature_B, top_k_B, top_p_B):
    logits = logits_BxV.astype(jnp.float32)
    greedy = jnp.argmax(logits, axis=-1)
    scaled = logits / jnp.maximum(temperature_B, 1e-6)[:, None]
    # The vocabulary sort runs only when some row asks for top-k / top-p.
    use_filters = jnp.any(top_k_B > 0) | jnp.any(top_p_B < 1.0)
    scaled = jax.lax.cond(
        use_filters, lambda x: filter_logits(x, top_k_B, top_p_B), lambda x: x, scaled
    )

    def draw(x):
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys_B)
        return jax.vmap(jax.random.categorical)(step_keys, x).astype(jnp.int32)

    # Random draws (a uniform per vocabulary entry and row) only when some row samples.
    sampled = jax.lax.cond(
        jnp.any(temperature_B > 0), draw, lambda x: greedy.astype(jnp.int32), scaled
    )
    return jnp.where(temperature_B > 0, sampled, greedy).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens"))
def decode(
    params,
    prompt_BxP,
    pad_B,
    seeds_B,
    temperature_B,
    top_k_B,
    top_p_B,
    stop_ids_S,
    *,
    cfg: LMConfig,
    max_new_tokens: int,
):
    """Generate up to max_new_tokens per row. Returns (tokens_BxN, n_generated_B).

    prompt_BxP is left-padded; pad_B counts each row's padding. Tokens after a row's stop token
    are the stop token repeated (use n_generated_B, which includes the stop token).
    """
    model = Decoder(cfg)
    b, p = prompt_BxP.shape
    s = p + max_new_tokens
    slots = jnp.arange(s)
    kv_valid = slots[None, :] >= pad_B[:, None]
    positions = jnp.maximum(jnp.arange(p)[None, :] - pad_B[:, None], 0)
    cache = init_cache(cfg, b, s)
    logits, cache = model.apply(
        {"params": params},
        prompt_BxP,
        positions,
        cache=cache,
        write_index=0,
        kv_valid_BxS=kv_valid,
        last_only=True,
    )
    logits = logits[:, 0]
    keys = jax.vmap(jax.random.key)(seeds_B.astype(jnp.uint32))
    sample = functools.partial(
        sample_next, keys_B=keys, temperature_B=temperature_B, top_k_B=top_k_B, top_p_B=top_p_B
    )
    tok = sample(logits, step=0)
    out = jnp.zeros((b, max_new_tokens), jnp.int32).at[:, 0].set(tok)
    done = jnp.isin(tok, stop_ids_S)
    n_gen = jnp.ones((b,), jnp.int32)

    def cond(state):
        i, _, _, _, done, _ = state
        return (i < max_new_tokens) & ~jnp.all(done)

    # Unrolled layers: slice the stacked layer params once, outside the loop; restacked in the body,
    # XLA folds slice(stack(...)) away, so a step reads them in place instead of copying each slice.
    n_sliced = cfg.num_layers if cfg.unroll_layers else 0
    per_layer = [jax.tree.map(lambda x, i=i: x[i], params["layers"]) for i in range(n_sliced)]

    def step_params():
        if not per_layer:
            return params
        return {**params, "layers": jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)}

    def body(state):
        i, tok, cache, out, done, n_gen = state
        pos = (p - pad_B + i - 1)[:, None]
        logits, cache = model.apply(
            {"params": step_params()},
            tok[:, None],
            pos,
            cache=cache,
            write_index=p + i - 1,
            kv_valid_BxS=kv_valid,
        )
        nxt = sample(logits[:, 0], step=i)
        nxt = jnp.where(done, tok, nxt)
        out = out.at[:, i].set(nxt)
        n_gen = n_gen + (~done).astype(jnp.int32)
        done = done | jnp.isin(nxt, stop_ids_S)
        return i + 1, nxt, cache, out, done, n_gen

    state = (jnp.int32(1), tok, cache, out, done, n_gen)
    _, _, _, out, _, n_gen = jax.lax.while_loop(cond, body, state)
    return out, n_gen


@dataclasses.dataclass
class Sampler:
    """Host-side wrapper: tokenises, buckets, pads, calls `decode`, detokenises and cuts stop strings."""

    cfg: LMConfig
    params: object
    tokenizer: object
    prompt_buckets: Sequence[int] = PROMPT_BUCKETS
    batch_buckets: Sequence[int] = BATCH_BUCKETS

    def __post_init__(self):
        self._stop_cache: dict[tuple[str, ...], np.ndarray] = {}
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.cfg.eos_ids or (0,))[0])

    def stop_token_ids(self, stop: Sequence[str]) -> np.ndarray:
        key = tuple(stop)
        if key not in self._stop_cache:
            ids = set(self.cfg.eos_ids)
            if self.tokenizer.eos_token_id is not None:
                ids.add(int(self.tokenizer.eos_token_id))
            if stop:
                vocab = self.tokenizer.get_vocab()
                for tid in vocab.values():
                    text = self.tokenizer.decode([tid])
                    if any(s in text for s in stop):
                        ids.add(int(tid))
            ids = sorted(ids)
            size = max(16, 1 << (len(ids) - 1).bit_length())  # few distinct shapes -> few compiles
            self._stop_cache[key] = np.asarray(ids + [-1] * (size - len(ids)), np.int32)
        return self._stop_cache[key]

    def generate_ids(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int],
        *,
        max_new_tokens: int = 32,
        temperature: float | Sequence[float] = 1.0,
        top_k: int | Sequence[int] = 0,
        top_p: float | Sequence[float] = 1.0,
        stop: Sequence[str] = (),
    ) -> list[list[int]]:
        n = len(prompts)
        if len(seeds) != n:
            raise ValueError(f"{n} prompts but {len(seeds)} seeds")
        if n == 0:
            return []
        longest = max(len(q) for q in prompts)
        if min(len(q) for q in prompts) == 0:
            raise ValueError("empty prompt")
        p = bucket(longest, self.prompt_buckets)
        b = bucket(n, self.batch_buckets)
        toks = np.full((b, p), self.pad_id, np.int32)
        pad = np.full((b,), p - 1, np.int32)  # filler rows: one dummy token
        for i, q in enumerate(prompts):
            toks[i, p - len(q) :] = q
            pad[i] = p - len(q)

        def per_row(v, dtype):
            a = np.broadcast_to(np.asarray(v, dtype), (n,))
            return np.concatenate([a, np.full((b - n,), a[0], dtype)])

        temp, tk, tp = (
            per_row(temperature, np.float32),
            per_row(top_k, np.int32),
            per_row(top_p, np.float32),
        )
        seeds_b = np.concatenate([np.asarray(seeds, np.uint32), np.zeros((b - n,), np.uint32)])
        out, n_gen = decode(
            self.params,
            toks,
            pad,
            seeds_b,
            temp,
            tk,
            tp,
            self.stop_token_ids(stop),
            cfg=self.cfg,
            max_new_tokens=max_new_tokens,
        )
        out, n_gen = np.asarray(out), np.asarray(n_gen)
        return [out[i, : n_gen[i]].tolist() for i in range(n)]

    def generate(
        self, prompts: Sequence[str], seeds: Sequence[int], *, stop: Sequence[str] = (), **kw
    ) -> list[str]:
        ids = [self.tokenizer(q, add_special_tokens=False)["input_ids"] for q in prompts]
        outs = self.generate_ids(ids, seeds, stop=stop, **kw)
        texts = []
        for o in outs:
            text = self.tokenizer.decode(o, skip_special_tokens=True)
            cut = min([text.find(s) for s in stop if s in text] or [len(text)])
            texts.append(text[:cut])
        return texts
