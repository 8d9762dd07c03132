"""Decoder-only LM of the Qwen3 / Qwen2 / Llama families in Flax Linen.

RMSNorm, RoPE (lm/rope.py), grouped-query attention, SwiGLU MLP, optional Qwen3 q/k RMSNorm,
q/k/v (Qwen2) / o / MLP biases, tied or untied embeddings. Layers are one `nn.scan` (params
stacked on a leading 'layers' axis) with an optional remat policy. Every parameter carries
logical axis names (see lm/sharding.py for the rules that map them onto the mesh).

One call serves training and cached decoding:
- training / scoring: `model.apply(params, tokens_BxT, positions_BxT, segment_ids_BxT)`;
  attention is causal within each segment (packing), segment 0 is padding.
- decoding: pass `cache=init_cache(...)`, `write_index` (the cache slot of the first token of
  this chunk, the same for every row) and `kv_valid_BxS` (False on left-padding slots); the call
  writes the chunk's keys/values at [write_index, write_index+T) and returns the new cache.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from simpersona_jax.lm import rope
from simpersona_jax.lm.config import LMConfig

NEG_INF = -1e30  # large finite negative: exp underflows to exactly 0, and no NaN on empty rows


def _dtype(name: str):
    return jnp.dtype(name)


def _param(module: nn.Module, name: str, shape, axes, init):
    cfg: LMConfig = module.cfg
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, _dtype(cfg.param_dtype))


def _constrain(x, axes):
    return nn.with_logical_constraint(x, axes)


class RMSNorm(nn.Module):
    cfg: LMConfig
    dim: int
    axis_name: str = "norm"

    @nn.compact
    def __call__(self, x):
        scale = _param(self, "scale", (self.dim,), (self.axis_name,), nn.initializers.ones)
        x32 = x.astype(jnp.float32)
        var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        y = x32 * jax.lax.rsqrt(var + self.cfg.rms_norm_eps)
        # HF casts to the input dtype before multiplying by the weight.
        return scale.astype(x.dtype) * y.astype(x.dtype)


class Attention(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, x_BxTxE, cos, sin, mask_BxTxS, cache_kv, layer, write_index):
        cfg = self.cfg
        dt = _dtype(cfg.dtype)
        e, h, kv, d = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        init = nn.initializers.normal(0.02)
        wq = _param(self, "q_kernel", (e, h, d), ("embed", "heads", "head_dim"), init)
        wk = _param(self, "k_kernel", (e, kv, d), ("embed", "kv_heads", "head_dim"), init)
        wv = _param(self, "v_kernel", (e, kv, d), ("embed", "kv_heads", "head_dim"), init)
        wo = _param(self, "o_kernel", (h, d, e), ("heads", "head_dim", "embed"), init)
        x = x_BxTxE.astype(dt)
        q = jnp.einsum("bte,ehd->bthd", x, wq.astype(dt))
        k = jnp.einsum("bte,ehd->bthd", x, wk.astype(dt))
        v = jnp.einsum("bte,ehd->bthd", x, wv.astype(dt))
        if cfg.qkv_bias:
            zeros = nn.initializers.zeros
            q = q + _param(self, "q_bias", (h, d), ("heads", "head_dim"), zeros).astype(dt)
            k = k + _param(self, "k_bias", (kv, d), ("kv_heads", "head_dim"), zeros).astype(dt)
            v = v + _param(self, "v_bias", (kv, d), ("kv_heads", "head_dim"), zeros).astype(dt)
        if cfg.qk_norm:
            q = RMSNorm(cfg, d, name="q_norm")(q)
            k = RMSNorm(cfg, d, name="k_norm")(k)
        q = rope.apply(q, cos, sin)
        k = rope.apply(k, cos, sin)
        q = _constrain(q, ("act_batch", "act_len", "act_heads", None))

        new_cache = None
        if cache_kv is not None:
            # The whole [L, B, S, KV, D] cache rides in the scan carry: only this chunk's slots are
            # written (in place), then this layer's keys/values are read.
            ck, cv = cache_kv
            at = (layer, 0, write_index, 0, 0)
            ck = jax.lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), at)
            cv = jax.lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), at)
            new_cache = (ck, cv)
            k = jax.lax.dynamic_index_in_dim(ck, layer, keepdims=False).astype(dt)
            v = jax.lax.dynamic_index_in_dim(cv, layer, keepdims=False).astype(dt)

        out = _attend(q, k, v, mask_BxTxS, cfg)
        y = jnp.einsum("bthd,hde->bte", out.astype(dt), wo.astype(dt))
        if cfg.o_bias:
            y = y + _param(self, "o_bias", (e,), ("embed",), nn.initializers.zeros).astype(dt)
        return y, new_cache


def _attend(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask_BxTxS, cfg: LMConfig):
    b, t, h, d = q_BxTxHxD.shape
    kv = k_BxSxKxD.shape[2]
    if cfg.attention_impl != "xla":  # "jax": jax.nn.dot_product_attention's default; "cudnn": fused GPU kernel
        impl = None if cfg.attention_impl == "jax" else cfg.attention_impl
        return jax.nn.dot_product_attention(
            q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask=mask_BxTxS[:, None], implementation=impl)
    q = q_BxTxHxD.reshape(b, t, kv, h // kv, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", q, k_BxSxKxD, preferred_element_type=jnp.float32)
    logits = logits * (d**-0.5)
    logits = jnp.where(mask_BxTxS[:, None, None], logits, NEG_INF)
    probs = jax.nn.softmax(logits, axis=-1).astype(v_BxSxKxD.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v_BxSxKxD)
    return out.reshape(b, t, h, d)


class MLP(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, x_BxTxE):
        cfg = self.cfg
        dt = _dtype(cfg.dtype)
        e, f = cfg.hidden_size, cfg.intermediate_size
        init = nn.initializers.normal(0.02)
        wg = _param(self, "gate_kernel", (e, f), ("embed", "mlp"), init)
        wu = _param(self, "up_kernel", (e, f), ("embed", "mlp"), init)
        wd = _param(self, "down_kernel", (f, e), ("mlp", "embed"), init)
        x = x_BxTxE.astype(dt)
        g = x @ wg.astype(dt)
        u = x @ wu.astype(dt)
        if cfg.mlp_bias:
            zeros = nn.initializers.zeros
            g = g + _param(self, "gate_bias", (f,), ("mlp",), zeros).astype(dt)
            u = u + _param(self, "up_bias", (f,), ("mlp",), zeros).astype(dt)
        hdn = _constrain(jax.nn.silu(g) * u, ("act_batch", "act_len", "act_mlp"))
        y = hdn @ wd.astype(dt)
        if cfg.mlp_bias:
            y = y + _param(self, "down_bias", (e,), ("embed",), nn.initializers.zeros).astype(dt)
        return y


class Block(nn.Module):
    cfg: LMConfig

    @nn.compact
    def __call__(self, carry, cos, sin, mask, write_index):
        x, cache_kv, layer = carry
        cfg = self.cfg
        h = RMSNorm(cfg, cfg.hidden_size, name="input_norm")(x)
        a, new_cache = Attention(cfg, name="attn")(h, cos, sin, mask, cache_kv, layer, write_index)
        x = x + a
        h = RMSNorm(cfg, cfg.hidden_size, name="post_attn_norm")(x)
        x = x + MLP(cfg, name="mlp")(h)
        x = _constrain(x, ("act_batch", "act_len", "act_embed"))
        return (x, new_cache, layer + 1), None


_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Decoder(nn.Module):
    """The LM. See the module docstring for the two call modes."""

    cfg: LMConfig

    def setup(self):
        cfg = self.cfg
        self.embedding = _param(self, "embedding", (cfg.vocab_size, cfg.hidden_size), ("vocab", "embed"),
                                nn.initializers.normal(0.02))
        block = Block
        if cfg.remat_policy != "none":
            block = nn.remat(Block, policy=_POLICIES[cfg.remat_policy], prevent_cse=False)
        self.layers = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
            length=cfg.num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(cfg, name="layers")
        self.final_norm = RMSNorm(cfg, cfg.hidden_size, name="final_norm")
        if not cfg.tie_word_embeddings:
            self.lm_head = _param(self, "lm_head", (cfg.hidden_size, cfg.vocab_size), ("embed", "vocab"),
                                  nn.initializers.normal(0.02))

    def __call__(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, *, cache=None, write_index=0,
                 kv_valid_BxS=None, return_hidden=False):
        hidden, new_cache = self.hidden_states(tokens_BxT, positions_BxT, segment_ids_BxT, cache=cache,
                                               write_index=write_index, kv_valid_BxS=kv_valid_BxS)
        if return_hidden:
            return hidden, new_cache
        return self.logits(hidden), new_cache

    def hidden_states(self, tokens_BxT, positions_BxT=None, segment_ids_BxT=None, *, cache=None, write_index=0,
                      kv_valid_BxS=None):
        cfg = self.cfg
        b, t = tokens_BxT.shape
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        x = jnp.take(self.embedding, tokens_BxT, axis=0).astype(_dtype(cfg.dtype))
        x = _constrain(x, ("act_batch", "act_len", "act_embed"))
        if cache is None:
            cos, sin = rope.cos_sin(cfg, positions_BxT, t)
            q_idx = jnp.arange(t)
            mask = q_idx[None, :, None] >= q_idx[None, None, :]
            if segment_ids_BxT is not None:
                seg = segment_ids_BxT
                mask = mask & (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] != 0)
            mask = jnp.broadcast_to(mask, (b, t, t))
            layer_cache = None
        else:
            s = cache["k"].shape[2]
            cos, sin = rope.cos_sin(cfg, positions_BxT, s)
            q_idx = write_index + jnp.arange(t)
            k_idx = jnp.arange(s)
            mask = k_idx[None, None, :] <= q_idx[None, :, None]
            if kv_valid_BxS is not None:
                mask = mask & kv_valid_BxS[:, None, :]
            mask = jnp.broadcast_to(mask, (b, t, s))
            layer_cache = (cache["k"], cache["v"])
        (x, new_layer_cache, _), _ = self.layers((x, layer_cache, jnp.int32(0)), cos, sin, mask, write_index)
        x = self.final_norm(x)
        new_cache = None if cache is None else {"k": new_layer_cache[0], "v": new_layer_cache[1]}
        return x, new_cache

    def logits(self, hidden_BxTxE):
        dt = _dtype(self.cfg.dtype)
        w = self.embedding.T if self.cfg.tie_word_embeddings else self.lm_head
        logits = jnp.dot(hidden_BxTxE.astype(dt), w.astype(dt), preferred_element_type=jnp.float32)
        return _constrain(logits, ("act_batch", "act_len", "act_vocab"))


def init_cache(cfg: LMConfig, batch: int, length: int, dtype: Any = None) -> dict:
    """Zeroed KV cache {'k','v': [L, B, S, KV, D]} in the compute dtype."""
    shape = (cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.head_dim)
    dt = _dtype(dtype or cfg.dtype)
    return {"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt)}


def init_params(cfg: LMConfig, rng: jax.Array, batch: int = 1, length: int = 8):
    """Boxed (nn.Partitioned) params for `cfg`; use nn.unbox / nn.get_partition_spec on them."""
    tokens = jnp.zeros((batch, length), jnp.int32)
    return Decoder(cfg).init(rng, tokens)["params"]
