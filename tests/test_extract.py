"""create_item on real tiny rasters (tests/rasters.py): concrete values, schema
validity (offline registry built here), extension declarations, and errors."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
from jsonschema import Draft7Validator, FormatChecker
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

import producer.validate as producer_validate
from producer.errors import InputError, NoDatetimeError, NoGeoreferenceError, UnsafeIdError
from producer.extract import ExtractOptions, create_item
from producer.extract.assets import (
    MEDIA_COG,
    MEDIA_GEOTIFF,
    file_info,
    media_type,
    resolve_location,
    rewrite_href,
    sha256_multihash,
)
from producer.extract.bands import common_names, data_type, nodata_value, stats_shape
from producer.extract.datacube import DATACUBE_EXT, XARRAY_EXT
from producer.extract.raster import EO_EXT, FILE_EXT, PROJECTION_EXT, RASTER_EXT, crs_fields
from tests import rasters

# --------------------------------------------------------------------------- schemas

_ITEM_SCHEMA = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"
_ALLOWED_EXTENSIONS = {PROJECTION_EXT, RASTER_EXT, EO_EXT, FILE_EXT, DATACUBE_EXT, XARRAY_EXT}
#: where the schema files may come from: the package's own bundle and pystac's
_SCHEMA_ROOTS = (
    Path(producer_validate.__file__).parent / "schemas",
    Path(pystac.__file__).parent / "validation" / "jsonschemas",
)


def _no_network(uri: str) -> Resource[Any]:
    raise LookupError(f"schema {uri} is not bundled; tests never download")


@pytest.fixture(scope="module")
def schema_files() -> dict[str, Path]:
    """Schema URL → local file, as the package resolves them (producer.validate)."""
    return {url: Path(path) for url, path in producer_validate.schema_map().items()}


@pytest.fixture(scope="module")
def schema_registry(schema_files: dict[str, Path]) -> Registry[Any]:
    """Every schema the package ships or takes from pystac, under its URL and its ``$id``."""
    resources = []
    for url, path in schema_files.items():
        doc = json.loads(path.read_text())
        resource = Resource(contents=doc, specification=DRAFT7)
        resources.append((url, resource))
        schema_id = doc.get("$id", "").rstrip("#")
        if schema_id and schema_id != url:
            resources.append((schema_id, resource))
    assert len(resources) >= 15
    return Registry(retrieve=_no_network).with_resources(resources)  # type: ignore[call-arg]


def test_schemas_are_read_from_the_package_not_a_path_outside_the_repository(
    schema_files: dict[str, Path],
) -> None:
    roots = [root.resolve() for root in _SCHEMA_ROOTS]
    for url, path in schema_files.items():
        assert any(path.resolve().is_relative_to(root) for root in roots), (url, path)
    for url in (_ITEM_SCHEMA, *sorted(_ALLOWED_EXTENSIONS)):
        assert url in schema_files, url
    source = Path(__file__).read_text()
    assert "/work/" + "shared" not in source


def schema_errors(doc: dict[str, Any], registry: Registry[Any]) -> list[str]:
    """Errors of ``doc`` against STAC item 1.1.0 and each declared extension."""
    errors = []
    for url in [_ITEM_SCHEMA, *doc.get("stac_extensions", [])]:
        schema = registry.contents(url.rstrip("#"))
        validator = Draft7Validator(schema, registry=registry, format_checker=FormatChecker())
        errors += [
            f"{url}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
        ]
    return errors


def used_prefixes(doc: dict[str, Any]) -> set[str]:
    keys: set[str] = set(doc["properties"])
    for asset in doc["assets"].values():
        keys |= set(asset)
        for band in asset.get("bands", []):
            keys |= set(band)
    return {k.split(":")[0] for k in keys if ":" in k}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return rasters.write_all(tmp_path_factory.mktemp("extract-rasters"))


@pytest.fixture(scope="module")
def items(data: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Item dicts of every valid fixture, built once with default options."""
    return {key: create_item(data[key]).to_dict() for key in rasters.VALID}


def _corners(crs: str, transform: Any) -> tuple[list[float], list[float]]:
    xs, ys = zip(*(transform * (c, r) for c, r in [(0, 0), (64, 0), (64, 64), (0, 64)]))
    return rasterio.warp.transform(crs, "EPSG:4326", list(xs), list(ys))


# --------------------------------------------------------------------------- every item


@pytest.mark.parametrize("key", rasters.VALID)
def test_every_item_valid_roundtrips_and_declares_only_used_extensions(
    key: str, items: dict[str, dict[str, Any]], schema_registry: Registry[Any]
) -> None:
    doc = items[key]
    assert schema_errors(doc, schema_registry) == []
    assert pystac.Item.from_dict(copy.deepcopy(doc)).to_dict() == doc
    assert doc["stac_version"] == "1.1.0"
    declared = doc["stac_extensions"]
    assert set(declared) <= _ALLOWED_EXTENSIONS and len(declared) == len(set(declared))
    prefix_of = {
        PROJECTION_EXT: "proj", RASTER_EXT: "raster", EO_EXT: "eo", FILE_EXT: "file",
        DATACUBE_EXT: "cube", XARRAY_EXT: "xarray",
    }  # fmt: skip
    assert {prefix_of[u] for u in declared} == used_prefixes(doc)
    assert doc["links"] == [] and "collection" not in doc
    asset = doc["assets"]["data"]
    assert list(doc["assets"]) == ["data"] and asset["roles"] == ["data"]
    assert os.path.isabs(asset["href"]) and asset["title"] == Path(asset["href"]).name
    assert asset["file:size"] == os.path.getsize(asset["href"])
    assert "file:checksum" not in asset and all("statistics" not in b for b in asset.get("bands", []))
    assert "raster:bands" not in asset and "eo:bands" not in asset
    assert "created" not in doc["properties"] and "updated" not in doc["properties"]


def test_validator_module_agrees_when_present(items: dict[str, dict[str, Any]]) -> None:
    validator = producer_validate.Validator()
    for key, doc in items.items():
        assert validator.errors(doc) == [], key


def test_schemas_catch_a_wrong_item(items: dict[str, dict[str, Any]], schema_registry: Registry[Any]) -> None:
    """The test validator can fail: a raster v1 field, a bad nodata, a missing extension."""
    bad = copy.deepcopy(items["nodata"])
    bad["assets"]["data"]["bands"][0]["nodata"] = "none"
    bad["assets"]["data"]["bands"][0]["raster:nodata"] = -1
    assert len(schema_errors(bad, schema_registry)) >= 2
    undeclared = copy.deepcopy(items["multiband"])
    undeclared["stac_extensions"].remove(EO_EXT)
    undeclared["stac_extensions"].append("https://stac-extensions.github.io/eo/v2.0.0/schema.json")
    undeclared["assets"]["data"]["bands"][0]["eo:common_name"] = "reddish"
    assert schema_errors(undeclared, schema_registry)


# --------------------------------------------------------------------------- per fixture


def test_utm(items: dict[str, dict[str, Any]], data: dict[str, Path]) -> None:
    doc = items["utm"]
    props = doc["properties"]
    assert doc["id"] == "utm_20240513"
    assert props["datetime"] == "2024-05-13T00:00:00Z"
    assert props["proj:code"] == "EPSG:32633"
    assert "proj:wkt2" not in props and "proj:projjson" not in props
    assert props["proj:shape"] == [64, 64]
    assert props["proj:transform"] == [10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0]
    assert props["proj:bbox"] == [500000.0, 4999360.0, 500640.0, 5000000.0]
    expected = rasterio.warp.transform_bounds("EPSG:32633", "EPSG:4326", *props["proj:bbox"], densify_pts=64)
    assert doc["bbox"] == pytest.approx(list(expected), abs=1e-6)
    assert doc["geometry"]["type"] == "Polygon"
    asset = doc["assets"]["data"]
    assert asset["href"] == str(data["utm"].resolve())
    assert asset["type"] == MEDIA_GEOTIFF
    assert asset["raster:sampling"] == "area"
    assert asset["bands"] == [{"name": "b1", "data_type": "uint8", "raster:spatial_resolution": 10.0}]
    assert doc["stac_extensions"] == [PROJECTION_EXT, RASTER_EXT, FILE_EXT]


def test_polar_footprint_contains_the_pole(items: dict[str, dict[str, Any]]) -> None:
    doc = items["polar"]
    assert doc["properties"]["proj:code"] == "EPSG:3413"
    assert doc["properties"]["proj:bbox"] == [-320000.0, -320000.0, 320000.0, 320000.0]
    west, south, east, north = doc["bbox"]
    assert (west, east, north) == (-180.0, 180.0, 90.0)
    # the corners are the farthest points from the pole: the southern bound is theirs
    _, lats = _corners("EPSG:3413", rasterio.transform.from_origin(*rasters.POLAR_ORIGIN, 1e4, 1e4))
    assert south == pytest.approx(min(lats), abs=1e-6)
    assert doc["assets"]["data"]["bands"][0]["data_type"] == "uint16"
    assert doc["assets"]["data"]["bands"][0]["raster:spatial_resolution"] == 10_000.0


def test_wgs84(items: dict[str, dict[str, Any]]) -> None:
    doc = items["wgs84"]
    assert doc["bbox"] == pytest.approx([10.0, 49.36, 10.64, 50.0], abs=1e-9)
    assert doc["properties"]["proj:code"] == "EPSG:4326"
    assert doc["properties"]["proj:transform"] == [0.01, 0.0, 10.0, 0.0, -0.01, 50.0]
    band = doc["assets"]["data"]["bands"][0]
    assert band["data_type"] == "float32"
    # ~0.01 degree: 1112 m north-south, 1112*cos(49.68°) east-west, averaged
    metres_per_degree = math.radians(1) * 6_371_008.8
    expected = 0.01 * metres_per_degree * (1 + math.cos(math.radians(49.68))) / 2
    assert band["raster:spatial_resolution"] == pytest.approx(expected, rel=1e-6)


def test_rotated(items: dict[str, dict[str, Any]]) -> None:
    doc = items["rotated"]
    transform = rasters.rotated_transform()
    props = doc["properties"]
    assert props["proj:transform"] == pytest.approx(list(transform)[:6])
    assert props["proj:transform"][1] != 0.0 and props["proj:transform"][3] != 0.0
    xs, ys = zip(*(transform * (c, r) for c, r in [(0, 0), (64, 0), (64, 64), (0, 64)]))
    assert props["proj:bbox"] == pytest.approx([min(xs), min(ys), max(xs), max(ys)])
    lons, lats = _corners("EPSG:32633", transform)
    assert doc["bbox"] == pytest.approx([min(lons), min(lats), max(lons), max(lats)], abs=1e-5)
    # a rotated square is not its bounding box: the footprint has more than 4 corners
    assert len(doc["geometry"]["coordinates"][0]) > 5
    assert doc["assets"]["data"]["bands"][0]["raster:spatial_resolution"] == pytest.approx(10.0)


def test_dateline_crosses_antimeridian(items: dict[str, dict[str, Any]]) -> None:
    doc = items["dateline"]
    assert doc["properties"]["proj:code"] == "EPSG:32760"
    assert doc["geometry"]["type"] == "MultiPolygon"
    west, south, east, north = doc["bbox"]
    assert west > east  # RFC 7946 §5.2
    transform = rasterio.transform.from_origin(*rasters.DATELINE_ORIGIN, 1000, 1000)
    lons, lats = _corners("EPSG:32760", transform)
    lons = [lon % 360 for lon in lons]
    assert west == pytest.approx(min(lons), abs=1e-3)
    assert east == pytest.approx(max(lons) - 360, abs=1e-3)
    assert 179 < west < 180 and -180 < east < -179


def test_custom_crs_without_code(items: dict[str, dict[str, Any]], data: dict[str, Path]) -> None:
    props = items["custom_crs"]["properties"]
    assert props["proj:code"] is None
    assert "Orthographic" in props["proj:wkt2"] and props["proj:wkt2"].startswith("PROJCRS")
    assert props["proj:projjson"]["type"] == "ProjectedCRS"
    with rasterio.open(data["custom_crs"]) as src:
        assert CRS.from_wkt(props["proj:wkt2"]) == src.crs
        assert CRS.from_user_input(json.dumps(props["proj:projjson"])) == src.crs


def test_crs_fields_only_trust_exact_authority_matches() -> None:
    assert crs_fields(CRS.from_epsg(32633)) == {"proj:code": "EPSG:32633"}
    assert crs_fields(CRS.from_string("ESRI:54009")) == {"proj:code": "ESRI:54009"}
    # GDAL matches this bare PROJ string to an unrelated code at confidence 70
    lcc = CRS.from_proj4(
        "+proj=lcc +lat_1=33 +lat_2=45 +lat_0=39 +lon_0=-96 +x_0=0 +y_0=0 +ellps=GRS80 +units=m"
    )
    fields = crs_fields(lcc)
    assert fields["proj:code"] is None and CRS.from_wkt(fields["proj:wkt2"]) == lcc


def test_multiband_rgb(items: dict[str, dict[str, Any]]) -> None:
    doc = items["multiband"]
    bands = doc["assets"]["data"]["bands"]
    assert [b["name"] for b in bands] == list(rasters.MULTIBAND_DESCRIPTIONS)
    assert [b["description"] for b in bands] == list(rasters.MULTIBAND_DESCRIPTIONS)
    assert [b["eo:common_name"] for b in bands] == ["red", "green", "blue"]
    assert [b["data_type"] for b in bands] == ["uint8"] * 3
    assert EO_EXT in doc["stac_extensions"]


def test_nodata_scale_offset_unit(items: dict[str, dict[str, Any]]) -> None:
    (band,) = items["nodata"]["assets"]["data"]["bands"]
    assert band["data_type"] == "int16"
    assert band["nodata"] == -9999 and isinstance(band["nodata"], int)
    assert band["raster:scale"] == 0.01
    assert band["raster:offset"] == -5.0
    assert band["unit"] == "degC"
    assert items["nan_nodata"]["assets"]["data"]["bands"][0]["nodata"] == "nan"
    # scale/offset are left out when they are 1/0
    assert "raster:scale" not in items["utm"]["assets"]["data"]["bands"][0]


def test_cog_media_type(items: dict[str, dict[str, Any]], data: dict[str, Path]) -> None:
    with rasterio.open(data["cog"]) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"  # what the detection relies on
        assert media_type(src) == MEDIA_COG
    assert items["cog"]["assets"]["data"]["type"] == MEDIA_COG
    assert items["utm"]["assets"]["data"]["type"] == MEDIA_GEOTIFF
    assert items["overviews"]["assets"]["data"]["type"] == MEDIA_GEOTIFF  # tiled + overviews ≠ COG


def test_tags_date(items: dict[str, dict[str, Any]]) -> None:
    assert items["tagsdate"]["properties"]["datetime"] == "2023-07-01T12:30:00Z"
    assert items["tagsdate"]["id"] == "tagsdate"


def test_range_from_file_name(items: dict[str, dict[str, Any]]) -> None:
    props = items["range"]["properties"]
    assert props["datetime"] is None
    assert props["start_datetime"] == "2024-01-01T00:00:00Z"
    assert props["end_datetime"] == "2024-01-31T23:59:59Z"


def test_gcps(items: dict[str, dict[str, Any]]) -> None:
    doc = items["gcps"]
    assert doc["bbox"] == pytest.approx([20.0, 40.0, 21.0, 41.0], abs=1e-7)
    assert doc["properties"]["proj:shape"] == [64, 64]
    assert not {"proj:code", "proj:transform", "proj:bbox"} & set(doc["properties"])
    resolution = doc["assets"]["data"]["bands"][0]["raster:spatial_resolution"]
    assert 1000 < resolution < 1800  # 1/64 degree ≈ 1737 m N-S, 1316 m E-W at 40.5° N


def test_gcps_across_the_antimeridian_cover_one_degree_not_the_world(tmp_path: Path) -> None:
    # a swath near Fiji: the GCP longitudes jump from 179.5 to -179.5, which
    # an affine fit took for a 359-degree-wide image
    doc = create_item(rasters.write_gcps(tmp_path, rasters.DATELINE_GCPS, "swath_20241001.tif")).to_dict()
    assert doc["bbox"] == pytest.approx([179.5, 40.0, -179.5, 41.0], abs=1e-7)
    assert doc["geometry"]["type"] == "MultiPolygon"
    resolution = doc["assets"]["data"]["bands"][0]["raster:spatial_resolution"]
    assert 1000 < resolution < 1800  # 1/64 degree, as for the same image at 20 E


def test_netcdf(items: dict[str, dict[str, Any]], data: dict[str, Path]) -> None:
    doc = items["netcdf"]
    assert doc["id"] == "sample"
    assert doc["properties"]["datetime"] == "2024-01-15T06:00:00Z"  # from time_coverage_start
    assert doc["properties"]["proj:code"] == "EPSG:4326"
    assert doc["bbox"] == pytest.approx([10.0, 49.36, 10.64, 50.0], abs=1e-7)
    asset = doc["assets"]["data"]
    assert asset["type"] == "application/netcdf"
    assert asset["href"] == str(data["netcdf"].resolve())
    assert asset["bands"][0] == {
        "name": "Band1",
        "description": "air temperature",
        "data_type": "float32",
        "nodata": -9999.0,
        "unit": "K",
        "raster:spatial_resolution": pytest.approx(asset["bands"][0]["raster:spatial_resolution"]),
    }


def test_netcdf_multivariable_describes_every_variable_and_no_bands(
    items: dict[str, dict[str, Any]], data: dict[str, Path]
) -> None:
    # was: described by its first variable only, with bands GDAL cannot read (0 bands at the top)
    doc = items["netcdf_multivar"]
    asset = doc["assets"]["data"]
    assert asset["href"] == str(data["netcdf_multivar"].resolve())
    assert "bands" not in asset
    variables = doc["properties"]["cube:variables"]
    assert {k for k, v in variables.items() if v["type"] == "data"} == {"Band1", "Band2"}
    assert "description" not in variables["Band1"]  # GDAL's placeholder long_name dropped
    assert doc["properties"]["datetime"] == "2024-01-20T00:00:00Z"


# --------------------------------------------------------------------------- options


def test_statistics_honour_nodata_and_nan(data: dict[str, Path], schema_registry: Registry[Any]) -> None:
    doc = create_item(data["nodata"], ExtractOptions(stats=True)).to_dict()
    assert schema_errors(doc, schema_registry) == []
    stats = doc["assets"]["data"]["bands"][0]["statistics"]
    with rasterio.open(data["nodata"]) as src:
        valid = src.read(1)[rasters.NODATA_MASKED_ROWS :].astype("float64")
    assert stats["valid_percent"] == pytest.approx(75.0)
    assert stats["minimum"] == valid.min() and stats["maximum"] == valid.max()
    assert stats["mean"] == pytest.approx(valid.mean())
    assert stats["stddev"] == pytest.approx(valid.std())
    nan_stats = create_item(data["nan_nodata"], ExtractOptions(stats=True)).to_dict()
    nan_band = nan_stats["assets"]["data"]["bands"][0]["statistics"]
    assert nan_band["valid_percent"] == pytest.approx(50.0)
    assert math.isfinite(nan_band["mean"])


def test_statistics_from_overviews(data: dict[str, Path]) -> None:
    with rasterio.open(data["overviews"]) as src:
        assert stats_shape(src) == (256, 256)
        decimated = src.read(1, out_shape=(256, 256)).astype("float64")
        full = src.read(1).astype("float64")
    stats = create_item(data["overviews"], ExtractOptions(stats=True)).to_dict()["assets"]["data"]["bands"][
        0
    ]["statistics"]
    assert stats["mean"] == pytest.approx(decimated.mean(), abs=1e-9)
    assert stats["stddev"] == pytest.approx(decimated.std(), abs=1e-9)
    assert abs(full.mean() - decimated.mean()) > 1e-6  # proves it was not the full-resolution read
    assert stats["valid_percent"] == 100.0


def test_checksum_is_sha256_multihash(data: dict[str, Path]) -> None:
    for key in ("utm", "cog", "netcdf"):
        asset = create_item(data[key], ExtractOptions(checksum=True)).to_dict()["assets"]["data"]
        assert asset["file:checksum"] == "1220" + hashlib.sha256(data[key].read_bytes()).hexdigest()


def test_checksum_and_size_through_fsspec(data: dict[str, Path]) -> None:
    fs = fsspec.filesystem("memory")
    payload = data["cog"].read_bytes()
    fs.pipe("/extract-test/cog.tif", payload)
    try:
        info = file_info("memory://extract-test/cog.tif", checksum=True)
        assert info == {
            "file:size": len(payload),
            "file:checksum": "1220" + hashlib.sha256(payload).hexdigest(),
        }
        assert sha256_multihash("memory://extract-test/cog.tif") == info["file:checksum"]
    finally:
        fs.rm("/extract-test", recursive=True)


def test_datetime_precedence(data: dict[str, Path]) -> None:
    path = data["utm"]  # name says 2024-05-13
    explicit = create_item(path, ExtractOptions(datetime="2020-02-02T02:02:02+01:00")).to_dict()
    assert explicit["properties"]["datetime"] == "2020-02-02T01:02:02Z"
    by_name = create_item(
        path, ExtractOptions(datetime="2020-02-02", datetime_sources=("filename", "explicit"))
    )
    assert by_name.to_dict()["properties"]["datetime"] == "2024-05-13T00:00:00Z"
    ranged = create_item(path, ExtractOptions(datetime="2024-01-01/2024-03-31")).to_dict()["properties"]
    assert ranged["datetime"] is None
    assert (ranged["start_datetime"], ranged["end_datetime"]) == (
        "2024-01-01T00:00:00Z",
        "2024-03-31T23:59:59Z",
    )
    tags_first = ExtractOptions(datetime_sources=("tags", "filename"))
    renamed = data["tagsdate"].with_name("tagsdate_20990101.tif")
    renamed.write_bytes(data["tagsdate"].read_bytes())
    assert create_item(renamed, tags_first).to_dict()["properties"]["datetime"] == "2023-07-01T12:30:00Z"
    assert create_item(renamed).to_dict()["properties"]["datetime"] == "2099-01-01T00:00:00Z"
    pattern = ExtractOptions(datetime_pattern=r"utm_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})")
    assert create_item(path, pattern).to_dict()["properties"]["datetime"] == "2024-05-13T00:00:00Z"
    with pytest.raises(NoDatetimeError, match="tagsdate_20990101"):
        create_item(renamed, ExtractOptions(datetime_sources=("explicit",)))


def test_options_collection_id_and_rewrites(data: dict[str, Path], schema_registry: Registry[Any]) -> None:
    local = str(data["utm"].resolve())
    folder = str(data["utm"].resolve().parent)
    options = ExtractOptions(
        collection="ndvi",
        id_template="{collection}-{stem}",
        href_rewrites=(
            ("/nowhere/", "s3://x/"),
            (folder + "/", "s3://bucket/data/"),
            (folder, "s3://second/"),
        ),
    )
    item = create_item(data["utm"], options)
    assert item.collection_id == "ndvi"
    assert item.id == "ndvi-utm_20240513"
    assert item.links == []
    assert item.assets["data"].href == "s3://bucket/data/utm_20240513.tif"
    assert item.assets["data"].extra_fields["file:size"] == os.path.getsize(local)
    doc = item.to_dict()
    # the core schema requires a collection link next to "collection": the commit layer adds it
    doc["links"] = [{"rel": "collection", "href": "../collection.json", "type": "application/json"}]
    assert schema_errors(doc, schema_registry) == []
    assert options.href_rewrites[0] == ("/nowhere/", "s3://x/")  # not mutated


def test_relative_path_and_pathlike(data: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(data["utm"].parent)
    by_str = create_item("utm_20240513.tif").to_dict()
    by_path = create_item(Path("utm_20240513.tif")).to_dict()
    assert by_str == by_path
    assert by_str["assets"]["data"]["href"] == str(data["utm"].resolve())


def test_open_dataset_is_used_and_left_open(data: dict[str, Path]) -> None:
    with rasterio.open(data["multiband"]) as src:
        item = create_item(src)
        assert not src.closed
    assert item.to_dict() == create_item(data["multiband"]).to_dict()


def test_memoryfile_dataset_with_href(data: dict[str, Path]) -> None:
    with MemoryFile(data["utm"].read_bytes()) as memfile, memfile.open() as src:
        item = create_item(src, href="s3://bucket/products/utm_20240513.tif")
        assert not src.closed
        with pytest.raises(InputError, match="checksum"):
            create_item(src, ExtractOptions(checksum=True), href="s3://bucket/products/utm_20240513.tif")
    doc = item.to_dict()
    assert doc["id"] == "utm_20240513"
    assert doc["assets"]["data"]["href"] == "s3://bucket/products/utm_20240513.tif"
    assert "file:size" not in doc["assets"]["data"]
    assert FILE_EXT not in doc["stac_extensions"]


def test_closed_dataset_rejected(data: dict[str, Path]) -> None:
    src = rasterio.open(data["utm"])
    src.close()
    with pytest.raises(InputError, match="closed"):
        create_item(src)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("key", sorted(rasters.INVALID))
def test_bad_inputs_raise_named_errors(key: str, data: dict[str, Path]) -> None:
    expected = {
        "InputError": InputError,
        "NoGeoreferenceError": NoGeoreferenceError,
        "NoDatetimeError": NoDatetimeError,
    }[rasters.INVALID[key]]
    with pytest.raises(expected) as info:
        create_item(data[key])
    assert type(info.value) is expected
    assert isinstance(info.value, ValueError)
    assert data[key].name in str(info.value)


def test_error_messages_say_how_to_fix(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(NoGeoreferenceError, match=r"gdal_edit\.py -a_srs EPSG:"):
        create_item(data["nocrs"])
    with pytest.raises(NoDatetimeError) as info:
        create_item(data["nodate"])
    for fix in ("datetime=", "datetime_pattern=", "TIFFTAG_DATETIME"):
        assert fix in str(info.value)
    with pytest.raises(InputError, match="empty"):
        create_item(data["empty"])
    with pytest.raises(InputError, match="not a readable raster") as corrupt:
        create_item(data["corrupt"])
    assert corrupt.value.__cause__ is not None  # chained from rasterio's error
    missing = tmp_path / "missing_20240101.tif"
    with pytest.raises(InputError, match="missing_20240101.tif.*not found"):
        create_item(missing)
    with pytest.raises(InputError, match="directory"):
        create_item(tmp_path)
    with pytest.raises(InputError):
        create_item(12345)  # type: ignore[arg-type]


def test_a_local_engineering_crs_is_no_georeference_and_says_how_to_assign_one(tmp_path: Path) -> None:
    path = rasters.write_engineering_crs(tmp_path)
    with pytest.raises(NoGeoreferenceError) as info:
        create_item(path)
    message = str(info.value)
    assert path.name in message and "local (engineering) CRS" in message
    assert "gdal_edit.py -a_srs EPSG:" in message


def test_a_grid_that_does_not_reproject_to_wgs84_says_what_to_check_and_fix(tmp_path: Path) -> None:
    path = rasters.write_mars(tmp_path)
    with pytest.raises(InputError) as info:
        create_item(path)
    message = str(info.value)
    assert path.name in message and "cannot be reprojected" in message
    assert "another body than the Earth" in message and "gdal_edit.py -a_srs EPSG:" in message


def test_a_raster_located_by_rpcs_only_is_told_to_orthorectify(tmp_path: Path) -> None:
    # was: "no CRS and no ground control points ... gdal_edit.py -a_srs", a fix that
    # would give a sensor image a made-up map grid
    path = rasters.write_rpcs(tmp_path)
    with pytest.raises(NoGeoreferenceError) as info:
        create_item(path)
    message = str(info.value)
    assert path.name in message and "RPC" in message and "gdalwarp -rpc" in message
    assert "gdal_edit.py" not in message


def test_nodatetime_error_comes_after_georeference_check(data: dict[str, Path], tmp_path: Path) -> None:
    nodate_nocrs = tmp_path / "nocrs.tif"
    nodate_nocrs.write_bytes(data["nocrs"].read_bytes())
    with pytest.raises(NoGeoreferenceError):
        create_item(nodate_nocrs)


def test_unsafe_and_bad_ids(data: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UnsafeIdError, match="id_template="):
        create_item(data["utm"], ExtractOptions(id_template="../{stem}"))
    with pytest.raises(InputError, match="unknown field"):
        create_item(data["utm"], ExtractOptions(id_template="{date}"))
    spaced = tmp_path / "my scene_20240101.tif"
    spaced.write_bytes(data["utm"].read_bytes())
    assert create_item(spaced).id == "my_scene_20240101"  # names are normalised, not refused
    hidden = tmp_path / ".hidden_20240101.tif"
    hidden.write_bytes(data["utm"].read_bytes())
    with pytest.raises(UnsafeIdError, match=".hidden_20240101"):
        create_item(hidden)


def test_bad_datetime_options(data: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="cannot parse datetime"):
        create_item(data["utm"], ExtractOptions(datetime="yesterday"))
    with pytest.raises(InputError, match="unknown datetime source"):
        create_item(data["utm"], ExtractOptions(datetime_sources=("mtime",)))
    with pytest.raises(InputError, match="not a valid regular expression"):
        create_item(data["utm"], ExtractOptions(datetime_pattern="(unclosed"))


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("uint64", 2**64 - 1), ("int64", -(2**63)), ("int64", 2**62 + 1), ("uint64", 2**53 + 1)],
)
def test_64_bit_integer_nodata_is_the_exact_integer(dtype: str, nodata: int, tmp_path: Path) -> None:
    # rasterio reads nodata as a double: 2**64 - 1 came out as no nodata at all,
    # 2**62 + 1 and 2**53 + 1 as their neighbours, so readers masked other pixels
    doc = create_item(rasters.write_64bit_nodata(tmp_path, dtype, nodata)).to_dict()
    (band,) = doc["assets"]["data"]["bands"]
    assert band["data_type"] == dtype
    assert band["nodata"] == nodata and isinstance(band["nodata"], int)


@pytest.mark.parametrize(
    ("gdal_type", "stac_type"), [("CInt16", "cint16"), ("CInt32", "cint32"), ("CFloat32", "cfloat32")]
)
def test_complex_band_data_type_is_gdals(gdal_type: str, stac_type: str, tmp_path: Path) -> None:
    # rasterio calls a CInt32 band complex64: it was published as cfloat32
    path = rasters.write_gdal_type(tmp_path, gdal_type, -5, "sar_20240101.tif")
    (band,) = create_item(path).to_dict()["assets"]["data"]["bands"]
    assert band["data_type"] == stac_type


def test_data_types_and_nodata_values() -> None:
    assert [data_type(t) for t in ("uint8", "int16", "float32", "complex64", "complex_int16", "bool")] == [
        "uint8", "int16", "float32", "cfloat32", "cint16", "other",
    ]  # fmt: skip
    assert nodata_value(float("nan"), "float32") == "nan"
    assert nodata_value(float("inf"), "float32") == "inf"
    assert nodata_value(float("-inf"), "float64") == "-inf"
    assert nodata_value(0.0, "uint8") == 0 and isinstance(nodata_value(0.0, "uint8"), int)
    assert nodata_value(-9999.0, "float32") == -9999.0
    assert nodata_value(None, "uint8") is None


def test_common_name_rule() -> None:
    from rasterio.enums import ColorInterp as C

    assert common_names((C.red, C.green, C.blue, C.alpha)) == ["red", "green", "blue", None]
    assert common_names((C.gray,)) == [None]
    assert common_names((C.undefined, C.undefined)) == [None, None]
    assert common_names((C.red, C.red, C.blue)) == [None, None, None]  # not an RGB image
    assert common_names((C.nir, C.swir, C.pan)) == ["nir", None, "pan"]


def test_href_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_location("a/b.tif") == str(tmp_path / "a" / "b.tif")
    assert resolve_location("/vsis3/bucket/k.tif") == "s3://bucket/k.tif"
    assert resolve_location("/vsicurl/https://h/x.tif") == "https://h/x.tif"
    assert resolve_location("file:///data/x%20y.tif") == "/data/x y.tif"
    assert resolve_location("s3://bucket/k.tif") == "s3://bucket/k.tif"
    rules = (("s3://a/", "https://a.example/"), ("s3://", "https://cdn/"))
    assert rewrite_href("s3://a/k.tif", rules) == "https://a.example/k.tif"
    assert rewrite_href("s3://b/k.tif", rules) == "https://cdn/b/k.tif"
    assert rewrite_href("/local/k.tif", rules) == "/local/k.tif"


def test_header_only_without_stats(data: dict[str, Path]) -> None:
    """Without stats/checksum no pixel is decoded: a COG whose every data
    block is overwritten with garbage (same length, header intact) still
    yields the same item; with stats it fails with our error."""
    with rasterio.open(data["cog"]) as src:
        first_block = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    whole = data["cog"].read_bytes()
    garbled = data["cog"].with_name("garbled_20240105.tif")
    garbled.write_bytes(whole[:first_block] + b"\xff" * (len(whole) - first_block))
    item = create_item(garbled).to_dict()
    reference = create_item(data["cog"]).to_dict()
    assert item["id"] == "garbled_20240105"
    assert item["assets"]["data"]["file:size"] == len(whole)
    assert item["assets"]["data"]["bands"] == reference["assets"]["data"]["bands"]
    assert item["geometry"] == reference["geometry"]
    with pytest.raises(InputError, match="garbled_20240105.tif") as info:
        create_item(garbled, ExtractOptions(stats=True))
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("cut", ["8 bytes", "last block", "all data"])
def test_truncated_tiff_is_refused_from_its_header(data: dict[str, Path], tmp_path: Path, cut: str) -> None:
    """A file still being written (intact header, data cut short) is an
    error naming the file, found without reading pixels; the whole file is fine."""
    with rasterio.open(data["cog"]) as src:
        first_block = int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
    whole = data["cog"].read_bytes()
    keep = {"8 bytes": len(whole) - 8, "last block": len(whole) - 64, "all data": first_block}[cut]
    path = tmp_path / "partial_20240105.tif"
    path.write_bytes(whole[:keep])
    with pytest.raises(InputError, match=r"partial_20240105\.tif: truncated.*not completely written"):
        create_item(path)
    path.write_bytes(whole)
    assert create_item(path).id == "partial_20240105"


def test_truncated_striped_multiband_geotiff(tmp_path: Path) -> None:
    """Band-interleaved striped GeoTIFF: the check covers every band's strips."""
    path = tmp_path / "striped_20240105.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=40,
        height=30,
        count=3,
        dtype="uint16",
        crs="EPSG:32633",
        transform=rasterio.transform.from_origin(500000, 6000000, 10, 10),
        interleave="band",
    ) as dst:
        dst.write(np.arange(3 * 30 * 40, dtype="uint16").reshape(3, 30, 40))
    assert create_item(path).id == "striped_20240105"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 10])
    with pytest.raises(InputError, match="band 3"):
        create_item(path)


def test_numpy_not_needed_by_callers() -> None:
    """Band values are plain JSON types (no numpy scalars leak into the item)."""
    with MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=4,
            height=4,
            count=1,
            dtype="int16",
            crs="EPSG:4326",
            transform=rasterio.transform.from_origin(0, 1, 0.25, 0.25),
            nodata=-1,
        ) as dst:
            dst.write(np.arange(16, dtype="int16").reshape(1, 4, 4))
        with memfile.open() as src:
            doc = create_item(
                src, ExtractOptions(stats=True, datetime="2024-01-01"), href="/x/mem.tif"
            ).to_dict()
    json.dumps(doc)  # raises on numpy types
    band = doc["assets"]["data"]["bands"][0]
    assert type(band["nodata"]) is int and type(band["statistics"]["mean"]) is float
    assert band["statistics"]["minimum"] == 0.0 and band["statistics"]["maximum"] == 15.0


# --------------------------------------------------------------------------- remote


def test_s3_product_through_fsspec(
    data: dict[str, Path], s3_server: Any, schema_registry: Registry[Any]
) -> None:
    """An s3:// product read with storage_options (rasterio opener = s3fs), on a local moto S3."""
    payload = data["cog"].read_bytes()
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="products/cog_20240105.tif", Body=payload)
    url = s3_server.url("products/cog_20240105.tif")
    options = ExtractOptions(
        checksum=True,
        storage_options=s3_server.storage_options,
        href_rewrites=((f"s3://{s3_server.bucket}/", "https://data.example.com/"),),
    )
    doc = create_item(url, options).to_dict()
    assert schema_errors(doc, schema_registry) == []
    asset = doc["assets"]["data"]
    assert asset["href"] == "https://data.example.com/products/cog_20240105.tif"
    assert asset["type"] == MEDIA_COG
    assert asset["file:size"] == len(payload)
    assert asset["file:checksum"] == "1220" + hashlib.sha256(payload).hexdigest()
    assert doc["id"] == "cog_20240105" and doc["properties"]["datetime"] == "2024-01-05T00:00:00Z"
    assert doc["properties"]["proj:code"] == "EPSG:32633"
    with pytest.raises(InputError, match="missing_20240101.tif"):
        create_item(s3_server.url("products/missing_20240101.tif"), options)
