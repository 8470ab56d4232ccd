"""A multi-asset item whose update moves it off an edge of its collection's
extent (a band file rewritten over a smaller area, then registered again):
the extent is shrunk, as for a single product's item. The merge of a group
never told the committer which document it replaced, so the extent kept
the old box (``validate`` warned ``stale-extent``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import producer
from tests import rasters

GROUP = r"(?P<id>scene_\d{8})/(?P<asset>[^/]+)\.tif$"


def _extent(catalog: Path) -> list[list[float]]:
    return json.loads((catalog / "g" / "collection.json").read_text())["extent"]["spatial"]["bbox"]


def test_a_group_item_moved_off_an_edge_shrinks_the_extent(tmp_path: Path) -> None:
    catalog, scene = tmp_path / "stac", tmp_path / "data" / "scene_20240501"
    rasters.write_tile(scene, "B02.tif", 10.0, 50.0)
    rasters.write_tile(scene, "B05.tif", 12.0, 50.0)  # two degrees east: the extent's east edge
    assert all(
        r.ok for r in producer.register([tmp_path / "data"], catalog=catalog, collection="g", group=GROUP)
    )
    assert _extent(catalog)[0][2] == 12.16

    rasters.write_tile(scene, "B05.tif", 10.0, 50.0)  # rewritten over B02's tile
    (result,) = producer.register([scene / "B05.tif"], catalog=catalog, collection="g", group=GROUP)
    assert result.action == "updated", result.error
    item = json.loads((catalog / "g" / "scene_20240501" / "scene_20240501.json").read_text())
    assert item["bbox"] == [10.0, 49.84, 10.16, 50.0]
    assert _extent(catalog) == [item["bbox"]]
    assert producer.validate_catalog(catalog) == []


def test_a_new_asset_that_widens_the_item_walks_no_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual merge (a band of another grid arriving) only grows the item:
    nothing to shrink, so no walk of the collection's items."""
    from producer import audit

    catalog, scene = tmp_path / "stac", tmp_path / "data" / "scene_20240501"
    rasters.write_tile(scene, "B02.tif", 10.0, 50.0)
    assert producer.register([scene / "B02.tif"], catalog=catalog, collection="g", group=GROUP)[0].ok
    walked: list[str] = []
    real = audit.collection_items
    monkeypatch.setattr(audit, "collection_items", lambda *a, **k: walked.append("walk") or real(*a, **k))
    rasters.write_tile(scene, "B05.tif", 12.0, 50.0)
    (result,) = producer.register([scene / "B05.tif"], catalog=catalog, collection="g", group=GROUP)
    assert result.action == "updated", result.error
    assert walked == []
    assert _extent(catalog) == [[10.0, 49.84, 12.16, 50.0]]
