"""Compile a task's real train step ahead of time, for devices that need not exist here (a TPU
topology described by libtpu), and read the compiled program: per-chip memory, FLOPs and bytes
(XLA's cost analysis), the collectives in its HLO, and a roofline estimate of the step.

The step is exactly the loop's (loop.build + step.make_train_step + step.jit_train_step, traced
inside mesh.activate so activation constraints take effect), lowered on abstract state and
batch carrying the planned shardings: nothing is allocated. compile_check (the tool) adds the
layer-count correction (XLA counts a loop body once) and the report.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import math
import os
import re
import tempfile
import time

import jax
import numpy as np

from simpersona_jax.training import chips as chips_lib
from simpersona_jax.training import loop
from simpersona_jax.training import mesh as mesh_lib
from simpersona_jax.training import step as step_lib

COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "s16": 2,
    "u16": 2,
    "bf16": 2,
    "f16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
    "c64": 8,
    "c128": 16,
    "f8e4m3fn": 1,
    "f8e5m2": 1,
}
_OP = re.compile(r"=\s*(.+?)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")
_ARRAY = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")


def topology_devices(name: str):
    """The devices of a TPU topology such as 'v5p:2x2x1', described by libtpu (no TPU needed).
    Describing touches no chip, so libtpu's one-process lock file is not needed: another
    process that loaded libtpu does not block it."""
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        from jax.experimental import topologies

        return topologies.get_topology_desc(platform="tpu", topology_name=name).devices
    except Exception as e:  # libtpu missing, or a name it does not know
        raise RuntimeError(
            f"cannot describe TPU topology {name!r} ({e}); deviceless TPU compiles need "
            "libtpu: pip install -e '.[tpu]'"
        ) from e


@dataclasses.dataclass
class Compiled:
    compiled: object
    lowered: object  # jax.stages.Lowered (its as_text(): the program before partitioning)
    hlo: str  # the optimised HLO (per-device shapes)
    num_devices: int
    device_kind: str
    seconds: float  # lowering + compilation


def compile_train_step(config, task, devices) -> Compiled:
    """Lower and compile the loop's train step of (config, task) for `devices`."""
    rng = jax.random.key(int(config.seed))
    sample = task.shape_sample() if hasattr(task, "shape_sample") else task.init_sample()
    t0 = time.perf_counter()
    mesh, rules, batch_sh, tx, abstract, shardings = loop.build(config, task, rng, sample, devices)
    fn = step_lib.jit_train_step(step_lib.make_train_step(task, tx, rng), shardings, batch_sh, mesh)
    gbs = int(config.global_batch_size)
    batch = {
        k: jax.ShapeDtypeStruct((gbs,) + np.shape(v)[1:], np.asarray(v).dtype, sharding=batch_sh)
        for k, v in sample.items()
    }
    with mesh_lib.activate(mesh, rules):
        lowered = fn.lower(abstract, batch)
    compiled, hlo = compile_with_hlo(lowered)
    return Compiled(
        compiled, lowered, hlo, len(devices), devices[0].device_kind, time.perf_counter() - t0
    )


def compile_with_hlo(lowered) -> tuple[object, str]:
    """(compiled, its optimised HLO text). The text comes from XLA's own dump (compile option
    xla_dump_to): `as_text()` fails for some TPU programs with this jaxlib/libtpu pair."""
    with tempfile.TemporaryDirectory() as d:
        compiled = lowered.compile({"xla_dump_to": d, "xla_dump_hlo_as_text": True})
        texts = [
            open(f).read() for f in sorted(glob.glob(os.path.join(d, "*after_optimizations.txt")))
        ]
    return compiled, "\n".join(texts)


def _bytes(type_str: str, largest: bool) -> int:
    sizes = [
        _DTYPE_BYTES[d] * math.prod(int(x) for x in dims.split(",") if x)
        for d, dims in _ARRAY.findall(type_str)
    ]
    if not sizes:
        return 0
    return max(sizes) if largest else sum(sizes)


def collectives(hlo: str) -> dict[str, tuple[int, int]]:
    """{kind: (count, bytes)} of the collectives in an HLO text, bytes = per-device result size
    (an async '-start' op counts its largest buffer, the result; '-done' ops are not counted).
    Ops inside a loop body are counted once."""
    out = collections.defaultdict(lambda: [0, 0])
    for line in hlo.splitlines():
        m = _OP.search(line)
        if m:
            out[m.group(2)][0] += 1
            out[m.group(2)][1] += _bytes(m.group(1), largest=bool(m.group(3)))
    return {k: (c, b) for k, (c, b) in sorted(out.items())}


@dataclasses.dataclass
class Cost:
    """Per-chip cost of one step, as XLA counts it."""

    flops: float
    bytes_accessed: float
    collective_bytes: float

    def extrapolate(self, other: "Cost", times: int) -> "Cost":
        """self + times * (other - self): e.g. 1 layer + (L-1) x (2 layers - 1 layer)."""
        return Cost(
            *(
                a + times * (b - a)
                for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))
            )
        )


def cost(c: Compiled) -> Cost:
    ca = c.compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, (list, tuple)) else ca
    coll = sum(b for _, b in collectives(c.hlo).values())
    return Cost(float(ca.get("flops", 0.0)), float(ca.get("bytes accessed", 0.0)), float(coll))


def memory(c: Compiled) -> dict[str, float]:
    """Per-chip bytes: arguments, outputs, temporaries, aliased (donated), and the peak
    (arguments + outputs + temporaries - aliased)."""
    ma = c.compiled.memory_analysis()
    out = dict(
        argument=ma.argument_size_in_bytes,
        output=ma.output_size_in_bytes,
        temp=ma.temp_size_in_bytes,
        alias=ma.alias_size_in_bytes,
        code=ma.generated_code_size_in_bytes,
    )
    out["peak"] = out["argument"] + out["output"] + out["temp"] - out["alias"]
    return {k: float(v) for k, v in out.items()}


def roofline(
    cost_: Cost, chip: chips_lib.Chip, model_flops: float, num_chips: int
) -> dict[str, float]:
    """Step time = the slowest of compute, HBM traffic and collective traffic at the chip's peaks
    (perfect overlap); MFU = model FLOPs / (chips x peak x step time)."""
    t = dict(
        compute=cost_.flops / chip.peak_flops,
        hbm=cost_.bytes_accessed / chip.hbm_bw,
        ici=cost_.collective_bytes / chip.ici_bw,
    )
    step = max(t.values())
    bound = max(t, key=t.get)
    mfu = model_flops / (num_chips * chip.peak_flops * step) if step > 0 else 0.0
    return dict(step_s=step, mfu=mfu, bound=bound, **{f"{k}_s": v for k, v in t.items()})
