"""Freezing masks and schedules of the default optimiser."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from simpersona_jax.training import optim


def _cfg(**kw):
    return ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 0.1,
            "warmup_steps": 0,
            "schedule": "constant",
            "weight_decay": 0.1,
            **kw,
        }
    )


def _step(tx, params):
    grads = {k: jnp.ones_like(v) for k, v in params.items()}
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)


def test_bool_mask_freezes_whole_leaves():
    params = {"emb": jnp.ones((4, 2)), "head": jnp.ones((2,))}
    tx = optim.apply_trainable_mask(
        optim.default_optimizer(_cfg(), 10), {"emb": False, "head": True}
    )
    new = _step(tx, params)
    np.testing.assert_array_equal(new["emb"], params["emb"])
    assert not np.allclose(new["head"], params["head"])


def test_float_mask_freezes_rows_even_with_weight_decay():
    params = {"emb": jnp.ones((4, 2))}
    rows = jnp.array([[0.0], [0.0], [1.0], [1.0]])  # train only the last two rows
    new = _step(
        optim.apply_trainable_mask(optim.default_optimizer(_cfg(), 10), {"emb": rows}), params
    )
    np.testing.assert_array_equal(new["emb"][:2], 1.0)
    assert np.all(np.asarray(new["emb"][2:]) != 1.0)


def test_schedule_warmup_and_bad_names():
    sched = optim.learning_rate_schedule(_cfg(warmup_steps=10, schedule="cosine"), 110)
    assert float(sched(0)) == 0.0 and abs(float(sched(10)) - 0.1) < 1e-6
    assert abs(float(sched(110)) - 0.01) < 1e-6
    with pytest.raises(ValueError, match="schedule"):
        optim.learning_rate_schedule(_cfg(schedule="step"), 10)
    with pytest.raises(ValueError, match="optimizer.name"):
        optim.default_optimizer(_cfg(name="lion"), 10)
