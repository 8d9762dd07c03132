"""Training traces by browser replay of sessions on the local storefront.

    python -m simpersona_jax.traces --config=experiments/traces.py
    # real sessions (REES46 sample), 100 of them:
    python -m simpersona_jax.traces --config=experiments/traces.py --config.events.kind=files \
        --config.events.paths=../shared/datasets/rees46/2019-Oct-head.csv \
        --config.events.store_id=rees46 --config.max_sessions=100 --config.out_dir=runs/traces_rees46

Uses the synthetic training stores of the data root `data.dir` (default "synthetic:default": the
embedded default, built under data/default on first use; features/default.py), samples
`max_sessions` sessions, replays them with `driver.concurrency` browser contexts, and prints
progress then one summary line (measured: 200/200 replayed, 3,255 steps, 445,977 tokens, 3 min
on 2 busy cores; the REES46 line above: 100/100 replayed, 561 steps, 41 s):
    sessions in 200, replayed 200, dropped 0 (reason=count, ...); steps ~3.3k, tokens ~450k
Writes `<out_dir>/traces-00000.parquet`, ... (TRACE_SCHEMA) and `<out_dir>/summary.json`.
"""

import ml_collections


def get_config():
    c = ml_collections.ConfigDict()
    c.out_dir = "runs/traces"
    c.data = ml_collections.ConfigDict(dict(dir="synthetic:default"))  # or a synthesize output
    c.events = ml_collections.ConfigDict(
        dict(
            kind="synthetic",  # "synthetic" (stores of data.dir) or "files" (via data.sources.load_events)
            split="train",  # synthetic stores to replay: train / heldout / all
            paths="",  # comma-separated raw event files for kind="files"
            source="auto",
            store_id="",  # store id for sources without one (REES46)
        )
    )
    c.max_sessions = 200  # the paper's SFT set: ~3,600 sessions (~34k steps) from 39 stores
    # assign's codes.parquet: sample sessions round-robin over the buyers' VQ codes (the codes of
    # held-out stores' buyers first) so every persona token gets traces; "" = uniform sample.
    c.codes_path = ""
    c.max_events_per_session = 40  # longer sessions are skipped (counted as too_long)
    c.seed = 0
    c.rows_per_shard = 20_000
    c.server_mode = "process"  # storefront in its own process ("thread" to share this one)
    c.driver = ml_collections.ConfigDict(
        dict(
            concurrency=8,
            step_limit=150,
            action_timeout_s=20.0,
            episode_timeout_s=600.0,
            contexts_per_browser=200,
        )
    )
    return c
