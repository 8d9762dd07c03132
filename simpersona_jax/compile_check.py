"""Compile a config's train step for a TPU topology without the TPU, and report whether it fits.

  python -m simpersona_jax.compile_check --config=experiments/agent_stage2.py \
      --model=qwen3-14b --topology=v5p:2x2x2 [--config.data.seq_len=4096 ...]

Needs libtpu (pip install -e '.[tpu]') for --topology; --topology=local compiles for this
machine's devices instead. Prints per-chip memory against HBM, FLOPs and bytes per step, the
collectives of the compiled HLO and a roofline step time and MFU (simpersona_jax/sizing.py);
exits 1 when the peak per-chip memory exceeds --hbm_fraction of HBM or the compile fails
(launch/ runs it as a pre-flight before starting a pod).
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file", lock_config=False
)
_TOPOLOGY = flags.DEFINE_string(
    "topology", "v5p:2x2x1", "TPU topology (e.g. v5e:2x2, v5p:4x4x4) or 'local'"
)
_MODEL = flags.DEFINE_string(
    "model", "", "LM shape from lm/config.MODEL_SHAPES (default: lm.init_from)"
)
_FRACTION = flags.DEFINE_float("hbm_fraction", 0.9, "largest allowed share of HBM per chip")
_PROBE = flags.DEFINE_bool(
    "probe", True, "LM: correct FLOPs for the layer scan with 1-/2-layer probes"
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import jax

    from simpersona_jax import sizing
    from simpersona_jax.training import chips
    from simpersona_jax.training import compile as compile_lib

    if _TOPOLOGY.value == "local":
        devices = jax.devices()
        chip = chips.for_device_kind(devices[0].device_kind)
    else:
        devices = compile_lib.topology_devices(_TOPOLOGY.value)
        chip = chips.for_topology(_TOPOLOGY.value)
    try:
        result = sizing.check(
            _CONFIG.value, devices, chip, model=_MODEL.value or None, probe=_PROBE.value
        )
    except Exception as e:  # XLA's compile-time OOM and friends: the config does not fit
        if "HbmOom" not in str(e) and "RESOURCE_EXHAUSTED" not in str(e):
            raise
        print(f"{_TOPOLOGY.value}: does not compile: {str(e).splitlines()[0][:400]}")
        sys.exit(1)
    print(sizing.report(result, _FRACTION.value))
    print(sizing.table_row(result, _TOPOLOGY.value))
    if not sizing.fits(result, _FRACTION.value):
        sys.exit(1)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
