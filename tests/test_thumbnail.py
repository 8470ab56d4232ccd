"""``thumbnail=True``: a PNG of at most 600 px rendered from overviews, stored
in the catalog beside the item, linked as its ``thumbnail`` asset, removed
with the item."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin

import producer
from producer import thumbnail
from producer.store import CountingStore, open_store
from tests import rasters
from tests.trees import assert_stac_valid_tree, tree_hash

#: a PNG has no georeference: reading one back says so
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

BIG = 2400  # pixels a side: a decimated read of 600 px comes from the x4 overview


def write_big_cog(folder: Path, *, overviews: bool = True) -> Path:
    """``big_20240601.tif``: 2400 x 2400 uint8, tiled, with x2/x4/x8 overviews
    of value 100; then the full-resolution pixels are overwritten with 7, so
    a thumbnail made from the full resolution shows 7 and one made from an
    overview shows 100."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big_20240601.tif"
    profile = dict(
        driver="GTiff",
        width=BIG,
        height=BIG,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(500000.0, 5000000.0, 10.0, 10.0),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, BIG, BIG), 100, dtype="uint8"))
        if overviews:
            dst.build_overviews([2, 4, 8], Resampling.nearest)
    with rasterio.open(path, "r+") as dst:
        dst.write(np.full((1, BIG, BIG), 7, dtype="uint8"))
        dst.write(np.full((1, 50, 50), 250, dtype="uint8"), window=((0, 50), (0, 50)))  # not flat
    return path


def png_of(catalog: Path, key: str) -> np.ndarray:
    with rasterio.open(catalog / key) as src:
        assert src.driver == "PNG"
        return src.read()


def test_thumbnail_is_stored_beside_the_item_and_linked(tmp_path, catalog_dir):
    product = rasters.write_multiband(tmp_path / "data")
    [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.action == "created", result.error
    key = "c/multiband_20240801/multiband_20240801.json"
    item = json.loads((catalog_dir / key).read_text())
    assert item["assets"]["thumbnail"] == {
        "href": "./multiband_20240801.png",
        "type": "image/png",
        "title": "Thumbnail",
        "roles": ["thumbnail"],
    }
    pixels = png_of(catalog_dir, "c/multiband_20240801/multiband_20240801.png")
    assert pixels.shape == (4, 64, 64)  # RGB + alpha from three bands, small enough to keep its size
    assert not (tmp_path / "data" / "multiband_20240801.png").exists()  # never in the data folder
    assert_stac_valid_tree(catalog_dir)
    assert producer.validate_catalog(str(catalog_dir), check_assets=True) == []


def test_thumbnail_of_a_big_cog_comes_from_its_overviews(tmp_path, catalog_dir):
    product = write_big_cog(tmp_path / "data")
    [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.ok, result.error
    pixels = png_of(catalog_dir, "c/big_20240601/big_20240601.png")
    assert pixels.shape == (2, 600, 600)  # grey + alpha, the long side at 600
    with rasterio.open(product, overview_level=1) as x4:
        assert x4.shape == (600, 600) and int(x4.read(1).max()) == 100
    with rasterio.open(product) as src:
        assert int(src.read(1, window=((0, 8), (0, 8))).max()) == 250  # the full resolution differs
    # rendered from the flat overview: one value; from the full resolution the
    # 250 block (and the 7 around it) would show as two
    assert len(np.unique(pixels[0])) == 1


def test_big_raster_without_overviews_gets_no_thumbnail(tmp_path, catalog_dir, monkeypatch, caplog):
    product = write_big_cog(tmp_path / "data", overviews=False)
    monkeypatch.setattr(thumbnail, "MAX_FULL_READ_PIXELS", 1000 * 1000)  # 2400² is then "big"
    [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.action == "created", result.error
    item = json.loads((catalog_dir / "c/big_20240601/big_20240601.json").read_text())
    assert "thumbnail" not in item["assets"]
    assert not (catalog_dir / "c/big_20240601/big_20240601.png").exists()
    assert "add overviews" in caplog.text


def test_thumbnail_is_written_before_the_item_and_removed_with_it(tmp_path, catalog_dir):
    product = rasters.write_utm(tmp_path / "data")
    store = CountingStore(open_store(str(catalog_dir)))
    producer.register([product], catalog=store, collection="c", thumbnail=True)
    png, doc = "c/utm_20240513/utm_20240513.png", "c/utm_20240513/utm_20240513.json"
    order = [key for key in store.puts if key in (png, doc)]  # first writes, in order
    assert order == [png, doc]
    store.reset()
    [again] = producer.register([product], catalog=store, collection="c", thumbnail=True)
    assert again.action == "unchanged" and store.puts[png] == 0  # the same PNG is not rewritten
    removed = producer.remove("utm_20240513", catalog=str(catalog_dir), collection="c")
    assert removed.action == "removed"
    assert not (catalog_dir / png).exists()
    # a crash between the PNG and the item leaves a PNG no item links: harmless
    (catalog_dir / png).parent.mkdir(parents=True, exist_ok=True)
    (catalog_dir / png).write_bytes(b"\x89PNG")
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_dry_run_with_thumbnail_writes_nothing(tmp_path, catalog_dir):
    product = rasters.write_utm(tmp_path / "data")
    producer.register([product], catalog=str(catalog_dir), collection="c")
    before = tree_hash(catalog_dir)
    [result] = producer.register(
        [product], catalog=str(catalog_dir), collection="c", thumbnail=True, dry_run=True
    )
    assert result.action == "updated"  # it would add the thumbnail asset
    assert tree_hash(catalog_dir) == before


@pytest.mark.parametrize("dtype", ["float32", "int16"])
def test_thumbnail_of_other_data_types_with_nodata(tmp_path, dtype):
    path = tmp_path / f"x_{dtype}.tif"
    data = np.arange(64 * 64, dtype=dtype).reshape(1, 64, 64)
    data[0, :8, :8] = -1
    rasters._write(path, data, crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10), nodata=-1)
    with rasterio.open(path) as src:
        png = thumbnail.render(src, str(path))
    assert png is not None
    from rasterio.io import MemoryFile

    with MemoryFile(png) as mem, mem.open() as img:
        alpha = img.read(2)
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 255  # nodata is transparent


def test_thumbnail_of_an_s3_product_goes_to_the_s3_catalog_not_the_data_bucket(s3_server, tmp_path):
    data_bucket, catalog_bucket = s3_server.new_bucket(), s3_server.new_bucket()
    client = s3_server.client()
    path = rasters.write_utm(tmp_path)
    client.upload_file(str(path), data_bucket, f"out/{path.name}")
    options = {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}}
    catalog = f"s3://{catalog_bucket}/stac"
    [result] = producer.register(
        [f"s3://{data_bucket}/out/{path.name}"],
        catalog=catalog,
        collection="c",
        thumbnail=True,
        storage_options=options,
    )
    assert result.action == "created", result.error
    png = client.get_object(Bucket=catalog_bucket, Key="stac/c/utm_20240513/utm_20240513.png")["Body"].read()
    assert png.startswith(b"\x89PNG")
    assert [o["Key"] for o in client.list_objects_v2(Bucket=data_bucket)["Contents"]] == [f"out/{path.name}"]
    removed = producer.remove("utm_20240513", catalog=catalog, collection="c", storage_options=options)
    assert removed.action == "removed"
    left = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=catalog_bucket, Prefix="stac/c/utm").get("Contents", [])
    ]
    assert left == []
