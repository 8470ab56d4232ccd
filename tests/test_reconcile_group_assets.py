"""``reconcile(fix=True, check_assets=True)`` on a multi-asset item (issue 10,
point 1): a gone file removes its asset only, and the item goes with its last
data asset (``dead="remove"``); ``dead="flag"`` deprecates it only when a data
asset is gone. The sinks are told ``updated`` or ``removed`` accordingly.

Real files: a scene folder ``S_20240101/`` with three band GeoTIFFs and a
``meta.xml`` sidecar, written here; files are deleted from disk to make
their assets gone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import producer
from producer import repair
from producer.catalog.layout import thumbnail_key
from producer.changes import Change
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.rasters import write_tile
from tests.trees import assert_stac_valid_tree

SCENE = "S_20240101"
GROUP = r"(?P<id>S_\d{8})/(?P<asset>[^/]+)\.(tif|xml)$"
ITEM_KEY = f"scene/{SCENE}/{SCENE}.json"
BANDS = ("B02", "B03", "B04")


class RecordingSink:
    """A sink that records the kind, id and key of every change it is handed."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        self.changes += [(str(c.kind), c.item_id, c.key) for c in changes]


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / SCENE
    folder.mkdir(parents=True)
    for i, band in enumerate(BANDS):
        write_tile(folder, f"{band}.tif", 10.0 + 0.1 * i, 45.0)  # footprints side by side
    (folder / "meta.xml").write_text("<meta><scene>S_20240101</scene></meta>\n")
    return folder


@pytest.fixture
def catalog(tmp_path: Path, scene: Path) -> Path:
    root = tmp_path / "stac"
    results = producer.register(
        [str(p) for p in sorted(scene.iterdir())], catalog=str(root), collection="scene", group=GROUP
    )
    assert all(r.ok for r in results), [r.error for r in results]
    assert sorted(_item(root)["assets"]) == [*BANDS, "meta"]
    return root


def _item(root: Path) -> dict[str, Any]:
    return json.loads((root / ITEM_KEY).read_text())


def _reconcile(root: Path, dead: str) -> tuple[repair.ReconcileReport, RecordingSink]:
    sink = RecordingSink()
    report = repair.reconcile(
        LocalStore(str(root)), default_validator(), fix=True, dead=dead, check_assets=True, sinks=[sink]
    )
    return report, sink


def test_gone_sidecar_drops_its_asset_and_the_item_stays(catalog: Path, scene: Path) -> None:
    before = _item(catalog)
    (scene / "meta.xml").unlink()
    report, sink = _reconcile(catalog, "remove")
    item = _item(catalog)
    assert sorted(item["assets"]) == list(BANDS)
    assert (
        item["bbox"] == before["bbox"] and item["properties"]["datetime"] == before["properties"]["datetime"]
    )
    assert item["properties"]["updated"] >= before["properties"]["updated"]
    assert "deprecated" not in item["properties"]
    assert report.fixed.get("missing-asset") == 1 and not report.remaining
    assert sink.changes == [("updated", SCENE, ITEM_KEY)]
    assert_stac_valid_tree(catalog)


def test_one_gone_data_asset_of_several_is_dropped(catalog: Path, scene: Path) -> None:
    before = _item(catalog)
    (scene / "B02.tif").unlink()
    (scene / "meta.xml").unlink()
    _, sink = _reconcile(catalog, "remove")
    item = _item(catalog)
    assert sorted(item["assets"]) == ["B03", "B04"]
    assert item["bbox"][0] > before["bbox"][0] and item["bbox"][2] == before["bbox"][2]  # recomputed
    assert sink.changes == [("updated", SCENE, ITEM_KEY)]
    assert_stac_valid_tree(catalog)


def test_last_data_asset_gone_removes_the_item_and_its_thumbnail(catalog: Path, scene: Path) -> None:
    png = catalog / thumbnail_key(ITEM_KEY)
    # a multi-asset register renders no thumbnail (yet): put one where thumbnail=True puts it
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    for band in BANDS:
        (scene / f"{band}.tif").unlink()
    report, sink = _reconcile(catalog, "remove")
    assert not (catalog / ITEM_KEY).exists() and not png.exists()
    collection = json.loads((catalog / "scene" / "collection.json").read_text())
    assert not [link for link in collection["links"] if link["rel"] == "item"]
    assert sink.changes == [("removed", SCENE, ITEM_KEY)]
    assert report.fixed.get("missing-asset") == 1 and not report.remaining
    assert_stac_valid_tree(catalog)


def test_flag_deprecates_only_for_a_gone_data_asset(catalog: Path, scene: Path) -> None:
    (scene / "meta.xml").unlink()
    report, sink = _reconcile(catalog, "flag")
    item = _item(catalog)
    assert sorted(item["assets"]) == [*BANDS, "meta"] and "deprecated" not in item["properties"]
    assert sink.changes == [] and "missing-asset" not in report.fixed
    [left] = report.remaining
    assert left.kind == "missing-asset" and not left.is_error and "'meta'" in left.message
    assert "dead='remove'" in left.message

    (scene / "B03.tif").unlink()
    report, sink = _reconcile(catalog, "flag")
    item = _item(catalog)
    assert item["properties"]["deprecated"] is True and sorted(item["assets"]) == [*BANDS, "meta"]
    assert sink.changes == [("updated", SCENE, ITEM_KEY)] and report.fixed.get("missing-asset") == 1
    assert_stac_valid_tree(catalog)


def test_dead_single_product_item_goes_with_its_thumbnail(tmp_path: Path) -> None:
    product = write_tile(tmp_path / "data", "x_20240101.tif", 10.0, 45.0)
    root = tmp_path / "stac"
    [result] = producer.register([str(product)], catalog=str(root), collection="c", thumbnail=True)
    key = "c/x_20240101/x_20240101.json"
    stored = json.loads((root / key).read_text())
    png = ((root / key).parent / stored["assets"]["thumbnail"]["href"]).resolve()  # the PNG the item links
    assert result.ok and png.exists() and png.parent == (root / key).parent
    product.unlink()
    report, sink = _reconcile(root, "remove")
    assert not (root / key).exists() and not png.exists()
    assert sink.changes == [("removed", "x_20240101", key)] and not report.remaining
    assert_stac_valid_tree(root)
