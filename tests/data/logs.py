"""The three kinds of log of issue 11 (tests/fixtures/logs, made by make_logs.py) and the
mapping files a user writes for them (the README's "Bringing your own data" shows the same)."""

import json
import os

LOGS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "logs")
REES46_NOHEADER = os.path.join(LOGS, "rees46_noheader.csv")
SESSIONS = os.path.join(LOGS, "sessions_kind_action.csv")
CLICKS = os.path.join(LOGS, "clicks_fractional.csv")


def _mapping(log: str) -> dict:
    with open(log.removesuffix(".csv") + ".json") as f:
        return json.load(f)


HEADERLESS = _mapping(REES46_NOHEADER)  # column_names, no has_header: decided from the data
TWO_COLUMN = _mapping(SESSIONS)  # event_rules over event_type + product_action, epoch ms
CLICK_LOG = _mapping(CLICKS)  # ids only, fractional epoch seconds
