"""Issue 8 point 10: the collection extent is the exact union of its items,
whatever the order, the batch split or the interleaving of writers.

The spatial extent is ``[overall, *clusters]``; merging is checked against
``exact_extent`` of the whole set, in-process (pure, many random cases) and
through ``register`` on real rasters (two batches; two writers, one paused
at its critical point so its compare-and-swap must re-apply on the other's
result).
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.catalog import documents as docs
from producer.catalog.extent import bbox_contains, union_bbox
from producer.catalog.layout import Layout
from producer.store import open_store
from tests.pausing import PauseAfterGet


def _item(bbox: list[float], start: str, end: str) -> dict:
    return {
        "type": "Feature",
        "id": "x",
        "bbox": bbox,
        "links": [],
        "properties": {"datetime": None, "start_datetime": start, "end_datetime": end},
    }


def _random_item(rng: random.Random) -> dict:
    west = round(rng.uniform(-180, 180), 3)
    width = round(rng.choice([rng.uniform(0.1, 5), rng.uniform(5, 70)]), 3)
    east = west + width
    if east > 180:
        east -= 360  # crosses the antimeridian
    south = round(rng.uniform(-80, 70), 3)
    north = round(south + rng.uniform(0.1, 10), 3)
    day = rng.randint(1, 28)
    month = rng.randint(1, 12)
    return _item(
        [west, south, round(east, 3), north],
        f"2024-{month:02d}-{day:02d}T00:00:00Z",
        f"2024-{month:02d}-{day:02d}T12:00:00Z",
    )


def _merge_in_batches(items: list[dict], rng: random.Random) -> dict:
    coll = docs.new_collection("c", None, Layout())
    order = items[:]
    rng.shuffle(order)
    first = True
    while order:
        size = rng.randint(1, len(order))
        batch, order = order[:size], order[size:]
        docs.merge_extent(coll, batch, was_empty=first)
        first = False
        json.loads(json.dumps(coll))  # stays plain JSON
    return coll["extent"]


def test_extent_is_exact_whatever_the_order_and_batches():
    """Random sets of boxes (a third of them crossing 180°), each merged in
    many random orders and batch splits: always exactly ``exact_extent``."""
    rng = random.Random(8_10)
    crossing = 0
    for _ in range(300):
        items = [_random_item(rng) for _ in range(rng.randint(2, 9))]
        crossing += any(i["bbox"][0] > i["bbox"][2] for i in items)
        exact = docs.exact_extent(items)
        for _ in range(4):
            assert _merge_in_batches(items, rng) == exact, items
        bboxes = exact["spatial"]["bbox"]
        for item in items:
            assert bbox_contains(bboxes[0], item["bbox"])
            assert any(bbox_contains(part, item["bbox"]) for part in (bboxes[1:] or bboxes))
    assert crossing > 50


def test_two_batches_on_three_sides_of_the_world_give_the_shortest_arc():
    """The issue's case in numbers: 0°, 160°W, then 100°E. One overall arc per
    batch gave a 260° wide box; the exact union is 200° wide (0° → 160°W)."""
    a = _item([0, 0, 0.4, 1], "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")
    b = _item([-160, 0, -159.6, 1], "2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z")
    c = _item([100, 0, 100.4, 1], "2024-01-03T00:00:00Z", "2024-01-03T00:00:00Z")
    coll = docs.new_collection("c", None, Layout())
    docs.merge_extent(coll, [a, b], was_empty=True)
    docs.merge_extent(coll, [c], was_empty=False)
    assert coll["extent"] == docs.exact_extent([a, b, c])
    assert coll["extent"]["spatial"]["bbox"][0] == [0.0, 0.0, -159.6, 1.0]
    assert coll["extent"]["spatial"]["bbox"][1:] == [
        [-160.0, 0.0, -159.6, 1.0],
        [0.0, 0.0, 0.4, 1.0],
        [100.0, 0.0, 100.4, 1.0],
    ]
    # the overall box is the same as the one-shot union of every item
    assert coll["extent"]["spatial"]["bbox"][0] == union_bbox([a["bbox"], b["bbox"], c["bbox"]])


def test_cluster_count_is_bounded_and_still_covers_every_item():
    rng = random.Random(3)
    items = [
        _item([x, 0, x + 0.1, 1], "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z")
        for x in rng.sample(range(-179, 179), 200)
    ]
    extent = docs.exact_extent(items)
    assert len(extent["spatial"]["bbox"]) <= 1 + 64
    for item in items:
        assert any(bbox_contains(part, item["bbox"]) for part in extent["spatial"]["bbox"][1:])


# --- through register, on real rasters -----------------------------------------------


def _tile(folder: Path, name: str, lon: float, lat: float = 10.0) -> str:
    path = folder / f"{name}_20240101.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(lon, lat, 0.05, 0.05),
    ) as dst:
        dst.write(np.full((1, 8, 8), 7, dtype="uint8"))
    return str(path)


def _items(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "c").glob("*/*.json"))]


@pytest.fixture
def tiles(tmp_path) -> dict[str, str]:
    folder = tmp_path / "tiles"
    folder.mkdir()
    return {
        "zero": _tile(folder, "zero", 0.0),
        "west160": _tile(folder, "west160", -160.0),
        "east100": _tile(folder, "east100", 100.0),
        "dateline": _tile(folder, "dateline", 179.8),
    }


def test_register_in_two_batches_gives_the_exact_extent(tiles, catalog_dir):
    first = producer.register([tiles["zero"], tiles["west160"]], catalog=str(catalog_dir), collection="c")
    second = producer.register(
        [tiles["east100"], tiles["dateline"]], catalog=str(catalog_dir), collection="c"
    )
    assert all(r.ok for r in first + second)
    coll = json.loads((catalog_dir / "c/collection.json").read_text())
    assert coll["extent"] == docs.exact_extent(_items(catalog_dir))
    west, _, east, _ = coll["extent"]["spatial"]["bbox"][0]
    assert (west, east) == (0.0, -159.6)  # 200.4° wide, not around through 100°E
    assert producer.validate_catalog(str(catalog_dir)) == []  # no stale-extent warning


def test_concurrent_writers_give_the_exact_extent(tiles, catalog_dir):
    """Writer B reads the collection, pauses; writer A commits; B's
    compare-and-swap loses and re-applies its merge on A's extent."""
    producer.register([tiles["zero"]], catalog=str(catalog_dir), collection="c")
    paused = PauseAfterGet(open_store(str(catalog_dir)), "c/collection.json")
    out: dict[str, list] = {}
    writer_b = threading.Thread(
        target=lambda: out.setdefault(
            "b", producer.register([tiles["east100"]], catalog=paused, collection="c")
        )
    )
    writer_b.start()
    assert paused.reached.wait(30)
    out["a"] = producer.register([tiles["west160"]], catalog=str(catalog_dir), collection="c")
    paused.resume.set()
    writer_b.join(30)
    assert [r.action for r in out["a"] + out["b"]] == ["created", "created"]
    coll = json.loads((catalog_dir / "c/collection.json").read_text())
    assert coll["extent"] == docs.exact_extent(_items(catalog_dir))
    assert coll["extent"]["spatial"]["bbox"][0][0::2] == [0.0, -159.6]
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_register_after_the_last_item_left_a_partitioned_collection_gives_its_exact_extent(
    tiles, catalog_dir
):
    """Removing the last item leaves the placeholder extent but keeps the
    (now empty) partition catalogs; the next item replaces the placeholder
    instead of being unioned into a whole-world, open-ended extent."""
    producer.register([tiles["zero"]], catalog=str(catalog_dir), collection="c", partition="year")
    assert producer.remove("zero_20240101", catalog=str(catalog_dir), collection="c").action == "removed"
    producer.register([tiles["east100"]], catalog=str(catalog_dir), collection="c", partition="year")
    coll = json.loads((catalog_dir / "c/collection.json").read_text())
    items = [json.loads(p.read_text()) for p in catalog_dir.rglob("east100_*.json")]
    assert coll["extent"] == docs.exact_extent(items)
    assert producer.validate_catalog(str(catalog_dir)) == []


@pytest.mark.parametrize("partition", [None, "year"])
def test_an_update_that_moves_an_edge_item_inward_gives_the_exact_extent(tiles, catalog_dir, partition):
    """Registering a product again with a datetime that moves its item off
    the edge of the collection interval (same document: flat, or the same
    year). Before: the extent only grew, and ``validate`` warned
    ``stale-extent`` until a ``reconcile --fix``. Now the update shrinks it
    as a removal of that edge would (one walk, only in that case)."""

    def register(name: str, when: str) -> str:
        (res,) = producer.register(
            [tiles[name]], catalog=str(catalog_dir), collection="c", partition=partition, datetime=when
        )
        assert res.ok, res.error
        return res.action

    register("zero", "2024-01-01T00:00:00Z")
    register("east100", "2024-06-01T00:00:00Z")
    assert register("east100", "2024-03-01T00:00:00Z") == "updated"
    coll = json.loads((catalog_dir / "c/collection.json").read_text())
    items = [json.loads(p.read_text()) for p in catalog_dir.rglob("*_2024*.json")]
    assert len(items) == 2
    assert coll["extent"] == docs.exact_extent(items)
    assert coll["extent"]["temporal"]["interval"] == [["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"]]
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_a_stale_extent_made_exact_by_the_products_reconcile_registers_counts_as_fixed(tmp_path):
    """A collection whose overall box is wider than its sub-boxes, repaired
    with ``reconcile --fix --data`` that registers a missing product: the
    registration's extent merge makes the extent exact before the extent
    step looks, which then has nothing to write. Before, the report said
    ``stale-extent`` found 1, fixed 0, with nothing remaining: a finding
    neither fixed nor failed. It now counts as fixed."""
    from tests.crashes import write_tile

    data = tmp_path / "data"
    tiles = [write_tile(data, f"t{i}_2024011{i}.tif", 10.0 + i, 40.0 + i) for i in range(3)]
    catalog = tmp_path / "cat"
    results = producer.register(tiles[:2], catalog=str(catalog), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    coll_path = catalog / "c" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["extent"]["spatial"]["bbox"][0] = [-50.0, -50.0, 50.0, 60.0]
    coll_path.write_text(json.dumps(coll, indent=2))

    report = producer.reconcile(str(catalog), fix=True, data=str(data), collection="c")
    assert report.remaining == [], [str(p) for p in report.remaining]
    assert report.found == {"stale-extent": 1, "missing-product": 1}
    assert report.fixed == {"stale-extent": 1, "missing-product": 1}
    assert producer.validate_catalog(str(catalog)) == []
