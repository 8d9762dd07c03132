"""Goal sentences for traces: one intent-neutral, one explicit-intent derived from the session.

Stage 1 of SFT trains on the neutral goal (the persona token must carry the behaviour); stage 2
on the explicit one, e.g. "Look for running shoes under $120, compare about 4 products, add one
to the cart, then leave without buying."
"""

from __future__ import annotations

import math

import polars as pl

from simpersona_jax.storefront.catalog import UNCATEGORIZED, StoreCatalog


def neutral_goal(store_id: str) -> str:
    return f"You are shopping at {store_id.replace('_', ' ').title()}. Browse as you normally would."


def _nice_ceiling(x: float) -> int:
    if x <= 0:
        return 0
    step = 10 ** max(0, int(math.log10(x)) - 1) * 5
    return int(math.ceil(x / step) * step)


def _count(n: int, one: str, many: str) -> str:
    return one if n == 1 else many.format(n=n)


def intent_goal(session: pl.DataFrame, cat: StoreCatalog) -> str:
    """A sentence stating what this session did, in a shopper's words."""
    rows = session.sort("event_time", maintain_order=True).to_dicts()
    views = [r["product_id"] for r in rows if r["event_type"] == "product_viewed" and r["product_id"]]
    products = [cat.by_id[p] for p in views if p in cat.by_id]
    leaves: list[str] = []
    for p in products:
        if p.category != UNCATEGORIZED:
            leaf = p.category.rsplit(".", 1)[-1].replace("_", " ")
            if leaf not in leaves:
                leaves.append(leaf)
    queries = [r["query"] for r in rows if r["event_type"] == "search_submitted" and r["query"]]
    adds = sum(r["event_type"] == "product_added_to_cart" for r in rows)
    removes = sum(r["event_type"] == "product_removed_from_cart" for r in rows)
    started = any(r["event_type"] == "checkout_started" for r in rows)
    bought = any(r["event_type"] == "checkout_completed" for r in rows)
    parts = []
    what = " and ".join(leaves[:2]) if leaves else "something that catches your eye"
    cap = _nice_ceiling(max((p.price for p in products), default=0.0))
    look = f'Search for "{queries[0]}"' if queries else "Look for " + what
    if queries and leaves:
        look += f" ({what})"
    parts.append(look + (f" under ${cap}" if cap else ""))
    distinct = len(set(views))
    if distinct > 1:
        parts.append(f"compare about {distinct} products")
    elif distinct == 0:
        parts.append("just look around without opening a product")
    if adds:
        parts.append(_count(adds, "add one to the cart", "add {n} items to the cart"))
    if removes:
        parts.append(_count(removes, "change your mind about one of them",
                            "change your mind about {n} of them"))
    if bought:
        parts.append("then buy" + (" it" if adds <= 1 else " them"))
    elif started:
        parts.append("start checkout but leave before paying")
    elif adds:
        parts.append("then leave without buying")
    elif distinct:
        parts.append("then leave without adding anything to the cart")
    sentence = ", ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."
