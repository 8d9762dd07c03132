"""Size a training run before paying for it: the config's real train step compiled for a TPU
topology (deviceless, libtpu) or the local devices, with per-chip memory against HBM, FLOPs and
bytes per step, collectives and a roofline estimate (the library behind compile_check).

XLA's cost analysis counts a loop body once: the LM's layer scan and the loss's chunk scan would
be counted as one layer and one chunk. LM FLOPs, bytes and collective bytes are therefore taken
from two probe compiles of the same step with 1 and 2 unrolled layers and one loss chunk,
extrapolated linearly in depth: cost(L) = cost(1) + (L - 1) x (cost(2) - cost(1)). Memory is the
full model's compile. MFU uses model FLOPs (LMConfig.flops_per_token: 6N + attention per
token; stage 1, which computes no weight gradients, 4N + attention: two thirds of it).
"""

from __future__ import annotations

import os

import numpy as np

from simpersona_jax.training import chips as chips_lib
from simpersona_jax.training import compile as compile_lib


def shape_task(config, model: str | None = None):
    """The config's task built for shapes only (no data is read): the LM task from a named model
    shape (lm/config.MODEL_SHAPES), the config.json + tokenizer of config.lm.init_from or the
    embedded default (config.lm.model, lm.init_from=""); the
    VQ-VAE task on zero arrays of the config's input width."""
    if config.task == "lm_sft":
        from simpersona_jax.lm import config as lm_config
        from simpersona_jax.lm import hf
        from simpersona_jax.lm.task import SFTTask

        if model:
            cfg, n_tokens = lm_config.named_model(model)
        elif not config.lm.init_from:  # the embedded default: config.lm.model + a BPE of this size
            n_tokens = int(config.lm.tokenizer_vocab_size)
            cfg = lm_config.LMConfig(vocab_size=n_tokens, **dict(config.lm.model))
        elif config.lm.init_from and os.path.exists(
            os.path.join(config.lm.init_from, "config.json")
        ):
            cfg = hf.read_config(config.lm.init_from)
            n_tokens = len(hf.load_tokenizer(config.lm.init_from))
        else:
            raise ValueError(
                f"config.lm.init_from={config.lm.init_from!r} has no config.json: name a model "
                f"shape with --model (one of {sorted(lm_config.MODEL_SHAPES)})"
            )
        return SFTTask.for_shapes(config, cfg, n_tokens)
    if config.task == "vqvae":
        from simpersona_jax.vqvae.task import BATCH_KEYS, VQVAETask

        n = max(int(config.model.codebook_size), int(config.data.get("init_sample_size", 4096)))
        arrays = {
            k: np.zeros(
                (n, int(config.model.input_dim)) if k == "x" else (n,),
                np.float32 if k == "x" else np.int32,
            )
            for k in BATCH_KEYS
        }
        return VQVAETask(config, arrays={"train": arrays})
    raise ValueError(f"config.task={config.task!r}: compile_check knows 'lm_sft' and 'vqvae'")


def _lm_probe(config, task, layers: int):
    """The same LM step with `layers` unrolled layers and the loss in one chunk (no loops)."""
    from simpersona_jax.lm.task import SFTTask

    probe = SFTTask.for_shapes(
        config,
        task.cfg.replace(num_layers=layers, unroll_layers=True),
        min(task.persona_ids or [task.cfg.vocab_size]),
    )
    probe.cfg = probe.cfg.replace(vocab_size=task.cfg.vocab_size, loss_chunk=0)
    return probe


def check(
    config, devices, chip: chips_lib.Chip, *, model: str | None = None, probe: bool = True
) -> dict:
    """Compile and measure; returns the report's numbers (see `report`)."""
    task = shape_task(config, model)
    full = compile_lib.compile_train_step(config, task, devices)
    mem = compile_lib.memory(full)
    cost = compile_lib.cost(full)
    colls = compile_lib.collectives(full.hlo)
    n = len(devices)
    out = dict(
        task=config.task,
        devices=n,
        device_kind=full.device_kind,
        chip=chip,
        memory=mem,
        compiled_cost=cost,
        compile_s=full.seconds,
        collectives=colls,
    )
    if config.task == "lm_sft":
        cfg = task.cfg
        seq = int(config.data.seq_len)
        tokens = int(config.global_batch_size) * seq
        if probe:
            c1, c2 = (
                compile_lib.cost(
                    compile_lib.compile_train_step(config, _lm_probe(config, task, k), devices)
                )
                for k in (1, 2)
            )
            cost = c1.extrapolate(c2, cfg.num_layers - 1)
            out["cost_method"] = (
                f"1- and 2-layer unrolled probes extrapolated to {cfg.num_layers} layers"
            )
        else:
            out["cost_method"] = "as compiled (loop bodies counted once)"
        per_token = cfg.flops_per_token(seq)
        if task.mode == "persona_rows":
            per_token *= 2 / 3
        out.update(
            model=model or config.lm.init_from or "embedded default",
            stage=task.mode,
            model_flops=per_token * tokens,
            params=cfg.num_params(),
            tokens=tokens,
        )
    else:
        out.update(
            model="vqvae",
            stage="train",
            model_flops=cost.flops * n,
            cost_method="as compiled",
            tokens=int(config.global_batch_size),
        )
    out["cost"] = cost
    out["roofline"] = compile_lib.roofline(cost, chip, out["model_flops"], n)
    return out


def fits(result: dict, hbm_fraction: float) -> bool:
    return result["memory"]["peak"] <= hbm_fraction * result["chip"].hbm_bytes


def format_collectives(colls: dict[str, tuple[int, int]]) -> str:
    """'kind: count x, MB' for each kind of `training.compile.collectives`, or 'none'."""
    return ", ".join(f"{k}: {n} x, {b / 1e6:.1f} MB" for k, (n, b) in colls.items()) or "none"


def report(r: dict, hbm_fraction: float = 0.9) -> str:
    gb = 1e9
    m, c, rf, chip = r["memory"], r["cost"], r["roofline"], r["chip"]
    lines = [
        f"{r['model']} {r['stage']} on {r['devices']} x {r['device_kind']} (compiled in {r['compile_s']:.1f}s)",
        f"per-chip memory: arguments {m['argument'] / gb:.2f} GB + outputs {m['output'] / gb:.2f} GB + temp "
        f"{m['temp'] / gb:.2f} GB - aliased {m['alias'] / gb:.2f} GB = peak {m['peak'] / gb:.2f} GB of "
        f"{chip.hbm_bytes / gb:.2f} GB HBM ({100 * m['peak'] / chip.hbm_bytes:.1f}%; limit "
        f"{100 * hbm_fraction:.0f}%: {'fits' if fits(r, hbm_fraction) else 'DOES NOT FIT'})",
        f"per-chip cost per step ({r['cost_method']}): {c.flops / 1e12:.2f} TFLOP, HBM "
        f"{c.bytes_accessed / gb:.2f} GB, collectives {c.collective_bytes / gb:.3f} GB; model "
        f"{r['model_flops'] / 1e12:.2f} TFLOP/step over all chips",
        "collectives in the HLO (kind: count, per-device bytes; loop bodies once): "
        + format_collectives(r["collectives"]),
        f"roofline on {chip.name} ({chip.peak_flops / 1e12:.0f} TFLOP/s bf16, HBM {chip.hbm_bw / gb:.0f} GB/s, "
        f"ICI {chip.ici_bw / gb:.0f} GB/s; {chip.source}): compute {rf['compute_s'] * 1e3:.1f} ms, HBM "
        f"{rf['hbm_s'] * 1e3:.1f} ms, ICI {rf['ici_s'] * 1e3:.1f} ms -> step {rf['step_s'] * 1e3:.1f} ms "
        f"({rf['bound']}-bound), predicted MFU {100 * rf['mfu']:.1f}%",
    ]
    return "\n".join(lines)


def table_row(r: dict, topology: str) -> str:
    """One markdown row: model, stage, topology, per-chip GB, FLOPs/step, collectives, step, MFU."""
    colls = ", ".join(f"{k} {n}" for k, (n, _) in r["collectives"].items()) or "-"
    return (
        f"| {r['model']} | {r['stage']} | {topology} | {r['memory']['peak'] / 1e9:.1f} | "
        f"{r['cost'].flops * r['devices'] / 1e12:.1f} T | {colls} | "
        f"{r['roofline']['step_s'] * 1e3:.1f} ms | {100 * r['roofline']['mfu']:.0f}% |"
    )
