"""Shared defaults of the agent SFT configs (experiments/agent_{base,stage1,stage2}.py).

Every key is documented here once; the experiment files override a few.
"""

from __future__ import annotations

import ml_collections


def sft_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "lm_sft"
    c.seed = 0
    c.global_batch_size = 8  # packed sequences per step (8 x 1024 tokens)
    c.num_steps = 600
    c.log_every_steps = 50
    c.eval_every_steps = 0
    c.distributed = "auto"
    c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})

    c.data = ml_collections.ConfigDict()
    c.data.traces_dir = "runs/traces"  # traces-*.parquet (replay/schema.py TRACE_SCHEMA)
    c.data.codes_path = ""  # assign.py's codes.parquet: persona = the buyer's VQ code
    c.data.goal_field = "goal_neutral"  # goal_neutral (stage 1) | goal_intent (stage 2)
    c.data.neutral_fraction = 0.0  # share of training sessions that use goal_neutral instead
    c.data.persona_dropout = 0.0  # share of training sessions shown without persona token
    c.data.decision_oversample = 1  # rows on product/cart/checkout pages repeated this often
    c.data.meta_path = ""  # buyers/meta.parquet: per-stratum decision accuracy
    # Packed row length; long observations are cut from the end. Replay examples are ~200-490
    # tokens, so rows of 512 hold one and waste ~25% on padding; rows of 1024 pack ~91-93% full.
    c.data.seq_len = 1024
    c.data.eval_fraction = 0.1  # held-out sessions (deterministic hash split)
    c.data.max_eval_examples = 512
    c.data.max_sessions = 0  # 0 = all; the paper used ~3,600 sessions
    c.data.use_persona = True  # False: no persona token in prompts (a control)

    c.persona = ml_collections.ConfigDict()
    c.persona.num_personas = 256  # K of the VQ-VAE codebook; 0 = no persona tokens
    c.persona.init = "mean_std"  # mean_std | code_projection
    c.persona.codes_path = ""  # .npy [K, C] VQ code vectors for code_projection
    c.persona.vocab_multiple = 128  # pad the table so it shards evenly
    c.persona.lr_multiplier = 1.0  # train.mode=all: the code projection learns this much faster

    c.lm = ml_collections.ConfigDict()
    c.lm.init_from = ""  # HF folder (checkpoint or <prev workdir>/hf); "" = embedded default
    c.lm.tokenizer_vocab_size = 2048  # BPE trained on the traces (embedded default only)
    c.lm.dtype = "float32"  # compute dtype; bfloat16 on accelerators
    c.lm.param_dtype = "float32"
    c.lm.remat_policy = "none"  # none | full | dots | dots_no_batch
    c.lm.attention_impl = "xla"  # xla (flash-style, lm/attention.py) | jax | cudnn (GPU kernel)
    c.lm.attn_scores_f32 = True  # False: q.k scores in the compute dtype (softmax stays f32)
    c.lm.attn_blocks = 4  # xla causal attention: query blocks (upper-triangle keys skipped)
    c.lm.loss_chunk = 512  # sequence positions per chunk of the loss' logits (lm/loss.py)
    c.lm.model = ml_collections.ConfigDict(
        dict(  # embedded default architecture (Qwen3 layout)
            family="qwen3",
            hidden_size=128,
            intermediate_size=384,
            num_layers=4,
            num_heads=4,
            num_kv_heads=2,
            head_dim=32,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        )
    )

    c.train = ml_collections.ConfigDict()
    c.train.mode = "all"  # all | persona_rows (stage 1: only persona rows move)

    c.optimizer = ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=3e-3,
            warmup_steps=30,
            schedule="cosine",
            final_lr_fraction=0.1,
            weight_decay=0.0,
            grad_clip_norm=1.0,
        )
    )
    c.checkpoint = ml_collections.ConfigDict(
        {"every_steps": 200, "max_to_keep": 2, "async_save": False}
    )
    return c
