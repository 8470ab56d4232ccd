"""A local catalog never follows a symbolic link out of its root (issue 8, point 11).

Real symlinks on the real file system: a collection folder, an item folder,
an item file and the lock file are pointed outside the catalog, and every
verb must refuse, naming the key and the fix, with nothing outside created,
changed or deleted.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import StoreError
from producer.store.local import LOCK_NAME, LocalStore
from tests import rasters
from tests.trees import tree_hash

ITEM = "utm_20240513"


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("data"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the catalog that must stay as it is."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "keep.txt").write_text("not the catalog's")
    return folder


def registered(product: Path, catalog_dir: Path) -> None:
    (result,) = producer.register([product], catalog=str(catalog_dir), collection="ndvi")
    assert result.action == "created", result.error


def test_register_through_a_symlinked_collection_folder_writes_nothing_outside(product, catalog_dir, outside):
    registered(product, catalog_dir)
    shutil.copytree(catalog_dir / "ndvi", outside / "ndvi")
    shutil.rmtree(catalog_dir / "ndvi")
    os.symlink(outside / "ndvi", catalog_dir / "ndvi")
    before_outside, before_catalog = tree_hash(outside), tree_hash(catalog_dir)

    other = rasters.write_wgs84(product.parent / "more")
    (result,) = producer.register([other], catalog=str(catalog_dir), collection="ndvi")
    assert result.action == "error" and "symbolic link" in result.error
    assert "ndvi/collection.json" in result.error and str(outside / "ndvi") in result.error
    assert tree_hash(outside) == before_outside and tree_hash(catalog_dir) == before_catalog

    cli = CliRunner().invoke(
        main, ["register", str(other), "--catalog", str(catalog_dir), "--collection", "ndvi"]
    )
    assert cli.exit_code == 1 and "symbolic link" in cli.output
    assert tree_hash(outside) == before_outside


def test_remove_through_a_symlinked_item_folder_deletes_nothing_outside(product, catalog_dir, outside):
    registered(product, catalog_dir)
    shutil.move(str(catalog_dir / "ndvi" / ITEM), str(outside / ITEM))
    os.symlink(outside / ITEM, catalog_dir / "ndvi" / ITEM)
    before_outside, before_catalog = tree_hash(outside), tree_hash(catalog_dir)

    with pytest.raises(StoreError, match="symbolic link") as info:
        producer.remove(ITEM, catalog=str(catalog_dir), collection="ndvi")
    assert f"ndvi/{ITEM}/{ITEM}.json" in str(info.value) and "replace the link" in str(info.value)
    assert (outside / ITEM / f"{ITEM}.json").is_file()
    assert tree_hash(outside) == before_outside and tree_hash(catalog_dir) == before_catalog

    cli = CliRunner().invoke(main, ["remove", ITEM, "--catalog", str(catalog_dir), "--collection", "ndvi"])
    assert cli.exit_code == 1 and "symbolic link" in cli.output
    assert tree_hash(outside) == before_outside


def test_register_over_a_symlinked_item_file_writes_nothing_outside(product, catalog_dir, outside):
    registered(product, catalog_dir)
    item = catalog_dir / "ndvi" / ITEM / f"{ITEM}.json"
    shutil.move(str(item), str(outside / "item.json"))
    os.symlink(outside / "item.json", item)
    before_outside = tree_hash(outside)
    (result,) = producer.register(
        [product], catalog=str(catalog_dir), collection="ndvi", datetime="2024-01-01"
    )
    assert result.action == "error" and "symbolic link" in result.error
    assert tree_hash(outside) == before_outside


def test_symlinked_lock_file_creates_no_file_outside(product, catalog_dir, outside):
    catalog_dir.mkdir()
    target = outside / "created-by-the-lock"
    os.symlink(target, catalog_dir / LOCK_NAME)  # a dangling link: O_CREAT would create its target
    (result,) = producer.register([product], catalog=str(catalog_dir), collection="ndvi")
    assert result.action == "error" and "lock file" in result.error and "symbolic link" in result.error
    assert not target.exists() and tree_hash(catalog_dir) == {}  # no document written either
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_store_refuses_every_operation_through_a_link_out_of_the_root(catalog_dir, outside):
    store = LocalStore(str(catalog_dir))
    store.put("catalog.json", b"{}")
    (outside / "doc.json").write_text("{}")
    os.symlink(outside, catalog_dir / "out")
    os.symlink(outside / "doc.json", catalog_dir / "linked.json")
    before = tree_hash(outside)
    for key in ("out/doc.json", "linked.json"):
        with pytest.raises(StoreError, match="symbolic link"):
            store.get(key)
        with pytest.raises(StoreError, match="symbolic link"):
            store.put(key, b"[]")
        with pytest.raises(StoreError, match="symbolic link"):
            store.delete(key)
        with pytest.raises(StoreError, match="symbolic link"):
            store.exists(key)
    with pytest.raises(StoreError, match="symbolic link"):
        list(store.list("out"))
    assert sorted(store.list()) == ["catalog.json"]  # links out of the root are not listed
    assert tree_hash(outside) == before


def test_symlinks_that_stay_inside_the_root_are_followed(catalog_dir):
    store = LocalStore(str(catalog_dir))
    store.put("real/doc.json", b"{}")
    os.symlink(catalog_dir / "real", catalog_dir / "alias")
    assert store.get("alias/doc.json")[0] == b"{}"
    store.put("alias/doc.json", b"[]")
    assert (catalog_dir / "real" / "doc.json").read_bytes() == b"[]"


def test_catalog_root_that_is_itself_a_symlink_works(product, tmp_path):
    real = tmp_path / "real-catalog"
    real.mkdir()
    os.symlink(real, tmp_path / "catalog-link")
    (result,) = producer.register([product], catalog=str(tmp_path / "catalog-link"), collection="ndvi")
    assert result.action == "created", result.error
    assert (real / "ndvi" / ITEM / f"{ITEM}.json").is_file()


def test_a_root_link_repointed_later_is_checked_where_it_points_now(tmp_path, outside):
    """The check walks the key's components below the root as the kernel
    resolves the root now (a root given through a link above the catalog),
    not below a real path remembered from the first write: when the link is
    repointed at another catalog folder whose ``ndvi`` is a link out of it,
    the same store refuses, writing nothing outside."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "ndvi").mkdir(parents=True)
    second.mkdir()
    os.symlink(outside, second / "ndvi")
    os.symlink(first, tmp_path / "catalog-link")
    store = LocalStore(str(tmp_path / "catalog-link"))
    store.plain_for = 0.05  # a folder found plain is taken as such this long (docs/RELIABILITY.md)
    store.put("ndvi/doc.json", b"{}")
    assert (first / "ndvi" / "doc.json").read_bytes() == b"{}"
    os.unlink(tmp_path / "catalog-link")
    os.symlink(second, tmp_path / "catalog-link")
    before = tree_hash(outside)
    fresh = LocalStore(str(tmp_path / "catalog-link"))  # another store (another call) at once
    with pytest.raises(StoreError, match="symbolic link"):
        fresh.put("ndvi/doc.json", b"[]")
    time.sleep(0.1)  # the same store once its memo of plain folders expired
    with pytest.raises(StoreError, match="symbolic link"):
        store.put("ndvi/doc.json", b"[]")
    with pytest.raises(StoreError, match="symbolic link"):
        store.get("ndvi/doc.json")
    assert tree_hash(outside) == before
