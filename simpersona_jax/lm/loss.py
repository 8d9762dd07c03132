"""The SFT loss from final hidden states, in sequence chunks: full [B, T, V] logits never exist.

The vocabulary projection, log-sum-exp, target logit and argmax run one chunk of positions at a
time inside a rematerialised `lax.scan`: the forward keeps [B, chunk, V] logits for one chunk,
the backward recomputes each chunk's logits instead of storing them. Logits are constrained to
('act_batch', 'act_len', 'act_vocab') so, inside a mesh + rules context, the vocabulary is
sharded on 'tensor' and the batch on ('data', 'fsdp'). Same values as sft.masked_loss on full
logits (tests/lm/test_loss.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from simpersona_jax.lm.config import LMConfig
from simpersona_jax.lm.model import constrain


def output_weight(cfg: LMConfig, params) -> jax.Array:
    """The [E, V] vocabulary projection: the tied embedding's transpose or lm_head."""
    return params["embedding"].T if cfg.tie_word_embeddings else params["lm_head"]


def chunk_size(t: int, chunk: int) -> int:
    """The largest divisor of t that is at most `chunk` (t itself when chunk <= 0)."""
    if chunk <= 0 or chunk >= t:
        return t
    return max(c for c in range(1, chunk + 1) if t % c == 0)


def masked_loss(hidden_BxTxE, w_ExV, batch, *, chunk: int, dtype) -> tuple[jax.Array, dict]:
    """Mean cross-entropy over action tokens (batch["loss_mask"]) and token accuracy on them,
    from hidden states and the output weight, `chunk` positions at a time."""
    b, t, e = hidden_BxTxE.shape
    c = chunk_size(t, chunk)
    n = t // c

    def chunks(a):  # [B, T, ...] -> [n, B, c, ...]
        return jnp.moveaxis(a.reshape(b, n, c, *a.shape[2:]), 1, 0)

    w = w_ExV.astype(dtype)

    @jax.checkpoint
    def one(carry, xs):
        h_BxCxE, tgt_BxC, mask_BxC = xs
        logits = jnp.dot(h_BxCxE.astype(dtype), w, preferred_element_type=jnp.float32)
        logits = constrain(logits, ("act_batch", "act_len", "act_vocab"))
        logz = jax.nn.logsumexp(logits, axis=-1)
        # Target logit as a masked sum over the vocabulary (no gather across vocab shards).
        vocab = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
        tgt_logit = jnp.sum(jnp.where(vocab == tgt_BxC[..., None], logits, 0.0), axis=-1)
        correct = jnp.argmax(logits, axis=-1) == tgt_BxC
        loss_sum, correct_sum = carry
        return (
            loss_sum + jnp.sum((logz - tgt_logit) * mask_BxC),
            correct_sum + jnp.sum(correct * mask_BxC),
        ), None

    mask = batch["loss_mask"].astype(jnp.float32)
    zero = jnp.zeros((), jnp.float32)
    (loss_sum, correct_sum), _ = jax.lax.scan(
        one, (zero, zero), (chunks(hidden_BxTxE), chunks(batch["targets"]), chunks(mask))
    )
    count = jnp.maximum(mask.sum(), 1.0)
    return loss_sum / count, {"token_acc": correct_sum / count, "action_tokens": mask.sum()}
