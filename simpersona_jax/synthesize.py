"""Generate the synthetic multi-store dataset (the embedded default) and its buyer vectors.

    python -m simpersona_jax.synthesize --config=experiments/synth.py
    python -m simpersona_jax.synthesize --config=experiments/synth.py --config.synth.num_stores=81 \
        --config.synth.buyers_per_store=103333 --config.synth.workers=2   # paper scale, 8.37M buyers
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags


def main(argv):
    del argv
    from simpersona_jax.synth.run import run

    run(_CONFIG.value)


if __name__ == "__main__":  # flags only here: other tools and tests import this module
    _CONFIG = config_flags.DEFINE_config_file(
        "config", None, "Synthetic data config.", lock_config=True
    )
    flags.mark_flags_as_required(["config"])
    app.run(main)
