"""LMConfig: the architecture of a Qwen3 / Qwen2 / Llama decoder, and its mapping to HF config.json.

One frozen (hashable) dataclass drives the Flax model, the HF importer/exporter and sampling.
`from_hf_dict` accepts both the transformers>=5 layout (`rope_parameters` holding `rope_theta`)
and the older one (`rope_theta` + `rope_scaling`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

FAMILIES = ("qwen3", "qwen2", "llama")
ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")
ATTENTION_IMPLS = ("xla", "jax", "cudnn")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    family: str = "qwen3"
    vocab_size: int = 512  # rows of the embedding table (padded size)
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    # Sorted (key, value) pairs of the HF rope_parameters other than rope_theta (hashable).
    rope_scaling: tuple[tuple[str, Any], ...] = ()
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True
    qk_norm: bool = True  # Qwen3
    qkv_bias: bool = False  # Qwen2 (always), Llama/Qwen3 attention_bias
    o_bias: bool = False  # Llama/Qwen3 attention_bias
    mlp_bias: bool = False  # Llama mlp_bias
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None
    # Numerics and memory.
    dtype: str = "float32"  # compute dtype ("bfloat16" on accelerators)
    param_dtype: str = "float32"
    remat_policy: str = "none"  # none | full | dots | dots_no_batch
    # xla: flash-style attention in XLA ops (lm/attention.py); jax: jax.nn.dot_product_attention
    # (XLA); cudnn: its fused GPU kernel (cuDNN flash attention).
    attention_impl: str = "xla"
    # The attention q.k scores in f32 (else in the compute dtype; the softmax is f32 either way).
    attn_scores_f32: bool = True
    # xla causal self-attention in at most this many query blocks (rows >= 64 each); the key
    # blocks above the diagonal are skipped. More blocks: fewer FLOPs, more (smaller) ops.
    attn_blocks: int = 4
    loss_chunk: int = 512  # sequence positions per chunk of the loss' logits (lm/loss.py)
    # The layer loop: a rolled scan (one compiled layer; compile time flat in depth) or unrolled
    # (straight-line code: no per-layer slicing of stacked params, residuals and cache; faster for
    # shallow models on CPU). None = unroll when num_layers <= 8.
    unroll_layers: bool | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"LMConfig.family={self.family!r}; expected one of {FAMILIES}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(
                f"rope_type={self.rope_type!r} is not supported; expected one of {ROPE_TYPES}"
            )
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(
                f"remat_policy={self.remat_policy!r}; expected one of {REMAT_POLICIES}"
            )
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(
                f"attention_impl={self.attention_impl!r}; expected one of {ATTENTION_IMPLS}"
            )
        if self.attn_blocks < 1:
            raise ValueError(f"attn_blocks={self.attn_blocks}; expected >= 1")
        if self.unroll_layers is None:
            object.__setattr__(self, "unroll_layers", self.num_layers <= 8)

    @property
    def rope_type(self) -> str:
        return dict(self.rope_scaling).get("rope_type", "default")

    @property
    def eos_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    def replace(self, **kw) -> "LMConfig":
        return dataclasses.replace(self, **kw)

    def num_params(self, include_embedding: bool = True) -> int:
        e, h, kv, d, f = (
            self.hidden_size,
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            self.intermediate_size,
        )
        attn = e * h * d + 2 * e * kv * d + h * d * e
        attn += (h * d + 2 * kv * d) * self.qkv_bias + e * self.o_bias + 2 * d * self.qk_norm
        mlp = 3 * e * f + (2 * f + e) * self.mlp_bias
        layer = attn + mlp + 2 * e
        n = self.num_layers * layer + e
        if include_embedding:
            n += self.vocab_size * e * (1 if self.tie_word_embeddings else 2)
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token (fwd+bwd = 6N + attention), as in the PaLM MFU formula."""
        n = self.num_params(include_embedding=False) + self.vocab_size * self.hidden_size
        attn = 12 * self.num_layers * self.num_heads * self.head_dim * seq_len / 2  # causal half
        return 6 * n + attn

    # ---------------------------------------------------------------- HF config.json mapping
    @classmethod
    def from_hf_dict(cls, hf: dict, **overrides) -> "LMConfig":
        mt = hf.get("model_type")
        if mt not in FAMILIES:
            raise ValueError(
                f"config.json model_type={mt!r} is not supported; expected one of {FAMILIES}"
            )
        for key in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
        ):
            if key not in hf:
                raise ValueError(f"config.json lacks required field {key!r}")
        if hf.get("hidden_act", "silu") != "silu":
            raise ValueError(
                f"config.json hidden_act={hf['hidden_act']!r}; only 'silu' (SwiGLU) is supported"
            )
        if mt in ("qwen2", "qwen3") and hf.get("use_sliding_window"):
            raise ValueError("config.json use_sliding_window=true is not supported")
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        theta = rope.pop("rope_theta", hf.get("rope_theta", 10000.0))
        if "type" in rope:
            rope.setdefault("rope_type", rope.pop("type"))
        if rope.get("rope_type") == "default":
            rope.pop("rope_type")
        if "partial_rotary_factor" in rope or "partial_rotary_factor" in hf:
            if (
                float(rope.pop("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)))
                != 1.0
            ):
                raise ValueError("partial_rotary_factor != 1 is not supported")
        heads = hf["num_attention_heads"]
        eos = hf.get("eos_token_id")
        attention_bias = bool(hf.get("attention_bias", False))
        kw = dict(
            family=mt,
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            rope_scaling=tuple(sorted((k, v) for k, v in rope.items() if v is not None)),
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", mt != "llama")),
            qk_norm=mt == "qwen3",
            qkv_bias=True if mt == "qwen2" else attention_bias,
            o_bias=False if mt == "qwen2" else attention_bias,
            mlp_bias=bool(hf.get("mlp_bias", False)),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
            pad_token_id=hf.get("pad_token_id"),
        )
        kw.update(overrides)
        return cls(**kw)

    def to_hf_dict(self) -> dict:
        arch = {
            "qwen3": "Qwen3ForCausalLM",
            "qwen2": "Qwen2ForCausalLM",
            "llama": "LlamaForCausalLM",
        }
        rope = {"rope_theta": self.rope_theta, "rope_type": "default", **dict(self.rope_scaling)}
        out = {
            "architectures": [arch[self.family]],
            "model_type": self.family,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": rope,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id)
            if isinstance(self.eos_token_id, tuple)
            else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.param_dtype,
            "use_cache": True,
        }
        if self.family == "qwen2":
            if self.o_bias or self.mlp_bias:
                raise ValueError("qwen2 has no o_proj / mlp bias")
            out["use_sliding_window"] = False
        else:
            if self.qkv_bias != self.o_bias:
                raise ValueError(
                    f"{self.family} ties q/k/v and o_proj bias (attention_bias); got "
                    f"qkv_bias={self.qkv_bias}, o_bias={self.o_bias}"
                )
            out["attention_bias"] = self.qkv_bias
        if self.family == "qwen3":
            out["use_sliding_window"] = False
        if self.family == "llama":
            out["mlp_bias"] = self.mlp_bias
        elif self.mlp_bias:
            raise ValueError(f"{self.family} has no mlp bias")
        if (self.family == "qwen3") != self.qk_norm:
            raise ValueError(f"qk_norm={self.qk_norm} does not match family {self.family!r}")
        return out


# Architectures of released checkpoints (their config.json), for sizing runs without the weights
# (compile_check --model=<name>): LMConfig fields and the tokenizer's length (the ids in use;
# persona tokens are appended after them, the table padded to persona.vocab_multiple).
_QWEN3 = dict(
    family="qwen3",
    vocab_size=151936,
    head_dim=128,
    num_kv_heads=8,
    rope_theta=1_000_000.0,
    max_position_embeddings=40960,
    rms_norm_eps=1e-6,
    bos_token_id=151643,
    eos_token_id=151645,
    pad_token_id=151643,
)
QWEN3_TOKENIZER_LEN = 151669
MODEL_SHAPES: dict[str, dict] = {
    "qwen3-0.6b": dict(
        _QWEN3,
        hidden_size=1024,
        intermediate_size=3072,
        num_layers=28,
        num_heads=16,
        tie_word_embeddings=True,
    ),
    "qwen3-1.7b": dict(
        _QWEN3,
        hidden_size=2048,
        intermediate_size=6144,
        num_layers=28,
        num_heads=16,
        tie_word_embeddings=True,
    ),
    "qwen3-8b": dict(
        _QWEN3,
        hidden_size=4096,
        intermediate_size=12288,
        num_layers=36,
        num_heads=32,
        tie_word_embeddings=False,
    ),
    "qwen3-14b": dict(
        _QWEN3,
        hidden_size=5120,
        intermediate_size=17408,
        num_layers=40,
        num_heads=40,
        tie_word_embeddings=False,
    ),
}


def named_model(name: str, **overrides) -> tuple[LMConfig, int]:
    """(LMConfig of a MODEL_SHAPES entry, its tokenizer length)."""
    if name not in MODEL_SHAPES:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODEL_SHAPES)}")
    return LMConfig(**{**MODEL_SHAPES[name], **overrides}), QWEN3_TOKENIZER_LEN


def pad_to_multiple(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)
