"""The embedded default: 12 synthetic stores (6 train / 6 held-out), ~4.8k buyers, ~160k events.

    python -m simpersona_jax.synthesize --config=experiments/synth.py

Should print the store split, events written (~158k), buyers per hidden type, and
`buyer vectors: 4,724 x 403` with the strata counts. Deterministic for a given seed.
"""

import ml_collections

from simpersona_jax.synth.generate import default_config


def get_config():
    return ml_collections.ConfigDict(
        dict(
            synth=default_config(),
            out_dir="data/default",  # the data root data.dir="synthetic:default" reads
            build_buyers=True,
        )
    )
