"""Event-by-event simulation of one synthetic buyer's sessions on a store.

Sessions follow paths the storefront allows, so the browser replay can reproduce them:
a product view is reached from a collection page listing its category, from a search whose query
is a word of the product's title, from the previous product's related block (same category), or
by landing on it; cart changes happen on a product page (add) or the cart page (remove); checkout
starts from the cart and completes with one `checkout_completed` row per purchased line.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl

from simpersona_jax.synth.types import BuyerType

_LANDINGS = ("home", "collection", "search", "product")


@dataclasses.dataclass(frozen=True)
class StoreCatalog:
    """Arrays over one store's catalog, prepared once for fast sampling."""

    store_id: str
    product_id: np.ndarray  # [P] str
    category: np.ndarray  # [P] str
    brand: np.ndarray  # [P] str
    title: np.ndarray  # [P] str
    price: np.ndarray  # [P] float
    log_rel_price: np.ndarray  # [P] log(price / median price of its category)
    leaves: tuple[str, ...]
    products_by_leaf: tuple[np.ndarray, ...]

    @classmethod
    def from_frame(cls, store_id: str, catalog: pl.DataFrame) -> "StoreCatalog":
        category = catalog["category"].to_numpy()
        price = catalog["price"].to_numpy().astype(np.float64)
        leaves = tuple(sorted(set(category.tolist())))
        by_leaf = tuple(np.flatnonzero(category == leaf) for leaf in leaves)
        log_rel = np.zeros_like(price)
        for idx in by_leaf:
            log_rel[idx] = np.log(price[idx] / np.median(price[idx]))
        return cls(
            store_id,
            catalog["product_id"].to_numpy(),
            category,
            catalog["brand"].to_numpy(),
            catalog["title"].to_numpy(),
            price,
            log_rel,
            leaves,
            by_leaf,
        )


class EventSink:
    """Column lists in canonical order (store_id is constant per shard, added at the end)."""

    def __init__(self):
        self.cols: dict[str, list] = {
            c: []
            for c in (
                "buyer_id",
                "session_id",
                "event_time",
                "event_type",
                "product_id",
                "category",
                "brand",
                "title",
                "price",
                "quantity",
                "query",
            )
        }

    def add(
        self,
        buyer,
        session,
        t_us,
        etype,
        cat: StoreCatalog | None = None,
        p: int = -1,
        quantity=None,
        query=None,
        category=None,
    ):
        c = self.cols
        c["buyer_id"].append(buyer)
        c["session_id"].append(session)
        c["event_time"].append(t_us)
        c["event_type"].append(etype)
        if p >= 0:
            c["product_id"].append(cat.product_id[p])
            c["category"].append(cat.category[p])
            c["brand"].append(cat.brand[p])
            c["title"].append(cat.title[p])
            c["price"].append(float(cat.price[p]))
        else:
            for k in ("product_id", "brand", "title", "price"):
                c[k].append(None)
            c["category"].append(category)
        c["quantity"].append(quantity)
        c["query"].append(query)


def simulate_buyer(
    sink: EventSink,
    cat: StoreCatalog,
    buyer_type: BuyerType,
    buyer_id: str,
    rng: np.random.Generator,
    window_start_us: int,
    window_days: float,
) -> None:
    """Appends all events of one buyer's sessions in the window to `sink`."""
    t = buyer_type
    n_sessions = 1 + int(rng.poisson(max(t.sessions_mean - 1.0, 0.0)))
    n_cats = min(len(cat.leaves), 1 + int(rng.poisson(max(t.categories - 1.0, 0.0))))
    focus = rng.choice(len(cat.leaves), n_cats, replace=False)
    starts = np.sort(rng.uniform(0.0, window_days * 86400.0, n_sessions))
    viewed: list[int] = []
    for s, start in enumerate(starts):
        session = f"{buyer_id}-s{s}"
        clock = [window_start_us + int(start * 1e6)]

        def emit(etype, p=-1, **kw):
            sink.add(buyer_id, session, clock[0], etype, cat, p, **kw)
            clock[0] += int(rng.exponential(t.dwell_s) * 1e6) + 1_000_000

        def pick_product() -> int:
            if viewed and rng.random() < t.revisit:
                return viewed[int(rng.integers(0, len(viewed)))]
            idx = cat.products_by_leaf[int(focus[int(rng.integers(0, len(focus)))])]
            w = np.exp(-t.price_sensitivity * cat.log_rel_price[idx])
            return int(idx[int(rng.choice(len(idx), p=w / w.sum()))])

        landing = _LANDINGS[int(rng.choice(4, p=np.asarray(t.landing) / sum(t.landing)))]
        if rng.random() < t.bounce:  # the landing page only; a bounce never reaches a product
            if landing == "collection":
                emit("collection_viewed", category=cat.leaves[int(rng.choice(focus))])
            elif landing == "search":
                emit("search_submitted", query=cat.leaves[int(rng.choice(focus))].rsplit(".")[-1])
            else:
                emit("page_viewed")
            continue
        current = -1
        if landing == "home":
            emit("page_viewed")
        n_views = 1 + int(rng.poisson(max(t.views_mean - 1.0, 0.0)))
        cart: dict[int, int] = {}
        for v in range(n_views):
            p = pick_product()
            first = v == 0
            if first and landing == "product":
                pass
            elif (first and landing == "search") or (not first and rng.random() < t.search):
                words = cat.title[p].split()
                emit("search_submitted", query=words[int(rng.integers(0, len(words) - 1))].lower())
            elif current >= 0 and rng.random() < t.related:
                p = int(rng.choice(cat.products_by_leaf[cat.leaves.index(cat.category[current])]))
            else:
                emit("collection_viewed", category=cat.category[p])
            emit("product_viewed", p)
            current = p
            viewed.append(p)
            if rng.random() < t.add_to_cart:
                qty = 1 + int(rng.random() < 0.2)
                emit("product_added_to_cart", p, quantity=qty)
                cart[p] = cart.get(p, 0) + qty
        if not cart:
            continue
        emit("cart_viewed")
        for p in list(cart):
            if rng.random() < t.remove:
                emit("product_removed_from_cart", p, quantity=cart.pop(p))
        if cart and rng.random() < t.checkout:
            emit("checkout_started")
            if rng.random() < t.purchase:
                order_time = clock[0]
                for p, qty in cart.items():
                    clock[0] = order_time
                    sink.add(
                        buyer_id, session, order_time, "checkout_completed", cat, p, quantity=qty
                    )
                clock[0] = order_time + 1_000_000
