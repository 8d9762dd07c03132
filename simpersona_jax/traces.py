"""Writes SFT traces by replaying sessions in Chromium on the local storefront.

    python -m simpersona_jax.traces --config=experiments/traces.py [--config.x=...]

Loads canonical events (synthetic stores of the data root `data.dir`, or raw files), samples
sessions, serves their stores' catalogs, replays each session through the driver with the path
planner, keeps the sessions whose events the storefront's log reproduces, and writes trace shards
`<out_dir>/traces-%05d.parquet` plus `<out_dir>/summary.json`; exits non-zero when no session
could be replayed. See `simpersona_jax.replay.generate` (the library call, also used by
`simpersona_jax.pipeline`).
"""

import sys

from absl import app
from ml_collections import config_flags

from simpersona_jax.replay.generate import run


def main(argv):
    del argv
    if run(_CONFIG.value)["replayed"] == 0:
        sys.exit("no session could be replayed")


if __name__ == "__main__":  # flags only when run: importing this module defines none
    _CONFIG = config_flags.DEFINE_config_file(
        "config", None, "experiments/traces.py", lock_config=True
    )
    app.run(main)
