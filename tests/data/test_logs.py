"""Issue 11: the three kinds of log a new user brings, ingested and turned into buyer vectors.

A header-less REES46 slice, a session log with epoch-ms times and the event type over two
columns, a click log with fractional epoch seconds and bare item ids (tests/fixtures/logs).
"""

import datetime as dt
import json
import os
import re

import numpy as np
import polars as pl
import pytest

from simpersona_jax.data.ingest import ingest
from simpersona_jax.features import store
from simpersona_jax.features.build import build_buyers

from .logs import CLICK_LOG, CLICKS, HEADERLESS, REES46_NOHEADER, SESSIONS, TWO_COLUMN

UTC = dt.timezone.utc


def _events(out):
    return pl.read_parquet(os.path.join(out, "events", "**", "*.parquet"), hive_partitioning=False)


def _quarantine(out):
    return pl.read_parquet(os.path.join(out, "quarantine", "*.parquet"))


@pytest.mark.parametrize("time_format", ["iso", "%Y-%m-%d %H:%M:%S UTC"])
def test_headerless_log_without_has_header_keeps_its_first_row(tmp_path, time_format):
    report = ingest(
        [REES46_NOHEADER],
        str(tmp_path),
        store_id="s",
        mapping=dict(HEADERLESS, time_format=time_format),
    )
    assert (report["read"], report["kept"], report["quarantined"]) == (600, 600, 0)
    assert (report["buyers"], report["sessions"]) == (232, 250)
    first = _events(str(tmp_path)).filter(pl.col("buyer_id") == "541312140").row(0, named=True)
    assert first["event_time"] == dt.datetime(2019, 10, 1, tzinfo=UTC)
    assert (first["product_id"], first["brand"]) == ("44600062", "shiseido")


@pytest.mark.parametrize(
    "first_line",
    [
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
        "time,type,product,cat_id,cat,brand,price,user,session",  # other names: time does not parse
    ],
)
def test_a_header_line_is_recognised_when_column_names_are_given(tmp_path, first_line):
    lines = open(REES46_NOHEADER).read().splitlines()[:3]
    path = tmp_path / "log.csv"
    path.write_text("\n".join([first_line, *lines]) + "\n")
    report = ingest([str(path)], str(tmp_path / "out"), store_id="s", mapping=HEADERLESS)
    assert (report["read"], report["kept"]) == (3, 3)


def test_two_column_event_type_keeps_page_views_and_product_actions(tmp_path):
    report = ingest([SESSIONS], str(tmp_path), store_id="s", mapping=TWO_COLUMN)
    assert (report["read"], report["kept"]) == (1409, 1405)
    assert report["quarantined_by_reason"] == {
        "duplicate": 1,
        "extra_fields": 1,
        "truncated_row": 1,
        "unknown_event_type": 1,
    }
    assert report["events_by_type"] == {
        "page_viewed": 317,
        "product_viewed": 865,
        "product_added_to_cart": 110,
        "product_removed_from_cart": 64,
        "checkout_completed": 49,
    }
    assert report["buyers"] == 317
    unknown = _quarantine(str(tmp_path)).filter(pl.col("reason") == "unknown_event_type")
    assert unknown["_raw_event"].to_list() == ["event_type=event|product_action=wishlist"]
    assert unknown["_row"].to_list() == [161]


def test_click_log_with_fractional_epoch_seconds(tmp_path):
    report = ingest([CLICKS], str(tmp_path), store_id="s", mapping=CLICK_LOG)
    assert (report["read"], report["kept"], report["buyers"]) == (1814, 1810, 200)
    # The one time in ms among seconds is ~51,800 years out: quarantined, not kept.
    assert report["quarantined_by_reason"] == {
        "duplicate": 1,
        "extra_fields": 1,
        "implausible_time": 1,
        "truncated_row": 1,
    }
    first = (
        _events(str(tmp_path))
        .filter(pl.col("buyer_id") == "u0")
        .sort("event_time")
        .row(0, named=True)
    )
    assert first["event_time"] == dt.datetime.fromtimestamp(1572936960.057, UTC)
    assert first["event_time"].microsecond == 57_000
    bad = _quarantine(str(tmp_path)).filter(pl.col("reason") == "implausible_time")
    assert bad["_raw_time"].to_list() == ["1572566400123"]


def test_blank_lines_are_not_rows_and_rows_keep_their_line_numbers(tmp_path):
    ingest([CLICKS], str(tmp_path), store_id="s", mapping=CLICK_LOG)
    q = _quarantine(str(tmp_path))
    # The blank line is line 72 of the file: not a row, but counted in the numbering, so that
    # the extra-field row on line 112 is data row 111 (line - header) and the cut-off last
    # line, line 1816, is data row 1815.
    assert q.filter(pl.col("reason") == "extra_fields")["_row"].to_list() == [111]
    assert q.filter(pl.col("reason") == "truncated_row")["_row"].to_list() == [1815]
    assert q.height == 4 and q["_row"].null_count() == 0


def _zero_share(buyers_dir):
    return float((store.load_arrays(buyers_dir)["x"] == 0).mean())


@pytest.mark.parametrize(
    "path, mapping, embedder",
    [
        (REES46_NOHEADER, HEADERLESS, "content"),
        (SESSIONS, TWO_COLUMN, "cooc"),
        (CLICKS, CLICK_LOG, "cooc"),
    ],
)
def test_buyer_vectors_use_content_where_it_exists_else_the_behavioural_embedder(
    tmp_path, path, mapping, embedder
):
    ingest([path], str(tmp_path), store_id="s", mapping=mapping)
    stats = build_buyers(str(tmp_path / "events"), str(tmp_path / "buyers"))
    assert stats["product_embedders"] == {"s": embedder}
    x = store.load_arrays(str(tmp_path / "buyers"))["x"]
    assert stats["zero_share"] == pytest.approx(float((x == 0).mean()))
    viewed = x[:, 16 : 16 + 128]
    has_view = x[:, 16 + 3 * 128] == 1
    # Every buyer with a most-viewed product has a non-zero embedding of it.
    assert (np.abs(viewed[has_view]).sum(1) > 0).mean() > 0.95


def test_id_only_buyers_who_viewed_the_same_items_are_closer_than_random_pairs(tmp_path):
    ingest([CLICKS], str(tmp_path), store_id="s", mapping=CLICK_LOG)
    build_buyers(str(tmp_path / "events"), str(tmp_path / "buyers"))
    arrays = store.load_arrays(str(tmp_path / "buyers"))
    meta = store.read_meta(str(tmp_path / "buyers"))
    items = (
        _events(str(tmp_path))
        .group_by("buyer_id")
        .agg(pl.col("product_id").unique())
        .join(meta.select("buyer_id", "row"), on="buyer_id")
        .sort("row")
    )
    sets = [set(v) for v in items["product_id"].to_list()]
    x = arrays["x"][:, 16 : 16 + 128]  # the most-viewed product's embedding
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    sim = x @ x.T
    n = len(sets)
    overlap = np.array(
        [[len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for j in range(n)] for i in range(n)]
    )
    off = ~np.eye(n, dtype=bool)
    similar = off & (overlap >= 0.2)
    assert similar.sum() > 50
    # Buyers sharing items are much closer than random pairs (content-only: all zero, equal).
    assert sim[similar].mean() > sim[off].mean() + 0.3


def test_the_readme_examples_are_the_mappings_tested_here():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("### Bringing your own data") : readme.index("### Buyer vectors")]
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    assert blocks == [HEADERLESS, TWO_COLUMN, CLICK_LOG]
