"""CF edge cases a probe found published wrong: ``_Unsigned`` bytes of a
classic NetCDF, climatology bounds, a Zarr store with its data in a group,
a time axis in year 0, and a datacube x extent across the antimeridian."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import producer
from producer.errors import InputError
from producer.extract import ExtractOptions, create_item


def _unsigned_byte_netcdf(path: Path) -> Path:
    """A classic NetCDF byte variable flagged ``_Unsigned = "true"`` (CF
    2.2), stored -56 (200 unsigned), fill value -1 (255 unsigned)."""
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        nc.createDimension("lat", 3)
        nc.createDimension("lon", 4)
        for name, values, units in (
            ("lat", [1.0, 2.0, 3.0], "degrees_north"),
            ("lon", [1.0, 2.0, 3.0, 4.0], "degrees_east"),
        ):
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = units
            coord[:] = values
        var = nc.createVariable("mask", "i1", ("lat", "lon"), fill_value=np.int8(-1))
        var._Unsigned = "true"
        var.set_auto_maskandscale(False)
        stored = np.full((3, 4), -56, "i1")
        stored[0, 0] = -1  # one fill value
        var[:] = stored
        nc.time_coverage_start = "2020-01-01"
    return path


def test_unsigned_classic_bytes_are_published_as_gdal_and_xarray_read_them(tmp_path: Path) -> None:
    path = _unsigned_byte_netcdf(tmp_path / "mask_u8.nc")
    item = create_item(path, ExtractOptions(stats=True)).to_dict()
    variable = item["properties"]["cube:variables"]["mask"]
    assert (variable["data_type"], variable["nodata"]) == ("uint8", 255)
    band = item["assets"]["data"]["bands"][0]
    assert (band["data_type"], band["nodata"]) == ("uint8", 255)
    stats = band["statistics"]
    assert (stats["minimum"], stats["maximum"]) == (200.0, 200.0)
    assert stats["valid_percent"] == pytest.approx(100.0 * 11 / 12)
    with xr.open_dataset(path) as ds:  # what a reader sees: 200, the fill value masked
        assert float(ds["mask"].values[1, 1]) == 200.0
        assert np.isnan(ds["mask"].values[0, 0])


def test_climatology_bounds_give_the_item_its_span(tmp_path: Path) -> None:
    """CF 7.4: a January mean over 1991-2020; the time value is mid-January
    2006, the ``climatology`` bounds 1991-01-01 .. 2020-02-01."""
    time = xr.Variable(
        ("time",),
        np.array([5494.0]),
        {
            "units": "days since 1991-01-01",
            "calendar": "standard",
            "standard_name": "time",
            "climatology": "climatology_bnds",
        },
    )
    ds = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), np.zeros((1, 3, 4), "f4"), {"units": "K"}),
            "climatology_bnds": (("time", "nv"), np.array([[0.0, 10623.0]])),
        },
        coords={
            "time": time,
            "lat": ("lat", np.arange(3.0), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(4.0), {"units": "degrees_east"}),
        },
    )
    path = tmp_path / "tas_clim_jan.nc"
    ds.to_netcdf(path)
    catalog = tmp_path / "cat"
    result = producer.register([str(path)], catalog=str(catalog), collection="c")[0]
    props = result.item["properties"]
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == (
        "1991-01-01T00:00:00Z",
        "2020-02-01T00:00:00Z",
    )
    found = producer.search(str(catalog), datetime="1991-01-01T00:00:00Z/2000-12-31T00:00:00Z")
    assert [f["id"] for f in found["features"]] == ["tas_clim_jan"]


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # zarr's notes on consolidation
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_store_with_its_data_in_a_group_is_told_so_and_the_fix_works(
    tmp_path: Path, zarr_format: int
) -> None:
    import zarr

    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((9, 9), "f4"))},
        coords={
            "lat": ("lat", np.arange(-4.0, 4.1, 1.0), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(9.0), {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2021-01-01"},
    )
    store = tmp_path / f"grouped_v{zarr_format}.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=zarr_format)
    ds.to_zarr(str(store), group="sub", zarr_format=zarr_format, consolidated=zarr_format == 2, mode="a")
    with pytest.raises(InputError) as caught:
        create_item(store)
    message = str(caught.value)
    assert "no horizontal coordinates" not in message
    assert "Zarr group(s) 'sub'" in message
    assert "group='sub'" in message and ".drop_encoding().to_zarr('fixed.zarr')" in message
    # the fix the message gives registers
    fixed = tmp_path / "fixed.zarr"
    with xr.open_dataset(str(store), engine="zarr", group="sub") as grouped:
        grouped.drop_encoding().to_zarr(str(fixed))
    assert create_item(fixed).bbox == [-0.5, -4.5, 8.5, 4.5]


def _paleo(path: Path, units: str = "days since 0000-01-01", calendar: str = "360_day") -> Path:
    time = xr.Variable(
        ("time",), np.array([15.0, 45.0]), {"units": units, "calendar": calendar, "standard_name": "time"}
    )
    xr.Dataset(
        {"v": (("time", "lat", "lon"), np.zeros((2, 3, 4), "f4"))},
        coords={
            "time": time,
            "lat": ("lat", np.arange(3.0), {"units": "degrees_north"}),
            "lon": ("lon", np.arange(4.0), {"units": "degrees_east"}),
        },
    ).to_netcdf(path)
    return path


@pytest.mark.parametrize(
    ("units", "calendar"),
    [("days since 0000-01-01", "360_day"), ("months since 2000-01-01", "standard")],
    ids=["year-0", "months-in-standard-calendar"],
)
def test_a_time_axis_no_stac_datetime_holds_offers_the_datetime_option(
    tmp_path: Path, units: str, calendar: str
) -> None:
    from click.testing import CliRunner

    from producer.cli import main
    from producer.extract.datetimes import DATETIME_HINT

    path = _paleo(tmp_path / "paleo.nc", units, calendar)
    catalog = tmp_path / "cat"
    result = producer.register([str(path)], catalog=str(catalog), collection="c")[0]
    assert result.action == "error"
    assert DATETIME_HINT in result.hints
    assert "datetime='" in result.error
    assert not catalog.exists() or not list(catalog.rglob("paleo*.json"))
    cli = CliRunner().invoke(main, ["register", str(path), "-c", str(catalog), "--collection", "c"])
    assert cli.exit_code != 0
    assert "--datetime" in cli.output and "datetime='" not in cli.output
    # the fix offered works
    fixed = producer.register(
        [str(path)], catalog=str(catalog), collection="c", datetime="2000-01-01T00:00:00Z"
    )[0]
    assert fixed.action == "created"


def test_x_extent_of_a_curvilinear_grid_across_the_antimeridian_is_its_width(tmp_path: Path) -> None:
    """175E .. 174.6W: ten degrees, not the 360 of min/max over -180..180."""
    from producer.validate import Validator

    jj, ii = np.meshgrid(np.arange(8), np.arange(10), indexing="ij")
    lon = 175 + ii * 1.0 + jj * 0.2
    lon = np.where(lon > 180, lon - 360, lon)
    lat = 50 + jj * 1.0 - ii * 0.1
    path = tmp_path / "curvi_am.nc"
    xr.Dataset(
        {"chl": (("nj", "ni"), np.zeros((8, 10), "f4"))},
        coords={
            "lat2d": (("nj", "ni"), lat, {"units": "degrees_north"}),
            "lon2d": (("nj", "ni"), lon, {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-01-01"},
    ).to_netcdf(path)
    item = create_item(path).to_dict()
    assert item["bbox"] == pytest.approx([175.0, 49.1, -174.6, 57.0])
    x = item["properties"]["cube:dimensions"]["ni"]
    assert x["axis"] == "x"
    assert x["extent"] == pytest.approx([175.0, 185.4])
    assert Validator().errors(item) == []


def test_regular_longitudes_wrapping_at_the_antimeridian_are_one_regular_grid(tmp_path: Path) -> None:
    """170E .. 174W in 2-degree cells, stored in -180..180: a regular grid
    (footprint over cell edges, steps kept), not an irregular one."""
    from producer.validate import Validator

    lon = np.array([170, 172, 174, 176, 178, -180, -178, -176, -174], "f8")
    path = tmp_path / "wrap1d.nc"
    xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((9, 9), "f4"))},
        coords={
            "lat": ("lat", np.arange(-4.0, 4.1, 1.0), {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-01-01"},
    ).to_netcdf(path)
    item = create_item(path).to_dict()
    assert item["bbox"] == pytest.approx([169.0, -4.5, -173.0, 4.5])
    dims = item["properties"]["cube:dimensions"]
    assert dims["lon"]["extent"] == pytest.approx([169.0, 187.0])
    assert (dims["lon"]["step"], dims["lat"]["step"]) == (2.0, 1.0)
    assert item["properties"]["proj:code"] == "EPSG:4326"
    assert Validator().errors(item) == []


@pytest.mark.parametrize(
    ("dtype", "fill"), [("uint64", 2**64 - 1), ("int64", 2**62 + 1), ("uint64", 2**53 + 1)]
)
def test_64_bit_integer_fill_value_is_the_exact_integer(tmp_path: Path, dtype: str, fill: int) -> None:
    """The fill value went through a double: 2**64 - 1 was published as
    2**64 (no uint64 at all), 2**62 + 1 as 2**62."""
    path = tmp_path / f"{dtype}_20200101.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        for name, values, units in (
            ("lat", [1.0, 2.0, 3.0], "degrees_north"),
            ("lon", [1.0, 2.0], "degrees_east"),
        ):
            nc.createDimension(name, len(values))
            coord = nc.createVariable(name, "f8", (name,))
            coord.units = units
            coord[:] = values
        var = nc.createVariable(
            "count", np.dtype(dtype), ("lat", "lon"), fill_value=np.dtype(dtype).type(fill)
        )
        var[:] = np.zeros((3, 2), dtype)
    item = create_item(path).to_dict()
    variable = item["properties"]["cube:variables"]["count"]
    assert (variable["data_type"], variable["nodata"]) == (dtype, fill)
    (band,) = item["assets"]["data"]["bands"]
    assert band["nodata"] == fill and isinstance(band["nodata"], int)


def test_geostationary_scan_angles_in_radians_give_the_full_disk(tmp_path: Path) -> None:
    """GOES-R ABI NetCDF: x/y are scan angles in radians (CF geostationary),
    which were read as metres: a full-disk product got a footprint of a few
    metres around the sub-satellite point instead of the disk."""
    size, half, height = 64, 0.151872, 35786023.0
    x = np.linspace(-half, half, size, endpoint=False) + half / size
    projection = {
        "grid_mapping_name": "geostationary",
        "perspective_point_height": height,
        "semi_major_axis": 6378137.0,
        "semi_minor_axis": 6356752.31414,
        "latitude_of_projection_origin": 0.0,
        "longitude_of_projection_origin": -75.0,
        "sweep_angle_axis": "x",
    }
    path = tmp_path / "abi_fd_20240101.nc"
    xr.Dataset(
        {
            "CMI": (("y", "x"), np.zeros((size, size), "f4"), {"grid_mapping": "goes_imager_projection"}),
            "goes_imager_projection": ((), np.int32(0), projection),
        },
        coords={
            "x": ("x", x, {"units": "rad", "standard_name": "projection_x_coordinate", "axis": "X"}),
            "y": ("y", x[::-1], {"units": "rad", "standard_name": "projection_y_coordinate", "axis": "Y"}),
        },
    ).to_netcdf(path)
    item = create_item(path).to_dict()
    west, south, east, north = item["bbox"]
    assert west == pytest.approx(-75.0 - 81.3, abs=0.3) and east == pytest.approx(-75.0 + 81.3, abs=0.3)
    assert south == pytest.approx(-81.3, abs=0.3) and north == pytest.approx(81.3, abs=0.3)
    # the grid in the CRS's metres, as GDAL gives it to a loader
    a, _, c, _, e, f = item["properties"]["proj:transform"]
    assert a == pytest.approx(2 * half / size * height) and c == pytest.approx(-half * height)
    assert (e, f) == (pytest.approx(-a), pytest.approx(half * height))


def test_variables_on_two_time_axes_the_item_spans_both(tmp_path: Path) -> None:
    """Two data variables on two time dimensions (``time``, ``time2``): the item
    took the first axis only (a search for the second's dates missed it), and
    ``time2`` was described as raw numbers of an index axis."""
    lat = ("lat", [45.0, 46.0], {"units": "degrees_north"})
    lon = ("lon", [7.0, 8.0], {"units": "degrees_east"})
    units = {"units": "days since 2020-01-01", "standard_name": "time"}
    path = tmp_path / "twotimes.nc"
    xr.Dataset(
        {
            "a": (("time", "lat", "lon"), np.zeros((2, 2, 2), "f4")),
            "b": (("time2", "lat", "lon"), np.zeros((2, 2, 2), "f4")),
        },
        coords={
            "lat": lat,
            "lon": lon,
            "time": ("time", [0.0, 1.0], units),
            "time2": ("time2", [100.0, 101.0], units),
        },
    ).to_netcdf(path)
    props = create_item(path).to_dict()["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2020-01-01T00:00:00Z",
        "2020-04-11T00:00:00Z",
    )
    dims = props["cube:dimensions"]
    assert dims["time"]["extent"] == ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"]
    assert dims["time2"] == {
        **dims["time2"],
        "type": "temporal",
        "extent": ["2020-04-10T00:00:00Z", "2020-04-11T00:00:00Z"],
    }


@pytest.mark.parametrize("steps", [[0.0, 6.0, 12.0], [0.0]])
def test_a_forecast_spans_its_valid_times_not_its_reference_time(tmp_path: Path, steps: list[float]) -> None:
    """A forecast as cfgrib writes it (IFS, GFS): ``time`` the reference
    time (standard_name forecast_reference_time), ``step`` the lead times,
    ``valid_time(time, step)`` (standard_name time) when each field is valid.
    The item was dated at the reference time alone, so a search inside the
    forecast's 12 hours missed it. It now spans the valid times; a single
    step 0 (ERA5) stays one instant."""
    lat = ("lat", [45.0, 46.0], {"units": "degrees_north"})
    lon = ("lon", [7.0, 8.0], {"units": "degrees_east"})
    path = tmp_path / "forecast.nc"
    xr.Dataset(
        {"t2m": (("time", "step", "lat", "lon"), np.zeros((1, len(steps), 2, 2), "f4"))},
        coords={
            "lat": lat,
            "lon": lon,
            "time": (
                "time",
                [0.0],
                {"units": "hours since 2024-01-01", "standard_name": "forecast_reference_time"},
            ),
            "step": ("step", steps, {"units": "hours", "standard_name": "forecast_period"}),
            "valid_time": (
                ("time", "step"),
                [steps],
                {"units": "hours since 2024-01-01", "standard_name": "time"},
            ),
        },
    ).to_netcdf(path)
    props = create_item(path).to_dict()["properties"]
    if len(steps) == 1:
        assert props["datetime"] == "2024-01-01T00:00:00Z" and "start_datetime" not in props
    else:
        assert (props["start_datetime"], props["end_datetime"]) == (
            "2024-01-01T00:00:00Z",
            "2024-01-01T12:00:00Z",
        )
    assert props["cube:dimensions"]["time"]["values"] == [
        "2024-01-01T00:00:00Z"
    ]  # the reference time, as before


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # zarr's notes on consolidation
@pytest.mark.parametrize("kind", ["netcdf", "zarr2", "zarr3"])
def test_coordinates_at_the_root_and_data_in_a_group_is_refused_and_the_fix_works(
    tmp_path: Path, kind: str
) -> None:
    """The lat/lon/time coordinates in the root group, the variable in the
    group ``science``: the item was published with an empty
    ``cube:variables`` (the variable silently left out). It is now refused
    like a cube wholly in a group, and the fix the message gives (a DataTree
    node, which inherits the root's coordinates) registers with the variable."""
    root = xr.Dataset(
        coords={
            "lat": ("lat", np.linspace(50.0, 49.0, 5), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(10.0, 11.0, 4), {"units": "degrees_east"}),
            "time": ("time", [0.0], {"units": "days since 2024-01-01"}),
        }
    )
    data = xr.Dataset({"tas": (("time", "lat", "lon"), np.ones((1, 5, 4), "f4"), {"units": "K"})})
    if kind == "netcdf":
        path = tmp_path / "in.nc"
        root.to_netcdf(path, engine="netcdf4")
        data.to_netcdf(path, group="science", mode="a", engine="netcdf4")
    else:
        fmt = int(kind[-1])
        path = tmp_path / "in.zarr"
        root.to_zarr(str(path), mode="w", zarr_format=fmt, consolidated=False)
        data.to_zarr(str(path), group="science", mode="a", zarr_format=fmt, consolidated=False)
    with pytest.raises(InputError) as caught:
        create_item(path)
    message = str(caught.value)
    assert "holds coordinates only" in message and "only the root group is read" in message
    assert "open_datatree(" in message
    # the fix the message gives registers, with the variable and the root's coordinates
    if kind == "netcdf":
        fixed = tmp_path / "fixed.nc"
        xr.open_datatree(path)["/science"].to_dataset().to_netcdf(fixed)
    else:
        fixed = tmp_path / "fixed.zarr"
        xr.open_datatree(str(path), engine="zarr")["science"].to_dataset().drop_encoding().to_zarr(str(fixed))
    props = create_item(fixed).properties
    assert "tas" in props["cube:variables"] and props["datetime"] == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize("kind", ["netcdf", "zarr3"])
def test_lat_lon_auxiliary_coordinates_of_a_grid_register_under_the_files_dimension_names(
    tmp_path: Path, kind: str
) -> None:
    """Dimensions ``y``/``x`` without variables, the CF auxiliary coordinates
    ``lat(y)`` and ``lon(x)``: a regular lat/lon grid, refused as having "no
    horizontal coordinates" with a fix to add the lat/lon it has. It now
    registers: its footprint and transform from lat/lon, ``cube:dimensions``
    under the file's dimension names, and no band (GDAL reads no
    geotransform from it). Stations (``lat(station)``, ``lon(station)``)
    are still refused, now for what they are."""
    ds = xr.Dataset(
        {"t": (("y", "x"), np.ones((5, 4), "f4"))},
        coords={
            "lat": ("y", np.linspace(50.0, 49.0, 5), {"units": "degrees_north"}),
            "lon": ("x", np.linspace(10.0, 11.0, 4), {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-01-01T00:00:00Z"},
    )
    path = tmp_path / ("grid.nc" if kind == "netcdf" else "grid.zarr")
    if kind == "netcdf":
        ds.to_netcdf(path)
    else:
        ds.to_zarr(str(path), zarr_format=3, consolidated=False)
    doc = create_item(path).to_dict()
    props = doc["properties"]
    assert doc["bbox"] == pytest.approx([9.8333333, 48.875, 11.1666667, 50.125])
    assert props["proj:code"] == "EPSG:4326" and props["proj:shape"] == [5, 4]
    assert set(props["cube:dimensions"]) == {"y", "x"} and props["cube:dimensions"]["x"]["axis"] == "x"
    assert props["cube:variables"]["t"]["dimensions"] == ["y", "x"]
    assert "bands" not in doc["assets"]["data"]
    stations = xr.Dataset(
        {"tas": (("station", "time"), np.ones((3, 2), "f4"))},
        coords={
            "lat": ("station", [45.0, 46.5, 44.0], {"units": "degrees_north"}),
            "lon": ("station", [7.0, 8.5, 12.0], {"units": "degrees_east"}),
            "time": ("time", [0.0, 1.0], {"units": "days since 2024-01-01"}),
        },
        attrs={"featureType": "timeSeries"},
    )
    stations.to_netcdf(tmp_path / "stations.nc")
    with pytest.raises(InputError, match="discrete sampling geometry") as caught:
        create_item(tmp_path / "stations.nc")
    assert "'station'" in str(caught.value) and "add CF coordinates" not in str(caught.value)
    one = stations.isel(station=0)  # one station: scalar lat/lon
    one.to_netcdf(tmp_path / "station.nc")
    with pytest.raises(InputError, match="discrete sampling geometry") as caught:
        create_item(tmp_path / "station.nc")
    assert "no dimension (one place)" in str(caught.value)
