"""Train any registered task: python -m simpersona_jax.train --config=experiments/<x>.py
--workdir=runs/<x> [--config.a.b=value ...]. Rerunning with the same workdir resumes."""

from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "checkpoints, TensorBoard logs and reports")

# config.task -> "module:factory"; factory(config) -> Task (simpersona_jax/training/task.py).
TASKS = {
    "vqvae": "simpersona_jax.vqvae.task:VQVAETask",
    "lm_sft": "simpersona_jax.lm.task:SFTTask",
}


def make_task(config):
    if config.task not in TASKS:
        raise ValueError(f"config.task={config.task!r} is not registered; known: {sorted(TASKS)}")
    module, factory = TASKS[config.task].split(":")
    return getattr(importlib.import_module(module), factory)(config)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from simpersona_jax.training import NonFiniteLossError, distributed, train
    from simpersona_jax.training.checkpoint import CheckpointError
    from simpersona_jax.training.validate import ConfigError, check

    config, workdir = _CONFIG.value, _WORKDIR.value
    logging.set_verbosity(logging.WARNING)
    try:
        try:  # before any other JAX call
            distributed.maybe_initialize(config.get("distributed", "auto"))
        except ValueError as e:
            raise ConfigError([f"config.{e}"]) from None
        check(config, workdir, tasks=TASKS)
        result = train(config, workdir, make_task(config))
    except (ConfigError, CheckpointError, NonFiniteLossError) as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    if result.report:
        print(result.report)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
