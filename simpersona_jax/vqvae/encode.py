"""Batched, jitted assignment of buyers to codes.

Each batch is padded to a multiple of a fixed row count (few compiled shapes) and encoded in one
pass, its rows split over the devices; a buyer's code does not depend on the batch it arrived in
(tests/vqvae/test_encode.py checks bit-identical codes and distances across batch sizes).
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from simpersona_jax.training import host
from simpersona_jax.vqvae import codebook as cb_lib
from simpersona_jax.vqvae.model import VQVAE

ROWS_PER_DEVICE = 8


class Assigner:
    """f(params, embed_KxD, x_NxI) -> (codes [N] int32, distance to code [N]), jitted; N must be
    a multiple of the device count (`padded_size(n)` gives the rows to pad a batch of n to).

    One pass over all rows (no per-chunk loop, which ran every chunk on every device): the rows
    are split over `devices` (default: this process's) on a 'data' mesh axis, inputs and outputs
    stay sharded, parameters and codebook are replicated. `lower(...)` lowers it for abstract
    arguments (deviceless sizing, bench/compile_tpu.py).
    """

    def __init__(self, model: VQVAE, *, cosine: bool, chunk: int, devices=None):
        devices = list(jax.local_devices() if devices is None else devices)
        self.mesh = Mesh(np.asarray(devices), ("data",))
        self.rows = NamedSharding(self.mesh, P("data"))
        self.replicated = NamedSharding(self.mesh, P())
        self.chunk, self.num_devices = int(chunk), len(devices)
        self._placed = None  # (params, embed, their replicated copies): see __call__

        def assign(params, embed, x_NxI):
            z = model.apply({"params": params}, x_NxI, method=VQVAE.encode)
            return cb_lib.nearest_with_distance(z, embed, cosine=cosine)

        self.fn = jax.jit(
            assign,
            in_shardings=(self.replicated, self.replicated, self.rows),
            out_shardings=(self.rows, self.rows),
        )

    def __call__(self, params, embed, x_NxI):
        # Parameters are placed once per (params, embed) pair, not once per batch (a
        # re-placement of 20 already placed arrays costs ~0.4 ms: more than a small batch).
        if self._placed is None or self._placed[0] is not params or self._placed[1] is not embed:
            self._placed = (params, embed, jax.device_put((params, embed), self.replicated))
        placed_params, placed_embed = self._placed[2]
        with jax.set_mesh(self.mesh):  # its own mesh, also inside the train loop's context
            return self.fn(placed_params, placed_embed, jax.device_put(x_NxI, self.rows))

    def padded_size(self, n: int) -> int:
        """Rows a batch of n is padded to: the next power of two up to `chunk`, else the next
        multiple of `chunk` (few compiled shapes, at most 2x padding below a chunk, not a whole
        chunk for a small batch), and at least ROWS_PER_DEVICE rows on each device (matrix-vector
        paths round differently: distances stay bit-identical across batch sizes)."""
        pow2 = 1 << max(n - 1, 0).bit_length()
        step = math.lcm(min(self.chunk, pow2), self.num_devices * ROWS_PER_DEVICE)
        return -(-n // step) * step

    def lower(self, params, embed, x_NxI):
        return self.fn.lower(params, embed, x_NxI)


def make_assign_fn(model: VQVAE, *, cosine: bool, chunk: int, devices=None) -> Assigner:
    return Assigner(model, cosine=cosine, chunk=chunk, devices=devices)


def assign_batches(
    assign_fn, params, embed, batches: Iterable[np.ndarray], *, chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Streams (codes, distances) per input batch; pads each batch to the assigner's
    `padded_size` (a function without one: to a multiple of `chunk`).

    Dispatches batch i+1 before fetching batch i, so host reading overlaps device compute.
    """
    pending = None
    for x in batches:
        size = getattr(assign_fn, "padded_size", lambda n: -(-n // chunk) * chunk)(len(x))
        x, n = host.padded_rows(x, size)  # aligned: a CPU device reads it in place
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
