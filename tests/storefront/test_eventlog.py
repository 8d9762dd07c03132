import os

import polars as pl
import pytest

from simpersona_jax.data.schema import SCHEMA
from simpersona_jax.storefront.eventlog import EventLog, read_log


def test_append_flush_read_exactly_once(tmp_path):
    log = EventLog(str(tmp_path), max_buffer=3)
    for i in range(7):
        log.append(
            "s1" if i % 2 else "s2", "b", "sess", "product_viewed", product_id=str(i), price=1.0
        )
    assert log.written == 6 and log.pending() == 1  # two automatic flushes of 3
    assert log.flush() == 1 and log.flush() == 0
    frame = read_log(str(tmp_path))
    assert frame.schema == pl.Schema(SCHEMA)
    assert sorted(frame["product_id"].to_list()) == [str(i) for i in range(7)]
    # Canonical hive layout; no temporary files left behind.
    files = [f for _, _, fs in os.walk(tmp_path) for f in fs]
    assert all(f.endswith(".parquet") for f in files)
    assert os.path.isdir(tmp_path / "store_id=s1" / "bucket=0")
    lazy = pl.scan_parquet(f"{tmp_path}/**/*.parquet", hive_partitioning=True).collect()
    assert lazy.height == 7


def test_two_writers_share_a_directory(tmp_path):
    a, b = EventLog(str(tmp_path)), EventLog(str(tmp_path))
    a.append("s", "b1", "x", "page_viewed")
    b.append("s", "b2", "y", "page_viewed")
    a.flush(), b.flush()
    assert sorted(read_log(str(tmp_path))["buyer_id"].to_list()) == ["b1", "b2"]


def test_unknown_event_type(tmp_path):
    with pytest.raises(ValueError, match="unknown event_type 'view'"):
        EventLog(str(tmp_path)).append("s", "b", "x", "view")


def test_empty_log(tmp_path):
    assert read_log(str(tmp_path)).height == 0


def test_buyer_pipeline_reads_the_log_unchanged(tmp_path):
    from simpersona_jax.data.sources import load_events

    log = EventLog(str(tmp_path))
    log.append("shop", "b1", "s1", "page_viewed")
    log.append(
        "shop",
        "b1",
        "s1",
        "product_added_to_cart",
        product_id="p1",
        category="a.b",
        brand="acme",
        title="T",
        price=9.5,
        quantity=2,
    )
    log.flush()
    frame = load_events([str(tmp_path)]).collect().sort("event_time")
    assert frame["event_type"].cast(pl.String).to_list() == ["page_viewed", "product_added_to_cart"]
    assert frame.row(1, named=True)["quantity"] == 2 and frame.row(1, named=True)["price"] == 9.5
