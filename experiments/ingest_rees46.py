"""Ingest the REES46 sample (../shared/datasets) and build its buyer vectors.

    python -m simpersona_jax.ingest --config=experiments/ingest_rees46.py

Should print: rows read 17,435  kept 17,429  quarantined 6 (duplicate 5, truncated_row 1),
buyers 4,504, sessions 5,067 (5,066 ids, one shared by two users), strata A 193 C 49 D 4,262, then
`buyer vectors: 4,504 x 403`, the buyers' strata and `product embedder per store: rees46 content`.
Another log: override ingest.inputs / store_id / out_dir and give ingest.mapping_file (README).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        dict(
            ingest=dict(
                inputs=("../shared/datasets/rees46/2019-Oct-head.csv",),
                source="auto",  # or rees46 / retailrocket / diginetica / otto / canonical
                store_id="rees46",  # for sources without a store column
                mapping=ml_collections.config_dict.placeholder(
                    dict
                ),  # declarative mapping, see data/sources/mapping.py
                mapping_file="",  # or a mapping in a .json / .py file (README: Bringing your own data)
                plausible_times=(
                    "1995-01-01",
                    "",
                ),  # times outside are quarantined ("": now + 1 day)
                out_dir="runs/data/rees46",
                buckets="auto",  # buyer-hash partitions across stores ("auto": ~rows_per_partition each)
                rows_per_partition=2_000_000,  # also the buyer step's work unit; memory ~ workers x this
                workers=0,  # partitions processed at once (threads); 0 = the cores, at most 4
                session_gap_minutes=30.0,
                pseudonymize_salt="",  # non-empty: re-key buyer ids with a salted SHA-256
                keep_staging=False,  # keep _staging/ (a copy of the input kept for resume) after a run
            ),
            # train_stores () = every store is a training store; id_embedding: products of id-only
            # stores embedded from their sessions (False: zero vectors, as content-only)
            buyers=dict(build=True, train_stores=(), id_embedding=True),
        )
    )
