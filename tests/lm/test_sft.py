"""Prompt layout, tokenizer, SFT masking and packing, persona rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_traces import make_rows

from simpersona_jax.lm import persona, prompt, sft
from simpersona_jax.lm import tokenizer as tok_lib
from simpersona_jax.lm.config import LMConfig


@pytest.fixture(scope="module")
def tok():
    rows = make_rows(20)
    t = tok_lib.train_bpe(
        (r["observation"] + "\n" + r["action"] + "\n" + r["goal_intent"] for r in rows),
        vocab_size=400,
    )
    tok_lib.add_persona_tokens(t, 4)
    return t


def test_prompt_layout_and_truncation(tok):
    text = prompt.build(
        "Buy shoes", ['click("1")', 'fill("2", "a")'], "page: home /\ncart: 0", persona=3
    )
    assert text.splitlines()[:4] == ["<|persona_3|>", "goal: Buy shoes", "history:", 'click("1")']
    assert text.endswith("cart: 0\n<|persona_3|>\naction: ")  # repeated at the decision
    assert not prompt.build("g", [], "obs", persona=-1).startswith("<|persona")
    assert "<|persona" not in prompt.build("g", [], "obs", persona=-1)
    long_obs = "\n".join(f'[{i}] link "Product number {i}"' for i in range(200))
    ids = prompt.encode(tok, "Buy shoes", [], long_obs, persona=2, max_prompt_tokens=64)
    assert len(ids) == 64
    assert ids[0] == tok.convert_tokens_to_ids("<|persona_2|>") and ids.count(ids[0]) == 2
    assert tok.decode(ids).endswith("<|persona_2|>\naction: ")
    full = prompt.encode(tok, "Buy shoes", [], "page: home /", persona=2)
    assert tok.decode(full) == prompt.build("Buy shoes", [], "page: home /", persona=2)
    with pytest.raises(ValueError, match="one non-empty line"):
        prompt.target('click("1")\nstop()')


def test_tokenizer_persona_tokens_are_atomic(tok):
    ids = tok_lib.persona_token_ids(tok, 4)
    assert tok_lib.add_persona_tokens(tok, 4) == ids  # idempotent
    enc = tok.encode("<|persona_1|>goal", add_special_tokens=False)
    assert enc[0] == ids[1] and len(set(ids)) == 4
    with pytest.raises(KeyError, match="persona tokens"):
        tok_lib.persona_token_ids(tok, 5)


def test_loss_mask_covers_action_tokens_only(tok):
    row = make_rows(1)[0]
    ((ids, on),) = sft.encode_examples(tok, [row], goal_field="goal_neutral", max_len=512)
    assert tok.decode(ids[on == 1]) == row["action"] + "\n" + tok.eos_token
    assert tok.decode(ids[on == 0]).endswith("action: ")


def test_pack_places_whole_examples_and_masks_segments():
    rng = np.random.RandomState(0)
    ex = [
        (rng.randint(1, 50, n).astype(np.int32), (np.arange(n) >= n - 3).astype(np.int32))
        for n in (20, 9, 12, 5, 30, 7)
    ]
    rows = sft.pack(ex, 32)
    assert rows["inputs"].shape[1] == 32 and len(rows["inputs"]) == 3  # 77 shifted tokens in 3 rows
    total = sum(len(i) - 1 for i, _ in ex)
    assert (rows["segment_ids"] > 0).sum() == total and rows["loss_mask"].sum() == 3 * len(ex)
    seen = []
    for r in range(len(rows["inputs"])):
        for s in range(1, rows["segment_ids"][r].max() + 1):
            sel = rows["segment_ids"][r] == s
            x, y = rows["inputs"][r][sel], rows["targets"][r][sel]
            assert (rows["positions"][r][sel] == np.arange(sel.sum())).all()
            seen.append(np.concatenate([x, y[-1:]]).tolist())
    assert sorted(seen) == sorted(i.tolist() for i, _ in ex)
    with pytest.raises(ValueError, match="exceeds seq_len"):
        sft.pack(ex, 16)


def test_masked_loss_ignores_prompt_tokens():
    logits = jax.random.normal(jax.random.key(0), (2, 6, 11))
    batch = {
        "targets": jnp.array([[1, 2, 3, 4, 5, 6]] * 2) % 11,
        "loss_mask": jnp.array([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]]),
    }
    loss, m = sft.masked_loss(logits, batch)
    per = sft.token_losses(logits, batch["targets"])
    np.testing.assert_allclose(loss, (per[0, 3] + per[0, 4] + per[1, 4] + per[1, 5]) / 4, rtol=1e-6)
    assert float(m["action_tokens"]) == 4
    perfect = jax.nn.one_hot(batch["targets"], 11) * 50
    assert sft.example_correct(perfect, batch).tolist() == [True, True]


def test_session_split_is_deterministic_and_whole():
    import polars as pl

    df = pl.DataFrame(make_rows(40))
    tr, ev = sft.split_sessions(df, 0.3)
    tr2, ev2 = sft.split_sessions(df, 0.3)
    assert tr.equals(tr2) and ev.equals(ev2) and tr.height + ev.height == df.height
    assert not set(tr["session_id"]) & set(ev["session_id"]) and ev.height > 0


def test_extend_vocab_mean_std_and_projection():
    cfg = LMConfig(vocab_size=100, hidden_size=8, tie_word_embeddings=False)
    emb = jax.random.normal(jax.random.key(1), (100, 8)) * 2 + 1
    params = {"embedding": emb, "lm_head": emb.T * 3}
    ids = list(range(90, 110))
    cfg2, p2 = persona.extend_vocab(cfg, params, ids, 90, 128, jax.random.key(0))
    assert (
        cfg2.vocab_size == 128
        and p2["embedding"].shape == (128, 8)
        and p2["lm_head"].shape == (8, 128)
    )
    np.testing.assert_array_equal(p2["embedding"][:90], emb[:90])
    new = np.asarray(p2["embedding"][90:110])
    assert abs(new.mean() - float(emb[:90].mean())) < 0.6 and 1.0 < new.std() < 3.5
    np.testing.assert_array_equal(p2["embedding"][110:], 0)
    with pytest.raises(ValueError, match="persona ids must lie"):
        persona.extend_vocab(cfg, params, [5], 90, 128, jax.random.key(0))
    codes = np.random.RandomState(0).randn(20, 6).astype(np.float32)
    proj = persona.init_projection(jax.random.key(2), codes, p2["embedding"], 90)
    table = persona.project_rows(p2["embedding"], proj, codes, ids)
    np.testing.assert_allclose(
        table[np.asarray(ids)], codes @ proj["kernel"] + proj["bias"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(table[:90], emb[:90])


def test_attach_personas_from_assign_codes(tmp_path):
    import polars as pl

    df = pl.DataFrame(make_rows(6)).with_columns(pl.lit(-1, pl.Int32).alias("persona"))
    codes = pl.DataFrame({"store_id": ["s1", "s2"], "buyer_id": ["b0", "b1"], "code": [7, 3]})
    codes.write_parquet(tmp_path / "codes.parquet")
    out = sft.attach_personas(df, str(tmp_path / "codes.parquet"))
    got = dict(zip(out["buyer_id"], out["persona"]))
    assert out.height == df.height and got["b0"] == 7 and got["b1"] == 3 and got["b2"] == -1
    codes.drop("code").write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="lacks columns"):
        sft.attach_personas(df, str(tmp_path / "bad.parquet"))


def test_fit_projection_recovers_an_exported_projection():
    codes = np.random.RandomState(1).randn(20, 6).astype(np.float32)
    w = np.random.RandomState(2).randn(6, 8).astype(np.float32)
    b = np.random.RandomState(3).randn(8).astype(np.float32)
    fit = persona.fit_projection(codes, codes @ w + b)
    np.testing.assert_allclose(fit["kernel"], w, atol=1e-4)
    np.testing.assert_allclose(fit["bias"], b, atol=1e-4)


def test_mix_goals_is_per_session_and_hits_the_fraction():
    import polars as pl

    df = pl.DataFrame(make_rows(400))
    out = sft.mix_goals(df, "goal_intent", 0.5)
    neutral = out.filter(pl.col(sft.MIXED_GOAL) == pl.col("goal_neutral"))
    share = neutral["session_id"].n_unique() / df["session_id"].n_unique()
    assert 0.4 < share < 0.6
    per_session = out.group_by("session_id").agg(pl.col(sft.MIXED_GOAL).n_unique())
    assert per_session[sft.MIXED_GOAL].max() == 1  # a session keeps one goal
    assert (
        sft.mix_goals(df, "goal_intent", 0.0)[sft.MIXED_GOAL].to_list()
        == df["goal_intent"].to_list()
    )
    with pytest.raises(ValueError, match="neutral_fraction"):
        sft.mix_goals(df, "goal_intent", 1.5)


def test_drop_personas_blanks_whole_sessions():
    import polars as pl

    df = pl.DataFrame(make_rows(400))
    out = sft.drop_personas(df, 0.25)
    dropped = (
        out.filter(pl.col("persona") == -1)["session_id"].n_unique() / df["session_id"].n_unique()
    )
    assert 0.15 < dropped < 0.35
    assert out.group_by("session_id").agg(pl.col("persona").n_unique())["persona"].max() == 1
    kept = out.filter(pl.col("persona") >= 0)
    assert (
        kept["persona"].to_list()
        == df.join(kept.select("session_id", "step"), on=["session_id", "step"])[
            "persona"
        ].to_list()
    )


def test_oversample_decisions_repeats_decision_pages_only():
    rows = make_rows(20)
    out = sft.oversample_decisions(rows, 3)
    decisions = [r for r in rows if r["observation"].startswith(sft.DECISION_PAGES)]
    assert decisions and len(out) == len(rows) + 2 * len(decisions)
    assert sft.oversample_decisions(rows, 1) == rows
    with pytest.raises(ValueError, match="decision_oversample"):
        sft.oversample_decisions(rows, 0)
