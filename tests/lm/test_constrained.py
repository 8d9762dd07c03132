"""Constrained action decoding: candidates from the page, cache-exact log-probs, always-valid actions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simpersona_jax.lm import hf, prompt
from simpersona_jax.lm import tokenizer as tok_lib
from simpersona_jax.lm.candidates import Candidate, candidates, fill_prefix
from simpersona_jax.lm.constrained import MAX_NEW, ConstrainedDecoder, extend, prefill
from simpersona_jax.lm.model import Decoder
from simpersona_jax.rollout.actions import parse_action

OBS = "\n".join(
    [
        "page: product /s/p/p7",
        "title: Trail Runner",
        "price: $31.00",
        "cart: 0",
        '[1] link "Home"',
        '[2] searchbox "Search"',
        '[3] button "Search"',
        '[4] spinbutton "Quantity" value="1"',
        '[5] button "Add to cart"',
        '[6] link "Cart (0)"',
        '[7] link "Wool Beanie — $12.00"',
    ]
)


@pytest.fixture(scope="module")
def decoder(hf_models):
    folder, _ = hf_models["qwen3"]
    cfg, params = hf.load_params(folder)
    text = 'click("12") fill("3", "red shoes") press("3", "Enter") go_back() stop()\n' + OBS
    tok = tok_lib.train_bpe([text] * 40, vocab_size=300)
    assert len(tok) <= cfg.vocab_size
    return ConstrainedDecoder(
        cfg, params, tok, max_text_tokens=6, prompt_buckets=(64,), batch_buckets=(4, 8)
    )


def test_candidates_are_the_page_actions():
    got = [c.text for c in candidates(OBS, history=())]
    assert got == [
        'click("1")',
        fill_prefix("2"),
        'press("2", "Enter")',
        'click("3")',
        fill_prefix("4"),
        'press("4", "Enter")',
        'click("5")',
        'click("6")',
        'click("7")',
        "stop()",
    ]
    assert fill_prefix("2") == 'fill("2", "'
    assert "go_back()" in [c.text for c in candidates(OBS, history=['click("1")'])]
    assert [c.text for c in candidates("page: home /s/\ncart: 0")] == ["stop()"]


def test_prefill_and_extend_match_a_full_forward(decoder):
    """The KV-cache path gives the same next-token log-probs as one forward over the sequence."""
    rng = np.random.RandomState(0)
    seqs = [rng.randint(3, 300, n).tolist() for n in (9, 14, 5)]
    p, b = 16, 4
    toks = np.zeros((b, p), np.int32)
    pad = np.full((b,), p - 1, np.int32)
    for i, q in enumerate(seqs):
        toks[i, p - len(q) :] = q
        pad[i] = p - len(q)
    logp, cache = prefill(decoder.params, toks, pad, cfg=decoder.cfg, length=p + 8)
    steps = [np.asarray(logp)]
    nxt = rng.randint(3, 300, (3, b)).astype(np.int32)
    for i in range(3):
        logp, cache = extend(decoder.params, nxt[i], pad, cache, np.int32(p + i), cfg=decoder.cfg)
        steps.append(np.asarray(logp))
    forward = jax.jit(
        lambda p, x: jax.nn.log_softmax(Decoder(decoder.cfg).apply({"params": p}, x)[0])
    )
    for r, q in enumerate(seqs):
        full = np.asarray(q + nxt[:, r].tolist(), np.int32)[None]
        ref = np.asarray(forward(decoder.params, jnp.asarray(full))[0])
        for k in range(4):
            np.testing.assert_allclose(steps[k][r], ref[len(q) - 1 + k], atol=2e-4)


def test_every_action_is_valid_and_on_the_page(decoder):
    cands = candidates(OBS, history=['click("1")'])
    bids = {"1", "2", "3", "4", "5", "6", "7"}
    ids = decoder.tokenizer.encode(prompt.build("Browse.", [], OBS), add_special_tokens=False)[-60:]
    seen = set()
    for seed in range(0, 64, 8):
        acts = decoder.choose([ids] * 8, [cands] * 8, list(range(seed, seed + 8)), temperature=1.0)
        for a in acts:
            action = parse_action(a)
            assert not action.args or action.args[0] in bids
            if action.name == "fill":
                assert action.args[0] in {"2", "4"} and "\n" not in action.args[1]
            else:
                assert a in {c.text for c in cands}
            seen.add(action.name)
    assert len(seen) >= 3  # sampling explores the candidate set


def test_rows_do_not_depend_on_batch_mates_and_greedy_is_deterministic(decoder):
    cands = candidates(OBS)
    other = [Candidate("stop()")]
    ids = decoder.tokenizer.encode(OBS, add_special_tokens=False)[-50:]
    alone = decoder.choose([ids], [cands], [7])
    mixed = decoder.choose([ids[:20], ids, ids[5:]], [other, cands, cands], [1, 7, 3])
    assert mixed[1] == alone[0]
    assert mixed[0] == "stop()"
    g1 = decoder.choose([ids], [cands], [1], temperature=0.0)
    g2 = decoder.choose([ids], [cands], [2], temperature=0.0)
    assert g1 == g2


def test_a_single_candidate_is_forced_and_errors_are_clear(decoder):
    ids = [5, 6, 7]
    assert decoder.choose([ids], [[Candidate('click("5")')]], [0]) == ['click("5")']
    with pytest.raises(ValueError, match="at least one candidate"):
        decoder.choose([ids], [[]], [0])
    with pytest.raises(ValueError, match="2 prompts, 1 candidate lists"):
        decoder.choose([ids, ids], [[Candidate("stop()")]], [0, 1])
    assert MAX_NEW > decoder.max_text_tokens + 8
