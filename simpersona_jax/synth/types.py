"""Hidden buyer types of the synthetic stores, with the behaviour parameters that define them.

Every synthetic buyer belongs to exactly one type; a store is a mixture over types (its own mix,
drawn per store). The types differ clearly in the behaviour the buyer vector measures (volume,
time, exploration, funnel depth, price position) but overlap realistically: every parameter is a
propensity, so a decisive buyer can still leave without buying and a window shopper can buy.

Parameters (all per session unless noted):
  sessions_mean    mean number of sessions per buyer in the window (1 + Poisson(mean - 1)).
  bounce           probability that a session is only its landing page.
  landing          probabilities of landing on (home, collection, search, product).
  views_mean       mean product views in a non-bounce session (1 + Poisson(mean - 1)).
  search           probability that a product is reached by a search rather than a collection.
  related          probability that a product is reached from the previous product's
                   "related products" block (no listing page in between).
  revisit          probability that a product view returns to an already viewed product.
  categories       mean number of leaf categories a buyer explores over the window.
  price_sensitivity  preference for cheap products: P(product) ~ (price / median)^(-s).
  add_to_cart      probability of adding a viewed product to the cart.
  remove           probability, per cart line at cart view, of removing it.
  checkout         probability of starting checkout when the cart is not empty.
  purchase         probability of completing a started checkout.
  dwell_s          mean seconds between two events in a session (exponential).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class BuyerType:
    name: str
    description: str
    sessions_mean: float
    bounce: float
    landing: tuple[float, float, float, float]  # home, collection, search, product
    views_mean: float
    search: float
    related: float
    revisit: float
    categories: float
    price_sensitivity: float
    add_to_cart: float
    remove: float
    checkout: float
    purchase: float
    dwell_s: float


BUYER_TYPES: tuple[BuyerType, ...] = (
    BuyerType(
        "bouncer",
        "lands, looks at one page, leaves",
        1.2,
        0.85,
        (0.6, 0.3, 0.0, 0.1),
        1.3,
        0.1,
        0.1,
        0.05,
        1.0,
        0.0,
        0.02,
        0.1,
        0.2,
        0.3,
        12.0,
    ),
    BuyerType(
        "window_shopper",
        "browses collections, rarely carts",
        2.2,
        0.15,
        (0.5, 0.4, 0.0, 0.1),
        5.0,
        0.1,
        0.3,
        0.15,
        3.0,
        0.0,
        0.03,
        0.3,
        0.15,
        0.3,
        35.0,
    ),
    BuyerType(
        "researcher",
        "many long sessions, compares and revisits, buys sometimes",
        4.5,
        0.05,
        (0.4, 0.3, 0.3, 0.0),
        9.0,
        0.45,
        0.35,
        0.4,
        2.0,
        0.3,
        0.06,
        0.25,
        0.35,
        0.55,
        70.0,
    ),
    BuyerType(
        "bargain_hunter",
        "views many cheap products, buys on price",
        3.0,
        0.1,
        (0.3, 0.5, 0.2, 0.0),
        7.0,
        0.3,
        0.2,
        0.2,
        4.0,
        2.0,
        0.14,
        0.2,
        0.4,
        0.55,
        25.0,
    ),
    BuyerType(
        "decisive_buyer",
        "few short sessions straight to the product and checkout",
        1.4,
        0.05,
        (0.2, 0.2, 0.2, 0.4),
        1.8,
        0.3,
        0.05,
        0.05,
        1.0,
        0.0,
        0.6,
        0.05,
        0.85,
        0.9,
        15.0,
    ),
    BuyerType(
        "loyal_repeat",
        "returns often, buys regularly, pays up",
        6.0,
        0.1,
        (0.7, 0.2, 0.1, 0.0),
        3.0,
        0.1,
        0.2,
        0.3,
        1.5,
        -0.8,
        0.3,
        0.05,
        0.7,
        0.85,
        20.0,
    ),
    BuyerType(
        "searcher",
        "uses search to find specific products",
        2.0,
        0.1,
        (0.2, 0.0, 0.8, 0.0),
        4.0,
        0.9,
        0.1,
        0.1,
        2.5,
        0.3,
        0.12,
        0.1,
        0.45,
        0.65,
        30.0,
    ),
    BuyerType(
        "cart_abandoner",
        "fills the cart, removes, rarely completes",
        2.5,
        0.05,
        (0.4, 0.4, 0.2, 0.0),
        5.0,
        0.2,
        0.2,
        0.2,
        2.5,
        0.5,
        0.4,
        0.4,
        0.5,
        0.08,
        30.0,
    ),
)
TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in BUYER_TYPES)


def type_by_name(name: str) -> BuyerType:
    for buyer_type in BUYER_TYPES:
        if buyer_type.name == name:
            return buyer_type
    raise KeyError(f"unknown buyer type {name!r}; known: {', '.join(TYPE_NAMES)}")
