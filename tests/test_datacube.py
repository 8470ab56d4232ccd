"""NetCDF registered the CF way (producer/extract/datacube.py): real files
written by xarray/netCDF4 (tests/cubes.py), registered into a real catalog,
validated offline, and opened again by xarray from what the item says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import producer
from producer.errors import InputError, NoDatetimeError, NoGeoreferenceError
from producer.extract import ExtractOptions, create_item
from producer.extract.datacube import DATACUBE_EXT, XARRAY_EXT
from producer.extract.datetimes import cf_datetimes, from_acdd
from producer.validate import Validator
from tests import cubes
from tests.trees import assert_stac_valid_tree


def _register(paths: list[Path], catalog: Path, **overrides: Any) -> list[dict[str, Any]]:
    results = producer.register(
        [str(p) for p in paths], catalog=str(catalog), collection="cubes", **overrides
    )
    assert [r.error for r in results] == [None] * len(results)
    assert_stac_valid_tree(catalog)
    return [json.loads(Path(str(catalog), "cubes", str(r.id), f"{r.id}.json").read_text()) for r in results]


def _opened_by_xarray(doc: dict[str, Any]) -> xr.Dataset:
    asset = doc["assets"]["data"]
    return xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"])


def test_netcdf_two_variables_time_level_every_variable_described_no_bands(tmp_path: Path) -> None:
    (doc,) = _register([cubes.write_two_variables(tmp_path / "data")], tmp_path / "catalog")
    props, asset = doc["properties"], doc["assets"]["data"]
    assert DATACUBE_EXT in doc["stac_extensions"] and XARRAY_EXT in doc["stac_extensions"]
    assert "bands" not in asset  # GDAL opens this file with 0 bands: no band to promise
    assert asset["type"] == "application/netcdf"
    variables = props["cube:variables"]
    assert variables["temperature"] == {
        "dimensions": ["time", "level", "y", "x"],
        "type": "data",
        "description": "air temperature",
        "unit": "K",
        "data_type": "float32",
        "nodata": -9999.0,
    }
    assert variables["humidity"]["type"] == "data" and variables["humidity"]["unit"] == "1"
    dims = props["cube:dimensions"]
    assert dims["level"] == {
        "type": "spatial",
        "axis": "z",
        "extent": [850.0, 1000.0],
        "values": [1000.0, 850.0],
        "step": -150.0,
        "unit": "hPa",
    }
    assert dims["time"]["extent"] == ["2024-03-01T00:00:00Z", "2024-03-03T00:00:00Z"]
    assert dims["time"]["step"] == "P1D" and len(dims["time"]["values"]) == 3
    x0, y0, res = cubes.UTM_X0, cubes.UTM_Y0, cubes.UTM_RES
    assert dims["x"] == {
        "type": "spatial",
        "axis": "x",
        "extent": [x0, x0 + 8 * res],
        "step": res,
        "reference_system": 32633,
    }
    assert dims["y"]["extent"] == [y0 - 6 * res, y0] and dims["y"]["reference_system"] == 32633
    assert props["proj:code"] == "EPSG:32633"  # from the grid_mapping variable
    assert props["proj:shape"] == [6, 8] and props["proj:transform"] == [res, 0.0, x0, 0.0, -res, y0]
    # several time steps: the whole window, not the first step
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-03-01T00:00:00Z",
        "2024-03-03T00:00:00Z",
    )
    with _opened_by_xarray(doc) as ds:
        assert {k for k, v in variables.items() if v["type"] == "data"} <= set(ds.data_vars)


def test_cf_latlon_without_grid_mapping_transposed_is_epsg4326_time_from_bounds(tmp_path: Path) -> None:
    (doc,) = _register([cubes.write_latlon_no_grid_mapping(tmp_path / "data")], tmp_path / "catalog")
    props = doc["properties"]
    assert props["proj:code"] == "EPSG:4326"
    # 4 lon x 5 lat centres 0.25 apart from (7, 45): edges half a cell further out
    assert doc["bbox"] == pytest.approx([6.875, 44.875, 7.875, 46.125])
    assert props["proj:shape"] == [5, 4]
    assert props["cube:variables"]["sst"]["dimensions"] == ["time", "lon", "lat"]
    # one step with bounds: the bounds are the window
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-06-01T00:00:00Z",
        "2024-07-01T00:00:00Z",
    )
    # a single variable GDAL reads as one band keeps its band
    assert [b["name"] for b in doc["assets"]["data"]["bands"]] == ["sst"]
    with _opened_by_xarray(doc) as ds:
        assert "sst" in ds.data_vars


def test_curvilinear_grid_footprint_from_the_2d_arrays_no_transform(tmp_path: Path) -> None:
    path = cubes.write_curvilinear(tmp_path / "data")
    (doc,) = _register([path], tmp_path / "catalog")
    props = doc["properties"]
    with xr.open_dataset(path) as ds:
        lon, lat = ds["nav_lon"].values, ds["nav_lat"].values
    assert doc["bbox"] == pytest.approx([lon.min(), lat.min(), lon.max(), lat.max()], abs=1e-6)
    assert doc["geometry"]["type"] == "Polygon"
    assert "proj:transform" not in props and props["proj:shape"] == [6, 5]
    assert props["cube:variables"]["nav_lat"]["type"] == "auxiliary"
    assert {props["cube:dimensions"][d]["axis"] for d in ("nj", "ni")} == {"x", "y"}
    # no time coordinate: the ACDD window is used
    assert props["start_datetime"] == "2024-07-01T00:00:00Z"


def test_valid_time_in_days_since_1950_1_1(tmp_path: Path) -> None:
    (doc,) = _register([cubes.write_valid_time(tmp_path / "data")], tmp_path / "catalog")
    props = doc["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2000-01-01T00:00:00Z",
        "2000-01-01T06:00:00Z",
    )
    assert props["cube:dimensions"]["valid_time"]["step"] == "PT6H"


@pytest.mark.parametrize(
    ("calendar", "end"), [("360_day", "2000-02-29T00:00:00Z"), ("noleap", "2000-03-01T00:00:00Z")]
)
def test_non_standard_calendar(tmp_path: Path, calendar: str, end: str) -> None:
    # 360_day day 59 is 30 February: clamped to the month's last Gregorian day
    doc = create_item(cubes.write_calendar(tmp_path, calendar)).to_dict()
    assert (doc["properties"]["start_datetime"], doc["properties"]["end_datetime"]) == (
        "2000-01-01T00:00:00Z",
        end,
    )


def test_stale_acdd_attributes_lose_to_the_time_coordinate(tmp_path: Path) -> None:
    props = create_item(cubes.write_stale_acdd(tmp_path)).to_dict()["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "1999-01-01T00:00:00Z",
        "1999-12-01T00:00:00Z",
    )


def test_acdd_end_present_is_not_a_date(tmp_path: Path) -> None:
    with pytest.raises(NoDatetimeError, match="no datetime found") as caught:
        create_item(cubes.write_acdd_present(tmp_path))
    assert "gdal_edit" not in str(caught.value)


def test_explicit_datetime_option_still_wins_over_the_time_coordinate(tmp_path: Path) -> None:
    doc = create_item(
        cubes.write_stale_acdd(tmp_path), ExtractOptions(datetime="2030-01-01T00:00:00Z")
    ).to_dict()
    assert doc["properties"]["datetime"] == "2030-01-01T00:00:00Z"
    only_name = ExtractOptions(datetime_sources=("filename",), datetime_pattern=r"(?P<year>\d{4})")
    assert create_item(cubes.write_stale_acdd(tmp_path), only_name).to_dict()["properties"]["datetime"] == (
        "1999-01-01T00:00:00Z"
    )


def test_no_georeference_hint_writes_a_new_file_never_edits_in_place(tmp_path: Path) -> None:
    path = cubes.write_no_coordinates(tmp_path)
    before = path.read_bytes()
    with pytest.raises(NoGeoreferenceError) as caught:
        create_item(path)
    message = str(caught.value)
    assert str(path) in message and "new file" in message
    assert "gdal_edit" not in message
    assert path.read_bytes() == before


def test_netcdf_on_the_local_s3_endpoint(s3_server: Any, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    path = cubes.write_two_variables(tmp_path)
    s3_server.client().put_object(Bucket=bucket, Key="cubes/two_variables.nc", Body=path.read_bytes())
    url = f"s3://{bucket}/cubes/two_variables.nc"
    (res,) = producer.register([url], catalog=str(tmp_path / "catalog"), collection="cubes")
    assert res.error is None
    assert_stac_valid_tree(tmp_path / "catalog")
    doc = json.loads((tmp_path / "catalog/cubes/two_variables/two_variables.json").read_text())
    asset = doc["assets"]["data"]
    assert asset["href"] == url and asset["file:size"] == path.stat().st_size
    assert set(doc["properties"]["cube:variables"]) == {"temperature", "humidity"}


def test_a_cog_is_extracted_without_loading_xarray(tmp_path: Path) -> None:
    """The datacube reader's libraries load with the first datacube only."""
    import subprocess
    import sys

    from tests import rasters

    cog = rasters.write_cog(tmp_path)
    code = (
        "import sys; from producer.extract import create_item; "
        f"create_item({str(cog)!r}); "
        "print(sorted(m for m in ('xarray', 'netCDF4', 'cftime', 'zarr') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]", out.stdout


def test_statistics_option_on_a_single_variable_netcdf(tmp_path: Path) -> None:
    path = cubes.write_latlon_no_grid_mapping(tmp_path)
    band = create_item(path, ExtractOptions(stats=True)).to_dict()["assets"]["data"]["bands"][0]
    with xr.open_dataset(path) as ds:
        values = ds["sst"].values
    assert band["statistics"]["minimum"] == values.min() and band["statistics"]["maximum"] == values.max()
    assert band["statistics"]["mean"] == pytest.approx(values.mean())
    assert band["statistics"]["valid_percent"] == 100.0


def test_unreadable_time_units_do_not_block_an_explicit_datetime(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), cubes._field(1, 5, 4))},
        coords={"time": ("time", [1.0], {"units": "fortnights since the flood"}), **cubes._latlon()},
    )
    ds.to_netcdf(tmp_path / "odd_time.nc")
    with pytest.raises(InputError, match="time coordinate 'time'"):
        create_item(tmp_path / "odd_time.nc")
    doc = create_item(tmp_path / "odd_time.nc", ExtractOptions(datetime="2024-01-01")).to_dict()
    assert doc["properties"]["datetime"] == "2024-01-01T00:00:00Z"


def test_grid_mapping_with_cf_parameters_only_and_0_360_longitudes(tmp_path: Path) -> None:
    polar = create_item(cubes.write_cf_parameters_only(tmp_path)).to_dict()
    props = polar["properties"]
    assert props["proj:code"] is None and "polar_stereographic" in props["proj:wkt2"].lower().replace(
        " ", "_"
    )
    assert polar["bbox"][1] > 88.0 and polar["bbox"][3] == 90.0  # the pole is inside the grid
    pacific = create_item(cubes.write_lon_0_360(tmp_path)).to_dict()
    assert pacific["bbox"] == pytest.approx([175.0, 9.5, -175.0, 14.5])  # west > east: across 180
    assert pacific["geometry"]["type"] == "MultiPolygon"
    validator = Validator()
    assert validator.errors(polar) == [] and validator.errors(pacific) == []


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("days since 1950-1-1", datetime(1950, 1, 3, tzinfo=UTC)),
        ("days since 1970-01-01 00:00:00 UTC", datetime(1970, 1, 3, tzinfo=UTC)),
        ("Hour since 2000-01-01", datetime(2000, 1, 1, 2, tzinfo=UTC)),
        ("seconds since 2000-01-01T00:00:00Z", datetime(2000, 1, 1, 0, 0, 2, tzinfo=UTC)),
        # offsets with a one-digit hour or no minutes (UDUNITS, the CF conventions' own
        # example): cftime ignored them silently, every date off by the offset
        ("seconds since 1992-10-8 15:15:40 -6:00", datetime(1992, 10, 8, 21, 15, 42, tzinfo=UTC)),
        ("days since 2000-1-1 0:0:0 +1", datetime(2000, 1, 2, 23, tzinfo=UTC)),
        ("hours since 2000-01-01 00:00 +5:30", datetime(1999, 12, 31, 20, 30, tzinfo=UTC)),
        ("hours since 2000-01-01 00:00:00 -06:00", datetime(2000, 1, 1, 8, tzinfo=UTC)),
    ],
)
def test_cf_units_spellings(units: str, expected: datetime) -> None:
    assert cf_datetimes([2.0], units, None, "x.nc") == [expected]


def test_acdd_attributes() -> None:
    window = from_acdd({"time_coverage_start": "2024-01-01", "time_coverage_end": "2024-01-31"})
    assert window is not None and (window.start, window.end) == (
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC),
    )
    assert from_acdd({"time_coverage_start": "2020-01-01", "time_coverage_end": "present"}) is None
    gdal_copy = from_acdd({"GDAL_time_coverage_start": "2024-01-15T06:00:00Z"})
    assert gdal_copy is not None and gdal_copy.datetime == datetime(2024, 1, 15, 6, tzinfo=UTC)


def test_acdd_ordinal_dates_are_read(tmp_path: Path) -> None:
    """ACDD attributes written as ISO 8601 ordinal dates (``2024-134``: year
    and day of the year, as day-of-year products name their days) date the
    item. Was: not read, so the product failed with "no datetime"."""
    from tests import rasters

    path = rasters._netcdf_copy(
        tmp_path / "doy.nc",
        rasters._ramp("float32"),
        {"time_coverage_start": "2024-134", "time_coverage_end": "2024-135T12:00:00Z"},
        {"units": "K"},
    )
    (result,) = producer.register([str(path)], catalog=str(tmp_path / "catalog"), collection="c")
    assert result.ok, result.error
    props = result.item["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-05-13T00:00:00Z",
        "2024-05-14T12:00:00Z",
    )
    leap = from_acdd({"time_coverage_start": "2024-366"})
    assert leap is not None and leap.datetime == datetime(2024, 12, 31, tzinfo=UTC)
    assert from_acdd({"time_coverage_start": "2023-366"}) is None  # 2023 has 365 days: not a date


def test_cubes_of_different_kinds_share_one_mirror_and_search_gives_the_items_back(tmp_path: Path) -> None:
    # a CRS as PROJJSON beside EPSG codes, "nan" beside numeric nodata, other axes: one geoparquet file
    data = tmp_path / "data"
    paths = [
        cubes.write_cf_parameters_only(data),
        cubes.write_lon_0_360(data),
        cubes.write_two_variables(data),
        cubes.write_curvilinear(data),
    ]
    docs = _register(paths, tmp_path / "catalog")
    found = producer.search(str(tmp_path / "catalog"), limit=10)
    by_id = {f["id"]: f for f in found["features"]}
    assert set(by_id) == {d["id"] for d in docs}
    for doc in docs:
        for key in ("cube:dimensions", "cube:variables"):
            assert by_id[doc["id"]]["properties"][key] == doc["properties"][key]


@pytest.mark.parametrize("utm_regional", [False, True], ids=["latlon+latlon", "utm+latlon"])
def test_variables_on_two_grids_the_footprint_covers_both(tmp_path: Path, utm_regional: bool) -> None:
    """A regional grid first, a global one second: the item covered the first
    only (bbox 9.8..11.2 E), so a search over the global variable missed
    it. Now the footprint is the union of both grids, each grid's axes are
    in cube:dimensions, and no proj:shape/transform claims one grid for the
    whole file (proj:code only where both grids share the CRS)."""
    catalog = tmp_path / "catalog"
    (doc,) = _register([cubes.write_two_grids(tmp_path / "data", utm_regional=utm_regional)], catalog)
    west, south, east, north = doc["bbox"]
    assert west <= -175 and east >= 175 and south <= -85 and north >= 85  # cell edges of the global grid
    props = doc["properties"]
    assert not {"proj:shape", "proj:transform", "proj:bbox"} & set(props)
    assert props.get("proj:code") == (None if utm_regional else "EPSG:4326")
    dims = props["cube:dimensions"]
    assert dims["lon_g"]["extent"] == [-175.0, 175.0] and dims["lon_g"]["reference_system"] == 4326
    regional_x = dims["x" if utm_regional else "lon"]
    assert regional_x["axis"] == "x" and regional_x["reference_system"] == (32633 if utm_regional else 4326)
    assert set(props["cube:variables"]) >= {"regional", "global"}
    hits = producer.search(str(catalog), bbox=[100, -40, 110, -30])
    assert [f["id"] for f in hits["features"]] == [doc["id"]]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_data_in_a_netcdf4_group_is_named_not_told_to_add_coordinates(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A NetCDF-4 whose cube sits in a group was refused for having 'no
    horizontal coordinates', with a fix to add them. Now the message says
    only the root group is read, names the group, and writes it to a new
    file; nothing is registered and the file is untouched."""
    path = cubes.write_data_in_group(tmp_path / "data")
    before = path.read_bytes()
    source = str(path)
    if where == "s3":
        s3_server = request.getfixturevalue("s3_server")
        bucket = s3_server.new_bucket()
        s3_server.client().put_object(Bucket=bucket, Key="cubes/grouped.nc", Body=before)
        source = f"s3://{bucket}/cubes/grouped.nc"
    (res,) = producer.register([source], catalog=str(tmp_path / "catalog"), collection="cubes")
    error = res.error or ""
    assert source in error and "'/data'" in error and "only the root group is read" in error
    assert "group='/data'" in error and "new file" in error
    assert "no horizontal coordinates" not in error
    assert not (tmp_path / "catalog" / "cubes" / "grouped").exists()
    assert path.read_bytes() == before
