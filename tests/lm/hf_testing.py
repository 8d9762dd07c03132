"""Random tiny Qwen3 / Qwen2 / Llama checkpoints built with transformers (test helpers)."""

VOCAB = 300


def hf_config(family: str, **kw):
    import transformers

    base = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        eos_token_id=2,
        pad_token_id=0,
    )
    if family == "qwen3":
        return transformers.Qwen3Config(
            **{**base, "num_key_value_heads": 2, "head_dim": 16, "tie_word_embeddings": True, **kw}
        )
    if family == "qwen2":
        return transformers.Qwen2Config(
            **{**base, "num_key_value_heads": 2, "tie_word_embeddings": False, **kw}
        )
    if family == "llama":
        rope = dict(
            rope_type="llama3",
            rope_theta=500000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=64,
        )
        return transformers.LlamaConfig(
            **{**base, "num_key_value_heads": 1, "rope_parameters": rope, **kw}
        )
    raise ValueError(family)


def make_hf_model(folder: str, config, seed: int = 0):
    """Random model with non-trivial norms and biases, saved to `folder`; returns the torch model."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(folder)
    return model
