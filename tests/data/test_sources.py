"""Real public samples ingest with the counts their README states, and concrete values."""

import os

import polars as pl
import pytest

from simpersona_jax.data.ingest import ingest
from simpersona_jax.data.sources import detect


@pytest.fixture(scope="module")
def rees46(shared_datasets, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rees46"))
    report = ingest(
        [os.path.join(shared_datasets, "rees46", "2019-Oct-head.csv")],
        out,
        store_id="rees46",
        buckets=3,
    )
    return out, report


def _events(out):
    return pl.read_parquet(os.path.join(out, "events", "**", "*.parquet"), hive_partitioning=True)


def test_rees46_counts(rees46):
    _, r = rees46
    # 17,434 complete rows + 1 cut-off last line; 4,504 users, 5,066 sessions (dataset README).
    assert r["read"] == 17_435
    assert r["quarantined_by_reason"] == {"truncated_row": 1, "duplicate": 5}
    assert r["kept"] == 17_429
    # 5,066 distinct session ids, one of them used by two users (555463297, 555463292): sessions
    # belong to buyers, so the pipeline counts 5,067 buyer sessions.
    assert (r["buyers"], r["sessions"]) == (4_504, 5_067)
    # view 17,055 / cart 165 / purchase 214 in the file, minus 4 duplicate views, 1 duplicate cart.
    assert r["events_by_type"] == {
        "product_viewed": 17_051,
        "product_added_to_cart": 164,
        "checkout_completed": 214,
    }
    assert r["strata"] == {"A": 193, "C": 49, "D": 4_262}


def test_rees46_first_row_values(rees46):
    out, _ = rees46
    ev = _events(out).filter(pl.col("buyer_id") == "541312140")
    row = ev.sort("event_time").row(0, named=True)
    assert row["event_type"] == "product_viewed"
    assert row["product_id"] == "44600062"
    assert row["brand"] == "shiseido"
    assert row["price"] == pytest.approx(35.79)
    assert row["session_id"] == "72d76fde-8bb3-4e00-8c23-a032dfed738c"
    assert row["event_time"].isoformat() == "2019-10-01T00:00:00+00:00"
    # category_code is empty on that row, so the numeric category id stands in.
    assert row["category"] == "2103807459595387724"


def test_diginetica_views_purchases_and_categories(shared_datasets, tmp_path):
    report = ingest([os.path.join(shared_datasets, "diginetica")], str(tmp_path), store_id="dig")
    assert report["read_per_file"] == {
        os.path.join(shared_datasets, "diginetica", "train-item-views-sample.csv"): 12_391,
        os.path.join(shared_datasets, "diginetica", "train-purchases.csv"): 3_000,
    }
    assert report["read"] == report["kept"] + report["quarantined"]
    assert set(report["quarantined_by_reason"]) == {"duplicate"}
    ev = _events(str(tmp_path))
    first = ev.filter((pl.col("session_id") == "1") & (pl.col("product_id") == "81766")).row(
        0, named=True
    )
    # Anonymous user -> one buyer per session; time = eventdate + timeframe ms; category joined.
    assert first["buyer_id"] == "anon-session-1"
    assert first["event_time"].isoformat() == "2016-05-09T00:08:46.309000+00:00"
    cats = pl.read_csv(
        os.path.join(shared_datasets, "diginetica", "product-categories.csv"),
        separator=";",
        infer_schema=False,
    )
    assert first["category"] == cats.filter(pl.col("itemId") == "81766")["categoryId"][0]
    bought = ev.filter(
        (pl.col("session_id") == "150") & (pl.col("event_type") == "checkout_completed")
    )
    assert bought["buyer_id"].to_list() == ["18278"] and bought["product_id"].to_list() == ["25911"]


def test_otto_sessions_become_buyers_cut_at_inactivity(shared_datasets, tmp_path):
    report = ingest(
        [os.path.join(shared_datasets, "otto", "train-sample.jsonl")],
        str(tmp_path),
        store_id="otto",
    )
    assert (report["read"], report["kept"], report["buyers"]) == (862, 862, 20)
    ev = _events(str(tmp_path)).filter(pl.col("buyer_id") == "0").sort("event_time")
    assert ev["product_id"][0] == "1517085"
    assert ev["session_id"][0] == "0#0"
    gaps = ev["event_time"].diff().dt.total_seconds()[1:]
    new_session = (ev["session_id"] != ev["session_id"].shift(1))[1:]
    assert ((gaps > 1800) == new_session).all()


def test_detect_by_header(shared_datasets):
    assert detect(os.path.join(shared_datasets, "rees46", "2019-Oct-head.csv")).name == "rees46"
    assert (
        detect(os.path.join(shared_datasets, "diginetica", "train-purchases.csv")).name
        == "diginetica_purchases"
    )
    assert (
        detect(os.path.join(shared_datasets, "diginetica", "product-categories.csv"))
        == "diginetica_categories"
    )


def test_retailrocket_fixture(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433221400000,257597,addtocart,355908,\n"
        "1433221500000,257597,transaction,355908,4000\n"
        "1433230000000,257597,view,248676,\n"
        "1433224214164,992329,view,248676,\n"
    )
    report = ingest([str(path)], str(tmp_path / "out"), store_id="rr")
    assert (report["read"], report["kept"], report["buyers"], report["sessions"]) == (5, 5, 2, 3)
    assert report["strata"] == {"A": 1, "D": 1}
    ev = _events(str(tmp_path / "out")).filter(pl.col("buyer_id") == "257597").sort("event_time")
    assert ev["session_id"].to_list() == ["257597#0"] * 3 + ["257597#1"]
    assert ev["quantity"].to_list() == [None, 1, 1, None]


def test_retailrocket_items_get_their_category_paths(tmp_path):
    """item_properties (weekly snapshots: the latest categoryid wins; other properties are
    hashed and unused) and category_tree among the inputs give each item its path from the root."""
    (tmp_path / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,1,view,10,\n"
        "1433221400000,1,view,11,\n"
        "1433221500000,2,view,12,\n"
    )
    (tmp_path / "item_properties_part1.csv").write_text(
        "timestamp,itemid,property,value\n"
        "1435460400000,10,categoryid,7\n"
        "1431226800000,10,categoryid,5\n"  # older snapshot: superseded
        "1433041200000,10,790,n5400.000\n"
        "1433041200000,11,categoryid,5\n"
    )
    (tmp_path / "category_tree.csv").write_text("categoryid,parentid\n7,5\n5,1\n1,\n")
    report = ingest([str(tmp_path)], str(tmp_path / "out"), store_id="rr")
    assert (report["read"], report["kept"]) == (3, 3)  # item tables are not events
    cats = dict(_events(str(tmp_path / "out")).select("product_id", "category").iter_rows())
    assert cats == {"10": "1.5.7", "11": "1.5", "12": None}


def test_compressed_jsonl(shared_datasets, tmp_path):
    import gzip

    raw = open(os.path.join(shared_datasets, "otto", "train-sample.jsonl"), "rb").read()
    with gzip.open(tmp_path / "otto.jsonl.gz", "wb") as f:
        f.write(raw)
    report = ingest([str(tmp_path / "otto.jsonl.gz")], str(tmp_path / "out"), store_id="otto")
    assert (report["read"], report["kept"], report["buyers"]) == (862, 862, 20)


def test_a_cycle_in_the_category_tree_is_a_clear_error(tmp_path):
    from simpersona_jax.data.sources import items

    (tmp_path / "category_tree.csv").write_text("categoryid,parentid\n1,2\n2,1\n3,\n")
    with pytest.raises(ValueError, match="a cycle"):
        items.category_paths([str(tmp_path / "category_tree.csv")])
