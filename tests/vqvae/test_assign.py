"""The train and assign entry points on a small synthetic store set, end to end."""

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
