"""ordered_map: input order, bounded in flight, errors propagate."""

import threading
import time

import pytest

from simpersona_jax.data.parallel import ordered_map


def test_results_in_input_order_whatever_finishes_first():
    def slow_first(i):
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i * i

    assert list(ordered_map(slow_first, range(20), workers=3)) == [i * i for i in range(20)]


def test_at_most_workers_plus_one_started_ahead_of_the_consumer():
    started, lock = [], threading.Lock()

    def record(i):
        with lock:
            started.append(i)
        return i

    gen = ordered_map(record, range(100), workers=2)
    assert next(gen) == 0
    time.sleep(0.05)
    assert len(started) <= 3  # 0 is consumed; at most workers + 1 submitted so far
    assert list(gen) == list(range(1, 100))


def test_an_error_in_a_partition_is_raised_to_the_caller():
    def fail_on_5(i):
        if i == 5:
            raise ValueError("partition 5 is bad")
        return i

    with pytest.raises(ValueError, match="partition 5"):
        list(ordered_map(fail_on_5, range(10), workers=2))


def test_one_worker_is_plain_map():
    assert list(ordered_map(str, [1, 2], workers=1)) == ["1", "2"]
