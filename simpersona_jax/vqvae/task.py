"""The behaviour-aware VQ-VAE as a training Task (see simpersona_jax/training/__init__.py)."""

from __future__ import annotations

import json
import os

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from simpersona_jax.training import OptionalTaskHooks, host
from simpersona_jax.vqvae import codebook as cb_lib
from simpersona_jax.vqvae import encode as encode_lib
from simpersona_jax.vqvae import losses
from simpersona_jax.vqvae import metrics as metrics_lib
from simpersona_jax.vqvae.model import AUX_LABELS, VQVAE

BATCH_KEYS = ("x",) + tuple(AUX_LABELS)


def build_model(mcfg) -> VQVAE:
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[mcfg.get("dtype", "float32")]
    return VQVAE(
        input_dim=int(mcfg.input_dim),
        hidden=tuple(mcfg.hidden),
        latent_dim=int(mcfg.latent_dim),
        activation=mcfg.get("activation", "gelu"),
        dtype=dtype,
    )


def recon_blocks(mcfg, lcfg) -> tuple[tuple[int, int, float], ...]:
    sizes, weights = tuple(mcfg.block_sizes), tuple(lcfg.recon_block_weights)
    if sum(sizes) != mcfg.input_dim or len(sizes) != len(weights):
        raise ValueError(
            f"model.block_sizes={sizes} must sum to input_dim={mcfg.input_dim} and "
            f"match loss.recon_block_weights={weights}"
        )
    edges = np.cumsum((0,) + sizes)
    return tuple((int(a), int(b), float(w)) for a, b, w in zip(edges[:-1], edges[1:], weights))


def resolve_buyers_dir(dcfg) -> str:
    """config.data.buyers_dir if given, else the embedded default built under config.data.dir."""
    if dcfg.get("buyers_dir"):
        if not os.path.exists(os.path.join(dcfg.buyers_dir, "stats.json")):
            raise FileNotFoundError(
                f"config.data.buyers_dir={dcfg.buyers_dir!r} has no stats.json "
                "(build buyer vectors first)"
            )
        return dcfg.buyers_dir
    from simpersona_jax.features.default import ensure_default

    return ensure_default(dcfg.dir)


class _EpochBatches(grain.sources.RandomAccessDataSource):
    """Element i = batch i of an endless sequence of epochs over in-memory rows; each epoch is a
    fresh permutation seeded by (seed, epoch). Vectorised: one fancy-index per column per batch,
    so a 512-buyer batch costs well under a millisecond of host time."""

    EPOCHS = 1 << 20  # "endless": a million epochs

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, seed: int):
        self.arrays = arrays
        self.n = len(next(iter(arrays.values())))
        if self.n < batch_size:
            raise ValueError(f"{self.n} training buyers on this process < local batch {batch_size}")
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = self.n // batch_size  # the remainder of each epoch is dropped
        self._perm_epoch, self._perm = -1, None

    def __len__(self):
        return self.per_epoch * self.EPOCHS

    def __getitem__(self, i):
        epoch, j = divmod(int(i), self.per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        idx = self._perm[j * self.batch_size : (j + 1) * self.batch_size]
        return {k: host.gather_rows(v, idx) for k, v in self.arrays.items()}


def _select(batch: dict) -> dict:
    return {k: host.device_ready(batch[k], np.float32 if k == "x" else np.int32) for k in BATCH_KEYS}


class VQVAETask(OptionalTaskHooks):
    """config: model {...}, vq {...}, loss {...}, data {...}, eval {...} (experiments/vqvae.py)."""

    example_name = "buyers"
    console_metrics = (
        "loss",
        "recon",
        "commit",
        "contrastive",
        "acc_stratum",
        "perplexity",
        "revived",
    )

    def __init__(self, config, arrays: dict[str, dict[str, np.ndarray]] | None = None):
        """arrays: optional {"train": load_arrays-like dict, "eval": ...} instead of disk data."""
        self.config = config
        self.mcfg, self.vcfg, self.lcfg = config.model, config.vq, config.loss
        self.model = build_model(self.mcfg)
        self.k = int(self.mcfg.codebook_size)
        self.cosine = bool(self.vcfg.get("cosine", False))
        self.blocks = recon_blocks(self.mcfg, self.lcfg)
        self._arrays = arrays
        self._buyers_dir = None if arrays is not None else resolve_buyers_dir(config.data)

    # ---- data -------------------------------------------------------------------------------
    def _train_dataset(self, global_batch_size, seed, shard_index, shard_count):
        """Small splits: shuffled batches gathered from memory (_EpochBatches).
        Large splits: the streaming per-buyer Grain pipeline of features/store.py."""
        local = global_batch_size // shard_count
        if self._buyers_dir is not None and not self._fits_in_memory():
            from simpersona_jax.features import store

            ds = store.make_dataset(
                self._buyers_dir,
                self.config.data.get("train_split", "train"),
                global_batch_size,
                seed=seed,
                shard_index=shard_index,
                shard_count=shard_count,
            )
            return ds.map(_select)
        mine = {k: v[shard_index::shard_count] for k, v in _select(self.arrays("train")).items()}
        return grain.MapDataset.source(_EpochBatches(mine, local, seed))

    def _fits_in_memory(self) -> bool:
        from simpersona_jax.features import store

        rows = len(store.split_rows(self._buyers_dir, self.config.data.get("train_split", "train")))
        return rows * int(self.mcfg.input_dim) * 4 <= int(
            self.config.data.get("in_memory_bytes", 2 << 30)
        )

    def make_loader(self, *, global_batch_size, seed, shard_index, shard_count):
        """Batches are prepared ahead in background threads; Grain's default read-ahead (500
        elements on 16 threads) would hold 500 whole batches (GBs at batch 4096) and compete
        with the train step for the cores, so the read-ahead is a few batches (config.data)."""
        ds = self._train_dataset(global_batch_size, seed, shard_index, shard_count)
        dcfg = self.config.data
        options = grain.ReadOptions(
            num_threads=int(dcfg.get("loader_threads", 2)),
            prefetch_buffer_size=int(dcfg.get("prefetch_batches", 4)),
        )
        return iter(ds.to_iter_dataset(options))

    def arrays(self, which: str) -> dict[str, np.ndarray]:
        """ "train" or "eval" buyers as stacked arrays (loaded once, kept)."""
        if self._arrays is None:
            self._arrays = {}
        if which not in self._arrays:
            from simpersona_jax.features import store

            split = self.config.data.get(
                "train_split" if which == "train" else "eval_split",
                "train" if which == "train" else "all",
            )
            self._arrays[which] = store.load_arrays(self._buyers_dir, split)
        return self._arrays[which]

    def init_sample(self):
        """A fixed random sample of training buyers (same on every process) for k-means++."""
        train = self.arrays("train")
        n = len(train["x"])
        m = min(int(self.config.data.get("init_sample_size", 4096)), n)
        if m < self.k:
            raise ValueError(f"{n} training buyers cannot initialise a codebook of {self.k} codes")
        idx = np.sort(np.random.default_rng(int(self.config.seed)).choice(n, m, replace=False))
        return _select({k: v[idx] for k, v in train.items()})

    # ---- model ------------------------------------------------------------------------------
    def init(self, rng, batch):
        rng_p, rng_k = jax.random.split(rng)
        params = self.model.init(rng_p, batch["x"])["params"]
        z = self.model.apply({"params": nn.meta.unbox(params)}, batch["x"], method=VQVAE.encode)
        centres, counts = cb_lib.kmeans_plus_plus(
            rng_k, z, self.k, iters=int(self.vcfg.get("kmeans_iters", 10)), cosine=self.cosine
        )
        # EMA counts are per step: scale sample counts to the training batch size.
        per_step = counts * (self.config.global_batch_size / z.shape[0])
        state = cb_lib.init_state(centres, per_step)
        names = {
            "embed": ("codes", "latent"),
            "cluster_size": ("codes",),
            "embed_sum": ("codes", "latent"),
        }
        return {
            "params": params,
            "codebook": {k: nn.LogicallyPartitioned(v, names[k]) for k, v in state.items()},
        }

    def forward(self, params, codebook, x):
        z = self.model.apply({"params": params}, x, method=VQVAE.encode)
        zq_st, codes, zq = cb_lib.quantize(z, codebook["embed"], cosine=self.cosine)
        return z, zq_st, codes, zq

    def loss(self, params, extra, batch, rng, step):
        del step
        cb = extra["codebook"]
        x = batch["x"]
        rng_aug, rng_revive = jax.random.split(rng)
        z, zq_st, codes, zq = self.forward(params, cb, x)
        x_hat = self.model.apply({"params": params}, zq_st, method=VQVAE.decode)
        lc = self.lcfg
        recon = losses.block_mse(x_hat, x, self.blocks)
        z_for_commit = cb_lib.l2_normalize(z) if self.cosine else z
        commit = losses.commitment(z_for_commit, zq)
        logits = self.model.apply({"params": params}, zq_st, method=VQVAE.classify)
        ce, acc = losses.aux_cross_entropy(logits, batch)
        total = lc.recon_weight * recon + lc.commitment_weight * commit
        total = total + sum(float(lc.aux_weights[k]) * ce[k] for k in ce)
        metrics = {"recon": recon, "commit": commit}
        if lc.contrastive_weight > 0:
            m = min(x.shape[0], int(lc.contrastive_max_batch))
            x_view = losses.augment(rng_aug, x[:m], float(lc.aug_dropout), float(lc.aug_noise))
            z_view = self.model.apply({"params": params}, x_view, method=VQVAE.encode)
            positives = None
            if lc.contrastive_positives == "labels":
                key = sum(batch[k][:m] * (10**i) for i, k in enumerate(AUX_LABELS))
                positives = key[:, None] == key[None, :]
            elif lc.contrastive_positives != "views":
                raise ValueError(
                    f"loss.contrastive_positives={lc.contrastive_positives!r}: "
                    "expected 'views' or 'labels'"
                )
            con = losses.info_nce(z[:m], z_view, lc.temperature, positives)
            total = total + lc.contrastive_weight * con
            metrics["contrastive"] = con
        for k in ce:
            metrics[f"ce_{k}"] = ce[k]
            metrics[f"acc_{k}"] = acc[k]
        new_cb = cb_lib.ema_update(
            cb,
            z,
            codes,
            decay=float(self.vcfg.decay),
            eps=float(self.vcfg.get("eps", 1e-5)),
            cosine=self.cosine,
        )
        threshold = float(self.vcfg.dead_code_fraction) * x.shape[0] / self.k
        metrics["perplexity"] = losses.perplexity(codes, self.k)
        if threshold > 0:
            new_cb, n_dead = cb_lib.revive_dead(
                new_cb, z, rng_revive, threshold=threshold, cosine=self.cosine
            )
            metrics["revived"] = n_dead.astype(jnp.float32)
        return total, (metrics, {"codebook": new_cb})

    # ---- assignment and evaluation ----------------------------------------------------------
    def assign_fn(self):
        return encode_lib.make_assign_fn(
            self.model, cosine=self.cosine, chunk=int(self.config.eval.get("chunk", 1024))
        )

    def assign(self, params, extra, x):
        ecfg = self.config.eval
        return encode_lib.assign_array(
            self.assign_fn(),
            params,
            extra["codebook"]["embed"],
            x,
            batch_size=int(ecfg.get("batch_size", 8192)),
            chunk=int(ecfg.get("chunk", 1024)),
        )[0]

    def evaluate(self, params, extra):
        data = self.arrays("eval")
        codes = self.assign(params, extra, data["x"])
        return metrics_lib.quality(
            codes, data, self.k, incoherence_tol=float(self.config.eval.incoherence_tol)
        )

    def report(self, params, extra, workdir, eval_metrics):
        """Quality table of the VQ-VAE codes vs MiniBatchKMeans(K) on the same buyers."""
        ecfg = self.config.eval
        data, train = self.arrays("eval"), self.arrays("train")
        ours = eval_metrics
        rows = {"vqvae": ours}
        if ecfg.get("kmeans_baseline", True):
            km = metrics_lib.kmeans_baseline(
                train["x"], data["x"], self.k, seed=int(self.config.seed)
            )
            rows[f"minibatch_kmeans(K={self.k})"] = metrics_lib.quality(
                km, data, self.k, incoherence_tol=float(ecfg.incoherence_tol)
            )
        table = metrics_lib.format_table(
            rows, title=f"buyer-type quality on {len(data['x'])} buyers (eval split), K={self.k}"
        )
        if len(rows) > 1:
            table += "\n" + metrics_lib.verdict(ours, rows[f"minibatch_kmeans(K={self.k})"])
        if workdir and jax.process_index() == 0:
            with open(os.path.join(workdir, "quality.json"), "w") as f:
                json.dump(rows, f, indent=2)
        return table
