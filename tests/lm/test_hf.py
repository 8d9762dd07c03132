"""HF import/export: sharded multi-file import, export -> transformers reload round trip, errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from simpersona_jax.lm import hf, persona
from simpersona_jax.lm import tokenizer as tok_lib
from simpersona_jax.lm.model import Decoder
from simpersona_jax.lm.sharding import make_mesh


def test_sharded_import_from_many_files_matches_single_device(hf_models, tmp_path):
    folder, model = hf_models["qwen2"]
    many = str(tmp_path / "many")
    model.save_pretrained(many, max_shard_size="40KB")
    assert len([f for f in os.listdir(many) if f.endswith(".safetensors")]) > 2
    _, ref = hf.load_params(folder)
    mesh = make_mesh(fsdp=2, tensor=4)
    cfg, params = hf.load_params(many, mesh=mesh)
    q = params["layers"]["attn"]["q_kernel"]
    P, NS = jax.sharding.PartitionSpec, jax.sharding.NamedSharding
    assert q.sharding.is_equivalent_to(NS(mesh, P(None, "fsdp", "tensor", None)), 4)
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (2, 32, 1, 16)
    assert params["embedding"].sharding.is_equivalent_to(NS(mesh, P("tensor", "fsdp")), 2)
    k = params["layers"]["attn"][
        "k_kernel"
    ]  # 2 KV heads do not split over tensor=4: replicated there
    assert k.sharding.is_equivalent_to(NS(mesh, P(None, "fsdp", None, None)), 4)
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_export_reload_round_trip(hf_models, token_batch, tmp_path, family):
    folder, model = hf_models[family]
    cfg, params = hf.load_params(folder)
    out = str(tmp_path / "export")
    hf.save_pretrained(out, cfg, params, max_shard_bytes=60_000)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor(token_batch, dtype=torch.long)
    with torch.no_grad():
        np.testing.assert_allclose(
            reloaded(ids).logits.numpy(), model(ids).logits.numpy(), atol=1e-5
        )
    _, again = hf.load_params(out)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_export_with_persona_tokens_loads_in_transformers(hf_models, tmp_path):
    folder, _ = hf_models["qwen2"]  # untied: lm_head grows too
    cfg, params = hf.load_params(folder)
    tok = tok_lib.train_bpe(['click("1") fill("2", "shoes") go_back() stop()'] * 50, vocab_size=290)
    n_real = len(tok)
    ids = tok_lib.add_persona_tokens(tok, 8)
    new_v = persona.padded_vocab_size(cfg, len(tok), 64)
    assert new_v == 320 and ids == list(range(n_real, n_real + 8))
    cfg2, params2 = persona.extend_vocab(cfg, params, ids, n_real, new_v, jax.random.key(0))
    out = str(tmp_path / "persona")
    hf.save_pretrained(
        out, cfg2, params2, tok, extra_config={"simpersona": {"persona_token_ids": ids}}
    )
    t2 = transformers.AutoTokenizer.from_pretrained(out)
    assert t2.convert_tokens_to_ids("<|persona_7|>") == ids[7]
    assert t2.encode("<|persona_3|>click", add_special_tokens=False)[0] == ids[3]
    m = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert m.config.vocab_size == 320 and m.config.simpersona["persona_token_ids"] == ids
    x = np.array([[ids[2], 5, 9, 11]])
    with torch.no_grad():
        ref = m(torch.tensor(x)).logits.numpy()
    got, _ = jax.jit(Decoder(cfg2).apply)({"params": params2}, jnp.asarray(x))
    assert np.abs(np.asarray(got) - ref).max() <= 1e-4


def test_bad_folders_give_clear_errors(hf_models, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf.read_config(str(tmp_path))
    folder, _ = hf_models["qwen3"]
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = json.load(open(os.path.join(folder, "config.json")))
    json.dump({**cfg, "model_type": "gpt2"}, open(bad / "config.json", "w"))
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        hf.read_config(str(bad))
    json.dump({**cfg, "hidden_size": 32}, open(bad / "config.json", "w"))
    os.symlink(os.path.join(folder, "model.safetensors"), bad / "model.safetensors")
    with pytest.raises(ValueError, match="has shape"):
        hf.load_params(str(bad))
