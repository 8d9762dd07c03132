"""Decoder-only LM of the Qwen3 / Qwen2 / Llama families in Flax Linen.

RMSNorm, RoPE (lm/rope.py), grouped-query attention, SwiGLU MLP, optional Qwen3 q/k RMSNorm,
q/k/v (Qwen2) / o / MLP biases, tied or untied embeddings. Layers are one `nn.scan` (params
stacked on a leading 'layers' axis; unrolled for shallow models, LMConfig.unroll_layers) with an
optional remat policy. Every parameter carries logical axis names (see lm/sharding.py for the
rules that map them onto the mesh). Attention kernels live in lm/attention.py.

One call serves training and cached decoding:
- training / scoring: `model.apply(params, tokens_BxT, positions_BxT, segment_ids_BxT)`;
  attention is causal within each segment (packing), segment 0 is padding.
- decoding: pass `cache=init_cache(...)`, `write_index` (the cache slot of the first token of
  this chunk, the same for every row) and `kv_valid_BxS` (False on left-padding slots); the call
  writes the chunk's keys/values at [write_index, write_index+T) and returns the new cache.
  A prefill (a Python int write_index of 0) attends to its own keys only; `last_only=True`
  computes the final layer for the last position only (its next-token logits are all a
  sampler needs; every position's keys/values are still cached).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from simpersona_jax.lm import attention, rope
from simpersona_jax.lm.config import LMConfig
from simpersona_jax.training import mesh as mesh_lib


def _dtype(name: str):
    return jnp.dtype(name)


def _param(module: nn.Module, name: str, shape, axes, init):
    cfg: LMConfig = module.cfg
    return module.param(
        name, nn.with_logical_partitioning(init, axes), shape, _dtype(cfg.param_dtype)
    )


def constrain(x, axes):
    """Sharding constraint from logical axis names, in effect only inside a mesh + rules context
    (training.mesh.activate); mesh axes that do not divide a dimension are dropped for it (e.g.
    the batch of 1 that init traces), so a constraint never fails on an awkward shape."""
    rules = nn.get_logical_axis_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if not rules or mesh.empty:
        return x
    spec = mesh_lib.fit_spec(nn.logical_to_mesh_axes(axes, rules), x.shape, mesh, "activation")
    return jax.lax.with_sharding_constraint(x, spec)


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
    def __call__(
        self, x_BxTxE, cos, sin, mask_BxTxS, cache_kv, layer, write_index, last_query=False
    ):
        """last_query: queries of the last position only (keys/values of all positions)."""
        cfg = self.cfg
        dt = _dtype(cfg.dtype)
        e, h, kv, d = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        init = nn.initializers.normal(0.02)
        wq = _param(self, "q_kernel", (e, h, d), ("embed", "heads", "head_dim"), init)
        wk = _param(self, "k_kernel", (e, kv, d), ("embed", "kv_heads", "head_dim"), init)
        wv = _param(self, "v_kernel", (e, kv, d), ("embed", "kv_heads", "head_dim"), init)
        wo = _param(self, "o_kernel", (h, d, e), ("heads", "head_dim", "embed"), init)
        x = x_BxTxE.astype(dt)
        q_rows = slice(-1, None) if last_query else slice(None)
        q = jnp.einsum("bte,ehd->bthd", x[:, q_rows], wq.astype(dt))
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
        q = rope.apply(q, cos[:, q_rows], sin[:, q_rows])
        k = rope.apply(k, cos, sin)
        q = constrain(q, ("act_batch", "act_len", "act_heads", None))

        # Attention layout: keys/values [B, KV, S, D] (the cache's layout, so decoding reads it as is).
        k = k.transpose(0, 2, 1, 3)
        v = v.transpose(0, 2, 1, 3)
        new_cache = None
        if cache_kv is not None:
            # The whole [L, B, KV, S, D] cache rides in the layer loop's carry: only this chunk's slots
            # are written (in place). A prefill (mask over the chunk's own t slots) attends to the
            # fresh keys; otherwise this layer's whole cache row is read.
            ck, cv = cache_kv
            at = (layer, 0, 0, write_index, 0)
            ck = jax.lax.dynamic_update_slice(ck, k[None].astype(ck.dtype), at)
            cv = jax.lax.dynamic_update_slice(cv, v[None].astype(cv.dtype), at)
            new_cache = (ck, cv)
            if mask_BxTxS.shape[-1] != mask_BxTxS.shape[1]:
                k = jax.lax.dynamic_index_in_dim(ck, layer, keepdims=False).astype(dt)
                v = jax.lax.dynamic_index_in_dim(cv, layer, keepdims=False).astype(dt)

        out = attention.attend(
            q, k, v, mask_BxTxS[:, q_rows], cfg.attention_impl, cfg.attn_scores_f32, cfg.attn_blocks
        )
        y = jnp.einsum("bthd,hde->bte", out.astype(dt), wo.astype(dt))
        if cfg.o_bias:
            y = y + _param(self, "o_bias", (e,), ("embed",), nn.initializers.zeros).astype(dt)
        return y, new_cache


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
        hdn = constrain(jax.nn.silu(g) * u, ("act_batch", "act_len", "act_mlp"))
        y = hdn @ wd.astype(dt)
        if cfg.mlp_bias:
            y = y + _param(self, "down_bias", (e,), ("embed",), nn.initializers.zeros).astype(dt)
        return y


class Block(nn.Module):
    cfg: LMConfig

    def setup(self):
        cfg = self.cfg
        self.input_norm = RMSNorm(cfg, cfg.hidden_size)
        self.attn = Attention(cfg)
        self.post_attn_norm = RMSNorm(cfg, cfg.hidden_size)
        self.mlp = MLP(cfg)

    def __call__(self, carry, cos, sin, mask, write_index, last_only=False):
        x, cache_kv, layer = carry
        if last_only:
            # Only the last position's output of the final layer is used (next-token logits after a
            # prefill); its keys/values are still written for every position.
            x, new_cache = nn.cond(
                layer == self.cfg.num_layers - 1,
                Block._last_row,
                Block._rows,
                self,
                x,
                cos,
                sin,
                mask,
                cache_kv,
                layer,
                write_index,
            )
        else:
            x, new_cache = self._rows(x, cos, sin, mask, cache_kv, layer, write_index)
        return (x, new_cache, layer + 1), None

    def _rows(self, x, cos, sin, mask, cache_kv, layer, write_index):
        a, new_cache = self.attn(self.input_norm(x), cos, sin, mask, cache_kv, layer, write_index)
        x = x + a
        x = x + self.mlp(self.post_attn_norm(x))
        return constrain(x, ("act_batch", "act_len", "act_embed")), new_cache

    def _last_row(self, x, cos, sin, mask, cache_kv, layer, write_index):
        a, new_cache = self.attn(
            self.input_norm(x), cos, sin, mask, cache_kv, layer, write_index, last_query=True
        )
        y = x[:, -1:] + a
        y = y + self.mlp(self.post_attn_norm(y))
        return jax.lax.dynamic_update_slice_in_dim(x, y, x.shape[1] - 1, axis=1), new_cache


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
        self.embedding = _param(
            self,
            "embedding",
            (cfg.vocab_size, cfg.hidden_size),
            ("vocab", "embed"),
            nn.initializers.normal(0.02),
        )
        block = Block
        if cfg.remat_policy != "none":
            # static_argnums counts self: 6 is Block.__call__'s last_only (a Python bool).
            block = nn.remat(
                Block, policy=_POLICIES[cfg.remat_policy], prevent_cse=False, static_argnums=(6,)
            )
        self.layers = nn.scan(
            block,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
            length=cfg.num_layers,
            unroll=cfg.num_layers if cfg.unroll_layers else 1,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )(cfg, name="layers")
        self.final_norm = RMSNorm(cfg, cfg.hidden_size, name="final_norm")
        if not cfg.tie_word_embeddings:
            self.lm_head = _param(
                self,
                "lm_head",
                (cfg.hidden_size, cfg.vocab_size),
                ("embed", "vocab"),
                nn.initializers.normal(0.02),
            )

    def __call__(
        self,
        tokens_BxT,
        positions_BxT=None,
        segment_ids_BxT=None,
        *,
        cache=None,
        write_index=0,
        kv_valid_BxS=None,
        return_hidden=False,
        last_only=False,
    ):
        hidden, new_cache = self.hidden_states(
            tokens_BxT,
            positions_BxT,
            segment_ids_BxT,
            cache=cache,
            write_index=write_index,
            kv_valid_BxS=kv_valid_BxS,
            last_only=last_only,
        )
        if last_only:
            hidden = hidden[:, -1:]
        if return_hidden:
            return hidden, new_cache
        return self.logits(hidden), new_cache

    def hidden_states(
        self,
        tokens_BxT,
        positions_BxT=None,
        segment_ids_BxT=None,
        *,
        cache=None,
        write_index=0,
        kv_valid_BxS=None,
        last_only=False,
    ):
        """Final-norm hidden states [B, T, E]; with last_only, only position T-1 is valid."""
        cfg = self.cfg
        b, t = tokens_BxT.shape
        if positions_BxT is None:
            positions_BxT = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        x = jnp.take(self.embedding, tokens_BxT, axis=0).astype(_dtype(cfg.dtype))
        x = constrain(x, ("act_batch", "act_len", "act_embed"))
        q_idx = jnp.arange(t)
        if cache is None:
            cos, sin = rope.cos_sin(cfg, positions_BxT, t)
            mask = q_idx[None, :, None] >= q_idx[None, None, :]
            if segment_ids_BxT is not None:
                seg = segment_ids_BxT
                mask = mask & (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] != 0)
            layer_cache = None
        else:
            s = cache["k"].shape[3]
            cos, sin = rope.cos_sin(cfg, positions_BxT, s)
            prefill = (
                isinstance(write_index, int) and write_index == 0
            )  # attends to its own t slots
            k_idx = jnp.arange(t if prefill else s)
            mask = k_idx[None, None, :] <= (write_index + q_idx)[None, :, None]
            if kv_valid_BxS is not None:
                mask = mask & kv_valid_BxS[:, None, : len(k_idx)]
            layer_cache = (cache["k"], cache["v"])
        mask = jnp.broadcast_to(mask, (b, t, mask.shape[-1]))
        (x, new_layer_cache, _), _ = self.layers(
            (x, layer_cache, jnp.int32(0)), cos, sin, mask, write_index, last_only
        )
        x = self.final_norm(x)
        new_cache = None if cache is None else {"k": new_layer_cache[0], "v": new_layer_cache[1]}
        return x, new_cache

    def logits(self, hidden_BxTxE):
        dt = _dtype(self.cfg.dtype)
        w = self.embedding.T if self.cfg.tie_word_embeddings else self.lm_head
        logits = jnp.dot(hidden_BxTxE.astype(dt), w.astype(dt), preferred_element_type=jnp.float32)
        return constrain(logits, ("act_batch", "act_len", "act_vocab"))


def init_cache(cfg: LMConfig, batch: int, length: int, dtype: Any = None) -> dict:
    """Zeroed KV cache {'k','v': [L, B, KV, S, D]} in the compute dtype."""
    shape = (cfg.num_layers, batch, cfg.num_kv_heads, length, cfg.head_dim)
    dt = _dtype(dtype or cfg.dtype)
    return {"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt)}


def init_params(cfg: LMConfig, rng: jax.Array, batch: int = 1, length: int = 8):
    """Boxed (nn.Partitioned) params for `cfg`; use nn.unbox / nn.get_partition_spec on them."""
    tokens = jnp.zeros((batch, length), jnp.int32)
    return Decoder(cfg).init(rng, tokens)["params"]
