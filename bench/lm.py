"""Agent LM throughput: this JAX/Flax implementation vs transformers PyTorch on the same weights.

Run:
  python bench/lm.py            # CPU: the embedded default config, batch 32, prompt 256, 32 new tokens
  python bench/lm.py --full     # CPU, a wider model (hidden 512, 8 layers)
  python bench/lm.py --gpu      # accelerator (< 5 min): MFU of the stage-2 step of a Qwen3-0.6B-shaped
                                # model (bf16, chunked loss) + VQ-VAE assignment buyers/s; tiny on CPU

Both sides get the same weights (random Qwen3 model built with transformers, saved to a temp
folder, imported with simpersona_jax.lm.hf). Training: one AdamW step on batch 32 x 256 tokens
(next-token loss; JAX jitted, PyTorch eager). Generation: greedy, 256-token prompts, exactly 32
new tokens (no early stop), KV cache on both sides; the two must produce identical tokens.
Measurements alternate JAX / PyTorch for --reps rounds; medians and ratios are printed, then
  TARGET lm_train_speedup measured=<x> goal=1.2 PASS|MISS
  TARGET lm_generate_speedup measured=<x> goal=3 PASS|MISS
and with --gpu: TARGET lm_mfu measured=<%> goal=45 PASS|MISS.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _hf_model(folder: str, h: int, layers: int, heads: int, kv: int, hd: int, mlp: int, vocab: int):
    import torch
    import transformers

    cfg = transformers.Qwen3Config(
        vocab_size=vocab,
        hidden_size=h,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=hd,
        tie_word_embeddings=True,
        max_position_embeddings=4096,
        eos_token_id=None,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    model.save_pretrained(folder)
    return model


def _jax_train_step(cfg, params, lr=1e-4):
    import jax
    import jax.numpy as jnp
    import optax

    from simpersona_jax.lm import loss as lm_loss
    from simpersona_jax.lm.model import Decoder

    tx = optax.adamw(lr)
    opt = tx.init(params)

    def loss_fn(p, batch):  # the SFT task's loss: chunked, no [B, T, V] logits
        hidden, _ = Decoder(cfg).apply({"params": p}, batch["inputs"], return_hidden=True)
        return lm_loss.masked_loss(
            hidden,
            lm_loss.output_weight(cfg, p),
            batch,
            chunk=cfg.loss_chunk,
            dtype=jnp.dtype(cfg.dtype),
        )[0]

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(p, o, batch):
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    return step, params, opt


def bench_cpu(args):
    import jax
    import torch

    from simpersona_jax.lm import hf
    from simpersona_jax.lm.sampling import decode

    torch.set_num_threads(os.cpu_count() or 2)
    dims = dict(h=128, layers=4, heads=4, kv=2, hd=32, mlp=384, vocab=2304)  # the embedded default
    if args.full:
        dims = dict(h=512, layers=8, heads=8, kv=4, hd=64, mlp=1536, vocab=8192)
    b, p, n = args.batch, args.prompt, args.new_tokens
    folder = tempfile.mkdtemp(prefix="bench_lm_")
    tmodel = _hf_model(folder, **dims)
    cfg, params = hf.load_params(folder)
    print(
        f"config: qwen3 {dims} params={cfg.num_params() / 1e6:.2f}M  batch={b} prompt={p} new={n} "
        f"devices={jax.devices()[0].platform} torch_threads={torch.get_num_threads()} "
        f"load_average={os.getloadavg()[0]:.2f}"
    )
    rng = np.random.RandomState(0)
    tokens = rng.randint(1, dims["vocab"], (b, p + 1)).astype(np.int32)
    batch = {
        "inputs": tokens[:, :-1],
        "targets": tokens[:, 1:],
        "loss_mask": np.ones((b, p), np.int32),
    }

    # ---- training
    step, jp, jo = _jax_train_step(cfg, params)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-4)
    t_inp = torch.tensor(tokens[:, :-1], dtype=torch.long)
    t_tgt = torch.tensor(tokens[:, 1:], dtype=torch.long)
    tmodel.train()

    def torch_step():
        topt.zero_grad(set_to_none=True)
        logits = tmodel(t_inp).logits
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), t_tgt.reshape(-1)
        )
        loss.backward()
        topt.step()
        return float(loss)

    state = {"p": jp, "o": jo}

    def jax_step():
        state["p"], state["o"], loss = step(state["p"], state["o"], batch)
        return float(loss)

    l0, l1 = jax_step(), torch_step()  # warm-up / compile
    (
        jax_step(),
        torch_step(),
    )  # jax compiles again: its outputs' sharding differs from the loaded params'
    print(f"train: first-step loss jax={l0:.4f} torch={l1:.4f}")
    jt, tt = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            jax_step()
        jt.append(args.train_steps * b * p / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            torch_step()
        tt.append(args.train_steps * b * p / (time.perf_counter() - t0))
    train_ratio = statistics.median(jt) / statistics.median(tt)
    print(
        f"train tokens/s: jax median={statistics.median(jt):,.0f} torch median={statistics.median(tt):,.0f} "
        f"ratio={train_ratio:.2f}x  (per rep jax={[round(x) for x in jt]} torch={[round(x) for x in tt]})"
    )

    # ---- generation (fresh weights from the folder on both sides)
    tmodel = _hf_model(folder, **dims).eval()
    cfg, params = hf.load_params(folder)
    prompts = rng.randint(1, dims["vocab"], (b, p)).astype(np.int32)
    pad = np.zeros((b,), np.int32)
    seeds = np.arange(b, dtype=np.uint32)
    zeros_f, zeros_i, ones_f = (
        np.zeros((b,), np.float32),
        np.zeros((b,), np.int32),
        np.ones((b,), np.float32),
    )
    no_stop = np.full((16,), -1, np.int32)

    def jax_gen():
        out, _ = decode(
            params,
            prompts,
            pad,
            seeds,
            zeros_f,
            zeros_i,
            ones_f,
            no_stop,
            cfg=cfg,
            max_new_tokens=n,
        )
        return np.asarray(out)

    t_prompts = torch.tensor(prompts, dtype=torch.long)

    def torch_gen():
        with torch.no_grad():
            out = tmodel.generate(
                t_prompts,
                attention_mask=torch.ones_like(t_prompts),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        return out[:, p:].numpy()

    a, c = jax_gen(), torch_gen()
    agree = float((a == c).mean())
    print(f"generate: greedy tokens identical jax vs torch on {agree * 100:.1f}% of positions")
    jg, tg = [], []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        jax_gen()
        jg.append(b * n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        torch_gen()
        tg.append(b * n / (time.perf_counter() - t0))
    gen_ratio = statistics.median(jg) / statistics.median(tg)
    print(
        f"generated tokens/s: jax median={statistics.median(jg):,.0f} torch median={statistics.median(tg):,.0f} "
        f"ratio={gen_ratio:.2f}x  (per rep jax={[round(x) for x in jg]} torch={[round(x) for x in tg]})"
    )
    print(
        "load average (1/5/15 min) at the end: %.2f %.2f %.2f (2 cores; other processes slow both sides)"
        % os.getloadavg()
    )
    print(
        f"TARGET lm_train_speedup measured={train_ratio:.2f} goal=1.2 {'PASS' if train_ratio >= 1.2 else 'MISS'}"
    )
    print(
        f"TARGET lm_generate_speedup measured={gen_ratio:.2f} goal=3 {'PASS' if gen_ratio >= 3 else 'MISS'}"
    )


def bench_gpu(args):
    """MFU of one training step of a Qwen3-0.6B-shaped model in bf16 on one accelerator, then VQ-VAE
    assignment buyers/s. Without an accelerator (or with --smoke) it runs tiny shapes on CPU: a
    check that the script works, not a measurement."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from simpersona_jax.lm.config import named_model
    from simpersona_jax.lm.model import init_params
    from simpersona_jax.training import chips

    dev = jax.devices()[0]
    smoke = args.smoke or dev.platform == "cpu"
    cfg, _ = named_model(
        "qwen3-0.6b",
        dtype="bfloat16",
        param_dtype="float32",
        remat_policy=args.remat,
        attention_impl=args.attention,
    )
    b, t = args.gpu_batch, args.gpu_seq
    if smoke:
        print(f"no accelerator ({dev.platform}) or --smoke: tiny shapes, the numbers mean nothing")
        cfg = cfg.replace(
            vocab_size=1024,
            hidden_size=64,
            intermediate_size=128,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            head_dim=16,
        )
        b, t = 2, 128
    params = jax.jit(lambda k: nn.meta.unbox(init_params(cfg, k)))(jax.random.key(0))
    step, jp, jo = _jax_train_step(cfg, params)
    rng = np.random.RandomState(0)
    tokens = jnp.asarray(rng.randint(1, cfg.vocab_size, (b, t + 1)).astype(np.int32))
    batch = {
        "inputs": tokens[:, :-1],
        "targets": tokens[:, 1:],
        "loss_mask": jnp.ones((b, t), jnp.int32),
    }
    jp, jo, loss = step(jp, jo, batch)
    loss.block_until_ready()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        for _ in range(args.train_steps):
            jp, jo, loss = step(jp, jo, batch)
        loss.block_until_ready()
        times.append((time.perf_counter() - t0) / args.train_steps)
    dt = statistics.median(times)
    tok_s = b * t / dt
    flops = cfg.flops_per_token(t) * tok_s
    try:
        peak = chips.for_device_kind(dev.device_kind).peak_flops
    except ValueError:
        peak = args.peak_tflops * 1e12
    mfu = 100 * flops / peak
    print(
        f"device={dev.device_kind} params={cfg.num_params() / 1e6:.0f}M batch={b} seq={t} remat={args.remat} "
        f"attention={args.attention} step={dt * 1e3:.1f}ms tokens/s={tok_s:,.0f} "
        f"model TFLOP/s={flops / 1e12:.1f} (peak {peak / 1e12:.0f} bf16 dense)"
    )
    rate = _assign_rate(65536 if not smoke else 4096, args.reps)
    print(
        f"VQ-VAE assignment (experiments/vqvae.py model, K=256): {rate:,.0f} buyers/s "
        f"({8_370_000 / rate:.2f}s for the paper's 8.37M buyers)"
    )
    print(
        f"TARGET lm_mfu measured={mfu:.1f} goal=45 {'PASS' if mfu >= 45 and not smoke else 'MISS'}"
    )


def _assign_rate(batch: int, reps: int) -> float:
    """Buyers/s of the production assignment (vqvae/encode.Assigner), random model and codebook."""
    import importlib.util

    import flax.linen as nn
    import jax

    from simpersona_jax.vqvae import encode
    from simpersona_jax.vqvae.task import build_model

    spec = importlib.util.spec_from_file_location(
        "vqvae_exp",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments", "vqvae.py"),
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    model = build_model(c.model)
    x = np.random.RandomState(0).normal(size=(batch, int(c.model.input_dim))).astype(np.float32)
    params = nn.meta.unbox(model.init(jax.random.key(0), x[:8]))["params"]
    embed = jax.random.normal(
        jax.random.key(1), (int(c.model.codebook_size), int(c.model.latent_dim))
    )
    assign = encode.Assigner(model, cosine=False, chunk=int(c.eval.chunk))
    x_dev = jax.device_put(x, assign.rows)
    jax.block_until_ready(assign(params, embed, x_dev))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(assign(params, embed, x_dev))
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--full", action="store_true", help="CPU: a wider model")
    ap.add_argument("--gpu", action="store_true", help="MFU of a ~0.6B model on the accelerator")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=2)
    ap.add_argument("--gpu-batch", type=int, default=16)
    ap.add_argument("--gpu-seq", type=int, default=2048)
    ap.add_argument("--remat", default="dots_no_batch")
    ap.add_argument(
        "--attention", default="xla", help="xla | jax | cudnn (jax.nn.dot_product_attention)"
    )
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="bf16 dense peak when the device is not in training/chips.py",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="--gpu with tiny shapes (a CPU check of the script)"
    )
    args = ap.parse_args()
    if args.gpu:
        bench_gpu(args)
    else:
        bench_cpu(args)


if __name__ == "__main__":
    main()
