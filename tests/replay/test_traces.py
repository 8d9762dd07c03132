"""`python -m simpersona_jax.traces` end to end on a tiny synthetic dataset."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from simpersona_jax.replay.schema import TRACE_SCHEMA

pytestmark = pytest.mark.browser
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_traces_cli(tmp_path):
    out = tmp_path / "traces"
    cmd = [sys.executable, "-m", "simpersona_jax.traces", "--config=experiments/traces.py",
           f"--config.out_dir={out}", f"--config.events.synth_dir={tmp_path / 'synth'}",
           "--config.synth.num_stores=2", "--config.synth.buyers_per_store=12",
           "--config.synth.products_per_store=60", "--config.max_sessions=6",
           "--config.max_events_per_session=15", "--config.rows_per_shard=40",
           "--config.driver.concurrency=4", "--config.server_mode=thread"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "generating synthetic stores" in proc.stdout
    assert "6/6 sessions" in proc.stdout or "sessions in 6" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sessions_in"] == 6
    assert summary["replayed"] + sum(summary["dropped"].values()) == 6
    assert summary["replayed"] >= 4
    shards = sorted(p for p in os.listdir(out) if p.startswith("traces-"))
    assert shards == summary["shards"] and shards[0] == "traces-00000.parquet"
    rows = sum(pq.read_table(out / s).num_rows for s in shards)
    assert rows == summary["steps"] and summary["tokens"] > rows
    assert pq.read_schema(out / shards[0]) == TRACE_SCHEMA
    assert f"sessions in 6, replayed {summary['replayed']}" in proc.stdout
    # The storefront's log of the replay is canonical Parquet the buyer pipeline reads.
    assert os.path.isdir(out / "_storefront" / "events")
