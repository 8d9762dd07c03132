"""Tiny synthetic buyers and a tiny VQ-VAE config for fast CPU tests."""

import importlib.util
import os

import ml_collections
import numpy as np

_spec = importlib.util.spec_from_file_location(
    "vqvae_experiment",
    os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "vqvae.py"),
)
_exp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_exp)


def experiment_config() -> ml_collections.ConfigDict:
    """experiments/vqvae.py's config, unchanged."""
    return _exp.get_config()


def synthetic_buyers(n=384, dim=14, types=4, seed=0):
    """Buyers drawn around `types` centres; labels derived from the type (plus noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(types, dim)).astype(np.float32)
    t = rng.integers(0, types, n)
    x = centres[t] + rng.normal(scale=0.5, size=(n, dim)).astype(np.float32)
    x[:, -2:] = (x[:, -2:] > 0).astype(np.float32)  # "slot masks"
    return {
        "x": x.astype(np.float32),
        "stratum": (t % 5).astype(np.int32),
        "purchase_hi": (t % 2).astype(np.int32),
        "explore_hi": ((t // 2) % 2).astype(np.int32),
        "engage_hi": (x[:, 0] > 0).astype(np.int32),
        "store": (np.arange(n) % 3).astype(np.int32),
        "true_type": t.astype(np.int32),
        "row": np.arange(n, dtype=np.int64),
    }


def tiny_config(**mesh) -> ml_collections.ConfigDict:
    """experiments/vqvae.py shrunk: 14-d input, K=8 codes, batch 32, 6 steps."""
    c = experiment_config()
    c.global_batch_size = 32
    c.num_steps = 6
    c.log_every_steps = 3
    c.eval_every_steps = 0
    c.mesh = ml_collections.ConfigDict(mesh or {"data": -1})
    c.data.init_sample_size = 64
    c.model.input_dim = 14
    c.model.block_sizes = (4, 8, 2)
    c.model.hidden = (16, 8)
    c.model.latent_dim = 4
    c.model.codebook_size = 8
    c.loss.contrastive_max_batch = 16
    c.optimizer.warmup_steps = 1
    c.optimizer.learning_rate = 3e-3
    c.checkpoint.every_steps = 3
    c.eval.batch_size = 64
    c.eval.chunk = 16
    c.eval.kmeans_baseline = False
    return c


def tiny_arrays(n=384):
    data = synthetic_buyers(n)
    return {"train": data, "eval": data}
