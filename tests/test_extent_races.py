"""Issue 8 point 6 (extent races): a shrink of the collection extent
(``remove`` of an edge item, ``reconcile --fix``) racing a ``register``.

Each race is forced, not hoped for: the shrinking side runs on a real store
wrapped so that it pauses (threading.Event) right after a chosen read, the
register runs to completion in between, and then the shrink resumes. The
end state must be valid with an extent that contains every item.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
from producer.catalog import documents as docs
from producer.catalog.layout import Layout
from producer.store import open_store
from tests.pausing import PauseAfterGet
from tests.trees import but_emptied


def _tile(folder: Path, name: str, day: str, lon: float, lat: float, res: float) -> str:
    path = folder / f"{name}_{day}.tif"
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


def _run_paused(paused: PauseAfterGet, target, meanwhile) -> object:
    """Run ``target()`` in a thread until ``paused`` holds it, run
    ``meanwhile()``, resume, and return what ``target`` returned."""
    out: dict = {}

    def run():
        try:
            out["value"] = target()
        except BaseException as exc:  # handed to the test thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert paused.reached.wait(30), "the paused side never reached its critical point"
        meanwhile()
    finally:
        paused.resume.set()
        thread.join(30)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _items(root: Path) -> list[dict]:
    return [
        json.loads(p.read_text())
        for p in sorted((root / "c").rglob("*.json"))
        if json.loads(p.read_text()).get("type") == "Feature"
    ]


def _assert_valid_and_exact(root: Path) -> None:
    problems = producer.validate_catalog(str(root))
    assert [str(p) for p in problems] == []
    coll = json.loads((root / "c/collection.json").read_text())
    assert docs.SHRINK_FIELD not in coll
    assert coll["extent"] == docs.exact_extent(_items(root))


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    """(catalog url, storage options) of a fresh catalog on each backend."""
    if request.param == "local":
        return str(tmp_path / "catalog"), None
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/stac", server.storage_options


def _store_items(store) -> list[dict]:
    # the JSON documents (the stac-geoparquet mirror lives beside them)
    docs_ = [
        json.loads(store.get(k)[0])
        for k in sorted(store.list("c/"))
        if not k.endswith((".parquet", ".ndjson"))
    ]
    return [d for d in docs_ if d.get("type") == "Feature"]


def test_partitioned_remove_of_an_edge_item_while_register_keeps_the_new_item(tmp_path, backend):
    """remove(a) walks the items to shrink the extent; meanwhile z is linked
    into a month catalog the walk already read, and z lies inside the old
    extent, so register does not need to grow it. The shrunk extent must
    still contain z. Local directory and S3 (ETag compare-and-swap)."""
    catalog, options = backend
    data = tmp_path / "data"
    data.mkdir()
    a = _tile(data, "a", "20240105", 0.0, 10.0, 0.1)  # west edge, January: [0, 0.8]
    b = _tile(data, "b", "20240220", 0.8, 10.0, 0.05)  # February: [0.8, 1.2]
    z = _tile(data, "z", "20240210", 0.1, 9.9, 0.05)  # inside a's box and the interval
    store = open_store(catalog, options)
    assert all(r.ok for r in producer.register([a, b], catalog=store, collection="c", partition="year/month"))
    paused = PauseAfterGet(open_store(catalog, options), "c/2024/02/catalog.json")
    seen: dict[str, bool] = {}

    def register_z():
        seen["marker"] = docs.SHRINK_FIELD in json.loads(store.get("c/collection.json")[0])
        (res,) = producer.register([z], catalog=store, collection="c", partition="year/month")
        assert res.action == "created", res.error

    removed = _run_paused(
        paused, lambda: producer.remove("a_20240105", catalog=paused, collection="c"), register_z
    )
    assert removed.action == "removed" and removed.extent_recomputed
    items = _store_items(store)
    assert sorted(i["id"] for i in items) == ["b_20240220", "z_20240210"]
    assert [str(p) for p in but_emptied(producer.validate_catalog(store))] == []  # January emptied
    coll = json.loads(store.get("c/collection.json")[0])
    assert docs.SHRINK_FIELD not in coll
    assert coll["extent"] == docs.exact_extent(items)
    assert seen["marker"]  # the pause was inside the shrink: z had to record itself


@pytest.mark.parametrize("moment", ["after-snapshot", "during-walk"])
def test_reconcile_fix_while_register_keeps_the_new_item(tmp_path, moment):
    """reconcile --fix shrinks a stale extent; register links z (inside the
    stale extent, outside the exact one) while reconcile holds a snapshot
    (``after-snapshot``: its second read of item b) or walks the items after
    putting its shrink marker (``during-walk``: third read of b)."""
    data = tmp_path / "data"
    data.mkdir()
    a = _tile(data, "a", "20240105", 0.0, 10.0, 0.05)
    b = _tile(data, "b", "20240220", 2.0, 10.0, 0.05)
    z = _tile(data, "z", "20240210", -4.0, 15.0, 0.05)  # inside the stale box only
    root = tmp_path / "catalog"
    assert all(r.ok for r in producer.register([a, b], catalog=str(root), collection="c"))
    coll_path = root / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    coll["extent"]["spatial"]["bbox"] = [[-5.0, 0.0, 3.0, 20.0]]  # stale: too large
    coll_path.write_text(json.dumps(coll, indent=2))

    nth = {"after-snapshot": 2, "during-walk": 3}[moment]
    paused = PauseAfterGet(open_store(str(root)), "c/b_20240220/b_20240220.json", nth)

    seen: dict[str, bool] = {}

    def register_z():
        seen["marker"] = docs.SHRINK_FIELD in json.loads(coll_path.read_text())
        (res,) = producer.register([z], catalog=str(root), collection="c")
        assert res.action == "created", res.error

    report = _run_paused(paused, lambda: producer.reconcile(paused, fix=True), register_z)
    assert report.fixed.get("stale-extent") == 1
    assert sorted(i["id"] for i in _items(root)) == ["a_20240105", "b_20240220", "z_20240210"]
    _assert_valid_and_exact(root)
    assert seen["marker"] == (moment == "during-walk")  # the pause was where it claims


class CrashOnPut:
    """A real store that dies (raises a BaseException, like a kill) instead
    of doing its ``nth`` write of ``key``."""

    class Crash(BaseException):
        pass

    def __init__(self, inner, key: str, nth: int) -> None:
        self.inner, self.key, self.nth, self.seen = inner, key, nth, 0
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, **kwargs):
        if key == self.key:
            self.seen += 1
            if self.seen == self.nth:
                raise self.Crash(f"killed before writing {key}")
        return self.inner.put(key, data, **kwargs)


def test_crash_between_shrink_phases_leaves_a_valid_catalog_and_reconcile_clears_the_marker(tmp_path):
    """remove writes the collection three times: unlink, shrink marker,
    shrunk extent. Killed before the third, the catalog is valid (the extent
    still covers every item), a register meanwhile records into the leftover
    marker, and one reconcile --fix clears it and makes the extent exact."""
    data = tmp_path / "data"
    data.mkdir()
    a = _tile(data, "a", "20240105", 0.0, 10.0, 0.05)
    b = _tile(data, "b", "20240220", 2.0, 10.0, 0.05)
    z = _tile(data, "z", "20240210", 2.05, 9.95, 0.01)  # inside b
    root = tmp_path / "catalog"
    assert all(r.ok for r in producer.register([a, b], catalog=str(root), collection="c"))
    crashing = CrashOnPut(open_store(str(root)), "c/collection.json", nth=3)
    with pytest.raises(CrashOnPut.Crash):
        producer.remove("a_20240105", catalog=crashing, collection="c")
    coll = json.loads((root / "c/collection.json").read_text())
    assert docs.SHRINK_FIELD in coll  # the leftover marker
    assert [p for p in producer.validate_catalog(str(root)) if p.is_error] == []

    (res,) = producer.register([z], catalog=str(root), collection="c")
    assert res.ok
    assert [p for p in producer.validate_catalog(str(root)) if p.is_error] == []
    report = producer.reconcile(str(root), fix=True)
    assert report.remaining == []
    _assert_valid_and_exact(root)


def test_an_expired_shrink_marker_is_ignored_and_dropped():
    """A marker left by a crashed shrink stops costing writes after SHRINK_TTL."""
    item = {
        "type": "Feature",
        "id": "x",
        "bbox": [0, 0, 1, 1],
        "links": [],
        "properties": {"datetime": "2024-01-01T00:00:00Z"},
    }
    coll = docs.new_collection("c", None, Layout())
    docs.merge_extent(coll, [item], was_empty=True)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    docs.begin_shrink(coll, "t1", now)
    assert docs.live_shrink(coll, now + timedelta(seconds=60)) is not None
    assert docs.record_in_shrink(coll, [item], now)  # live: recorded (a write)
    assert not docs.record_in_shrink(coll, [item], now)  # already recorded: no write
    late = now + timedelta(seconds=docs.SHRINK_TTL + 1)
    assert docs.live_shrink(coll, late) is None
    assert docs.record_in_shrink(coll, [item], late) and docs.SHRINK_FIELD not in coll


class FailOnGet:
    """A real store whose reads of ``key`` fail with a storage error."""

    def __init__(self, inner, key: str) -> None:
        self.inner, self.key = inner, key
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, key):
        if key == self.key:
            from producer.errors import StoreError

            raise StoreError(f"injected: cannot read {key}")
        return self.inner.get(key)


def test_remove_whose_walk_fails_leaves_no_shrink_marker(tmp_path):
    """A walk that fails (storage error reading an item) takes its marker
    back, so registers do not keep writing the collection for an hour."""
    data = tmp_path / "data"
    data.mkdir()
    a = _tile(data, "a", "20240105", 0.0, 10.0, 0.05)
    b = _tile(data, "b", "20240220", 2.0, 10.0, 0.05)
    root = tmp_path / "catalog"
    assert all(r.ok for r in producer.register([a, b], catalog=str(root), collection="c"))
    failing = FailOnGet(open_store(str(root)), "c/b_20240220/b_20240220.json")
    with pytest.raises(Exception, match="injected"):
        producer.remove("a_20240105", catalog=failing, collection="c")
    coll = json.loads((root / "c/collection.json").read_text())
    assert docs.SHRINK_FIELD not in coll
    assert [p for p in producer.validate_catalog(str(root)) if p.is_error] == []


def test_validate_that_read_the_collection_before_a_register_linked_a_far_item_reports_no_extent_error(
    tmp_path, backend
):
    """``validate`` (and the last audit of a ``reconcile --fix``) has read the
    collection of a ``year/month`` catalog when a register links a new item
    far outside its extent into an existing month, then widens the extent.
    Before: the walk met the new item against the extent it had read, an
    ``extent`` error (exit 1) for a catalog whose extent contains every item.
    Now the collection's extent is read again before an item is called outside."""
    url, options = backend
    store = open_store(url, options)
    near = [_tile(tmp_path, n, d, 12.0, 52.0, 0.01) for n, d in (("a", "20240310"), ("b", "20240115"))]
    producer.register(near, catalog=store, collection="c", partition="year/month")
    far = _tile(tmp_path, "f", "20240320", 100.0, -30.0, 0.01)
    held = PauseAfterGet(store, "c/collection.json")

    def meanwhile() -> None:
        results = producer.register([far], catalog=store, collection="c", partition="year/month")
        assert [r.action for r in results] == ["created"], [r.error for r in results]

    problems = _run_paused(held, lambda: producer.validate_catalog(held), meanwhile)
    assert [str(p) for p in problems if p.is_error] == []
    # an extent that really misses an item still is an error
    coll = json.loads(store.get("c/collection.json")[0])
    coll["extent"] = docs.exact_extent(_store_items(store)[:1])
    store.put("c/collection.json", json.dumps(coll).encode())
    assert "extent" in [p.kind for p in producer.validate_catalog(store) if p.is_error]
