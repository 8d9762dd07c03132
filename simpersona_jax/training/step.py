"""The pure train step and its jitted, sharded, donating form."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from simpersona_jax.training.task import TrainState


def make_train_step(
    task, tx: optax.GradientTransformation, base_rng: jax.Array
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """state, global batch -> new state, scalar metrics.

    A step whose loss or gradient norm is not finite returns the OLD state unchanged (and
    metrics["nonfinite"] = 1), so the host can stop with the last good parameters intact.
    """

    def train_step(state: TrainState, batch) -> tuple[TrainState, dict]:
        rng = jax.random.fold_in(base_rng, state.step)

        def loss_fn(params):
            return task.loss(params, state.extra, batch, rng, state.step)

        (loss, (metrics, new_extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = TrainState(step=state.step + 1, params=new_params, extra=new_extra, opt_state=new_opt)
        kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = dict(
            metrics, loss=loss, grad_norm=grad_norm, nonfinite=1.0 - finite.astype(jnp.float32)
        )
        return kept, metrics

    return train_step


def jit_train_step(step_fn, state_shardings: TrainState, batch_sharding, mesh):
    """jit with explicit in/out shardings; the incoming state's buffers are donated."""
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return jax.jit(
        step_fn,
        in_shardings=(state_shardings, batch_sharding),
        out_shardings=(state_shardings, rep),
        donate_argnums=(0,),
    )
