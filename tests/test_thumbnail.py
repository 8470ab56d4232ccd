"""``thumbnail=True``: a PNG of at most 600 px rendered from overviews, stored
in the catalog beside the item, linked as its ``thumbnail`` asset, removed
with the item."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin

import producer
from producer import thumbnail
from producer.catalog.layout import resolve_href
from producer.store import CountingStore, open_store
from tests import cubes, rasters
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


def thumb_key(catalog: Path, item_key: str) -> str:
    """The key of the PNG the item at ``item_key`` links as its thumbnail."""
    item = json.loads((catalog / item_key).read_text())
    key = resolve_href(item_key, item["assets"]["thumbnail"]["href"])
    assert key is not None
    return key


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
    thumb = item["assets"]["thumbnail"]
    assert re.fullmatch(r"\./multiband_20240801\.[0-9a-f]{8}\.png", thumb.pop("href"))  # named by product
    assert thumb == {"type": "image/png", "title": "Thumbnail", "roles": ["thumbnail"]}
    pixels = png_of(catalog_dir, thumb_key(catalog_dir, key))
    assert pixels.shape == (4, 64, 64)  # RGB + alpha from three bands, small enough to keep its size
    assert not (tmp_path / "data" / "multiband_20240801.png").exists()  # never in the data folder
    assert_stac_valid_tree(catalog_dir)
    assert producer.validate_catalog(str(catalog_dir), check_assets=True) == []


def test_thumbnail_of_a_big_cog_comes_from_its_overviews(tmp_path, catalog_dir):
    product = write_big_cog(tmp_path / "data")
    [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.ok, result.error
    pixels = png_of(catalog_dir, thumb_key(catalog_dir, "c/big_20240601/big_20240601.json"))
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
    assert [p.name for p in (catalog_dir / "c/big_20240601").iterdir()] == ["big_20240601.json"]
    assert "add overviews" in caplog.text


def test_thumbnail_is_written_before_the_item_and_removed_with_it(tmp_path, catalog_dir):
    product = rasters.write_utm(tmp_path / "data")
    store = CountingStore(open_store(str(catalog_dir)))
    producer.register([product], catalog=store, collection="c", thumbnail=True)
    doc = "c/utm_20240513/utm_20240513.json"
    png = thumb_key(catalog_dir, doc)
    order = [key for key in store.puts if key in (png, doc)]  # first writes, in order
    assert order == [png, doc]
    store.reset()
    [again] = producer.register([product], catalog=store, collection="c", thumbnail=True)
    assert again.action == "unchanged" and store.puts[png] == 0  # the same PNG is not rewritten
    removed = producer.remove("utm_20240513", catalog=str(catalog_dir), collection="c")
    assert removed.action == "removed"
    assert not (catalog_dir / png).exists()
    # a crash between the PNG and the item leaves a PNG no item links: valid
    # STAC, a warning (test_unlinked_thumbnail.py)
    (catalog_dir / png).parent.mkdir(parents=True, exist_ok=True)
    (catalog_dir / png).write_bytes(b"\x89PNG")
    problems = producer.validate_catalog(str(catalog_dir))
    assert [(p.kind, p.key, p.is_error) for p in problems] == [("unlinked-thumbnail", png, False)]


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
    item_key = "c/utm_20240513/utm_20240513.json"
    item = json.loads(client.get_object(Bucket=catalog_bucket, Key=f"stac/{item_key}")["Body"].read())
    png_key = resolve_href(item_key, item["assets"]["thumbnail"]["href"])
    png = client.get_object(Bucket=catalog_bucket, Key=f"stac/{png_key}")["Body"].read()
    assert png.startswith(b"\x89PNG")
    assert [o["Key"] for o in client.list_objects_v2(Bucket=data_bucket)["Contents"]] == [f"out/{path.name}"]
    [again] = producer.register(  # without the option: the stored thumbnail is kept
        [f"s3://{data_bucket}/out/{path.name}"], catalog=catalog, collection="c", storage_options=options
    )
    assert again.action == "unchanged", again.error
    removed = producer.remove("utm_20240513", catalog=catalog, collection="c", storage_options=options)
    assert removed.action == "removed"
    left = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=catalog_bucket, Prefix="stac/c/utm").get("Contents", [])
    ]
    assert left == []


def _scene(folder: Path, *, flip: bool) -> Path:
    """``scene_20240101.tif`` in ``folder``: a 32 x 32 ramp, reversed when
    ``flip`` (so two such products render to different PNGs)."""
    data = np.arange(32 * 32, dtype="uint16").reshape(1, 32, 32)
    folder.mkdir(parents=True, exist_ok=True)
    return rasters._write(
        folder / "scene_20240101.tif",
        data[:, ::-1, ::-1].copy() if flip else data,
        crs="EPSG:32633",
        transform=from_origin(500000, 5000000, 10, 10),
    )


def test_refused_product_under_a_taken_id_leaves_the_stored_thumbnail_untouched(tmp_path, catalog_dir):
    a = _scene(tmp_path / "a", flip=False)
    b = _scene(tmp_path / "b", flip=True)
    [first] = producer.register([a], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert first.action == "created", first.error
    before = tree_hash(catalog_dir)
    [second] = producer.register([b], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert second.error is not None and "is taken" in second.error
    assert tree_hash(catalog_dir) == before  # neither a's PNG overwritten nor a PNG of b left


def test_replace_links_the_new_products_thumbnail_and_remove_deletes_it(tmp_path, catalog_dir):
    a = _scene(tmp_path / "a", flip=False)
    b = _scene(tmp_path / "b", flip=True)
    item_key = "c/scene_20240101/scene_20240101.json"
    producer.register([a], catalog=str(catalog_dir), collection="c", thumbnail=True)
    png_a = thumb_key(catalog_dir, item_key)
    [replaced] = producer.register(
        [b], catalog=str(catalog_dir), collection="c", thumbnail=True, replace=True
    )
    assert replaced.action == "updated", replaced.error
    png_b = thumb_key(catalog_dir, item_key)
    assert png_b != png_a and (png_of(catalog_dir, png_a) != png_of(catalog_dir, png_b)).any()
    assert_stac_valid_tree(catalog_dir)
    assert producer.remove("scene_20240101", catalog=str(catalog_dir), collection="c").action == "removed"
    assert not (catalog_dir / png_b).exists()  # the linked one; a's is a harmless orphan


def test_remove_deletes_a_thumbnail_stored_under_the_key_without_product(tmp_path, catalog_dir):
    """Items registered before thumbnail keys named the product link ``<id>.png``."""
    product = rasters.write_utm(tmp_path / "data")
    producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    item_key = "c/utm_20240513/utm_20240513.json"
    old = catalog_dir / "c/utm_20240513/utm_20240513.png"
    (catalog_dir / thumb_key(catalog_dir, item_key)).rename(old)
    item = json.loads((catalog_dir / item_key).read_text())
    item["assets"]["thumbnail"]["href"] = "./utm_20240513.png"
    (catalog_dir / item_key).write_text(json.dumps(item))
    assert producer.remove("utm_20240513", catalog=str(catalog_dir), collection="c").action == "removed"
    assert not old.exists()


@pytest.mark.parametrize("kind", ["zarr", "netcdf-multivar"])
def test_datacube_with_thumbnail_is_registered_without_one_and_a_warning(tmp_path, catalog_dir, kind, caplog):
    if kind == "zarr":
        product = cubes.write_zarr(tmp_path / "data" / "cube.zarr")
    else:
        product = str(rasters.write_netcdf_multivar(tmp_path / "data"))
    with caplog.at_level(logging.WARNING, logger="producer.thumbnail"):
        [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.ok, result.error
    assert result.item is not None and "thumbnail" not in result.item["assets"]
    assert "no thumbnail" in caplog.text and "datacube" in caplog.text
    assert not list(catalog_dir.rglob("*.png"))
    assert_stac_valid_tree(catalog_dir)


def test_thumbnail_that_cannot_be_rendered_is_a_warning_not_a_failed_product(
    tmp_path, catalog_dir, monkeypatch, caplog
):
    product = rasters.write_utm(tmp_path / "data")

    def broken(src, where):  # a rendering bug or a band GDAL cannot decode
        raise ValueError("cannot decode band 1")

    monkeypatch.setattr(thumbnail, "render", broken)
    with caplog.at_level(logging.WARNING, logger="producer.thumbnail"):
        [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.action == "created", result.error
    assert result.item is not None and "thumbnail" not in result.item["assets"]
    assert "no thumbnail" in caplog.text and "cannot decode band 1" in caplog.text
    assert_stac_valid_tree(catalog_dir)


def test_storage_error_writing_the_thumbnail_fails_the_product_naming_the_png(
    tmp_path, catalog_dir, monkeypatch
):
    import errno
    import os

    product = rasters.write_utm(tmp_path / "data")
    real_open = os.open

    def open_(path, flags, *args, **kwargs):  # the PNG's temp file only: permission denied
        if ".png." in os.fspath(path) and os.fspath(path).startswith(str(catalog_dir)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    [result] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert result.error is not None and result.error_type is not None
    assert "not registered: cannot write its thumbnail" in result.error and ".png" in result.error
    assert not (catalog_dir / "c/utm_20240513/utm_20240513.json").exists()


def test_an_item_moved_to_another_period_takes_its_thumbnail_along(tmp_path, catalog_dir):
    """A product whose datetime changed moves to another month; its old copy
    is removed. Before: the old copy's PNG stayed in the old month's folder,
    linked by nothing, and no later remove or reconcile ever deleted it (one
    stray PNG per move)."""
    product = rasters.write_utm(tmp_path / "data")
    for when in (None, "2023-07-01T00:00:00Z"):
        [res] = producer.register(
            [product],
            catalog=str(catalog_dir),
            collection="c",
            partition="year/month",
            datetime=when,
            thumbnail=True,
        )
        assert res.ok, res.error
    assert res.action == "updated"
    new = "c/2023/07/utm_20240513/utm_20240513.json"
    pngs = sorted(p.relative_to(catalog_dir).as_posix() for p in catalog_dir.rglob("*.png"))
    assert pngs == [thumb_key(catalog_dir, new)]


def test_a_rerun_without_the_thumbnail_option_keeps_the_stored_thumbnail(tmp_path, catalog_dir):
    """Registered with a thumbnail, then again without the option: the item
    came back ``updated`` without its ``thumbnail`` asset, and the PNG stayed
    in the catalog unlinked. A rerun without the option keeps the stored
    thumbnail, as the multi-asset path does: ``unchanged``, nothing written;
    the dry run says the same."""
    product = rasters.write_utm(tmp_path / "data")
    key = "c/utm_20240513/utm_20240513.json"
    [first] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert first.action == "created", first.error
    png = thumb_key(catalog_dir, key)
    before = tree_hash(catalog_dir)
    [dry] = producer.register([product], catalog=str(catalog_dir), collection="c", dry_run=True)
    assert dry.action == "unchanged", dry.error
    [again] = producer.register([product], catalog=str(catalog_dir), collection="c")
    assert again.action == "unchanged", again.error
    assert tree_hash(catalog_dir) == before
    assert thumb_key(catalog_dir, key) == png and (catalog_dir / png).exists()
    assert producer.validate_catalog(str(catalog_dir), check_assets=True) == []
