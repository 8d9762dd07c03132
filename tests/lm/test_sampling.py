"""Batched KV-cache sampling: greedy parity with transformers, per-row RNG, filters, stop strings."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from simpersona_jax.lm import hf
from simpersona_jax.lm import tokenizer as tok_lib
from simpersona_jax.lm.sampling import Sampler, bucket, filter_logits


@pytest.fixture(scope="module")
def sampler(hf_models):
    folder, _ = hf_models["qwen3"]
    cfg, params = hf.load_params(folder)
    tok = tok_lib.train_bpe(
        ['click("12") fill("3", "red shoes") press("3", "Enter") go_back() stop()\n'] * 40,
        vocab_size=300,
    )
    assert len(tok) <= 300
    return Sampler(cfg, params, tok, prompt_buckets=(16,), batch_buckets=(4,))


@pytest.mark.parametrize("family", ["qwen3", "qwen2", "llama"])
def test_greedy_matches_transformers_generate(hf_models, sampler, family):
    folder, model = hf_models[family]
    cfg, params = hf.load_params(folder)
    s = Sampler(cfg, params, sampler.tokenizer, prompt_buckets=(16,), batch_buckets=(4,))
    rng = np.random.RandomState(3)
    prompts = [rng.randint(3, 300, n).tolist() for n in (11, 6, 14)]
    got = s.generate_ids(prompts, [0, 1, 2], max_new_tokens=8, temperature=0.0)
    for p, g in zip(prompts, got):
        with torch.no_grad():
            ref = model.generate(
                torch.tensor([p]),
                max_new_tokens=8,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )[0, len(p) :].tolist()
        assert g == ref


def test_sampling_reproducible_and_batch_composition_independent(sampler):
    rng = np.random.RandomState(4)
    a, b, c = (rng.randint(3, 300, n).tolist() for n in (9, 13, 5))
    kw = dict(max_new_tokens=8, temperature=1.0, top_p=0.95)
    abc = sampler.generate_ids([a, b, c], [11, 22, 33], **kw)
    assert abc == sampler.generate_ids([a, b, c], [11, 22, 33], **kw)
    ca = sampler.generate_ids([c, a], [33, 11], **kw)
    assert ca == [abc[2], abc[0]]
    alone = sampler.generate_ids([b], [22], **kw)
    assert alone == [abc[1]]
    other_seed = sampler.generate_ids([a] * 4, [11, 12, 13, 14], **kw)
    assert other_seed[0] == abc[0] and len({tuple(x) for x in other_seed}) > 1


def test_top_k_one_and_tiny_top_p_are_greedy(sampler):
    prompts = [[5, 6, 7, 8], [9, 10]]
    greedy = sampler.generate_ids(prompts, [1, 2], max_new_tokens=8, temperature=0.0)
    assert (
        sampler.generate_ids(prompts, [1, 2], max_new_tokens=8, temperature=1.0, top_k=1) == greedy
    )
    assert (
        sampler.generate_ids(prompts, [1, 2], max_new_tokens=8, temperature=1.0, top_p=1e-6)
        == greedy
    )


def test_filter_logits():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05], [0.2, 0.3, 0.3, 0.2]]))
    out = np.asarray(filter_logits(logits, jnp.array([2, 0]), jnp.array([1.0, 0.5])))
    assert np.isfinite(out[0]).tolist() == [True, True, False, False]
    assert np.isfinite(out[1]).tolist() == [
        False,
        True,
        True,
        False,
    ]  # 0.3 < 0.5: the crossing token is kept
    out = np.asarray(filter_logits(logits, jnp.array([0, 0]), jnp.array([0.7, 1.0])))
    assert np.isfinite(out[0]).tolist() == [True, True, False, False]


def test_stop_strings_cut_text_and_end_rows(sampler):
    tok = sampler.tokenizer
    texts = sampler.generate(
        ["click(", 'fill("3"'], [1, 2], max_new_tokens=8, temperature=1.0, stop=[")"]
    )
    assert all(")" not in t for t in texts)
    stop_ids = set(sampler.stop_token_ids([")"]).tolist())
    assert tok.convert_tokens_to_ids(")") in stop_ids
    ids = sampler.generate_ids(
        [tok.encode("click(", add_special_tokens=False)],
        [5],
        max_new_tokens=8,
        temperature=1.0,
        stop=[")"],
    )[0]
    assert all(i not in stop_ids for i in ids[:-1])
    assert len(ids) == 8 or ids[-1] in stop_ids


def test_bucket():
    assert bucket(1, (8, 16)) == 8 and bucket(9, (8, 16)) == 16
    with pytest.raises(ValueError, match="exceeds the largest bucket"):
        bucket(17, (8, 16))
