"""The registry of trainable tasks and one training run as `python -m simpersona_jax.train` does
it (the CLI parses flags, calls `run` and prints its errors)."""

from __future__ import annotations

import importlib

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


def run(config, workdir: str):
    """Join a multi-host run if configured (before any other JAX call), validate the config
    (ConfigError lists every problem), build the task and train; returns the loop's result."""
    from simpersona_jax.training import distributed, train
    from simpersona_jax.training.validate import ConfigError, check

    try:
        distributed.maybe_initialize(config.get("distributed", "auto"))
    except ValueError as e:
        raise ConfigError([f"config.{e}"]) from None
    check(config, workdir, tasks=TASKS)
    return train(config, workdir, make_task(config))
