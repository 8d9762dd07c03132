"""Goal-directed tasks on held-out stores: the instruction-following check of the stage-2 agent.

    python -m simpersona_jax.goal_tasks --config=experiments/goal_tasks.py \
        --config.lm.folder=<stage-2 export>
    # the scripted solver (checks that the tasks can be done on these stores, no LM needed):
    python -m simpersona_jax.goal_tasks --config=experiments/goal_tasks.py --config.policy=solver

Prints the success rate per kind (find a named product and add it to the cart; search and buy
under a price limit; browse a category and leave) with n and 95% Wilson intervals, failure
reasons, crash and unparseable-action rates; writes `<out_dir>/goal_tasks.json`,
`<out_dir>/episodes.jsonl` and the storefront's log under `<out_dir>/events/`.
See `simpersona_jax.sim.goal_tasks`.
"""

from absl import app, flags
from ml_collections import config_flags

from simpersona_jax.sim import goal_tasks


def main(argv):
    del argv
    print(goal_tasks.format_report(goal_tasks.from_config(_CONFIG.value)))


if __name__ == "__main__":  # flags only here: other tools and tests import this module
    _CONFIG = config_flags.DEFINE_config_file("config", None, "Goal-task config.", lock_config=True)
    flags.mark_flags_as_required(["config"])
    app.run(main)
