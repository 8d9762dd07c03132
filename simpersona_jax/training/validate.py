"""Up-front checks of a training config: every problem found, one line each naming the key,
raised together as one ConfigError before any data is read or any model is built.

`check(config, workdir)` applies the loop's rules (LOOP_RULES, the mesh and the workdir) and, when
config.task is one the train tool runs, that task's rules (TASK_RULES). A rule is
(key, check, required): `check(value)` returns what is wrong with the value, or None; an absent
optional key is not checked (the consumer's default applies). Cross-key rules are functions of
the whole config returning a list of problems.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import jax

from simpersona_jax.training import mesh as mesh_lib

_MISSING = object()


class ConfigError(ValueError):
    """One or more config values are invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---- value checks: value -> what is wrong, or None --------------------------------------------
def _is_int(v) -> bool:
    return not isinstance(v, bool) and (
        isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    )


def _is_num(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def integer(lo: int | None = None, *, none_ok: bool = False) -> Callable[[Any], str | None]:
    def check(v):
        if v is None and none_ok:
            return None
        if not _is_int(v) or (lo is not None and v < lo):
            return "expected an integer" + (f" >= {lo}" if lo is not None else "")
        return None

    return check


def number(lo=None, hi=None, *, lo_open=False, hi_open=False, none_ok=False):
    """A finite number in [lo, hi] (open ends where asked; None: unbounded)."""
    want = ("(" if lo_open or lo is None else "[") + f"{'-inf' if lo is None else lo}, "
    want += f"{'inf' if hi is None else hi}" + (")" if hi_open or hi is None else "]")

    def check(v):
        if v is None and none_ok:
            return None
        bad = not _is_num(v)
        if not bad and lo is not None:
            bad = v <= lo if lo_open else v < lo
        if not bad and hi is not None:
            bad = v >= hi if hi_open else v > hi
        return f"expected a number in {want}" if bad else None

    return check


def choice(*options) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"expected one of {', '.join(map(repr, options))}"


def boolean(v) -> str | None:
    return None if isinstance(v, bool) else "expected True or False"


def text(v) -> str | None:
    return None if isinstance(v, str) and v.strip() else "expected a non-empty string"


def integers(lo: int = 1) -> Callable[[Any], str | None]:
    def check(v):
        if isinstance(v, (list, tuple)) and v and all(_is_int(x) and x >= lo for x in v):
            return None
        return f"expected a non-empty list of integers >= {lo}"

    return check


def numbers(lo: float = 0.0) -> Callable[[Any], str | None]:
    def check(v):
        if isinstance(v, (list, tuple)) and v and all(_is_num(x) and x >= lo for x in v):
            return None
        return f"expected a non-empty list of numbers >= {lo}"

    return check


def existing(kind: str, *, empty_ok: bool = True) -> Callable[[Any], str | None]:
    """A path to an existing "file" or "dir" ("" allowed when empty_ok: the key is off)."""
    test = os.path.isfile if kind == "file" else os.path.isdir

    def check(v):
        if not isinstance(v, str):
            return f"expected a path to a {kind}"
        if v == "" and empty_ok:
            return None
        return None if test(v) else f"no such {'file' if kind == 'file' else 'directory'}"

    return check


# ---- the loop's keys (training/__init__.py lists them) ------------------------------------------
LOOP_RULES = (
    ("seed", integer(), True),
    ("task", text, True),
    ("global_batch_size", integer(1), True),
    ("num_steps", integer(1), True),
    ("log_every_steps", integer(1), False),
    ("eval_every_steps", integer(0, none_ok=True), False),
    ("distributed", choice("auto", "on", "off"), False),
    ("optimizer.name", choice("adamw", "adam", "sgd"), False),
    ("optimizer.learning_rate", number(0, lo_open=True), True),
    ("optimizer.warmup_steps", integer(0), False),
    ("optimizer.schedule", choice("cosine", "linear", "constant"), False),
    ("optimizer.final_lr_fraction", number(0, 1), False),
    ("optimizer.weight_decay", number(0), False),
    ("optimizer.grad_clip_norm", number(0, none_ok=True), False),
    ("optimizer.b1", number(0, 1, hi_open=True), False),
    ("optimizer.b2", number(0, 1, hi_open=True), False),
    ("optimizer.momentum", number(0, 1, hi_open=True, none_ok=True), False),
    ("checkpoint.every_steps", integer(1), False),
    ("checkpoint.max_to_keep", integer(1, none_ok=True), False),
    ("checkpoint.async_save", boolean, False),
)


def _mesh_problems(config) -> list[str]:
    """The mesh fits the devices, the rules name mesh axes, the batch splits evenly."""
    try:
        sizes = dict(
            zip(
                mesh_lib.MESH_AXES,
                mesh_lib.mesh_sizes(dict(config.get("mesh", {"data": -1})), jax.device_count()),
            )
        )
        rules = mesh_lib.rules_from_config(config.get("logical_axis_rules", None))
    except (ValueError, TypeError) as e:
        return [f"config.mesh / config.logical_axis_rules: {e}"]
    gbs = config.get("global_batch_size", None)
    if not _is_int(gbs) or gbs < 1:
        return []  # reported by its own rule
    axes = mesh_lib.batch_axes(rules)
    shards = math.prod(sizes[a] for a in axes)
    if gbs % shards or gbs % jax.process_count():
        return [
            f"config.global_batch_size={gbs}: must be divisible by the batch mesh axes {axes} "
            f"({shards} shards) and the process count ({jax.process_count()})"
        ]
    return []


def workdir_problems(workdir) -> list[str]:
    """The workdir (and its checkpoints folder) can be a writable directory."""
    if not isinstance(workdir, str) or not workdir.strip():
        return ["--workdir: expected a directory path"]
    path = os.path.abspath(workdir)
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return [f"--workdir={workdir}: {probe} is a file, not a directory"]
    if not os.access(probe, os.W_OK | os.X_OK):
        return [f"--workdir={workdir}: {probe} is not writable"]
    ckpts = os.path.join(path, "checkpoints")
    if os.path.exists(ckpts) and not os.path.isdir(ckpts):
        return [f"--workdir={workdir}: {ckpts} is a file, not a directory"]
    return []


# ---- the tasks the train tool runs ---------------------------------------------------------------
VQVAE_RULES = (
    ("data.buyers_dir", existing("dir"), False),
    ("data.train_split", text, False),
    ("data.eval_split", text, False),
    ("data.init_sample_size", integer(1), False),
    ("data.loader_threads", integer(0), False),
    ("data.prefetch_batches", integer(0), False),
    ("data.in_memory_bytes", integer(0), False),
    ("data.shuffle_pool_rows", integer(1), False),
    ("model.input_dim", integer(1), True),
    ("model.block_sizes", integers(1), True),
    ("model.hidden", integers(1), True),
    ("model.latent_dim", integer(1), True),
    ("model.codebook_size", integer(1), True),
    ("model.activation", choice("gelu", "relu", "silu", "tanh"), False),
    ("model.dtype", choice("float32", "bfloat16"), False),
    ("vq.decay", number(0, 1, lo_open=True, hi_open=True), True),
    ("vq.eps", number(0, lo_open=True), False),
    ("vq.cosine", boolean, False),
    ("vq.kmeans_iters", integer(0), False),
    ("vq.dead_code_fraction", number(0), True),
    ("loss.recon_weight", number(0), True),
    ("loss.recon_block_weights", numbers(0), True),
    ("loss.commitment_weight", number(0), True),
    ("loss.contrastive_weight", number(0), True),
    ("loss.contrastive_positives", choice("views", "labels"), True),
    ("loss.contrastive_max_batch", integer(1), True),
    ("loss.temperature", number(0, lo_open=True), True),
    ("loss.aug_dropout", number(0, 1, hi_open=True), True),
    ("loss.aug_noise", number(0), True),
    ("eval.batch_size", integer(1), False),
    ("eval.chunk", integer(1), False),
    ("eval.incoherence_tol", number(0, 1), True),
    ("eval.kmeans_baseline", boolean, False),
    ("eval.kmeans_fit_size", integer(1), False),
)
_AUX_LABELS = ("purchase_hi", "explore_hi", "engage_hi", "stratum")  # vqvae/model.py AUX_LABELS


def _vqvae_cross(config) -> list[str]:
    out = []
    dim, sizes = _get(config, "model.input_dim"), _get(config, "model.block_sizes")
    weights = _get(config, "loss.recon_block_weights")
    if integers(1)(sizes) is None and _is_int(dim) and sum(sizes) != dim:
        out.append(
            f"config.model.block_sizes={tuple(sizes)}: must sum to config.model.input_dim={dim}"
        )
    if integers(1)(sizes) is None and numbers(0)(weights) is None and len(sizes) != len(weights):
        out.append(
            f"config.loss.recon_block_weights={tuple(weights)}: expected one weight per "
            f"block of config.model.block_sizes ({len(sizes)})"
        )
    aux = _get(config, "loss.aux_weights")
    for name in aux.keys() if aux is not _MISSING else ():
        if name not in _AUX_LABELS:
            out.append(f"config.loss.aux_weights.{name}: unknown label; expected {_AUX_LABELS}")
        elif number(0)(aux[name]):
            out.append(f"config.loss.aux_weights.{name}={aux[name]!r}: {number(0)(aux[name])}")
    k, n = _get(config, "model.codebook_size"), _get(config, "data.init_sample_size")
    if _is_int(k) and k >= 1 and _is_int(n) and 1 <= n < k:
        out.append(
            f"config.data.init_sample_size={n}: must be >= config.model.codebook_size={k} "
            "(the k-means++ codebook init needs a buyer per code)"
        )
    return out


def _lm_rules():
    from simpersona_jax.lm.config import ATTENTION_IMPLS, FAMILIES, REMAT_POLICIES

    dtypes = choice("float32", "bfloat16", "float16")
    return (
        ("data.traces_dir", existing("dir", empty_ok=False), True),
        ("data.codes_path", existing("file"), False),
        ("data.meta_path", existing("file"), False),
        ("data.goal_field", choice("goal_neutral", "goal_intent"), True),
        ("data.neutral_fraction", number(0, 1), False),
        ("data.persona_dropout", number(0, 1), False),
        ("data.decision_oversample", integer(1), False),
        ("data.seq_len", integer(2), True),
        ("data.eval_fraction", number(0, 1, hi_open=True), True),
        ("data.max_eval_examples", integer(0), False),
        ("data.max_sessions", integer(0), False),
        ("data.use_persona", boolean, False),
        ("persona.num_personas", integer(0), True),
        ("persona.init", choice("mean_std", "code_projection"), True),
        ("persona.codes_path", existing("file"), False),
        ("persona.vocab_multiple", integer(1), True),
        ("persona.lr_multiplier", number(0, lo_open=True), False),
        ("lm.tokenizer_vocab_size", integer(1), True),
        ("lm.dtype", dtypes, False),
        ("lm.param_dtype", dtypes, False),
        ("lm.remat_policy", choice(*REMAT_POLICIES), False),
        ("lm.attention_impl", choice(*ATTENTION_IMPLS), False),
        ("lm.attn_scores_f32", boolean, False),
        ("lm.attn_blocks", integer(1), False),
        ("lm.loss_chunk", integer(0), False),
        ("lm.model.family", choice(*FAMILIES), False),
        *(
            (f"lm.model.{k}", integer(1), False)
            for k in (
                "hidden_size",
                "intermediate_size",
                "num_layers",
                "num_heads",
                "num_kv_heads",
                "head_dim",
                "max_position_embeddings",
            )
        ),
        ("train.mode", choice("all", "persona_rows"), True),
    )


def _lm_cross(config) -> list[str]:
    out = []
    init_from = _get(config, "lm.init_from")
    if init_from and not os.path.isfile(os.path.join(str(init_from), "config.json")):
        out.append(
            f"config.lm.init_from={init_from!r}: no Hugging Face folder there "
            "(no config.json); '' = the embedded default"
        )
    h, kv = _get(config, "lm.model.num_heads"), _get(config, "lm.model.num_kv_heads")
    if not init_from and _is_int(h) and _is_int(kv) and h >= 1 and kv >= 1 and h % kv:
        out.append(
            f"config.lm.model.num_heads={h}: must be a multiple of "
            f"config.lm.model.num_kv_heads={kv}"
        )
    if _get(config, "persona.init") == "code_projection" and not _get(config, "persona.codes_path"):
        out.append(
            "config.persona.codes_path: required by persona.init='code_projection' "
            "(a .npy [K, C] array of code vectors)"
        )
    n = _get(config, "persona.num_personas")
    if _get(config, "train.mode") == "persona_rows" and _is_int(n) and n < 1:
        out.append(f"config.persona.num_personas={n}: train.mode='persona_rows' needs >= 1")
    return out


# config.task -> (rules, cross-key checks); a callable for rules is called (lazy imports).
TASK_RULES: dict[str, tuple[Any, Callable]] = {
    "vqvae": (VQVAE_RULES, _vqvae_cross),
    "lm_sft": (_lm_rules, _lm_cross),
}


# ---- running the checks ------------------------------------------------------------------------
def _get(config, key: str):
    node = config
    for part in key.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            return _MISSING
    return node


def _apply(config, rules) -> list[str]:
    out = []
    for key, check, required in rules:
        value = _get(config, key)
        if value is _MISSING:
            if required:
                out.append(f"config.{key}: missing")
            continue
        what = check(value)
        if what:
            out.append(f"config.{key}={value!r}: {what}")
    return out


def problems(config, workdir: str | None, tasks=None) -> list[str]:
    """Every problem of `config` (and `workdir`, unless None), one line each. tasks: the names
    config.task may take (None: any)."""
    found = _apply(config, LOOP_RULES) + _mesh_problems(config)
    task = _get(config, "task")
    if tasks is not None and task not in tasks:
        found.append(f"config.task={task!r}: not registered; known: {sorted(tasks)}")
    if workdir is not None:
        found += workdir_problems(workdir)
    if task in TASK_RULES:
        rules, cross = TASK_RULES[task]
        found += _apply(config, rules() if callable(rules) else rules)
        found += cross(config)
    return found


def check(config, workdir: str | None, tasks=None) -> None:
    """Raise ConfigError listing every problem of `config` and `workdir` (one line each)."""
    found = problems(config, workdir, tasks)
    if found:
        raise ConfigError(found)
