"""The behaviour-aware VQ-VAE as a training Task (see simpersona_jax/training/__init__.py)."""

from __future__ import annotations

import collections
import functools
import json
import operator
import os

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from simpersona_jax.features import store
from simpersona_jax.training import OptionalTaskHooks, host
from simpersona_jax.vqvae import codebook as cb_lib
from simpersona_jax.vqvae import encode as encode_lib
from simpersona_jax.vqvae import losses
from simpersona_jax.vqvae import metrics as metrics_lib
from simpersona_jax.vqvae.model import AUX_LABELS, VQVAE
from simpersona_jax.vqvae.sizing import check_data_size

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
    """`<config.data.dir>/buyers` ("synthetic:default" or an existing data root)."""
    from simpersona_jax.features.default import resolve_data_dir

    root = resolve_data_dir(dcfg.dir, "config.data.dir", need=("buyers/stats.json",))
    return os.path.join(root, "buyers")


class _InMemory:
    """A split given as arrays (load_arrays keys), with BuyerSource's len() and take()."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["x"])

    def take(self, idx) -> dict[str, np.ndarray]:
        """Rows `idx` of every array, gathered straight into aligned (device-ready) buffers."""
        return {k: host.gather_rows(v, np.asarray(idx)) for k, v in self.arrays.items()}


def _select(batch: dict) -> dict:
    return {
        k: host.device_ready(batch[k], np.float32 if k == "x" else np.int32) for k in BATCH_KEYS
    }


def _defined(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics that are defined on these buyers: a NaN (e.g. CH with one buyer per code) is
    left out, so it is neither written to TensorBoard nor to quality.json; the quality table
    shows it as n/a with "too few buyers for this metric"."""
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


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
        self._sources: dict[str, store.BuyerSource] = {}

    # ---- data -------------------------------------------------------------------------------
    def _train_dataset(self, global_batch_size, seed, shard_index, shard_count):
        """Shuffled per-host batches: gathered from memory when the split fits in
        config.data.in_memory_bytes, else read from the zarr matrix a batch at a time with a pool
        shuffle (store.make_dataset; config.data.shuffle_pool_rows)."""
        if self._buyers_dir is not None and not self._fits_in_memory():
            ds = store.make_dataset(
                self._buyers_dir,
                self._split_name("train"),
                global_batch_size,
                seed=seed,
                shard_index=shard_index,
                shard_count=shard_count,
                pool_rows=int(self.config.data.get("shuffle_pool_rows", 32 * store.CHUNK_ROWS)),
                in_memory_bytes=0,
            )
            return ds.map(_select)
        train = _select(self.arrays("train"))  # no copy unless the arrays were passed in
        batches = store.ShuffledBatches(
            _InMemory(train),
            global_batch_size // shard_count,
            seed=seed,
            positions=store.host_positions(len(train["x"]), shard_index, shard_count),
        )
        return grain.MapDataset.source(batches)

    def _fits_in_memory(self) -> bool:
        rows = len(store.split_rows(self._buyers_dir, self._split_name("train")))
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
        """ "train" or "eval" buyers as stacked arrays (loaded once, kept). Loaded training
        buyers keep only the batch keys, as device-ready arrays: one copy of the split in memory."""
        if self._arrays is None:
            self._arrays = {}
        if which not in self._arrays:
            loaded = store.load_arrays(self._buyers_dir, self._split_name(which))
            self._arrays[which] = _select(loaded) if which == "train" else loaded
        return self._arrays[which]

    def _split_name(self, which: str) -> str:
        if which == "train":
            return self.config.data.get("train_split", "train")
        return self.config.data.get("eval_split", "all")

    def source(self, which: str):
        """ "train" or "eval" buyers as len() + take(positions) -> arrays: the arrays in memory
        when given (or already loaded for training), else a BuyerSource reading only the rows
        asked for from disk."""
        if self._buyers_dir is None or which in (self._arrays or {}):
            return _InMemory(self.arrays(which))
        if which not in self._sources:
            self._sources[which] = store.BuyerSource(
                self._buyers_dir, self._split_name(which), in_memory_bytes=0
            )
        return self._sources[which]

    def init_sample(self):
        """A fixed random sample of training buyers (same on every process) for k-means++;
        only the sampled rows are read. Fails first, naming every setting, when the training
        split is too small for the config."""
        check_data_size(self.config, len(self.source("train")), jax.process_count())
        return self.shape_sample()

    def shape_sample(self):
        """The init sample without the data-size check (deviceless compiles size a run
        whose data is not here)."""
        train = self.source("train")
        n = len(train)
        m = min(int(self.config.data.get("init_sample_size", 4096)), n)
        return _select(train.take(store.sample_positions(n, m, int(self.config.seed))))

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
    @functools.cached_property
    def assign_fn(self):
        """The jitted batch -> (codes, distances) function, built once per task (so periodic
        evals reuse its compilation)."""
        return encode_lib.make_assign_fn(
            self.model, cosine=self.cosine, chunk=int(self.config.eval.get("chunk", 1024))
        )

    def assign(self, params, extra, x):
        ecfg = self.config.eval
        return encode_lib.assign_array(
            self.assign_fn,
            params,
            extra["codebook"]["embed"],
            x,
            batch_size=int(ecfg.get("batch_size", 8192)),
            chunk=int(ecfg.get("chunk", 1024)),
        )[0]

    def eval_batches(self):
        """The eval split in batches of config.eval.batch_size (one batch of x read at a time)."""
        batch_size = int(self.config.eval.get("batch_size", 8192))
        return store.iter_batches(self.source("eval"), batch_size)

    def with_codes(self, params, extra, batches):
        """Each batch with its VQ codes and distances added ("code", "distance"). One jitted
        encoder pass; batch i+1 is read and dispatched before batch i is returned, so at most
        two batches are held."""
        held = collections.deque()

        def xs():
            for batch in batches:
                held.append(batch)
                yield batch["x"]

        for codes, dist in encode_lib.assign_batches(
            self.assign_fn,
            params,
            extra["codebook"]["embed"],
            xs(),
            chunk=int(self.config.eval.get("chunk", 1024)),
        ):
            yield {**held.popleft(), "code": codes, "distance": dist}

    def score(self, batches, methods) -> dict[str, metrics_lib.QualityAccumulator]:
        """One pass over `batches`: per name of `methods` (name -> batch -> codes), the quality
        accumulator of that method's codes."""
        tol = float(self.config.eval.incoherence_tol)
        accs = {n: metrics_lib.QualityAccumulator(self.k, incoherence_tol=tol) for n in methods}
        for batch in batches:
            for name, codes_of in methods.items():
                accs[name].update(codes_of(batch), batch)
        return accs

    def baseline_methods(self) -> dict:
        """{"minibatch_kmeans(K=..)": batch -> k-means codes} when config.eval.kmeans_baseline,
        MiniBatchKMeans(K) fitted on a random sample of at most eval.kmeans_fit_size training
        buyers (all of them when fewer; only the sampled rows are read), else {}."""
        ecfg = self.config.eval
        if not ecfg.get("kmeans_baseline", True):
            return {}
        train, seed = self.source("train"), int(self.config.seed)
        idx = store.sample_positions(len(train), int(ecfg.get("kmeans_fit_size", 1 << 18)), seed)
        km = metrics_lib.fit_kmeans(train.take(idx)["x"], self.k, seed=seed)
        return {metrics_lib.kmeans_name(self.k): lambda b: metrics_lib.kmeans_codes(km, b["x"])}

    def evaluate(self, params, extra):
        """Quality of the VQ-VAE codes on the eval split, streamed batch by batch."""
        coded = self.with_codes(params, extra, self.eval_batches())
        return _defined(self.score(coded, {"vqvae": operator.itemgetter("code")})["vqvae"].result())

    def report(self, params, extra, workdir, eval_metrics):
        """Quality table of the VQ-VAE codes vs MiniBatchKMeans(K) on the same buyers (one more
        streamed pass over the eval split, for the k-means codes)."""
        rows = {"vqvae": eval_metrics}
        baseline = self.baseline_methods()
        if baseline:
            accs = self.score(self.eval_batches(), baseline)
            rows.update({name: _defined(acc.result()) for name, acc in accs.items()})
        n = len(self.source("eval"))
        table = metrics_lib.quality_text(
            rows, f"buyer-type quality on {n} buyers (eval split), K={self.k}", self.k
        )
        always = [m for m in metrics_lib.METRICS if not m.endswith("_true_type")]
        if any(m not in r for r in rows.values() for m in always):
            undefined = sorted({m for r in rows.values() for m in always if m not in r})
            table += f"\n{', '.join(undefined)}: too few buyers for this metric"
        if workdir and jax.process_index() == 0:
            with open(os.path.join(workdir, "quality.json"), "w") as f:
                json.dump(rows, f, indent=2)
        return table
