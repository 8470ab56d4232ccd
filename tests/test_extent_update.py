"""The collection extent after an update in place: a product registered
again whose datetime or footprint changed, in a flat collection or within
one period of a partitioned one, leaves the exact union of the items, as a
move to another period (a removal) and ``remove`` do.

Before: the old datetime / box stayed in the extent (``validate`` warned
``stale-extent``) in a flat collection, while the same change moving the
item to another month shrank it exactly.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.catalog import documents as docs
from producer.store import CountingStore, open_store
from producer.store.local import LocalStore
from tests.crashes import copy_state, crash_runs
from tests.pausing import PauseAfterGet
from tests.test_extent_races import FailOnGet


def _tile(folder: Path, name: str, lon: float, lat: float = 10.0, res: float = 0.1) -> str:
    """An 8x8 EPSG:4326 GeoTIFF at (lon, lat); rewritten in place when it exists."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(lon, lat, res, res),
    ) as dst:
        dst.write(np.full((1, 8, 8), 7, dtype="uint8"))
    return str(path)


def _items(root: Path) -> list[dict]:
    out = []
    for p in sorted((root / "c").rglob("*.json")):
        doc = json.loads(p.read_text())
        if doc.get("type") == "Feature":
            out.append(doc)
    return out


def _register(catalog, paths: list[str], when: str, partition: str | None = None, **kw) -> list:
    results = producer.register(
        paths, catalog=catalog, collection="c", partition=partition, datetime=when, **kw
    )
    assert all(r.ok for r in results), [r.error for r in results]
    return results


def _assert_exact(root: Path) -> dict:
    coll = json.loads((root / "c/collection.json").read_text())
    assert docs.SHRINK_FIELD not in coll
    assert coll["extent"] == docs.exact_extent(_items(root))
    assert [str(p) for p in producer.validate_catalog(str(root))] == []
    return coll


@pytest.mark.parametrize("partition", [None, "year/month"])
def test_a_new_datetime_of_the_only_item_gives_its_exact_interval(tmp_path, partition):
    """The adversarial probe's case: flat before, 2025-02-15 -> 2024-01-15."""
    root = tmp_path / "cat"
    a = _tile(tmp_path / "data", "scene", 0.0)
    _register(str(root), [a], "2025-02-15T00:00:00Z", partition)
    (res,) = _register(str(root), [a], "2024-01-15T00:00:00Z", partition)
    assert res.action == "updated"
    coll = _assert_exact(root)
    assert coll["extent"]["temporal"]["interval"] == [["2024-01-15T00:00:00Z", "2024-01-15T00:00:00Z"]]


@pytest.mark.parametrize("partition", [None, "year/month"])
def test_an_edge_item_updated_inward_shrinks_the_extent_in_time_and_space(tmp_path, partition):
    """Two items; the one on the late and east edges is registered again
    earlier (same month when partitioned: an update in place) and with a
    raster moved west: the extent is the exact union again."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    a = _tile(data, "a", 0.0)
    b = _tile(data, "b", 5.0)
    _register(str(root), [a], "2024-03-02T00:00:00Z", partition)
    _register(str(root), [b], "2024-03-28T00:00:00Z", partition)
    _register(str(root), [b], "2024-03-10T00:00:00Z", partition)
    coll = _assert_exact(root)
    assert coll["extent"]["temporal"]["interval"] == [["2024-03-02T00:00:00Z", "2024-03-10T00:00:00Z"]]
    _tile(data, "b", 0.2)  # the same product, its raster now further west
    _register(str(root), [b], "2024-03-10T00:00:00Z", partition)
    coll = _assert_exact(root)
    assert coll["extent"]["spatial"]["bbox"][0][2] == pytest.approx(1.0)  # b's east edge, 0.2 + 8 x 0.1


def test_an_update_off_the_edges_reads_no_other_item(tmp_path):
    """O(1) stays O(1): an item inside every edge, registered again with a
    new datetime still inside, reads no other item and lists nothing; an
    unchanged one writes nothing."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    # overlapping tiles (one cluster, 0-5.6 E, 8.4-10 N); t2 strictly inside in space too
    paths = [_tile(data, f"t{i}", float(i), res=0.2) for i in range(5)]
    paths[2] = _tile(data, "t2", 2.0, 9.9, 0.05)
    for i, path in enumerate(paths):
        _register(str(root), [path], f"2024-03-{i + 10:02d}T00:00:00Z")
    counting = CountingStore(LocalStore(str(root)))
    (res,) = _register(counting, [paths[2]], "2024-03-13T00:00:00Z")
    assert res.action == "updated"
    read = {key for key in counting.gets if key.endswith(".json") and "/t" in key}
    assert read == {"c/t2/t2.json"}
    assert not any(prefix.startswith("c/t") or prefix in ("c/", "c") for prefix in counting.lists)
    _assert_exact(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    (res,) = _register(str(root), [paths[2]], "2024-03-13T00:00:00Z")
    assert res.action == "unchanged"
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_an_edge_update_whose_new_item_covers_the_old_one_walks_nothing(tmp_path):
    """Only a footprint that got smaller can shrink the extent: a new
    property on the edge item changes its document, not the extent."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    a, b = _tile(data, "a", 0.0), _tile(data, "b", 5.0)
    _register(str(root), [a, b], "2024-03-02T00:00:00Z")
    counting = CountingStore(LocalStore(str(root)))
    (res,) = _register(counting, [b], "2024-03-02T00:00:00Z", properties={"quality": "good"})
    assert res.action == "updated"
    assert "c/a/a.json" not in counting.gets
    _assert_exact(root)


def test_an_edge_item_with_only_a_new_datetime_inside_the_interval_walks_nothing(tmp_path):
    """b is on the east edge, but its box does not change: only the
    interval's edges are asked about, and b's old and new datetimes are
    inside it (the common upsert of a re-processed product)."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    a, b, c = _tile(data, "a", 0.0), _tile(data, "b", 5.0), _tile(data, "c", 2.0)
    _register(str(root), [a], "2024-03-02T00:00:00Z")
    _register(str(root), [b], "2024-03-10T00:00:00Z")
    _register(str(root), [c], "2024-03-28T00:00:00Z")
    counting = CountingStore(LocalStore(str(root)))
    (res,) = _register(counting, [b], "2024-03-12T00:00:00Z")
    assert res.action == "updated"
    assert {key for key in counting.gets if key.endswith(".json") and key.count("/") == 2} == {"c/b/b.json"}
    _assert_exact(root)


def test_a_register_racing_the_shrink_of_an_update_stays_inside_the_extent(tmp_path):
    """The update's shrink walks the items; meanwhile z is linked, inside
    the old extent but outside the one the walk gives. Two-phase shrink: z
    records itself in the marker, so the extent still covers it."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    a, b = _tile(data, "a", 0.0), _tile(data, "b", 0.8, res=0.05)
    z = _tile(data, "z", 0.1, 9.9, 0.05)
    _register(str(root), [a], "2024-01-05T00:00:00Z")
    _register(str(root), [b], "2024-02-20T00:00:00Z")
    store = open_store(str(root))
    paused = PauseAfterGet(open_store(str(root)), "c/b/b.json")
    seen: dict[str, bool] = {}
    out: dict = {}

    def register_z():
        seen["marker"] = docs.SHRINK_FIELD in json.loads(store.get("c/collection.json")[0])
        _register(store, [z], "2024-01-10T00:00:00Z")

    thread = threading.Thread(
        target=lambda: out.setdefault(
            "a", producer.register([a], catalog=paused, collection="c", datetime="2024-02-01T00:00:00Z")
        )
    )
    thread.start()
    try:
        assert paused.reached.wait(30), "the update never walked the items"
        register_z()
    finally:
        paused.resume.set()
        thread.join(30)
    assert [r.action for r in out["a"]] == ["updated"]
    assert seen["marker"]  # z ran inside the shrink: it had to record itself
    coll = _assert_exact(root)
    assert coll["extent"]["temporal"]["interval"] == [["2024-01-10T00:00:00Z", "2024-02-20T00:00:00Z"]]


def test_an_edge_update_killed_after_any_write_leaves_a_valid_catalog(tmp_path):
    """Crash after each write of an update that shrinks (item, collection,
    marker, shrunk extent): the catalog stays valid, the extent covers every
    item at every step (at most a stale-extent warning), and reconcile --fix
    makes it exact."""
    data = tmp_path / "data"
    a, b = _tile(data, "a", 0.0), _tile(data, "b", 5.0)
    template = LocalStore(str(tmp_path / "template"))
    _register(template, [a], "2024-03-02T00:00:00Z")
    _register(template, [b], "2024-03-28T00:00:00Z")
    points = 0
    for n, real, writes in crash_runs(
        lambda: copy_state(template),
        lambda store: producer.register([b], catalog=store, collection="c", datetime="2024-03-10T00:00:00Z"),
    ):
        points += 1
        root = Path(real.root)  # type: ignore[attr-defined]
        problems = producer.validate_catalog(real)
        assert [p.kind for p in problems if p.is_error] == [], (n, writes)
        assert {p.kind for p in problems} <= {"stale-extent"}, (n, writes)
        coll = json.loads((root / "c/collection.json").read_text())
        interval = coll["extent"]["temporal"]["interval"][0]
        assert interval[0] <= "2024-03-02T00:00:00Z" and interval[1] >= "2024-03-10T00:00:00Z", (n, writes)
        producer.reconcile(real, fix=True)
        _assert_exact(root)
    assert points >= 3


def test_an_update_whose_shrink_walk_fails_stays_committed_and_says_so(tmp_path, caplog):
    """The item is written and linked and the extent covers it: a walk that
    cannot read another item costs exactness only. The product stays ok, a
    WARNING names the collection and the fix, no marker is left."""
    root = tmp_path / "cat"
    data = tmp_path / "data"
    a, b = _tile(data, "a", 0.0), _tile(data, "b", 5.0)
    _register(str(root), [a], "2024-03-02T00:00:00Z")
    _register(str(root), [b], "2024-03-28T00:00:00Z")
    failing = FailOnGet(open_store(str(root)), "c/a/a.json")
    with caplog.at_level("WARNING", logger="producer"):
        (res,) = _register(failing, [b], "2024-03-10T00:00:00Z")
    assert res.action == "updated"
    assert any(
        "reconcile" in r.getMessage() and "c/collection.json" in r.getMessage() for r in caplog.records
    )
    coll = json.loads((root / "c/collection.json").read_text())
    assert docs.SHRINK_FIELD not in coll
    assert {p.kind for p in producer.validate_catalog(str(root))} == {"stale-extent"}
    producer.reconcile(str(root), fix=True)
    _assert_exact(root)
