"""The simulator's LM policy: (persona, goal, history, observation) -> one sampled action string.

Loads an exported agent (a Hugging Face folder from lm/task.py, or any Qwen3/Qwen2/Llama
checkpoint) and answers a whole batch of agents in one jitted, bucketed decode call. Actions are
SAMPLED (temperature 1 by default, DESIGN.md); each request carries its own seed so an agent's
action does not depend on which other agents share the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from simpersona_jax.lm import hf, prompt
from simpersona_jax.lm.sampling import Sampler


@dataclasses.dataclass(frozen=True)
class Request:
    goal: str
    history: Sequence[str]
    observation: str
    persona: int | None  # None or -1: no persona token (a control)
    seed: int
    persona_text: str | None = None  # the "prompt-text persona" control


class LMPolicy:
    def __init__(self, folder: str, *, max_prompt_tokens: int = 1024, max_new_tokens: int = 48,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, dtype: str = "float32",
                 mesh=None):
        self.cfg, self.params = hf.load_params(folder, hf.read_config(folder, dtype=dtype), mesh=mesh)
        self.tokenizer = hf.load_tokenizer(folder)
        self.sampler = Sampler(self.cfg, self.params, self.tokenizer)
        self.max_prompt_tokens = max_prompt_tokens
        self.kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k)

    def encode(self, r: Request) -> list[int]:
        return prompt.encode(self.tokenizer, r.goal, r.history, r.observation, persona=r.persona,
                             persona_text=r.persona_text, max_prompt_tokens=self.max_prompt_tokens)

    def act(self, requests: Sequence[Request], **overrides) -> list[str]:
        """One action string per request (unparsed; the driver's strict parser judges it)."""
        if not requests:
            return []
        ids = [self.encode(r) for r in requests]
        outs = self.sampler.generate_ids(ids, [r.seed for r in requests], stop=(prompt.STOP,),
                                         **{**self.kw, **overrides})
        texts = []
        for o in outs:
            t = self.tokenizer.decode(o, skip_special_tokens=True)
            texts.append(t.split(prompt.STOP, 1)[0].strip())
        return texts
