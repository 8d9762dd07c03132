"""Agent SFT stage 2: all parameters, explicit-intent goals, starting from stage 1's export.

Run:
  python -m simpersona_jax.train --config=experiments/agent_stage2.py --workdir=runs/agent_stage2 \
      --config.data.traces_dir=<traces> --config.data.codes_path=runs/vqvae/assign/codes.parquet \
      [--config.lm.init_from=runs/agent_stage1/hf] \
      [--config.persona.init=code_projection --config.persona.codes_path=<codebook.npy>]

(`python -m simpersona_jax.pipeline` passes all of these itself.) Loads stage 1's Hugging Face
export (persona tokens already in tokenizer and table), trains every parameter on goal_intent
prompts mixed with goal_neutral ones (data.neutral_fraction) and some without persona token
(data.persona_dropout); with persona.init=code_projection the persona rows stay a projection of
the VQ codebook (fitted to stage 1's rows) and the projection trains. Without codes_path the
traces carry no persona and the run stops with an error. Prints progress lines, the held-out
next-action accuracy, the persona check (NLL matched / mismatched / none, add-to-cart and
checkout decisions per stratum with data.meta_path), and exports <workdir>/hf: the agent the
simulator's LM policy (simpersona_jax/lm/policy.py) loads.
"""

from simpersona_jax.lm.experiment import sft_config


def get_config():
    c = sft_config()
    c.lm.init_from = "runs/agent_stage1/hf"
    c.train.mode = "all"
    c.data.goal_field = "goal_intent"
    # Half the sessions keep the intent-neutral goal: there the persona token is the only signal,
    # which is how the simulator prompts the agent (stage 2 on explicit intents alone teaches
    # the model to ignore the token).
    c.data.neutral_fraction = 0.5
    # A tenth of the sessions without a persona token: goal tasks and the no-persona control
    # prompt the agent that way.
    c.data.persona_dropout = 0.1
    c.optimizer.learning_rate = 1e-3
    c.num_steps = 300
    return c
