"""Host (numpy) buffers that a CPU device can use in place.

XLA:CPU adopts a C-contiguous numpy buffer without copying when it starts on a 64-byte boundary,
and otherwise copies it through a slow path (measured: 3.7 ms for an 8192 x 403 float32 batch vs
0.05 ms aligned, and 1 ms for numpy to copy it into an aligned buffer). numpy's own allocations
of large arrays start 16 bytes past a page boundary, so batches built here are over-allocated
and sliced to the boundary. On GPU/TPU the alignment is harmless.
"""

from __future__ import annotations

import numpy as np

ALIGN = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def is_aligned(x: np.ndarray) -> bool:
    return x.flags.c_contiguous and x.ctypes.data % ALIGN == 0


def device_ready(x, dtype=None) -> np.ndarray:
    """x as a C-contiguous, 64-byte aligned array of `dtype` (x itself when it already is)."""
    x = np.asarray(x)
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if x.dtype == dtype and is_aligned(x):
        return x
    out = aligned_empty(x.shape, dtype)
    np.copyto(out, x, casting="unsafe")
    return out


def gather_rows(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[idx] along axis 0, written straight into an aligned array (idx must be in range)."""
    out = aligned_empty((len(idx),) + x.shape[1:], x.dtype)
    return np.take(x, idx, axis=0, out=out, mode="clip")  # mode="raise" would buffer `out`


def padded_rows(x: np.ndarray, multiple: int, dtype=np.float32) -> tuple[np.ndarray, int]:
    """(x padded with zero rows to a multiple of `multiple`, aligned; the original row count)."""
    n = len(x)
    pad = (-n) % multiple
    if not pad:
        return device_ready(x, dtype), n
    out = aligned_empty((n + pad,) + tuple(x.shape[1:]), dtype)
    out[:n] = x
    out[n:] = 0
    return out, n
