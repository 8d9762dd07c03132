"""A corpus of malformed inputs: each gets a clear error or exact quarantine counts."""

import gzip
import os

import polars as pl
import pytest
import zstandard

from simpersona_jax.data.ingest import ingest
from simpersona_jax.data.sources import Mapping, SchemaError

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)
GOOD = "2019-10-01 00:00:0{i} UTC,view,{i},1,a.b,x,10.00,u{i},s{i}\n"


def _rees(tmp_path, *rows, name="in.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "".join(GOOD.format(i=i) for i in range(3)) + "".join(rows))
    return str(path)


def _run(tmp_path, paths, **kw):
    kw.setdefault("store_id", "s")
    return ingest(paths if isinstance(paths, list) else [paths], str(tmp_path / "out"), **kw)


def _quarantine(tmp_path):
    return pl.read_parquet(str(tmp_path / "out" / "quarantine" / "*.parquet"))


@pytest.mark.parametrize(
    "row, reason",
    [
        ("not-a-time,view,9,1,a.b,x,1.0,u9,s9\n", "unparseable_time"),
        ("2019-10-01 00:00:09 UTC,wishlist,9,1,a.b,x,1.0,u9,s9\n", "unknown_event_type"),
        ("2019-10-01 00:00:09 UTC,view,9,1,a.b,x,-3.5,u9,s9\n", "bad_price"),
        ("2019-10-01 00:00:09 UTC,view,9,1,a.b,x,NaN,u9,s9\n", "bad_price"),
        ("2019-10-01 00:00:09 UTC,view,9,1,a.b,x,12abc,u9,s9\n", "bad_price"),
        ("2019-10-01 00:00:09 UTC,view,9,1,a.b,x,1.0,,s9\n", "missing_buyer_id"),
        ("2019-10-01 00:00:09 UTC,view,,1,a.b,x,1.0,u9,s9\n", "missing_product"),
    ],
)
def test_row_problem_is_quarantined_with_reason_and_location(tmp_path, row, reason):
    path = _rees(tmp_path, row)
    report = _run(tmp_path, path)
    assert (report["read"], report["kept"]) == (4, 3)
    assert report["quarantined_by_reason"] == {reason: 1}
    q = _quarantine(tmp_path).row(0, named=True)
    assert (q["reason"], q["_file"], q["_row"]) == (reason, path, 4)


def test_exact_duplicates_keep_first_copy(tmp_path):
    dup = GOOD.format(i=1)
    report = _run(tmp_path, _rees(tmp_path, dup, dup))
    assert (report["read"], report["kept"], report["quarantined_by_reason"]) == (
        5,
        3,
        {"duplicate": 2},
    )


def test_truncated_last_line(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text(HEADER + GOOD.format(i=1) + "2019-10-01 00:00:02 UTC,view,2,1,a.b,x,10.00,u2")
    report = _run(tmp_path, str(path))
    assert report["quarantined_by_reason"] == {"truncated_row": 1} and report["kept"] == 1


def test_bad_quantity_in_canonical_csv(tmp_path):
    path = tmp_path / "canon.csv"
    path.write_text(
        "store_id,buyer_id,event_time,event_type,product_id,quantity\n"
        "s,b1,2026-01-01T00:00:00Z,product_added_to_cart,p1,0\n"
        "s,b1,2026-01-01T00:01:00Z,product_added_to_cart,p1,2\n"
    )
    report = _run(tmp_path, str(path))
    assert (report["kept"], report["quarantined_by_reason"]) == (1, {"bad_quantity": 1})


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "nouser.csv"
    path.write_text(HEADER.replace(",user_id", ",uid") + GOOD.format(i=1))
    with pytest.raises(SchemaError, match=r"nouser\.csv.*user_id"):
        _run(tmp_path, str(path), source="rees46")


def test_unknown_header_fails_fast(tmp_path):
    path = tmp_path / "what.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(SchemaError, match=r"what\.csv.*cannot tell the source"):
        _run(tmp_path, str(path))


def test_wrong_time_format_for_whole_column_fails_fast(tmp_path):
    path = tmp_path / "iso.csv"
    path.write_text(HEADER + "2019/10/01T00:00,view,1,1,a.b,x,1.0,u1,s1\n" * 5)
    with pytest.raises(SchemaError, match=r"iso\.csv.*event_time.*2019/10/01T00:00"):
        _run(tmp_path, str(path))


def test_mistyped_parquet_column(tmp_path):
    path = tmp_path / "bad.parquet"
    pl.DataFrame(
        {
            "store_id": ["s"],
            "buyer_id": ["b"],
            "event_time": ["2026-01-01T00:00:00Z"],
            "event_type": ["product_viewed"],
            "price": ["ten"],
        }
    ).write_parquet(path)
    with pytest.raises(SchemaError, match=r"bad\.parquet.*'price'"):
        _run(tmp_path, str(path))


def test_source_without_store_needs_store_id(tmp_path):
    with pytest.raises(SchemaError, match="store_id"):
        _run(tmp_path, _rees(tmp_path), store_id=None)


def test_no_matching_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        _run(tmp_path, str(tmp_path / "nothing-here*.csv"))


def test_mapping_with_unknown_event_type_is_rejected():
    with pytest.raises(ValueError, match="unknown event types"):
        Mapping(
            name="m",
            columns=dict(buyer_id="u", event_time="t"),
            event_column="e",
            events={"v": "viewed_it"},
        )


def test_compressed_globbed_and_headerless_inputs(tmp_path):
    body = HEADER + "".join(GOOD.format(i=i) for i in range(4))
    with gzip.open(tmp_path / "a.csv.gz", "wt") as f:
        f.write(body)
    (tmp_path / "b.csv.zst").write_bytes(
        zstandard.ZstdCompressor().compress(
            (HEADER + "".join(GOOD.format(i=i) for i in range(4, 8))).encode()
        )
    )
    report = _run(tmp_path, str(tmp_path / "*.csv.*"))
    assert (report["read"], report["kept"], report["buyers"]) == (8, 8, 8)

    (tmp_path / "clicks.dat").write_text(
        "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,0\n"
    )
    mapping = dict(
        separator=",",
        has_header=False,
        column_names=["session", "ts", "item", "cat"],
        columns=dict(
            buyer_id="session",
            session_id="session",
            event_time="ts",
            product_id="item",
            category="cat",
        ),
        constant_event="product_viewed",
        time_format="iso",
    )
    report = ingest(
        [str(tmp_path / "clicks.dat")], str(tmp_path / "out2"), store_id="yc", mapping=mapping
    )
    assert (report["read"], report["kept"], report["sessions"]) == (2, 2, 1)


def test_interrupted_run_resumes(tmp_path, monkeypatch):
    """A run that dies in phase 2 resumes from its staged partitions: phase 1 and the finished
    partitions are not redone, and the result equals an uninterrupted run's."""
    from simpersona_jax.data import ingest as ingest_lib

    path = _rees(tmp_path, *[GOOD.format(i=i) for i in range(3, 10)])
    whole = ingest([path], str(tmp_path / "whole"), store_id="s", buckets=2, workers=1)
    assert not (tmp_path / "whole" / "_staging").exists()  # removed after a complete run
    finish, calls, die = ingest_lib.finish_partition, [], [True]

    def dies_on_second(part_dir, *args, **kwargs):
        calls.append(os.path.basename(part_dir))
        if die[0] and len(calls) == 2:
            raise RuntimeError("killed")
        return finish(part_dir, *args, **kwargs)

    monkeypatch.setattr(ingest_lib, "finish_partition", dies_on_second)
    with pytest.raises(RuntimeError, match="killed"):
        _run(tmp_path, path, buckets=2, workers=1)
    assert (tmp_path / "out" / "_staging" / "_SUCCESS").exists()
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "events").rglob("part-0.parquet")}
    assert len(done) == 1
    monkeypatch.setattr(ingest_lib, "stage", lambda *a: pytest.fail("phase 1 ran again"))
    calls.clear()
    die[0] = False
    again = _run(tmp_path, path, buckets=2, workers=1)
    assert again == whole
    assert whole["buyers"] == 10 and len(calls) == 2
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # not written again
    finished = sorted(str(p) for p in (tmp_path / "out" / "events").rglob("part-0.parquet"))
    assert len(finished) == len(calls) and not (tmp_path / "out" / "_staging").exists()


def test_a_new_run_into_the_same_directory_leaves_nothing_of_the_old_one(tmp_path):
    path = _rees(tmp_path, *[GOOD.format(i=i) for i in range(3, 10)], GOOD.format(i=4))
    first = _run(tmp_path, path, buckets=4)
    second = _run(tmp_path, path, buckets=1)
    files = list((tmp_path / "out" / "events").rglob("*.parquet"))
    assert [f.parent.name for f in files] == ["bucket=0"]
    assert pl.read_parquet(files).height == second["kept"] == first["kept"] == 10
    assert _quarantine(tmp_path).height == second["quarantined"] == 1  # the duplicate, once
