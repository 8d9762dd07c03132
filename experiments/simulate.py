"""Simulate the held-out synthetic stores and score them against their real buyers.

    # scripted agents acting out the hidden synthetic types (checks the loop, no LM needed):
    python -m simpersona_jax.simulate --config=experiments/simulate.py
    # the persona-token LM agent, personas from the VQ-VAE assignment:
    python -m simpersona_jax.simulate --config=experiments/simulate.py --config.policy=lm \
        --config.lm.folder=runs/agent_stage2/export --config.codes=runs/vqvae/assign/codes.parquet

Prints: simulated N sessions, stratified ARA (per stratum A-D), conversion-rate alignment and
stratum JSD, crash / unparseable-action rates, actions per session, outcomes; writes
`<out_dir>/report.json`. Controls: --config.control=matched|mismatched|none|text (text: the persona described in words).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(dict(
        data_dir="data/default",  # built by simpersona_jax.features.default.ensure_default
        codes="",  # assign's codes.parquet; "" = no persona tokens (scripted policy only)
        stores=(),  # () = every held-out store
        buyers_per_store=30,
        control="matched",
        policy="scripted",  # scripted (true synthetic types) | lm
        lm=dict(folder="", temperature=1.0, max_new_tokens=48),
        seed=0,
        out_dir="runs/simulate",
        server_mode="process",
        driver=dict(concurrency=16, step_limit=40, action_timeout_s=20.0, episode_timeout_s=300.0),
    ))
