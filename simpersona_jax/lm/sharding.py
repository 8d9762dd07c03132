"""Logical-axis rules of the LM and their resolution to NamedShardings on a ('data','fsdp','tensor') mesh.

Parameters: vocab and (kv-)heads and the MLP hidden dim go on 'tensor', embed on 'fsdp'.
Activations: batch on ('data','fsdp'), heads / mlp / vocab on 'tensor'. A dimension that a mesh
axis does not divide evenly (e.g. 2 KV heads on tensor=4) is replicated instead of failing.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

LOGICAL_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("head_dim", None),
    ("layers", None),
    ("act_batch", ("data", "fsdp")),
    ("act_len", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
)


def _axis_size(mesh: Mesh, axes) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return int(np.prod([mesh.shape[a] for a in axes]))


def spec_for(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules=LOGICAL_RULES) -> P:
    """PartitionSpec for one array from its logical names; uneven or reused mesh axes are dropped."""
    table = dict(rules)
    used: set[str] = set()
    out = []
    for name, dim in zip(names, shape):
        axes = table.get(name) if name is not None else None
        if axes is not None:
            flat = (axes,) if isinstance(axes, str) else tuple(axes)
            flat = tuple(a for a in flat if a in mesh.shape and a not in used)
            if not flat or dim % _axis_size(mesh, flat):
                axes = None
            else:
                used.update(flat)
                axes = flat[0] if len(flat) == 1 else flat
        out.append(axes)
    return P(*out)


def param_shardings(boxed_params, mesh: Mesh, rules=LOGICAL_RULES):
    """NamedSharding tree (unboxed structure) for a tree of nn.Partitioned (abstract or real) params."""

    def one(x):
        if isinstance(x, nn.Partitioned):
            return NamedSharding(mesh, spec_for(x.names, x.value.shape, mesh, rules))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, boxed_params, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def make_mesh(data: int = 1, fsdp: int = 1, tensor: int = 1, devices=None) -> Mesh:
    devices = np.asarray(devices if devices is not None else jax.devices())
    n = data * fsdp * tensor
    if n > devices.size:
        raise ValueError(f"mesh data={data} fsdp={fsdp} tensor={tensor} needs {n} devices, have {devices.size}")
    return Mesh(devices.reshape(-1)[:n].reshape(data, fsdp, tensor), ("data", "fsdp", "tensor"))
