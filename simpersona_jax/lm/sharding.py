"""Logical-axis rules of the LM and helpers to place it on a ('data','fsdp','tensor') mesh.

Parameters: vocab, (kv-)heads and the MLP hidden dim go on 'tensor', embed on 'fsdp' (the same
as training.mesh.DEFAULT_RULES, which this module uses). Activations: batch on ('data','fsdp'),
heads / mlp / vocab on 'tensor'; they take effect inside training.mesh.activate(mesh, rules).
Dimensions a mesh axis does not divide evenly are replicated (training.mesh.fit_spec).
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh

from simpersona_jax.training import mesh as mesh_lib

# The loop's default rules hold the LM's parameter and activation names (one table).
LOGICAL_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = mesh_lib.DEFAULT_RULES


def param_shardings(boxed_params, mesh: Mesh, rules=LOGICAL_RULES):
    """NamedSharding tree (unboxed structure) for a tree of nn.Partitioned (abstract or real) params."""
    return mesh_lib.shardings_for(boxed_params, mesh, rules)


def make_mesh(data: int = 1, fsdp: int = 1, tensor: int = 1, devices=None) -> Mesh:
    devices = list(devices if devices is not None else jax.devices())
    n = data * fsdp * tensor
    return mesh_lib.make_mesh(
        {"data": data, "fsdp": fsdp, "tensor": tensor, "num_devices": n}, devices
    )
