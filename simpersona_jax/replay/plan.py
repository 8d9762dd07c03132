"""Turns one recorded session into a replay plan: where to land and the events to reproduce.

A plan is the session's events after the landing, minus `page_viewed` (the landing page is the
entry URL), as Targets, normalised so a storefront can reproduce them:
  * a purchase (a run of `checkout_completed` rows = one order) of products not in the replayed
    cart first adds them (REES46 "purchase" rows often have no cart event), and cart lines that
    the order does not contain are removed before checkout, so the order holds exactly the
    session's purchased products;
  * a removal of a product that is not in the cart makes the session unreplayable.
Unreplayable sessions raise Unreplayable(reason); reasons are counted by the caller.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote, urlencode

import polars as pl

from simpersona_jax.storefront.catalog import StoreCatalog

PRODUCT_EVENTS = (
    "product_viewed",
    "product_added_to_cart",
    "product_removed_from_cart",
    "cart_viewed",
    "checkout_started",
    "checkout_completed",
)
_COUNTED = ("product_added_to_cart", "product_removed_from_cart", "checkout_completed")


class Unreplayable(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Target:
    event_type: str
    product_id: str | None = None
    category: str | None = None
    query: str | None = None
    quantity: int | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    store_id: str
    buyer_id: str
    session_id: str
    start_path: str  # store-relative path the visit lands on, e.g. "p/123" or ""
    targets: tuple[Target, ...]
    landing: Target | None  # the event the landing page itself logs (consumed on arrival)


def _targets(rows: list[dict]) -> list[Target]:
    out = []
    for r in rows:
        if r["event_type"] == "page_viewed":
            continue
        counted = r["event_type"] in _COUNTED and r["quantity"] is not None
        out.append(
            Target(
                r["event_type"],
                r["product_id"],
                r["category"],
                r["query"],
                int(r["quantity"]) if counted else None,
            )
        )
    return out


def _normalise(targets: list[Target], cat: StoreCatalog) -> list[Target]:
    cart: dict[str, int] = {}
    out: list[Target] = []
    i = 0
    while i < len(targets):
        t = targets[i]
        if t.product_id is not None and t.product_id not in cat.by_id:
            raise Unreplayable("product_not_in_catalog", t.product_id)
        if t.event_type == "collection_viewed" and (t.category or "") not in cat.collections:
            raise Unreplayable("collection_not_in_catalog", str(t.category))
        if t.event_type == "search_submitted" and not (t.query or "").strip():
            i += 1
            continue
        if t.event_type in (
            "product_viewed",
            "collection_viewed",
            "search_submitted",
            "cart_viewed",
        ):
            out.append(t)
        elif t.event_type == "product_added_to_cart":
            q = max(1, min(t.quantity or 1, 99))
            cart[t.product_id] = cart.get(t.product_id, 0) + q
            out.append(dataclasses.replace(t, quantity=q))
        elif t.event_type == "product_removed_from_cart":
            if t.product_id not in cart:
                raise Unreplayable("remove_not_in_cart", t.product_id)
            q = min(t.quantity or cart[t.product_id], cart[t.product_id])
            cart[t.product_id] -= q
            if cart[t.product_id] == 0:
                del cart[t.product_id]
            out.append(dataclasses.replace(t, quantity=q))
        elif t.event_type == "checkout_started":
            if not cart:
                raise Unreplayable("checkout_with_empty_cart")
            out.append(t)
        elif t.event_type == "checkout_completed":
            order: dict[str, int] = {}
            while i < len(targets) and targets[i].event_type == "checkout_completed":
                pid = targets[i].product_id
                if pid is None:
                    raise Unreplayable("purchase_without_product")
                if pid not in cat.by_id:
                    raise Unreplayable("product_not_in_catalog", pid)
                order[pid] = order.get(pid, 0) + max(1, min(targets[i].quantity or 1, 99))
                i += 1
            for pid, q in order.items():
                if pid not in cart:
                    out.append(Target("product_added_to_cart", pid, quantity=q))
                    cart[pid] = q
            for pid in [p for p in cart if p not in order]:
                out.append(Target("product_removed_from_cart", pid, quantity=cart.pop(pid)))
            out += [Target("checkout_completed", pid, quantity=cart[pid]) for pid in cart]
            cart.clear()
            continue
        i += 1
    return out


def make_plan(session: pl.DataFrame, cat: StoreCatalog) -> Plan:
    """session: one session's canonical events (any order; sorted by event_time here)."""
    if session.height == 0:
        raise Unreplayable("empty_session")
    rows = session.sort("event_time", maintain_order=True).to_dicts()
    targets = _normalise(_targets(rows), cat)
    if not targets and rows[0]["event_type"] != "page_viewed":
        raise Unreplayable("nothing_to_replay")
    first = rows[0]["event_type"]
    landing, start = None, ""
    if targets and first != "page_viewed":
        t = targets[0]
        if t.event_type == "product_viewed":
            landing, start = t, f"p/{quote(t.product_id, safe='')}"
        elif t.event_type == "collection_viewed":
            landing, start = t, f"c/{quote(t.category, safe='')}"
        elif t.event_type == "search_submitted":
            landing, start = t, "search?" + urlencode({"q": t.query})
    if landing is not None:
        targets = targets[1:]
    r0 = rows[0]
    return Plan(r0["store_id"], r0["buyer_id"], r0["session_id"], start, tuple(targets), landing)


def expected_events(plan: Plan) -> list[tuple[str, str | None, int | None]]:
    """The product/cart/checkout events the storefront log must contain, in order."""
    ts = ([plan.landing] if plan.landing else []) + list(plan.targets)
    return [(t.event_type, t.product_id, t.quantity) for t in ts if t.event_type in PRODUCT_EVENTS]


def is_subsequence(expected: list[tuple], logged: list[tuple]) -> bool:
    """True when `expected` occurs in `logged` in order (quantities compared where known)."""
    it = iter(logged)
    for etype, pid, qty in expected:
        for letype, lpid, lqty in it:
            if letype == etype and (pid is None or lpid == pid) and (qty is None or lqty == qty):
                break
        else:
            return False
    return True
