"""Issue 11: a small store's config problems are reported at once, each with a value that works."""

import numpy as np
import pytest

from simpersona_jax.vqvae.sizing import check_data_size
from simpersona_jax.vqvae.task import VQVAETask

from .tiny import experiment_config, tiny_arrays, tiny_config


def test_233_buyers_with_the_default_config_fail_once_naming_every_setting():
    with pytest.raises(ValueError) as e:
        check_data_size(experiment_config(), 233)
    msg = str(e.value)
    assert msg.startswith("233 training buyers are too few")
    assert "model.codebook_size=256 -> 32" in msg and "global_batch_size=512 -> 128" in msg
    c = experiment_config()
    c.data.init_sample_size = 100
    with pytest.raises(ValueError, match=r"init_sample_size=100 -> 256") as e:
        check_data_size(c, 10_000)
    assert "codebook_size=256 ->" not in str(e.value)  # 10,000 buyers support 256 codes


def test_the_suggested_values_pass_and_train_start_up():
    c = tiny_config()
    c.model.codebook_size, c.global_batch_size = 64, 64
    task = VQVAETask(c, tiny_arrays(40))
    with pytest.raises(ValueError, match=r"codebook_size=64 -> 8 .*global_batch_size=64 -> 32"):
        task.init_sample()
    c.model.codebook_size, c.global_batch_size = 8, 32
    assert len(VQVAETask(c, tiny_arrays(40)).init_sample()["x"]) == 40


def test_two_buyers_report_too_few_buyers_instead_of_nan(tmp_path):
    import flax.linen as nn
    import jax

    c = tiny_config()
    c.model.codebook_size, c.global_batch_size = 2, 2
    task = VQVAETask(c, tiny_arrays(2))
    variables = nn.meta.unbox(jax.jit(task.init)(jax.random.key(0), task.init_sample()))
    params, extra = variables["params"], {"codebook": variables["codebook"]}
    # CH is undefined on 2 buyers: left out of the eval metrics (TensorBoard, eval.json) ...
    metrics = task.evaluate(params, extra)
    assert "calinski_harabasz" not in metrics
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    # ... and named in the quality table.
    table = task.report(params, extra, str(tmp_path), metrics)
    assert "calinski_harabasz: too few buyers for this metric" in table
