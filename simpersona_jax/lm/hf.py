"""Hugging Face interop: load a local HF folder into (sharded) Flax params, export back.

Import reads config.json, one or many *.safetensors (with or without an index file) and never
materialises the whole model on one host: every parameter is built with
`jax.make_array_from_callback`, whose callback reads, through safetensors' lazy slices, only the
block of the HF tensor that lands on one addressable device. Export writes config.json (with the
persona tokens recorded under "simpersona"), sharded *.safetensors + index, and the tokenizer.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from safetensors import safe_open
from safetensors.numpy import save_file

from simpersona_jax.lm import sharding as shd
from simpersona_jax.lm.config import LMConfig
from simpersona_jax.lm.model import init_params

# our param path (inside 'layers' when per_layer) -> (HF name template, layout kind)
_LAYER_MAP = {
    ("attn", "q_kernel"): ("self_attn.q_proj.weight", "T_split_out"),
    ("attn", "k_kernel"): ("self_attn.k_proj.weight", "T_split_out"),
    ("attn", "v_kernel"): ("self_attn.v_proj.weight", "T_split_out"),
    ("attn", "o_kernel"): ("self_attn.o_proj.weight", "T_split_in"),
    ("attn", "q_bias"): ("self_attn.q_proj.bias", "split"),
    ("attn", "k_bias"): ("self_attn.k_proj.bias", "split"),
    ("attn", "v_bias"): ("self_attn.v_proj.bias", "split"),
    ("attn", "o_bias"): ("self_attn.o_proj.bias", "copy"),
    ("attn", "q_norm", "scale"): ("self_attn.q_norm.weight", "copy"),
    ("attn", "k_norm", "scale"): ("self_attn.k_norm.weight", "copy"),
    ("mlp", "gate_kernel"): ("mlp.gate_proj.weight", "T"),
    ("mlp", "up_kernel"): ("mlp.up_proj.weight", "T"),
    ("mlp", "down_kernel"): ("mlp.down_proj.weight", "T"),
    ("mlp", "gate_bias"): ("mlp.gate_proj.bias", "copy"),
    ("mlp", "up_bias"): ("mlp.up_proj.bias", "copy"),
    ("mlp", "down_bias"): ("mlp.down_proj.bias", "copy"),
    ("input_norm", "scale"): ("input_layernorm.weight", "copy"),
    ("post_attn_norm", "scale"): ("post_attention_layernorm.weight", "copy"),
}
_TOP_MAP = {
    ("embedding",): ("model.embed_tokens.weight", "copy"),
    ("final_norm", "scale"): ("model.norm.weight", "copy"),
    ("lm_head",): ("lm_head.weight", "T"),
}


def hf_name(path: tuple[str, ...], layer: int | None = None) -> tuple[str, str]:
    if path[0] == "layers":
        name, kind = _LAYER_MAP[path[1:]]
        return f"model.layers.{layer}.{name}", kind
    return _TOP_MAP[path]


# ------------------------------------------------------------------ layout transforms
def _to_hf(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "copy":
        return x
    if kind == "T":
        return x.T
    if kind == "T_split_out":  # [E, H, D] -> [H*D, E]
        return x.reshape(x.shape[0], -1).T
    if kind == "T_split_in":  # [H, D, E] -> [E, H*D]
        return x.reshape(-1, x.shape[-1]).T
    if kind == "split":  # [H, D] -> [H*D]
        return x.reshape(-1)
    raise ValueError(kind)


def _read_block(
    get_slice: Callable, kind: str, shape: tuple[int, ...], index: tuple[slice, ...]
) -> np.ndarray:
    """Read our-layout block `index` of a param of our `shape` from an HF tensor (lazy slices)."""
    idx = tuple(slice(*s.indices(n)) for s, n in zip(index, shape))
    if kind == "copy":
        return np.asarray(get_slice(idx))
    if kind == "T":
        return np.asarray(get_slice((idx[1], idx[0]))).T
    if kind == "T_split_out":
        e, h, d = idx
        hd = shape[2]
        rows = slice(h.start * hd, h.stop * hd)
        blk = np.asarray(get_slice((rows, e))).T.reshape(e.stop - e.start, h.stop - h.start, hd)
        return blk[:, :, d]
    if kind == "T_split_in":
        h, d, e = idx
        hd = shape[1]
        cols = slice(h.start * hd, h.stop * hd)
        blk = np.asarray(get_slice((e, cols))).T.reshape(h.stop - h.start, hd, e.stop - e.start)
        return blk[:, d, :]
    if kind == "split":
        h, d = idx
        hd = shape[1]
        blk = np.asarray(get_slice((slice(h.start * hd, h.stop * hd),))).reshape(
            h.stop - h.start, hd
        )
        return blk[:, d]
    raise ValueError(kind)


# ------------------------------------------------------------------ import
def read_config(folder: str, **overrides) -> LMConfig:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: not a Hugging Face model folder")
    with open(path) as f:
        return LMConfig.from_hf_dict(json.load(f), **overrides)


class _TensorIndex:
    """name -> open safetensors handle, over one or many shards (index file or header scan)."""

    def __init__(self, folder: str):
        files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
        if not files:
            raise FileNotFoundError(f"no *.safetensors in {folder}")
        self.handles = {f: safe_open(f, framework="numpy") for f in files}
        self.where: dict[str, str] = {}
        for f, h in self.handles.items():
            for k in h.keys():
                self.where[k] = f

    def has(self, name: str) -> bool:
        return name in self.where

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.handles[self.where[name]].get_slice(name).get_shape())

    def slicer(self, name: str) -> Callable:
        if name not in self.where:
            raise KeyError(f"tensor {name!r} not found in the checkpoint's *.safetensors")
        sl = self.handles[self.where[name]].get_slice(name)
        return lambda idx: sl[idx]


def _paths(tree) -> list[tuple[tuple[str, ...], object]]:
    flat = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: isinstance(x, nn.Partitioned)
    )[0]
    return [(tuple(k.key for k in kp), leaf) for kp, leaf in flat]


def load_params(
    folder: str, cfg: LMConfig | None = None, mesh: Mesh | None = None, rules=shd.LOGICAL_RULES
):
    """(cfg, params): params as jax.Arrays placed with the logical-axis shardings on `mesh`.

    Without a mesh, params go to the first device. Each device's block is read from disk by
    itself; the full model is never assembled in host memory.
    """
    cfg = cfg or read_config(folder)
    if mesh is None:
        mesh = shd.make_mesh(devices=jax.devices()[:1])
    abstract = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
    shardings = shd.param_shardings(abstract, mesh, rules)
    tensors = _TensorIndex(folder)
    pdt = jnp.dtype(cfg.param_dtype)
    out = {}
    sh_flat = dict(_paths(shardings))
    for path, leaf in _paths(abstract):
        shape = leaf.value.shape
        if path[0] == "layers":
            names = [hf_name(path, i) for i in range(cfg.num_layers)]
        else:
            names = [hf_name(path)]
        if path == ("lm_head",) and not tensors.has(names[0][0]):
            raise KeyError(f"{folder}: config has tie_word_embeddings=false but no lm_head.weight")
        for name, _ in names:
            if not tensors.has(name):
                raise KeyError(
                    f"{folder}: checkpoint lacks tensor {name!r} needed for param {'/'.join(path)}"
                )
        stacked = path[0] == "layers"
        per_shape = shape[1:] if stacked else shape
        kind = names[0][1]
        want = _to_hf(np.empty(per_shape, np.float32), kind).shape
        got = tensors.shape(names[0][0])
        if tuple(got) != tuple(want):
            raise ValueError(
                f"{folder}: tensor {names[0][0]} has shape {tuple(got)}, expected {want} "
                f"for config {cfg.family} ({'/'.join(path)})"
            )

        def callback(index, names=names, kind=kind, per_shape=per_shape, stacked=stacked):
            if not stacked:
                return _read_block(tensors.slicer(names[0][0]), kind, per_shape, index).astype(pdt)
            layers = range(*index[0].indices(cfg.num_layers))
            blocks = [
                _read_block(tensors.slicer(names[i][0]), kind, per_shape, index[1:]) for i in layers
            ]
            return np.stack(blocks).astype(pdt)

        arr = jax.make_array_from_callback(shape, sh_flat[path], callback)
        node = out
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = arr
    return cfg, out


def load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


# ------------------------------------------------------------------ export
def _gather(x) -> np.ndarray:
    if jax.process_count() > 1 and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def save_pretrained(
    folder: str,
    cfg: LMConfig,
    params,
    tokenizer=None,
    *,
    extra_config: dict | None = None,
    max_shard_bytes: int = 2 << 30,
    dtype: str | None = None,
) -> None:
    """Write a folder that transformers' AutoModelForCausalLM / AutoTokenizer load.

    Parameters are gathered one at a time (only process 0 writes). `extra_config` is merged into
    config.json (e.g. {"simpersona": {"persona_token_ids": [...]}}).
    """
    os.makedirs(folder, exist_ok=True)
    out_dt = np.dtype(jnp.dtype(dtype or cfg.param_dtype))
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for path, leaf in _paths(params):
        x = _gather(leaf)
        items = (
            [(hf_name(path, i), x[i]) for i in range(cfg.num_layers)]
            if path[0] == "layers"
            else [(hf_name(path), x)]
        )
        for (name, kind), v in items:
            t = np.ascontiguousarray(_to_hf(v, kind).astype(out_dt))
            if size + t.nbytes > max_shard_bytes and shards[-1]:
                shards.append({})
                size = 0
            shards[-1][name] = t
            size += t.nbytes
    if jax.process_index() != 0:
        return
    for old in glob.glob(os.path.join(folder, "*.safetensors")):
        os.remove(old)
    if len(shards) == 1:
        save_file(shards[0], os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, os.path.join(folder, fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in shard})
        total = sum(t.nbytes for s in shards for t in s.values())
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    hf = cfg.replace(param_dtype=str(out_dt)).to_hf_dict()
    hf.update(extra_config or {})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
