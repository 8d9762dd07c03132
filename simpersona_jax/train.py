"""Train any registered task: python -m simpersona_jax.train --config=experiments/<x>.py
--workdir=runs/<x> [--config.a.b=value ...]. Rerunning with the same workdir resumes."""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "checkpoints, TensorBoard logs and reports")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from simpersona_jax.training import NonFiniteLossError, tasks
    from simpersona_jax.training.checkpoint import CheckpointError
    from simpersona_jax.training.validate import ConfigError

    logging.set_verbosity(logging.WARNING)
    try:
        result = tasks.run(_CONFIG.value, _WORKDIR.value)
    except (ConfigError, CheckpointError, NonFiniteLossError) as e:
        for line in str(e).splitlines():
            print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    if result.report:
        print(result.report)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
