"""Ingest raw event logs into canonical events, then build buyer vectors.

    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py
    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py \
        --config.ingest.inputs='("data/*.csv.gz",)' --config.ingest.store_id=mystore
    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py \
        --config.ingest.inputs='("my_log.csv",)' --config.ingest.mapping_file=my_log.json

Prints rows read / kept / quarantined per reason (also saved as ingest_report.json), buyers,
sessions and funnel strata; with `buyers.build=True` it also writes the 403-d buyer vectors.
See `simpersona_jax.data.run`.
"""

from absl import app, flags
from ml_collections import config_flags

from simpersona_jax.data import run as ingest_run


def main(argv):
    del argv
    ingest_run.run(_CONFIG.value)


if __name__ == "__main__":  # flags only when run: importing this module defines none
    _CONFIG = config_flags.DEFINE_config_file(
        "config", None, "Ingest config file.", lock_config=True
    )
    flags.mark_flags_as_required(["config"])
    app.run(main)
