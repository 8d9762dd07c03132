"""Multi-process start-up: jax.distributed.initialize() when launched as several processes."""

from __future__ import annotations

import logging
import os

import jax

_MULTI_PROCESS_ENV = (
    ("SLURM_NTASKS", lambda v: int(v) > 1),  # srun, one process per GPU
    ("TPU_WORKER_HOSTNAMES", lambda v: "," in v),  # Cloud TPU VM pod slices
    ("MEGASCALE_NUM_SLICES", lambda v: int(v) >= 1),
    ("JAX_COORDINATOR_ADDRESS", lambda v: bool(v)),  # explicit coordinator
    ("OMPI_COMM_WORLD_SIZE", lambda v: int(v) > 1),  # mpirun
)


def launched_multi_process() -> bool:
    for name, test in _MULTI_PROCESS_ENV:
        value = os.environ.get(name)
        if value:
            try:
                if test(value):
                    return True
            except ValueError:
                continue
    return False


def maybe_initialize(mode: str = "auto") -> bool:
    """mode: "auto" (initialize when the environment says several processes), "on", "off".

    Returns True when jax.distributed was initialised. Must run before any other JAX call.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"distributed={mode!r}: expected auto, on or off")
    if mode == "off" or (mode == "auto" and not launched_multi_process()):
        return False
    coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if coordinator:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    else:
        jax.distributed.initialize()  # auto-detects TPU pods, SLURM and Open MPI
    logging.info(
        "jax.distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
