"""The mirror repaired by a rerun: a crash between the commit and the mirror
write (tests/crashes.py) leaves the items unchanged for the next run of the
same command; that run still brings the mirror in line (no reconcile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import producer
from producer import mirror
from producer.errors import StoreError
from producer.store.local import LocalStore
from tests.crashes import CrashingStore, SimulatedKill, write_tile
from tests.trees import assert_stac_valid_tree


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [write_tile(folder, "a_20240110.tif", 6.0, 46.0), write_tile(folder, "b_20240315.tif", 7.0, 46.5)]


def _ids(catalog: Path) -> list[str]:
    return sorted(f["id"] for f in producer.search(str(catalog))["features"])


def _first_mirror_write(writes: list[str]) -> int:
    """The first write of the mirror sink: a fragment (the empty base files
    are written by the commit, before the collection links them)."""
    return next(i for i, key in enumerate(writes, start=1) if key.removeprefix("delete:").endswith(".ndjson"))


@pytest.mark.parametrize("partition", [None, "year/month"])
def test_register_killed_before_the_mirror_write_is_repaired_by_its_rerun(
    tiles: list[Path], tmp_path: Path, partition: str | None
) -> None:
    counted = CrashingStore(LocalStore(str(tmp_path / "count")))
    producer.register(tiles, catalog=counted, collection="c", partition=partition)
    last_catalog_write = _first_mirror_write(counted.writes) - 1

    catalog = tmp_path / "cat"
    crashing = CrashingStore(LocalStore(str(catalog)), crash_after=last_catalog_write)
    with pytest.raises(SimulatedKill):
        producer.register(tiles, catalog=crashing, collection="c", partition=partition)
    assert not any(key.endswith(".ndjson") for key in crashing.writes)  # committed, mirror not written
    assert not list(catalog.rglob("*.ndjson"))
    assert list(catalog.rglob("*.parquet"))  # the empty bases, written before the commit linked them

    again = producer.register(tiles, catalog=str(catalog), collection="c")
    assert [r.action for r in again] == ["unchanged", "unchanged"], again
    assert _ids(catalog) == ["a_20240110", "b_20240315"]
    assert "mirror-stale" not in producer.reconcile(str(catalog)).found
    assert_stac_valid_tree(catalog)

    quiet = CrashingStore(LocalStore(str(catalog)))  # a third run: the mirror holds them, nothing written
    assert [r.action for r in producer.register(tiles, catalog=quiet, collection="c")] == ["unchanged"] * 2
    assert not any(key.endswith((".parquet", ".ndjson")) for key in quiet.writes)


class _FragmentWritesFail(LocalStore):
    """A real local store whose mirror fragment writes fail while ``failing``
    (as an S3 503 would): the commit succeeds, the mirror write does not."""

    failing = False

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        if self.failing and key.endswith(".ndjson"):
            raise StoreError(f"{self.url}/{key}: 503 SlowDown (simulated)")
        return super().put(key, data, **kwargs)


def test_a_move_between_partitions_whose_mirror_write_failed_is_repaired_by_its_rerun(tmp_path: Path) -> None:
    """An update that moves an item to another month (its datetime changed)
    whose mirror write fails: the error says to register again, and the
    rerun leaves the item in its new partition only. Before, the rerun
    added it to the new partition but left the old partition's row: search
    returned it twice (old and new datetime) and diff found it extra."""
    tile = str(write_tile(tmp_path / "tiles", "x.tif", 5.0, 45.0))
    store = _FragmentWritesFail(str(tmp_path / "cat"))
    args: dict[str, Any] = {"catalog": store, "collection": "c", "partition": "year/month"}
    producer.register([tile], datetime="2024-02-10T00:00:00Z", **args)

    store.failing = True
    (moved,) = producer.register([tile], datetime="2024-05-10T00:00:00Z", **args)
    store.failing = False
    assert moved.action == "error" and "register again, or reconcile with fix" in (moved.error or "")

    (again,) = producer.register([tile], datetime="2024-05-10T00:00:00Z", **args)
    assert again.action == "unchanged", again
    found = producer.search(store)["features"]
    assert [(f["id"], f["properties"]["datetime"]) for f in found] == [("x", "2024-05-10T00:00:00Z")]
    assert producer.search(store, datetime="2024-02-01/2024-02-28")["features"] == []
    assert mirror.diff(store, "c").clean

    quiet = CrashingStore(LocalStore(str(tmp_path / "cat")))  # a third run: nothing to write
    assert [
        r.action
        for r in producer.register([tile], **{**args, "catalog": quiet}, datetime="2024-05-10T00:00:00Z")
    ] == ["unchanged"]
    assert not any(key.endswith((".parquet", ".ndjson")) for key in quiet.writes)


def test_a_remove_whose_mirror_write_failed_names_the_remedy_that_repairs_it(tmp_path: Path, tiles) -> None:
    """A remove whose mirror write fails: the catalog is done, the mirror
    still shows the item. Before, the error said "remove it again, or
    reconcile": removing again finds no item and writes no tombstone (it
    cannot tell a removed item from a file never registered without a
    partition read), so search kept returning the removed item. Now it names
    reconcile with fix, which does repair it."""
    store = _FragmentWritesFail(str(tmp_path / "cat"))
    producer.register([str(t) for t in tiles], catalog=store, collection="c")
    store.failing = True
    result = producer.remove("a_20240110", catalog=store, collection="c")
    store.failing = False
    assert result.action == "error", result
    assert "remove it again" not in (result.error or "")
    assert "reconcile with fix" in (result.error or ""), result.error
    # the mirror named as the other sinks are (before: every dataclass field, compact_after=32, ...)
    assert f"not from MirrorSink({store.url}) (" in (result.error or ""), result.error
    assert producer.remove("a_20240110", catalog=store, collection="c").action == "absent"
    assert "a_20240110" in _ids(tmp_path / "cat")  # removing again did not repair the mirror
    producer.reconcile(store, fix=True)
    assert _ids(tmp_path / "cat") == ["b_20240315"]
    assert mirror.diff(store, "c").clean


def test_an_asset_removal_killed_before_the_mirror_write_is_repaired_by_its_rerun(tmp_path: Path) -> None:
    """``remove --product`` of one band of a multi-asset item (what an S3
    delete event does), killed after the item's write, before the mirror's:
    the redelivered event (the same remove) finds the asset gone, ``kept``.
    Before, it told no sink, so search kept the band the item no longer has
    until a reconcile --fix; now the mirror takes the item it lacks."""
    from tests.test_group_remove_extent import GROUP, _band

    scene = tmp_path / "data" / "scene_a"
    _band(scene / "B01.tif", "EPSG:32633", (500_000, 5_000_000), 10, 8, "2024:05:01 10:00:00")
    b02 = _band(scene / "B02.tif", "EPSG:32633", (500_000, 5_000_000), 10, 8, "2024:05:01 10:00:00")
    for root in ("count", "cat"):
        results = producer.register(
            [str(tmp_path / "data")], catalog=str(tmp_path / root), collection="g", group=GROUP
        )
        assert all(r.ok for r in results), [r.error for r in results]

    def remove(store: Any) -> Any:
        return producer.remove("scene_a", catalog=store, collection="g", product=b02)

    counted = CrashingStore(LocalStore(str(tmp_path / "count")))
    assert remove(counted).action == "updated"
    with pytest.raises(SimulatedKill):
        remove(
            CrashingStore(
                LocalStore(str(tmp_path / "cat")), crash_after=_first_mirror_write(counted.writes) - 1
            )
        )
    store = LocalStore(str(tmp_path / "cat"))
    assert not mirror.diff(store, "g").clean  # the item lost B02, the mirror did not

    again = remove(store)
    assert again.action == "kept" and again.ok, again
    assert mirror.diff(store, "g").clean
    (found,) = producer.search(store)["features"]
    assert sorted(found["assets"]) == ["B01"]


def test_a_batch_moving_items_from_two_partitions_killed_after_any_write_is_repaired_by_its_rerun(
    tmp_path: Path,
) -> None:
    """One register moves two items, from February and from March, into May.
    Killed after the May fragment was written but before March's tombstone,
    the rerun found both items unchanged and held by May, so it wrote
    nothing: search returned the March item twice (old and new datetime)
    until a reconcile --fix. The tombstones of moved items now go first, so
    a crash can only leave the new row unwritten, which the rerun adds."""
    from tests.crashes import copy_state, crash_runs

    folder = tmp_path / "tiles"
    tiles = [str(write_tile(folder, "f.tif", 5.0, 45.0)), str(write_tile(folder, "m.tif", 6.0, 46.0))]
    template = LocalStore(str(tmp_path / "template"))
    args: dict[str, Any] = {"collection": "c", "partition": "year/month"}
    for tile, when in zip(tiles, ("2024-02-10T00:00:00Z", "2024-03-10T00:00:00Z")):
        (first,) = producer.register([tile], catalog=template, datetime=when, **args)
        assert first.ok, first.error

    def move(store: Any) -> None:
        results = producer.register(tiles, catalog=store, datetime="2024-05-10T00:00:00Z", **args)
        assert all(r.ok for r in results), [r.error for r in results]

    points = 0
    for n, store, writes in crash_runs(lambda: copy_state(template), move):
        points += 1
        move(store)
        found = sorted((f["id"], f["properties"]["datetime"]) for f in producer.search(store)["features"])
        where = f"rerun after a kill after write {n} ({writes[-1]})"
        assert found == [("f", "2024-05-10T00:00:00Z"), ("m", "2024-05-10T00:00:00Z")], where
        assert mirror.diff(store, "c").clean, where
    assert points >= 3
