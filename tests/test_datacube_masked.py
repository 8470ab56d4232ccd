"""Coordinates with holes: fill values, NaN and out-of-range numbers in the
lat/lon/time coordinates of a NetCDF (producer/extract/datacube.py). The
cube is opened without masking (values as stored), so every number that CF
says is not a coordinate (``_FillValue``, ``missing_value``, outside
``valid_min``/``valid_max``/``valid_range``, NaN) must be left out of the
footprint, the extents and the axis choice, and a coordinate that is still
wrong after that fails its product with an error naming it. Real files,
written here with xarray/netCDF4 into ``tmp_path``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import producer
from producer.errors import InputError
from producer.extract import create_item
from tests.trees import assert_stac_valid_tree

FILL = -999.0


def _register(path: Path, catalog: Path) -> dict[str, Any]:
    (result,) = producer.register([str(path)], catalog=str(catalog), collection="cubes")
    assert result.error is None
    assert_stac_valid_tree(catalog)
    text = Path(str(catalog), "cubes", str(result.id), f"{result.id}.json").read_text()
    return json.loads(text, parse_constant=_no_constant)  # type: ignore[no-any-return]


def _no_constant(token: str) -> float:
    raise AssertionError(f"the stored JSON holds {token}, which is not JSON")


def _collection_bbox(catalog: Path) -> list[float]:
    doc = json.loads(Path(catalog, "cubes", "collection.json").read_text())
    return doc["extent"]["spatial"]["bbox"][0]  # type: ignore[no-any-return]


def _swath(path: Path, lon: np.ndarray, lat: np.ndarray, lon_attrs: dict, lat_attrs: dict) -> Path:
    ds = xr.Dataset(
        {"v": (("j", "i"), np.ones(lon.shape, "f4"))},
        coords={
            "lat": (("j", "i"), lat, {"units": "degrees_north", **lat_attrs}),
            "lon": (("j", "i"), lon, {"units": "degrees_east", **lon_attrs}),
        },
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )
    ds.to_netcdf(path, engine="netcdf4")
    return path


def _mesh() -> tuple[np.ndarray, np.ndarray]:
    """lon 10..20 along ``i`` (11 columns), lat 40..50 along ``j`` (11 rows)."""
    return np.meshgrid(np.linspace(10, 20, 11), np.linspace(40, 50, 11))


@pytest.mark.parametrize(
    "attrs",
    [
        {"_FillValue": FILL},
        {"missing_value": FILL},
        {"valid_min": -400.0},
        {"valid_range": np.array([-400.0, 400.0])},
    ],
    ids=["FillValue", "missing_value", "valid_min", "valid_range"],
)
def test_fill_cells_of_2d_latlon_are_not_in_the_footprint_bbox_extent_or_axis_choice(
    tmp_path: Path, attrs: dict
) -> None:
    lon, lat = _mesh()
    lon[0, :3] = lat[0, :3] = FILL  # a swath's missing first scan pixels
    doc = _register(_swath(tmp_path / "swath.nc", lon, lat, attrs, attrs), tmp_path / "catalog")
    assert doc["bbox"] == pytest.approx([10.0, 40.0, 20.0, 50.0])
    ring = doc["geometry"]["coordinates"][0]
    assert all(-90 <= y <= 90 and -180 <= x <= 180 for x, y in ring)
    assert _collection_bbox(tmp_path / "catalog") == pytest.approx([10.0, 40.0, 20.0, 50.0])
    dims = doc["properties"]["cube:dimensions"]
    assert (dims["i"]["axis"], dims["j"]["axis"]) == ("x", "y")  # lon changes along i
    assert dims["i"]["extent"] == pytest.approx([10.0, 20.0])
    assert dims["j"]["extent"] == pytest.approx([40.0, 50.0])


def test_border_rows_and_columns_of_fill_only_are_trimmed(tmp_path: Path) -> None:
    lon, lat = _mesh()
    lon[:2, :] = lat[:2, :] = FILL  # two scan lines missing
    lon[:, -1] = lat[:, -1] = FILL  # and the last column
    attrs = {"_FillValue": FILL}
    doc = _register(_swath(tmp_path / "swath.nc", lon, lat, attrs, attrs), tmp_path / "catalog")
    assert doc["bbox"] == pytest.approx([10.0, 42.0, 19.0, 50.0])
    assert doc["properties"]["proj:shape"] == [11, 11]  # the grid itself keeps its shape


def test_latitudes_outside_90_after_masking_fail_the_product_naming_it(tmp_path: Path) -> None:
    lon, lat = _mesh()
    lat[0, :3] = FILL  # a fill value the file does not declare
    path = _swath(tmp_path / "undeclared.nc", lon, lat, {}, {})
    with pytest.raises(InputError) as caught:
        create_item(path)
    message = str(caught.value)
    assert str(path) in message and "'lat'" in message and "[-90, 90]" in message
    assert "_FillValue" in message  # the fix: declare it (in a new file)
    (result,) = producer.register([str(path)], catalog=str(tmp_path / "catalog"), collection="cubes")
    assert result.error is not None and "[-90, 90]" in result.error
    assert not list((tmp_path / "catalog").rglob("undeclared*.json"))


def test_1d_latitudes_outside_90_fail_the_product_naming_the_coordinate(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.ones((5, 5), "f4"))},
        coords={
            "lat": ("lat", np.arange(405.0, 455.0, 10.0), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(10.5, 15.0, 1.0), {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )
    path = tmp_path / "lat_times_ten.nc"
    ds.to_netcdf(path, engine="netcdf4")
    with pytest.raises(InputError) as caught:
        create_item(path)
    assert str(path) in str(caught.value) and "'lat'" in str(caught.value)
    assert "[-90, 90]" in str(caught.value)


def test_packed_1d_coordinates_are_unpacked(tmp_path: Path) -> None:
    """``scale_factor`` on a coordinate: the numbers as stored are not degrees."""
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.ones((5, 5), "f4"))},
        coords={
            "lat": ("lat", (np.arange(40.5, 45, 1.0) * 100).astype("i2"), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(10.5, 15.0, 1.0), {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )
    ds["lat"].attrs["scale_factor"] = 0.01
    path = tmp_path / "packed.nc"
    ds.to_netcdf(path, engine="netcdf4")
    doc = create_item(path).to_dict()
    assert doc["bbox"] == pytest.approx([10.0, 40.0, 15.0, 45.0])
    assert doc["properties"]["cube:dimensions"]["lat"]["extent"] == pytest.approx([40.0, 45.0])
    assert all(math.isfinite(v) for v in doc["bbox"])


def _grid_1d(lat: np.ndarray, lon: np.ndarray, **coords: Any) -> xr.Dataset:
    dims = (*coords, "lat", "lon")
    shape = (*(len(np.atleast_1d(c[1])) for c in coords.values()), lat.size, lon.size)
    return xr.Dataset(
        {"v": (dims, np.ones(shape, "f4"))},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
            **coords,
        },
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )


def test_nan_in_a_1d_latitude_gives_finite_extents_and_strict_json(tmp_path: Path) -> None:
    lat = np.array([40.5, 41.5, np.nan, 43.5, 44.5])
    path = tmp_path / "nanlat.nc"
    _grid_1d(lat, np.arange(10.5, 15.0, 1.0)).to_netcdf(path, engine="netcdf4")
    doc = _register(path, tmp_path / "catalog")  # strict JSON, valid, mirrored
    assert doc["properties"]["cube:dimensions"]["lat"]["extent"] == [40.5, 44.5]
    assert doc["bbox"] == pytest.approx([10.5, 40.5, 14.5, 44.5])


def test_all_nan_time_axis_and_nan_level_give_no_nan_in_the_item(tmp_path: Path) -> None:
    time = ("time", np.array([np.nan]), {"units": "days since 2024-01-01", "standard_name": "time"})
    level = ("level", np.array([1000.0, np.nan, 500.0]), {"units": "hPa", "axis": "Z"})
    path = tmp_path / "nantime.nc"
    ds = _grid_1d(np.arange(40.5, 45, 1.0), np.arange(10.5, 15.0, 1.0), time=time, level=level)
    ds.to_netcdf(path, engine="netcdf4")
    doc = _register(path, tmp_path / "catalog")
    assert doc["properties"]["datetime"] == "2024-01-01T00:00:00Z"  # from ACDD: the axis has no time
    dims = doc["properties"]["cube:dimensions"]
    assert dims["time"]["extent"] == [None, None]
    assert dims["level"]["extent"] == [500.0, 1000.0] and "values" not in dims["level"]


def test_all_fill_1d_latitude_is_an_input_error(tmp_path: Path) -> None:
    lat = np.full(5, FILL)
    ds = _grid_1d(lat, np.arange(10.5, 15.0, 1.0))
    ds["lat"].attrs["_FillValue"] = FILL
    path = tmp_path / "nolat.nc"
    ds.to_netcdf(path, engine="netcdf4")
    with pytest.raises(InputError) as caught:
        create_item(path)
    assert str(path) in str(caught.value) and "'lat'" in str(caught.value)


@pytest.mark.parametrize(
    ("units", "values", "step"),
    [
        ("milliseconds since 2024-01-01", [0.0, 1000.0, 2000.0], "PT1S"),
        ("microseconds since 2024-01-01", [0.0, 1e6, 2e6], "PT1S"),
        ("msec since 2024-01-01", [0.0, 60_000.0, 120_000.0], "PT1M"),
        ("minutes since 2024-01-01", [0.0, 90.0, 180.0], "PT1H30M"),
        ("min since 2024-01-01", [0.0, 1.0, 2.0], "PT1M"),
        ("hours since 2024-01-01", [0.0, 6.0, 12.0], "PT6H"),
        ("days since 2024-01-01", [0.0, 1.0, 2.0], "P1D"),
        ("seconds since 2024-01-01", [0.0, 0.5, 1.0], None),  # not whole seconds
    ],
)
def test_time_step_from_the_units_cftime_reads(
    tmp_path: Path, units: str, values: list[float], step: str | None
) -> None:
    time = ("time", np.array(values), {"units": units, "standard_name": "time"})
    path = tmp_path / "fast.nc"
    _grid_1d(np.arange(40.5, 45, 1.0), np.arange(10.5, 15.0, 1.0), time=time).to_netcdf(
        path, engine="netcdf4"
    )
    dimension = create_item(path).to_dict()["properties"]["cube:dimensions"]["time"]
    assert dimension.get("step") == step


def _polar_swath(path: Path, epsg: int) -> tuple[Path, np.ndarray]:
    """2-D lat/lon of a 21 x 21 grid of 100 km cells centred on a pole (the
    cells of a polar stereographic grid, given as lat/lon arrays only)."""
    from pyproj import Transformer

    x = np.arange(-1_000_000, 1_000_001, 100_000.0)
    mesh_x, mesh_y = np.meshgrid(x, x)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(mesh_x, mesh_y)
    ds = xr.Dataset(
        {"v": (("yc", "xc"), np.ones(mesh_x.shape, "f4"))},
        coords={
            "lat": (("yc", "xc"), lat, {"units": "degrees_north"}),
            "lon": (("yc", "xc"), lon, {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )
    ds.to_netcdf(path, engine="netcdf4")
    border = np.concatenate([lat[0], lat[-1], lat[:, 0], lat[:, -1]])
    return path, border


@pytest.mark.parametrize("epsg", [3413, 3031])
def test_curvilinear_grid_around_a_pole_is_one_polygon_over_the_pole(tmp_path: Path, epsg: int) -> None:
    from shapely.geometry import Point, shape

    path, border = _polar_swath(tmp_path / f"polar_{epsg}.nc", epsg)
    doc = _register(path, tmp_path / "catalog")
    north = epsg == 3413
    assert doc["geometry"]["type"] == "Polygon"
    expected = [-180.0, border.min(), 180.0, 90.0] if north else [-180.0, -90.0, 180.0, border.max()]
    assert doc["bbox"] == pytest.approx(expected, abs=1e-6)
    polygon = shape(doc["geometry"])
    sign = 1 if north else -1
    assert polygon.contains(Point(10.0, sign * 89.9)) and polygon.contains(Point(-120.0, sign * 85.0))
    assert not polygon.contains(Point(10.0, sign * 60.0))


def test_curvilinear_grid_across_the_antimeridian_is_cut_there(tmp_path: Path) -> None:
    jj, ii = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
    angle = np.radians(20)
    lon = 176.0 + 1.0 * (ii * np.cos(angle) - jj * np.sin(angle))
    lat = 10.0 + 1.0 * (ii * np.sin(angle) + jj * np.cos(angle))
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    doc = _register(_swath(tmp_path / "pacific_swath.nc", lon, lat, {}, {}), tmp_path / "catalog")
    assert doc["geometry"]["type"] == "MultiPolygon"
    west, south, east, north = doc["bbox"]
    assert west > east and west == pytest.approx(np.where(lon > 0, lon, 999).min())
    assert (south, north) == pytest.approx((lat.min(), lat.max()))
    from shapely.geometry import Point, shape

    parts = shape(doc["geometry"])
    assert parts.contains(Point(179.0, 12.0)) and not parts.contains(Point(0.0, 12.0))


def test_a_zarr_v2_coordinate_of_zero_is_not_a_hole(tmp_path):
    """zarr-python gives a v2 array fill_value 0 unless told otherwise, and
    xarray reports it as ``_FillValue``: a longitude axis through 0 lost
    that cell, and with it its regular grid (no ``proj:transform``, the
    bbox shrunk to the cell centres). A coordinate variable has no missing
    values in CF, so its fill value is not applied."""
    import zarr

    path = tmp_path / "raw.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    lon, lat = np.arange(-10.0, 10.01, 1.0), np.arange(40.0, 50.01, 1.0)
    for name, values, dims, attrs in (
        ("lon", lon, ["lon"], {"units": "degrees_east"}),
        ("lat", lat, ["lat"], {"units": "degrees_north"}),
        ("time", np.array([5.0]), ["time"], {"units": "days since 2024-01-01"}),
    ):
        array = group.create_array(name, shape=values.shape, dtype=values.dtype)
        array[:] = values
        array.attrs.update({"_ARRAY_DIMENSIONS": dims, **attrs})
    data = group.create_array("t", shape=(1, lat.size, lon.size), dtype="f4")
    data[:] = 1
    data.attrs["_ARRAY_DIMENSIONS"] = ["time", "lat", "lon"]
    zarr.consolidate_metadata(str(path))
    doc = create_item(str(path)).to_dict()
    assert doc["bbox"] == [-10.5, 39.5, 10.5, 50.5]
    assert doc["properties"]["proj:transform"][:6] == [1.0, 0.0, -10.5, 0.0, -1.0, 50.5]


def test_a_zarr_v2_time_or_level_of_zero_is_not_a_hole(tmp_path):
    """The same fill value 0 on the time axis (``days since`` the first day)
    and on a level axis: the first time step was left out, publishing the
    cube as starting a day late (one step: "no datetime found"), and the
    level 0 was missing from its extent and values."""
    import zarr

    path = tmp_path / "raw_time.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    lon, lat = np.arange(10.0, 13.01, 1.0), np.arange(40.0, 43.01, 1.0)
    for name, values, dims, attrs in (
        ("lon", lon, ["lon"], {"units": "degrees_east"}),
        ("lat", lat, ["lat"], {"units": "degrees_north"}),
        ("time", np.array([0, 1, 2], "i4"), ["time"], {"units": "days since 2024-01-01"}),
        ("depth", np.array([0.0, 10.0, 20.0]), ["depth"], {"units": "m", "positive": "down"}),
    ):
        array = group.create_array(name, shape=values.shape, dtype=values.dtype)
        array[:] = values
        array.attrs.update({"_ARRAY_DIMENSIONS": dims, **attrs})
    data = group.create_array("t", shape=(3, 3, lat.size, lon.size), dtype="f4")
    data[:] = 1
    data.attrs["_ARRAY_DIMENSIONS"] = ["time", "depth", "lat", "lon"]
    zarr.consolidate_metadata(str(path))
    props = create_item(str(path)).to_dict()["properties"]
    assert props["start_datetime"] == "2024-01-01T00:00:00Z"
    assert props["end_datetime"] == "2024-01-03T00:00:00Z"
    dims = props["cube:dimensions"]
    assert dims["time"]["values"][0] == "2024-01-01T00:00:00Z" and dims["time"]["step"] == "P1D"
    assert dims["depth"]["extent"] == [0.0, 20.0] and dims["depth"]["values"] == [0.0, 10.0, 20.0]


def test_a_valid_range_written_as_text_is_ignored_not_fatal(tmp_path):
    """``valid_min="-90"`` (text) raised a TypeError in the comparison and
    failed a file that registered before the masking existed."""
    import netCDF4

    path = tmp_path / "text_limits.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("lat", 10)
        nc.createDimension("lon", 10)
        nc.createDimension("time", 1)
        la = nc.createVariable("lat2d", "f4", ("lat", "lon"))
        la[:] = np.repeat(np.arange(40.5, 50, 1)[:, None], 10, axis=1)
        la.units, la.standard_name, la.valid_min, la.valid_max = "degrees_north", "latitude", "-90", "90"
        lo = nc.createVariable("lon2d", "f4", ("lat", "lon"))
        lo[:] = np.repeat(np.arange(0.5, 10, 1)[None, :], 10, axis=0)
        lo.units, lo.standard_name = "degrees_east", "longitude"
        t = nc.createVariable("time", "f8", ("time",))
        t[:] = [1]
        t.units = "days since 2024-01-01"
        v = nc.createVariable("v", "f4", ("time", "lat", "lon"))
        v.coordinates = "lat2d lon2d"
        v[:] = 1
    doc = create_item(str(path)).to_dict()
    assert doc["bbox"] == pytest.approx([0.5, 40.5, 9.5, 49.5], abs=1e-6)


def _rotated(rlon: Any, rlat: Any, pole_lon: float, pole_lat: float) -> tuple[Any, Any]:
    """Geographic lon/lat of points on a sphere rotated so that its north
    pole lies at (pole_lon, pole_lat): a displaced-pole ocean grid's cells."""
    rlon, rlat = np.radians(rlon), np.radians(rlat)
    x, y, z = np.cos(rlat) * np.cos(rlon), np.cos(rlat) * np.sin(rlon), np.sin(rlat)
    tilt, turn = np.radians(90 - pole_lat), np.radians(pole_lon)
    x2, z2 = x * np.cos(tilt) + z * np.sin(tilt), -x * np.sin(tilt) + z * np.cos(tilt)
    x3, y3 = x2 * np.cos(turn) - y * np.sin(turn), x2 * np.sin(turn) + y * np.cos(turn)
    return np.degrees(np.arctan2(y3, x3)), np.degrees(np.arcsin(np.clip(z2, -1, 1)))


def test_a_displaced_pole_grid_is_drawn_over_the_north_pole_it_covers(tmp_path):
    """A global ocean grid whose own pole is displaced onto land (rows from
    50 S to 84 N of a sphere tilted to (-100, 60)): its border lies mostly
    in the south, and the outline's mean latitude put the polygon over the
    South Pole (bbox up to 66 N, Antarctica claimed). The cells' own
    latitudes say which pole the grid surrounds."""
    rlon, rlat = np.meshgrid(np.linspace(0.5, 359.5, 360), np.linspace(-50, 84, 150))
    lon, lat = _rotated(rlon, rlat, -100, 60)
    path = tmp_path / "displaced_pole.nc"
    xr.Dataset(
        {"sst": (("nj", "ni"), np.zeros(lon.shape, "f4"), {"coordinates": "TLAT TLONG"})},
        coords={
            "TLAT": (("nj", "ni"), lat, {"units": "degrees_north"}),
            "TLONG": (("nj", "ni"), lon % 360, {"units": "degrees_east"}),
            "time": ("time", [1.0], {"units": "days since 2024-01-01"}),
        },
    ).to_netcdf(path)
    doc = create_item(str(path)).to_dict()
    west, south, east, north = doc["bbox"]
    assert north == 90.0 and south == pytest.approx(float(lat.min()), abs=0.5)
    assert (west, east) == (-180.0, 180.0)


def test_a_declared_fill_value_in_a_1d_longitude_is_a_hole_not_a_place(tmp_path: Path) -> None:
    """A longitude axis declaring ``_FillValue = -9999`` whose last cell was
    left at it: the fill was read as a longitude (-9999 is 81 E once
    wrapped) and the bbox reached from 5 E to 81 E with nothing said. Only
    a fill value of 0, zarr-python's default, counts as a coordinate."""
    import netCDF4

    path = tmp_path / "lonfill.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("lat", 4)
        nc.createDimension("lon", 5)
        lat = nc.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.arange(40.0, 44.0)
        lon = nc.createVariable("lon", "f8", ("lon",), fill_value=-9999.0)
        lon.units = "degrees_east"
        lon.set_auto_mask(False)
        lon[:] = [5.0, 6.0, 7.0, 8.0, -9999.0]
        nc.createVariable("v", "f4", ("lat", "lon"))[:] = 1.0
        nc.time_coverage_start = "2024-01-01"
    doc = create_item(path).to_dict()
    assert doc["bbox"][0] >= 4.5 and doc["bbox"][2] <= 8.5


def test_a_declared_fill_value_in_a_level_axis_is_not_in_its_extent(tmp_path: Path) -> None:
    """A depth axis declaring ``_FillValue = -999`` with its last level left
    at it: the extent ran from -999 m."""
    level = ("depth", np.array([0.0, 10.0, FILL]), {"units": "m", "positive": "down", "_FillValue": FILL})
    path = tmp_path / "levels.nc"
    ds = _grid_1d(np.arange(40.5, 45, 1.0), np.arange(10.5, 15.0, 1.0), depth=level)
    ds.to_netcdf(path, engine="netcdf4")
    dims = create_item(path).to_dict()["properties"]["cube:dimensions"]
    assert dims["depth"]["extent"] == [0.0, 10.0] and "values" not in dims["depth"]
