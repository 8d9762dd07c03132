"""Tokenizers: train the embedded default's byte-level BPE on trace text; add persona tokens.

`train_bpe` returns a transformers PreTrainedTokenizerFast (save it with save_pretrained: a
normal HF tokenizer folder that AutoTokenizer loads). `add_persona_tokens` appends
<|persona_0|>..<|persona_{K-1}|> as special tokens (never split, never merged).
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from simpersona_jax.lm import prompt

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_bpe(
    texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 / Qwen style) trained on `texts`, with EOS and PAD specials."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )


def add_persona_tokens(tokenizer, num_personas: int) -> list[int]:
    """Add the persona tokens (idempotent); returns their ids in persona order."""
    toks = prompt.persona_tokens(num_personas)
    vocab = tokenizer.get_vocab()
    missing = [t for t in toks if t not in vocab]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(toks)
    for t, i in zip(toks, ids):
        if i is None or i == tokenizer.unk_token_id:
            raise RuntimeError(f"could not add persona token {t!r} to the tokenizer")
    return [int(i) for i in ids]


def persona_token_ids(tokenizer, num_personas: int) -> list[int]:
    """Ids of existing persona tokens; a clear error when the tokenizer lacks them."""
    vocab = tokenizer.get_vocab()
    toks = prompt.persona_tokens(num_personas)
    missing = [t for t in toks if t not in vocab]
    if missing:
        raise KeyError(
            f"tokenizer lacks {len(missing)} persona tokens (first: {missing[0]}); "
            "run add_persona_tokens first"
        )
    return [int(vocab[t]) for t in toks]
