"""Batched, jitted assignment of buyers to codes.

Rows are processed in chunks of a fixed size inside one compiled function, so a buyer's code
never depends on the batch it arrived in (same kernel, same shapes, bit-identical results).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import jax
import numpy as np

from simpersona_jax.training import host
from simpersona_jax.vqvae import codebook as cb_lib
from simpersona_jax.vqvae.model import VQVAE


def make_assign_fn(model: VQVAE, *, cosine: bool, chunk: int):
    """jit f(params, embed_KxD, x_NxI) -> (codes [N] int32, distance to code [N]); N % chunk == 0."""

    def one(params, embed, x_CxI):
        z = model.apply({"params": params}, x_CxI, method=VQVAE.encode)
        return cb_lib.nearest_with_distance(z, embed, cosine=cosine)

    @jax.jit
    def assign(params, embed, x_NxI):
        n = x_NxI.shape[0]
        chunks = x_NxI.reshape(n // chunk, chunk, x_NxI.shape[1])
        codes, dist = jax.lax.map(lambda c: one(params, embed, c), chunks)
        return codes.reshape(n), dist.reshape(n)

    return assign


def assign_batches(
    assign_fn, params, embed, batches: Iterable[np.ndarray], *, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Streams (codes, distances) per input batch; pads each batch to a multiple of `chunk`.

    Dispatches batch i+1 before fetching batch i, so host reading overlaps device compute.
    """
    pending = None
    for x in batches:
        x, n = host.padded_rows(x, chunk)  # aligned: a CPU device reads it in place
        out = assign_fn(params, embed, x)
        if pending is not None:
            yield tuple(np.asarray(a)[: pending[1]] for a in pending[0])
        pending = (out, n)
    if pending is not None:
        yield tuple(np.asarray(a)[: pending[1]] for a in pending[0])


def assign_array(
    assign_fn, params, embed, x_NxI: np.ndarray, *, batch_size: int, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distances for a whole in-memory matrix."""
    parts = list(
        assign_batches(
            assign_fn,
            params,
            embed,
            (x_NxI[i : i + batch_size] for i in range(0, len(x_NxI), batch_size)),
            chunk=chunk,
        )
    )
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
