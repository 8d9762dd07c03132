"""One generic, sharded train loop for every model in simpersona_jax.

How to write a Task (see task.py for the Protocol, vqvae/task.py for a full example)
--------------------------------------------------------------------------------
A task is any object with these members (subclass `OptionalTaskHooks` for the optional ones):

  example_name: str                         # "buyers", "sequences": shown as <name>/s
  console_metrics: tuple[str, ...] | None   # optional: metrics shown in the progress line
  make_loader(*, global_batch_size, seed, shard_index, shard_count) -> iterator
      A CHECKPOINTABLE Grain iterator (grain DatasetIterator / DataLoaderIterator: it has
      get_state/set_state) yielding dicts of numpy arrays whose leading dim is
      global_batch_size // shard_count (this process's slice). Shuffle with `seed`. The loop
      saves its state with every checkpoint, so a resumed run sees exactly the same batches.
  init_sample() -> dict of numpy arrays
      A batch identical on every process, given to init (shapes for jax.eval_shape; a
      data-dependent init such as k-means++ may use its values).
  init(rng, batch) -> {"params": ..., <other collections>: ...}
      Usually `model.init(...)`. Annotate parameters with logical axis names
      (nn.with_logical_partitioning(init_fn, ("embed", "mlp")) or nn.LogicallyPartitioned);
      the loop maps names to mesh axes with the rules in mesh.DEFAULT_RULES (or
      config.logical_axis_rules), replicates dims the mesh does not divide, runs init under
      jax.eval_shape to plan shardings and then jitted with out_shardings (no host copy).
      Collections other than "params" are non-gradient mutable state (e.g. an EMA codebook,
      batch-norm stats): they arrive in `loss` as `extra` and `loss` returns their new value.
  loss(params, extra, batch, rng, step) -> (loss, (metrics, new_extra))
      PURE and jit-able. `batch` holds GLOBAL jax.Arrays sharded over ('data','fsdp') on the
      batch dim: write ordinary jnp means/sums over the batch and XLA inserts the cross-device
      reductions (this is how EMA statistics get reduced across devices). metrics: dict of
      scalar jax arrays (already averaged over the global batch); the loop adds loss,
      grad_norm and nonfinite, averages over log intervals, and writes them to TensorBoard.

Optional:
  trainable_mask(params) -> None | pytree of bool | pytree of float arrays
      bool leaves freeze whole tensors (optax.multi_transform + set_to_zero, no optimiser state
      for frozen leaves); float arrays broadcastable to a leaf freeze elements where 0 (e.g.
      train only the new persona-token rows of an embedding table: mask shape [V, 1]).
  make_optimizer(optimizer_config) -> optax.GradientTransformation | None (None: the default
      adamw/adam/sgd + schedule + clipping built from config.optimizer, see optim.py).
  evaluate(params, extra) -> dict[str, float]: every config.eval_every_steps and at the end.
  report(params, extra, workdir, eval_metrics) -> str | None: printed and saved to
      <workdir>/report.txt (eval_metrics = the final `evaluate` result).

Register the task in simpersona_jax/train.py (TASKS: config.task name -> "module:factory",
factory(config) -> Task), list the keys it reads in training/validate.py (TASK_RULES: checked up
front, every problem reported at once, one line each naming the key) and run it with
  python -m simpersona_jax.train --config=experiments/<x>.py --workdir=runs/<x>

Config keys the loop reads: seed, task, global_batch_size, num_steps, log_every_steps,
eval_every_steps, mesh {data, fsdp, tensor} (one may be -1), logical_axis_rules (optional list
of [logical, mesh_axes]), optimizer {name, learning_rate, warmup_steps, schedule,
final_lr_fraction, weight_decay, grad_clip_norm, b1, b2}, checkpoint {every_steps,
max_to_keep, async_save}, distributed ("auto" | "on" | "off"). A checkpoint that does not
restore is skipped (one line: step, file, why) for the newest one that does (checkpoint.py).
"""

from simpersona_jax.training.loop import NonFiniteLossError, TrainResult, train
from simpersona_jax.training.mesh import DEFAULT_RULES, MESH_AXES, make_mesh
from simpersona_jax.training.task import OptionalTaskHooks, Task, TrainState

__all__ = [
    "DEFAULT_RULES",
    "MESH_AXES",
    "NonFiniteLossError",
    "OptionalTaskHooks",
    "Task",
    "TrainResult",
    "TrainState",
    "make_mesh",
    "train",
]
