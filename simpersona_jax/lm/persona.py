"""Persona rows in the embedding table (and lm_head when untied).

- `extend_vocab`: grow the table to `new_vocab_size` (a multiple that shards evenly) and give the
  persona rows values drawn from the per-dimension mean/std of the existing rows.
- `init_projection` / `project_rows`: the alternative the paper names as future work: persona
  rows = codes_KxC @ W_CxE + b, a learned projection of the VQ-VAE code vectors (the rows are
  recomputed from W, b on every forward, and written into the table on export);
  `fit_projection` recovers W, b from exported rows so the next stage keeps training them.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simpersona_jax.lm.config import LMConfig, pad_to_multiple


def padded_vocab_size(cfg: LMConfig, n_tokens: int, multiple: int) -> int:
    return max(cfg.vocab_size, pad_to_multiple(n_tokens, multiple))


def _fill_rows(table_VxE, new_ids, n_real_rows: int, new_vocab_size: int, rng):
    v, e = table_VxE.shape
    if new_vocab_size < v:
        raise ValueError(f"new_vocab_size={new_vocab_size} is smaller than the table ({v} rows)")
    if n_real_rows > v:
        raise ValueError(f"n_real_rows={n_real_rows} > table rows {v}")
    ids = jnp.asarray(new_ids, jnp.int32)
    if len(new_ids) and (
        int(np.max(new_ids)) >= new_vocab_size or int(np.min(new_ids)) < n_real_rows
    ):
        raise ValueError(
            f"persona ids must lie in [{n_real_rows}, {new_vocab_size}); got "
            f"{int(np.min(new_ids))}..{int(np.max(new_ids))}"
        )
    real = table_VxE[:n_real_rows].astype(jnp.float32)
    mean, std = real.mean(0), real.std(0)
    grown = jnp.concatenate(
        [table_VxE, jnp.zeros((new_vocab_size - v, e), table_VxE.dtype)], axis=0
    )
    noise = jax.random.normal(rng, (len(new_ids), e), jnp.float32)
    return grown.at[ids].set((mean + std * noise).astype(table_VxE.dtype))


def extend_vocab(
    cfg: LMConfig,
    params: dict,
    new_ids: Sequence[int],
    n_real_rows: int,
    new_vocab_size: int,
    rng: jax.Array,
) -> tuple[LMConfig, dict]:
    """(cfg with vocab_size=new_vocab_size, params with persona rows set from mean/std statistics)."""
    k_emb, k_head = jax.random.split(rng)
    out = dict(params)
    out["embedding"] = _fill_rows(params["embedding"], new_ids, n_real_rows, new_vocab_size, k_emb)
    if not cfg.tie_word_embeddings:
        out["lm_head"] = _fill_rows(
            params["lm_head"].T, new_ids, n_real_rows, new_vocab_size, k_head
        ).T
    return cfg.replace(vocab_size=new_vocab_size), out


def init_projection(rng: jax.Array, codes_KxC: np.ndarray, table_VxE, n_real_rows: int) -> dict:
    """W, b such that the initial projected rows match the existing rows' scale.

    W ~ N(0, std^2 / (C * var(codes))) and b = per-dimension mean of the existing rows.
    """
    c = codes_KxC.shape[1]
    real = table_VxE[:n_real_rows].astype(jnp.float32)
    scale = real.std() / (jnp.sqrt(jnp.asarray(codes_KxC, jnp.float32).var() * c) + 1e-8)
    w = jax.random.normal(rng, (c, table_VxE.shape[1]), jnp.float32) * scale
    return {"kernel": w.astype(table_VxE.dtype), "bias": real.mean(0).astype(table_VxE.dtype)}


def fit_projection(codes_KxC: np.ndarray, rows_KxE) -> dict:
    """W, b minimising ||codes @ W + b - rows||^2 (least squares): continues a projection whose
    rows were written into an exported table (exact when they came from one, e.g. stage 1's
    export), so a later stage can keep training the projection instead of free rows."""
    codes = np.asarray(codes_KxC, np.float64)
    rows = np.asarray(rows_KxE, np.float64)
    a = np.concatenate([codes, np.ones((len(codes), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(a, rows, rcond=None)
    dt = np.asarray(rows_KxE).dtype
    return {"kernel": jnp.asarray(sol[:-1], dt), "bias": jnp.asarray(sol[-1], dt)}


def project_rows(table_VxE, proj: dict, codes_KxC, ids: Sequence[int]):
    rows = jnp.asarray(codes_KxC, proj["kernel"].dtype) @ proj["kernel"] + proj["bias"]
    return table_VxE.at[jnp.asarray(ids, jnp.int32)].set(rows.astype(table_VxE.dtype))
