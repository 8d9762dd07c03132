"""The LM policy adapter: Turn -> Request (persona, goal, history, observation, seed)."""

import asyncio

from simpersona_jax.rollout.driver import EpisodeSpec, Turn
from simpersona_jax.rollout.observe import Observation
from simpersona_jax.sim.policies import lm_policy, turn_seed


class FakeModel:
    def __init__(self):
        self.requests = []

    def act(self, requests):
        self.requests += list(requests)
        return [f'click("{r.seed % 7}")' for r in requests]


def _turn(buyer, step, persona=3, meta=None):
    spec = EpisodeSpec(
        "http://127.0.0.1/s/a/",
        "a",
        buyer,
        buyer + "-s0",
        goal="browse",
        persona=persona,
        meta=meta,
    )
    return Turn(
        index=0,
        spec=spec,
        step=step,
        observation=Observation("home", "u", "/s/a/"),
        history=("stop()",),
    )


def test_requests_carry_the_turn_and_seeds_are_batch_independent():
    model = FakeModel()
    policy = lm_policy(model, seed=1)
    turns = [_turn("x", 0), _turn("y", 2, persona=-1, meta={"persona_text": "A shopper who buys"})]
    actions = asyncio.run(policy(turns))
    assert len(actions) == 2
    first, second = model.requests
    assert (first.persona, first.goal, list(first.history)) == (3, "browse", ["stop()"])
    assert first.observation.startswith("page: home /s/a/")
    assert first.persona_text is None and second.persona_text == "A shopper who buys"
    # The same turn alone gets the same seed as in a batch; other steps get other seeds.
    asyncio.run(policy([_turn("x", 0)]))
    assert model.requests[2].seed == first.seed == turn_seed(1, turns[0])
    assert turn_seed(1, _turn("x", 1)) != first.seed
