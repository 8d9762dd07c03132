"""Ingest mechanics: input order within an instant, pseudonymisation, accounting."""

import os

import polars as pl

from simpersona_jax.data.ingest import ingest, pseudonymize

HEADER = "store_id,buyer_id,session_id,event_time,event_type,product_id,price,quantity\n"


def _write(tmp_path, rows):
    path = tmp_path / "canon.csv"
    path.write_text(HEADER + "".join(rows))
    return str(path)


def test_same_instant_events_keep_input_order(tmp_path):
    rows = [f"s,b,x,2026-01-01T00:00:00Z,checkout_completed,p{i},1.0,1\n" for i in (9, 3, 7, 1)]
    ingest([_write(tmp_path, rows)], str(tmp_path / "out"), buckets=1)
    ev = pl.read_parquet(str(tmp_path / "out" / "events" / "**" / "*.parquet"))
    assert ev["product_id"].to_list() == ["p9", "p3", "p7", "p1"]


def test_pseudonymize_is_salted_and_stable(tmp_path):
    ids = pl.Series(["u1", "u2", "u1"])
    a, b = pseudonymize(ids, "salt"), pseudonymize(ids, "pepper")
    assert a[0] == a[2] != a[1] and a[0] != b[0] and len(a[0]) == 16
    rows = [f"s,u{i},x{i},2026-01-01T00:00:0{i}Z,product_viewed,p,1.0,\n" for i in range(3)]
    report = ingest([_write(tmp_path, rows)], str(tmp_path / "out"), pseudonymize_salt="salt")
    ev = pl.read_parquet(str(tmp_path / "out" / "events" / "**" / "*.parquet"))
    assert report["buyers"] == 3
    assert set(ev["buyer_id"]) == set(pseudonymize(pl.Series(["u0", "u1", "u2"]), "salt"))


def test_report_accounts_for_every_row_per_file(tmp_path):
    (tmp_path / "a").mkdir()
    good = "s,b,x,2026-01-01T00:00:00Z,product_viewed,p,1.0,\n"
    (tmp_path / "a" / "1.csv").write_text(
        HEADER + good + good + "s,,x,2026-01-01T00:00:00Z,page_viewed,,,\n"
    )
    (tmp_path / "a" / "2.csv").write_text(HEADER + good.replace(",b,", ",c,"))
    report = ingest([str(tmp_path / "a")], str(tmp_path / "out"))
    assert report["read_per_file"] == {
        str(tmp_path / "a" / "1.csv"): 3,
        str(tmp_path / "a" / "2.csv"): 1,
    }
    assert report["quarantined_by_reason"] == {"duplicate": 1, "missing_buyer_id": 1}
    assert report["read"] == report["kept"] + report["quarantined"] == 4
    q = pl.read_parquet(str(tmp_path / "out" / "quarantine" / "*.parquet"))
    dup = q.filter(pl.col("reason") == "duplicate").row(0, named=True)
    assert (os.path.basename(dup["_file"]), dup["_row"]) == ("1.csv", 2)  # the second copy


def test_duplicate_mask_finds_non_adjacent_repeats_only():
    from simpersona_jax.data import schema
    from simpersona_jax.data.ingest import duplicate_mask

    ids = ["a", "b", "a", "c", "b", None]
    frame = pl.DataFrame({"buyer_id": ids, "product_id": ["p", "p", "p", "p", "p", None]}).lazy()
    frame = schema.conform(frame).collect()
    assert duplicate_mask(frame).to_list() == [False, False, True, False, True, False]


def test_buckets_span_stores_and_outputs_stay_per_store(tmp_path):
    # The same buyer id in two stores is two buyers; one bucket holds both stores' rows.
    rows = [
        f"{s},b1,x,2026-01-01T00:00:0{i}Z,product_viewed,p,1.0,\n"
        for i, s in enumerate(["s1", "s2", "s1", "s/3"])
    ]
    report = ingest([_write(tmp_path, rows)], str(tmp_path / "out"), buckets=1)
    assert (report["kept"], report["buyers"], report["sessions"]) == (4, 3, 3)
    assert report["stores"] == ["s/3", "s1", "s2"]
    events = tmp_path / "out" / "events"
    assert sorted(os.listdir(events)) == ["store_id=s%2F3", "store_id=s1", "store_id=s2"]
    s1 = pl.read_parquet(str(events / "store_id=s1" / "bucket=0" / "part-0.parquet"))
    assert s1["store_id"].to_list() == ["s1", "s1"]
