"""Behaviour-aware VQ-VAE on the embedded default (synthetic stores), paper sizes.

Run:
  python -m simpersona_jax.train --config=experiments/vqvae.py --workdir=runs/vqvae

Builds the embedded default buyer vectors under data/default on first use, trains for
`num_steps` (a few minutes on 2 CPU cores) printing a progress line
(`step .. | loss .. | steps/s | buyers/s | ETA`), writes checkpoints and TensorBoard logs to the
workdir, and ends with the quality table of the VQ-VAE codes vs MiniBatchKMeans(K=256):
Calinski-Harabasz, stratum purity, aux-label incoherence, perplexity, used/dead codes and
NMI/ARI against the true synthetic types. Rerunning with the same --workdir resumes.
Other buyer vectors: --config.data.dir=<data root with buyers/{vectors.zarr,meta.parquet,stats.json}>
(what synthesize or ingest wrote).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "vqvae"
    c.seed = 0
    c.global_batch_size = 512
    c.num_steps = 3000
    c.log_every_steps = 250
    c.eval_every_steps = 1000
    c.distributed = "auto"
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})

    c.data = ml_collections.ConfigDict()
    c.data.dir = "synthetic:default"  # or a data root with buyers/ (features/default.py)
    c.data.train_split = "train"
    c.data.eval_split = "all"
    c.data.init_sample_size = 4096  # buyers encoded for the k-means++ codebook init
    c.data.loader_threads = 2  # background threads preparing batches
    c.data.prefetch_batches = 4  # batches prepared ahead of the train step
    c.data.in_memory_bytes = 2 << 30  # a training split up to this size is held in memory
    c.data.shuffle_pool_rows = (
        32768  # larger splits: read from zarr, shuffled in pools of this many rows
    )

    c.model = ml_collections.ConfigDict()
    c.model.input_dim = 403
    c.model.block_sizes = (16, 384, 3)  # scalars | 3 slot embeddings | 3 slot masks
    c.model.hidden = (256, 128)
    c.model.latent_dim = 96
    c.model.codebook_size = 256
    c.model.activation = "gelu"
    c.model.dtype = "float32"

    c.vq = ml_collections.ConfigDict()
    c.vq.decay = 0.99
    c.vq.eps = 1e-5
    c.vq.cosine = False
    c.vq.kmeans_iters = 10
    c.vq.dead_code_fraction = 0.03  # revive codes whose EMA count < 3% of the mean count

    c.loss = ml_collections.ConfigDict()
    c.loss.recon_weight = 1.0
    c.loss.recon_block_weights = (1.0, 1.0, 1.0)
    c.loss.commitment_weight = 0.25
    c.loss.contrastive_weight = 0.1
    c.loss.contrastive_positives = "views"  # "views" (two views of a buyer) or "labels"
    c.loss.contrastive_max_batch = 512
    c.loss.temperature = 0.2
    c.loss.aug_dropout = 0.1
    c.loss.aug_noise = 0.05
    c.loss.aux_weights = ml_collections.ConfigDict(
        {"purchase_hi": 0.5, "explore_hi": 0.5, "engage_hi": 0.5, "stratum": 0.5}
    )

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.optimizer.schedule = "cosine"
    c.optimizer.final_lr_fraction = 0.1
    c.optimizer.weight_decay = 1e-4
    c.optimizer.grad_clip_norm = 1.0

    c.checkpoint = ml_collections.ConfigDict(
        {"every_steps": 1000, "max_to_keep": 3, "async_save": True}
    )

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 8192
    c.eval.chunk = 1024
    c.eval.incoherence_tol = 0.1  # a cluster mixes a label when its minority share > 10%
    c.eval.kmeans_baseline = True
    c.eval.kmeans_fit_size = 262144  # k-means fitted on at most this many training buyers
    return c
