"""Issue 11: wrong units and formats fail loudly, mapping files, and path-independent quarantine."""

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from simpersona_jax.data.ingest import ingest
from simpersona_jax.data.sources import SchemaError

from .logs import CLICK_LOG, CLICKS, HEADERLESS, REES46_NOHEADER, SESSIONS, TWO_COLUMN
from .test_malformed import GOOD, HEADER

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _quarantine(out):
    return pl.read_parquet(os.path.join(out, "quarantine", "*.parquet"))


@pytest.mark.parametrize(
    "path, mapping, unit, column",
    [
        (
            SESSIONS,
            dict(TWO_COLUMN, time_format="epoch_s"),
            "epoch milliseconds",
            "server_timestamp_epoch_ms",
        ),  # would be years ~51,800
        (CLICKS, dict(CLICK_LOG, time_format="epoch_ms"), "epoch seconds", "ts"),  # January 1970
    ],
)
def test_a_wrong_epoch_unit_stops_the_run_naming_the_column_and_the_unit(
    tmp_path, path, mapping, unit, column
):
    with pytest.raises(SchemaError, match=rf"time column '{column}'.*most are implausible.*{unit}"):
        ingest([path], str(tmp_path), store_id="s", mapping=mapping)


def test_times_outside_the_plausible_window_are_quarantined(tmp_path):
    path = tmp_path / "in.csv"
    rows = "".join(GOOD.format(i=i) for i in range(5))
    rows = rows.replace("2019-10-01 00:00:00", "1970-01-01 00:00:00")
    path.write_text(HEADER + rows)
    report = ingest([str(path)], str(tmp_path / "a"), store_id="s")
    assert (report["kept"], report["quarantined_by_reason"]) == (4, {"implausible_time": 1})
    narrow = ingest(
        [str(path)],
        str(tmp_path / "b"),
        store_id="s",
        plausible_times=("1960-01-01", "2019-10-01T00:00:03"),
    )
    assert (narrow["kept"], narrow["quarantined_by_reason"]) == (4, {"implausible_time": 1})
    assert _quarantine(str(tmp_path / "b"))["_raw_time"].to_list() == ["2019-10-01 00:00:04 UTC"]


def test_an_unparseable_time_column_names_column_value_and_formats_that_parse(tmp_path):
    path = tmp_path / "dmy.csv"
    path.write_text(
        "user,item,when\n" + "".join(f"u{i},i{i},13/11/2019 10:00:0{i}\n" for i in range(5))
    )
    mapping = dict(
        columns=dict(buyer_id="user", event_time="when", product_id="item"),
        constant_event="product_viewed",
        time_format="epoch_s",
    )
    with pytest.raises(
        SchemaError,
        match=r"dmy\.csv: time column 'when'.*none parse.*"
        r"'13/11/2019 10:00:00'.*%d/%m/%Y %H:%M:%S",
    ):
        ingest([str(path)], str(tmp_path / "out"), store_id="s", mapping=mapping)


def test_wrong_column_names_length_names_file_counts_and_first_line(tmp_path):
    mapping = dict(HEADERLESS, column_names=HEADERLESS["column_names"][:-1])
    with pytest.raises(
        SchemaError,
        match=r"rees46_noheader\.csv: column_names gives 8 names.*"
        r"first line has 9 fields.*2019-10-01 00:00:00 UTC,view,44600062",
    ):
        ingest([REES46_NOHEADER], str(tmp_path), store_id="s", mapping=mapping)


@pytest.mark.parametrize("kind", ["json", "py"])
def test_a_mapping_file(tmp_path, kind):
    path = tmp_path / f"clicks_mapping.{kind}"
    if kind == "json":
        path.write_text(json.dumps(CLICK_LOG))
    else:
        path.write_text(f"def get_config():\n    return {CLICK_LOG!r}\n")
    report = ingest([CLICKS], str(tmp_path / "out"), store_id="s", mapping=str(path))
    assert (report["read"], report["kept"]) == (1814, 1810)


def test_mapping_file_on_the_command_line(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(TWO_COLUMN))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "simpersona_jax.ingest",
            "--config=experiments/ingest_rees46.py",
            f"--config.ingest.inputs=('{SESSIONS}',)",
            f"--config.ingest.mapping_file={tmp_path}/m.json",
            "--config.ingest.store_id=coveo",
            f"--config.ingest.out_dir={tmp_path}/out",
            "--config.buyers.build=False",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "rows read 1,409  kept 1,405  quarantined 4" in out.stdout


def test_a_mapping_file_with_a_misspelt_key_names_it(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(dict(CLICK_LOG, time_fromat="epoch_s")))
    with pytest.raises(ValueError, match=r"m\.json.*unknown key\(s\) \['time_fromat'\]"):
        ingest([CLICKS], str(tmp_path / "out"), store_id="s", mapping=str(tmp_path / "m.json"))


def test_a_cut_off_last_row_is_truncated_row_on_the_mapped_path_too(tmp_path):
    lines = open(REES46_NOHEADER).read().splitlines()[:4]
    path = tmp_path / "cut.csv"
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    report = ingest([str(path)], str(tmp_path / "out"), store_id="s", mapping=HEADERLESS)
    assert (report["read"], report["kept"]) == (4, 3)
    assert report["quarantined_by_reason"] == {"truncated_row": 1}
    assert _quarantine(str(tmp_path / "out"))["_row"].to_list() == [4]


def test_a_row_with_extra_fields_is_quarantined_not_cut(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        HEADER
        + GOOD.format(i=1)
        + GOOD.format(i=2).rstrip("\n")
        + ",surplus\n"
        # a quoted comma is no extra field:
        + '2019-10-01 00:00:03 UTC,view,3,1,"a,b",x,10.00,u3,s3\n'
    )
    report = ingest([str(path)], str(tmp_path / "out"), store_id="s")
    assert (report["read"], report["kept"]) == (3, 2)
    assert report["quarantined_by_reason"] == {"extra_fields": 1}
    q = _quarantine(str(tmp_path / "out")).row(0, named=True)
    assert (q["_row"], q["buyer_id"]) == (2, "u2")


def test_quarantined_duplicates_keep_their_raw_values(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(HEADER + GOOD.format(i=1) * 2)
    ingest([str(path)], str(tmp_path / "out"), store_id="s")
    q = _quarantine(str(tmp_path / "out")).filter(pl.col("reason") == "duplicate")
    q = q.row(0, named=True)
    assert (q["_raw_time"], q["_raw_event"], q["_raw_price"]) == (
        "2019-10-01 00:00:01 UTC",
        "view",
        "10.00",
    )


def test_buyer_summary_prints_strata_as_letters():
    from simpersona_jax.data.run import format_buyers

    text = format_buyers(
        {
            "buyers": 7,
            "dim": 403,
            "strata": [[0, 5], [3, 2]],
            "zero_share": 0.5,
            "product_embedders": {"a": "content", "b": "cooc"},
        },
        "out/buyers",
    )
    assert "strata A 5  D 2" in text and "product embedder per store: a content  b cooc" in text
