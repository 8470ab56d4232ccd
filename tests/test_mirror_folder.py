"""A compaction on a local store keeps the partition's fragments folder
(mr37): the store's delete prunes the folders it empties, so the folder went
with its last fragment and the next register made it again. A released
lease (an expired one) now stays in the folder; readers, validate,
reconcile, search and the next compaction take it as they take any lease."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import producer
from producer import mirror
from producer.changes import Change, ChangeKind
from producer.mirror import MirrorSink, compact, compact_leased, lease_key, take_lease
from producer.store import open_store
from tests.crashes import write_tile

BASE = "c/items.parquet"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    tiles = [write_tile(tmp_path / "tiles", f"t{i}_2024011{i}.tif", 6.0 + i, 46.0) for i in range(2)]
    root = tmp_path / "cat"
    assert all(r.ok for r in producer.register(tiles, catalog=str(root), collection="c"))
    return root


def _register_one(root: Path, tmp_path: Path, name: str) -> None:
    (result,) = producer.register(
        [str(write_tile(tmp_path / "more", f"{name}_20240120.tif", 9.0, 46.0))],
        catalog=str(root),
        collection="c",
    )
    assert result.ok, result.error


@pytest.mark.parametrize("how", ["compact", "compact_leased", "the sink"])
def test_a_compaction_keeps_the_fragments_folder_for_the_next_register(
    catalog: Path, tmp_path: Path, how
) -> None:
    store = open_store(str(catalog))
    folder = catalog / "c" / "items-fragments"
    assert mirror.list_fragments(store, BASE)
    if how == "compact":
        assert compact(store, BASE) is True
    elif how == "compact_leased":
        assert compact_leased(store, BASE) is True
    else:  # the writer's own compaction (every write looks, any fragment is too many)
        item = next(doc for _, doc in mirror.walk_collection(store, "c") if doc.get("type") == "Feature")
        item = json.loads(json.dumps(item))
        item["properties"]["updated"] = "2099-01-01T00:00:00Z"
        key = f"c/{item['id']}/{item['id']}.json"
        change = Change(ChangeKind.UPDATED, "c", item["id"], key, item)
        MirrorSink(store, compact_after=0, check_every=1).apply({}, [change])
    assert mirror.list_fragments(store, BASE) == []
    assert folder.is_dir(), "the folder went with its last fragment"
    assert [p.name for p in folder.iterdir()] == ["compacting.lease"]
    assert json.loads(store.get(lease_key(BASE))[0])["expires"] == 0.0  # released: any writer takes it
    inode = folder.stat().st_ino
    _register_one(catalog, tmp_path, "n")
    assert folder.stat().st_ino == inode  # written into the kept folder, not a new one
    assert len(mirror.list_fragments(store, BASE)) == 1
    ids = sorted(f["id"] for f in producer.search(str(catalog))["features"])
    assert ids == ["n_20240120", "t0_20240110", "t1_20240111"]


def test_a_kept_folder_changes_nothing_readers_validate_reconcile_or_compaction_see(
    catalog: Path, tmp_path: Path
) -> None:
    store = open_store(str(catalog))
    assert compact(store, BASE) is True
    assert producer.validate_catalog(str(catalog)) == []
    report = producer.reconcile(str(catalog))
    assert report.problems == [] and report.found == {}
    assert mirror.diff(store, "c").clean
    _register_one(catalog, tmp_path, "n")
    # the next compaction takes the released lease over (compare-and-swap) and releases it again
    version = take_lease(store, BASE)
    assert version is not None
    mirror.release_lease(store, BASE, version)
    assert compact_leased(store, BASE) is True
    assert json.loads(store.get(lease_key(BASE))[0])["expires"] == 0.0
    assert mirror.diff(store, "c").clean
    assert len(producer.search(str(catalog))["features"]) == 3


def test_a_partition_left_without_a_base_keeps_no_folder(tmp_path: Path) -> None:
    """Only a partition whose base stays keeps its folder: one compacted to
    nothing with no base (a fragment of tombstones alone) is pruned as before."""
    store = open_store(str(tmp_path / "cat"))
    gone = {"type": "Feature", "id": "x", "properties": {"updated": "2024-01-01T00:00:00Z"}}
    MirrorSink(store, compact_after=-1).apply({}, [Change(ChangeKind.REMOVED, "c", "x", "c/x/x.json", gone)])
    assert compact(store, BASE) is True
    assert not store.exists(BASE) and not os.path.exists(tmp_path / "cat" / "c" / "items-fragments")
