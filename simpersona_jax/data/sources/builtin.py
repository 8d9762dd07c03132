"""Built-in sources as declarative mappings, identified by their header (see mapping.py).

- rees46: `event_time,event_type,product_id,category_id,category_code,brand,price,user_id,
  user_session`; view/cart/remove_from_cart/purchase; the source's sessions are kept.
- retailrocket: `timestamp,visitorid,event,itemid,transactionid` (ms); view/addtocart/
  transaction; no sessions in the source (cut at inactivity); item_properties*.csv and
  category_tree.csv among the inputs give the items their category paths (items.py).
- diginetica views (`session_id;user_id;item_id;timeframe;eventdate`, or the original camelCase)
  and purchases (`sessionId;userId;timeframe;eventdate;ordernumber;itemId`): time is the date plus
  `timeframe` ms; anonymous (`NA`) users become one buyer per session; the item -> category file
  (`itemId;categoryId`) is joined when given among the inputs (items.py).
- otto: JSONL sessions `{"session", "events": [{"aid", "ts" (ms), "type"}]}` (otto.py); an OTTO
  session spans weeks, so it is the buyer and sessions are cut at inactivity.
- canonical: any file with the canonical column names (Parquet or CSV).
"""

from __future__ import annotations

import polars as pl

from simpersona_jax.data import schema
from simpersona_jax.data.sources.mapping import Mapping

_CART_PURCHASE_QTY = 1

REES46 = Mapping(
    name="rees46",
    signature=("event_time", "event_type", "product_id", "category_id", "user_id", "user_session"),
    columns=dict(
        buyer_id="user_id",
        session_id="user_session",
        event_time="event_time",
        product_id="product_id",
        category=["category_code", "category_id"],
        brand="brand",
        price="price",
    ),
    optional=("brand", "price"),
    event_column="event_type",
    events=dict(
        view="product_viewed",
        cart="product_added_to_cart",
        remove_from_cart="product_removed_from_cart",
        purchase="checkout_completed",
    ),
    time_format="%Y-%m-%d %H:%M:%S UTC",
    default_quantity=_CART_PURCHASE_QTY,
)

RETAILROCKET = Mapping(
    name="retailrocket",
    signature=("timestamp", "visitorid", "event", "itemid"),
    columns=dict(buyer_id="visitorid", event_time="timestamp", product_id="itemid"),
    event_column="event",
    events=dict(
        view="product_viewed", addtocart="product_added_to_cart", transaction="checkout_completed"
    ),
    time_format="epoch_ms",
    default_quantity=_CART_PURCHASE_QTY,
)


def _diginetica(
    name: str, session: str, user: str, item: str, event: str, signature: tuple[str, ...]
) -> Mapping:
    return Mapping(
        name=name,
        signature=signature,
        separator=";",
        columns=dict(
            buyer_id=pl.coalesce(
                pl.col(user).cast(pl.String),
                pl.lit("anon-session-") + pl.col(session).cast(pl.String),
            ),
            session_id=session,
            event_time="eventdate",
            product_id=item,
        ),
        constant_event=event,
        time_format="%Y-%m-%d",
        time_offset_ms="timeframe",
        default_quantity=_CART_PURCHASE_QTY,
    )


DIGINETICA_VIEWS = _diginetica(
    "diginetica_views",
    "session_id",
    "user_id",
    "item_id",
    "product_viewed",
    ("session_id", "user_id", "item_id", "timeframe"),
)
DIGINETICA_VIEWS_ORIGINAL = _diginetica(
    "diginetica_views",
    "sessionId",
    "userId",
    "itemId",
    "product_viewed",
    ("sessionId", "userId", "itemId", "timeframe", "eventdate"),
)
DIGINETICA_PURCHASES = _diginetica(
    "diginetica_purchases",
    "sessionId",
    "userId",
    "itemId",
    "checkout_completed",
    ("sessionId", "userId", "timeframe", "ordernumber", "itemId"),
)

CANONICAL = Mapping(
    name="canonical",
    signature=tuple(schema.REQUIRED),
    columns={c: c for c in schema.COLUMNS},
    event_column="event_type",
    events={e: e for e in schema.EVENT_TYPES},
    time_format="iso",
    optional=tuple(c for c in schema.COLUMNS if c not in schema.REQUIRED),
)

# Order matters: more specific signatures first (the purchases file also has "timeframe").
MAPPINGS: tuple[Mapping, ...] = (
    REES46,
    RETAILROCKET,
    DIGINETICA_PURCHASES,
    DIGINETICA_VIEWS,
    DIGINETICA_VIEWS_ORIGINAL,
    CANONICAL,
)
BY_NAME = {m.name: m for m in MAPPINGS}
