"""The actions an agent can take on an observed page: the candidate set of constrained decoding.

Read from the observation text alone (`[bid] role "name"` lines, rollout/observe.py), so the
candidates are exactly the elements the agent was shown:
  click("bid")              every link, button, checkbox, radio and combobox
  fill("bid", "<text>")     every text-like field (textbox, searchbox, spinbutton): the text is
                            free, so the candidate is the prefix `fill("bid", "` and the decoder
                            samples the text after it
  press("bid", "Enter")     every text-like field (submits its form)
  go_back()                 unless it is the episode's first step (no page to go back to)
  stop()                    always
Every candidate is built with `actions.format_action`, so whatever the decoder picks parses.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from simpersona_jax.rollout.actions import format_action

_ELEMENT = re.compile(r"^\[(\d{1,6})\] (\S+) ", re.MULTILINE)
CLICK_ROLES = frozenset({"link", "button", "checkbox", "radio", "combobox"})
TEXT_ROLES = frozenset({"textbox", "searchbox", "spinbutton"})


@dataclasses.dataclass(frozen=True)
class Candidate:
    text: str  # a whole action, or for fills the prefix up to the opening quote of the text
    fill_bid: str = ""  # non-empty: a fill prefix whose text the decoder samples

    @property
    def is_fill(self) -> bool:
        return bool(self.fill_bid)


def fill_prefix(bid: str) -> str:
    """`fill("bid", "` : the canonical fill action up to its text."""
    whole = format_action("fill", bid, "")
    return whole[: -len('")')]


def elements(observation: str) -> list[tuple[str, str]]:
    """(bid, role) of every element line of an observation text, in order, bids unique."""
    seen, out = set(), []
    for bid, role in _ELEMENT.findall(observation):
        if bid not in seen:
            seen.add(bid)
            out.append((bid, role))
    return out


def candidates(observation: str, history: Sequence[str] = ()) -> list[Candidate]:
    out = []
    for bid, role in elements(observation):
        if role in CLICK_ROLES:
            out.append(Candidate(format_action("click", bid)))
        elif role in TEXT_ROLES:
            out.append(Candidate(fill_prefix(bid), fill_bid=bid))
            out.append(Candidate(format_action("press", bid, "Enter")))
    if history:
        out.append(Candidate(format_action("go_back")))
    out.append(Candidate(format_action("stop")))
    return out
