"""Rotary position embeddings with the scaling variants of the Qwen / Llama families.

`inv_freq(cfg, seq_len)` reproduces transformers' `modeling_rope_utils` for rope_type
default / linear / dynamic (NTK) / llama3 / yarn, returning (inv_freq[D/2], attention_factor).
Tables are computed in numpy float32 at trace time (they depend only on the static config).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from simpersona_jax.lm.config import LMConfig


def inv_freq(cfg: LMConfig, seq_len: int | None = None) -> tuple[np.ndarray, float]:
    """Inverse frequencies for head_dim of `cfg` and the cos/sin scale ("attention_factor").

    seq_len only matters for rope_type="dynamic": like transformers, the base grows once the
    sequence is longer than max_position_embeddings (here: the static length of the call).
    """
    p = dict(cfg.rope_scaling)
    kind = p.get("rope_type", "default")
    dim, base = cfg.head_dim, cfg.rope_theta
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / dim
    attention_factor = 1.0
    if kind == "default":
        f = 1.0 / (base**exponents)
    elif kind == "linear":
        f = 1.0 / (base**exponents) / p["factor"]
    elif kind == "dynamic":
        max_pos = cfg.max_position_embeddings
        seq = max(seq_len or max_pos, max_pos)
        factor = p["factor"]
        base = base * ((factor * seq / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        f = 1.0 / (base**exponents)
    elif kind == "llama3":
        f = 1.0 / (base**exponents)
        factor, lo, hi = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
        old = p["original_max_position_embeddings"]
        lo_wavelen, hi_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / f
        f_llama = np.where(wavelen > lo_wavelen, f / factor, f)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * f_llama / factor + smooth * f_llama
        medium = ~(wavelen < hi_wavelen) & ~(wavelen > lo_wavelen)
        f = np.where(medium, smoothed, f_llama)
    elif kind == "yarn":
        factor = p.get("factor")
        old = p["original_max_position_embeddings"]
        if factor is None:
            factor = cfg.max_position_embeddings / old

        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        attention_factor = p.get("attention_factor")
        if attention_factor is None:
            if p.get("mscale") and p.get("mscale_all_dim"):
                attention_factor = mscale(factor, p["mscale"]) / mscale(factor, p["mscale_all_dim"])
            else:
                attention_factor = mscale(factor)
        beta_fast, beta_slow = p.get("beta_fast") or 32, p.get("beta_slow") or 1

        def correction_dim(rot):
            return (dim * math.log(old / (rot * 2 * math.pi))) / (2 * math.log(base))

        low, high = correction_dim(beta_fast), correction_dim(beta_slow)
        if p.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float32) - low) / (high - low), 0, 1)
        pos_freqs = base ** (np.arange(0, dim, 2).astype(np.float32) / dim)
        extrap = 1 - ramp
        f = (1.0 / (factor * pos_freqs)) * (1 - extrap) + (1.0 / pos_freqs) * extrap
    else:  # guarded by LMConfig.__post_init__
        raise ValueError(f"unknown rope_type {kind!r}")
    return np.asarray(f, np.float32), float(attention_factor)


def cos_sin(cfg: LMConfig, positions_BxT: jnp.ndarray, seq_len: int | None = None):
    """cos, sin tables [B, T, D] (HF layout: the half-dim frequencies repeated twice)."""
    f, scale = inv_freq(cfg, seq_len)
    angles = positions_BxT.astype(jnp.float32)[..., None] * jnp.asarray(f)
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles) * scale, jnp.sin(angles) * scale


def apply(x_BxTxHxD: jnp.ndarray, cos_BxTxD: jnp.ndarray, sin_BxTxD: jnp.ndarray) -> jnp.ndarray:
    """x * cos + rotate_half(x) * sin, computed in float32, returned in x's dtype."""
    x = x_BxTxHxD.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    out = x * cos_BxTxD[:, :, None, :] + rotated * sin_BxTxD[:, :, None, :]
    return out.astype(x_BxTxHxD.dtype)
