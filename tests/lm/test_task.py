"""The SFT task through the generic train loop: base -> stage 1 (exact freezing) -> stage 2,
sharded (8 devices, data x fsdp x tensor) vs single-device, evaluation and the LM policy."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_traces import write_traces

from simpersona_jax.lm import hf
from simpersona_jax.lm import sharding as shd
from simpersona_jax.lm.constrained import ConstrainedDecoder
from simpersona_jax.lm.experiment import sft_config
from simpersona_jax.lm.policy import LMPolicy, Request
from simpersona_jax.lm.task import SFTTask
from simpersona_jax.training import optim, train


def _config(traces, **over):
    c = sft_config()
    c.global_batch_size = 8
    c.log_every_steps = 1000
    c.checkpoint.every_steps = 1000
    c.data.traces_dir = traces
    c.data.seq_len = 256
    c.data.eval_fraction = 0.25
    c.data.max_eval_examples = 16
    c.persona.num_personas = 4
    c.persona.vocab_multiple = 64
    c.lm.tokenizer_vocab_size = 400
    c.lm.model.update(
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_layers=1,
            num_heads=2,
            num_kv_heads=1,
            head_dim=16,
        )
    )
    c.update_from_flattened_dict(over)
    return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sft"))
    traces = write_traces(os.path.join(root, "traces"), n_sessions=48)
    base = _config(traces, num_steps=12, **{"persona.num_personas": 0, "data.use_persona": False})
    train(base, os.path.join(root, "base"), SFTTask(base))
    return root, traces


def test_stage1_sharded_trains_only_persona_rows(runs):
    root, traces = runs
    base_cfg, base = hf.load_params(os.path.join(root, "base", "hf"))
    c = _config(
        traces,
        num_steps=3,
        seed=3,
        mesh={"data": 2, "fsdp": 2, "tensor": 2},
        **{
            "lm.init_from": os.path.join(root, "base", "hf"),
            "train.mode": "persona_rows",
            "optimizer.learning_rate": 0.05,
        },
    )
    task = SFTTask(c)
    ids = task.persona_ids
    n_real = min(ids)
    assert task.cfg.vocab_size % 64 == 0 and task.cfg.vocab_size > max(ids)
    result = train(c, os.path.join(root, "stage1"), task)
    params = jax.device_get(result.state.params)
    # The optimiser's state covers the K persona rows, not the vocabulary.
    state_shapes = {np.shape(x) for x in jax.tree.leaves(result.state.opt_state)}
    assert (len(ids), emb_width := params["embedding"].shape[1]) in state_shapes
    assert (task.cfg.vocab_size, emb_width) not in state_shapes
    emb = np.asarray(params["embedding"])
    assert emb.shape[0] == task.cfg.vocab_size
    # Every row that existed before is bit-for-bit unchanged, and so is every other parameter.
    np.testing.assert_array_equal(emb[:n_real], np.asarray(base["embedding"])[:n_real])
    for path in [
        ("final_norm", "scale"),
        ("layers", "attn", "q_kernel"),
        ("layers", "mlp", "down_kernel"),
        ("layers", "attn", "k_norm", "scale"),
    ]:
        a, b = params, base
        for k in path:
            a, b = a[k], b[k]
        assert np.array_equal(np.asarray(a), np.asarray(b)), path
    assert jax.tree.structure(params) == jax.tree.structure(base)
    for a, b in zip(
        jax.tree.leaves({k: v for k, v in params.items() if k != "embedding"}),
        jax.tree.leaves({k: v for k, v in base.items() if k != "embedding"}),
    ):
        assert np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))
    # Persona rows did train; every other row (incl. padding rows) is bit-for-bit its initial value.
    init = np.asarray(jax.device_get(task.initial_params(jax.random.key(0), None)["embedding"]))
    assert np.abs(emb[ids] - init[ids]).max() > 1e-3
    others = np.setdiff1d(np.arange(emb.shape[0]), ids)
    assert np.array_equal(emb[others].view(np.uint32), init[others].view(np.uint32))
    ev = result.eval
    assert 0.0 <= ev["action_acc"] <= 1.0 and {
        "action_acc/persona_0",
        "action_acc/persona_1",
    } <= set(ev)


def test_stage2_sharded_matches_single_device_and_policy_acts(runs, monkeypatch):
    root, traces = runs
    stage1 = os.path.join(root, "stage1", "hf")
    assert os.path.exists(os.path.join(stage1, "config.json")), "stage 1 test must run first"
    finals = {}
    for name, mesh in [
        ("one", {"num_devices": 1, "data": 1}),
        ("eight", {"data": 2, "fsdp": 2, "tensor": 2}),
    ]:
        c = _config(
            traces,
            num_steps=2,
            mesh=mesh,
            **{"lm.init_from": stage1, "data.goal_field": "goal_intent"},
        )
        task = SFTTask(c)
        assert task.persona_ids == list(range(min(task.persona_ids), min(task.persona_ids) + 4))
        finals[name] = jax.device_get(
            train(c, os.path.join(root, "stage2_" + name), task).state.params
        )
    for a, b in zip(jax.tree.leaves(finals["one"]), jax.tree.leaves(finals["eight"])):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)

    policy = LMPolicy(os.path.join(root, "stage2_one", "hf"), max_new_tokens=16)
    obs = 'page: product /products/p001\ntitle: Canvas Tote\nprice: $17.00\ncart: 0\n[4] button "Add to cart"'
    reqs = [
        Request(
            goal="Browse the store as you usually would.",
            history=['click("5")'],
            observation=obs,
            persona=k % 4,
            seed=k,
        )
        for k in range(3)
    ]
    acts = policy.act(reqs)
    assert len(acts) == 3 and all(isinstance(a, str) and "\n" not in a for a in acts)
    assert policy.act(reqs) == acts

    # The policy on a 2-way tensor mesh: weights split, decoding traced inside the mesh and the
    # LM's rules (so the model's activation constraints are in the program), same actions.
    sharded = LMPolicy(
        os.path.join(root, "stage2_one", "hf"),
        max_new_tokens=16,
        mesh={"num_devices": 2, "tensor": 2},
    )
    assert len(sharded.params["embedding"].sharding.device_set) == 2
    contexts, choose = [], ConstrainedDecoder.choose

    def spy(self, *a, **kw):
        contexts.append((jax.sharding.get_abstract_mesh().shape, nn.get_logical_axis_rules()))
        return choose(self, *a, **kw)

    monkeypatch.setattr(ConstrainedDecoder, "choose", spy)
    assert sharded.act(reqs) == acts
    assert contexts == [({"data": 1, "fsdp": 1, "tensor": 2}, shd.LOGICAL_RULES)]


def test_code_projection_stage1_moves_only_the_projection(runs, tmp_path):
    import flax.linen as nn
    import optax

    root, traces = runs
    codes = np.random.RandomState(0).randn(4, 6).astype(np.float32)
    np.save(tmp_path / "codes.npy", codes)
    c = _config(
        traces,
        num_steps=2,
        **{
            "lm.init_from": os.path.join(root, "base", "hf"),
            "train.mode": "persona_rows",
            "persona.init": "code_projection",
            "persona.codes_path": str(tmp_path / "codes.npy"),
            "optimizer.learning_rate": 0.05,
            "optimizer.warmup_steps": 0,
        },
    )
    task = SFTTask(c)
    batch = task.init_sample()
    params = nn.meta.unbox(task.init(jax.random.key(0), batch))["params"]
    assert params["persona_proj"]["kernel"].shape == (6, 32)
    tx = task.make_optimizer(c.optimizer)
    grads = jax.jit(jax.grad(lambda p: task.loss(p, {}, batch, None, 0)[0]))(params)
    assert float(jnp.abs(grads["persona_proj"]["kernel"]).max()) > 0
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    assert not np.array_equal(new["persona_proj"]["kernel"], params["persona_proj"]["kernel"])
    for k in params:
        if k != "persona_proj":
            for a, b in zip(jax.tree.leaves(new[k]), jax.tree.leaves(params[k])):
                assert np.array_equal(
                    np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32)
                ), k
    table = task._lm_params(new)["embedding"]
    np.testing.assert_allclose(
        np.asarray(table)[task.persona_ids],
        codes @ new["persona_proj"]["kernel"] + new["persona_proj"]["bias"],
        atol=1e-5,
    )


def test_persona_check_sees_a_learned_persona(tmp_path):
    """Fake traces where persona 0 always adds to cart and persona 1 never does: after a short
    stage-2-style run with neutral goals, the matched persona explains the actions better than a
    mismatched one (the decision tables are reported per stratum)."""
    from simpersona_jax.lm import persona_eval

    traces = write_traces(str(tmp_path / "traces"), n_sessions=120, seed=5)
    c = _config(
        traces,
        num_steps=300,
        **{
            "persona.num_personas": 2,
            "data.goal_field": "goal_neutral",
            "data.max_eval_examples": 128,
            "data.eval_fraction": 0.3,
            "optimizer.learning_rate": 0.01,
        },
    )
    task = SFTTask(c)
    params = train(c, str(tmp_path / "run"), task).state.params
    rows = task.eval_trace_rows
    strata = {(r["store_id"], r["buyer_id"]): "A" if r["persona"] == 0 else "D" for r in rows}
    r = persona_eval.evaluate(task, params, rows, strata)
    assert r["steps"] == len(rows) > 0
    assert r["nll_gain_vs_mismatched"]["ci95"][0] > 0, r
    atc = r["add_to_cart"]
    assert set(atc["per_stratum"]) == {"A", "D"} and atc["n"] == sum(
        v["n"] for v in atc["per_stratum"].values()
    )
    assert 0.0 <= atc["accuracy"] <= 1.0 and atc["majority_accuracy"] >= 0.5
    assert "mismatched - matched" in persona_eval.format_report(r)


def test_decision_actions_and_mismatched_personas():
    from simpersona_jax.lm import persona_eval

    obs = (
        'page: product /products/p001\ntitle: T\nprice: $1.00\ncart: 0\n[3] spinbutton "Quantity" value="1"\n'
        '[4] button "Add to cart"'
    )
    assert persona_eval.decision_action(obs, "add_to_cart") == 'click("4")'
    assert persona_eval.decision_action(obs, "checkout") is None
    cart = 'page: cart /cart\ncart: 1\n[7] link "Proceed to checkout"'
    assert persona_eval.decision_action(cart, "checkout") == 'click("7")'
    ks = np.asarray([0, 0, 1, 2, 2, 2])
    got = persona_eval.mismatched(ks, seed=1)
    assert (got != ks).all() and set(got) <= set(ks)
    np.testing.assert_array_equal(persona_eval.mismatched(np.asarray([3, 3]), 0), [3, 3])


def test_persona_stage_without_codes_is_a_clear_error(tmp_path):
    from fake_traces import make_rows

    from simpersona_jax.replay.schema import TraceWriter

    writer = TraceWriter(str(tmp_path / "traces"))
    writer.add([dict(r, persona=-1) for r in make_rows(8)])
    writer.close()
    with pytest.raises(ValueError, match="data.codes_path"):
        SFTTask(_config(str(tmp_path / "traces")))


def test_persona_lr_multiplier_speeds_only_the_projection(runs, tmp_path):
    import flax.linen as nn

    root, traces = runs
    codes = np.random.RandomState(0).randn(4, 6).astype(np.float32)
    np.save(tmp_path / "codes.npy", codes)
    steps = {}
    for mult in (1.0, 10.0):
        c = _config(
            traces,
            num_steps=10,
            **{
                "persona.init": "code_projection",
                "persona.codes_path": str(tmp_path / "codes.npy"),
                "persona.lr_multiplier": mult,
                "optimizer.warmup_steps": 0,
            },
        )
        task = SFTTask(c)
        batch = task.init_sample()
        params = nn.meta.unbox(task.init(jax.random.key(0), batch))["params"]
        tx = task.make_optimizer(c.optimizer) or optim.default_optimizer(c.optimizer, 10)
        grads = jax.grad(lambda p: task.loss(p, {}, batch, None, 0)[0])(params)
        updates, _ = tx.update(grads, tx.init(params), params)
        steps[mult] = (
            float(jnp.abs(updates["persona_proj"]["kernel"]).max()),
            float(jnp.abs(updates["final_norm"]["scale"]).max()),
        )
    assert steps[10.0][0] == pytest.approx(10 * steps[1.0][0], rel=1e-3)
    assert steps[10.0][1] == pytest.approx(steps[1.0][1], rel=1e-3)
