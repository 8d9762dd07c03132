"""Simulate held-out stores' buyer populations in Chromium and score them against the real ones.

    python -m simpersona_jax.simulate --config=experiments/simulate.py

Draws simulated buyers once from each store's type distribution (a real buyer's code, from
`python -m simpersona_jax.assign`) and runs the same buyers through every arm of `cfg.arms`:
`oracle` (the scripted shopper acting out the source buyer's true synthetic type) and the LM
agent with a matched, mismatched, no, or text persona. Each arm gets its own storefront and
event log (`<out_dir>/<arm>/events`); one agent episode (session) per simulated buyer runs through
the async Playwright driver with a progress bar. The logs are scored with the same metrics code
as real traffic (`metrics.fidelity`: every figure with a bootstrap CI, next to the never-buy and
average-buyer baselines), written as `<out_dir>/report.json` and `<out_dir>/report.html`, and
printed as a table. See `simpersona_jax.sim.run`.
"""

from absl import app, flags
from ml_collections import config_flags

from simpersona_jax.sim import report
from simpersona_jax.sim.run import simulate


def main(argv):
    del argv
    print(report.format_table(simulate(_CONFIG.value)))


if __name__ == "__main__":  # flags only when run: importing this module defines none
    _CONFIG = config_flags.DEFINE_config_file(
        "config", None, "Simulation config.", lock_config=True
    )
    flags.mark_flags_as_required(["config"])
    app.run(main)
