"""Agent SFT stage 1: only the persona-token rows train, on intent-neutral goals.

Run:
  python -m simpersona_jax.train --config=experiments/agent_stage1.py --workdir=runs/agent_stage1 \
      --config.data.traces_dir=<traces> --config.data.codes_path=runs/vqvae/assign/codes.parquet \
      [--config.lm.init_from=<HF folder, default runs/agent_base/hf>]

Adds <|persona_0|>..<|persona_255|> to the tokenizer and the embedding table (and lm_head when
untied), padded to a multiple of 128, initialised from the mean/std of the existing rows
(--config.persona.init=code_projection --config.persona.codes_path=codes.npy: a learned
projection of the VQ code vectors instead). Every other parameter and every other row stays
bit-for-bit unchanged. Prints progress lines, then the held-out next-action accuracy overall and
per persona, and exports <workdir>/hf (the input of stage 2).
"""

from simpersona_jax.lm.experiment import sft_config


def get_config():
    c = sft_config()
    c.lm.init_from = "runs/agent_base/hf"
    c.train.mode = "persona_rows"
    c.data.goal_field = "goal_neutral"
    c.optimizer.learning_rate = 1e-2
    c.num_steps = 300
    return c
