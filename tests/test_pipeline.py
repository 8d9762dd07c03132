"""The whole loop as one command on a tiny config: manifests hand values on, current stages are
skipped, a deleted manifest reruns its stage and what follows, subsets need current inputs, and
inconsistent persona codes are errors."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys

import polars as pl
import pytest

from simpersona_jax.loop import NAMES, PipelineError, manifest, run
from simpersona_jax.loop.checks import persona_coverage

pytestmark = pytest.mark.browser
ROOT = os.path.join(os.path.dirname(__file__), "..")
TINY = {
    "data.synth.num_stores": 4,
    "data.synth.buyers_per_store": 40,
    "data.synth.products_per_store": 40,
    "data.synth.heldout_fraction": 0.5,
    "vqvae.num_steps": 4,
    "vqvae.log_every_steps": 2,
    "vqvae.global_batch_size": 64,
    "vqvae.model.hidden": (32, 16),
    "vqvae.model.latent_dim": 8,
    "vqvae.model.codebook_size": 16,
    "vqvae.data.init_sample_size": 128,
    "vqvae.checkpoint.every_steps": 2,
    "vqvae.eval.batch_size": 128,
    "vqvae.eval.kmeans_baseline": False,
    "vqvae.eval.chunk": 32,
    "vqvae.loss.contrastive_max_batch": 32,
    "traces.max_sessions": 6,
    "traces.max_events_per_session": 15,
    "traces.driver.concurrency": 4,
    "traces.server_mode": "thread",
    "simulate.arms": ("oracle",),
    "simulate.buyers_per_store": 2,
    "simulate.n_boot": 20,
    "simulate.server_mode": "thread",
    "simulate.driver.concurrency": 4,
    "simulate.driver.step_limit": 30,
    "goals.policy": "solver",
    "goals.n_per_kind": 1,
    "goals.server_mode": "thread",
    "goals.driver.concurrency": 3,
}
LM_TINY = {
    "num_steps": 2,
    "log_every_steps": 1000,
    "global_batch_size": 8,
    "data.seq_len": 256,
    "data.eval_fraction": 0.25,
    "data.max_eval_examples": 8,
    "persona.vocab_multiple": 64,
    "lm.tokenizer_vocab_size": 400,
    "checkpoint.every_steps": 1000,
    "lm.model.hidden_size": 32,
    "lm.model.intermediate_size": 64,
    "lm.model.num_layers": 1,
    "lm.model.num_heads": 2,
    "lm.model.num_kv_heads": 1,
    "lm.model.head_dim": 16,
}


def tiny_config(**over):
    path = os.path.join(ROOT, "experiments", "simpersona.py")
    spec = importlib.util.spec_from_file_location("simpersona_exp", path)
    exp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exp)
    cfg = exp.get_config()
    cfg.update_from_flattened_dict(TINY)
    for stage in ("agent_base", "agent_stage1", "agent_stage2"):
        cfg.update_from_flattened_dict({f"{stage}.{k}": v for k, v in LM_TINY.items()})
    cfg.update_from_flattened_dict(over)
    return cfg


def statuses(text: str) -> dict[str, str]:
    """{stage: "done" | "current, skipped" | ...} from the runner's per-stage lines."""
    lines = re.finditer(r"^\[\d+/\d+\] (\w+)\s+(.+?)\s+[\d.]+s", text, re.M)
    return {m[1]: m[2].strip() for m in lines}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("pipeline"))
    run(tiny_config(), path)
    return path


def test_manifests_hand_each_stage_what_it_needs(workdir):
    m = {name: manifest.read(os.path.join(workdir, name)) for name in NAMES}
    assert all(m.values()), [n for n, v in m.items() if v is None]
    data, assign, traces = m["data"]["outputs"], m["assign"]["outputs"], m["traces"]["outputs"]
    assert data["width"] == 403 and data["block_sizes"] == [16, 384, 3]
    assert data["buyers"] == sum(data["buyers_per_split"].values()) > 0
    assert assign["K"] == 16 and assign["codebook_shape"] == [16, 8]
    assert m["vqvae"]["config"]["data"]["dir"] == data["dir"] == os.path.join(workdir, "data")
    assert m["vqvae"]["inputs"] == {"data": m["data"]["digest"]}
    cov = traces["coverage"]
    assert cov["trace_buyers_with_code"] == cov["trace_buyers"] > 0
    assert 0 < cov["heldout_codes_traced"] <= cov["heldout_codes"] <= 16
    for stage, prev in (("agent_stage1", "agent_base"), ("agent_stage2", "agent_stage1")):
        c = m[stage]["config"]
        assert c["persona"]["num_personas"] == 16
        assert c["data"]["codes_path"] == assign["codes_path"]
        assert c["persona"]["codes_path"] == assign["codebook_path"]
        assert c["lm"]["init_from"] == m[prev]["outputs"]["hf"]
        assert c["data"]["traces_dir"] == traces["traces_dir"]
    assert m["agent_base"]["config"]["persona"]["num_personas"] == 0
    sim, goals = m["simulate"], m["goals"]
    assert sim["config"]["codes"] == assign["codes_path"]
    for stage in (sim, goals):
        assert stage["config"]["lm"]["folder"] == m["agent_stage2"]["outputs"]["hf"]
        assert stage["config"]["data"]["dir"] == data["dir"]
    assert sim["outputs"]["arms"] == ["oracle"] and os.path.exists(sim["outputs"]["html"])
    assert set(goals["outputs"]["success"]) == {"find_add", "search_buy", "browse"}
    text = open(os.path.join(workdir, "report", "report.txt")).read()
    assert "K=16" in text and "total" in text


def test_second_run_skips_every_stage(workdir, capsys):
    before = {n: manifest.read(os.path.join(workdir, n))["digest"] for n in NAMES}
    run(tiny_config(), workdir)
    assert statuses(capsys.readouterr().out) == {n: "current, skipped" for n in NAMES}
    assert {n: manifest.read(os.path.join(workdir, n))["digest"] for n in NAMES} == before


def test_a_copied_workdir_stays_current(workdir, tmp_path, capsys):
    copy = str(tmp_path / "moved")
    shutil.copytree(workdir, copy)
    done = run(tiny_config(), copy)
    assert statuses(capsys.readouterr().out) == {n: "current, skipped" for n in NAMES}
    assert done["assign"]["outputs"]["codes_path"] == os.path.join(copy, "assign", "codes.parquet")


def test_deleted_manifest_reruns_its_stage_and_what_follows(workdir, capsys):
    os.remove(os.path.join(workdir, "simulate", "manifest.json"))
    run(tiny_config(), workdir)
    expect = {n: "current, skipped" for n in NAMES}
    expect.update(simulate="resumed and done", report="done")  # no manifest: like an interruption
    assert statuses(capsys.readouterr().out) == expect


def test_changed_config_reruns_that_stage_and_what_follows(workdir, capsys):
    run(tiny_config(**{"goals.seed": 1}), workdir)
    got = statuses(capsys.readouterr().out)
    assert [n for n, s in got.items() if s != "current, skipped"] == ["goals", "report"]
    assert got["goals"] == "done"  # a finished stage with another config starts afresh


def test_subset_runs_only_its_stages_and_needs_current_inputs(workdir, capsys):
    os.remove(os.path.join(workdir, "assign", "manifest.json"))
    run(tiny_config(stages="assign"), workdir)
    assert statuses(capsys.readouterr().out) == {"assign": "resumed and done"}
    # traces read the old assignment: stale now, so a stage after it cannot run alone.
    with pytest.raises(
        PipelineError,
        match=r"stage traces .* no current manifest .*input assign "
        r"changed.*--config.stages=traces,agent_base",
    ):
        run(tiny_config(stages="agent_base"), workdir)


def test_subset_on_a_fresh_workdir_names_the_missing_stage(tmp_path):
    with pytest.raises(
        PipelineError,
        match=r"stage data \(read by vqvae\) has no current manifest"
        r".*no manifest.*--config.stages=data,vqvae,assign",
    ):
        run(tiny_config(stages="vqvae,assign"), str(tmp_path))
    with pytest.raises(PipelineError, match="unknown stage"):
        run(tiny_config(stages="vqvae,asign"), str(tmp_path))


def test_out_of_range_code_and_lossy_join_are_errors(workdir, tmp_path):
    traces = os.path.join(workdir, "traces")
    codes_path = os.path.join(workdir, "assign", "codes.parquet")
    codes = pl.read_parquet(codes_path)
    bad = str(tmp_path / "bad_codes.parquet")
    out_of_range = pl.when(pl.col("row") == 0).then(16).otherwise(pl.col("code"))
    codes.with_columns(code=out_of_range).write_parquet(bad)
    with pytest.raises(
        PipelineError,
        match=r"bad_codes.parquet: 1 persona code\(s\) out of range "
        r"\[0, 16\)",
    ):
        persona_coverage(traces, bad, 16)
    other = str(tmp_path / "other_ids.parquet")
    codes.with_columns(buyer_id=pl.col("buyer_id") + "x").write_parquet(other)
    with pytest.raises(
        PipelineError, match=r"traces in .*traces to the codes in .*other_ids.parquet .*loses"
    ):
        persona_coverage(traces, other, 16)
    assert persona_coverage(traces, codes_path, 16)["trace_buyers_with_code"] > 0


def test_cli_parses_its_flags_and_reports_errors_plainly(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simpersona_jax.pipeline",
            "--config=experiments/simpersona.py",
            f"--workdir={tmp_path}",
            "--config.stages=vqvae",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: stage data (read by vqvae) has no current manifest" in proc.stderr
