"""One storefront (thread mode) and one Chromium shared by the module's browser tests."""

import pytest

from simpersona_jax.rollout.actions import format_action
from simpersona_jax.storefront.catalog import catalogs_from_events, write_catalogs
from simpersona_jax.storefront.server import StorefrontServer
from simpersona_jax.storefront.testing import tiny_events


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop")
    write_catalogs(catalogs_from_events(tiny_events()), str(root / "catalog"))
    server = StorefrontServer(str(root / "catalog"), str(root / "events")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from simpersona_jax.rollout.testing import LoopBrowser

    b = LoopBrowser()
    yield b
    b.close()


def by_name(obs, name, role=None):
    for e in obs.elements:
        if e.name == name and (role is None or e.role == role):
            return e.bid
    raise AssertionError(f"no element {name!r} in\n{obs.text}")


class Script:
    """spec.meta is a list of steps: ("click"|"fill"|"press", name[, text]) or raw action strings."""

    def __init__(self):
        self.seen = []  # (episode index, step, observation)
        self.batch_sizes = []

    async def __call__(self, turns):
        self.batch_sizes.append(len(turns))
        out = []
        for t in turns:
            self.seen.append((t.index, t.step, t.observation))
            steps = t.spec.meta
            if t.step >= len(steps):
                out.append("stop()")
                continue
            s = steps[t.step]
            if isinstance(s, str):
                out.append(s)
            elif s[0] == "click":
                out.append(format_action("click", by_name(t.observation, s[1])))
            else:
                out.append(format_action(s[0], by_name(t.observation, s[1]), s[2]))
        return out


@pytest.fixture(scope="session")
def script_cls():
    """The Script policy class (tests make fresh instances)."""
    return Script
