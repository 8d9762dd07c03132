"""The simulator's LM policy: (persona, goal, history, observation) -> one sampled action string.

Loads an exported agent (a Hugging Face folder from lm/task.py, or any Qwen3/Qwen2/Llama
checkpoint) and answers a whole batch of agents at once. Actions are SAMPLED (temperature 1 by
default, DESIGN.md); each request carries its own seed so an agent's action does not depend on
which other agents share the batch. Decoding:
  constrained (default)  the action is drawn from the actions that exist on the page
                         (lm/constrained.py): it always parses and names a shown element
  free                   free-form sampling until a newline (the strict parser judges it)
`stats` counts prompts whose observation was cut to fit `max_prompt_tokens` (context length).
`mesh` (a training.mesh config such as {"tensor": -1}, or a jax Mesh; default one device)
places the weights with the LM's logical-axis rules, and decoding is traced inside that mesh and
those rules, so the model's activation constraints take effect (e.g. heads and vocab split over
'tensor').
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from jax.sharding import Mesh

from simpersona_jax.lm import hf, prompt
from simpersona_jax.lm import sharding as shd
from simpersona_jax.lm.candidates import candidates
from simpersona_jax.lm.constrained import ConstrainedDecoder
from simpersona_jax.lm.sampling import Sampler
from simpersona_jax.training import mesh as mesh_lib

DECODINGS = ("constrained", "free")


@dataclasses.dataclass(frozen=True)
class Request:
    goal: str
    history: Sequence[str]
    observation: str
    persona: int | None  # None or -1: no persona token (a control)
    seed: int
    persona_text: str | None = None  # the "prompt-text persona" control


class LMPolicy:
    def __init__(
        self,
        folder: str,
        *,
        max_prompt_tokens: int = 1024,
        max_new_tokens: int = 48,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        dtype: str = "float32",
        decoding: str = "constrained",
        max_text_tokens: int = 24,
        mesh=None,
    ):
        if decoding not in DECODINGS:
            raise ValueError(f"lm.decoding={decoding!r}: expected one of {DECODINGS}")
        if not isinstance(mesh, Mesh):
            mesh = mesh_lib.make_mesh(dict(mesh or {"num_devices": 1}))
        self.mesh = mesh
        self.cfg, self.params = hf.load_params(
            folder, hf.read_config(folder, dtype=dtype), mesh=mesh
        )
        self.tokenizer = hf.load_tokenizer(folder)
        self.decoding = decoding
        self.sampler = Sampler(self.cfg, self.params, self.tokenizer)
        self.decoder = ConstrainedDecoder(
            self.cfg, self.params, self.tokenizer, max_text_tokens=max_text_tokens
        )
        self.max_prompt_tokens = max_prompt_tokens
        self.temperature = temperature
        self.kw = dict(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k
        )
        self.stats = {"requests": 0, "truncated_prompts": 0}

    def encode(self, r: Request) -> list[int]:
        full = prompt.encode(
            self.tokenizer,
            r.goal,
            r.history,
            r.observation,
            persona=r.persona,
            persona_text=r.persona_text,
        )
        if len(full) <= self.max_prompt_tokens:
            return full
        self.stats["truncated_prompts"] += 1
        return prompt.encode(
            self.tokenizer,
            r.goal,
            r.history,
            r.observation,
            persona=r.persona,
            persona_text=r.persona_text,
            max_prompt_tokens=self.max_prompt_tokens,
        )

    def act(self, requests: Sequence[Request], **overrides) -> list[str]:
        """One action string per request (constrained: always valid; free: the driver's strict
        parser judges it)."""
        if not requests:
            return []
        self.stats["requests"] += len(requests)
        ids = [self.encode(r) for r in requests]
        with mesh_lib.activate(self.mesh, shd.LOGICAL_RULES):
            return self._act(requests, ids, overrides)

    def _act(self, requests, ids, overrides) -> list[str]:
        if self.decoding == "constrained":
            cands = [candidates(r.observation, r.history) for r in requests]
            return self.decoder.choose(
                ids,
                cands,
                [r.seed for r in requests],
                temperature=overrides.get("temperature", self.temperature),
            )
        outs = self.sampler.generate_ids(
            ids, [r.seed for r in requests], stop=(prompt.STOP,), **{**self.kw, **overrides}
        )
        texts = []
        for o in outs:
            t = self.tokenizer.decode(o, skip_special_tokens=True)
            texts.append(t.split(prompt.STOP, 1)[0].strip())
        return texts
