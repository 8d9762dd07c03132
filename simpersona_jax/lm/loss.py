"""The SFT loss from final hidden states, in sequence chunks: full [B, T, V] logits never exist.

The vocabulary projection, log-sum-exp, target logit and argmax run one chunk of positions at a
time inside a `lax.scan`. Each chunk's cross-entropy has its own VJP: the forward keeps only the
chunk's log-sum-exp, the backward recomputes the chunk's logits once and forms
(softmax - one-hot) from them and that log-sum-exp (no second log-sum-exp pass, no stored
[B, chunk, V] logits). Logits are constrained to
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

    def one(carry, xs):
        h_BxCxE, tgt_BxC, mask_BxC = xs
        loss, correct = _chunk_loss(h_BxCxE.astype(dtype), w, tgt_BxC, mask_BxC)
        return (carry[0] + loss, carry[1] + correct), None

    mask = batch["loss_mask"].astype(jnp.float32)
    zero = jnp.zeros((), jnp.float32)
    (loss_sum, correct_sum), _ = jax.lax.scan(
        one, (zero, zero), (chunks(hidden_BxTxE), chunks(batch["targets"]), chunks(mask))
    )
    count = jnp.maximum(mask.sum(), 1.0)
    return loss_sum / count, {"token_acc": correct_sum / count, "action_tokens": mask.sum()}


def _chunk_logits(h_BxCxE, w_ExV):
    logits = jnp.dot(h_BxCxE, w_ExV, preferred_element_type=jnp.float32)
    return constrain(logits, ("act_batch", "act_len", "act_vocab"))


def _chunk_fwd(h_BxCxE, w_ExV, tgt_BxC, mask_BxC):
    logits = _chunk_logits(h_BxCxE, w_ExV)
    logz = jax.nn.logsumexp(logits, axis=-1)
    # Target logit as a masked sum over the vocabulary (no gather across vocab shards).
    vocab = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
    tgt_logit = jnp.sum(jnp.where(vocab == tgt_BxC[..., None], logits, 0.0), axis=-1)
    correct = jnp.argmax(logits, axis=-1) == tgt_BxC
    out = (jnp.sum((logz - tgt_logit) * mask_BxC), jnp.sum(correct * mask_BxC))
    return out, (h_BxCxE, w_ExV, tgt_BxC, mask_BxC, logz)


@jax.custom_vjp
def _chunk_loss(h_BxCxE, w_ExV, tgt_BxC, mask_BxC):
    """(sum of masked cross-entropy, sum of masked argmax hits) of one chunk."""
    return _chunk_fwd(h_BxCxE, w_ExV, tgt_BxC, mask_BxC)[0]


def _chunk_bwd(res, g):
    h, w, tgt, mask, logz = res
    logits = _chunk_logits(h, w)
    vocab = jax.lax.broadcasted_iota(jnp.int32, logits.shape, 2)
    onehot = (vocab == tgt[..., None]).astype(jnp.float32)
    scale = (g[0] * mask)[..., None]
    dlogits = ((jnp.exp(logits - logz[..., None]) - onehot) * scale).astype(h.dtype)
    dlogits = constrain(dlogits, ("act_batch", "act_len", "act_vocab"))
    dh = jnp.einsum("bcv,ev->bce", dlogits, w, preferred_element_type=jnp.float32)
    dw = jnp.einsum("bce,bcv->ev", h, dlogits, preferred_element_type=jnp.float32)
    return dh.astype(h.dtype), dw.astype(w.dtype), None, None


_chunk_loss.defvjp(_chunk_fwd, _chunk_bwd)
