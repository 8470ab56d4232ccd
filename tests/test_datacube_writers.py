"""Datacubes as common writers leave them, which a probe found refused or
misread: a ``grid_mapping`` naming a variable that is not there, CDO's
absolute time axis (``day as %Y%m%d.%f``), ACDD ``time_coverage_duration``,
WRF output (``XLAT(Time, south_north, west_east)``, ``Times``) and a Zarr v2
store whose root is an array."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from producer.cli import main
from producer.errors import InputError, NoGeoreferenceError
from producer.extract import ExtractOptions, create_item
from producer.extract.datetimes import cf_datetimes, from_acdd, from_tags
from tests import cubes

# --------------------------------------------------------------------------- grid_mapping


def _utm_with_grid_mapping(path: Path, grid_mapping: str) -> Path:
    """A UTM x/y grid whose variable names ``grid_mapping`` (the CRS is in ``crs``)."""
    return cubes.write_utm_grid_mapping(path, grid_mapping, time_coverage_start="2024-05-01")


def test_grid_mapping_naming_a_missing_variable_names_it_and_the_crs_variable(tmp_path: Path) -> None:
    """Was: "the x/y coordinates have no grid_mapping naming their CRS" (it
    has one, naming a variable that is not there), with xarray's
    UserWarning printed beside it."""
    path = _utm_with_grid_mapping(tmp_path / "gm_typo.nc", "crs_utm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray's own warning must not reach the caller
        with pytest.raises(NoGeoreferenceError) as caught:
            create_item(path)
    message = str(caught.value)
    assert "gm_typo.nc" in message
    assert "'crs_utm'" in message and "'v'" in message
    assert "no variable" in message
    assert "'crs'" in message  # the variable that does hold a CRS, to name instead
    assert "grid_mapping" in message and "fixed.nc" in message
    # the fix it gives works
    with xr.open_dataset(path) as ds:
        ds["v"].attrs["grid_mapping"] = "crs"
        ds.to_netcdf(tmp_path / "fixed.nc")
    props = create_item(tmp_path / "fixed.nc").to_dict()["properties"]
    assert props["proj:code"] == "EPSG:32632"


def test_grid_mapping_warning_stays_off_the_cli_stderr(tmp_path: Path) -> None:
    path = _utm_with_grid_mapping(tmp_path / "gm_typo.nc", "nonexistent")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = CliRunner().invoke(
            main, ["register", "-c", str(tmp_path / "catalog"), "--collection", "c", str(path)]
        )
    assert result.exit_code != 0
    assert "'nonexistent'" in result.output
    assert "UserWarning" not in result.output
    assert not [w for w in seen if "grid_mapping" in str(w.message)]
    assert not (tmp_path / "catalog" / "c").exists()


# --------------------------------------------------------------------------- CDO absolute time


def _cdo_absolute(path: Path, values: list[float], units: str = "day as %Y%m%d.%f", **attrs: str) -> Path:
    """A NetCDF with CDO's absolute time axis (``cdo -a``)."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", 3)
        nc.createDimension("lon", 4)
        lat = nc.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = [10.0, 11.0, 12.0]
        lon = nc.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = [20.0, 21.0, 22.0, 23.0]
        time = nc.createVariable("time", "f8", ("time",))
        time.standard_name, time.units, time.axis = "time", units, "T"
        time.calendar = attrs.get("calendar", "proleptic_gregorian")
        time[:] = values
        pr = nc.createVariable("pr", "f4", ("time", "lat", "lon"))
        pr[:] = np.ones((len(values), 3, 4), "f4")
    return path


def test_cdo_absolute_day_axis_is_read(tmp_path: Path) -> None:
    """Was: "no datetime found"; 20240513.5 is noon on 13 May 2024."""
    path = _cdo_absolute(tmp_path / "cdo_abs.nc", [20240512.5, 20240513.5, 20240514.5])
    props = create_item(path).to_dict()["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-05-12T12:00:00Z",
        "2024-05-14T12:00:00Z",
    )
    time = props["cube:dimensions"]["time"]
    assert time["values"] == ["2024-05-12T12:00:00Z", "2024-05-13T12:00:00Z", "2024-05-14T12:00:00Z"]
    assert time["step"] == "P1D"


@pytest.mark.parametrize(
    ("value", "units", "expected"),
    [
        (20240513.25, "day as %Y%m%d.%f", datetime(2024, 5, 13, 6, tzinfo=UTC)),
        (20240513.0, "days as %Y%m%d.%f", datetime(2024, 5, 13, tzinfo=UTC)),
        (202405.0, "month as %Y%m.%f", datetime(2024, 5, 1, tzinfo=UTC)),
        (2024.0, "year as %Y.%f", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_cdo_absolute_units(value: float, units: str, expected: datetime) -> None:
    assert cf_datetimes([value], units, "proleptic_gregorian", "x.nc") == [expected]


def test_cdo_absolute_axis_with_an_impossible_date_names_it(tmp_path: Path) -> None:
    path = _cdo_absolute(tmp_path / "bad.nc", [20241301.0])
    with pytest.raises(InputError, match=r"bad\.nc.*20241301.*day as %Y%m%d\.%f"):
        create_item(path)


def test_cdo_absolute_axis_in_a_360_day_calendar(tmp_path: Path) -> None:
    path = _cdo_absolute(tmp_path / "model.nc", [20240230.0], calendar="360_day")
    assert create_item(path).to_dict()["properties"]["datetime"] == "2024-02-29T00:00:00Z"


# --------------------------------------------------------------------------- ACDD duration


@pytest.mark.parametrize(
    ("duration", "end"),
    [
        ("P1D", datetime(2024, 5, 2, tzinfo=UTC)),
        ("PT6H", datetime(2024, 5, 1, 6, tzinfo=UTC)),
        ("P1M", datetime(2024, 6, 1, tzinfo=UTC)),
        ("P1Y2M3DT4H5M6S", datetime(2025, 7, 4, 4, 5, 6, tzinfo=UTC)),
        ("P2W", datetime(2024, 5, 15, tzinfo=UTC)),
        ("PT0.5H", datetime(2024, 5, 1, 0, 30, tzinfo=UTC)),
    ],
)
def test_acdd_start_and_duration_give_a_window(duration: str, end: datetime) -> None:
    window = from_acdd({"time_coverage_start": "2024-05-01T00:00:00Z", "time_coverage_duration": duration})
    assert window is not None
    assert (window.datetime, window.start, window.end) == (None, datetime(2024, 5, 1, tzinfo=UTC), end)


def test_acdd_month_duration_ends_on_the_months_last_day() -> None:
    window = from_acdd({"time_coverage_start": "2024-01-31", "time_coverage_duration": "P1M"})
    assert window is not None and window.end == datetime(2024, 2, 29, tzinfo=UTC)


def test_acdd_explicit_end_wins_over_duration_and_a_bad_duration_is_no_window() -> None:
    window = from_acdd(
        {
            "time_coverage_start": "2024-05-01",
            "time_coverage_end": "2024-05-03",
            "time_coverage_duration": "P1D",
        }
    )
    assert window is not None and window.end == datetime(2024, 5, 3, 23, 59, 59, tzinfo=UTC)
    for bad in ("1 day", "P", "PT", "-P1D", "P0D"):
        instant = from_acdd({"time_coverage_start": "2024-05-01", "time_coverage_duration": bad})
        assert instant is not None and instant.datetime == datetime(2024, 5, 1, tzinfo=UTC), bad


def test_acdd_duration_in_gdal_tags() -> None:
    found = from_tags(
        {"NC_GLOBAL#time_coverage_start": "2024-05-01", "NC_GLOBAL#time_coverage_duration": "P1D"}
    )
    assert found is not None and (found.start, found.end) == (
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(2024, 5, 2, tzinfo=UTC),
    )


def test_netcdf_with_acdd_start_and_duration_is_a_window(tmp_path: Path) -> None:
    path = _utm_with_grid_mapping(tmp_path / "daily.nc", "crs")
    with netCDF4.Dataset(path, "a") as nc:
        nc.time_coverage_duration = "P1D"
    props = create_item(path).to_dict()["properties"]
    assert (props["datetime"], props["start_datetime"], props["end_datetime"]) == (
        None,
        "2024-05-01T00:00:00Z",
        "2024-05-02T00:00:00Z",
    )


# --------------------------------------------------------------------------- WRF


def _wrfout(
    path: Path, times: list[str], *, moving: bool = False, staggered: bool = False, coordinates: bool = True
) -> Path:
    """A wrfout file as WRF writes it: ``Times`` characters, ``XLAT``/``XLONG``
    per time step, fields naming them in ``coordinates``."""
    steps, ny, nx = len(times), 4, 5
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("Time", None)
        nc.createDimension("DateStrLen", 19)
        nc.createDimension("south_north", ny)
        nc.createDimension("west_east", nx)
        nc.MAP_PROJ = 1
        nc.START_DATE = times[0]
        chars = nc.createVariable("Times", "S1", ("Time", "DateStrLen"))
        chars[:] = netCDF4.stringtochar(np.array(times, "S19"))
        lat = nc.createVariable("XLAT", "f4", ("Time", "south_north", "west_east"))
        lat.units, lat.description = "degree_north", "LATITUDE, SOUTH IS NEGATIVE"
        lat.coordinates = "XLONG XLAT"
        lon = nc.createVariable("XLONG", "f4", ("Time", "south_north", "west_east"))
        lon.units, lon.description = "degree_east", "LONGITUDE, WEST IS NEGATIVE"
        lon.coordinates = "XLONG XLAT"
        grid_lat, grid_lon = np.meshgrid(45.0 + 0.1 * np.arange(ny), 5.0 + 0.1 * np.arange(nx), indexing="ij")
        for step in range(steps):
            shift = 0.5 * step if moving else 0.0
            lat[step] = grid_lat + shift
            lon[step] = grid_lon
        xtime = nc.createVariable("XTIME", "f4", ("Time",))
        xtime.units = xtime.description = f"minutes since {times[0].replace('_', ' ')}"
        xtime[:] = 60.0 * np.arange(steps)
        t2 = nc.createVariable("T2", "f4", ("Time", "south_north", "west_east"))
        t2.units = "K"
        if coordinates:
            t2.coordinates = "XLONG XLAT XTIME"
        else:  # as a tool that dropped the attributes leaves it
            del lat.coordinates, lon.coordinates
        t2[:] = np.full((steps, ny, nx), 290.0, "f4")
        if staggered:
            nc.createDimension("west_east_stag", nx + 1)
            lon_u = nc.createVariable("XLONG_U", "f4", ("Time", "south_north", "west_east_stag"))
            lat_u = nc.createVariable("XLAT_U", "f4", ("Time", "south_north", "west_east_stag"))
            lon_u.units, lat_u.units = "degree_east", "degree_north"
            u_lat, u_lon = np.meshgrid(
                45.0 + 0.1 * np.arange(ny), 4.95 + 0.1 * np.arange(nx + 1), indexing="ij"
            )
            lon_u[:], lat_u[:] = (
                np.broadcast_to(u_lon, (steps, ny, nx + 1)),
                np.broadcast_to(u_lat, (steps, ny, nx + 1)),
            )
            u = nc.createVariable("U", "f4", ("Time", "south_north", "west_east_stag"))
            u.units, u.coordinates = "m s-1", "XLONG_U XLAT_U XTIME"
            u[:] = np.zeros((steps, ny, nx + 1), "f4")
    return path


def test_wrf_output_is_read_its_grid_from_xlat_xlong_its_time_from_times(tmp_path: Path) -> None:
    """Was: "no horizontal coordinates (x/y or lat/lon) found"."""
    path = _wrfout(
        tmp_path / "wrfout_d01_2024-05-01_00:00:00.nc", ["2024-05-01_00:00:00", "2024-05-01_01:00:00"]
    )
    doc = create_item(path).to_dict()
    props = doc["properties"]
    assert doc["bbox"] == pytest.approx([5.0, 45.0, 5.4, 45.3], abs=1e-5)
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2024-05-01T00:00:00Z",
        "2024-05-01T01:00:00Z",
    )
    dims = props["cube:dimensions"]
    assert dims["Time"]["type"] == "temporal"
    assert dims["Time"]["values"] == ["2024-05-01T00:00:00Z", "2024-05-01T01:00:00Z"]
    assert dims["Time"]["step"] == "PT1H"
    assert (dims["west_east"]["axis"], dims["south_north"]["axis"]) == ("x", "y")
    assert props["proj:shape"] == [4, 5]
    assert props["cube:variables"]["T2"]["dimensions"] == ["Time", "south_north", "west_east"]


def test_wrf_one_step_is_an_instant_and_staggered_grids_count(tmp_path: Path) -> None:
    path = _wrfout(tmp_path / "wrfout_d02.nc", ["2024-05-01_06:00:00"], staggered=True)
    doc = create_item(path).to_dict()
    assert doc["properties"]["datetime"] == "2024-05-01T06:00:00Z"
    assert doc["bbox"][0] == pytest.approx(4.95, abs=1e-5)  # the U grid's west edge


def test_wrf_fields_without_a_coordinates_attribute_still_lie_on_xlat_xlong(tmp_path: Path) -> None:
    path = _wrfout(tmp_path / "wrfout_d01_subset.nc", ["2024-05-01_00:00:00"], coordinates=False)
    doc = create_item(path).to_dict()
    assert doc["bbox"] == pytest.approx([5.0, 45.0, 5.4, 45.3], abs=1e-5)
    assert doc["properties"]["cube:variables"]["XLAT"]["type"] == "auxiliary"


def test_wrf_moving_nest_is_refused_naming_it(tmp_path: Path) -> None:
    path = _wrfout(tmp_path / "wrfout_d03.nc", ["2024-05-01_00:00:00", "2024-05-01_01:00:00"], moving=True)
    with pytest.raises(NoGeoreferenceError, match=r"wrfout_d03\.nc.*'XLAT'.*moving") as caught:
        create_item(path)
    assert "Time" in str(caught.value)


# --------------------------------------------------------------------------- Zarr root array


def test_zarr_v2_store_whose_root_is_an_array_is_told_so(tmp_path: Path) -> None:
    """Was: "register the store's root folder", which is what was given."""
    store = tmp_path / "rootarray.zarr"
    store.mkdir()
    (store / ".zarray").write_text(
        json.dumps(
            {
                "shape": [2, 2],
                "chunks": [2, 2],
                "dtype": "<f4",
                "fill_value": 0.0,
                "order": "C",
                "filters": None,
                "compressor": None,
                "zarr_format": 2,
            }
        )
    )
    (store / ".zattrs").write_text("{}")
    with pytest.raises(InputError) as caught:
        create_item(store, ExtractOptions(datetime="2024-05-01"))
    message = str(caught.value)
    assert "rootarray.zarr" in message
    assert "array" in message and "not a group" in message
    assert "register the store's root folder" not in message
    assert "to_zarr" in message


def test_zarr_v3_store_whose_root_is_an_array_is_told_so(tmp_path: Path) -> None:
    import zarr

    zarr.create_array(str(tmp_path / "root3.zarr"), shape=(2, 2), dtype="f4", zarr_format=3)
    with pytest.raises(InputError, match=r"root3\.zarr.*array.*not a group"):
        create_item(tmp_path / "root3.zarr", ExtractOptions(datetime="2024-05-01"))


def test_cdo_absolute_day_axis_stored_as_float32_is_refused_not_misdated(tmp_path: Path) -> None:
    """float32 holds integers exactly only up to 2**24: 20240513 is stored as
    20240512 or 20240514, a date a day off read without a word."""
    path = tmp_path / "f32.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("lat", 2)
        nc.createDimension("lon", 2)
        for name, units in (("lat", "degrees_north"), ("lon", "degrees_east")):
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = units
            coord[:] = [1.0, 2.0]
        time = nc.createVariable("time", "f4", ("time",))
        time.units, time.axis = "day as %Y%m%d.%f", "T"
        time[:] = [20240513.0]
        nc.createVariable("v", "f4", ("time", "lat", "lon"))[:] = np.ones((1, 2, 2), "f4")
    with pytest.raises(InputError, match=r"f32\.nc.*float32.*double precision"):
        create_item(path)
    assert create_item(path, ExtractOptions(datetime="2024-05-13")).to_dict()["properties"]["datetime"] == (
        "2024-05-13T00:00:00Z"
    )


def test_zarr_grid_mapping_naming_a_missing_variable_names_it_and_the_crs_variable(tmp_path: Path) -> None:
    """The Zarr store of the same dataset was told "the x/y coordinates have
    no grid_mapping naming their CRS" (xarray drops the attribute naming a
    missing variable): it gets the NetCDF's precise message, with a fix
    that writes a Zarr store."""
    with xr.open_dataset(_utm_with_grid_mapping(tmp_path / "gm.nc", "crs_utm")) as ds:
        ds.load().to_zarr(tmp_path / "gm_typo.zarr", mode="w")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # xarray's own warning must not reach the caller
        with pytest.raises(NoGeoreferenceError) as caught:
            create_item(str(tmp_path / "gm_typo.zarr"))
    message = str(caught.value)
    assert "gm_typo.zarr" in message
    assert "grid_mapping attribute of variable 'v' names 'crs_utm'" in message
    assert "'crs'" in message and "to_zarr(" in message and "ncatted" not in message
    # the fix it gives works
    with xr.open_zarr(tmp_path / "gm_typo.zarr") as ds:
        ds["v"].attrs["grid_mapping"] = "crs"
        ds.to_zarr(tmp_path / "fixed.zarr")
    assert create_item(str(tmp_path / "fixed.zarr")).to_dict()["properties"]["proj:code"] == "EPSG:32632"


# --------------------------------------------------------------------------- WPS geo_em, WRF map projection

#: WRF's earth: a sphere of radius 6370 km
_WRF_SPHERE = "+a=6370000 +b=6370000 +units=m +no_defs"


def _wrf_crs(map_proj: int, truelat1: float, truelat2: float, stand_lon: float, moad_cen_lat: float) -> Any:
    from pyproj import CRS

    if map_proj == 1:
        text = f"+proj=lcc +lat_1={truelat1} +lat_2={truelat2} +lat_0={moad_cen_lat} +lon_0={stand_lon}"
    elif map_proj == 2:
        text = f"+proj=stere +lat_ts={truelat1} +lat_0={90 if truelat1 >= 0 else -90} +lon_0={stand_lon}"
    else:
        text = f"+proj=merc +lat_ts={truelat1} +lon_0={stand_lon}"
    return CRS.from_proj4(f"{text} {_WRF_SPHERE}")


def _geo_em(
    path: Path,
    *,
    map_proj: int = 1,
    cen_lat: float = 34.83,
    cen_lon: float = -81.03,
    truelat1: float = 30.0,
    truelat2: float = 60.0,
    stand_lon: float = -98.0,
    dx: float = 30000.0,
    times: str = "0000-00-00_00:00:00",
    title: str = "OUTPUT FROM GEOGRID V4.4",
) -> Path:
    """A WPS geogrid file as geogrid writes it: ``XLAT_M``/``XLONG_M`` (units
    "degrees latitude"/"degrees longitude") of a real map projection on
    WRF's sphere, centred on ``cen_lat``/``cen_lon``, ``DX`` apart; the
    staggered U/V arrays and ``CLAT``/``CLONG`` beside them; ``Times``
    ``0000-00-00_00:00:00``; the projection in global attributes."""
    from pyproj import CRS, Transformer

    nx, ny = 12, 10
    crs = _wrf_crs(map_proj, truelat1, truelat2, stand_lon, cen_lat)
    back = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
    x_c, y_c = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True).transform(cen_lon, cen_lat)

    def latlon(width: int, height: int, shift_x: float, shift_y: float) -> tuple[Any, Any]:
        xs = x_c + (np.arange(width) - (nx - 1) / 2 + shift_x) * dx
        ys = y_c + (np.arange(height) - (ny - 1) / 2 + shift_y) * dx
        lon, lat = back.transform(*np.meshgrid(xs, ys))
        return np.asarray(lat, "f4"), np.asarray(lon, "f4")

    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("Time", None)
        nc.createDimension("DateStrLen", 19)
        for name, size in (("west_east", nx), ("south_north", ny), ("west_east_stag", nx + 1)):
            nc.createDimension(name, size)
        nc.createDimension("south_north_stag", ny + 1)
        chars = nc.createVariable("Times", "S1", ("Time", "DateStrLen"))
        chars[:] = netCDF4.stringtochar(np.array([times], "S19"))
        for stagger, dims, shape in (
            ("M", ("south_north", "west_east"), (nx, ny, 0.0, 0.0)),
            ("U", ("south_north", "west_east_stag"), (nx + 1, ny, -0.5, 0.0)),
            ("V", ("south_north_stag", "west_east"), (nx, ny + 1, 0.0, -0.5)),
        ):
            lat, lon = latlon(*shape)
            for name, values, units in (
                ("XLAT", lat, "degrees latitude"),
                ("XLONG", lon, "degrees longitude"),
            ):
                var = nc.createVariable(f"{name}_{stagger}", "f4", ("Time", *dims))
                var.FieldType, var.MemoryOrder, var.units, var.stagger = np.int32(104), "XY ", units, stagger
                var[0] = values
        lat, lon = latlon(nx, ny, 0.0, 0.0)
        for name, values, units in (("CLAT", lat, "degrees latitude"), ("CLONG", lon, "degrees longitude")):
            var = nc.createVariable(name, "f4", ("Time", "south_north", "west_east"))
            var.units, var.stagger = units, "M"
            var[0] = values
        hgt = nc.createVariable("HGT_M", "f4", ("Time", "south_north", "west_east"))
        hgt.units, hgt.description, hgt.stagger = "meters MSL", "Topography height", "M"
        hgt[0] = 120.0
        nc.TITLE, nc.SIMULATION_START_DATE, nc.GRIDTYPE = title, times, "C"
        nc.DX = nc.DY = np.float32(dx)
        nc.CEN_LAT, nc.CEN_LON, nc.MOAD_CEN_LAT = (
            np.float32(cen_lat),
            np.float32(cen_lon),
            np.float32(cen_lat),
        )
        nc.TRUELAT1, nc.TRUELAT2, nc.STAND_LON = (
            np.float32(truelat1),
            np.float32(truelat2),
            np.float32(stand_lon),
        )
        nc.POLE_LAT, nc.POLE_LON, nc.MAP_PROJ = np.float32(90.0), np.float32(0.0), np.int32(map_proj)
    return path


def _register(path: Path, catalog: Path, when: str | None) -> dict[str, Any]:
    """Register ``path`` into ``catalog`` (stac-valid) and return its item."""
    import producer
    from tests.trees import assert_stac_valid_tree

    (result,) = producer.register([str(path)], catalog=str(catalog), collection="wrf", datetime=when)
    assert result.error is None, result.error
    assert_stac_valid_tree(catalog)
    return json.loads(Path(catalog, "wrf", str(result.id), f"{result.id}.json").read_text())  # type: ignore[no-any-return]


def test_wps_geo_em_is_read_its_grid_from_xlat_m_xlong_m(tmp_path: Path) -> None:
    """Was: "no horizontal coordinates (x/y or lat/lon) found" (geogrid's
    units "degrees latitude"/"degrees longitude" and its ``_M`` names were
    not known)."""
    path = _geo_em(tmp_path / "geo_em.d01.nc")
    with xr.open_dataset(path) as ds:
        lat, lon = ds["XLAT_M"].values, ds["XLONG_M"].values
    doc = create_item(path, ExtractOptions(datetime="2024-05-01T00:00:00Z")).to_dict()
    # the cells' outer edges, half a 30 km cell beyond the outermost centres
    west, south, east, north = doc["bbox"]
    assert float(lon.min()) - 0.3 < west < float(lon.min()) and float(lat.min()) - 0.3 < south < float(
        lat.min()
    )
    assert (
        float(lon.max()) < east < float(lon.max()) + 0.3 and float(lat.max()) < north < float(lat.max()) + 0.3
    )
    props = doc["properties"]
    assert props["datetime"] == "2024-05-01T00:00:00Z"
    assert props["proj:shape"] == [10, 12]
    variables = props["cube:variables"]
    assert variables["HGT_M"]["dimensions"] == ["Time", "south_north", "west_east"]
    assert variables["XLAT_M"]["type"] == "auxiliary" and variables["CLONG"]["type"] == "auxiliary"


def test_wps_geo_em_without_a_datetime_says_it_is_static_and_to_pass_one(tmp_path: Path) -> None:
    path = _geo_em(tmp_path / "geo_em.d01.nc")
    with pytest.raises(InputError) as caught:
        create_item(path)
    message = str(caught.value)
    assert "geo_em.d01.nc" in message and "'Times'" in message and "0000-00-00_00:00:00" in message
    assert "static geo_em file" in message and "Fix it with datetime=" in message
    assert "year 0 is out of range" not in message
    result = CliRunner().invoke(
        main, ["register", "-c", str(tmp_path / "catalog"), "--collection", "c", str(path)]
    )
    assert result.exit_code != 0
    assert "static geo_em file" in result.output and "--datetime" in result.output
    assert not (tmp_path / "catalog" / "c").exists()


@pytest.mark.parametrize(
    ("map_proj", "params"),
    [
        (1, {}),  # Lambert conformal over the US, as the WPS tutorial's domain
        (1, {"cen_lat": -35.0, "cen_lon": 150.0, "truelat1": -30.0, "truelat2": -60.0, "stand_lon": 150.0}),
        (2, {"cen_lat": 75.0, "cen_lon": -40.0, "truelat1": 60.0, "truelat2": 90.0, "stand_lon": -45.0}),
        (3, {"cen_lat": 10.0, "cen_lon": 179.0, "truelat1": 10.0, "truelat2": 0.0, "stand_lon": 0.0}),
    ],
)
def test_wrf_map_projection_gives_the_crs_and_transform(
    tmp_path: Path, map_proj: int, params: dict[str, float]
) -> None:
    """Was: no ``proj:*`` but the shape, though MAP_PROJ/TRUELAT1/2/
    STAND_LON/DX/DY name the grid exactly: a loader could not place the
    cells. The CRS (on WRF's sphere) and transform are checked against
    the file's own lat/lon: every corner, projected, is a cell centre."""
    from pyproj import CRS, Transformer

    path = _geo_em(tmp_path / "geo_em.d01.nc", map_proj=map_proj, **params)
    doc = _register(path, tmp_path / "catalog", "2024-05-01T00:00:00Z")
    props = doc["properties"]
    crs = CRS.from_wkt(props["proj:wkt2"])
    assert props["proj:projjson"] and props["proj:code"] is None
    assert crs.ellipsoid.semi_major_metre == crs.ellipsoid.semi_minor_metre == 6370000.0
    assert props["proj:shape"] == [10, 12]
    step_x, _, west, _, step_y, north = props["proj:transform"][:6]
    assert (step_x, step_y) == (30000.0, -30000.0)
    with xr.open_dataset(path) as ds:
        lat, lon = ds["XLAT_M"].values[0], ds["XLONG_M"].values[0]
    to_map = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    for row, col in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        x, y = to_map.transform(float(lon[row, col]), float(lat[row, col]))
        # the file's first row is the southernmost; the transform is north-up
        assert x == pytest.approx(west + step_x * ((col % 12) + 0.5), abs=2.0)
        assert y == pytest.approx(north + step_y * (9 - (row % 10) + 0.5), abs=2.0)
    assert doc["bbox"][1] <= float(lat.min()) and doc["bbox"][3] >= float(lat.max())
    dims = props["cube:dimensions"]
    assert dims["west_east"]["step"] == 30000.0 and dims["south_north"]["axis"] == "y"


def test_wrf_projection_that_does_not_match_the_lat_lon_gives_no_transform(tmp_path: Path) -> None:
    """DX saying 12 km of a grid whose points are 30 km apart (an attribute
    edited, or copied from another domain): the lat/lon stay the grid, no
    transform is made up from the attributes."""
    path = _geo_em(tmp_path / "geo_em.d01.nc")
    with netCDF4.Dataset(path, "a") as nc:
        nc.DX = nc.DY = np.float32(12000.0)
    props = create_item(path, ExtractOptions(datetime="2024-05-01T00:00:00Z")).to_dict()["properties"]
    assert "proj:transform" not in props and "proj:wkt2" not in props
    assert props["proj:shape"] == [10, 12]


def test_wrf_staggered_fields_keep_the_projection_of_every_grid(tmp_path: Path) -> None:
    """A field on the U grid beside the mass grid: each is a regular grid
    in the same projection, so the item keeps the CRS (not one grid's
    transform), and the footprint covers both."""
    path = _geo_em(tmp_path / "geo_em.d01.nc")
    with netCDF4.Dataset(path, "a") as nc:
        u = nc.createVariable("U", "f4", ("Time", "south_north", "west_east_stag"))
        u.units, u.stagger = "m s-1", "U"
        u[0] = 0.0
    doc = create_item(path, ExtractOptions(datetime="2024-05-01T00:00:00Z")).to_dict()
    props = doc["properties"]
    assert props["proj:wkt2"] and "proj:transform" not in props
    with xr.open_dataset(path) as ds:
        west_u = float(ds["XLONG_U"].min())
    assert doc["bbox"][0] <= west_u


@pytest.mark.parametrize("name", ["wrfout_d01_2024-05-01_00:00:00", "wrfout_d02_2024-05-01_00_00_00"])
def test_wrf_output_named_as_wrf_names_it_without_a_suffix_is_read(tmp_path: Path, name: str) -> None:
    """WRF names its output ``wrfout_d01_2024-05-01_00:00:00``, no ``.nc``:
    such a file went to GDAL, which failed with "cannot open subdataset
    'HDF5:...://T2'" (the colons of the name)."""
    path = _wrfout(tmp_path / name, ["2024-05-01_00:00:00", "2024-05-01_01:00:00"])
    doc = _register(path, tmp_path / "catalog", None)
    assert doc["bbox"] == pytest.approx([5.0, 45.0, 5.4, 45.3], abs=1e-5)
    assert doc["properties"]["end_datetime"] == "2024-05-01T01:00:00Z"
    assert doc["assets"]["data"]["type"] == "application/netcdf"


def test_a_folder_of_wrf_output_named_as_wrf_names_it_registers_each_file(tmp_path: Path) -> None:
    """A folder holding ``wrfout_d01_...`` files (no ``.nc``, as WRF writes
    them) was "no products found ... it holds no file", though each file
    named alone registers: the folder search takes WRF's names too."""
    import producer

    data = tmp_path / "run"
    data.mkdir()
    _wrfout(data / "wrfout_d01_2024-05-01_00:00:00", ["2024-05-01_00:00:00", "2024-05-01_01:00:00"])
    _wrfout(data / "wrfout_d01_2024-05-01_02:00:00", ["2024-05-01_02:00:00", "2024-05-01_03:00:00"])
    (data / "namelist.output").write_text("&time_control\n/\n")  # not a product
    results = producer.register([str(data)], catalog=str(tmp_path / "catalog"), collection="wrf")
    assert [r.error for r in results] == [None, None]
    assert sorted(Path(str(r.source)).name for r in results) == [
        "wrfout_d01_2024-05-01_00:00:00",
        "wrfout_d01_2024-05-01_02:00:00",
    ]
