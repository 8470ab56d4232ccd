"""NetCDF files in multi-asset items (producer/grouping.py build_asset): real
files written by xarray/netCDF4 (tests/cubes.py), registered with
``register_item`` into a real catalog, validated offline, opened again by
xarray from what each asset says."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

import producer
from producer.extract import datacube, raster
from tests import cubes
from tests.trees import assert_stac_valid_tree


def _item(catalog: Path, collection: str, item_id: str) -> dict:
    return json.loads((catalog / collection / item_id / f"{item_id}.json").read_text())


def test_netcdf_assets_keep_their_cube_metadata_and_declare_the_extensions(tmp_path: Path) -> None:
    """Each NetCDF asset of a multi-asset item carried its proj/time fields
    only: cube:dimensions/cube:variables were lost, and xarray:open_kwargs
    was written without xarray-assets in stac_extensions. Now each data
    asset holds its own cube:* (the datacube extension allows them on
    assets; the files' variables differ), and both extensions are declared."""
    utm = cubes.write_two_variables(tmp_path / "a")
    latlon = cubes.write_latlon_no_grid_mapping(tmp_path / "b")
    catalog = tmp_path / "catalog"
    results = producer.register_item(
        item_id="cube_20240301",
        assets={"atmos": str(utm), "ocean": str(latlon)},
        catalog=str(catalog),
        collection="g",
    )
    assert [r.error for r in results] == [None, None]
    doc = _item(catalog, "g", "cube_20240301")
    atmos, ocean = doc["assets"]["atmos"], doc["assets"]["ocean"]
    assert set(atmos["cube:variables"]) >= {"temperature", "humidity"}
    assert atmos["cube:dimensions"]["level"]["axis"] == "z"
    assert "sst" in ocean["cube:variables"] and ocean["cube:dimensions"]["lat"]["axis"] == "y"
    assert not [k for k in doc["properties"] if k.startswith("cube:")]
    assert datacube.DATACUBE_EXT in doc["stac_extensions"]
    assert datacube.XARRAY_EXT in doc["stac_extensions"]
    assert producer.validate_catalog(str(catalog)) == []
    assert_stac_valid_tree(catalog)
    for asset, name in ((atmos, "temperature"), (ocean, "sst")):
        with xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"]) as ds:
            assert name in ds.data_vars


def test_raster_extension_urls_are_the_datacube_modules() -> None:
    """raster.used_extensions (multi-asset items) declares the same datacube
    and xarray-assets versions a single NetCDF's item does."""
    assert raster.EXTENSIONS["cube:"] == datacube.DATACUBE_EXT
    assert raster.EXTENSIONS["xarray:"] == datacube.XARRAY_EXT
