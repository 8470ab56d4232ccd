"""Packed CF variables (integers with ``scale_factor``/``add_offset``): the
item says how to unpack them, as a GeoTIFF's bands do (raster extension
``raster:scale``/``raster:offset``), for NetCDF and Zarr alike. Files are
written by xarray in ``tmp_path``."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

import producer
from producer.extract import ExtractOptions, create_item
from producer.extract.bands import get_bands_info
from producer.extract.datacube import RASTER_EXT
from producer.validate import Validator
from tests.trees import assert_stac_valid_tree


def _packed(fill: bool = False) -> xr.Dataset:
    lat = np.arange(40.5, 50, 1.0)
    lon = np.arange(10.5, 20, 1.0)
    values = np.arange(100, dtype="i2").reshape(10, 10)
    attrs: dict[str, object] = {"scale_factor": 0.01, "add_offset": 273.15, "units": "K"}
    if fill:
        values[0, :3] = -32767
        attrs["_FillValue"] = np.int16(-32767)
    return xr.Dataset(
        {"t2m": (("lat", "lon"), values, attrs)},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )


def test_packed_netcdf_band_carries_scale_and_offset_as_gdal_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "t2m_20240101.nc"
    _packed().to_netcdf(path)
    doc = create_item(path).to_dict()
    assert Validator().errors(doc) == []
    (band,) = doc["assets"]["data"]["bands"]
    with rasterio.open(path) as src:
        assert (band["raster:scale"], band["raster:offset"]) == (src.scales[0], src.offsets[0])
    assert band["data_type"] == "int16" and band["unit"] == "K"
    assert RASTER_EXT in doc["stac_extensions"]
    variable = doc["properties"]["cube:variables"]["t2m"]
    assert (variable["raster:scale"], variable["raster:offset"]) == (0.01, 273.15)


def test_packed_netcdf_statistics_are_raw_like_a_geotiffs(tmp_path: Path) -> None:
    # the GeoTIFF path's statistics are raw values (scale/offset not applied), fill excluded
    path = tmp_path / "t2m_20240101.nc"
    _packed(fill=True).to_netcdf(path)
    (band,) = create_item(path, ExtractOptions(stats=True)).to_dict()["assets"]["data"]["bands"]
    with rasterio.open(path) as src:
        (gdal_band,) = get_bands_info(src, stats=True)
    assert band["statistics"] == pytest.approx(gdal_band["statistics"])
    assert (band["raster:scale"], band["raster:offset"]) == (
        gdal_band["raster:scale"],
        gdal_band["raster:offset"],
    )
    assert band["nodata"] == gdal_band["nodata"] == -32767


def test_packed_zarr_variable_carries_scale_and_offset(tmp_path: Path) -> None:
    store = tmp_path / "t2m_20240101.zarr"
    with warnings.catch_warnings():  # zarr's notes on formats
        warnings.simplefilter("ignore")
        _packed().to_zarr(store)
    doc = create_item(store).to_dict()
    assert Validator().errors(doc) == []
    variable = doc["properties"]["cube:variables"]["t2m"]
    assert (variable["raster:scale"], variable["raster:offset"]) == (0.01, 273.15)
    assert variable["data_type"] == "int16" and variable["unit"] == "K"


def test_unpacked_variable_has_no_scale_or_offset(tmp_path: Path) -> None:
    path = tmp_path / "plain_20240101.nc"
    ds = _packed()
    ds["t2m"].attrs = {"units": "K", "scale_factor": 1.0, "add_offset": 0.0}
    ds.to_netcdf(path)
    doc = create_item(path).to_dict()
    (band,) = doc["assets"]["data"]["bands"]
    assert "raster:scale" not in band and "raster:offset" not in band
    assert "raster:scale" not in doc["properties"]["cube:variables"]["t2m"]


def test_packed_and_plain_cubes_share_one_mirror_and_search_gives_them_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _packed().to_netcdf(data / "packed_20240101.nc")
    plain = _packed()
    plain["t2m"] = plain["t2m"].astype("f4") * 0.01 + 273.15
    plain["t2m"].attrs = {"units": "K"}
    plain.to_netcdf(data / "plain_20240101.nc")
    catalog = tmp_path / "catalog"
    results = producer.register(
        [str(data / "packed_20240101.nc"), str(data / "plain_20240101.nc")],
        catalog=str(catalog),
        collection="c",
    )
    assert [r.error for r in results] == [None, None]
    assert_stac_valid_tree(catalog)
    found = {f["id"]: f for f in producer.search(str(catalog), limit=10)["features"]}
    assert found["packed_20240101"]["properties"]["cube:variables"]["t2m"]["raster:scale"] == 0.01
    assert "raster:scale" not in found["plain_20240101"]["properties"]["cube:variables"]["t2m"]
    assert found["packed_20240101"]["assets"]["data"]["bands"][0]["raster:offset"] == 273.15
