"""The default optimiser from config.optimizer, plus parameter freezing masks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


def learning_rate_schedule(cfg, num_steps: int) -> optax.Schedule:
    """Linear warmup then cosine/linear/constant decay to cfg.final_lr_fraction * lr."""
    lr = float(cfg.learning_rate)
    warmup = int(cfg.get("warmup_steps", 0))
    kind = cfg.get("schedule", "cosine")
    final = lr * float(cfg.get("final_lr_fraction", 0.1))
    decay_steps = max(num_steps - warmup, 1)
    if kind == "cosine":
        decay = optax.cosine_decay_schedule(lr, decay_steps, alpha=final / lr if lr else 0.0)
    elif kind == "linear":
        decay = optax.linear_schedule(lr, final, decay_steps)
    elif kind == "constant":
        decay = optax.constant_schedule(lr)
    else:
        raise ValueError(f"optimizer.schedule={kind!r}: expected cosine, linear or constant")
    if warmup <= 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])


def default_optimizer(cfg, num_steps: int) -> optax.GradientTransformation:
    """adamw (or adam / sgd) with optional global-norm clipping."""
    schedule = learning_rate_schedule(cfg, num_steps)
    name = cfg.get("name", "adamw")
    if name == "adamw":
        tx = optax.adamw(
            schedule,
            b1=cfg.get("b1", 0.9),
            b2=cfg.get("b2", 0.999),
            weight_decay=cfg.get("weight_decay", 0.0),
        )
    elif name == "adam":
        tx = optax.adam(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999))
    elif name == "sgd":
        tx = optax.sgd(schedule, momentum=cfg.get("momentum", None))
    else:
        raise ValueError(f"optimizer.name={name!r}: expected adamw, adam or sgd")
    clip = cfg.get("grad_clip_norm", None)
    if clip:
        tx = optax.chain(optax.clip_by_global_norm(float(clip)), tx)
    return tx


def _scale_by_mask(mask_tree: Any) -> optax.GradientTransformation:
    """Multiplies updates elementwise by float masks (1 = train, 0 = frozen)."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, m: u * jnp.asarray(m, u.dtype), updates, mask_tree), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def apply_trainable_mask(
    tx: optax.GradientTransformation, mask: Any | None
) -> optax.GradientTransformation:
    """Freeze parameters: bool leaves via optax.multi_transform (frozen leaves keep no optimiser
    state), array leaves via an elementwise multiply of the final updates."""
    if mask is None:
        return tx
    leaves = jax.tree.leaves(mask)
    if all(isinstance(m, bool) for m in leaves):
        labels = jax.tree.map(lambda m: "train" if m else "freeze", mask)
        return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
    float_mask = jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), mask)
    return optax.chain(tx, _scale_by_mask(float_mask))
