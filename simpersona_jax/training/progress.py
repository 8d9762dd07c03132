"""Metrics to TensorBoard event files (process 0) and a console progress line."""

from __future__ import annotations

import datetime
import os
import sys
import time

import jax
import numpy as np


def mean_metrics(history: list[dict]) -> dict[str, float]:
    """Host means of a list of per-step scalar metric dicts (one device_get for all of them)."""
    if not history:
        return {}
    fetched = jax.device_get(history)
    return {k: float(np.mean([h[k] for h in fetched])) for k in fetched[0]}


class Progress:
    """Writes scalars to <workdir>/tensorboard and prints
    `step 500/3000 | loss 0.1234 | 45.2 steps/s | 23,100 buyers/s | ETA 0:00:55`."""

    def __init__(
        self,
        workdir: str,
        *,
        total_steps: int,
        global_batch_size: int,
        example_name: str,
        start_step: int,
        console_metrics=None,
        stream=None,
    ):
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self.example_name = example_name
        self.console_metrics = console_metrics
        self.stream = stream or sys.stdout
        self.is_main = jax.process_index() == 0
        self.writer = None
        if self.is_main:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
        self._t = time.perf_counter()
        self._step = start_step

    def scalars(self, step: int, values: dict[str, float], prefix: str = "train") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)
        self.writer.flush()

    def line(self, step: int, metrics: dict[str, float]) -> str:
        now = time.perf_counter()
        dt = max(now - self._t, 1e-9)
        steps_per_s = (step - self._step) / dt
        self._t, self._step = now, step
        eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
        eta_s = str(datetime.timedelta(seconds=int(eta))) if np.isfinite(eta) else "?"
        keys = self.console_metrics or [k for k in metrics if k not in ("nonfinite", "grad_norm")]
        shown = " | ".join(f"{k} {metrics[k]:.4g}" for k in keys if k in metrics)
        text = (
            f"step {step}/{self.total_steps} | {shown} | {steps_per_s:.1f} steps/s | "
            f"{steps_per_s * self.global_batch_size:,.0f} {self.example_name}/s | ETA {eta_s}"
        )
        self.scalars(
            step,
            {
                "steps_per_sec": steps_per_s,
                f"{self.example_name}_per_sec": steps_per_s * self.global_batch_size,
            },
        )
        if self.is_main:
            print(text, file=self.stream, flush=True)
        return text

    def print(self, text: str) -> None:
        if self.is_main:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
