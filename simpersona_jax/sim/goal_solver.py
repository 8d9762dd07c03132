"""A scripted solver of the goal-directed tasks: reads the goal sentence and the page like an agent.

It checks that the tasks can be done through the observation and actions alone (tests, and a
reference run of `python -m simpersona_jax.goal_tasks --config.policy=solver` on real stores):
  find_add    search the title, open the product, add it, stop
  search_buy  search the phrase, open a product under the cap (sorting by price when none is
              listed), add it, go to the cart, check out, fill the form, place the order
  browse      follow the section's links from the top category down (searching its name when
              the home page does not link it), then stop
A goal it cannot read, or a task it cannot finish, ends with stop().
"""

from __future__ import annotations

import dataclasses

from simpersona_jax.replay.goals import parse_goal
from simpersona_jax.rollout.actions import format_action
from simpersona_jax.rollout.driver import Turn
from simpersona_jax.rollout.observe import Observation
from simpersona_jax.rollout.scripted import _CHECKOUT, _by, _price

STOP = format_action("stop")
MAX_SEARCHES = 2


@dataclasses.dataclass
class _State:
    typed: bool = False  # the search box was filled; press Enter next
    searches: int = 0
    sorted: bool = False


def _money(text: str) -> float | None:
    try:
        return float(text.strip().lstrip("$").replace(",", ""))
    except ValueError:
        return None


class GoalSolver:
    """Async driver policy for goal-task episodes (EpisodeSpec.goal is a goal-task sentence)."""

    def __init__(self):
        self.states: dict[int, _State] = {}

    async def __call__(self, turns: list[Turn]) -> list[str]:
        return [self.act(t) for t in turns]

    def act(self, turn: Turn) -> str:
        parsed = parse_goal(turn.spec.goal)
        if parsed is None:
            return STOP
        kind, fields = parsed
        state = self.states.setdefault(turn.index, _State())
        return getattr(self, f"_{kind}")(fields, state, turn.observation)

    def _search(self, state: _State, obs: Observation, text: str) -> str:
        box = _by(obs, role="searchbox")
        if box is None or (state.searches >= MAX_SEARCHES and not state.typed):
            return STOP
        if state.typed:
            state.typed = False
            state.searches += 1
            return format_action("press", box.bid, "Enter")
        state.typed = True
        return format_action("fill", box.bid, text)

    def _find_add(self, fields: dict, state: _State, obs: Observation) -> str:
        title = fields["title"]
        if obs.kind == "product" and obs.title == title:
            if obs.notice.startswith("Added"):
                return STOP
            return format_action("click", _by(obs, role="button", name="Add to cart").bid)
        for e in obs.elements:
            if e.product_id and e.name.startswith(title + " — "):
                return format_action("click", e.bid)
        return self._search(state, obs, title)

    def _search_buy(self, fields: dict, state: _State, obs: Observation) -> str:
        cap = float(fields["cap"])
        if obs.kind == "checkout":
            for name, value in _CHECKOUT.items():
                field = _by(obs, name=name)
                if field is not None and field.value != value:
                    return format_action("fill", field.bid, value)
            return format_action("click", _by(obs, role="button", name="Place order").bid)
        if obs.kind == "cart":
            go = _by(obs, role="link", name="Proceed to checkout")
            return format_action("click", go.bid) if go is not None else STOP
        if obs.kind == "product":
            price = _money(obs.price)
            if obs.notice.startswith("Added"):
                cart = next(
                    e for e in obs.elements if e.role == "link" and e.name.startswith("Cart (")
                )
                return format_action("click", cart.bid)
            if price is not None and price < cap:
                return format_action("click", _by(obs, role="button", name="Add to cart").bid)
        if obs.kind == "search" and not state.typed:
            for e in obs.elements:
                price = _price(e) if e.product_id else None
                if price is not None and price < cap:
                    return format_action("click", e.bid)
            cheapest = _by(obs, role="link", name="Price: low to high")
            if cheapest is not None and not state.sorted:
                state.sorted = True
                return format_action("click", cheapest.bid)
            if state.searches:
                return STOP  # nothing under the cap
        return self._search(state, obs, fields["query"])

    def _browse(self, fields: dict, state: _State, obs: Observation) -> str:
        labels = fields["section"].split(" > ")
        if obs.kind == "collection" and obs.heading == labels[-1]:
            return STOP
        here = obs.heading if obs.kind == "collection" else None
        for name in reversed(labels):  # the deepest of the section's collections linked here
            if name == here:
                break
            link = next(
                (
                    e
                    for e in obs.elements
                    if e.role == "link" and "/c/" in e.href and "?" not in e.href and e.name == name
                ),
                None,
            )
            if link is not None:
                return format_action("click", link.bid)
        if obs.kind == "search" and not state.typed:
            product = next((e for e in obs.elements if e.product_id), None)
            if product is not None:
                return format_action("click", product.bid)
        return self._search(state, obs, labels[-1])
