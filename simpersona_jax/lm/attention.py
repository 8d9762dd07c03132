"""Grouped-query attention kernels of the LM in plain XLA ops (lm/model.py's Attention calls
`attend`), so a deviceless TPU compile's cost analysis still sees every byte and FLOP.

Layouts: queries [B, T, H, D], keys/values [B, KV, S, D] (the KV cache's layout), a boolean mask
[B, T, S]. Grouped query heads share their key/value head: scores are [B, KV, T, G, S] with the
contraction (D) and softmax (S) axes minor, so no big transposes.

- "xla" (default), self-attention of a chunk to itself (training, scoring, prefill): flash-style.
  At most `blocks` query blocks of at least CAUSAL_BLOCK rows read only the keys up to their end,
  so the masked upper triangle of blocks is never computed. The forward normalises after the
  value product (on [T, D], not on the [T, S] probabilities) and keeps only q, k, v, the output
  and the per-row log-sum-exp; the backward recomputes the probabilities from those and takes
  the softmax's row term from rowsum(dO * O), so no [T, S] tensor is stored between the passes.
  A row that sees no key at all (padding) outputs the mean of the values and passes no gradient.
- "xla", queries against a longer cache (decoding): one masked softmax block.
- "jax" / "cudnn": jax.nn.dot_product_attention (its default / the fused GPU kernel).

Scores are f32 unless LMConfig.attn_scores_f32 is False (q.k in the compute dtype; the
softmax stays f32).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # large finite negative: exp underflows to exactly 0, and no NaN on empty rows
CAUSAL_BLOCK = 64  # the fewest query rows of a causal block


def attend(q_BxTxHxD, k_BxKxSxD, v_BxKxSxD, mask_BxTxS, impl: str, scores_f32: bool, blocks: int):
    """Attention output [B, T, H, D] in the dtype of v."""
    b, t, h, d = q_BxTxHxD.shape
    kv = k_BxKxSxD.shape[1]
    if impl != "xla":
        k, v = k_BxKxSxD.transpose(0, 2, 1, 3), v_BxKxSxD.transpose(0, 2, 1, 3)
        return jax.nn.dot_product_attention(
            q_BxTxHxD,
            k,
            v,
            mask=mask_BxTxS[:, None],
            implementation=None if impl == "jax" else impl,
        )
    q = (q_BxTxHxD * jnp.asarray(d**-0.5, q_BxTxHxD.dtype)).reshape(b, t, kv, h // kv, d)
    sdt = jnp.dtype(jnp.float32 if scores_f32 else q.dtype)
    if k_BxKxSxD.shape[2] == t and t > CAUSAL_BLOCK:
        block = max(CAUSAL_BLOCK, -(-t // blocks))
        out = _flash(q, k_BxKxSxD, v_BxKxSxD, mask_BxTxS, block, sdt)
    else:
        out = _one_block(q, k_BxKxSxD, v_BxKxSxD, mask_BxTxS, sdt)
    return out.transpose(0, 2, 1, 3, 4).reshape(b, t, h, d)


def _scores(q_BxTxKxGxD, k_BxKxSxD, mask_BxTxS, sdt):
    s = jnp.einsum("btkgd,bksd->bktgs", q_BxTxKxGxD, k_BxKxSxD, preferred_element_type=sdt)
    return jnp.where(mask_BxTxS[:, None, :, None, :], s.astype(jnp.float32), NEG_INF)


def _one_block(q, k, v, mask, sdt):
    probs = jax.nn.softmax(_scores(q, k, mask, sdt), -1).astype(v.dtype)
    return jnp.einsum("bktgs,bksd->bktgd", probs, v)


def _blocks(t: int, block: int):
    """(lo, hi) of each query block; its keys are [0, hi)."""
    return [(lo, min(lo + block, t)) for lo in range(0, t, block)]


def _flash_fwd_rows(q, k, v, mask, block, sdt):
    """Output [B, KV, T, G, D] (dtype of v) and log-sum-exp [B, KV, T, G] (f32)."""
    outs, lses = [], []
    for lo, hi in _blocks(q.shape[1], block):
        s = _scores(q[:, lo:hi], k[:, :, :hi], mask[:, lo:hi, :hi], sdt)
        m = jnp.max(s, axis=-1, keepdims=True)
        p = jnp.exp(s - m)
        denom = jnp.sum(p, axis=-1, keepdims=True)
        o = jnp.einsum(
            "bktgs,bksd->bktgd", p.astype(v.dtype), v[:, :, :hi], preferred_element_type=jnp.float32
        )
        outs.append((o / denom).astype(v.dtype))
        lses.append((m + jnp.log(denom))[..., 0])
    return jnp.concatenate(outs, axis=2), jnp.concatenate(lses, axis=2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _flash(q, k, v, mask, block, sdt):
    return _flash_fwd_rows(q, k, v, mask, block, sdt)[0]


def _flash_fwd(q, k, v, mask, block, sdt):
    out, lse = _flash_fwd_rows(q, k, v, mask, block, sdt)
    return out, (q, k, v, mask, out, lse)


def _flash_bwd(block, sdt, res, g):
    q, k, v, mask, out, lse = res
    # softmax backward: dS = P * (dP - rowsum(P * dP)), and rowsum(P * dP) = rowsum(dO * O).
    row = jnp.sum(g.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True)
    s_len = k.shape[2]
    dq, dk, dv = [], [], []
    for lo, hi in _blocks(q.shape[1], block):
        qb, kb, vb, gb = q[:, lo:hi], k[:, :, :hi], v[:, :, :hi], g[:, :, lo:hi]
        mb = mask[:, lo:hi, :hi]
        # A row that sees no key (padding) passes no gradient (its f32 log-sum-exp is NEG_INF).
        p = jnp.where(
            mb[:, None, :, None, :],
            jnp.exp(_scores(qb, kb, mb, sdt) - lse[:, :, lo:hi, :, None]),
            0.0,
        )
        dp = jnp.einsum("bktgd,bksd->bktgs", gb, vb, preferred_element_type=jnp.float32)
        ds = (p * (dp - row[:, :, lo:hi])).astype(q.dtype)
        # Each query block's key/value gradients cover keys [0, hi): kept as parts and summed
        # once at the end (no full-length accumulator read and written per block).
        pad = ((0, 0), (0, 0), (0, s_len - hi), (0, 0))
        dv.append(
            jnp.pad(
                jnp.einsum(
                    "bktgs,bktgd->bksd", p.astype(v.dtype), gb, preferred_element_type=jnp.float32
                ),
                pad,
            )
        )
        dk.append(
            jnp.pad(
                jnp.einsum("bktgs,btkgd->bksd", ds, qb, preferred_element_type=jnp.float32), pad
            )
        )
        dq.append(jnp.einsum("bktgs,bksd->bktgd", ds, kb, preferred_element_type=jnp.float32))
    # (XLA:CPU cannot run this product with a bf16 x bf16 -> f32 [b,t,k,g,d] output: transpose after.)
    dq = jnp.concatenate(dq, axis=2).transpose(0, 2, 1, 3, 4).astype(q.dtype)
    return dq, sum(dk).astype(k.dtype), sum(dv).astype(v.dtype), None


_flash.defvjp(_flash_fwd, _flash_bwd)
