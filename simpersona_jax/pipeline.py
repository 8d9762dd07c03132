"""The whole loop in one command:

    python -m simpersona_jax.pipeline --config=experiments/simpersona.py --workdir=runs/simpersona
    [--config.stages=vqvae,assign] [--config.<stage>.<key>=value ...]

Runs data, vqvae, assign, traces, agent_base, agent_stage1, agent_stage2, simulate, goals and
report (simpersona_jax/loop/), each into <workdir>/<stage>/ with a manifest.json; a current
stage is skipped, an interrupted one resumes. Rerunning the same command continues.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

# Its own flag set: --config here never clashes with a flag some imported module defines on
# absl's global one.
_FLAGS = flags.FlagValues()
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "pipeline config", flag_values=_FLAGS, lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "every stage writes <workdir>/<stage>/", flag_values=_FLAGS
)


def _parse(argv: list[str]) -> list[str]:
    try:
        rest = _FLAGS(argv)
    except flags.Error as e:
        sys.exit(
            f"error: {e}\nusage: python -m simpersona_jax.pipeline --config=experiments/"
            "simpersona.py --workdir=runs/simpersona [--config.stages=...]"
        )
    flags.FLAGS(argv[:1])  # absl's own flags keep their defaults
    return rest


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    from simpersona_jax.loop import PipelineError, run

    try:
        run(_CONFIG.value, _WORKDIR.value)
    except (PipelineError, FileNotFoundError) as e:  # bad input: the message says what and where
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"], flag_values=_FLAGS)
    app.run(main, flags_parser=_parse)
