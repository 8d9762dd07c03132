"""`python -m simpersona_jax.traces` end to end on a tiny synthetic dataset."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from simpersona_jax.replay.schema import TRACE_SCHEMA
from simpersona_jax.synth.generate import default_config, generate

pytestmark = pytest.mark.browser
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_traces_cli(tmp_path):
    out = tmp_path / "traces"
    synth = default_config()
    synth.update(dict(num_stores=2, buyers_per_store=12, products_per_store=60))
    generate(synth, str(tmp_path / "synth"))
    cmd = [
        sys.executable,
        "-m",
        "simpersona_jax.traces",
        "--config=experiments/traces.py",
        f"--config.out_dir={out}",
        f"--config.data.dir={tmp_path / 'synth'}",
        "--config.max_sessions=6",
        "--config.max_events_per_session=15",
        "--config.rows_per_shard=40",
        "--config.driver.concurrency=4",
        "--config.server_mode=thread",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
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


def test_mistyped_data_dir_is_an_error_and_generates_nothing(tmp_path):
    import importlib.util

    from simpersona_jax.replay.generate import load

    path = os.path.join(ROOT, "experiments", "traces.py")
    spec = importlib.util.spec_from_file_location("traces_exp", path)
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    cfg = exp.get_config()
    cfg.data.dir = str(tmp_path / "no_such_root")
    with pytest.raises(FileNotFoundError, match=r"config.data.dir=.*no_such_root.* is not a dir"):
        load(cfg)
    assert not (tmp_path / "no_such_root").exists()
