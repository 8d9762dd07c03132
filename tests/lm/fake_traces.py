"""Synthetic agent traces in the TRACE_SCHEMA layout (interfaces.md), for tests before real ones exist.

Observations follow rollout/observe.py's compact text; actions use the BrowserGym syntax. The
behaviour depends on the persona (persona 0 buys, persona 1 browses and leaves), so a model
that reads the persona token can do better than one that does not.
"""

from __future__ import annotations

import numpy as np

from simpersona_jax.replay.schema import TraceWriter

PRODUCTS = [
    ("p%03d" % i, t, 10 + 7 * i)
    for i, t in enumerate(
        [
            "Trail Runner",
            "Canvas Tote",
            "Wool Beanie",
            "Rain Jacket",
            "Linen Shirt",
            "Desk Lamp",
            "Water Bottle",
            "Yoga Mat",
            "Coffee Mug",
            "Phone Case",
            "Sun Hat",
            "Hiking Socks",
        ]
    )
]


def _collection(rng, cart):
    items = [PRODUCTS[i] for i in rng.choice(len(PRODUCTS), 4, replace=False)]
    lines = [
        "page: collection /collections/all",
        "heading: All products",
        f"cart: {cart}",
        '[1] link "Home"',
        '[2] searchbox "Search"',
        '[3] link "Cart"',
    ]
    lines += [f'[{4 + j}] link "{t} ${p:.2f}"' for j, (_, t, p) in enumerate(items)]
    return "\n".join(lines), items


def _product(item, cart):
    pid, title, price = item
    return "\n".join(
        [
            f"page: product /products/{pid}",
            f"title: {title}",
            f"price: ${price:.2f}",
            f"cart: {cart}",
            '[1] link "Home"',
            '[2] link "Cart"',
            '[3] spinbutton "Quantity" value="1"',
            '[4] button "Add to cart"',
        ]
    )


def make_rows(
    n_sessions: int, num_personas: int = 2, seed: int = 0, stores=("s1", "s2")
) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        persona = int(rng.integers(num_personas))
        store = stores[s % len(stores)]
        buys = persona % 2 == 0
        goal_n = "Browse the store as you usually would."
        goal_i = (
            "Find something you like and add it to your cart."
            if buys
            else "Look around without buying."
        )
        history: list[str] = []
        cart = 0
        steps = []
        obs, items = _collection(rng, cart)
        j = int(rng.integers(len(items)))
        steps.append((obs, f'click("{4 + j}")'))
        obs = _product(items[j], cart)
        if buys:
            steps.append((obs, 'click("4")'))
            cart += 1
            obs = _product(items[j], cart).replace("cart: 0", "cart: 1") + "\nnotice: Added to cart"
            steps.append((obs, "stop()"))
        else:
            steps.append((obs, "go_back()"))
            obs, _ = _collection(rng, cart)
            steps.append((obs, "stop()"))
        for k, (o, a) in enumerate(steps):
            rows.append(
                dict(
                    store_id=store,
                    buyer_id=f"b{s}",
                    session_id=f"sess{s}",
                    persona=persona,
                    step=k,
                    goal_neutral=goal_n,
                    goal_intent=goal_i,
                    history=list(history[-5:]),
                    observation=o,
                    action=a,
                )
            )
            history.append(a)
    return rows


def write_traces(
    out_dir: str,
    n_sessions: int = 60,
    num_personas: int = 2,
    seed: int = 0,
    rows_per_shard: int = 100,
) -> str:
    writer = TraceWriter(out_dir, rows_per_shard=rows_per_shard)
    writer.add(make_rows(n_sessions, num_personas, seed))
    writer.close()
    return out_dir
