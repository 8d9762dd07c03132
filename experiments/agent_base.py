"""Embedded default agent LM, stage 0: a small Qwen3-layout model + BPE tokenizer trained on the traces.

Run:
  python -m simpersona_jax.train --config=experiments/agent_base.py --workdir=runs/agent_base \
      --config.data.traces_dir=<dir with traces-*.parquet>

Stands in for a pretrained checkpoint on a laptop: trains a byte-level BPE on the training
traces, then every parameter of a ~1M-parameter decoder on (goal, history, observation) ->
action, without persona tokens. Prints a progress line per log interval
(`step .. | loss .. | token_acc .. | steps/s | sequences/s | ETA`), then the report: held-out
next-action accuracy and the exported Hugging Face folder <workdir>/hf (the input of stage 1).
With a real checkpoint, skip this and point stage 1 at it (--config.lm.init_from=<HF folder>).
"""

from simpersona_jax.lm.experiment import sft_config


def get_config():
    c = sft_config()
    c.persona.num_personas = 0
    c.data.use_persona = False
    # Stands in for a pretrained, instruction-following model: explicit-intent goals, with some
    # intent-neutral ones so it also knows how an unguided visit goes.
    c.data.goal_field = "goal_intent"
    c.data.neutral_fraction = 0.3
    c.num_steps = 600
    return c
