"""Fixtures for tests/lm: random tiny Qwen3 / Qwen2 / Llama checkpoints saved with transformers."""

import os
import sys

import numpy as np
import pytest

# Test modules import fake_traces / hf_testing by name (pytest runs with --import-mode=importlib).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hf_testing import VOCAB, hf_config, make_hf_model  # noqa: E402


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for fam in ("qwen3", "qwen2", "llama"):
        folder = os.path.join(root, fam)
        out[fam] = (folder, make_hf_model(folder, hf_config(fam)))
    return out


@pytest.fixture(scope="session")
def token_batch():
    return np.random.RandomState(0).randint(3, VOCAB, (2, 17)).astype(np.int32)
