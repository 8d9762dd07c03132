"""The agent SFT task's model, tokenizer and persona set-up (lm/task.py), from its config.

`build` returns the tokenizer, the model config and the persona set-up the task trains:
- lm.init_from "": the embedded default, a BPE tokenizer trained on the training traces and the
  small `lm.model` config (vocabulary padded to persona.vocab_multiple), randomly initialised;
  otherwise the Hugging Face folder's tokenizer and config, its weights read later by the task's
  `initial_params` (`pretrained`: folder, config, and the (real rows, padded vocabulary) to
  extend the table to, None when the checkpoint already has the persona rows).
- persona.num_personas K > 0: <|persona_k|> tokens added to the tokenizer (their ids), the table
  padded to persona.vocab_multiple; with persona.init "code_projection" the [K, C] VQ code
  vectors from persona.codes_path (the rows are then a learned projection of them), with
  "mean_std" none (rows drawn from the mean/std of the existing rows).
`numerics` holds the config.lm overrides (dtypes, remat, attention kernel, loss chunk) that
apply to any model config, also to the shape-only task (SFTTask.for_shapes).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from simpersona_jax.lm import hf, persona
from simpersona_jax.lm import tokenizer as tok_lib
from simpersona_jax.lm.config import LMConfig, pad_to_multiple


class Model(NamedTuple):
    tokenizer: Any
    cfg: LMConfig
    persona_ids: list[int]
    codes: np.ndarray | None  # [K, C] float32 with persona.init "code_projection"
    pretrained: tuple | None  # (folder, cfg, None | (n_real, new_vocab)) with lm.init_from


def model_config(config, vocab_size: int, tokenizer) -> LMConfig:
    """The embedded default's LMConfig: config.lm.model with the tokenizer's special ids."""
    m = dict(config.lm.model)
    eos = tokenizer.eos_token_id
    return LMConfig(
        vocab_size=vocab_size,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=m.pop("tie_word_embeddings", True),
        **m,
    )


def numerics(lm) -> dict:
    """LMConfig overrides from config.lm (keys and defaults in lm/experiment.sft_config)."""
    keys = (
        "dtype",
        "param_dtype",
        "remat_policy",
        "attention_impl",
        "loss_chunk",
        "attn_scores_f32",
        "attn_blocks",
    )
    return {k: lm[k] for k in keys}


def _bpe_texts(train_df):
    """Every text field of every training row, one string per row (the default BPE's corpus)."""
    return (
        r["observation"]
        + "\n"
        + r["action"]
        + "\n"
        + (r["goal_neutral"] or "")
        + "\n"
        + (r["goal_intent"] or "")
        + "\n"
        + "\n".join(r["history"] or [])
        for r in train_df.iter_rows(named=True)
    )


def build(config, train_df) -> Model:
    """Tokenizer, model config and persona set-up for `config` (see the module docstring)."""
    p, lm = config.persona, config.lm
    dtype_over = numerics(lm)
    pretrained = None
    if lm.init_from:
        tokenizer = hf.load_tokenizer(lm.init_from)
        cfg = hf.read_config(lm.init_from, **dtype_over)
        n_real = len(tokenizer)
    else:
        tokenizer = tok_lib.train_bpe(_bpe_texts(train_df), vocab_size=int(lm.tokenizer_vocab_size))
        n_real = len(tokenizer)
        cfg = model_config(
            config, pad_to_multiple(n_real, int(p.vocab_multiple)), tokenizer
        ).replace(**dtype_over)
    persona_ids: list[int] = []
    codes = None
    if int(p.num_personas) > 0:
        had = all(t in tokenizer.get_vocab() for t in [f"<|persona_{int(p.num_personas) - 1}|>"])
        persona_ids = tok_lib.add_persona_tokens(tokenizer, int(p.num_personas))
        new_v = persona.padded_vocab_size(cfg, len(tokenizer), int(p.vocab_multiple))
        if lm.init_from:  # read in initial_params, straight into the train state's shardings
            pretrained = (lm.init_from, cfg, None if had else (n_real, new_v))
        if not (lm.init_from and had):
            cfg = cfg.replace(vocab_size=new_v)
        if p.init == "code_projection":
            if not p.codes_path:
                raise ValueError(
                    "persona.init='code_projection' needs persona.codes_path (a .npy [K, C] array)"
                )
            codes = np.load(p.codes_path).astype(np.float32)
            if codes.shape[0] != int(p.num_personas):
                raise ValueError(
                    f"{p.codes_path}: {codes.shape[0]} code vectors, expected "
                    f"persona.num_personas={p.num_personas}"
                )
        elif p.init != "mean_std":
            raise ValueError(f"persona.init={p.init!r}: expected 'mean_std' or 'code_projection'")
    elif lm.init_from:
        pretrained = (lm.init_from, cfg, None)
    return Model(tokenizer, cfg, persona_ids, codes, pretrained)
