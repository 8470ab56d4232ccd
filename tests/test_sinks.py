"""The commit path feeds the sinks (producer/sinks/__init__.py): what each
verb hands them, when, and what a sink that fails does to the results and
to the static catalog. The sinks here are small real ones that record what
they are handed and look at the catalog while they are called."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from producer import ingest, removal, repair
from producer.changes import Change, ChangeKind
from producer.errors import StoreError
from producer.options import RegisterOptions
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import write_tile
from tests.trees import tree_hash


class RecordingSink:
    """Records every ``apply``: the collection document and the changes, and
    whether each item's document existed in the catalog at that moment."""

    def __init__(self, root: Path | None = None, *, wants_unchanged: bool = False) -> None:
        self.root = root
        self.wants_unchanged = wants_unchanged
        self.calls: list[tuple[dict[str, Any], list[Change]]] = []
        self.existed: list[dict[str, bool]] = []

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        self.calls.append((collection, list(changes)))
        if self.root is not None:
            self.existed.append({c.key: (self.root / c.key).exists() for c in changes})

    @property
    def changes(self) -> list[tuple[str, str, str]]:
        return [(str(c.kind), c.item_id, c.key) for _, changes in self.calls for c in changes]


class DownSink(RecordingSink):
    """A sink whose backend is down: ``check`` raises (a storage error)."""

    def check(self) -> None:
        raise StoreError("sink backend at 127.0.0.1:9 is down")


class FailingSink(RecordingSink):
    """A sink that is reachable, but whose ``apply`` fails."""

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        super().apply(collection, changes)
        raise StoreError("the sink's transaction was aborted")

    def __repr__(self) -> str:
        return "FailingSink(test)"


def register(root: Path, tiles: list[Path], sinks: Sequence[Any], **options: Any) -> list[Any]:
    return ingest.register_products(
        tiles, catalog=str(root), collection="c", options=RegisterOptions(**options), sinks=sinks
    )


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [write_tile(folder, "a_20240110.tif", 6.0, 46.0), write_tile(folder, "b_20240215.tif", 7.0, 46.5)]


def test_a_committed_batch_hands_its_created_items_and_the_committed_collection_to_every_sink(
    tmp_path, tiles
):
    root = tmp_path / "cat"
    first, second = RecordingSink(root), RecordingSink(root)
    results = register(root, tiles, [first, second])
    assert [r.action for r in results] == ["created", "created"]
    for sink in (first, second):
        assert sink.changes == [
            ("created", "a_20240110", "c/a_20240110/a_20240110.json"),
            ("created", "b_20240215", "c/b_20240215/b_20240215.json"),
        ]
        assert sink.existed == [{key: True for _, _, key in sink.changes}]  # handed after the writes
        collection, changes = sink.calls[0]
        # the committed documents: as stored, timestamps and links included
        assert collection == json.loads((root / "c/collection.json").read_text())
        assert {link["href"] for link in collection["links"] if link["rel"] == "item"} == {
            "./a_20240110/a_20240110.json",
            "./b_20240215/b_20240215.json",
        }
        for change in changes:
            assert change.collection == "c"
            assert change.item == json.loads((root / change.key).read_text())
            assert change.item["properties"]["created"]


def test_unchanged_items_go_only_to_the_sinks_that_want_them_and_updated_ones_to_all(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles, [])
    plain, converging = RecordingSink(), RecordingSink(wants_unchanged=True)
    results = register(root, tiles, [plain, converging])
    assert [r.action for r in results] == ["unchanged", "unchanged"]
    assert plain.calls == []  # unchanged is not a change
    assert converging.changes == [
        ("updated", "a_20240110", "c/a_20240110/a_20240110.json"),
        ("updated", "b_20240215", "c/b_20240215/b_20240215.json"),
    ]
    results = register(root, tiles[:1], [plain, converging], datetime="2024-01-11T00:00:00Z")
    assert results[0].action == "updated"
    assert plain.changes == [("updated", "a_20240110", "c/a_20240110/a_20240110.json")]
    assert converging.calls[-1][1][0].item["properties"]["datetime"] == "2024-01-11T00:00:00Z"


def test_a_partition_move_is_handed_as_removed_old_key_then_created_new_key(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles[:1], [], partition="year/month")
    sink = RecordingSink(root)
    (result,) = register(root, tiles[:1], [sink], datetime="2023-07-01T00:00:00Z")
    assert result.action == "updated", result.error
    assert sink.changes == [
        ("removed", "a_20240110", "c/2024/01/a_20240110/a_20240110.json"),
        ("created", "a_20240110", "c/2023/07/a_20240110/a_20240110.json"),
    ]
    assert sink.existed == [
        {"c/2024/01/a_20240110/a_20240110.json": False, "c/2023/07/a_20240110/a_20240110.json": True}
    ]


def test_a_dry_run_hands_nothing_and_checks_no_sink(tmp_path, tiles):
    sink = DownSink()
    results = register(tmp_path / "cat", tiles, [sink], dry_run=True)
    assert [r.action for r in results] == ["created", "created"]
    assert sink.calls == []


def test_a_sink_that_cannot_take_changes_fails_the_batch_before_any_write(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles[:1], [])
    before = tree_hash(root)
    results = register(root, tiles, [RecordingSink(), DownSink()], datetime="2024-05-01T00:00:00Z")
    assert tree_hash(root) == before  # not even the unchanged root rewritten
    for result in results:
        assert result.error_type == "storage"
        assert "127.0.0.1:9 is down" in str(result.error)
        assert "nothing was written" in str(result.error)


def test_a_sink_failing_after_the_commit_leaves_the_catalog_committed_and_says_that_sink_is_behind(
    tmp_path, tiles
):
    root = tmp_path / "cat"
    good = RecordingSink()
    results = register(root, tiles, [FailingSink(), good])
    assert len(good.calls) == 1  # the other sinks still get the batch
    for result in results:
        assert result.error_type == "storage"  # retryable: a rerun hands the batch again
        error = str(result.error)
        assert "committed to the catalog" in error
        assert "FailingSink(test)" in error and "behind" in error
        assert result.href is not None and (root / "c" / result.id / f"{result.id}.json").exists()
    linked = json.loads((root / "c/collection.json").read_text())["links"]
    assert sum(1 for link in linked if link["rel"] == "item") == 2


def test_remove_hands_a_removed_change_after_the_delete(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles, [])
    sink = RecordingSink(root)
    result = removal.remove_item("a_20240110", catalog=str(root), collection="c", sinks=[sink])
    assert result.action == "removed"
    assert sink.changes == [("removed", "a_20240110", "c/a_20240110/a_20240110.json")]
    assert sink.existed == [{"c/a_20240110/a_20240110.json": False}]
    collection, changes = sink.calls[0]
    assert [link["href"] for link in collection["links"] if link["rel"] == "item"] == [
        "./b_20240215/b_20240215.json"
    ]
    assert changes[0].item["id"] == "a_20240110"


def test_remove_of_an_absent_item_is_handed_only_to_sinks_that_want_unchanged(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles[:1], [])
    plain, converging = RecordingSink(), RecordingSink(wants_unchanged=True)
    result = removal.remove_item("gone", catalog=str(root), collection="c", sinks=[plain, converging])
    assert result.action == "absent"
    assert plain.calls == []
    assert [(kind, item_id) for kind, item_id, _ in converging.changes] == [("removed", "gone")]


def test_remove_with_a_sink_that_cannot_take_changes_raises_and_writes_nothing(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles, [])
    before = tree_hash(root)
    with pytest.raises(StoreError, match="is down"):
        removal.remove_item("a_20240110", catalog=str(root), collection="c", sinks=[DownSink()])
    assert tree_hash(root) == before


def test_remove_with_a_sink_failing_after_the_delete_is_a_storage_error_saying_it_is_behind(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles, [])
    result = removal.remove_item("a_20240110", catalog=str(root), collection="c", sinks=[FailingSink()])
    assert result.error_type == "storage"
    assert "removed from the catalog" in str(result.error) and "behind" in str(result.error)
    assert not (root / "c/a_20240110/a_20240110.json").exists()


def test_reconcile_hands_what_its_repairs_changed_to_the_sinks(tmp_path, tiles):
    root = tmp_path / "cat"
    register(root, tiles[:1], [])
    # an orphan item (a register killed before linking), and a product no item describes
    store = LocalStore(str(root))
    orphan = json.loads((root / "c/a_20240110/a_20240110.json").read_text())
    orphan["id"] = "orphan"
    store.put("c/orphan/orphan.json", json.dumps(orphan).encode(), create_only=True)
    sink = RecordingSink(root)
    report = repair.reconcile(
        store,
        default_validator(),
        data=str(tiles[1]),
        fix=True,
        collection="c",
        check_assets=False,
        sinks=[sink],
    )
    assert report.remaining == [], [str(p) for p in report.remaining]
    assert ("created", "b_20240215", "c/b_20240215/b_20240215.json") in sink.changes  # registered
    assert ("created", "orphan", "c/orphan/orphan.json") in sink.changes  # linked: new to followers
    assert all(kind == ChangeKind.CREATED for kind, _, _ in sink.changes)
