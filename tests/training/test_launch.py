"""Multi-process detection and the flag sweep runner."""

import os
import subprocess
import sys

import pytest

from simpersona_jax.training import distributed, sweep

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.parametrize(
    "env,expected",
    [
        ({}, False),
        ({"SLURM_NTASKS": "1"}, False),
        ({"SLURM_NTASKS": "16"}, True),
        ({"TPU_WORKER_HOSTNAMES": "a,b,c,d"}, True),
        ({"TPU_WORKER_HOSTNAMES": "localhost"}, False),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ],
)
def test_multi_process_detection(monkeypatch, env, expected):
    for name, _ in distributed._MULTI_PROCESS_ENV:
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert distributed.launched_multi_process() is expected
    assert distributed.maybe_initialize("off") is False
    with pytest.raises(ValueError, match="distributed="):
        distributed.maybe_initialize("maybe")


def test_sweep_grid_names_and_commands():
    axes = sweep.parse_grid(["loss.w=0,0.1", "vq.cosine=False,True"])
    combos = sweep.combinations(axes)
    assert len(combos) == 4 and combos[1] == {"loss.w": "0", "vq.cosine": "True"}
    assert sweep.run_name(combos[1]) == "loss.w=0,vq.cosine=True"
    cmd = sweep.command("simpersona_jax.train", "experiments/vqvae.py", "/r/x", combos[1], ["--a"])
    assert cmd[1:] == [
        "-m",
        "simpersona_jax.train",
        "--config=experiments/vqvae.py",
        "--workdir=/r/x",
        "--config.loss.w=0",
        "--config.vq.cosine=True",
        "--a",
    ]
    with pytest.raises(ValueError, match="expected key=v1"):
        sweep.parse_grid(["nokey"])


def test_sweep_dry_run_prints_every_run():
    out = subprocess.run(
        [
            sys.executable,
            "launch/sweep.py",
            "--config=experiments/vqvae.py",
            "--workdir=/tmp/none",
            "--grid=seed=1,2,3",
            "--shard=1/2",
            "--dry_run",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [s for s in out.stdout.splitlines() if "simpersona_jax.train" in s]
    assert len(lines) == 1 and "--config.seed=2" in lines[0]
