"""NetCDF as pipelines write them, found published wrong by a probe.

Projected x/y coordinates in kilometres (Daymet's Lambert grid, sea-ice
polar stereographic grids): CF lets ``projection_x_coordinate`` be in any
length unit, and GDAL reads ``km`` as the CRS's metres. They were taken
as metres, a footprint a thousand times too small around the origin.

A file created before its first time step (an unlimited ``time`` of length
0) failed schema validation, or was told to get the time coordinate it has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import rasterio
import xarray as xr

import producer
from producer.errors import InputError
from producer.extract import create_item

_POLAR = {
    "grid_mapping_name": "polar_stereographic",
    "straight_vertical_longitude_from_pole": -45.0,
    "latitude_of_projection_origin": 90.0,
    "standard_parallel": 70.0,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "semi_major_axis": 6378137.0,
    "inverse_flattening": 298.257223563,
}


def _polar_grid(path: Path, units: str, factor: float) -> Path:
    """A 100 x 100 grid of 10 km cells around the North Pole, its x/y
    written in ``units`` (``factor`` of them per metre)."""
    centres = np.arange(-495_000.0, 500_000.0, 10_000.0) * factor
    xr.Dataset(
        {
            "ice": (("y", "x"), np.zeros((100, 100), "f4"), {"grid_mapping": "crs"}),
            "crs": ((), np.int32(0), _POLAR),
        },
        coords={
            "x": ("x", centres, {"units": units, "standard_name": "projection_x_coordinate"}),
            "y": ("y", centres[::-1], {"units": units, "standard_name": "projection_y_coordinate"}),
        },
        attrs={"time_coverage_start": "2024-05-01"},
    ).to_netcdf(path)
    return path


@pytest.mark.parametrize("units", ["km", "kilometres", "kilometer"])
def test_projected_coordinates_in_kilometres_are_the_crs_metres(tmp_path: Path, units: str) -> None:
    metres = create_item(_polar_grid(tmp_path / "ice_m.nc", "m", 1.0)).to_dict()
    kilometres = create_item(_polar_grid(tmp_path / "ice_km.nc", units, 0.001)).to_dict()
    for key in ("bbox", "geometry"):
        assert kilometres[key] == metres[key]
    for key in ("proj:transform", "proj:bbox", "cube:dimensions"):
        assert kilometres["properties"][key] == metres["properties"][key]
    assert kilometres["bbox"][1] == pytest.approx(83.48, abs=0.01)  # the corners, ~707 km from the pole
    (band,) = kilometres["assets"]["data"]["bands"]
    assert band["raster:spatial_resolution"] == pytest.approx(10_000.0)
    if units != "km":
        return  # GDAL knows "km" only (for the others it warns that the grid is "likely wrong")
    # the grid a loader gets is the one GDAL reads from the file
    with rasterio.open(f"netcdf:{tmp_path / 'ice_km.nc'}:ice") as src:
        assert kilometres["properties"]["proj:transform"] == pytest.approx(list(src.transform)[:6])


def _empty_time_axis(path: Path, **attrs: str) -> Path:
    """A NetCDF created before its first time step was written: an
    unlimited ``time`` dimension of length 0."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", 4)
        nc.createDimension("lon", 5)
        time = nc.createVariable("time", "f8", ("time",))
        time.units = "hours since 2024-01-01"
        time.standard_name = "time"
        for name, start, units in (("lat", 40.0, "degrees_north"), ("lon", 5.0, "degrees_east")):
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = units
            coord[:] = np.arange(nc.dimensions[name].size) + start
        nc.createVariable("tas", "f4", ("time", "lat", "lon"))
        nc.setncatts(attrs)
    return path


@pytest.mark.parametrize(
    ("attrs", "overrides"),
    [({"time_coverage_start": "2024-01-01T00:00:00Z"}, {}), ({}, {"datetime": "2024-01-01T00:00:00Z"})],
)
def test_an_empty_time_axis_with_a_datetime_registers_a_valid_item(
    tmp_path: Path, attrs: dict[str, str], overrides: dict[str, str]
) -> None:
    """The item of such a file (its datetime from ACDD attributes or given)
    listed the axis with ``values: []``, which the datacube schema refuses:
    the product failed as "not valid STAC ... fix the code that built it"."""
    path = _empty_time_axis(tmp_path / "tas_2024.nc", **attrs)
    catalog = tmp_path / "stac"
    (result,) = producer.register([path], catalog=catalog, collection="cmip", **overrides)
    assert result.action == "created", result.error
    item = json.loads(Path(result.href).read_text())
    assert item["properties"]["cube:dimensions"]["time"] == {
        "type": "temporal",
        "extent": [None, None],
        "description": "no time steps written yet",
    }
    assert item["properties"]["datetime"] == "2024-01-01T00:00:00Z"
    assert producer.validate_catalog(catalog) == []


def test_an_empty_time_axis_without_a_datetime_says_it_is_empty(tmp_path: Path) -> None:
    """Without one, the error told the caller to give the file the CF time
    coordinate it already has."""
    path = _empty_time_axis(tmp_path / "tas_2024.nc")
    catalog = tmp_path / "stac"
    (result,) = producer.register([path], catalog=catalog, collection="cmip")
    assert result.action == "error"
    assert "time coordinate 'time' holds no time step yet" in result.error
    assert "Give it a CF time coordinate" not in result.error
    assert "tas_2024.nc" in result.error
    assert not (catalog / "cmip" / "tas_2024").exists()


@pytest.mark.parametrize(
    ("dtype", "units"), [("f8", "days since 2024-01-01"), ("i4", "hours since 2024-01-01")]
)
def test_time_steps_never_written_are_named_as_such(tmp_path: Path, dtype: str, units: str) -> None:
    """A time axis of 3 steps of which the writer wrote 2 (registered before
    it finished): the third holds the netCDF library's default fill value.
    It was refused as an unreadable axis ("CF time units are '<days|...>
    since <date>'", for units that are right), or as a year -242960."""
    path = tmp_path / "tas_2024.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", 3), ("lat", 4), ("lon", 5)):
            nc.createDimension(name, size)
        time = nc.createVariable("time", dtype, ("time",))
        time.units, time.standard_name = units, "time"
        time[0:2] = [0, 6]
        for name, start, unit in (("lat", 40.0, "degrees_north"), ("lon", 5.0, "degrees_east")):
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = unit
            coord[:] = np.arange(nc.dimensions[name].size) + start
        nc.createVariable("tas", "f4", ("time", "lat", "lon"))[0:2] = 280.0
    (result,) = producer.register([path], catalog=tmp_path / "stac", collection="cmip")
    assert result.action == "error"
    assert "1 of its 3 time steps holds the netCDF default fill value" in result.error
    assert "never written" in result.error and "tas_2024.nc" in result.error
    assert "CF time units are" not in result.error
    assert any(hint.option == "datetime" for hint in result.hints)
    assert not (tmp_path / "stac" / "cmip" / "tas_2024").exists()


def test_a_regular_grid_stored_in_float32_is_regular(tmp_path: Path) -> None:
    """Lat/lon written as float32 (most L3/L4 grids): a 0.01 degree step at
    100 E rounds to steps from 0.0099945 to 0.0100021, past the 1e-4
    relative tolerance, so the grid was taken as irregular: no
    ``proj:transform`` (a loader cannot place it) and a footprint over the
    cell centres, half a cell short on every side. GDAL reads it regular."""
    lon = (np.arange(2000) * 0.01 + 100.005).astype("f4")
    lat = (30.995 - np.arange(1000) * 0.01).astype("f4")
    path = tmp_path / "lst_20240501.nc"
    xr.Dataset(
        {"lst": (("lat", "lon"), np.zeros((1000, 2000), "f4"))},
        coords={
            "lon": ("lon", lon, {"units": "degrees_east"}),
            "lat": ("lat", lat, {"units": "degrees_north"}),
        },
    ).to_netcdf(path)
    item = create_item(path).to_dict()
    assert item["bbox"] == pytest.approx([100.0, 21.0, 120.0, 31.0], abs=1e-5)
    with rasterio.open(f"netcdf:{path}:lst") as src:
        assert item["properties"]["proj:transform"] == pytest.approx(list(src.transform)[:6], abs=1e-9)
    (band,) = item["assets"]["data"]["bands"]
    assert band["raster:spatial_resolution"] == pytest.approx(1000, rel=0.2)


@pytest.mark.parametrize(
    ("dtype", "key", "fill"), [("f8", "_FillValue", -9999.0), ("i4", "missing_value", -1)]
)
def test_time_steps_holding_the_declared_fill_value_are_refused_not_misdated(
    tmp_path: Path, dtype: str, key: str, fill: float
) -> None:
    """A time axis with an explicit fill value (-9999 ``days since
    2024-01-01``) whose third step was left at it: the coordinate's fill
    value was taken as a time, and the item was published as starting in
    1996 with nothing said."""
    path = tmp_path / "sst_2024.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", 3), ("lat", 4), ("lon", 5)):
            nc.createDimension(name, size)
        time = nc.createVariable(
            "time", dtype, ("time",), **({"fill_value": fill} if key == "_FillValue" else {})
        )
        if key != "_FillValue":
            time.setncattr(key, np.asarray(fill, dtype))
        time.units = "days since 2024-01-01"
        time.set_auto_mask(False)
        time[:] = np.asarray([0, 1, fill], dtype)
        for name, start, unit in (("lat", 40.0, "degrees_north"), ("lon", 5.0, "degrees_east")):
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = unit
            coord[:] = np.arange(nc.dimensions[name].size) + start
        nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = 280.0
    (result,) = producer.register([path], catalog=tmp_path / "stac", collection="sst")
    assert result.action == "error"
    assert "sst_2024.nc" in result.error and "'time'" in result.error
    assert f"1 of its 3 time steps holds its fill value {fill:g} ({key})" in result.error
    assert "Fix it with datetime=" in result.error
    assert any(hint.option == "datetime" for hint in result.hints)
    assert not (tmp_path / "stac").exists() or not (tmp_path / "stac" / "sst" / "sst_2024").exists()
    # a datetime given by the caller still registers it
    (given,) = producer.register([path], catalog=tmp_path / "stac", collection="sst", datetime="2024-01-01")
    assert given.error is None


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_time_steps_holding_a_declared_fill_value_are_refused(tmp_path: Path, zarr_format: int) -> None:
    """The same in a Zarr store whose time array declares fill_value -9999
    and has a step never written (a chunk never stored reads as it); in v3
    xarray keeps that fill_value in the encoding only."""
    import zarr

    path = tmp_path / "sst.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)

    def array(name: str, dims: list[str], shape: tuple[int, ...], **kwargs: Any) -> Any:
        named = {"dimension_names": dims} if zarr_format == 3 else {}
        created = group.create_array(name, shape=shape, dtype="f8", **named, **kwargs)
        if zarr_format == 2:
            created.attrs["_ARRAY_DIMENSIONS"] = dims
        return created

    array("lon", ["lon"], (5,)).attrs["units"] = "degrees_east"
    group["lon"][:] = np.arange(5.0, 10.0)
    array("lat", ["lat"], (4,)).attrs["units"] = "degrees_north"
    group["lat"][:] = np.arange(40.0, 44.0)
    time = array("time", ["time"], (3,), chunks=(1,), fill_value=-9999.0)
    time[0:2] = [0.0, 1.0]
    time.attrs["units"] = "days since 2024-01-01"
    array("sst", ["time", "lat", "lon"], (3, 4, 5))[:] = 1.0
    zarr.consolidate_metadata(str(path))
    with pytest.raises(InputError, match=r"sst\.zarr.*1 of its 3 time steps holds its fill value -9999"):
        create_item(str(path))


def test_a_time_axis_left_at_its_fill_value_names_the_datetime_flag_on_the_cli(tmp_path: Path) -> None:
    """ "or pass the datetime option" reached CLI users as it was, before
    the hint that names the flag: the way out is named once, as each caller
    spells it (``--datetime`` on the CLI, ``datetime=`` for Python)."""
    from click.testing import CliRunner

    from producer.cli import main

    path = tmp_path / "sst_2024.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", 2), ("lat", 4), ("lon", 5)):
            nc.createDimension(name, size)
        time = nc.createVariable("time", "f8", ("time",), fill_value=-9999.0)
        time.units = "days since 2024-01-01"
        time.set_auto_mask(False)
        time[:] = np.asarray([0, -9999.0])
        for name, start, unit in (("lat", 40.0, "degrees_north"), ("lon", 5.0, "degrees_east")):
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = unit
            coord[:] = np.arange(nc.dimensions[name].size) + start
        nc.createVariable("sst", "f4", ("time", "lat", "lon"))[:] = 280.0
    (result,) = producer.register([path], catalog=tmp_path / "stac", collection="sst")
    assert "datetime option" not in result.error
    assert "Fix it with datetime='2024-05-13T10:00:00Z'" in result.error
    out = CliRunner().invoke(
        main, ["register", str(path), "-c", str(tmp_path / "stac"), "--collection", "sst", "--json"]
    )
    assert out.exit_code == 1, out.output
    error = json.loads(out.output.splitlines()[0])["error"]
    assert "datetime option" not in error and "datetime=" not in error, error
    assert "Fix it with --datetime 2024-05-13T10:00:00Z" in error, error
