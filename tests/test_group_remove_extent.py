"""Removing one asset of a multi-asset item keeps the catalog valid: the
item's recomputed bbox and time stay inside the collection extent.

The union bbox of grids in two UTM zones covers each grid's own bbox
exactly (it was sampled and rounded ~1e-7 degree inside one of them, so the
item grew past the extent when the other asset went), and a removal whose
recomputed item reaches past the old one (a later datetime) grows the
extent like a register. Rasters are written by rasterio in ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

import producer
from tests import rasters

GROUP = r"(?P<id>scene_[a-z0-9]+)/(?P<asset>[^/]+)\.tif$"


def _band(
    path: Path, crs: str, origin: tuple[float, float], res: float, size: int, when: str | None = None
) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.arange(size * size) % 200).astype("uint8").reshape(1, size, size)
    rasters._write(path, data, crs=crs, transform=from_origin(*origin, res, res))
    if when is not None:
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(TIFFTAG_DATETIME=when)
    return str(path)


def _doc(catalog: Path, *key: str) -> dict:
    return json.loads(catalog.joinpath(*key).read_text())


def _errors(catalog: Path) -> list[str]:
    return [str(p) for p in producer.validate_catalog(str(catalog)) if p.is_error]


def _covers(outer: list[float], inner: list[float]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def test_union_bbox_covers_each_grid_and_removing_an_asset_keeps_the_extent(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    scene = tmp_path / "data" / "scene_20240501"
    b02 = _band(scene / "B02.tif", "EPSG:32633", (500_000, 5_000_000), 10, 32)
    b09 = _band(scene / "B09.tif", "EPSG:32632", (800_000, 5_000_000), 60, 6)
    assert all(
        r.ok
        for r in producer.register(
            [str(tmp_path / "data")], catalog=str(catalog), collection="g", group=GROUP
        )
    )
    (alone,) = producer.register(
        [b02], catalog=str(catalog), collection="alone", datetime="2024-05-01T00:00:00Z"
    )
    assert alone.ok, alone.error
    own = _doc(catalog, "alone", "B02", "B02.json")["bbox"]
    union = _doc(catalog, "g", "scene_20240501", "scene_20240501.json")["bbox"]
    assert _covers(union, own), (union, own)  # exactly, no tolerance

    removed = producer.remove("scene_20240501", catalog=str(catalog), collection="g", product=b09)
    assert removed.action == "updated", removed
    assert _doc(catalog, "g", "scene_20240501", "scene_20240501.json")["bbox"] == own
    assert _errors(catalog) == []


def test_removing_the_first_asset_grows_the_temporal_extent_to_the_item_left(tmp_path: Path) -> None:
    """The item's datetime is its first data asset's: removing it gives the
    item the next asset's (later) time, outside the collection interval."""
    catalog = tmp_path / "catalog"
    scene = tmp_path / "data" / "scene_a"
    b02 = _band(scene / "B02.tif", "EPSG:32633", (500_000, 5_000_000), 10, 32, "2024:05:01 10:00:00")
    _band(scene / "B09.tif", "EPSG:32633", (500_000, 5_000_000), 10, 32, "2024:05:01 11:00:00")
    assert all(
        r.ok
        for r in producer.register(
            [str(tmp_path / "data")], catalog=str(catalog), collection="g", group=GROUP
        )
    )
    interval = _doc(catalog, "g", "collection.json")["extent"]["temporal"]["interval"][0]
    assert interval == ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"]

    removed = producer.remove("scene_a", catalog=str(catalog), collection="g", product=b02)
    assert removed.action == "updated", removed
    assert _doc(catalog, "g", "scene_a", "scene_a.json")["properties"]["datetime"] == "2024-05-01T11:00:00Z"
    interval = _doc(catalog, "g", "collection.json")["extent"]["temporal"]["interval"][0]
    assert interval == ["2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"]
    assert _errors(catalog) == []


def test_a_removal_killed_after_any_write_leaves_the_extent_covering_the_item(tmp_path: Path) -> None:
    """The extent grows BEFORE the item is rewritten: killed between the two,
    the collection is only too wide (valid), never narrower than its item
    (invalid until ``reconcile --fix``, which a crash in the other order left)."""
    import itertools
    import shutil

    from producer.store.local import LocalStore
    from tests.crashes import crash_runs

    prepared = tmp_path / "prepared"
    scene = tmp_path / "data" / "scene_a"
    b02 = _band(scene / "B02.tif", "EPSG:32633", (500_000, 5_000_000), 10, 32, "2024:05:01 10:00:00")
    _band(scene / "B09.tif", "EPSG:32633", (500_000, 5_000_000), 10, 32, "2024:05:01 11:00:00")
    results = producer.register([str(tmp_path / "data")], catalog=str(prepared), collection="g", group=GROUP)
    assert all(r.ok for r in results)
    runs = itertools.count()

    def fresh() -> LocalStore:
        target = tmp_path / f"run{next(runs)}"
        shutil.copytree(prepared, target)
        return LocalStore(str(target))

    crashes = 0
    for n, store, writes in crash_runs(
        fresh, lambda s: producer.remove("scene_a", catalog=s, collection="g", product=b02)
    ):
        crashes += 1
        errors = [str(p) for p in producer.validate_catalog(store) if p.is_error]
        assert errors == [], (n, writes, errors)
    assert crashes >= 2


def test_removing_the_asset_on_the_collection_edge_shrinks_the_extent_like_a_remove(tmp_path: Path) -> None:
    """Scene A's B02 holds the collection's east edge; removing B02 leaves A
    (B01) and B far west of it. Before: the extent kept B02's footprint, a
    stale extent until reconcile --fix (validate warned), while removing a
    whole item on an edge recomputes it. Now the asset removal does too."""
    from producer.catalog.documents import exact_extent

    data = tmp_path / "data"
    _band(data / "scene_a" / "B01.tif", "EPSG:4326", (10.0, 50.0), 0.05, 4, "2024:05:01 10:00:00")
    b02 = _band(data / "scene_a" / "B02.tif", "EPSG:4326", (20.0, 50.0), 0.05, 4, "2024:05:01 10:00:00")
    _band(data / "scene_b" / "B01.tif", "EPSG:4326", (5.0, 45.0), 0.05, 4, "2024:05:02 10:00:00")
    catalog = tmp_path / "cat"
    results = producer.register([str(data)], catalog=str(catalog), collection="g", group=GROUP)
    assert all(r.ok for r in results), [r.error for r in results]
    assert _doc(catalog, "g", "collection.json")["extent"]["spatial"]["bbox"][0][2] == 20.2

    res = producer.remove("scene_a", catalog=str(catalog), collection="g", product=b02)
    assert res.action == "updated", res
    items = [_doc(catalog, "g", s, f"{s}.json") for s in ("scene_a", "scene_b")]
    assert _doc(catalog, "g", "collection.json")["extent"] == exact_extent(items)
    assert [str(p) for p in producer.validate_catalog(str(catalog))] == []


def test_rerun_of_an_asset_removal_killed_before_its_extent_write_finishes_it(tmp_path: Path) -> None:
    """``remove --product`` of the asset on the collection's edge, killed
    right after its shrink marker went into the collection (the item already
    rewritten without the asset): the rerun found the item lacking the asset
    and said ``kept`` ("it stays", exit 1), leaving the extent stale and the
    marker behind. It now finishes the shrink and says so (``updated``)."""
    import itertools
    import shutil

    from producer.catalog.documents import SHRINK_FIELD, exact_extent
    from producer.store.local import LocalStore
    from tests.crashes import crash_runs

    data = tmp_path / "data"
    _band(data / "scene_a" / "B01.tif", "EPSG:4326", (10.0, 50.0), 0.05, 4, "2024:05:01 10:00:00")
    b02 = _band(data / "scene_a" / "B02.tif", "EPSG:4326", (20.0, 50.0), 0.05, 4, "2024:05:01 10:00:00")
    _band(data / "scene_b" / "B01.tif", "EPSG:4326", (5.0, 45.0), 0.05, 4, "2024:05:02 10:00:00")
    prepared = tmp_path / "prepared"
    results = producer.register([str(data)], catalog=str(prepared), collection="g", group=GROUP)
    assert all(r.ok for r in results), [r.error for r in results]
    runs = itertools.count()

    def fresh() -> LocalStore:
        target = tmp_path / f"run{next(runs)}"
        shutil.copytree(prepared, target)
        return LocalStore(str(target))

    marked = 0
    for n, store, writes in crash_runs(
        fresh, lambda s: producer.remove("scene_a", catalog=s, collection="g", product=b02)
    ):
        catalog = Path(store.root)
        if SHRINK_FIELD not in _doc(catalog, "g", "collection.json"):
            continue
        marked += 1
        rerun = producer.remove("scene_a", catalog=store, collection="g", product=b02)
        assert rerun.action == "updated", (n, writes, rerun)
        assert rerun.extent_recomputed, (n, rerun)
        assert "B02" in (rerun.reason or ""), rerun.reason
        coll = _doc(catalog, "g", "collection.json")
        assert SHRINK_FIELD not in coll
        items = [_doc(catalog, "g", s, f"{s}.json") for s in ("scene_a", "scene_b")]
        assert coll["extent"] == exact_extent(items)
        assert [str(p) for p in producer.validate_catalog(store)] == []
        # and a third run has nothing left to do: the asset is not there
        again = producer.remove("scene_a", catalog=store, collection="g", product=b02)
        assert again.action == "kept", again
    assert marked == 1


def test_rerun_of_an_asset_removal_killed_before_its_shrink_marker_says_what_is_left(tmp_path: Path) -> None:
    """Killed after the item's write, before the shrink marker: nothing in the
    catalog tells the rerun that a removal was under way, and the rerun said
    only "the item has no asset ...; it stays" while the extent stayed too
    wide. It now says that an interrupted removal may have left the extent
    covering the removed asset, and how to recompute it; that repair leaves
    a clean catalog."""
    import itertools
    import shutil

    from producer.catalog.documents import SHRINK_FIELD
    from producer.store.local import LocalStore
    from tests.crashes import crash_runs

    data = tmp_path / "data"
    _band(data / "scene_a" / "B01.tif", "EPSG:4326", (10.0, 50.0), 0.05, 4, "2024:05:01 10:00:00")
    b02 = _band(data / "scene_a" / "B02.tif", "EPSG:4326", (20.0, 50.0), 0.05, 4, "2024:05:01 10:00:00")
    _band(data / "scene_b" / "B01.tif", "EPSG:4326", (5.0, 45.0), 0.05, 4, "2024:05:02 10:00:00")
    prepared = tmp_path / "prepared"
    assert all(
        r.ok for r in producer.register([str(data)], catalog=str(prepared), collection="g", group=GROUP)
    )
    runs = itertools.count()

    def fresh() -> LocalStore:
        target = tmp_path / f"run{next(runs)}"
        shutil.copytree(prepared, target)
        return LocalStore(str(target))

    before_marker = 0
    for _n, store, writes in crash_runs(
        fresh, lambda s: producer.remove("scene_a", catalog=s, collection="g", product=b02)
    ):
        catalog = Path(store.root)
        if writes != ["g/scene_a/scene_a.json"]:
            continue
        before_marker += 1
        assert SHRINK_FIELD not in _doc(catalog, "g", "collection.json")
        assert [p.kind for p in producer.validate_catalog(store)] == ["stale-extent"]
        rerun = producer.remove("scene_a", catalog=store, collection="g", product=b02)
        assert rerun.action == "kept", rerun
        assert "interrupted" in (rerun.reason or "") and "reconcile with fix" in (rerun.reason or "")
        producer.reconcile(store, fix=True)
        assert producer.validate_catalog(store) == []
    assert before_marker == 1
