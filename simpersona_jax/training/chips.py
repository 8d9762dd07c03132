"""Published per-chip peaks of the accelerators compile_check sizes runs for (roofline inputs).

Values are the vendors' own data sheets (per chip, dense bf16, no sparsity):
- TPU: Cloud TPU system-architecture pages, "Key specifications" tables
  (https://cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e): peak bf16 compute, HBM capacity and
  bandwidth, and the "Interchip Interconnect BW" (Gbps, converted to bytes/s).
- GPU: NVIDIA H100 / H200 SXM data sheets (bf16 dense Tensor Core, HBM3/HBM3e, NVLink 4).
The roofline uses them as upper bounds: real steps reach a fraction of each.
"""

from __future__ import annotations

import dataclasses

GB = 1e9
GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
    name: str
    peak_flops: float  # dense bf16 FLOP/s
    hbm_bytes: float  # capacity
    hbm_bw: float  # bytes/s
    ici_bw: float  # bytes/s per chip over the inter-chip links (NVLink on GPUs)
    source: str


CHIPS = {
    "v4": Chip(
        "TPU v4", 275e12, 32 * GIB, 1228 * GB, 2400e9 / 8, "https://cloud.google.com/tpu/docs/v4"
    ),
    "v5e": Chip(
        "TPU v5e", 197e12, 16 * GIB, 819 * GB, 1600e9 / 8, "https://cloud.google.com/tpu/docs/v5e"
    ),
    "v5p": Chip(
        "TPU v5p", 459e12, 95 * GIB, 2765 * GB, 4800e9 / 8, "https://cloud.google.com/tpu/docs/v5p"
    ),
    "v6e": Chip(
        "TPU v6e", 918e12, 32 * GIB, 1640 * GB, 3584e9 / 8, "https://cloud.google.com/tpu/docs/v6e"
    ),
    "h100": Chip(
        "H100 SXM",
        989e12,
        80 * GB,
        3350 * GB,
        450 * GB,
        "https://www.nvidia.com/en-us/data-center/h100/",
    ),
    "h200": Chip(
        "H200 SXM",
        989e12,
        141 * GB,
        4800 * GB,
        450 * GB,
        "https://www.nvidia.com/en-us/data-center/h200/",
    ),
}

# jax device_kind -> CHIPS key (deviceless TPU topologies report these kinds).
DEVICE_KINDS = {
    "TPU v4": "v4",
    "TPU v5 lite": "v5e",
    "TPU v5e": "v5e",
    "TPU v5": "v5p",
    "TPU v5p": "v5p",
    "TPU v6 lite": "v6e",
    "TPU v6e": "v6e",
    "NVIDIA H100 80GB HBM3": "h100",
    "NVIDIA H200": "h200",
}


def for_device_kind(kind: str) -> Chip:
    if kind not in DEVICE_KINDS:
        raise ValueError(
            f"no published peaks for device kind {kind!r}; known: {sorted(DEVICE_KINDS)}"
        )
    return CHIPS[DEVICE_KINDS[kind]]


def for_topology(name: str) -> Chip:
    """'v5p:2x2x1' -> the v5p chip."""
    gen = name.split(":")[0].lower()
    if gen not in CHIPS:
        raise ValueError(
            f"topology {name!r}: unknown chip {gen!r}; expected one of {sorted(CHIPS)}"
        )
    return CHIPS[gen]
