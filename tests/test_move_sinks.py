"""A register that moves an item to another period removes its old copy,
which can shrink the collection extent: the sinks (pgSTAC upserts the
collection it is handed) must get the collection as shrunk, not as the
batch's link left it."""

from __future__ import annotations

import json
from pathlib import Path

import producer
from producer.catalog import documents as docs
from tests.rasters import write_tile


class _Collections:
    """A sink keeping the collection document each batch was handed with."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def apply(self, collection: dict, changes) -> None:
        self.seen.append(collection)


def test_the_sinks_get_the_collection_shrunk_by_a_move(tmp_path: Path) -> None:
    root, data = tmp_path / "cat", tmp_path / "data"
    a, b = (str(write_tile(data, f"{n}_20240101.tif", lon, 10.0)) for n, lon in (("a", 0.0), ("b", 5.0)))
    for path, when in ((a, "2024-03-02T00:00:00Z"), (b, "2024-03-28T00:00:00Z")):
        (res,) = producer.register(
            [path], catalog=str(root), collection="c", partition="year/month", datetime=when
        )
        assert res.ok, res.error
    sink = _Collections()
    (res,) = producer.register(
        [b],
        catalog=str(root),
        collection="c",
        partition="year/month",
        datetime="2024-02-10T00:00:00Z",
        sinks=[sink],
    )
    assert res.ok, res.error
    coll = json.loads((root / "c/collection.json").read_text())
    items = [
        d
        for d in (json.loads(p.read_text()) for p in (root / "c").rglob("*.json"))
        if d.get("type") == "Feature"
    ]
    assert coll["extent"] == docs.exact_extent(items)
    assert [c["extent"] for c in sink.seen] == [coll["extent"]]
