"""Aligned host buffers: a CPU device adopts them without copying."""

import jax
import numpy as np

from simpersona_jax.training import host


def test_aligned_buffers_are_adopted_in_place_and_unaligned_ones_copied_once():
    x = np.arange(6 * 5, dtype=np.float64).reshape(6, 5)[:, 1:]  # not contiguous
    ready = host.device_ready(x, np.float32)
    assert host.is_aligned(ready) and ready.dtype == np.float32
    np.testing.assert_array_equal(ready, x.astype(np.float32))
    assert host.device_ready(ready) is ready
    dev = jax.device_put(ready, jax.devices("cpu")[0])
    assert dev.unsafe_buffer_pointer() == ready.ctypes.data  # zero-copy on CPU
    rows = host.gather_rows(ready, np.array([5, 0, 2]))
    assert host.is_aligned(rows)
    np.testing.assert_array_equal(rows, ready[[5, 0, 2]])
    padded, n = host.padded_rows(ready, 4)
    assert n == 6 and padded.shape == (8, 4) and host.is_aligned(padded)
    np.testing.assert_array_equal(padded[:6], ready)
    assert not padded[6:].any()
