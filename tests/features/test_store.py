"""Buyer vectors on disk: build, standardisation on training stores, Grain source and loader."""

import numpy as np
import polars as pl
import pytest

from simpersona_jax.features import store
from simpersona_jax.features.build import DIM, group_partitions
from simpersona_jax.features.default import ensure_default
from simpersona_jax.synth.generate import default_config


@pytest.fixture(scope="module")
def buyers_dir(tmp_path_factory):
    cfg = default_config()
    cfg.update(dict(num_stores=4, buyers_per_store=120, products_per_store=60))
    return ensure_default(str(tmp_path_factory.mktemp("default")), cfg)


def test_layout_and_standardisation(buyers_dir):
    stats = store.read_stats(buyers_dir)
    meta = store.read_meta(buyers_dir)
    assert DIM == 403 and stats["dim"] == 403 and stats["buyers"] == meta.height
    train = store.load_arrays(buyers_dir, "train")
    held = store.load_arrays(buyers_dir, "heldout")
    assert train["x"].shape[1] == 403 and len(train["x"]) + len(held["x"]) == meta.height
    np.testing.assert_allclose(train["x"][:, :16].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train["x"][:, :16].std(0), 1, atol=1e-3)
    masks = train["x"][:, -3:]
    assert set(np.unique(masks)) <= {0.0, 1.0}
    for k in range(3):  # a slot is all zeros exactly when its mask is 0
        slot = train["x"][:, 16 + 128 * k : 16 + 128 * (k + 1)]
        np.testing.assert_array_equal(np.abs(slot).sum(1) > 0, masks[:, k] > 0)
    # last_purchased slot present <=> stratum A
    np.testing.assert_array_equal(masks[:, 2] > 0, train["stratum"] == 0)
    assert (train["true_type"] >= 0).all()
    assert set(meta.filter(pl.col("split") == "train")["store_id"]) == set(stats["train_stores"])


def test_source_matches_arrays_in_both_storage_modes(buyers_dir):
    arrays = store.load_arrays(buyers_dir, "train")
    dense = store.BuyerSource(buyers_dir, "train")
    lazy = store.BuyerSource(buyers_dir, "train", in_memory_bytes=0)
    for i in (0, 7, len(dense) - 1):
        for src in (dense, lazy):
            item = src[i]
            np.testing.assert_array_equal(item["x"], arrays["x"][i])
            assert item["stratum"] == arrays["stratum"][i] and item["row"] == arrays["row"][i]
    batch = lazy.__getitems__([5, 1, 3])
    np.testing.assert_array_equal(np.stack([b["x"] for b in batch]), arrays["x"][[5, 1, 3]])
    with pytest.raises(IndexError, match="out of range"):
        dense[len(dense)]


def test_loader_resumes_exactly_and_hosts_are_disjoint(buyers_dir):
    it = store.make_loader(buyers_dir, "train", 32, seed=3, shard_index=0, shard_count=1)
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it)["row"] for _ in range(4)]
    it2 = store.make_loader(buyers_dir, "train", 32, seed=3, shard_index=0, shard_count=1)
    it2.set_state(state)
    for e in expected:
        np.testing.assert_array_equal(next(it2)["row"], e)
    rows = [
        np.concatenate(
            [
                next(
                    store.make_loader(
                        buyers_dir,
                        "train",
                        32,
                        seed=3,
                        shard_index=h,
                        shard_count=2,
                        num_epochs=1,
                        drop_remainder=False,
                    )
                )["row"]
            ]
        )
        for h in range(2)
    ]
    assert len(rows[0]) == 16 and not set(rows[0]) & set(rows[1])
    with pytest.raises(ValueError, match="not divisible"):
        store.make_dataset(buyers_dir, "train", 33, seed=0, shard_index=0, shard_count=2)


def test_reference_stats_standardise_new_stores_identically(buyers_dir, tmp_path):
    import os

    from simpersona_jax.features.build import build_buyers

    events_dir = os.path.join(os.path.dirname(buyers_dir), "events")
    stats = store.read_stats(buyers_dir)
    again = build_buyers(events_dir, str(tmp_path / "b"), reference_stats=stats)
    assert again["mean"] == stats["mean"] and again["train_stores"] == []
    np.testing.assert_allclose(
        store.load_arrays(str(tmp_path / "b"), "all")["x"],
        store.load_arrays(buyers_dir, "all")["x"],
        atol=1e-6,
    )
    assert store.split_rows(str(tmp_path / "b"), "train").size == 0


def test_group_partitions_packs_whole_partitions_up_to_the_unit(tmp_path):
    parts = []
    for k, n in enumerate([3, 4, 10, 1, 1]):
        d = tmp_path / f"store_id=s{k}" / "bucket=0"
        d.mkdir(parents=True)
        pl.DataFrame({"x": range(n)}).write_parquet(d / "part-0.parquet")
        parts.append(str(d))
    units = group_partitions(parts, rows_per_unit=8)
    assert units == [parts[:2], parts[2:3], parts[3:]]  # 7 | 10 (alone, over the unit) | 2


def test_batches_and_samples_read_only_their_rows(buyers_dir):
    arrays = store.load_arrays(buyers_dir, "train")
    src = store.BuyerSource(buyers_dir, "train", in_memory_bytes=0)
    batches = list(store.iter_batches(src, 50))
    assert [len(b["x"]) for b in batches[:-1]] == [50] * (len(batches) - 1)
    for key, v in arrays.items():
        np.testing.assert_array_equal(np.concatenate([b[key] for b in batches]), v)
    idx = store.sample_positions(len(src), 37, seed=4)
    assert len(np.unique(idx)) == 37 and (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(src.take(idx)["x"], arrays["x"][idx])
    np.testing.assert_array_equal(store.sample_positions(len(src), 10**9, 4), np.arange(len(src)))


def test_host_positions_are_contiguous_equal_shares():
    parts = [store.host_positions(11, h, 3) for h in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(9))  # 2 left out
    assert [len(p) for p in parts] == [3, 3, 3]
    assert all((np.diff(p) == 1).all() for p in parts)


def test_epoch_order_is_a_pool_shuffle_that_keeps_reads_local():
    pool = 2 * store.CHUNK_ROWS
    ragged = store.epoch_order(10 * store.CHUNK_ROWS + 100, seed=1, epoch=0, pool_rows=pool)
    np.testing.assert_array_equal(np.sort(ragged), np.arange(len(ragged)))  # every position once
    n = 10 * store.CHUNK_ROWS
    order = store.epoch_order(n, seed=1, epoch=0, pool_rows=pool)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    for start in range(0, n, pool):  # each pool's rows come from 2 blocks, shuffled
        blocks = np.unique(order[start : start + pool] // store.CHUNK_ROWS)
        assert len(blocks) == 2
    assert not (np.diff(order[:pool]) == 1).all()
    np.testing.assert_array_equal(order, store.epoch_order(n, 1, 0, pool))
    assert not np.array_equal(order, store.epoch_order(n, 1, 1, pool))
    np.testing.assert_array_equal(
        store.epoch_order(50, 1, 0, pool), np.random.default_rng([1, 0]).permutation(50)
    )


def test_shuffled_batches_visit_every_position_once_per_epoch(buyers_dir):
    src = store.BuyerSource(buyers_dir, "train", in_memory_bytes=0)
    positions = store.host_positions(len(src), 1, 2)
    once = store.ShuffledBatches(
        src,
        7,
        seed=0,
        positions=positions,
        num_epochs=2,
        drop_remainder=False,
        pool_rows=store.CHUNK_ROWS,
    )
    per_epoch = -(-len(positions) // 7)
    assert len(once) == 2 * per_epoch
    rows = [once[i]["row"] for i in range(per_epoch)]
    np.testing.assert_array_equal(np.sort(np.concatenate(rows)), src.take(positions)["row"])
    assert not np.array_equal(once[0]["row"], once[per_epoch]["row"])  # next epoch, new order
    plain = store.ShuffledBatches(src, 7, seed=0, shuffle=False)
    np.testing.assert_array_equal(plain[1]["x"], src.take(np.arange(7, 14))["x"])
    with pytest.raises(IndexError, match="out of range"):
        once[len(once)]
    with pytest.raises(ValueError, match="< batch"):
        store.ShuffledBatches(src, len(src) + 1, seed=0)
