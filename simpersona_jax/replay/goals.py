"""Goal sentences for traces and goal-directed tasks: intent-neutral, or an explicit intent.

Stage 1 of SFT trains on the neutral goal (the persona token must carry the behaviour); stage 2
on the explicit one derived from the session. A session of one of the three goal-task shapes
gets that shape's sentence, the very templates the goal-directed evaluation
(`simpersona_jax.sim.goal_tasks`) gives the agent, so a stage-2 agent has been trained to follow
them:
  find_add    one product added, no checkout:   'Find "Trail Runner 4" and add it to the cart.'
  search_buy  a purchase after a search that matches what was bought:
              'Search for "boots" and buy one under $25.'
  browse      views within one category, nothing added:
              'Browse the Apparel > Shoes section and leave without adding anything to the cart.'
Other sessions get a general sentence, e.g. "Look for running shoes under $120, compare about 4
products, add one to the cart, then leave without buying." Each shape has a few wordings; which
one a session (or task) gets is fixed by a hash of its key. `parse_goal` reads a shaped sentence
back (the scripted goal solver uses it).
"""

from __future__ import annotations

import hashlib
import math
import os
import re

import polars as pl

from simpersona_jax.storefront.catalog import UNCATEGORIZED, StoreCatalog
from simpersona_jax.storefront.pages import crumbs, label

GOAL_KINDS = ("find_add", "search_buy", "browse")
_TEMPLATES = {
    "find_add": (
        'Find "{title}" and add it to the cart.',
        'Look up "{title}" and put it in your cart.',
    ),
    "search_buy": (
        'Search for "{query}" and buy {what} under ${cap}.',
        'Use the search box to find "{query}", then buy {what} under ${cap}.',
    ),
    "browse": (
        "Browse the {section} section and leave without adding anything to the cart.",
        "Look around the {section} section, then leave without adding anything to the cart.",
    ),
}
_PARSE = {
    "find_add": re.compile(
        r'(?:Find|Look up) "(?P<title>.+)" and (?:add it to the|put it in '
        r"your) cart\."
    ),
    "search_buy": re.compile(
        r'(?:Search for|Use the search box to find) "(?P<query>.+)",? '
        r"(?:and|then) buy (?P<what>one|\d+ items) under \$(?P<cap>\d+)\."
    ),
    "browse": re.compile(
        r"(?:Browse|Look around) the (?P<section>.+) section,? (?:and|then) "
        r"leave without adding anything to the cart\."
    ),
}


def _variant(key: str, kind: str) -> str:
    h = hashlib.blake2b(f"{kind}/{key}".encode(), digest_size=4).digest()
    options = _TEMPLATES[kind]
    return options[int.from_bytes(h, "little") % len(options)]


def section_name(category: str) -> str:
    """A category path as the storefront shows it, from the top: "Apparel > Shoes > Running"."""
    return " > ".join(label(c) for c in crumbs(category))


def price_cap(price: float) -> int:
    """The smallest round amount strictly above `price` (steps of 1, 5, 50, 500 ...)."""
    if price < 0:
        raise ValueError(f"price must be >= 0, got {price}")
    step = max(1, 5 * 10 ** (int(math.log10(price)) - 1)) if price >= 1 else 1
    return int((math.floor(price / step) + 1) * step)


def find_and_add(title: str, key: str = "") -> str:
    return _variant(key, "find_add").format(title=title)


def search_and_buy(query: str, cap: int, n_items: int = 1, key: str = "") -> str:
    what = "one" if n_items == 1 else f"{n_items} items"
    return _variant(key, "search_buy").format(query=query, what=what, cap=cap)


def browse_and_leave(category: str, key: str = "") -> str:
    return _variant(key, "browse").format(section=section_name(category))


def parse_goal(goal: str) -> tuple[str, dict] | None:
    """(kind, fields) of a goal-task sentence (fields as named in the templates), else None."""
    for kind, pattern in _PARSE.items():
        m = pattern.fullmatch(goal)
        if m:
            return kind, m.groupdict()
    return None


def neutral_goal(store_id: str) -> str:
    return (
        f"You are shopping at {store_id.replace('_', ' ').title()}. Browse as you normally would."
    )


def _count(n: int, one: str, many: str) -> str:
    return one if n == 1 else many.format(n=n)


def _common_category(paths: list[str]) -> str:
    """The deepest category containing every path ("" when none does)."""
    if not paths or UNCATEGORIZED in paths:
        return ""
    return ".".join(os.path.commonprefix([p.split(".") for p in paths]))


def shaped_goal(rows: list[dict], cat: StoreCatalog) -> str | None:
    """The goal-task sentence for a session (event rows in time order) of one of the three
    shapes, else None."""

    def of(event_type: str) -> list[dict]:
        return [r for r in rows if r["event_type"] == event_type]

    key = f"{cat.store_id}/{rows[0]['session_id']}" if rows else cat.store_id
    added = list(dict.fromkeys(r["product_id"] for r in of("product_added_to_cart")))
    bought = list(dict.fromkeys(r["product_id"] for r in of("checkout_completed")))
    if bought:
        if not all(p in cat.by_id for p in bought):
            return None
        queries = [r["query"] for r in of("search_submitted") if r["query"]]
        for q in queries:  # the first search that matches something bought
            if {p.product_id for p in cat.search(q)} & set(bought):
                cap = price_cap(max(cat.by_id[p].price for p in bought))
                return search_and_buy(q, cap, len(bought), key)
        return None
    if of("checkout_started") or of("product_removed_from_cart"):
        return None
    if len(added) == 1 and added[0] in cat.by_id:
        return find_and_add(cat.by_id[added[0]].title, key)
    if added:
        return None
    seen = [
        cat.by_id[r["product_id"]].category
        for r in of("product_viewed")
        if r["product_id"] in cat.by_id
    ]
    seen += [r["category"] for r in of("collection_viewed") if r["category"]]
    category = _common_category(seen)
    if category in cat.collections:
        return browse_and_leave(category, key)
    return None


def intent_goal(session: pl.DataFrame, cat: StoreCatalog) -> str:
    """A sentence stating what this session did, in a shopper's words (a goal-task sentence
    when the session has one of the three shapes, see the module docstring)."""
    rows = session.sort("event_time", maintain_order=True).to_dicts()
    shaped = shaped_goal(rows, cat)
    if shaped is not None:
        return shaped
    views = [
        r["product_id"] for r in rows if r["event_type"] == "product_viewed" and r["product_id"]
    ]
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
    cap = price_cap(max(p.price for p in products)) if products else 0
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
        parts.append(
            _count(
                removes, "change your mind about one of them", "change your mind about {n} of them"
            )
        )
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
