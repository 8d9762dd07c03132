"""Simulate held-out stores' buyer populations in Chromium and score them against the real ones.

    python -m simpersona_jax.simulate --config=experiments/simulate.py

Runs every arm of `cfg.arms` (scripted oracle; LM agent with matched / mismatched / no / text
persona) on the same simulated buyers of each held-out store, prints the table of figures with
95% CIs next to the never-buy and average-buyer baselines, and writes `<out_dir>/report.json`
and `report.html`. The logic is `simpersona_jax.sim.run.simulate`.
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
