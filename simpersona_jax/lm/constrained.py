"""Constrained action decoding: the agent can only emit an action that exists on the page.

Each row has a candidate set (lm/candidates.py). Decoding walks a token trie of the candidates'
canonical token sequences (action + "\\n", as SFT trains them): at every step the model's
distribution is restricted to the tokens that continue some candidate and renormalised, then
sampled (temperature; 0 = greedy). So an action is drawn with probability proportional, step by
step, to the model's own, and it always parses and names an element of the page. A fill
candidate ends at the opening quote of its text (`fill("3", "`); the text after it is sampled
freely (no newline, no special tokens) until the model closes the quote or `max_text_tokens`,
and the action is rebuilt with `format_action`, so any text is a valid action.

Device work is one prefill per batch (left-padded prompts, KV cache) and one single-token
extension per decoding step; the trie walk runs on the host with a per-request RNG, so a row's
action depends on its prompt, candidates and seed only.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simpersona_jax.lm import prompt
from simpersona_jax.lm.candidates import Candidate
from simpersona_jax.lm.config import LMConfig
from simpersona_jax.lm.model import Decoder, init_cache
from simpersona_jax.lm.sampling import BATCH_BUCKETS, PROMPT_BUCKETS, bucket
from simpersona_jax.rollout.actions import format_action

MAX_NEW = 64  # decode slots after the prompt: longest candidate + fill text


@functools.partial(jax.jit, static_argnames=("cfg", "length"))
def prefill(params, prompt_BxP, pad_B, *, cfg: LMConfig, length: int):
    """(log-probs of the next token [B, V], KV cache of `length` slots holding the prompts)."""
    b, p = prompt_BxP.shape
    kv_valid = jnp.arange(length)[None, :] >= pad_B[:, None]
    positions = jnp.maximum(jnp.arange(p)[None, :] - pad_B[:, None], 0)
    logits, cache = Decoder(cfg).apply(
        {"params": params},
        prompt_BxP,
        positions,
        cache=init_cache(cfg, b, length),
        write_index=0,
        kv_valid_BxS=kv_valid,
        last_only=True,
    )
    return jax.nn.log_softmax(logits[:, 0].astype(jnp.float32)), cache


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("cache",))
def extend(params, tok_B, pad_B, cache, write_index, *, cfg: LMConfig):
    """Feeds one token per row at slot `write_index`; returns next-token log-probs and the cache."""
    s = cache["k"].shape[3]
    kv_valid = jnp.arange(s)[None, :] >= pad_B[:, None]
    pos = (write_index - pad_B)[:, None]
    logits, cache = Decoder(cfg).apply(
        {"params": params},
        tok_B[:, None],
        pos,
        cache=cache,
        write_index=write_index,
        kv_valid_BxS=kv_valid,
    )
    return jax.nn.log_softmax(logits[:, 0].astype(jnp.float32)), cache


@dataclasses.dataclass
class _Row:
    trie: dict  # token prefix (tuple) -> {next token: None}
    whole: dict  # complete token sequence -> action string
    fills: dict  # fill-prefix token sequence -> bid
    rng: np.random.Generator
    prefix: tuple = ()
    text_ids: list = dataclasses.field(default_factory=list)
    fill_bid: str = ""
    action: str | None = None


class ConstrainedDecoder:
    """Samples one valid action per row from `Candidate` lists (see the module docstring)."""

    def __init__(
        self,
        cfg: LMConfig,
        params,
        tokenizer,
        *,
        max_text_tokens: int = 24,
        prompt_buckets: Sequence[int] = PROMPT_BUCKETS,
        batch_buckets: Sequence[int] = BATCH_BUCKETS,
    ):
        self.cfg, self.params, self.tokenizer = cfg, params, tokenizer
        self.max_text_tokens = min(max_text_tokens, MAX_NEW - 16)
        self.prompt_buckets, self.batch_buckets = prompt_buckets, batch_buckets
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self._ids: dict[str, tuple[int, ...]] = {}
        # Tokens a fill text may use: real vocabulary entries, no special/added token, no newline.
        n_real = len(tokenizer)
        banned = np.ones((cfg.vocab_size,), bool)
        banned[:n_real] = False
        for tid in set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values()):
            if 0 <= tid < cfg.vocab_size:
                banned[tid] = True
        for tid in range(n_real):
            if not banned[tid] and "\n" in tokenizer.decode([tid]):
                banned[tid] = True
        self.text_banned = banned

    def token_ids(self, text: str) -> tuple[int, ...]:
        if text not in self._ids:
            self._ids[text] = tuple(self.tokenizer.encode(text, add_special_tokens=False))
        return self._ids[text]

    def _row(self, cands: Sequence[Candidate], seed: int) -> _Row:
        if not cands:
            raise ValueError("a row needs at least one candidate action")
        whole, fills, trie = {}, {}, {}
        for c in cands:
            seq = self.token_ids(c.text if c.is_fill else c.text + prompt.STOP)
            if c.is_fill:
                fills[seq] = c.fill_bid
            else:
                whole[seq] = c.text
            for i in range(len(seq)):
                trie.setdefault(seq[:i], {})[seq[i]] = None
        return _Row(trie, whole, fills, np.random.default_rng(int(seed) & 0xFFFFFFFF))

    @staticmethod
    def _draw(logp: np.ndarray, rng: np.random.Generator, temperature: float) -> int:
        if temperature <= 0:
            return int(np.argmax(logp))
        z = logp / temperature
        p = np.exp(z - z.max())
        return int(rng.choice(len(p), p=p / p.sum()))

    def _advance(self, row: _Row, logp_V: np.ndarray, temperature: float) -> int:
        """Picks the row's next token and updates its state; returns the token."""
        if row.fill_bid:  # free fill text
            logp = np.where(self.text_banned, -np.inf, logp_V)
            tok = self._draw(logp, row.rng, temperature)
            row.text_ids.append(tok)
            text = self.tokenizer.decode(row.text_ids)
            if '"' in text or len(row.text_ids) >= self.max_text_tokens:
                row.action = format_action("fill", row.fill_bid, text.split('"', 1)[0])
            return tok
        allowed = np.fromiter(row.trie[row.prefix], np.int64)
        tok = int(allowed[self._draw(logp_V[allowed], row.rng, temperature)])
        row.prefix = row.prefix + (tok,)
        if row.prefix in row.whole:
            row.action = row.whole[row.prefix]
        elif row.prefix in row.fills:
            row.fill_bid = row.fills[row.prefix]
        return tok

    def choose(
        self,
        prompts: Sequence[Sequence[int]],
        cands: Sequence[Sequence[Candidate]],
        seeds: Sequence[int],
        temperature: float = 1.0,
    ) -> list[str]:
        """One action string per prompt, drawn from its candidates."""
        n = len(prompts)
        if not (len(cands) == len(seeds) == n):
            raise ValueError(f"{n} prompts, {len(cands)} candidate lists, {len(seeds)} seeds")
        if n == 0:
            return []
        rows = [self._row(c, s) for c, s in zip(cands, seeds)]
        p = bucket(max(len(q) for q in prompts), self.prompt_buckets)
        b = bucket(n, self.batch_buckets)
        toks = np.full((b, p), self.pad_id, np.int32)
        pad = np.full((b,), p - 1, np.int32)
        for i, q in enumerate(prompts):
            if not len(q):
                raise ValueError(f"prompt {i} is empty")
            toks[i, p - len(q) :] = q
            pad[i] = p - len(q)
        logp, cache = prefill(self.params, toks, pad, cfg=self.cfg, length=p + MAX_NEW)
        for i in range(MAX_NEW):
            logp = np.asarray(logp)
            nxt = np.full((b,), self.pad_id, np.int32)
            for j, row in enumerate(rows):
                if row.action is None:
                    nxt[j] = self._advance(row, logp[j], temperature)
            if all(r.action is not None for r in rows):
                break
            logp, cache = extend(self.params, nxt, pad, cache, np.int32(p + i), cfg=self.cfg)
        for r in rows:  # unreachable by construction (MAX_NEW > any candidate), kept as a guard
            if r.action is None:
                raise RuntimeError("constrained decoding ran out of slots")
        return [r.action for r in rows]
