"""The path planner: a policy that reproduces a Plan's events on the live storefront.

It reads the same observation the agent gets (elements with bid, role, name, href) and picks
the action a shopper would take toward the next target event: follow a product link where one is
showing, drill into the product's category or page through a listing, else search for the
product's title; add to cart with the right quantity; change or remove cart lines; check out and
fill the form. An action is "final" when, if it goes through, the storefront logs the target's
event; the next observation confirms it (page kind, product, notices) before the planner moves
on. A target not reached within `max_attempts` actions stops the episode, and the state records
why (`failed`), so the session is dropped with that reason.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, unquote, urlsplit

from simpersona_jax.replay.plan import Plan, Target
from simpersona_jax.rollout.actions import format_action
from simpersona_jax.rollout.driver import Turn
from simpersona_jax.rollout.observe import Element, Observation
from simpersona_jax.storefront.catalog import StoreCatalog
from simpersona_jax.storefront.pages import PAGE_SIZE

CHECKOUT_FORM = {"Full name": "Alex Buyer", "Address": "1 Main Street, Springfield"}


@dataclasses.dataclass
class _State:
    plan: Plan
    next: int = 0  # index of the next target
    final: bool = False  # the last action should log targets[next]'s event
    attempts: int = 0  # actions spent on targets[next]
    listing_pages: int = 0  # "Next page" clicks in the current listing
    cart: dict = dataclasses.field(default_factory=dict)
    started: bool = False
    failed: str = ""

    @property
    def done(self) -> bool:
        return self.next >= len(self.plan.targets)


def _page(obs: Observation) -> tuple[list[str], dict[str, str]]:
    """Store-relative path parts and query of the observed URL."""
    parts = urlsplit(obs.url)
    segs = [unquote(s) for s in parts.path.split("/") if s]
    return segs[2:], {k: v[0] for k, v in parse_qs(parts.query).items()}


def matches(t: Target, obs: Observation) -> bool:
    """Whether `obs` is the page the storefront shows right after logging target `t`."""
    if obs.error:
        return False
    path, query = _page(obs)
    kind = obs.kind
    if t.event_type == "product_viewed":
        return kind == "product" and path[-1:] == [t.product_id] and "added" not in query
    if t.event_type == "collection_viewed":
        return kind == "collection" and path[-1:] == [t.category]
    if t.event_type == "search_submitted":
        return kind == "search" and query.get("q", "").strip() == (t.query or "").strip()[:200]
    if t.event_type == "product_added_to_cart":
        return kind == "product" and path[-1:] == [t.product_id] and "added" in query
    if t.event_type == "product_removed_from_cart":
        return kind == "cart" and "updated" in query
    if t.event_type == "cart_viewed":
        return kind == "cart" and "updated" not in query and not obs.alert
    if t.event_type == "checkout_started":
        return kind == "checkout" and not obs.alert
    if t.event_type == "checkout_completed":
        return kind == "confirmation"
    return False


class ReplayPolicy:
    """Async policy for `run_episodes`; each EpisodeSpec.meta is the episode's Plan."""

    def __init__(
        self, catalogs: dict[str, StoreCatalog], max_pages: int = 4, max_attempts: int = 12
    ):
        self.catalogs = catalogs
        self.max_pages = max_pages
        self.max_attempts = max_attempts
        self.states: dict[int, _State] = {}

    async def __call__(self, turns: list[Turn]) -> list[str]:
        return [self.act(t) for t in turns]

    def act(self, turn: Turn) -> str:
        st = self.states.get(turn.index)
        if st is None:
            st = self.states[turn.index] = _State(turn.spec.meta)
        obs = turn.observation
        if not st.started:
            st.started = True
            landing = st.plan.landing
            if landing is not None and not matches(landing, obs):
                st.failed = f"landing_failed:{landing.event_type}"
                return format_action("stop")
        elif st.final and not st.done and matches(st.plan.targets[st.next], obs):
            self._advance(st)
        if st.done:
            return format_action("stop")
        st.attempts += 1
        if st.attempts > self.max_attempts:
            st.failed = f"planner_stuck:{st.plan.targets[st.next].event_type}"
            return format_action("stop")
        action, st.final = self._next_action(st, obs)
        return action

    def _advance(self, st: _State) -> None:
        t = st.plan.targets[st.next]
        if t.event_type == "product_added_to_cart":
            st.cart[t.product_id] = st.cart.get(t.product_id, 0) + t.quantity
        elif t.event_type == "product_removed_from_cart":
            st.cart[t.product_id] -= t.quantity
            if st.cart[t.product_id] <= 0:
                del st.cart[t.product_id]
        st.next += 1
        if t.event_type == "checkout_completed":
            st.cart.clear()
            while not st.done and st.plan.targets[st.next].event_type == "checkout_completed":
                st.next += 1
        st.attempts = 0
        st.listing_pages = 0

    # ---- choosing actions ------------------------------------------------------------------
    def _next_action(self, st: _State, obs: Observation) -> tuple[str, bool]:
        t = st.plan.targets[st.next]
        cat = self.catalogs[st.plan.store_id]
        path, query = _page(obs)
        et = t.event_type
        if et == "product_viewed":
            return self._to_product(st, cat, obs, t.product_id, final=True)
        if et == "collection_viewed":
            return self._to_collection(obs, t.category, final=True)
        if et == "search_submitted":
            return self._search(obs, t.query, final=True)
        if et == "product_added_to_cart":
            if obs.kind == "product" and path[-1:] == [t.product_id]:
                qty = _find(obs, role="spinbutton", name="Quantity")
                if qty is not None and qty.value != str(t.quantity):
                    return format_action("fill", qty.bid, str(t.quantity)), False
                button = _find(obs, role="button", name="Add to cart")
                if button is not None:
                    return format_action("click", button.bid), True
            return self._to_product(st, cat, obs, t.product_id, final=False)
        if et == "product_removed_from_cart":
            if obs.kind == "cart":
                title = cat.by_id[t.product_id].title
                left = st.cart.get(t.product_id, 0) - t.quantity
                if left <= 0:
                    button = _find(obs, role="button", name=f"Remove {title}")
                    if button is not None:
                        return format_action("click", button.bid), True
                else:
                    qty = _find(obs, role="spinbutton", name=f"Quantity of {title}")
                    if qty is not None and qty.value != str(left):
                        return format_action("fill", qty.bid, str(left)), False
                    button = _find(obs, role="button", name=f"Update {title}")
                    if button is not None:
                        return format_action("click", button.bid), True
            return self._to_cart(obs, final=False)
        if et == "cart_viewed":
            return self._to_cart(obs, final=True)
        if et == "checkout_started":
            if obs.kind == "cart":
                link = _find(obs, role="link", name="Proceed to checkout")
                if link is not None:
                    return format_action("click", link.bid), True
            return self._to_cart(obs, final=False)
        if et == "checkout_completed":
            if obs.kind == "checkout":
                form = dict(CHECKOUT_FORM, Email=f"{_slug(st.plan.buyer_id)}@example.com")
                for name, value in form.items():
                    field = _find(obs, name=name, editable=True)
                    if field is not None and field.value != value:
                        return format_action("fill", field.bid, value), False
                button = _find(obs, role="button", name="Place order")
                if button is not None:
                    return format_action("click", button.bid), True
            if obs.kind == "cart":
                link = _find(obs, role="link", name="Proceed to checkout")
                if link is not None:
                    return format_action("click", link.bid), False
            return self._to_cart(obs, final=False)
        raise ValueError(f"no planner rule for target {et!r}")

    def _to_product(
        self, st: _State, cat: StoreCatalog, obs: Observation, pid: str, final: bool
    ) -> tuple[str, bool]:
        product = cat.by_id[pid]
        path, query = _page(obs)
        on_it = obs.kind == "product" and path[-1:] == [pid]
        link = None if on_it else next((e for e in obs.elements if e.product_id == pid), None)
        if link is not None:
            return format_action("click", link.bid), final
        # Drill into a deeper category of the product (breadcrumbs, subcollections).
        best, depth = None, 0
        for e in obs.elements:
            c = _collection_of(e)
            if c and (product.category == c or product.category.startswith(c + ".")):
                here = obs.kind == "collection" and path[-1:] == [c]
                d = c.count(".") + 1
                if not here and d > depth and self._findable(cat, c, pid):
                    best, depth = e, d
        current = path[-1] if obs.kind == "collection" and path else None
        if best is not None and (current is None or depth > current.count(".") + 1):
            return format_action("click", best.bid), False
        listed = (
            obs.kind == "collection"
            and current is not None
            and (product.category == current or product.category.startswith(current + "."))
        )
        listed = listed or (obs.kind == "search" and product in cat.search(query.get("q", "")))
        nxt = _find(obs, role="link", name="Next page")
        if listed and nxt is not None and st.listing_pages < self.max_pages:
            st.listing_pages += 1
            return format_action("click", nxt.bid), False
        st.listing_pages = 0
        return self._search(obs, product.title, final=False)

    def _findable(self, cat: StoreCatalog, collection: str, pid: str) -> bool:
        rank = next(i for i, p in enumerate(cat.collections[collection]) if p.product_id == pid)
        return rank < PAGE_SIZE * (self.max_pages + 1)

    def _to_collection(self, obs: Observation, category: str, final: bool) -> tuple[str, bool]:
        best, depth = None, 0
        for e in obs.elements:
            c = _collection_of(e)
            if c == category:
                return format_action("click", e.bid), final
            if c and category.startswith(c + ".") and c.count(".") + 1 > depth:
                best, depth = e, c.count(".") + 1
        if best is not None:
            return format_action("click", best.bid), False
        return self._home(obs)

    def _search(self, obs: Observation, text: str, final: bool) -> tuple[str, bool]:
        box = _find(obs, role="searchbox")
        if box is None:
            return self._home(obs)
        if box.value != text:
            return format_action("fill", box.bid, text), False
        return format_action("press", box.bid, "Enter"), final

    def _to_cart(self, obs: Observation, final: bool) -> tuple[str, bool]:
        link = next(
            (e for e in obs.elements if e.role == "link" and e.name.startswith("Cart (")), None
        )
        if link is None:
            return self._home(obs)
        return format_action("click", link.bid), final

    def _home(self, obs: Observation) -> tuple[str, bool]:
        for e in obs.elements:
            if e.role == "link" and urlsplit(e.href).path.count("/") == 3 and e.href.endswith("/"):
                return format_action("click", e.bid), False
        return format_action("go_back"), False


def _find(
    obs: Observation, role: str | None = None, name: str | None = None, editable: bool = False
) -> Element | None:
    for e in obs.elements:
        if role is not None and e.role != role:
            continue
        if name is not None and e.name != name:
            continue
        if editable and e.value is None:
            continue
        return e
    return None


def _collection_of(e: Element) -> str | None:
    if e.role != "link" or "/c/" not in e.href:
        return None
    return unquote(urlsplit(e.href).path.split("/c/", 1)[1])


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())[:32] or "buyer"
