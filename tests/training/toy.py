"""A tiny Task for the train-loop tests: a 2-layer MLP regression with an EMA side statistic."""

from __future__ import annotations

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from simpersona_jax.training import OptionalTaskHooks


class _Mlp(nn.Module):
    @nn.compact
    def __call__(self, x):
        init = nn.initializers.lecun_normal()
        h = nn.Dense(
            16,
            kernel_init=nn.with_logical_partitioning(init, ("input", "hidden")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("hidden",)),
        )(x)
        h = nn.tanh(h)
        return nn.Dense(1, kernel_init=nn.with_logical_partitioning(init, ("hidden", None)))(h)[
            :, 0
        ]


class _Rows(grain.sources.RandomAccessDataSource):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i], "row": np.int64(i)}


class Recording(grain.DatasetIterator):
    """Forwards a Grain iterator and records the rows of every batch it hands out."""

    def __init__(self, parent, log):
        super().__init__(parent)
        self.log = log

    def __next__(self):
        batch = next(self._parent)
        self.log.append(np.asarray(batch["row"]).copy())
        return batch

    def get_state(self):
        return self._parent.get_state()

    def set_state(self, state):
        self._parent.set_state(state)


class ToyTask(OptionalTaskHooks):
    example_name = "rows"

    def __init__(self, n=256, dim=8, nan_at_step=None, log=None):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(n, dim)).astype(np.float32)
        self.y = (np.sin(self.x[:, 0]) + 0.5 * self.x[:, 1]).astype(np.float32)
        self.model = _Mlp()
        self.nan_at_step = nan_at_step
        self.log = [] if log is None else log

    def make_loader(self, *, global_batch_size, seed, shard_index, shard_count):
        ds = grain.MapDataset.source(_Rows(self.x, self.y))[shard_index::shard_count]
        ds = ds.shuffle(seed=seed).repeat().batch(global_batch_size // shard_count)
        return Recording(iter(ds.to_iter_dataset()), self.log)

    def init_sample(self):
        return {"x": self.x[:4], "y": self.y[:4], "row": np.arange(4)}

    def init(self, rng, batch):
        variables = self.model.init(rng, batch["x"])
        return {"params": variables["params"], "stats": {"ema_y": jnp.zeros(())}}

    def loss(self, params, extra, batch, rng, step):
        noise = 0.01 * jax.random.normal(rng, batch["y"].shape)
        pred = self.model.apply({"params": params}, batch["x"])
        loss = jnp.mean((pred - batch["y"] - noise) ** 2)
        if self.nan_at_step is not None:
            loss = jnp.where(step >= self.nan_at_step, jnp.nan, loss)
        new_extra = {"stats": {"ema_y": 0.9 * extra["stats"]["ema_y"] + 0.1 * batch["y"].mean()}}
        return loss, ({"mse": loss}, new_extra)

    def evaluate(self, params, extra):
        pred = self.model.apply({"params": params}, self.x)
        return {"mse": float(jnp.mean((pred - self.y) ** 2))}


def toy_config(**mesh):
    c = ml_collections.ConfigDict()
    c.seed = 3
    c.task = "toy"
    c.global_batch_size = 32
    c.num_steps = 8
    c.log_every_steps = 2
    c.eval_every_steps = 4
    c.mesh = ml_collections.ConfigDict(mesh or {"data": -1})
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 3e-2,
            "warmup_steps": 2,
            "schedule": "cosine",
            "weight_decay": 1e-4,
            "grad_clip_norm": 1.0,
        }
    )
    c.checkpoint = ml_collections.ConfigDict(
        {"every_steps": 2, "max_to_keep": 2, "async_save": True}
    )
    return c
