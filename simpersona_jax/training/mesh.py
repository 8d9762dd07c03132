"""Device mesh ('data', 'fsdp', 'tensor') and logical-axis -> mesh-axis rules kept as data."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis name -> mesh axis (or axes, or None = replicated). Models annotate parameters with
# logical names (nn.with_logical_partitioning); configs may replace this table wholesale.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    # Dense models (LM): embedding dim over fsdp, wide dims over tensor.
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("vocab", "tensor"),
    ("length", None),
    ("norm", None),
    ("layers", None),
    # Activations (nn.with_logical_constraint in lm/model.py; in effect inside `activate`):
    # batch over ('data', 'fsdp'), heads / MLP hidden / vocab over 'tensor'.
    ("act_batch", ("data", "fsdp")),
    ("act_len", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    # VQ-VAE: hidden widths over fsdp; input, latent and codebook replicated.
    ("input", None),
    ("hidden", "fsdp"),
    ("hidden_in", None),
    ("latent", None),
    ("codes", None),  # a K x D codebook is small: replicate
    ("classes", None),
)


def rules_from_config(rules) -> tuple[tuple[str, Any], ...]:
    """Normalise rules given as a list of [name, axis|[axes]|None] (config) into tuples."""
    if rules is None:
        return DEFAULT_RULES
    out = []
    for i, rule in enumerate(rules):
        if len(rule) != 2:
            raise ValueError(
                f"logical_axis_rules[{i}]={rule!r}: expected (logical_name, mesh_axes)"
            )
        name, axes = rule
        if isinstance(axes, (list, tuple)):
            axes = tuple(axes)
            bad = [a for a in axes if a not in MESH_AXES]
        else:
            bad = [] if axes is None or axes in MESH_AXES else [axes]
        if bad:
            raise ValueError(
                f"logical_axis_rules[{i}] ({name!r}) names unknown mesh axes {bad}; "
                f"mesh axes are {MESH_AXES}"
            )
        out.append((str(name), axes))
    return tuple(out)


def mesh_sizes(shape: dict | Any, num_devices: int) -> tuple[int, int, int]:
    """The (data, fsdp, tensor) sizes a mesh config gives on `num_devices` devices, with the -1
    axis filled in; ValueError naming the problem when the config does not fit."""
    unknown = set(shape) - set(MESH_AXES) - {"num_devices"}
    if unknown:
        raise ValueError(
            f"mesh config has unknown keys {sorted(unknown)}; expected {MESH_AXES} "
            "and optionally num_devices"
        )
    if shape.get("num_devices"):
        if not 1 <= int(shape["num_devices"]) <= num_devices:
            raise ValueError(
                f"mesh.num_devices={shape['num_devices']}: expected 1..{num_devices} "
                f"(the devices present)"
            )
        num_devices = int(shape["num_devices"])
    sizes = [int(shape[a]) if a in shape else 1 for a in MESH_AXES]
    named = dict(zip(MESH_AXES, sizes))
    if any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh {named}: axis sizes must be >= 1 (or -1: fill the rest)")
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh {named}: at most one axis may be -1")
    if -1 in sizes:
        rest = math.prod(s for s in sizes if s != -1)
        if num_devices % rest:
            raise ValueError(f"mesh {named}: {num_devices} devices are not divisible by {rest}")
        sizes[sizes.index(-1)] = num_devices // rest
    if math.prod(sizes) != num_devices:
        raise ValueError(f"mesh {named} needs {math.prod(sizes)} devices, have {num_devices}")
    return tuple(sizes)


def make_mesh(shape: dict | Any, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Mesh over all (or the given) devices; one axis size may be -1 (fill the rest).

    shape: {"data": .., "fsdp": .., "tensor": ..} and optionally "num_devices" (use only the
    first n devices, e.g. 1 for a single-device reference run).
    """
    devices = list(jax.devices() if devices is None else devices)
    sizes = mesh_sizes(shape, len(devices))
    devices = devices[: math.prod(sizes)]
    return jax.make_mesh(sizes, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


@contextlib.contextmanager
def activate(mesh: Mesh, rules):
    """The mesh and logical-axis rules in context: models' nn.with_logical_constraint (and
    lm/model.py's constraints) take effect while tracing init, train step or sampling."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield


def fit_spec(spec: P, shape: tuple[int, ...], mesh: Mesh, where: str) -> P:
    """Drop mesh axes from dims they do not divide evenly (those dims are replicated instead)."""
    dims = list(spec) + [None] * (len(shape) - len(spec))
    fitted = []
    for size, axes in zip(shape, dims):
        if axes is None:
            fitted.append(None)
            continue
        axes_t = axes if isinstance(axes, tuple) else (axes,)
        kept = tuple(a for a in axes_t if mesh.shape[a] > 1)
        while kept and size % math.prod(mesh.shape[a] for a in kept):
            logging.info(
                "%s: dim %d not divisible by mesh axes %s; dropping %s", where, size, kept, kept[-1]
            )
            kept = kept[:-1]
        fitted.append(None if not kept else (kept[0] if len(kept) == 1 else kept))
    while fitted and fitted[-1] is None:  # P(None, None) == P(): keep specs canonical
        fitted.pop()
    return P(*fitted)


def shardings_for(abstract_boxed: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings for an (abstract) pytree whose leaves may be nn.LogicallyPartitioned.

    The result has the structure of the UNBOXED tree. Unannotated leaves are replicated.
    """
    logical = nn.get_partition_spec(abstract_boxed)
    unboxed = nn.meta.unbox(abstract_boxed)
    mesh_specs = nn.logical_to_mesh(logical, rules)
    paths_specs, treedef = jax.tree_util.tree_flatten_with_path(
        mesh_specs, is_leaf=lambda x: isinstance(x, P)
    )
    leaves = treedef.flatten_up_to(unboxed)
    out = []
    for (path, spec), leaf in zip(paths_specs, leaves):
        spec = spec if isinstance(spec, P) else P()
        out.append(
            NamedSharding(
                mesh, fit_spec(spec, tuple(np.shape(leaf)), mesh, jax.tree_util.keystr(path))
            )
        )
    return jax.tree_util.tree_unflatten(treedef, out)


def batch_axes(rules) -> tuple[str, ...]:
    """The mesh axes a batch's leading dimension is split over (the 'batch' rule)."""
    axes = nn.logical_to_mesh_axes(("batch",), rules)
    axes = axes[0] if len(axes) else None
    return axes if isinstance(axes, tuple) else (axes,) if axes else ()


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
    """Sharding of a batch's leading dimension, from the 'batch' rule."""
    spec = nn.logical_to_mesh_axes(("batch",), rules)
    return NamedSharding(mesh, spec)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())
