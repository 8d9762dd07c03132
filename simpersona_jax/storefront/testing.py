"""Small deterministic canonical events for tests and benchmarks of the storefront and driver."""

from __future__ import annotations

import datetime as dt

import polars as pl

from simpersona_jax.data.schema import SCHEMA

CATEGORIES = ("apparel.shoes.running", "apparel.shoes.boots", "apparel.tops", "home.kitchen.kettle")
BRANDS = ("acme", "nordic", None)
SHOP_A_PRODUCTS = [f"a{i:03d}" for i in range(60)]  # shop_a's product ids in tiny_events()


def tiny_events(n_products: int = 60, n_sessions: int = 6) -> pl.DataFrame:
    """Two stores: shop_a (n_products products, 4 categories, every 5th without a brand, titles
    only on even products) and shop_b (3 products); one session per buyer in shop_a viewing,
    carting and buying, so popularity differs between products."""
    t0 = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
    rows = []

    def add(
        store,
        buyer,
        session,
        k,
        etype,
        pid=None,
        cat=None,
        brand=None,
        title=None,
        price=None,
        quantity=None,
        query=None,
    ):
        rows.append(
            dict(
                store_id=store,
                buyer_id=buyer,
                session_id=session,
                event_time=t0 + dt.timedelta(seconds=k),
                event_type=etype,
                product_id=pid,
                category=cat,
                brand=brand,
                title=title,
                price=price,
                quantity=quantity,
                query=query,
            )
        )

    products = []
    for i in range(n_products):
        products.append(
            dict(
                pid=f"a{i:03d}",
                cat=CATEGORIES[i % len(CATEGORIES)],
                brand=BRANDS[i % 3] if i % 5 else None,
                title=f"Trail Runner {i}" if i % 2 == 0 else None,
                price=round(20.0 + 3.7 * i, 2),
            )
        )
    k = 0
    for p in products:  # every product viewed once by a catalog crawler buyer
        add(
            "shop_a",
            "crawler",
            "crawl",
            k,
            "product_viewed",
            p["pid"],
            p["cat"],
            p["brand"],
            p["title"],
            p["price"],
        )
        k += 1
    for s in range(n_sessions):
        buyer, session = f"buyer{s}", f"sess{s}"
        add("shop_a", buyer, session, k, "page_viewed")
        picks = [products[(s * 7 + j) % n_products] for j in range(3)]
        for p in picks:
            k += 1
            add(
                "shop_a",
                buyer,
                session,
                k,
                "product_viewed",
                p["pid"],
                p["cat"],
                p["brand"],
                p["title"],
                p["price"],
            )
        if s % 2 == 0:
            p = picks[-1]
            add(
                "shop_a",
                buyer,
                session,
                k + 1,
                "product_added_to_cart",
                p["pid"],
                p["cat"],
                p["brand"],
                p["title"],
                p["price"],
                quantity=1,
            )
            add(
                "shop_a",
                buyer,
                session,
                k + 2,
                "checkout_completed",
                p["pid"],
                p["cat"],
                p["brand"],
                p["title"],
                p["price"],
                quantity=1,
            )
            k += 2
    for i, (title, price) in enumerate((("Blue Kettle", 30.0), (None, None), ("Red Mug", 8.5))):
        add(
            "shop_b",
            "b_buyer",
            "b_sess",
            k + i,
            "product_viewed",
            f"b{i}",
            "home.kitchen",
            "acme",
            title,
            price,
        )
    return pl.DataFrame(rows, schema=SCHEMA)
