"""The agent prompt, shared by SFT and the simulator's LM policy.

Layout (DESIGN.md): persona token first, then the goal, the recent actions, the observation;
the persona token is repeated right before the action cue, so that the small embedded model reads
it at the decision without attending back over a ~500-token page (with the token only at the
start, a ~1M-parameter model trained for minutes learned to ignore it: matched = mismatched).
The target is exactly one action followed by a newline (and EOS in training):

    <|persona_17|>
    goal: <goal text>
    history:
    click("12")
    fill("3", "red shoes")
    observation:
    page: product /products/p123
    ...
    <|persona_17|>
    action: click("7")\n

`encode(tokenizer, ...)` tokenises the pieces separately so that an over-long observation is
cut (from its end) without ever dropping the persona token, goal, history or the "action:" cue;
SFT and the policy call this same function, so training and simulation prompts are identical.
"""

from __future__ import annotations

from typing import Sequence

MAX_HISTORY = 5
ACTION_CUE = "action: "
STOP = "\n"  # the policy samples until a newline (or EOS)


def persona_token(k: int) -> str:
    return f"<|persona_{int(k)}|>"


def persona_tokens(num_personas: int) -> list[str]:
    return [persona_token(k) for k in range(num_personas)]


def _head(persona: int | None, goal: str, history: Sequence[str], persona_text: str | None) -> str:
    lines = []
    if persona is not None and persona >= 0:
        lines.append(persona_token(persona))
    if persona_text:
        lines.append(f"persona: {persona_text}")
    lines.append(f"goal: {goal.strip()}")
    lines.append("history:")
    hist = list(history)[-MAX_HISTORY:]
    lines += [h.strip() for h in hist] if hist else ["(none)"]
    lines.append("observation:")
    return "\n".join(lines) + "\n"


def _cue(persona: int | None) -> str:
    if persona is not None and persona >= 0:
        return persona_token(persona) + "\n" + ACTION_CUE
    return ACTION_CUE


def build(
    goal: str,
    history: Sequence[str],
    observation: str,
    persona: int | None = None,
    persona_text: str | None = None,
) -> str:
    """The prompt text (ends with the action cue). persona=None or <0: no persona token."""
    return (
        _head(persona, goal, history, persona_text)
        + observation.rstrip("\n")
        + "\n"
        + _cue(persona)
    )


def target(action: str) -> str:
    action = action.strip()
    if not action or "\n" in action:
        raise ValueError(f"action must be one non-empty line, got {action!r}")
    return action + STOP


def encode(
    tokenizer,
    goal: str,
    history: Sequence[str],
    observation: str,
    persona: int | None = None,
    persona_text: str | None = None,
    max_prompt_tokens: int | None = None,
) -> list[int]:
    """Token ids of `build(...)`, with the observation cut from the end to fit max_prompt_tokens."""
    head = tokenizer.encode(_head(persona, goal, history, persona_text), add_special_tokens=False)
    obs = tokenizer.encode(observation.rstrip("\n") + "\n", add_special_tokens=False)
    cue = tokenizer.encode(_cue(persona), add_special_tokens=False)
    if max_prompt_tokens is not None:
        room = max_prompt_tokens - len(head) - len(cue)
        if room < 1:
            raise ValueError(
                f"max_prompt_tokens={max_prompt_tokens} leaves no room for the observation "
                f"(persona+goal+history take {len(head)} tokens)"
            )
        obs = obs[:room]
    return head + obs + cue


def encode_target(tokenizer, action: str) -> list[int]:
    ids = tokenizer.encode(target(action), add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return ids


def encode_row(
    tokenizer,
    row: dict,
    goal_field: str = "goal_neutral",
    use_persona: bool = True,
    max_prompt_tokens: int | None = None,
) -> tuple[list[int], list[int]]:
    """(prompt ids, target ids) for one trace row (replay/schema.py TRACE_SCHEMA)."""
    persona = row.get("persona") if use_persona else None
    prompt_ids = encode(
        tokenizer,
        row[goal_field] or "",
        row.get("history") or [],
        row["observation"],
        persona=persona,
        max_prompt_tokens=max_prompt_tokens,
    )
    return prompt_ids, encode_target(tokenizer, row["action"])
