"""Assign every buyer to a buyer type with a trained VQ-VAE:

  python -m simpersona_jax.assign --config=experiments/vqvae.py --workdir=runs/vqvae

Streams the buyer vectors (config.data; split config.assign.split, default "all") through one
jitted encoder pass in batches of config.eval.batch_size and writes to <workdir>/assign/ (or
--out): codes.parquet (row, buyer_id, store_id, split, code, distance), p_store.parquet (long:
store_id, code, count, p), p_store.csv (wide: one row per store), codes.parquet's per-code
summary codes_summary.parquet + codes_summary.txt (size, strata mix, label rates, mean
standardised scalars), and quality.json + the quality table vs MiniBatchKMeans(K) printed.
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "the VQ-VAE experiment config")
_WORKDIR = flags.DEFINE_string("workdir", None, "training workdir holding checkpoints/")
_OUT = flags.DEFINE_string("out", None, "output directory (default <workdir>/assign)")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: newest)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    from simpersona_jax.vqvae.assignment import run

    print(run(_CONFIG.value, _WORKDIR.value, _OUT.value, _STEP.value))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
