"""The agent SFT task for the generic train loop (simpersona_jax/training).

One task serves the three runs (experiments/agent_{base,stage1,stage2}.py), chosen by config:
- lm.init_from: "" builds the embedded default (BPE tokenizer trained on the training traces +
  the small `lm.model` config, random init); otherwise a Hugging Face folder (a real checkpoint,
  or the `<workdir>/hf` export of a previous stage) is imported.
- persona.num_personas K > 0 adds <|persona_k|> tokens (tokenizer + table rows, table padded to
  persona.vocab_multiple); rows start from the mean/std of existing rows ("mean_std") or are a
  learned projection of the VQ code vectors ("code_projection", codes from persona.codes_path).
- train.mode: "all" trains every parameter; "persona_rows" trains only the persona rows (or the
  projection): every other parameter and every other row of the table stays bit-for-bit equal.
- data.goal_field: "goal_neutral" (stage 1) or "goal_intent" (stage 2); data.neutral_fraction of
  the training sessions (chosen by a hash of the session) use the neutral goal instead, so stage 2
  keeps the persona-conditioned neutral-goal behaviour the simulator relies on.
At the end `report` evaluates and exports `<workdir>/hf` (transformers-loadable, persona tokens
in tokenizer and config.json), which the next stage imports.

This module is the Task itself (loader, init, initial params, loss, optimizer, evaluation,
export, report); lm/task_data.py prepares its rows (traces, personas, packing, held-out rows)
and lm/task_model.py its tokenizer, model config and persona tokens/code vectors.
"""

from __future__ import annotations

import json
import os

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import polars as pl

from simpersona_jax.data import schema
from simpersona_jax.lm import hf, persona, persona_eval, sft, task_data, task_model
from simpersona_jax.lm import loss as lm_loss
from simpersona_jax.lm.config import LMConfig
from simpersona_jax.lm.model import Decoder
from simpersona_jax.training import optim
from simpersona_jax.training.task import OptionalTaskHooks


class SFTTask(OptionalTaskHooks):
    example_name = "sequences"

    def __init__(self, config):
        self.config = config
        d, p = config.data, config.persona
        train_df, eval_df = task_data.trace_splits(config)
        self.goal_field = d.goal_field
        self.use_persona = int(p.num_personas) > 0 and bool(d.get("use_persona", True))
        # Model + tokenizer (+ persona tokens and code vectors).
        self.tokenizer, self.cfg, self.persona_ids, self.codes, self.pretrained = task_model.build(
            config, train_df
        )
        self.mode = config.train.mode
        if self.mode not in ("all", "persona_rows"):
            raise ValueError(f"train.mode={self.mode!r}: expected 'all' or 'persona_rows'")
        if self.mode == "persona_rows" and not self.persona_ids:
            raise ValueError("train.mode='persona_rows' needs persona.num_personas > 0")
        # Data.
        (
            self.train_rows,
            self.num_train_examples,
            self.eval_trace_rows,
            self.eval_personas,
            self.eval_rows,
        ) = task_data.encode(self.tokenizer, train_df, eval_df, d, self.use_persona)

    @classmethod
    def for_shapes(cls, config, cfg: LMConfig, num_tokens: int) -> "SFTTask":
        """The task without data or tokenizer, for shape-only uses (compile_check): model `cfg`
        (numerics from config.lm) with config.persona.num_personas persona rows after the first
        `num_tokens` ids (the tokenizer's length), config.train.mode, and rows of
        config.data.seq_len as the init sample. init, loss and make_optimizer are the real ones."""
        self = cls.__new__(cls)
        self.config, p = config, config.persona
        k = int(p.num_personas)
        self.persona_ids = list(range(num_tokens, num_tokens + k))
        self.cfg = cfg.replace(**task_model.numerics(config.lm)).replace(
            vocab_size=persona.padded_vocab_size(cfg, num_tokens + k, int(p.vocab_multiple))
        )
        self.codes = self.pretrained = self.tokenizer = None
        self.mode = config.train.mode
        self.train_rows = {
            k: np.zeros((1, int(config.data.seq_len)), np.int32) for k in sft.ROW_KEYS
        }
        return self

    # ------------------------------------------------------------------ Task protocol
    def make_loader(self, *, global_batch_size, seed, shard_index, shard_count):
        ds = grain.MapDataset.source(task_data.Rows(self.train_rows))
        if shard_count > 1:
            ds = ds[shard_index::shard_count]
        ds = (
            ds.shuffle(seed=seed)
            .repeat(None)
            .batch(global_batch_size // shard_count, drop_remainder=True)
        )
        return iter(ds.to_iter_dataset())

    def init_sample(self):
        return {k: v[:1] for k, v in self.train_rows.items()}

    def init(self, rng, batch):
        """Random params; with lm.init_from the loop starts from `initial_params` instead."""
        k_model, k_proj = jax.random.split(rng)
        params = dict(Decoder(self.cfg).init(k_model, batch["inputs"])["params"])
        if self.codes is not None:
            table = nn.meta.unbox(params["embedding"])
            params["persona_proj"] = persona.init_projection(
                k_proj, self.codes, table, min(self.persona_ids)
            )
        return {"params": params}

    def initial_params(self, rng, param_shardings):
        """The lm.init_from checkpoint (persona rows added), each device reading only its own block
        from the safetensors files, then placed with the train state's shardings (None: on the first
        device); None without a checkpoint."""
        if self.pretrained is None:
            return None
        folder, cfg, extend = self.pretrained
        mesh = jax.tree.leaves(param_shardings)[0].mesh if param_shardings is not None else None
        _, params = hf.load_params(folder, cfg, mesh=mesh)
        if extend is not None:
            n_real, new_v = extend
            _, params = persona.extend_vocab(
                cfg,
                params,
                self.persona_ids,
                n_real,
                new_v,
                jax.random.key(int(self.config.seed) + 1),
            )
        params = dict(params)
        if self.codes is not None:
            if extend is None:  # the checkpoint has persona rows: continue their projection
                rows = np.asarray(jax.device_get(params["embedding"]))[self.persona_ids]
                params["persona_proj"] = persona.fit_projection(self.codes, rows)
            else:
                _, k_proj = jax.random.split(rng)
                params["persona_proj"] = persona.init_projection(
                    k_proj, self.codes, params["embedding"], min(self.persona_ids)
                )
        return params if param_shardings is None else jax.device_put(params, param_shardings)

    def _lm_params(self, params):
        if "persona_proj" not in params:
            return params
        lm = {k: v for k, v in params.items() if k != "persona_proj"}
        lm["embedding"] = persona.project_rows(
            lm["embedding"], params["persona_proj"], self.codes, self.persona_ids
        )
        return lm

    def logits(self, params, rows):
        lm = self._lm_params(params)
        logits, _ = Decoder(self.cfg).apply(
            {"params": lm}, rows["inputs"], rows["positions"], rows["segment_ids"]
        )
        return logits

    def loss(self, params, extra, batch, rng, step):
        """Chunked cross-entropy (lm/loss.py): full [B, T, V] logits are never materialised."""
        lm = self._lm_params(self._differentiated(params))
        hidden, _ = Decoder(self.cfg).apply(
            {"params": lm},
            batch["inputs"],
            batch["positions"],
            batch["segment_ids"],
            return_hidden=True,
        )
        loss, metrics = lm_loss.masked_loss(
            hidden,
            lm_loss.output_weight(self.cfg, lm),
            batch,
            chunk=self.cfg.loss_chunk,
            dtype=jnp.dtype(self.cfg.dtype),
        )
        return loss, (metrics, extra)

    def _differentiated(self, params):
        """train.mode='persona_rows': every frozen parameter (and every row of the table but the
        persona rows) enters the loss as a constant, so backprop computes no weight gradients
        for them (their gradients are zeros, not products of activations)."""
        if self.mode != "persona_rows":
            return params
        out = jax.tree.map(jax.lax.stop_gradient, params)
        if self.codes is not None:
            out["persona_proj"] = params["persona_proj"]
            return out
        ids = jnp.asarray(self.persona_ids, jnp.int32)
        out["embedding"] = out["embedding"].at[ids].set(params["embedding"][ids])
        if "lm_head" in params:
            out["lm_head"] = out["lm_head"].at[:, ids].set(params["lm_head"][:, ids])
        return out

    def make_optimizer(self, optimizer_config):
        mult = float(self.config.persona.get("lr_multiplier", 1.0))
        if self.mode == "all" and (self.codes is None or mult == 1.0):
            return None
        base = optim.default_optimizer(optimizer_config, int(self.config.num_steps))
        # Labels as a concrete pytree (optax also calls them on placeholder params).
        shapes = nn.meta.unbox(
            jax.eval_shape(self.init, jax.random.key(0), self.init_sample())["params"]
        )
        if self.mode == "all":  # the persona projection at persona.lr_multiplier x the rate
            fast_cfg = ml_collections.ConfigDict(optimizer_config.to_dict())
            fast_cfg.learning_rate = float(fast_cfg.learning_rate) * mult
            labels = jax.tree.map(lambda _: "rest", shapes)
            labels["persona_proj"] = jax.tree.map(lambda _: "persona", shapes["persona_proj"])
            fast = optim.default_optimizer(fast_cfg, int(self.config.num_steps))
            return optax.multi_transform({"persona": fast, "rest": base}, labels)
        labels = jax.tree.map(lambda _: "freeze", shapes)
        if self.codes is not None:
            labels["persona_proj"] = jax.tree.map(lambda _: "train", shapes["persona_proj"])
            return optax.multi_transform({"train": base, "freeze": _freeze()}, labels)
        labels["embedding"] = "rows"
        if "lm_head" in labels:
            labels["lm_head"] = "rows_t"
        return optax.multi_transform(
            {
                "rows": _rows_only(base, self.persona_ids, axis=0),
                "rows_t": _rows_only(base, self.persona_ids, axis=1),
                "freeze": _freeze(),
            },
            labels,
        )

    def evaluate(self, params, extra):
        return self.action_accuracy(params)

    def action_accuracy(self, params, batch_size: int = 32) -> dict[str, float]:
        """Per-step next-action accuracy (greedy decoding reproduces the action exactly) on the
        held-out sessions, overall and per persona."""
        n = len(self.eval_personas)
        if n == 0:
            return {}
        fn = jax.jit(lambda p, r: sft.example_correct(self.logits(p, r), r))
        correct = []
        for i in range(0, n, batch_size):
            chunk = {k: v[i : i + batch_size] for k, v in self.eval_rows.items()}
            m = len(chunk["inputs"])
            if m < batch_size:  # one compiled shape
                chunk = {
                    k: np.concatenate([v, np.repeat(v[-1:], batch_size - m, 0)])
                    for k, v in chunk.items()
                }
            correct.append(np.asarray(jax.device_get(fn(params, chunk)))[:m])
        correct = np.concatenate(correct)
        out = {"action_acc": float(correct.mean()), "eval_examples": float(n)}
        for k in np.unique(self.eval_personas):
            sel = self.eval_personas == k
            out[f"action_acc/persona_{int(k)}"] = float(correct[sel].mean())
        return out

    def export(self, params, folder: str) -> None:
        extra = {
            "simpersona": {
                "num_personas": len(self.persona_ids),
                "persona_token_ids": self.persona_ids,
                "goal_field": self.goal_field,
            }
        }
        hf.save_pretrained(
            folder, self.cfg, self._lm_params(params), self.tokenizer, extra_config=extra
        )

    def report(self, params, extra, workdir, eval_metrics=None):
        acc = eval_metrics if eval_metrics is not None else self.action_accuracy(params)
        folder = os.path.join(workdir, "hf")
        self.export(params, folder)
        lines = [
            f"agent SFT: mode={self.mode} goal_field={self.goal_field} train_examples="
            f"{self.num_train_examples} packed_rows={len(self.train_rows['inputs'])} packing_efficiency="
            f"{sft.packing_efficiency(self.train_rows):.3f}",
            f"held-out next-action accuracy: {acc.get('action_acc', float('nan')):.4f} "
            f"over {int(acc.get('eval_examples', 0))} steps",
        ]
        per = {k: v for k, v in acc.items() if k.startswith("action_acc/")}
        if per:
            lines.append("per persona: " + json.dumps(per))
        check = persona_eval.evaluate(self, params, self.eval_trace_rows, self._strata())
        with open(os.path.join(workdir, "persona_eval.json"), "w") as f:
            json.dump(check, f, indent=1)
        lines.append(persona_eval.format_report(check))
        lines.append(f"exported Hugging Face folder: {folder}")
        return "\n".join(lines)

    def _strata(self) -> dict | None:
        """{(store_id, buyer_id): stratum letter} from data.meta_path (buyers/meta.parquet)."""
        path = self.config.data.get("meta_path", "")
        if not path:
            return None
        meta = pl.read_parquet(path, columns=["store_id", "buyer_id", "stratum"])
        letters = [schema.STRATA[int(k)] for k in meta["stratum"]]
        return dict(zip(zip(meta["store_id"], meta["buyer_id"]), letters))


# Frozen entries get an update of -0.0: p + (-0.0) == p bit for bit for every p (also -0.0),
# which multiplying by 0 (or optax.set_to_zero's +0.0) does not guarantee.
def _rows_only(base, ids, axis: int):
    """`base` on the persona rows (axis 0: the embedding) or columns (axis 1: lm_head) of the
    table only: its state (Adam's moments) covers those K rows, not the whole vocabulary, and
    every other entry gets an update of -0.0. Inside multi_transform this group's tree holds the
    one table; the other leaves are MaskedNodes (no leaves)."""
    ids = jnp.asarray(ids, jnp.int32)

    def take(tree):
        return jax.tree.map(lambda x: jnp.take(x, ids, axis=axis), tree)

    def put(full, rows):
        out = jnp.full_like(full, -0.0)
        return out.at[ids].set(rows) if axis == 0 else out.at[:, ids].set(rows)

    def update(updates, state, params=None):
        rows, state = base.update(take(updates), state, None if params is None else take(params))
        return jax.tree.map(put, updates, rows), state

    return optax.GradientTransformation(lambda params: base.init(take(params)), update)


def _freeze():
    def update(updates, state, params=None):
        return jax.tree.map(lambda u: jnp.full_like(u, -0.0), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
