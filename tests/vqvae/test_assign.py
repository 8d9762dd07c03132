"""The train and assign entry points on a small synthetic store set, end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from simpersona_jax.features.default import ensure_default
from simpersona_jax.synth.generate import default_config

from .tiny import experiment_config

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMALL = {
    "num_steps": 4,
    "log_every_steps": 2,
    "global_batch_size": 64,
    "model.hidden": (32, 16),
    "model.latent_dim": 8,
    "model.codebook_size": 16,
    "data.init_sample_size": 128,
    "checkpoint.every_steps": 2,
    "eval.batch_size": 128,
    "eval.chunk": 32,
    "loss.contrastive_max_batch": 32,
}
SMALL_FLAGS = [f"--config.{k}={v}".replace(" ", "") for k, v in SMALL.items()]


def small_config(data_dir):
    cfg = experiment_config()
    cfg.data.dir = data_dir
    cfg.update_from_flattened_dict(SMALL)
    return cfg


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    cfg = default_config()
    cfg.num_stores, cfg.buyers_per_store = 4, 80
    path = str(tmp_path_factory.mktemp("synth"))
    ensure_default(path, cfg)
    return path


def _run(module, *args):
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-m", module, "--config=experiments/vqvae.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_train_then_assign_cli(data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    common = [f"--workdir={workdir}", f"--config.data.dir={data_dir}", *SMALL_FLAGS]
    out = _run("simpersona_jax.train", *common)
    assert "step 4/4" in out and "buyers/s" in out and "ETA" in out
    assert "minibatch_kmeans(K=16)" in out and "VQ-VAE vs k-means: better on" in out
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    assert os.listdir(os.path.join(workdir, "tensorboard"))

    out = _run("simpersona_jax.assign", *common, "--config.eval.kmeans_baseline=False")
    assert "assigned" in out and "buyer-type quality" in out
    assign_dir = os.path.join(workdir, "assign")
    meta = pl.read_parquet(os.path.join(data_dir, "buyers", "meta.parquet")).sort("row")
    codes = pl.read_parquet(os.path.join(assign_dir, "codes.parquet"))
    assert codes["buyer_id"].to_list() == meta["buyer_id"].to_list()
    assert codes["code"].min() >= 0 and codes["code"].max() < 16
    p = pl.read_parquet(os.path.join(assign_dir, "p_store.parquet"))
    assert p.height == meta["store_id"].n_unique() * 16
    sums = p.group_by("store_id").agg(pl.col("p").sum())["p"].to_numpy()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-9)
    wide = pl.read_csv(os.path.join(assign_dir, "p_store.csv"))
    assert wide.columns[:3] == ["store_id", "n_buyers", "p_0"] and wide.width == 18
    summary = open(os.path.join(assign_dir, "codes_summary.txt")).read()
    assert "buyers (" in summary and "σ" in summary

    # Another batch size gives the identical assignment (in-process this time).
    from simpersona_jax.vqvae import assignment

    cfg = small_config(data_dir)
    cfg.eval.batch_size = 32
    cfg.eval.kmeans_baseline = False
    out2 = str(tmp_path / "assign_bs")
    assignment.run(cfg, workdir, out2)
    again = pl.read_parquet(os.path.join(out2, "codes.parquet"))
    assert again["code"].to_list() == codes["code"].to_list()


def _old_code_table(codes, arrays, scalar_names, k):
    """summary.code_table's definition on whole arrays, before streaming: the reference."""
    size = np.bincount(codes, minlength=k)
    used = np.nonzero(size)[0]
    cols = {"code": used.astype(np.int32), "size": size[used], "share": size[used] / len(codes)}
    for s, name in enumerate("ABCDE"):
        w = arrays["stratum"] == s
        cols[f"stratum_{name}"] = np.bincount(codes, weights=w, minlength=k)[used] / size[used]
    for label in ("purchase_hi", "explore_hi", "engage_hi"):
        w = arrays[label]
        cols[label] = np.bincount(codes, weights=w, minlength=k)[used] / size[used]
    for j, name in enumerate(scalar_names):
        w = arrays["x"][:, j]
        cols[name] = np.bincount(codes, weights=w, minlength=k)[used] / size[used]
    return pl.DataFrame(cols).sort("size", descending=True)


def _close(got, want):
    assert set(got) == set(want)
    for key, v in want.items():
        np.testing.assert_allclose(got[key], v, rtol=1e-9, err_msg=key)


def test_assign_evaluate_report_never_load_a_whole_split(data_dir, tmp_path, monkeypatch):
    """With every whole-split loader raising, assignment, evaluate, report and init_sample
    stream small batches and give what the in-memory definitions give on whole arrays."""
    from simpersona_jax.features import store
    from simpersona_jax.training import train
    from simpersona_jax.training.loop import load_trained
    from simpersona_jax.vqvae import assignment, metrics
    from simpersona_jax.vqvae.task import VQVAETask

    cfg = small_config(data_dir)
    cfg.eval_every_steps = 0
    workdir = str(tmp_path / "run")
    train(cfg, workdir, VQVAETask(cfg))
    buyers_dir = os.path.join(data_dir, "buyers")
    whole = store.load_arrays(buyers_dir, "all")
    train_x = store.load_arrays(buyers_dir, "train")["x"]

    def boom(*args, **kwargs):
        raise AssertionError("a whole split was loaded")

    monkeypatch.setattr(store, "load_arrays", boom)
    monkeypatch.setattr(VQVAETask, "arrays", boom)
    cfg.eval.batch_size, cfg.eval.chunk = 48, 32  # 7 batches, each padded to 64
    cfg.eval.kmeans_baseline = True
    cfg.eval.kmeans_fit_size = 100  # a sample of the training buyers
    task = VQVAETask(cfg)
    state, _ = load_trained(cfg, workdir, task)
    out = str(tmp_path / "assign")
    report = assignment.run(cfg, workdir, out)

    k, name = task.k, metrics.kmeans_name(task.k)
    codes = task.assign(state.params, state.extra, whole["x"]).astype(np.int64)
    fit = train_x[store.sample_positions(len(train_x), 100, int(cfg.seed))]
    km = metrics.kmeans_baseline(fit, whole["x"], k, seed=int(cfg.seed))
    got = pl.read_parquet(os.path.join(out, "codes.parquet"))
    np.testing.assert_array_equal(got["code"].to_numpy(), codes)
    with open(os.path.join(out, "quality.json")) as f:
        quality = json.load(f)
    _close(quality["vqvae"], metrics.quality(codes, whole, k))
    _close(quality[name], metrics.quality(km, whole, k))
    names = list(store.read_stats(buyers_dir)["scalar_names"])
    table = pl.read_parquet(os.path.join(out, "codes_summary.parquet"))
    want = _old_code_table(codes, whole, names, k)
    assert table.columns == want.columns and table.dtypes == want.dtypes
    np.testing.assert_allclose(table.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-12)
    assert f"{name}" in report and "VQ-VAE vs k-means: better on" in report

    _close(task.evaluate(state.params, state.extra), metrics.quality(codes, whole, k))
    text = task.report(state.params, state.extra, None, quality["vqvae"])
    assert f"on {len(codes)} buyers (eval split)" in text and name in text
    sample = task.init_sample()
    idx = store.sample_positions(len(train_x), int(cfg.data.init_sample_size), int(cfg.seed))
    np.testing.assert_array_equal(sample["x"], train_x[idx])


def test_training_streamed_from_disk_resumes_exactly(data_dir, tmp_path):
    """A split over config.data.in_memory_bytes trains from batches read off the zarr matrix,
    and a run stopped at step 2 and resumed ends with the same parameters as one that did not."""
    import jax

    from simpersona_jax.training import train
    from simpersona_jax.vqvae.task import VQVAETask

    def run(workdir, steps):
        cfg = small_config(data_dir)
        cfg.data.in_memory_bytes = 0
        cfg.data.shuffle_pool_rows = 64
        cfg.eval_every_steps = 0
        cfg.eval.kmeans_baseline = False
        cfg.num_steps = steps
        task = VQVAETask(cfg)
        assert not task._fits_in_memory()
        return train(cfg, str(workdir), task)

    whole = run(tmp_path / "whole", 4)
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 4)
    assert int(resumed.state.step) == 4
    for a, b in zip(
        jax.tree.leaves(jax.device_get(whole.state.params)),
        jax.tree.leaves(jax.device_get(resumed.state.params)),
    ):
        np.testing.assert_array_equal(a, b)
