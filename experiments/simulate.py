"""Simulate the held-out synthetic stores and score every arm against their real buyers.

    # the scripted oracle acting out the hidden synthetic types (checks the loop, no LM needed):
    python -m simpersona_jax.simulate --config=experiments/simulate.py
    # and the persona-token LM agent (matched / mismatched / no / text persona) on the same
    # buyers, personas from the VQ-VAE assignment:
    python -m simpersona_jax.simulate --config=experiments/simulate.py \
        --config.lm.folder=<stage-2 workdir>/hf --config.codes=runs/vqvae/assign/codes.parquet

Shows a progress bar per arm, then prints a table of arms (and the never-buy and average-buyer
baselines) x headline figures with 95% bootstrap CIs: stratified ARA, per-code alignment, mean
conversion-rate alignment, stores whose conversion is not significantly different, Cohen's d of
purchase (high vs low intensity codes), stratum JSD, unparseable / impossible actions, crashes.
Writes `<out_dir>/report.json` and `<out_dir>/report.html` (plots; open it in a browser).
An arm that cannot run is skipped with one line (oracle on real data; LM arms without lm.folder).
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        dict(
            # the data root: "synthetic:default" (built under data/default on first use) or a
            # directory with buyers/ and events/ (synthesize or ingest; features/default.py)
            data=dict(dir="synthetic:default"),
            codes="",  # assign's codes.parquet; "" = no persona tokens (oracle arm only)
            stores=(),  # () = every held-out store
            buyers_per_store=30,
            arms=("oracle", "matched", "mismatched", "none", "text"),
            # folder + any LMPolicy keyword (decoding settings); "" = no LM arms
            # decoding: constrained (actions drawn from the page's; always valid) | free (sampled text)
            # mesh: the policy's devices (num_devices=0 + tensor=-1: split over every local device)
            lm=dict(
                folder="",
                temperature=1.0,
                decoding="constrained",
                max_new_tokens=48,
                mesh=dict(num_devices=1, data=1, fsdp=1, tensor=1),
            ),
            n_boot=1000,  # bootstrap resamples for the 95% CIs
            seed=0,
            out_dir="runs/simulate",
            server_mode="process",
            driver=dict(
                concurrency=16, step_limit=40, action_timeout_s=20.0, episode_timeout_s=300.0
            ),
        )
    )
