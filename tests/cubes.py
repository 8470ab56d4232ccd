"""Tiny real NetCDF files and Zarr stores, written with xarray/netCDF4/zarr,
each named after the CF edge case it carries. Times are written as raw
numbers with CF ``units``/``calendar`` attributes (exactly what a model or
an NCO subset writes), never through xarray's datetime encoding.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

#: the UTM grid of :func:`write_two_variables`: 8 x 6 cells of 100 m from (500000, 5600000)
UTM_X0, UTM_Y0, UTM_RES = 500_000.0, 5_600_000.0, 100.0
#: the ACDD window an NCO subset kept from its 1950-1999 parent file
STALE_ACDD = ("1950-01-01T00:00:00Z", "1999-12-31T23:59:59Z")

_UTM33_WKT = (
    'PROJCRS["WGS 84 / UTM zone 33N",BASEGEOGCRS["WGS 84",DATUM["World Geodetic System 1984",'
    'ELLIPSOID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],ID["EPSG",4326]],'
    'CONVERSION["UTM zone 33N",METHOD["Transverse Mercator",ID["EPSG",9807]],'
    'PARAMETER["Latitude of natural origin",0],PARAMETER["Longitude of natural origin",15],'
    'PARAMETER["Scale factor at natural origin",0.9996],PARAMETER["False easting",500000],'
    'PARAMETER["False northing",0]],CS[Cartesian,2],AXIS["easting",east,ORDER[1],LENGTHUNIT["metre",1]],'
    'AXIS["northing",north,ORDER[2],LENGTHUNIT["metre",1]],ID["EPSG",32633]]'
)


def _dir(dirpath: str | os.PathLike[str]) -> Path:
    path = Path(dirpath)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _time(values: list[float], units: str, calendar: str = "standard", **attrs: Any) -> xr.Variable:
    return xr.Variable(
        ("time",),
        np.asarray(values, dtype="float64"),
        {"units": units, "calendar": calendar, "standard_name": "time", **attrs},
    )


def _latlon(height: int = 5, width: int = 4) -> dict[str, xr.Variable]:
    lat = xr.Variable(("lat",), 45.0 + 0.25 * np.arange(height), {"units": "degrees_north"})
    lon = xr.Variable(("lon",), 7.0 + 0.25 * np.arange(width), {"units": "degrees_east"})
    return {"lat": lat, "lon": lon}


def _field(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype="float32").reshape(shape)


def two_variables_dataset() -> xr.Dataset:
    """temperature and humidity on (time 3 daily steps, level 2, y 6, x 8),
    UTM 33N through a CF ``grid_mapping`` variable."""
    xs = UTM_X0 + UTM_RES / 2 + UTM_RES * np.arange(8)
    ys = UTM_Y0 - UTM_RES / 2 - UTM_RES * np.arange(6)
    shape = (3, 2, 6, 8)
    common = {"grid_mapping": "crs"}
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "y", "x"),
                _field(*shape),
                {"units": "K", "long_name": "air temperature", "_FillValue": np.float32(-9999.0), **common},
            ),
            "humidity": (
                ("time", "level", "y", "x"),
                _field(*shape) / 100,
                {"units": "1", "long_name": "relative humidity", **common},
            ),
            "crs": ((), np.int32(0), {"grid_mapping_name": "transverse_mercator", "crs_wkt": _UTM33_WKT}),
        },
        coords={
            "time": _time([0.0, 1.0, 2.0], "days since 2024-03-01 00:00:00"),
            "level": ("level", np.array([1000.0, 850.0]), {"units": "hPa", "positive": "down", "axis": "Z"}),
            "y": ("y", ys, {"standard_name": "projection_y_coordinate", "units": "m"}),
            "x": ("x", xs, {"standard_name": "projection_x_coordinate", "units": "m"}),
        },
    )


def write_two_variables(dirpath: str | os.PathLike[str]) -> Path:
    """``two_variables.nc`` (NetCDF-4): see :func:`two_variables_dataset`."""
    path = _dir(dirpath) / "two_variables.nc"
    two_variables_dataset().to_netcdf(path, engine="netcdf4")
    return path


def write_latlon_no_grid_mapping(dirpath: str | os.PathLike[str]) -> Path:
    """``latlon_transposed.nc`` (classic): CF lat/lon, no grid_mapping, the
    variable stored as (lon, lat); one time step whose bounds cover 2024-06."""
    coords = _latlon()
    time = _time([15.0], "hours since 2024-06-01", bounds="time_bnds")
    ds = xr.Dataset(
        {
            "sst": (("time", "lon", "lat"), _field(1, 4, 5), {"units": "degC"}),
            "time_bnds": (("time", "nv"), np.array([[0.0, 720.0]])),
        },
        coords={"time": time, **coords},
    )
    path = _dir(dirpath) / "latlon_transposed.nc"
    ds.to_netcdf(path, format="NETCDF3_64BIT", engine="netcdf4")
    return path


def write_curvilinear(dirpath: str | os.PathLike[str]) -> Path:
    """``curvilinear.nc``: 2-D lat/lon arrays on (nj 6, ni 5), a grid rotated
    by 30 degrees around (10 E, 60 N); no time axis, the date in ACDD."""
    nj, ni = 6, 5
    jj, ii = np.meshgrid(np.arange(nj), np.arange(ni), indexing="ij")
    angle = np.radians(30)
    lon = 10.0 + 0.1 * (ii * np.cos(angle) - jj * np.sin(angle))
    lat = 60.0 + 0.1 * (ii * np.sin(angle) + jj * np.cos(angle))
    ds = xr.Dataset(
        {"chl": (("nj", "ni"), _field(nj, ni), {"units": "mg m-3", "coordinates": "nav_lat nav_lon"})},
        coords={
            "nav_lat": (("nj", "ni"), lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "nav_lon": (("nj", "ni"), lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"time_coverage_start": "2024-07-01T00:00:00Z", "time_coverage_end": "2024-07-31T23:59:59Z"},
    )
    path = _dir(dirpath) / "curvilinear.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_valid_time(dirpath: str | os.PathLike[str]) -> Path:
    """``era5_like.nc``: ERA5's ``valid_time`` (no standard_name) in
    ``days since 1950-1-1``: 2 steps, 1 Jan 2000 00:00 and 06:00."""
    start = 18262.0  # 2000-01-01 in days since 1950-01-01
    valid_time = xr.Variable(
        ("valid_time",), np.array([start, start + 0.25]), {"units": "days since 1950-1-1"}
    )
    ds = xr.Dataset(
        {"t2m": (("valid_time", "lat", "lon"), _field(2, 5, 4), {"units": "K"})},
        coords={"valid_time": valid_time, **_latlon()},
    )
    path = _dir(dirpath) / "era5_like.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_calendar(dirpath: str | os.PathLike[str], calendar: str = "360_day") -> Path:
    """``model_<calendar>.nc``: days 0 and 59 since 2000-01-01 on ``calendar``
    (360_day: 2000-01-01 and 2000-02-30, a date Gregorian has not)."""
    ds = xr.Dataset(
        {"pr": (("time", "lat", "lon"), _field(2, 5, 4), {"units": "kg m-2 s-1"})},
        coords={"time": _time([0.0, 59.0], "days since 2000-01-01", calendar), **_latlon()},
    )
    path = _dir(dirpath) / f"model_{calendar}.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_stale_acdd(dirpath: str | os.PathLike[str]) -> Path:
    """``subset_1999.nc``: a time axis in 1999 (Jan and Dec) under ACDD
    attributes copied from the 1950-1999 parent (:data:`STALE_ACDD`)."""
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), _field(2, 5, 4), {"units": "K"})},
        coords={"time": _time([0.0, 334.0], "days since 1999-01-01"), **_latlon()},
        attrs={"time_coverage_start": STALE_ACDD[0], "time_coverage_end": STALE_ACDD[1]},
    )
    path = _dir(dirpath) / "subset_1999.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_acdd_present(dirpath: str | os.PathLike[str]) -> Path:
    """``ongoing.nc``: no time coordinate; ACDD start 2020-01-01 and end ``present``."""
    ds = xr.Dataset(
        {"v": (("lat", "lon"), _field(5, 4))},
        coords=_latlon(),
        attrs={"time_coverage_start": "2020-01-01", "time_coverage_end": "present"},
    )
    path = _dir(dirpath) / "ongoing.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_no_coordinates(dirpath: str | os.PathLike[str]) -> Path:
    """``nogeo_20240101.nc``: a variable on bare (row, col) dimensions."""
    ds = xr.Dataset({"v": (("row", "col"), _field(5, 4))})
    path = _dir(dirpath) / "nogeo_20240101.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_many_variables(dirpath: str | os.PathLike[str], count: int = 20, size: int = 64) -> Path:
    """``many_<count>.nc``: ``count`` float32 variables on (time 4, lat, lon) (for the benchmark)."""
    lat = xr.Variable(("lat",), 40.0 + 0.01 * np.arange(size), {"units": "degrees_north"})
    lon = xr.Variable(("lon",), 5.0 + 0.01 * np.arange(size), {"units": "degrees_east"})
    data = {
        f"var{i:02d}": (("time", "lat", "lon"), _field(4, size, size), {"units": "1"}) for i in range(count)
    }
    ds = xr.Dataset(
        data, coords={"time": _time([0.0, 1.0, 2.0, 3.0], "days since 2024-01-01"), "lat": lat, "lon": lon}
    )
    path = _dir(dirpath) / f"many_{count}.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_zarr(
    target: str | os.PathLike[str],
    *,
    zarr_format: int = 3,
    consolidated: bool = True,
    storage_options: dict | None = None,
) -> str:
    """The two-variable cube (:func:`two_variables_dataset`) as a Zarr store
    at ``target`` (a local ``.zarr`` folder or an ``s3://`` prefix)."""
    ds = two_variables_dataset()
    for var in ds.variables.values():
        var.encoding.clear()
    with warnings.catch_warnings():  # zarr notes that v3 consolidated metadata is an extension
        warnings.simplefilter("ignore", UserWarning)
        ds.to_zarr(
            os.fspath(target),
            mode="w",
            zarr_format=zarr_format,
            consolidated=consolidated,
            storage_options=storage_options,
        )
    return os.fspath(target)


def write_cf_parameters_only(dirpath: str | os.PathLike[str]) -> Path:
    """``polar_cf.nc``: a polar stereographic grid (20 x 20 cells of 10 km
    around the pole) whose grid_mapping variable holds CF parameters only,
    no WKT; the date in ACDD."""
    x = xr.Variable(
        ("x",), -95_000.0 + 10_000.0 * np.arange(20), {"standard_name": "projection_x_coordinate"}
    )
    y = xr.Variable(("y",), 95_000.0 - 10_000.0 * np.arange(20), {"standard_name": "projection_y_coordinate"})
    mapping = {
        "grid_mapping_name": "polar_stereographic",
        "straight_vertical_longitude_from_pole": -45.0,
        "latitude_of_projection_origin": 90.0,
        "standard_parallel": 70.0,
        "false_easting": 0.0,
        "false_northing": 0.0,
        "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563,
    }
    ds = xr.Dataset(
        {
            "ice": (("y", "x"), _field(20, 20), {"grid_mapping": "polar_stereographic"}),
            "polar_stereographic": ((), np.int32(0), mapping),
        },
        coords={"x": x, "y": y},
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )
    path = _dir(dirpath) / "polar_cf.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_lon_0_360(dirpath: str | os.PathLike[str]) -> Path:
    """``pacific.nc``: longitudes 176..184 E in the 0-360 convention (across
    the antimeridian), 2-degree cells, latitudes 10..14 N."""
    lat = xr.Variable(("lat",), 10.0 + np.arange(5), {"units": "degrees_north"})
    lon = xr.Variable(("lon",), 176.0 + 2.0 * np.arange(5), {"units": "degrees_east"})
    ds = xr.Dataset(
        {"v": (("time", "lat", "lon"), _field(1, 5, 5))},
        coords={"time": _time([0.0], "days since 2024-01-01"), "lat": lat, "lon": lon},
    )
    path = _dir(dirpath) / "pacific.nc"
    ds.to_netcdf(path, engine="netcdf4")
    return path


def write_two_grids(dirpath: str | os.PathLike[str], *, utm_regional: bool = False) -> Path:
    """``two_grids.nc``: ``regional`` on a small grid first (lat/lon around
    10-11 E 49-50 N, or with ``utm_regional`` the UTM 33N grid of
    :func:`two_variables_dataset` through its ``grid_mapping``), then
    ``global`` on a lat/lon grid of 10 degree cells from 170 W to 170 E,
    80 S to 80 N (centres); one time step on 2024-05-01."""
    coords: dict[str, Any] = {"time": _time([0.0], "days since 2024-05-01")}
    data: dict[str, Any] = {}
    if utm_regional:
        utm = two_variables_dataset()
        coords.update(x=utm["x"], y=utm["y"])
        data["regional"] = (("time", "y", "x"), _field(1, 6, 8), {"grid_mapping": "crs"})
        data["crs"] = utm["crs"]
    else:
        coords["lat"] = ("lat", np.linspace(50, 49, 5), {"units": "degrees_north"})
        coords["lon"] = ("lon", np.linspace(10, 11, 4), {"units": "degrees_east"})
        data["regional"] = (("time", "lat", "lon"), _field(1, 5, 4))
    coords["lat_g"] = (
        "lat_g",
        np.linspace(80, -80, 17),
        {"units": "degrees_north", "standard_name": "latitude"},
    )
    coords["lon_g"] = (
        "lon_g",
        np.linspace(-170, 170, 35),
        {"units": "degrees_east", "standard_name": "longitude"},
    )
    data["global"] = (("time", "lat_g", "lon_g"), _field(1, 17, 35))
    path = _dir(dirpath) / "two_grids.nc"
    xr.Dataset(data, coords=coords).to_netcdf(path, engine="netcdf4")
    return path


def write_data_in_group(dirpath: str | os.PathLike[str]) -> Path:
    """``grouped.nc`` (NetCDF-4): an empty root group; lat/lon and ``t`` in
    the group ``/data`` (a CF-correct cube, one group down)."""
    import netCDF4

    path = _dir(dirpath) / "grouped.nc"
    with netCDF4.Dataset(path, "w") as nc:
        group = nc.createGroup("data")
        group.createDimension("lat", 5)
        group.createDimension("lon", 4)
        lat = group.createVariable("lat", "f8", ("lat",))
        lat[:], lat.units = np.linspace(50, 49, 5), "degrees_north"
        lon = group.createVariable("lon", "f8", ("lon",))
        lon[:], lon.units = np.linspace(10, 11, 4), "degrees_east"
        group.createVariable("t", "f4", ("lat", "lon"))[:] = 1
    return path


def write_noise_t2m(path: str | os.PathLike[str], rows: int, cols: int) -> Path:
    """A NetCDF-4 at ``path`` whose data dominates: ``t2m``, ``rows`` x
    ``cols`` float32 of noise (not compressible) in chunks of 500 x 1000,
    on small 1-D lat/lon (60N-20N, 30W-70E) and one time (2024-05-01); the
    data is written 500 rows at a time (never held whole). ``rows`` a
    multiple of 500."""
    import netCDF4

    rng = np.random.default_rng(7)
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", 1)
        nc.createDimension("lat", rows)
        nc.createDimension("lon", cols)
        time = nc.createVariable("time", "f8", ("time",))
        time.units = "days since 2024-05-01"
        time[:] = [0.0]
        lat = nc.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(60.0, 20.0, rows)
        lon = nc.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = np.linspace(-30.0, 70.0, cols)
        t2m = nc.createVariable("t2m", "f4", ("time", "lat", "lon"), chunksizes=(1, 500, 1000))
        t2m.units = "K"
        for start in range(0, rows, 500):
            t2m[0, start : start + 500] = rng.random((500, cols), dtype="f4")
    return Path(path)


def write_utm_grid_mapping(path: str | os.PathLike[str], grid_mapping: str, **attrs: str) -> Path:
    """A 5 x 4 UTM (EPSG:32632) x/y grid at ``path`` whose variable ``v``
    names ``grid_mapping`` (the CRS is in the variable ``crs``: any other
    name is one the file lacks); ``attrs``: global attributes."""
    import netCDF4
    from pyproj import CRS

    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", 4)
        nc.createDimension("x", 5)
        x = nc.createVariable("x", "f8", ("x",))
        x.standard_name, x.units = "projection_x_coordinate", "m"
        x[:] = 500000.0 + 100.0 * np.arange(5)
        y = nc.createVariable("y", "f8", ("y",))
        y.standard_name, y.units = "projection_y_coordinate", "m"
        y[:] = 5000000.0 - 100.0 * np.arange(4)
        crs = nc.createVariable("crs", "i4")
        crs.crs_wkt = CRS.from_epsg(32632).to_wkt()
        v = nc.createVariable("v", "f4", ("y", "x"))
        v.grid_mapping = grid_mapping
        v[:] = np.ones((4, 5), "f4")
        for name, value in attrs.items():
            nc.setncattr(name, value)
    return Path(path)
