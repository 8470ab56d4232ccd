"""CF calendars → the STAC datetime (proleptic Gregorian, UTC). Real-day
calendars (``julian``; ``standard``/``gregorian``, Julian before
1582-10-15) name real instants and are converted to them; model calendars
(``360_day``, ``noleap``, ``all_leap``) keep their year-month-day, a day
Gregorian has not clamped to the month's last. NetCDF files are written
by xarray in ``tmp_path``, times as raw numbers with CF attributes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import producer
from producer.extract import create_item
from producer.extract.datetimes import cf_datetimes
from tests.trees import assert_stac_valid_tree


def _write(path: Path, times: list[float], units: str, calendar: str) -> Path:
    lat = np.arange(40.5, 45, 1.0)
    lon = np.arange(10.5, 15, 1.0)
    xr.Dataset(
        {"v": (("time", "lat", "lon"), np.ones((len(times), 5, 5), "f4"))},
        coords={
            "time": ("time", np.asarray(times, "f8"), {"units": units, "calendar": calendar}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    ).to_netcdf(path)
    return path


def test_julian_calendar_day_is_the_gregorian_instant_it_names(tmp_path: Path) -> None:
    # Julian 2024-01-01 is Gregorian 2024-01-14 (was: 2024-01-01, 13 days early)
    data = tmp_path / "data"
    data.mkdir()
    path = _write(data / "jul.nc", [0.0], "days since 2024-01-01", "julian")
    catalog = tmp_path / "catalog"
    (result,) = producer.register([str(path)], catalog=str(catalog), collection="c")
    assert result.error is None
    assert_stac_valid_tree(catalog)
    doc = json.loads((catalog / "c" / "jul" / "jul.json").read_text())
    assert doc["properties"]["datetime"] == "2024-01-14T00:00:00Z"
    assert doc["properties"]["cube:dimensions"]["time"]["extent"] == ["2024-01-14T00:00:00Z"] * 2


@pytest.mark.parametrize("calendar", ["standard", "gregorian"])
def test_mixed_calendar_across_the_1582_switch_gives_consecutive_days(tmp_path: Path, calendar: str) -> None:
    # 1582-10-04 (Julian) and the next day 1582-10-15 (Gregorian): one day apart, not eleven
    doc = create_item(_write(tmp_path / "switch.nc", [0.0, 1.0], "days since 1582-10-04", calendar)).to_dict()
    props = doc["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "1582-10-14T00:00:00Z",
        "1582-10-15T00:00:00Z",
    )
    assert props["cube:dimensions"]["time"]["values"] == ["1582-10-14T00:00:00Z", "1582-10-15T00:00:00Z"]
    assert props["cube:dimensions"]["time"]["step"] == "P1D"


def test_real_day_calendars_agree_on_one_instant() -> None:
    # the same instant, 2000-01-01 Gregorian, written in three real-day calendars
    expected = [datetime(2000, 1, 1, 12, tzinfo=UTC)]
    assert cf_datetimes([0.5], "days since 1999-12-19", "julian", "x.nc") == expected
    assert cf_datetimes([0.5], "days since 2000-01-01", "standard", "x.nc") == expected
    assert cf_datetimes([0.5], "days since 2000-01-01", "proleptic_gregorian", "x.nc") == expected
    # before 1582 'standard' is Julian, 'proleptic_gregorian' is not
    assert cf_datetimes([0.0], "days since 1500-03-01", "standard", "x.nc") == [
        datetime(1500, 3, 11, tzinfo=UTC)
    ]
    assert cf_datetimes([0.0], "days since 1500-03-01", "proleptic_gregorian", "x.nc") == [
        datetime(1500, 3, 1, tzinfo=UTC)
    ]


@pytest.mark.parametrize(
    ("calendar", "days", "expected"),
    [
        ("360_day", 59.0, datetime(2000, 2, 29, tzinfo=UTC)),  # 2000-02-30 clamped
        ("noleap", 365.0, datetime(2001, 1, 1, tzinfo=UTC)),
        ("all_leap", 59.0 + 366.0, datetime(2001, 2, 28, tzinfo=UTC)),  # 2001-02-29 clamped
        ("julian", 0.0, datetime(2000, 1, 14, tzinfo=UTC)),
    ],
)
def test_model_calendars_keep_their_dates_real_day_ones_convert(
    calendar: str, days: float, expected: datetime
) -> None:
    assert cf_datetimes([days], "days since 2000-01-01", calendar, "x.nc") == [expected]


def test_nanosecond_time_axis_as_xarray_writes_it_is_read(tmp_path: Path) -> None:
    """xarray encodes datetime64[ns] times with a part below the microsecond as
    int64 ``nanoseconds since <first time>``, which cftime does not read: such
    a file was refused ("units must be one of 'microseconds', ...")."""
    times = np.array(
        ["2024-05-13T10:00:00.000000001", "2024-05-13T10:00:00.500000002"], dtype="datetime64[ns]"
    )
    path = tmp_path / "ns.nc"
    xr.Dataset(
        {"v": (("time", "lat", "lon"), np.ones((2, 2, 2), "f4"))},
        coords={
            "time": times,
            "lat": ("lat", [40.5, 41.5], {"units": "degrees_north"}),
            "lon": ("lon", [10.5, 11.5], {"units": "degrees_east"}),
        },
    ).to_netcdf(path)
    with xr.open_dataset(path, decode_times=False) as raw:
        assert raw["time"].attrs["units"].startswith("nanoseconds since")  # what the case is about
    props = create_item(path).to_dict()["properties"]
    # STAC datetimes hold microseconds: the nanoseconds below them are dropped
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-05-13T10:00:00Z",
        "2024-05-13T10:00:00.500000Z",
    )


def test_the_cf_conventions_own_offset_example_is_read_at_its_utc_instant(tmp_path: Path) -> None:
    """CF 4.4's example units ``seconds since 1992-10-8 15:15:42.5 -6:00``:
    cftime ignores an offset whose hour has one digit, so the item was dated
    six hours early (15:15 UTC); xarray reads 21:15 UTC."""
    path = _write(tmp_path / "offset.nc", [0.0], "seconds since 1992-10-8 15:15:42.5 -6:00", "standard")
    assert create_item(path).to_dict()["properties"]["datetime"] == "1992-10-08T21:15:42.500000Z"
    with xr.open_dataset(path) as ds:  # what xarray reads
        assert str(ds.time.values[0]).startswith("1992-10-08T21:15:42.5")
