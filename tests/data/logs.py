"""The three kinds of log of issue 11 (tests/fixtures/logs, made by make_logs.py) and the
mappings a user writes for them (the README's "Bringing your own data" shows the same)."""

import os

LOGS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "logs")
REES46_NOHEADER = os.path.join(LOGS, "rees46_noheader.csv")
SESSIONS = os.path.join(LOGS, "sessions_kind_action.csv")
CLICKS = os.path.join(LOGS, "clicks_fractional.csv")

REES46_COLUMNS = ["event_time", "event_type", "product_id", "category_id", "category_code",
                  "brand", "price", "user_id", "user_session"]
# No has_header: decided from the data (the first line is a row, not the column names).
HEADERLESS = dict(
    column_names=REES46_COLUMNS,
    columns=dict(buyer_id="user_id", session_id="user_session", event_time="event_time",
                 product_id="product_id", category=["category_code", "category_id"],
                 brand="brand", price="price"),
    event_column="event_type",
    events=dict(view="product_viewed", cart="product_added_to_cart",
                remove_from_cart="product_removed_from_cart", purchase="checkout_completed"))

TWO_COLUMN = dict(
    columns=dict(buyer_id="session_id_hash", session_id="session_id_hash",
                 event_time="server_timestamp_epoch_ms", product_id="product_sku_hash"),
    time_format="epoch_ms",
    event_rules=[
        {"when": {"event_type": "pageview"}, "type": "page_viewed"},
        {"when": {"event_type": "event", "product_action": "detail"}, "type": "product_viewed"},
        {"when": {"event_type": "event", "product_action": "add"}, "type": "product_added_to_cart"},
        {"when": {"event_type": "event", "product_action": "remove"},
         "type": "product_removed_from_cart"},
        {"when": {"event_type": "event", "product_action": "purchase"},
         "type": "checkout_completed"},
    ])

CLICK_LOG = dict(columns=dict(buyer_id="user", event_time="ts", product_id="item"),
                 constant_event="product_viewed", time_format="epoch_s")
