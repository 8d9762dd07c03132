"""simpersona_jax: discrete buyer types from clickstreams, persona-conditioned shopping agents.

A JAX/Flax reimplementation of SimPersona (arXiv 2605.14205). See README.md and DESIGN notes.
"""

__version__ = "0.1.0"

import glob as _glob
import importlib.util as _util
import os as _os

# libtpu (the `tpu` extra) serves deviceless TPU compiles (compile_check). On a machine without a
# TPU or GPU, jax would still probe it at start-up (warnings, and libtpu's process lock file held
# for the process's lifetime): run on CPU there as without the extra.
if (
    "JAX_PLATFORMS" not in _os.environ
    and _util.find_spec("libtpu") is not None
    and not any(_glob.glob(p) for p in ("/dev/accel*", "/dev/vfio/[0-9]*", "/dev/nvidia[0-9]*"))
):
    _os.environ["JAX_PLATFORMS"] = "cpu"
