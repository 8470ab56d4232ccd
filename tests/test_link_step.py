"""The link step of a register (lk37): the root's link to the collection
checked on the pre-read root, the extent of one item merged into an empty
collection. Guards for speed cuts whose behaviour must stay the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import producer
from producer.catalog import documents as docs
from producer.catalog.extent import union_interval
from producer.validate import default_validator
from tests import rasters


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_a_root_that_lost_its_collection_link_gets_it_back_on_the_next_register(tmp_path: Path) -> None:
    """The pre-read root lacks the link (hand-edited, or an old crash): the
    root's compare-and-swap still runs and adds it; one link, not two."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    (first,) = producer.register([rasters.write_utm(data)], catalog=str(root), collection="c")
    assert first.ok
    doc = _load(root / "catalog.json")
    doc["links"] = [link for link in doc["links"] if link.get("rel") != "child"]
    (root / "catalog.json").write_text(json.dumps(doc, indent=2) + "\n")

    (second,) = producer.register([rasters.write_wgs84(data)], catalog=str(root), collection="c")

    assert second.ok, second.error
    links = [link for link in _load(root / "catalog.json")["links"] if link.get("rel") == "child"]
    assert [link["href"] for link in links] == ["./c/collection.json"]
    default_validator().check(_load(root / "catalog.json"), "catalog.json")


def test_a_root_that_links_the_collection_is_not_written_again(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    data = tmp_path / "data"
    (first,) = producer.register([rasters.write_utm(data)], catalog=str(root), collection="c")
    assert first.ok
    before = (root / "catalog.json").read_bytes()
    inode = (root / "catalog.json").stat().st_ino  # a write renames a new file over it

    (second,) = producer.register([rasters.write_wgs84(data)], catalog=str(root), collection="c")

    assert second.ok and second.action == "created"
    assert (root / "catalog.json").read_bytes() == before
    assert (root / "catalog.json").stat().st_ino == inode


@pytest.mark.parametrize(
    "when",
    [
        "2022-05-26T09:00:00Z",
        "2022-05-26T09:00:00+02:00",
        "2022-05-26T09:00:00.500000Z",
        "2022-05-26T09:00:00",
        "2022-05-26t09:00:00z",
    ],
)
def test_one_item_with_one_datetime_gives_the_interval_of_the_union(when: str) -> None:
    collection = {"id": "c", "extent": docs.empty_extent(), "links": []}
    item = {"id": "x", "bbox": [1.0, 2.0, 3.0, 4.0], "properties": {"datetime": when}}

    assert docs.merge_extent(collection, [item], was_empty=True)

    assert collection["extent"]["temporal"]["interval"] == [union_interval([(when, when)])]


def test_one_item_with_a_range_keeps_both_ends() -> None:
    collection = {"id": "c", "extent": docs.empty_extent(), "links": []}
    props = {
        "datetime": None,
        "start_datetime": "2022-05-26T09:00:00Z",
        "end_datetime": "2022-05-27T00:00:00Z",
    }
    item = {"id": "x", "bbox": [1.0, 2.0, 3.0, 4.0], "properties": props}

    assert docs.merge_extent(collection, [item], was_empty=True)

    assert collection["extent"]["temporal"]["interval"] == [["2022-05-26T09:00:00Z", "2022-05-27T00:00:00Z"]]
