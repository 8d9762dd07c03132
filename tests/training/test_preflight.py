"""launch/tpu_pod.sh refuses to start a pod when the pre-flight compile fails."""

import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_pod_launch_stops_when_preflight_fails(tmp_path):
    calls = tmp_path / "gcloud_calls"
    gcloud = tmp_path / "gcloud"
    gcloud.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    gcloud.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}", TOPOLOGY="v9z:1x1")
    out = subprocess.run(
        ["bash", "launch/tpu_pod.sh", "tpu", "zone", "experiments/vqvae.py", "/tmp/w"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pre-flight: experiments/vqvae.py does not fit v9z:1x1" in out.stdout
    assert not calls.exists()  # nothing ran on the pod
