"""NetCDF files in multi-asset items (producer/grouping.py build_asset): real
files written by xarray/netCDF4 (tests/cubes.py), registered with
``register_item`` into a real catalog, validated offline, opened again by
xarray from what each asset says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def _write_gaussian(dirpath: Path) -> Path:
    """``gauss.nc``: lat/lon with unevenly spaced latitudes (a Gaussian grid's kind)."""
    dirpath.mkdir(parents=True, exist_ok=True)
    ds = xr.Dataset(
        {"t": (("time", "lat", "lon"), np.ones((1, 4, 4), "f4"))},
        coords={
            "lat": ("lat", np.array([50.0, 49.7, 49.1, 48.0]), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(10, 11, 4), {"units": "degrees_east"}),
            "time": ("time", [0.0], {"units": "days since 2024-05-01"}),
        },
    )
    path = dirpath / "gauss.nc"
    ds.to_netcdf(path)
    return path


def test_a_cube_without_a_geotransform_is_refused_for_what_it_is(tmp_path: Path) -> None:
    """An irregular, a curvilinear and a two-grid NetCDF in a multi-asset
    item were refused as 'georeferenced by ground control points only'
    with a gdalwarp fix, though none has GCPs. Each is now told what its
    grid is, and a fix that fits (register it on its own, regrid or split
    it into a new file); the other asset registers, the cube's nothing."""
    data = tmp_path / "data"
    cases = {
        "gauss": (_write_gaussian(data / "g"), "irregular"),
        "curvi": (cubes.write_curvilinear(data / "c"), "curvilinear"),
        "grids": (cubes.write_two_grids(data / "t"), "2 horizontal grids (x axes lon, lon_g)"),
    }
    band = cubes.write_latlon_no_grid_mapping(data / "b")
    catalog = tmp_path / "catalog"
    for name, (path, said) in cases.items():
        results = producer.register_item(
            item_id=f"{name}_20240501",
            assets={"cube": str(path), "b": str(band)},
            catalog=str(catalog),
            collection="g",
        )
        error = results[0].error or ""
        assert said in error, error
        assert "ground control points" not in error and "gdalwarp" not in error
        assert "register it on its own" in error and "new file" in error
        assert results[1].error is None
        assert "cube" not in _item(catalog, "g", f"{name}_20240501")["assets"]


def test_a_cube_keeps_its_own_time_window_in_a_group_whose_id_names_a_day(tmp_path: Path) -> None:
    """``ERA5_20240501/t2m.nc`` holds 31 daily steps of May. Alone it is
    published 2024-05-01..31; in a group whose id names 20240501 it was
    published at that one day (the id's date was made explicit, ahead of
    the file's own time axis), so a search for mid-May missed it. The id's
    date now stands in for the file name: a cube's axis comes first, and
    a file with no time of its own (the mask) still gets the id's date."""
    from tests import rasters

    scene = tmp_path / "data" / "ERA5_20240501"
    scene.mkdir(parents=True)
    xr.Dataset(
        {"t2m": (("time", "lat", "lon"), np.ones((31, 5, 4), "f4"))},
        coords={
            "time": ("time", np.arange(31.0), {"units": "days since 2024-05-01"}),
            "lat": ("lat", np.linspace(50.0, 49.0, 5), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(10.0, 11.0, 4), {"units": "degrees_east"}),
        },
    ).to_netcdf(scene / "a_t2m.nc", engine="netcdf4")
    rasters.write_tile(scene, "mask.tif", 10.0, 50.0)
    catalog = tmp_path / "catalog"
    results = producer.register(
        str(scene),
        catalog=str(catalog),
        collection="era5",
        group=r"(?P<id>ERA5_\d{8})/(?P<asset>[^/]+)\.(nc|tif)$",
    )
    assert [r.error for r in results] == [None, None]
    doc = _item(catalog, "era5", "ERA5_20240501")
    props = doc["properties"]
    assert (
        props["start_datetime"] == "2024-05-01T00:00:00Z" and props["end_datetime"] == "2024-05-31T00:00:00Z"
    )
    assert doc["assets"]["mask"]["datetime"] == "2024-05-01T00:00:00Z"  # the id's date, on the asset
    hits = producer.search(str(catalog), datetime="2024-05-15T00:00:00Z")
    assert [f["id"] for f in hits["features"]] == ["ERA5_20240501"]
    assert_stac_valid_tree(catalog)
