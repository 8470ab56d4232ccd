"""An item that moves to another period of a partitioned collection (its
product re-registered with another datetime) is ``updated``, but its
``created`` was stamped anew: the document at the new key was written as a
new one, so the catalog forgot when the item first appeared. It keeps the
``created`` of the item it replaces (and gets a new ``updated``)."""

from __future__ import annotations

import json
from pathlib import Path

import producer
from tests import rasters
from tests.trees import assert_stac_valid_tree


def test_a_moved_item_keeps_its_created(tmp_path: Path) -> None:
    utm = rasters.write_utm(tmp_path / "r")
    catalog = tmp_path / "stac"
    common = dict(catalog=str(catalog), collection="c", partition="year/month")
    [first] = producer.register([utm], datetime="2024-01-15T00:00:00Z", **common)
    before = json.loads(Path(first.href).read_text())["properties"]
    [moved] = producer.register([utm], datetime="2024-02-15T00:00:00Z", **common)
    assert moved.action == "updated" and "/2024/02/" in moved.href
    after = json.loads(Path(moved.href).read_text())["properties"]
    assert after["created"] == before["created"]
    assert after["updated"] > before["updated"]
    assert not Path(first.href).exists()
    assert_stac_valid_tree(catalog)
    # the mirror says the same
    [found] = producer.search(str(catalog))["features"]
    assert found["properties"]["created"] == before["created"]
