"""A path inside a Zarr store (an array's folder, the store's ``zarr.json``)
given to ``register``: the store is the product. The advice was to
register the JSON files inside the store one by one, or with a glob
(``cube.zarr/temperature/**/*.json``), or to attach them as JSON sidecars
with a group pattern: a catalog of chunk metadata instead of one item."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from tests import cubes


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return Path(cubes.write_zarr(tmp_path / "data" / "cube.zarr", zarr_format=3, consolidated=False))


def test_an_array_folder_inside_a_store_names_the_store(
    tmp_path: Path, store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = tmp_path / "stac"
    with caplog.at_level(logging.WARNING, logger="producer"):
        assert producer.register([store / "temperature"], catalog=catalog, collection="cubes") == []
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"inside the Zarr store {store}" in message
    assert "**/*.json" not in message and "one by one" not in message
    assert not catalog.exists()


def test_the_cli_names_the_store_for_an_array_folder(tmp_path: Path, store: Path) -> None:
    catalog = tmp_path / "stac"
    args = ["register", str(store / "temperature"), "-c", str(catalog), "--collection", "cubes"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert f"inside the Zarr store {store}" in result.output
    assert "**/*.json" not in result.output
    assert not catalog.exists()


def test_the_stores_metadata_object_names_the_store(tmp_path: Path, store: Path) -> None:
    catalog = tmp_path / "stac"
    (result,) = producer.register([store / "zarr.json"], catalog=catalog, collection="cubes")
    assert result.action == "error"
    assert f"inside the Zarr store {store}" in result.error
    assert "sidecar" not in result.error and not result.hints
    assert not (catalog / "cubes" / "zarr").exists()
    # the store itself registers
    (result,) = producer.register([store], catalog=catalog, collection="cubes")
    assert result.action == "created", result.error


def test_a_product_in_a_folder_merely_named_zarr_registers(tmp_path: Path) -> None:
    """A GeoTIFF in a folder whose name ends in ``.zarr`` but holds no Zarr
    store (no zarr.json, .zmetadata, .zgroup or .zarray) was refused as
    "inside the Zarr store ...: register the store itself", and that folder
    then as "not a Zarr store": no way to register it at all. It registers,
    as it did before the refusal existed."""
    from tests import rasters

    folder = tmp_path / "exports.zarr"
    tif = rasters.write_utm(folder)
    (result,) = producer.register([tif], catalog=tmp_path / "stac", collection="c")
    assert result.action == "created", result.error


def test_the_folders_above_a_product_in_a_folder_merely_named_zarr_register_it(tmp_path: Path) -> None:
    """Naming that folder, or one above it, listed it as one Zarr store:
    the product was "not a Zarr store ...: register the store's root
    folder", the very folder given, and the GeoTIFF in it never registered.
    A folder so named that holds no product either (a store whose metadata
    is not written yet) is still the store, and its error is kept."""
    from tests import rasters

    folder = tmp_path / "data" / "exports.zarr"
    tif = rasters.write_utm(folder)
    (tmp_path / "data" / "unfinished.zarr").mkdir()
    for given in (folder, tmp_path / "data"):
        catalog = tmp_path / "stac" / given.name
        results = producer.register([given], catalog=catalog, collection="c")
        by_source = {Path(r.source).name: r for r in results}
        assert by_source[Path(tif).name].action == "created", by_source[Path(tif).name].error
        if given != folder:
            assert by_source["unfinished.zarr"].action == "error"
            assert "not a Zarr store" in by_source["unfinished.zarr"].error
