"""Datetime sources: explicit option, file name (user + built-in patterns), tags."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from producer import RegisterOptions
from producer.errors import InputError, NoDatetimeError
from producer.extract.datetimes import (
    compile_pattern,
    from_acdd,
    from_explicit,
    from_filename,
    from_tags,
    parse_datetime,
    resolve_datetime,
)

UTC = UTC


def dt(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-13", dt(2024, 5, 13)),
        ("20240513", dt(2024, 5, 13)),
        ("2024-05-13T10:11:12Z", dt(2024, 5, 13, 10, 11, 12)),
        ("2024-05-13T10:11:12", dt(2024, 5, 13, 10, 11, 12)),  # naive = UTC
        ("2024-05-13 10:11", dt(2024, 5, 13, 10, 11)),
        ("20240513T101112Z", dt(2024, 5, 13, 10, 11, 12)),
        ("2024-05-13T10:11:12.5+02:00", dt(2024, 5, 13, 8, 11, 12, 500000)),
        ("2024-05-13T00:30:00-0100", dt(2024, 5, 13, 1, 30)),
        ("2024:05:13 10:11:12", dt(2024, 5, 13, 10, 11, 12)),  # TIFF
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    value = parse_datetime(text)
    assert value == expected
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)


def test_parse_datetime_end_of_day_and_invalid() -> None:
    assert parse_datetime("2024-02-29", end=True) == dt(2024, 2, 29, 23, 59, 59)
    assert parse_datetime("2024-02-29T06:00:00", end=True) == dt(2024, 2, 29, 6)
    for bad in ("2023-02-29", "2024-13-01", "yesterday", "2024/05/13", ""):
        with pytest.raises(ValueError):
            parse_datetime(bad)


# --------------------------------------------------------------------------- explicit


def test_explicit_instant_and_range() -> None:
    assert from_explicit(None) is None and from_explicit("  ") is None
    instant = from_explicit("2024-05-13T12:00:00+02:00")
    assert instant is not None and instant.source == "explicit"
    assert instant.properties() == {"datetime": "2024-05-13T10:00:00Z"}
    rng = from_explicit("2024-05-01/2024-05-31")
    assert rng is not None
    assert rng.properties() == {
        "datetime": None,
        "start_datetime": "2024-05-01T00:00:00Z",
        "end_datetime": "2024-05-31T23:59:59Z",
    }


@pytest.mark.parametrize("bad", ["tomorrow", "2024-05-31/2024-05-01", "2024-01-01/", "a/b/c", "2024-02-30"])
def test_explicit_invalid_is_an_input_error(bad: str) -> None:
    with pytest.raises(InputError, match="datetime=") as info:
        from_explicit(bad)
    assert info.value.hint is not None and info.value.hint.option == "datetime"


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:00:00-02:00",
        "0001-01-01T00:30:00+01:00",
        "2024-01-01/9999-12-31T23:00:00-02:00",
        "0001-01-01T00:00:00+00:01/2024-01-01",
    ],
)
def test_explicit_outside_the_years_1_to_9999_in_utc_is_an_input_error(value: str) -> None:
    """In range as written, out of range once converted to UTC: was an
    OverflowError from astimezone (an internal error, no fix given)."""
    with pytest.raises(InputError) as info:
        resolve_datetime("a.tif", explicit=value, where="s3://b/a.tif")
    message = str(info.value)
    assert message.startswith("s3://b/a.tif: explicit datetime")  # the product
    assert repr(value) in message  # the value
    assert "years 1-9999 in UTC" in message and "9999-12-31T23:59:59Z" in message  # the fix
    assert info.value.hint is not None and info.value.hint.option == "datetime"


def test_the_edges_of_the_years_1_to_9999_in_utc_are_accepted() -> None:
    latest = from_explicit("9999-12-31T23:59:59Z")
    assert latest is not None and latest.properties() == {"datetime": "9999-12-31T23:59:59Z"}
    earliest = from_explicit("0001-01-01T01:00:00+01:00")
    assert earliest is not None and earliest.datetime == dt(1, 1, 1)


# --------------------------------------------------------------------------- filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cog_20240105.tif", dt(2024, 1, 5)),
        ("scene_20240513T101559Z.tif", dt(2024, 5, 13, 10, 15, 59)),
        ("scene_20240513T101559.tif", dt(2024, 5, 13, 10, 15, 59)),
        ("ndvi_2024-05-13.tif", dt(2024, 5, 13)),
        ("ndvi_2024-05-13T08:30:00.tif", dt(2024, 5, 13, 8, 30)),
        ("20240513.tif", dt(2024, 5, 13)),
        ("x-20240513-v2.tif", dt(2024, 5, 13)),
        # the YYYYMMDDTHHMMSS pattern wins over an earlier plain date
        ("v20200101_scene_20240513T101559.tif", dt(2024, 5, 13, 10, 15, 59)),
        # invalid month skipped, the next candidate is used
        ("x_20241313_y_20240102.tif", dt(2024, 1, 2)),
        # acquisition + later processing time, not adjacent: the first one, not a range
        ("S2A_MSIL2A_20240513T101559_N0510_R065_T32TQM_20240513T124256.tif", dt(2024, 5, 13, 10, 15, 59)),
    ],
)
def test_builtin_patterns(name: str, expected: datetime) -> None:
    found = from_filename(name)
    assert found is not None and found.source == "filename"
    assert found.datetime == expected and found.start is None


@pytest.mark.parametrize(
    "name",
    [
        "id_120240513.tif",  # eight digits inside a longer digit run
        "tile_202405131.tif",
        "x_20241340.tif",  # month 13
        "x_20230229.tif",  # not a leap year
        "x_12345678.tif",  # year 1234 is out of range
        "nodate.tif",
        "v2.tif",
    ],
)
def test_no_date_in_name(name: str) -> None:
    assert from_filename(name) is None


def test_two_adjacent_dates_are_a_range() -> None:
    found = from_filename("chirps_20240101_20240131_monthly.tif")
    assert found is not None
    assert (found.datetime, found.start, found.end) == (None, dt(2024, 1, 1), dt(2024, 1, 31, 23, 59, 59))
    timed = from_filename("s_20240101T000000_20240101T120000.tif")
    assert timed is not None and (timed.start, timed.end) == (dt(2024, 1, 1), dt(2024, 1, 1, 12))
    dashed = from_filename("m_2024-01-01_to_2024-01-31.tif")
    assert dashed is not None and dashed.end == dt(2024, 1, 31, 23, 59, 59)
    backwards = from_filename("x_20240131_20240101.tif")  # end before start: not a range
    assert backwards is not None and backwards.datetime == dt(2024, 1, 31)


def test_user_pattern_forms() -> None:
    ymd = from_filename("prod_2024_05_13.tif", r"(?P<year>\d{4})_(?P<month>\d{2})_(?P<day>\d{2})")
    assert ymd is not None and ymd.datetime == dt(2024, 5, 13)
    ymdh = from_filename(
        "p_2024.05.13.07h.tif", r"(?P<year>\d{4})\.(?P<month>\d\d)\.(?P<day>\d\d)\.(?P<hour>\d\d)h"
    )
    assert ymdh is not None and ymdh.datetime == dt(2024, 5, 13, 7)
    doy_free = from_filename("A2024-05-13B.tif", r"A(.+)B")
    assert doy_free is not None and doy_free.datetime == dt(2024, 5, 13)
    rng = from_filename("m_from20240101to20240229.tif", r"from(?P<start>\d{8})to(?P<end>\d{8})")
    assert rng is not None and (rng.start, rng.end) == (dt(2024, 1, 1), dt(2024, 2, 29, 23, 59, 59))
    # the user pattern is tried first, before the built-in ones
    first = from_filename("x_20240513_2020.tif", r"_(?P<year>\d{4})\.tif$")
    assert first is not None and first.datetime == dt(2020, 1, 1)
    # no match: fall through to the built-in patterns
    fallback = from_filename("x_20240513.tif", r"nothing(\d+)")
    assert fallback is not None and fallback.datetime == dt(2024, 5, 13)


def test_user_pattern_day_of_year() -> None:
    # MODIS-style names: year and day of the year (2024 is a leap year: day 150 is 29 May)
    modis = from_filename("MOD13Q1.A2024150.h18v04.tif", r"\.A(?P<year>\d{4})(?P<doy>\d{3})\.")
    assert modis is not None and modis.datetime == dt(2024, 5, 29)
    with pytest.raises(InputError, match="not a valid date"):
        from_filename("x.A2023366.tif", r"\.A(?P<year>\d{4})(?P<doy>\d{3})\.")


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("S_240513.tif", r"_(?P<year>\d{2})(?P<month>\d\d)(?P<day>\d\d)"),
        ("A24150.tif", r"A(?P<year>\d\d)(?P<doy>\d{3})"),
    ],
)
def test_user_pattern_two_digit_year_is_refused_not_read_as_year_24(name: str, pattern: str) -> None:
    # the item was dated 0024-05-13 (or day 150 of the year 24), silently
    with pytest.raises(InputError, match="four digits") as info:
        from_filename(name, pattern)
    assert name in str(info.value) and r"(?P<year>\d{4})" in str(info.value)


@pytest.mark.parametrize("pattern", [r"A(?P<year>\d{4})(?P<julian>\d{3})", r"_(?P<yr>\d{4})(?P<mo>\d\d)"])
def test_user_pattern_with_a_group_name_it_does_not_read_is_refused(pattern: str) -> None:
    # the unknown group was ignored: every file got 1 January of its year
    with pytest.raises(InputError, match="named group") as info:
        RegisterOptions(datetime_pattern=pattern)
    assert "(?P<doy>" in str(info.value) and "(?P<month>" in str(info.value)


@pytest.mark.parametrize("pattern", [r"(?P<year>\d{4})/(?P<month>\d\d)/(?P<day>\d\d)/", r"(?P<year>\d{4})\/"])
def test_user_pattern_across_folders_is_refused(pattern: str) -> None:
    # searched in the file name only, it never matched: the date came from the
    # built-in patterns or the TIFF tags instead, silently
    with pytest.raises(InputError, match="file name") as info:
        RegisterOptions(datetime_pattern=pattern)
    assert "'/'" in str(info.value)
    # a slash in a character class is fine: it matches names without one
    assert RegisterOptions(datetime_pattern=r"(?P<year>\d{4})[^/]*\.tif").datetime_pattern


def test_user_pattern_errors() -> None:
    with pytest.raises(InputError, match="not a valid regular expression"):
        from_filename("x.tif", "(")
    with pytest.raises(InputError, match="not a valid date"):
        from_filename("x_20241399.tif", r"(\d{8})")
    with pytest.raises(InputError, match="not a valid date"):
        from_filename("x_2024_13_01.tif", r"(?P<year>\d{4})_(?P<month>\d{2})_(?P<day>\d{2})")
    # in range as written, not in UTC (was an OverflowError)
    with pytest.raises(InputError, match="not a valid date.*years 1-9999 in UTC"):
        from_filename("9999-12-31T23:00:00-02:00.tif", r"(?P<datetime>.*)\.tif")
    with pytest.raises(InputError, match="not a valid date.*years 1-9999 in UTC"):
        from_filename("a_0001-01-01T00:00:00+01:00_2024-01-01.tif", r"a_(?P<start>.*)_(?P<end>.*)\.tif")


# --------------------------------------------------------------------------- tags


def test_tags_sources_and_order() -> None:
    assert from_tags({}) is None
    tiff = from_tags({"TIFFTAG_DATETIME": "2023:07:01 12:30:00"})
    assert tiff is not None and tiff.datetime == dt(2023, 7, 1, 12, 30) and tiff.detail == "TIFFTAG_DATETIME"
    both = from_tags(
        {"TIFFTAG_DATETIME": "2023:07:01 12:30:00"}, {"ACQUISITIONDATETIME": "2023-06-30 09:00:00"}
    )
    assert both is not None and both.datetime == dt(2023, 6, 30, 9)  # acquisition beats file creation
    garbage = from_tags({"TIFFTAG_DATETIME": "sometime"})
    assert garbage is None


def test_netcdf_tags() -> None:
    acdd = from_tags(
        {"NC_GLOBAL#time_coverage_start": "2024-01-01", "NC_GLOBAL#time_coverage_end": "2024-01-31"}
    )
    assert acdd is not None and (acdd.start, acdd.end) == (dt(2024, 1, 1), dt(2024, 1, 31, 23, 59, 59))
    gdal_copy = from_tags({"NC_GLOBAL#GDAL_time_coverage_start": "2024-01-15T06:00:00Z"})
    assert gdal_copy is not None and gdal_copy.datetime == dt(2024, 1, 15, 6)
    days = from_tags({"time#units": "days since 1970-01-01 00:00:00"}, band_tags={"NETCDF_DIM_time": "19000"})
    assert days is not None and days.datetime == dt(2022, 1, 8)
    hours = from_tags({"time#units": "hours since 2000-01-01", "NETCDF_DIM_time": "36"})
    assert hours is not None and hours.datetime == dt(2000, 1, 2, 12)
    noleap = from_tags(
        {"time#units": "days since 2000-01-01", "time#calendar": "noleap", "NETCDF_DIM_time": "60"}
    )
    assert noleap is None  # non-standard calendars are not guessed


@pytest.mark.parametrize(
    ("tags", "imagery"),
    [
        ({"time#units": "days since 2000-01-01", "NETCDF_DIM_time": "1e12"}, {}),
        ({"time#units": "days since 9999-12-31", "NETCDF_DIM_time": "5"}, {}),
        ({"time#units": "hours since 0001-01-01", "NETCDF_DIM_time": "-1"}, {}),
        ({"NC_GLOBAL#time_coverage_start": "9999-12-31T23:00:00-02:00"}, {}),
        ({}, {"ACQUISITIONDATETIME": "0001-01-01T00:30:00+01:00"}),
    ],
)
def test_tags_outside_the_years_1_to_9999_in_utc_are_skipped_like_unparsable_ones(
    tags: dict[str, str], imagery: dict[str, str]
) -> None:
    """Was an OverflowError (an internal error for the product); a tag out of
    range is as unusable as an unparsable one: the next source is tried."""
    assert from_tags(tags, imagery) is None
    fallback = from_tags({**tags, "TIFFTAG_DATETIME": "2023:07:01 12:30:00"}, imagery)
    assert fallback is not None and fallback.detail == "TIFFTAG_DATETIME"
    assert from_acdd({"time_coverage_start": "0001-01-01T00:30:00+01:00"}) is None


# --------------------------------------------------------------------------- resolve


def test_resolve_order_and_laziness() -> None:
    calls: list[int] = []

    def read_tags() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        calls.append(1)
        return {"TIFFTAG_DATETIME": "2023:07:01 12:30:00"}, {}, {}

    name = "scene_20240513.tif"
    explicit = resolve_datetime(name, explicit="2000-01-01", read_tags=read_tags)
    assert explicit.source == "explicit" and explicit.datetime == dt(2000, 1, 1) and calls == []
    by_name = resolve_datetime(name, read_tags=read_tags)
    assert by_name.source == "filename" and calls == []
    by_tags = resolve_datetime(name, sources=("tags", "filename"), read_tags=read_tags)
    assert by_tags.source == "tags" and by_tags.datetime == dt(2023, 7, 1, 12, 30) and calls == [1]
    skipped = resolve_datetime(name, explicit="2000-01-01", sources=("filename",))
    assert skipped.datetime == dt(2024, 5, 13)


def test_resolve_errors() -> None:
    with pytest.raises(NoDatetimeError) as info:
        resolve_datetime("nodate.tif", read_tags=lambda: ({}, {}, {}), where="s3://b/nodate.tif")
    message = str(info.value)
    assert message.startswith("s3://b/nodate.tif")
    for fix in ("datetime=", "datetime_pattern=", "TIFFTAG_DATETIME"):
        assert fix in message
    assert [h.option for h in info.value.hints] == ["datetime", "datetime_pattern"]
    assert isinstance(info.value, InputError)
    with pytest.raises(InputError, match="unknown datetime source"):
        resolve_datetime("x_20240101.tif", sources=("filename", "mtime"))
    with pytest.raises(InputError, match="unknown datetime source"):
        resolve_datetime("x_20240101.tif", sources=())


def test_never_now() -> None:
    """No source → an error, never the current time."""
    with pytest.raises(NoDatetimeError):
        resolve_datetime("scene.tif", sources=("explicit", "filename"))


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        (r"x/S2_(?P<year>\d{4})", None),  # holds a '/'
        (r"S2_(?P<yr>\d{4})", None),  # an unknown group
        (r"S2_(?P<year>\d+", None),  # not a regular expression
        (r"S2_(?P<year>\d+)_(?P<month>\d\d)", "S2_24_05.tif"),  # a two-digit year
    ],
)
def test_a_refused_datetime_pattern_is_shown_as_it_was_typed(pattern, name):
    """The message quoted the pattern's repr, each backslash doubled
    (``'S2_(?P<year>\\\\d{4})'``): copied back into a shell, ``\\\\d`` matches a
    backslash and a d, never a digit."""
    with pytest.raises(InputError) as err:
        if name is None:
            compile_pattern(pattern)
        else:
            from_filename(name, pattern)
    assert f"'{pattern}'" in str(err.value)
    assert repr(pattern) not in str(err.value)


def test_a_range_that_ends_before_it_starts_is_said_so_once_not_as_unparsable():
    """``--datetime 2024-05-02/2024-05-01`` said "explicit datetime: cannot
    parse datetime ... (explicit datetime: datetime range ends before it
    starts ...); use ISO 8601": it is ISO 8601, and the prefix came twice."""
    with pytest.raises(InputError) as err:
        from_explicit("2024-05-02/2024-05-01")
    message = str(err.value)
    assert message.startswith("explicit datetime: datetime range ends before it starts")
    assert "cannot parse" not in message and "datetime='2024-05-13T10:00:00Z'" in message
    pattern = r"(?P<start>\d{8})_(?P<end>\d{8})"
    with pytest.raises(InputError) as err:
        from_filename("a_20240502_20240501.tif", pattern)
    message = str(err.value)
    assert message.count("datetime pattern") == 1 and "ends before it starts" in message
    assert "not a valid date" not in message


def test_a_two_digit_year_names_the_datetime_as_each_caller_spells_it(tmp_path) -> None:
    """ "use the datetime option instead of a pattern" named no option the
    CLI has, and carried no hint: now the hint names ``datetime=`` for
    Python and ``--datetime`` on the CLI."""
    from click.testing import CliRunner

    from producer.cli import main
    from tests.crashes import write_tile

    with pytest.raises(InputError) as info:
        from_filename("S_240513.tif", r"_(?P<year>\d{2})(?P<month>\d\d)(?P<day>\d\d)")
    assert "datetime option" not in str(info.value)
    assert "Fix it with datetime='2024-05-13T10:00:00Z'" in str(info.value)
    tile = write_tile(tmp_path, "S_240513.tif", 6.0, 46.0)
    out = CliRunner().invoke(
        main,
        [
            "register",
            str(tile),
            "-c",
            str(tmp_path / "stac"),
            "--collection",
            "s",
            "--datetime-pattern",
            r"_(?P<year>\d{2})(?P<month>\d\d)(?P<day>\d\d)",
            "--json",
        ],
    )
    error = json.loads(out.output.splitlines()[0])["error"]
    assert "Fix it with --datetime 2024-05-13T10:00:00Z" in error and "datetime=" not in error, error
