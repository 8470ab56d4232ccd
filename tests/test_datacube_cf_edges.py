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
