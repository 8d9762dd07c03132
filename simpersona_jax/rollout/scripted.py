"""A scripted shopper that acts out a synthetic buyer type through the driver (no LM needed).

The behaviour parameters are the generator's (`simpersona_jax.synth.types.BuyerType`): bounce,
landing page, product views per session, search / related / revisit rates, price sensitivity,
add-to-cart, removal, checkout and purchase propensities. The agent reads only the observation
(like an LM agent) and answers with action strings; its randomness comes from a per-episode
generator seeded by (seed, buyer, session), so a run is reproducible.

    specs = scripted_specs(server.store_url(store), catalog, [(buyer_type, buyer_id)], seed=0)
    results = await run_episodes(specs, ScriptedBuyer(seed=0), cfg)
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from urllib.parse import quote, urlencode

import numpy as np

from simpersona_jax.rollout.actions import format_action
from simpersona_jax.rollout.driver import EpisodeSpec, Turn
from simpersona_jax.rollout.observe import Element, Observation
from simpersona_jax.storefront.catalog import StoreCatalog, tokens
from simpersona_jax.synth.types import BuyerType

_PRICE = re.compile(r"— \$([\d,]+\.\d\d)$")
_CHECKOUT = {"Full name": "Sam Shopper", "Email": "sam@example.com", "Address": "2 Side Street"}


def _rng(seed: int, *keys: str) -> np.random.Generator:
    digest = hashlib.blake2b("/".join(keys).encode(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def scripted_specs(
    store_url: str,
    catalog: StoreCatalog,
    buyers: list[tuple[BuyerType, str]],
    seed: int = 0,
    session_prefix: str = "scripted",
) -> list[EpisodeSpec]:
    """One episode per (type, buyer id), landing where the type tends to land."""
    specs = []
    for i, (buyer_type, buyer_id) in enumerate(buyers):
        session_id = f"{session_prefix}-{buyer_id}-{i}"
        rng = _rng(seed, buyer_id, session_id, "landing")
        p = np.asarray(buyer_type.landing, float)
        landing = ("home", "collection", "search", "product")[int(rng.choice(4, p=p / p.sum()))]
        product = catalog.products[int(rng.integers(0, len(catalog.products)))]
        path = {
            "home": "",
            "collection": f"c/{quote(product.category, safe='')}",
            "search": "search?" + urlencode({"q": (tokens(product.title) or ["a"])[0]}),
            "product": f"p/{quote(product.product_id, safe='')}",
        }[landing]
        specs.append(
            EpisodeSpec(
                store_url + path,
                catalog.store_id,
                buyer_id,
                session_id,
                goal=buyer_type.description,
                meta=buyer_type,
            )
        )
    return specs


@dataclasses.dataclass
class _Episode:
    rng: np.random.Generator
    bounce: bool
    views_left: int
    viewed: int = 0
    seen: set = dataclasses.field(default_factory=set)  # product ids viewed
    idle: int = 0  # listing pages in a row without opening a new product
    cart_decided: bool = False
    removing: list = dataclasses.field(default_factory=list)
    buying: bool | None = None
    adding: bool = False  # the quantity was set; add to cart next
    query: str = ""  # typed into the search box; submit next


class ScriptedBuyer:
    """Async policy; each EpisodeSpec.meta is the episode's BuyerType."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.episodes: dict[int, _Episode] = {}

    async def __call__(self, turns: list[Turn]) -> list[str]:
        return [self.act(t) for t in turns]

    def act(self, turn: Turn) -> str:
        t: BuyerType = turn.spec.meta
        ep = self.episodes.get(turn.index)
        if ep is None:
            rng = _rng(self.seed, turn.spec.buyer_id, turn.spec.session_id)
            ep = self.episodes[turn.index] = _Episode(
                rng, bool(rng.random() < t.bounce), 1 + int(rng.poisson(max(t.views_mean - 1, 0)))
            )
        obs = turn.observation
        if ep.bounce or obs.kind == "confirmation":
            return format_action("stop")
        if ep.query:
            box, ep.query = _by(obs, role="searchbox"), ""
            if box is not None:
                return format_action("press", box.bid, "Enter")
        handler = getattr(self, f"_on_{obs.kind}", None)
        return handler(t, ep, obs) if handler else format_action("go_back")

    # ---- pages ----------------------------------------------------------------------------
    def _on_home(self, t, ep, obs):
        return self._browse(t, ep, obs)

    def _on_collection(self, t, ep, obs):
        return self._pick_product(t, ep, obs) or self._browse(t, ep, obs)

    def _on_search(self, t, ep, obs):
        return self._pick_product(t, ep, obs) or self._browse(t, ep, obs)

    def _on_notfound(self, t, ep, obs):
        return self._browse(t, ep, obs)

    def _on_product(self, t, ep, obs):
        add = _by(obs, role="button", name="Add to cart")
        if ep.adding:
            ep.adding = False
            return format_action("click", add.bid)
        if not obs.notice:  # a fresh view (not the page an add-to-cart redirected to)
            ep.viewed += 1
            ep.seen.add(obs.path.split("?")[0].rsplit("/", 1)[-1])
            if ep.rng.random() < t.add_to_cart:
                qty = _by(obs, role="spinbutton", name="Quantity")
                if qty is not None and ep.rng.random() < 0.2:
                    ep.adding = True  # two of them: set the quantity, then add
                    return format_action("fill", qty.bid, "2")
                return format_action("click", add.bid)
        if ep.viewed >= ep.views_left:
            return self._to_cart_or_leave(obs)
        r = ep.rng.random()
        if r < t.revisit and ep.viewed > 1:
            return format_action("go_back")
        if ep.rng.random() < t.related:
            picked = self._pick_product(t, ep, obs)
            if picked:
                return picked
        if ep.rng.random() < t.search:
            return self._search(ep, obs, obs.title)
        crumbs = [e for e in obs.elements if e.role == "link" and "/c/" in e.href]
        if crumbs:
            return format_action("click", crumbs[-1].bid)
        return self._browse(t, ep, obs)

    def _on_cart(self, t, ep, obs):
        if not ep.cart_decided:
            ep.cart_decided = True
            ep.removing = [
                e.name
                for e in obs.elements
                if e.role == "button"
                and e.name.startswith("Remove ")
                and ep.rng.random() < t.remove
            ]
        while ep.removing:
            button = _by(obs, role="button", name=ep.removing.pop(0))
            if button is not None:
                return format_action("click", button.bid)
        checkout = _by(obs, role="link", name="Proceed to checkout")
        if checkout is not None and ep.rng.random() < t.checkout:
            return format_action("click", checkout.bid)
        return format_action("stop")

    def _on_checkout(self, t, ep, obs):
        if ep.buying is None:
            ep.buying = bool(ep.rng.random() < t.purchase)
        if not ep.buying:
            return format_action("stop")
        for name, value in _CHECKOUT.items():
            field = _by(obs, name=name)
            if field is not None and field.value != value:
                return format_action("fill", field.bid, value)
        return format_action("click", _by(obs, role="button", name="Place order").bid)

    # ---- helpers ---------------------------------------------------------------------------
    def _to_cart_or_leave(self, obs):
        cart = next(
            (e for e in obs.elements if e.role == "link" and e.name.startswith("Cart (")), None
        )
        if cart is not None and obs.cart not in ("", "0"):
            return format_action("click", cart.bid)
        return format_action("stop")

    def _pick_product(self, t, ep, obs) -> str | None:
        """Clicks a listed product, cheaper ones more likely when price sensitive."""
        links = [(e, _price(e)) for e in obs.elements if e.product_id]
        links = [(e, p) for e, p in links if p and e.product_id not in ep.seen]
        if not links:
            return None
        prices = np.array([p for _, p in links])
        w = (prices / np.median(prices)) ** (-t.price_sensitivity)
        e = links[int(ep.rng.choice(len(links), p=w / w.sum()))][0]
        ep.idle = 0
        return format_action("click", e.bid)

    def _browse(self, t, ep, obs):
        ep.idle += 1
        if ep.idle > 4:  # nothing new to look at for a while: leave
            return format_action("stop")
        if ep.rng.random() < t.search and obs.title:
            return self._search(ep, obs, obs.title)
        cats = [
            e for e in obs.elements if e.role == "link" and "/c/" in e.href and "?" not in e.href
        ]
        if cats:
            return format_action("click", cats[int(ep.rng.integers(0, len(cats)))].bid)
        picked = self._pick_product(t, ep, obs)
        return picked or format_action("stop")

    def _search(self, ep, obs, text):
        box = _by(obs, role="searchbox")
        words = [w for w in tokens(text) if not w.isdigit()]
        if box is None or not words:
            return format_action("go_back")
        ep.query = words[int(ep.rng.integers(0, len(words)))]
        return format_action("fill", box.bid, ep.query)


def _by(obs: Observation, role: str | None = None, name: str | None = None) -> Element | None:
    for e in obs.elements:
        if (role is None or e.role == role) and (name is None or e.name == name):
            return e
    return None


def _price(e: Element) -> float | None:
    m = _PRICE.search(e.name)
    return float(m.group(1).replace(",", "")) if m else None
