"""Time parsing and value mapping of the declarative source mappings."""

import datetime as dt

import polars as pl

from simpersona_jax.data.sources.mapping import map_values, parse_time

UTC = dt.timezone.utc


def _parse(values):
    return (
        pl.DataFrame({"t": values}, schema={"t": pl.String})
        .select(parse_time(pl.col("t"), "iso"))["t"]
        .to_list()
    )


def test_iso_times_with_offsets_and_fractions_become_utc_instants():
    got = _parse(
        [
            "2026-10-04T05:20:37.614294+0000",
            "2026-10-04T05:20:37Z",
            "2026-10-04T07:20:37+02:00",
            None,
        ]
    )
    assert got == [
        dt.datetime(2026, 10, 4, 5, 20, 37, 614294, tzinfo=UTC),
        dt.datetime(2026, 10, 4, 5, 20, 37, tzinfo=UTC),
        dt.datetime(2026, 10, 4, 5, 20, 37, tzinfo=UTC),
        None,
    ]


def test_a_batch_the_fast_parser_rejects_is_parsed_by_inference():
    # Slashes and nanoseconds are not Arrow ISO; one unparseable value must not null its neighbours.
    assert _parse(["2019/10/01 00:00:00", "2019/10/01 00:00:05"]) == [
        dt.datetime(2019, 10, 1, 0, 0, 0, tzinfo=UTC),
        dt.datetime(2019, 10, 1, 0, 0, 5, tzinfo=UTC),
    ]
    assert _parse(["2026-01-01T00:00:00.123456789Z"]) == [
        dt.datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    ]
    assert _parse(["2026-01-01T00:00:00Z", "yesterday", "2026-01-01T00:00:09Z"]) == [
        dt.datetime(2026, 1, 1, tzinfo=UTC),
        None,
        dt.datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC),
    ]


def test_map_values_maps_known_and_nulls_unknown():
    dtype = pl.Enum(["a", "b"])
    out = (
        pl.DataFrame({"e": ["x", "y", "z", None]})
        .select(map_values(pl.col("e"), {"x": "a", "y": "b"}, dtype))
        .to_series()
    )
    assert out.dtype == dtype and out.to_list() == ["a", "b", None, None]


def test_iso_accepts_a_trailing_utc_as_its_docstring_says():
    assert _parse(["2019-11-01 00:00:00 UTC", "2019-11-01 00:00:01.5 UTC"]) == [
        dt.datetime(2019, 11, 1, tzinfo=UTC),
        dt.datetime(2019, 11, 1, 0, 0, 1, 500000, tzinfo=UTC),
    ]


def test_epochs_take_fractions_and_overflow_to_null_not_to_a_wrapped_time():
    raw = pl.DataFrame({"t": ["1572566400.125", "1572566400", "1e30", "x"]})
    got = raw.select(parse_time(pl.col("t"), "epoch_s"))["t"].to_list()
    assert got == [
        dt.datetime(2019, 11, 1, 0, 0, 0, 125000, tzinfo=UTC),
        dt.datetime(2019, 11, 1, tzinfo=UTC),
        None,
        None,
    ]
    ms = raw.head(2).select(parse_time(pl.col("t"), "epoch_ms").dt.epoch("us"))["t"].to_list()
    assert ms == [1572566400125, 1572566400000]
