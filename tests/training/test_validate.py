"""Configs are checked up front: every problem at once, one line each naming the key."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from simpersona_jax.training import train, validate

from .toy import ToyTask, toy_config

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _experiment(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "experiments", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_bad_loop_values_fail_before_training_one_line_each(tmp_path):
    cfg = toy_config(data=8)
    cfg.num_steps = 0
    cfg.checkpoint.every_steps = 0
    cfg.log_every_steps = -1
    cfg.eval_every_steps = -5
    cfg.optimizer.learning_rate = 0.0
    cfg.optimizer.schedule = "cosin"
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        train(cfg, str(workdir), ToyTask())
    lines = str(err.value).splitlines()
    assert lines == [
        "config.num_steps=0: expected an integer >= 1",
        "config.log_every_steps=-1: expected an integer >= 1",
        "config.eval_every_steps=-5: expected an integer >= 0",
        "config.optimizer.learning_rate=0.0: expected a number in (0, inf)",
        "config.optimizer.schedule='cosin': expected one of 'cosine', 'linear', 'constant'",
        "config.checkpoint.every_steps=0: expected an integer >= 1",
    ]
    assert not workdir.exists()  # nothing was written


@pytest.mark.parametrize(
    "gbs,expected",
    [
        (0, "config.global_batch_size=0: expected an integer >= 1"),
        (-8, "config.global_batch_size=-8: expected an integer >= 1"),
        (
            12,
            "config.global_batch_size=12: must be divisible by the batch mesh axes ('data', 'fsdp') "
            "(8 shards)",
        ),
    ],
)
def test_batch_size_is_positive_and_splits_over_the_mesh(tmp_path, gbs, expected):
    cfg = toy_config(data=8)
    cfg.global_batch_size = gbs
    with pytest.raises(ValueError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
        train(cfg, str(tmp_path / "run"), ToyTask())


def test_workdir_that_is_a_file_and_a_bad_mesh(tmp_path):
    cfg = toy_config(data=3, fsdp=2)
    path = tmp_path / "afile"
    path.write_text("x")
    with pytest.raises(ValueError) as err:
        train(cfg, str(path / "run"), ToyTask())
    assert str(err.value).splitlines() == [
        "config.mesh / config.logical_axis_rules: mesh {'data': 3, 'fsdp': 2, 'tensor': 1} "
        "needs 6 devices, have 8",
        f"--workdir={path}/run: {path} is a file, not a directory",
    ]


def test_vqvae_keys(tmp_path):
    cfg = _experiment("vqvae.py")
    assert validate.problems(cfg, str(tmp_path)) == []
    cfg.model.hidden = (256, 0)
    cfg.model.block_sizes = (16, 384, 4)
    cfg.vq.decay = 1.0
    cfg.loss.temperature = 0.0
    cfg.loss.contrastive_positives = "view"
    cfg.loss.aux_weights.stratum = -1.0
    cfg.eval.incoherence_tol = 2.0
    cfg.data.init_sample_size = 8
    cfg.model.codebook_size = 16
    found = validate.problems(cfg, str(tmp_path))
    assert "config.model.hidden=(256, 0): expected a non-empty list of integers >= 1" in found
    assert "config.vq.decay=1.0: expected a number in (0, 1)" in found
    assert "config.loss.temperature=0.0: expected a number in (0, inf)" in found
    assert "config.loss.contrastive_positives='view': expected one of 'views', 'labels'" in found
    assert "config.eval.incoherence_tol=2.0: expected a number in [0, 1]" in found
    assert "config.model.block_sizes=(16, 384, 4): must sum to config.model.input_dim=403" in found
    assert "config.loss.aux_weights.stratum=-1.0: expected a number in [0, inf)" in found
    assert found[-1].startswith(
        "config.data.init_sample_size=8: must be >= config.model.codebook_size=16"
    )
    assert len(found) == 8
    cfg = _experiment("vqvae.py")
    cfg.model.codebook_size = 0
    assert validate.problems(cfg, None) == [
        "config.model.codebook_size=0: expected an integer >= 1"
    ]


def test_lm_sft_keys(tmp_path):
    traces, hf = tmp_path / "traces", tmp_path / "hf"
    traces.mkdir()
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({}))
    for name in ("agent_base.py", "agent_stage1.py", "agent_stage2.py"):
        cfg = _experiment(name)
        cfg.data.traces_dir = str(traces)
        if cfg.lm.init_from:
            cfg.lm.init_from = str(hf)
        assert validate.problems(cfg, str(tmp_path / "run")) == [], name
    cfg = _experiment("agent_stage1.py")
    cfg.data.traces_dir = str(tmp_path / "nope")
    cfg.lm.init_from = str(tmp_path)
    cfg.data.seq_len = 0
    cfg.persona.num_personas = 0
    cfg.persona.init = "code_projection"
    cfg.lm.remat_policy = "some"
    assert validate.problems(cfg, str(tmp_path / "run")) == [
        f"config.data.traces_dir='{tmp_path}/nope': no such directory",
        "config.data.seq_len=0: expected an integer >= 2",
        "config.lm.remat_policy='some': expected one of 'none', 'full', 'dots', 'dots_no_batch'",
        f"config.lm.init_from='{tmp_path}': no Hugging Face folder there (no config.json); "
        "'' = the embedded default",
        "config.persona.codes_path: required by persona.init='code_projection' "
        "(a .npy [K, C] array of code vectors)",
        "config.persona.num_personas=0: train.mode='persona_rows' needs >= 1",
    ]
    cfg = _experiment("agent_base.py")
    cfg.data.traces_dir = str(traces)
    cfg.lm.model.num_kv_heads = 3
    assert validate.problems(cfg, None) == [
        "config.lm.model.num_heads=4: must be a multiple of config.lm.model.num_kv_heads=3"
    ]


def test_lm_numerics_keys(tmp_path):
    """The attention and loss settings are config keys (settable with --config.lm.*), checked."""
    traces = tmp_path / "traces"
    traces.mkdir()
    cfg = _experiment("agent_base.py")
    cfg.data.traces_dir = str(traces)
    cfg.lm.attn_scores_f32 = False
    assert validate.problems(cfg, None) == []
    cfg.lm.attention_impl, cfg.lm.loss_chunk, cfg.lm.attn_blocks = "flash", -1, 0
    assert validate.problems(cfg, None) == [
        "config.lm.attention_impl='flash': expected one of 'xla', 'jax', 'cudnn'",
        "config.lm.attn_blocks=0: expected an integer >= 1",
        "config.lm.loss_chunk=-1: expected an integer >= 0",
    ]


def test_train_tool_prints_one_line_per_problem_and_no_traceback(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "simpersona_jax.train",
            "--config=experiments/vqvae.py",
            f"--workdir={afile}",
            "--config.num_steps=-3",
            "--config.checkpoint.every_steps=0",
            "--config.global_batch_size=0",
            "--config.model.codebook_size=0",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == [
        "error: config.global_batch_size=0: expected an integer >= 1",
        "error: config.num_steps=-3: expected an integer >= 1",
        "error: config.checkpoint.every_steps=0: expected an integer >= 1",
        f"error: --workdir={afile}: {afile} is a file, not a directory",
        "error: config.model.codebook_size=0: expected an integer >= 1",
    ]
    assert proc.stdout == ""
