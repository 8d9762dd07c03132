"""VQ-VAE throughput: this JAX implementation vs a PyTorch reference of the same model.

  python bench/vqvae.py            # batch 256..8192, 2 CPU cores: a few minutes
  python bench/vqvae.py --full     # more repetitions + a paper-scale (8.37M buyers) assignment

Both sides run the experiments/vqvae.py model: MLP 403->256->128->96, codebook 256x96 with EMA
updates (decay 0.99, dead-code revival), commitment 0.25, mirror decoder, four auxiliary heads on
the quantised latent, and the two-view InfoNCE term on the first 512 buyers of each batch;
AdamW with global-norm clipping. The reference is torch + vector-quantize-pytorch
(VectorQuantize with EMA, straight-through, kmeans init). Training buyers/s include moving each
host batch to the device; assignment = encoder + nearest code. The two implementations
alternate within each repetition (which goes first alternates too) and medians are reported.
Ends with `TARGET <name> measured=<ratio> goal=<ratio> PASS|MISS` lines.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

_FULL = flags.DEFINE_bool("full", False, "more repetitions and a paper-scale assignment")
_BATCHES = flags.DEFINE_list(
    "batch_sizes", ["256", "512", "1024", "2048", "4096", "8192"], "batch sizes"
)
_REPS = flags.DEFINE_integer("reps", 5, "alternating repetitions per batch size")
_SECONDS = flags.DEFINE_float("seconds", 0.6, "target seconds per timed repetition")

TARGETS = (
    ("vqvae_train_b512", "train", 512, 1.5),
    ("vqvae_train_b4096", "train", 4096, 1.2),
    ("vqvae_assign_b8192", "assign", 8192, 1.3),
)
PAPER_BUYERS = 8_370_000


def _config(batch: int):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "vqvae_exp", os.path.join(os.path.dirname(__file__), "..", "experiments", "vqvae.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    c.global_batch_size = batch
    c.num_steps = 10_000
    c.mesh.num_devices = 1
    c.data.init_sample_size = 4096
    c.eval.chunk = min(batch, int(c.eval.chunk))  # the production chunk; no padding below it
    return c


def _data(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 403)).astype(np.float32)
    return {
        "x": x,
        "stratum": rng.integers(0, 5, n).astype(np.int32),
        **{
            k: rng.integers(0, 2, n).astype(np.int32)
            for k in ("purchase_hi", "explore_hi", "engage_hi")
        },
        "store": np.zeros(n, np.int32),
        "true_type": np.zeros(n, np.int32),
        "row": np.arange(n, dtype=np.int64),
    }


def _host_batches(data, batch, count=4):
    keys = ("x", "stratum", "purchase_hi", "explore_hi", "engage_hi")
    return [{k: data[k][i * batch : (i + 1) * batch] for k in keys} for i in range(count)]


class JaxImpl:
    name = "jax"

    def __init__(self, batch, data):
        import jax

        from simpersona_jax.training import loop
        from simpersona_jax.training import state as state_lib
        from simpersona_jax.training import step as step_lib
        from simpersona_jax.vqvae.task import VQVAETask

        self.jax, self.loop = jax, loop
        cfg = _config(batch)
        self.task = VQVAETask(cfg, {"train": data, "eval": data})
        init_rng, step_rng = jax.random.split(jax.random.key(0))
        sample = self.task.init_sample()
        mesh, _, self.batch_sh, tx, _, sh = loop.build(cfg, self.task, init_rng, sample)
        self.state = state_lib.create_state(self.task, tx, sh, init_rng, sample)
        self.step = step_lib.jit_train_step(
            step_lib.make_train_step(self.task, tx, step_rng), sh, self.batch_sh, mesh
        )
        self.batch = batch
        # Host batches as the training loop receives them: from the task's own loader.
        loader = self.task.make_loader(
            global_batch_size=batch, seed=0, shard_index=0, shard_count=1
        )
        self.batches = [next(loader) for _ in range(4)]
        self.assign_fn = self.task.assign_fn
        self.chunk = int(cfg.eval.chunk)

    def train(self, n):
        metrics = None
        for i in range(n):
            b = self.loop.global_batch(
                self.batches[i % len(self.batches)], self.batch_sh, self.batch
            )
            self.state, metrics = self.step(self.state, b)
        self.jax.block_until_ready(metrics)

    def assign(self, n, x):
        """The production path (encode.assign_array): host staging, jitted pass, codes back."""
        from simpersona_jax.vqvae import encode

        embed = self.state.extra["codebook"]["embed"]
        codes = None
        for _ in range(n):
            codes, _ = encode.assign_array(
                self.assign_fn, self.state.params, embed, x, batch_size=len(x), chunk=self.chunk
            )
        return codes


class TorchImpl:
    name = "torch"

    def __init__(self, batch, data):
        import torch
        from torch import nn
        from vector_quantize_pytorch import VectorQuantize

        self.torch = torch
        torch.manual_seed(0)
        act = nn.GELU
        self.enc = nn.Sequential(
            nn.Linear(403, 256), act(), nn.Linear(256, 128), act(), nn.Linear(128, 96)
        )
        self.dec = nn.Sequential(
            nn.Linear(96, 128), act(), nn.Linear(128, 256), act(), nn.Linear(256, 403)
        )
        self.heads = nn.ModuleDict(
            {
                "purchase_hi": nn.Linear(96, 2),
                "explore_hi": nn.Linear(96, 2),
                "engage_hi": nn.Linear(96, 2),
                "stratum": nn.Linear(96, 5),
            }
        )
        self.vq = VectorQuantize(
            dim=96,
            codebook_size=256,
            decay=0.99,
            commitment_weight=0.25,
            kmeans_init=True,
            kmeans_iters=10,
            rotation_trick=False,
            threshold_ema_dead_code=0.03 * batch / 256,
        )
        params = [*self.enc.parameters(), *self.dec.parameters(), *self.heads.parameters()]
        self.params = params
        self.opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
        self.batch = batch
        self.batches = [
            {k: torch.from_numpy(v) for k, v in b.items()} for b in _host_batches(data, batch)
        ]
        self.vq.train()
        self.threads = {"train": torch.get_num_threads(), "assign": torch.get_num_threads()}
        self.train(1)  # kmeans init on the first batch

    def with_threads(self, n):
        """Set the thread count both workloads use (torch.set_num_threads is process-wide)."""
        self.threads = {"train": n, "assign": n}
        return self

    def _loss(self, b):
        torch, F = self.torch, self.torch.nn.functional
        x = b["x"]
        z = self.enc(x)
        zq, _, commit = self.vq(z)
        x_hat = self.dec(zq)
        recon = sum(
            F.mse_loss(x_hat[:, s:e], x[:, s:e]) for s, e in ((0, 16), (16, 400), (400, 403))
        )
        aux = sum(0.5 * F.cross_entropy(h(zq), b[k].long()) for k, h in self.heads.items())
        m = min(x.shape[0], 512)
        keep = (torch.rand_like(x[:m]) > 0.1).float()
        z_view = self.enc(x[:m] * keep + 0.05 * torch.randn_like(x[:m]))
        a, v = F.normalize(z[:m], dim=-1), F.normalize(z_view, dim=-1)
        logits = a @ v.T / 0.2
        target = torch.arange(m)
        con = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return recon + commit.sum() + aux + 0.1 * con

    def train(self, n):
        self.torch.set_num_threads(self.threads["train"])
        for i in range(n):
            loss = self._loss(self.batches[i % len(self.batches)])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()

    def assign(self, n, x):
        torch = self.torch
        torch.set_num_threads(self.threads["assign"])
        xt = torch.from_numpy(x)
        embed = self.vq.codebook.detach()
        with torch.inference_mode():
            for _ in range(n):
                z = self.enc(xt)
                d = (z * z).sum(-1, keepdim=True) - 2 * z @ embed.T + (embed * embed).sum(-1)
                codes = d.argmin(-1)
        return codes.numpy()


def _timed(fn, n):
    t0 = time.perf_counter()
    fn(n)
    return time.perf_counter() - t0


def bench_one(batch, reps, seconds):
    """Medians of alternating repetitions. The reference is measured at 1 thread and at all
    cores in every repetition and reported at its better median: OpenMP barriers on a busy
    2-core machine can make 2 threads far slower than 1, and the reference deserves its best."""
    data = _data(max(batch * 4, 4096))
    jax_impl, torch_impl = JaxImpl(batch, data), TorchImpl(batch, data)
    threads = sorted({1, os.cpu_count() or 1})
    x_assign = data["x"][:batch]
    runs = [("jax", jax_impl, None)] + [(f"torch@{t}", torch_impl, t) for t in threads]
    rates = {(kind, name): [] for kind in ("train", "assign") for name, _, _ in runs}

    def go(impl, t, kind, n):
        if t is not None:
            impl.with_threads(t)
        if kind == "train":
            return batch * n / _timed(impl.train, n)
        return batch * n / _timed(lambda k: impl.assign(k, x_assign), n)

    counts = {}
    for kind in ("train", "assign"):  # warm-up (compile, kmeans init), calibrate repetitions
        per = []
        for _, impl, t in runs:
            go(impl, t, kind, 2)
            per.append(batch / go(impl, t, kind, 2))
        counts[kind] = max(2, int(seconds / max(min(per), 1e-6)))
    for r in range(reps):
        order = runs if r % 2 == 0 else runs[::-1]
        for kind in ("train", "assign"):
            for name, impl, t in order:
                rates[(kind, name)].append(go(impl, t, kind, counts[kind]))
    med = {k: statistics.median(v) for k, v in rates.items()}
    out, best_threads = {}, {}
    for kind in ("train", "assign"):
        out[(kind, "jax")] = med[(kind, "jax")]
        t_best = max(threads, key=lambda t: med[(kind, f"torch@{t}")])
        out[(kind, "torch")] = med[(kind, f"torch@{t_best}")]
        best_threads[kind] = t_best
    return out, best_threads


def main(argv):
    del argv
    import jax
    import torch

    reps = 9 if _FULL.value else _REPS.value
    print(
        f"devices: jax {jax.devices()[0].platform} x{jax.device_count()} | torch threads "
        f"{torch.get_num_threads()} | cpu cores {os.cpu_count()} | reps {reps} (medians)"
    )
    print(
        f"{'batch':>6} {'train jax':>12} {'train torch':>12} {'ratio':>6} "
        f"{'assign jax':>12} {'assign torch':>13} {'ratio':>6}   (buyers/s)"
    )
    results = {}
    for b in [int(s) for s in _BATCHES.value]:
        med, threads = bench_one(b, reps, _SECONDS.value)
        results[b] = med
        tr = med[("train", "jax")] / med[("train", "torch")]
        ar = med[("assign", "jax")] / med[("assign", "torch")]
        print(
            f"{b:>6} {med[('train', 'jax')]:>12,.0f} {med[('train', 'torch')]:>12,.0f} "
            f"{tr:>5.2f}x {med[('assign', 'jax')]:>12,.0f} {med[('assign', 'torch')]:>13,.0f} "
            f"{ar:>5.2f}x   torch threads train={threads['train']} "
            f"assign={threads['assign']}",
            flush=True,
        )
    if 8192 in results:
        rate = results[8192][("assign", "jax")]
        print(
            f"paper scale: {PAPER_BUYERS:,} buyers at {rate:,.0f} buyers/s = "
            f"{PAPER_BUYERS / rate:.1f}s of assignment compute (jax, batch 8192)"
        )
    if _FULL.value:
        _paper_scale_assignment()
    for name, kind, b, goal in TARGETS:
        if b not in results:
            print(f"TARGET {name} measured=nan goal={goal} MISS (batch {b} not run)")
            continue
        ratio = results[b][(kind, "jax")] / results[b][(kind, "torch")]
        print(
            f"TARGET {name} measured={ratio:.2f} goal={goal} {'PASS' if ratio >= goal else 'MISS'}"
        )


def _paper_scale_assignment():
    """Streams 8.37M random buyers through the JAX assignment in batches of 8192, end to end."""
    import numpy as np

    from simpersona_jax.vqvae import encode

    impl = JaxImpl(8192, _data(16384))
    embed = impl.state.extra["codebook"]["embed"]
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(8192 * 4, 403)).astype(np.float32)

    def batches():
        for i in range(0, PAPER_BUYERS, 8192):
            j = (i // 8192) % 4
            yield pool[j * 8192 : (j + 1) * 8192][: min(8192, PAPER_BUYERS - i)]

    t0 = time.perf_counter()
    n = sum(
        len(c)
        for c, _ in encode.assign_batches(
            impl.assign_fn, impl.state.params, embed, batches(), chunk=impl.chunk
        )
    )
    dt = time.perf_counter() - t0
    print(f"paper scale measured: {n:,} buyers assigned in {dt:.1f}s ({n / dt:,.0f} buyers/s)")


if __name__ == "__main__":
    app.run(main)
