"""Sharded creation of the TrainState: jax.eval_shape first, then a jitted init whose outputs
land directly in their shardings (no full replica is ever materialised on one device)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding

from simpersona_jax.training import mesh as mesh_lib
from simpersona_jax.training.task import TrainState


def _split(variables: dict) -> tuple[Any, dict]:
    if "params" not in variables:
        raise ValueError(
            f"Task.init must return a dict with a 'params' collection, got {sorted(variables)}"
        )
    extra = {k: v for k, v in variables.items() if k != "params"}
    return variables["params"], extra


def state_shardings(boxed: dict, tx: optax.GradientTransformation, mesh: Mesh, rules):
    """(abstract unboxed TrainState with shardings, TrainState of NamedShardings), from the
    abstract (jax.eval_shape) output of Task.init, whose leaves may be LogicallyPartitioned."""
    params_b, extra_b = _split(boxed)
    params_sh = mesh_lib.shardings_for(params_b, mesh, rules)
    extra_sh = mesh_lib.shardings_for(extra_b, mesh, rules)
    params_abs = nn.meta.unbox(params_b)
    opt_abs = jax.eval_shape(tx.init, params_abs)
    rep = mesh_lib.replicated(mesh)

    # Optimiser leaves shaped like a parameter take that parameter's sharding; the rest replicate.
    # Frozen leaves of optax.multi_transform hold an empty MaskedNode: keep it as it is.
    def masked(x):
        return isinstance(x, optax.MaskedNode)

    opt_sh = optax.tree_map_params(
        tx,
        lambda x, s: x if masked(x) else s,
        opt_abs,
        params_sh,
        transform_non_params=lambda _: rep,
        is_leaf=lambda x: isinstance(x, NamedSharding) or masked(x),
    )
    abstract = TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=params_abs,
        extra=nn.meta.unbox(extra_b),
        opt_state=opt_abs,
    )
    shardings = TrainState(step=rep, params=params_sh, extra=extra_sh, opt_state=opt_sh)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return abstract, shardings


def create_state(
    task, tx: optax.GradientTransformation, shardings: TrainState, rng, sample, rules=None
) -> TrainState:
    """Run Task.init + tx.init under jit with out_shardings = the planned shardings.

    A task whose optional `initial_params(rng, param_shardings)` returns params (e.g. a pretrained
    checkpoint read straight into those shardings) starts from them: they enter the jitted init
    as (donated) arguments, not as constants, and replace Task.init's params (whose computation
    XLA drops). With `rules`, the init is traced inside mesh_lib.activate(mesh, rules).
    """
    load = getattr(task, "initial_params", None)
    loaded = load(rng, shardings.params) if load is not None else None

    def init(rng, sample, loaded):
        params, extra = _split(nn.meta.unbox(task.init(rng, sample)))
        if loaded is not None:
            if jax.tree.structure(loaded) != jax.tree.structure(params):
                raise ValueError(
                    f"{type(task).__name__}.initial_params returned a tree that differs from "
                    f"Task.init's params:\n{jax.tree.structure(loaded)}\nvs\n{jax.tree.structure(params)}"
                )
            for (path, a), b in zip(
                jax.tree_util.tree_leaves_with_path(loaded), jax.tree.leaves(params)
            ):
                if a.shape != b.shape or a.dtype != b.dtype:
                    raise ValueError(
                        f"{type(task).__name__}.initial_params: {jax.tree_util.keystr(path)} is "
                        f"{a.dtype}{list(a.shape)}, the model expects {b.dtype}{list(b.shape)}"
                    )
            params = loaded
        return TrainState(
            step=jnp.zeros((), jnp.int32), params=params, extra=extra, opt_state=tx.init(params)
        )

    mesh = jax.tree.leaves(shardings)[0].mesh
    rep = mesh_lib.replicated(mesh)
    # Every process holds the same sample; a replicated global array is built from local copies.
    sample = jax.tree.map(lambda x: jax.make_array_from_process_local_data(rep, x), dict(sample))
    jitted = jax.jit(init, out_shardings=shardings, donate_argnums=2)
    if rules is None:
        return jitted(rng, sample, loaded)
    with mesh_lib.activate(mesh, rules):
        return jitted(rng, sample, loaded)
