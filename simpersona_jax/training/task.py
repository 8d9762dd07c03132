"""The Task protocol: what a model brings to the generic train loop, and the train state."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, runtime_checkable

import flax.struct
import jax
import numpy as np
import optax

Batch = Mapping[str, np.ndarray]
PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one sharded pytree.

    step: int32 scalar, number of optimiser updates applied so far.
    params: the differentiated parameters (collection "params").
    extra: every other variable collection (non-gradient mutable state such as an EMA codebook),
      as {collection_name: pytree}; {} when the task has none.
    opt_state: the optax state of `params`.
    """

    step: jax.Array
    params: PyTree
    extra: PyTree
    opt_state: PyTree


@runtime_checkable
class Task(Protocol):
    """A trainable model and its data. See simpersona_jax/training/__init__.py for a guide."""

    #: What one example is called in the progress line ("buyers", "sequences", ...).
    example_name: str

    def make_loader(
        self, *, global_batch_size: int, seed: int, shard_index: int, shard_count: int
    ) -> Iterator[Batch]:
        """A checkpointable Grain iterator (get_state/set_state) over this process's slice."""

    def init_sample(self) -> Batch:
        """A numpy batch (global, identical on every process) handed to `init`."""

    def init(self, rng: jax.Array, batch: Batch) -> dict[str, PyTree]:
        """Variables {"params": ..., <other collections>: ...}; leaves may be LogicallyPartitioned."""

    def loss(
        self, params: PyTree, extra: PyTree, batch: Batch, rng: jax.Array, step: jax.Array
    ) -> tuple[jax.Array, tuple[dict[str, jax.Array], PyTree]]:
        """Pure: (scalar loss, (scalar metrics, new extra)). Means over the GLOBAL batch."""


class OptionalTaskHooks:
    """Defaults for the optional Task methods; a task may subclass this to inherit them."""

    def trainable_mask(self, params: PyTree) -> PyTree | None:
        """None (train everything) or a pytree like params of bool (leaf frozen/trained) or of
        float arrays broadcastable to the leaf (0 freezes those elements, e.g. embedding rows)."""
        return None

    def initial_params(self, rng: jax.Array, param_shardings: PyTree) -> PyTree | None:
        """None (start from `init`'s params) or the starting params (unboxed, like init's), placed
        with `param_shardings`, e.g. a pretrained checkpoint read block by block per device."""
        return None

    def shape_sample(self) -> Batch:
        """A batch whose shapes and dtypes stand for the real ones (deviceless compiles): by
        default `init_sample()`; a task whose init_sample also checks that its data can feed a
        run overrides this to skip that check."""
        return self.init_sample()

    def make_optimizer(self, optimizer_config) -> optax.GradientTransformation | None:
        """Return an optax transformation to replace the loop's default (config.optimizer)."""
        return None

    def evaluate(self, params: PyTree, extra: PyTree) -> dict[str, float]:
        """Host-side evaluation every config.eval_every_steps and at the end; scalars only."""
        return {}

    def report(
        self, params: PyTree, extra: PyTree, workdir: str, eval_metrics: dict[str, float]
    ) -> str | None:
        """A human-readable report printed (and written to workdir) when training ends;
        eval_metrics is what `evaluate` returned for the final parameters."""
        return None
