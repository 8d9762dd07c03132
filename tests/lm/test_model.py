"""Flax decoder vs transformers PyTorch: same logits (fp32) for Qwen3, Qwen2, Llama and RoPE variants."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hf_testing import hf_config, make_hf_model

from simpersona_jax.lm import attention, hf
from simpersona_jax.lm.model import Decoder, init_cache


@functools.partial(jax.jit, static_argnums=0)
def forward(cfg, params, tokens, positions=None, segments=None):
    return Decoder(cfg).apply({"params": params}, tokens, positions, segments)[0]


def _logits(folder, ids, **kw):
    cfg, params = hf.load_params(folder, **kw)
    return np.asarray(forward(cfg, params, jnp.asarray(ids)))


@pytest.mark.parametrize("family", ["qwen3", "qwen2", "llama"])
def test_logits_match_transformers(hf_models, token_batch, family):
    folder, model = hf_models[family]
    with torch.no_grad():
        ref = model(torch.tensor(token_batch, dtype=torch.long)).logits.numpy()
    got = _logits(folder, token_batch)
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize(
    "rope",
    [
        dict(rope_type="linear", factor=2.0),
        dict(rope_type="dynamic", factor=2.0),
        dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32),
    ],
)
def test_rope_variants_match_transformers(tmp_path, token_batch, rope):
    config = hf_config(
        "qwen2", rope_parameters=dict(rope_theta=10000.0, **rope), max_position_embeddings=128
    )
    model = make_hf_model(str(tmp_path), config, seed=1)
    with torch.no_grad():
        ref = model(torch.tensor(token_batch, dtype=torch.long)).logits.numpy()
    assert np.abs(_logits(str(tmp_path), token_batch) - ref).max() <= 1e-4


@pytest.mark.parametrize("unroll", [True, False])
def test_blocked_causal_attention_matches_transformers(hf_models, unroll):
    """t > CAUSAL_BLOCK (query blocks skip the keys above the diagonal), rolled and unrolled layers."""
    assert 150 > attention.CAUSAL_BLOCK
    folder, model = hf_models["llama"]
    ids = np.random.RandomState(5).randint(3, 300, (2, 150)).astype(np.int32)
    with torch.no_grad():
        ref = model(torch.tensor(ids, dtype=torch.long)).logits.numpy()
    got = _logits(folder, ids, cfg=hf.read_config(folder, unroll_layers=unroll))
    assert np.abs(got - ref).max() <= 1e-4


def test_packed_segments_equal_separate_sequences(hf_models):
    folder, _ = hf_models["qwen3"]
    cfg, params = hf.load_params(folder)
    rng = np.random.RandomState(1)
    a, b = rng.randint(3, 300, 7), rng.randint(3, 300, 5)
    packed = np.concatenate([a, b, [0, 0]])[None]
    seg = np.array([[1] * 7 + [2] * 5 + [0, 0]])
    pos = np.concatenate([np.arange(7), np.arange(5), [0, 0]])[None]
    out = forward(cfg, params, jnp.asarray(packed), jnp.asarray(pos), jnp.asarray(seg))
    ref_a = forward(cfg, params, jnp.asarray(a[None]))
    ref_b = forward(cfg, params, jnp.asarray(b[None]))
    np.testing.assert_allclose(out[0, :7], ref_a[0], atol=1e-5)
    np.testing.assert_allclose(out[0, 7:12], ref_b[0], atol=1e-5)


def test_cached_decoding_matches_full_forward(hf_models, token_batch):
    folder, _ = hf_models["llama"]
    cfg, params = hf.load_params(folder)
    model = Decoder(cfg)
    full = forward(cfg, params, jnp.asarray(token_batch))
    t = token_batch.shape[1]
    cache = init_cache(cfg, 2, t + 3)
    step = jax.jit(
        lambda p, x, pos, c, i: model.apply({"params": p}, x, pos, cache=c, write_index=i)
    )
    pre, cache = step(
        params, jnp.asarray(token_batch[:, :10]), jnp.arange(10)[None].repeat(2, 0), cache, 0
    )
    steps = [pre]
    for i in range(10, t):
        out, cache = step(
            params, jnp.asarray(token_batch[:, i : i + 1]), jnp.full((2, 1), i), cache, i
        )
        steps.append(out)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("unroll", [True, False])
def test_last_only_prefill_matches_full_forward(hf_models, unroll):
    """A prefill with last_only=True: last-position logits and every cached key/value are exact."""
    folder, _ = hf_models["qwen3"]
    cfg, params = hf.load_params(folder, hf.read_config(folder, unroll_layers=unroll))
    model = Decoder(cfg)
    ids = jnp.asarray(np.random.RandomState(6).randint(3, 300, (2, 100)).astype(np.int32))

    @functools.partial(jax.jit, static_argnums=0)
    def prefill(last_only, p):
        return model.apply(
            {"params": p}, ids, cache=init_cache(cfg, 2, 104), write_index=0, last_only=last_only
        )

    (full, cache_full), (last, cache_last) = prefill(False, params), prefill(True, params)
    assert last.shape == (2, 1, cfg.vocab_size)
    np.testing.assert_allclose(last[:, 0], full[:, -1], atol=1e-5)
    for key in ("k", "v"):
        np.testing.assert_array_equal(cache_last[key], cache_full[key])


def test_bf16_compute_close_to_fp32(hf_models, token_batch):
    folder, _ = hf_models["qwen3"]
    f32 = _logits(folder, token_batch)
    b16 = _logits(folder, token_batch, cfg=hf.read_config(folder, dtype="bfloat16"))
    assert np.abs(f32 - b16).max() < 0.1 * np.abs(f32).max()


def test_remat_policies_same_gradients(hf_models, token_batch):
    folder, _ = hf_models["qwen3"]
    cfg, params = hf.load_params(folder)

    @functools.partial(jax.jit, static_argnums=1)
    def grads(p, c):
        return jax.grad(
            lambda p: jnp.mean(Decoder(c).apply({"params": p}, jnp.asarray(token_batch))[0] ** 2)
        )(p)

    g0 = grads(params, cfg)
    for policy in ("full", "dots_no_batch"):
        g1 = grads(params, cfg.replace(remat_policy=policy))
        for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
