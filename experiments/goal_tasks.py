"""Goal-directed tasks on the held-out stores (see simpersona_jax/goal_tasks.py).

    python -m simpersona_jax.goal_tasks --config=experiments/goal_tasks.py \
        --config.lm.folder=<stage-2 export>
    python -m simpersona_jax.goal_tasks --config=experiments/goal_tasks.py --config.policy=solver
"""

import ml_collections


def get_config():
    return ml_collections.ConfigDict(
        dict(
            # the data root: "synthetic:default" (built under data/default on first use) or a
            # directory with buyers/ and events/ (synthesize or ingest; features/default.py)
            data=dict(dir="synthetic:default"),
            catalog_dir="",  # "" = <data.dir>/catalog, else made from <data.dir>/events
            stores=(),  # () = every held-out store of data.dir
            n_per_kind=30,  # tasks of each kind, dealt round-robin over the stores
            policy="lm",  # lm (the agent, no persona token) | solver (scripted reference)
            # decoding: constrained (actions drawn from the page's; always valid) | free (sampled text)
            lm=dict(folder="", temperature=1.0, decoding="constrained", max_new_tokens=48),
            seed=0,
            out_dir="runs/goal_tasks",
            server_mode="process",
            driver=dict(
                concurrency=16, step_limit=30, action_timeout_s=20.0, episode_timeout_s=300.0
            ),
        )
    )
