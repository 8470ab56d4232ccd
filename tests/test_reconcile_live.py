"""``reconcile --fix`` run while pipelines write to the catalog (the nightly
job): what a writer has under way when the run looks last is not a problem
left behind, and a run must not fail for it; what was wrong before the run
still is. The races are forced by pausing each side (tests/pausing.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import producer
from producer.audit import audit
from producer.catalog.documents import REMOVING
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import PausingStore, write_tile
from tests.pausing import PauseAfterGet, in_thread
from tests.trees import but_emptied

X, Y, Z = "x_20240310", "y_20240115", "z_20240312"


def key_of(partition: str | None, item_id: str) -> str:
    folder = f"c/{item_id[2:6]}/{item_id[6:8]}/" if partition else "c/"
    return f"{folder}{item_id}/{item_id}.json"


def parent_of(partition: str | None, item_id: str) -> str:
    return f"c/{item_id[2:6]}/{item_id[6:8]}/catalog.json" if partition else "c/collection.json"


@pytest.mark.parametrize("partition", [None, "year/month"], ids=["flat", "year-month"])
def test_reconcile_fix_racing_a_register_and_a_remove_reports_them_in_progress_not_errors(
    tmp_path, partition
):
    """After the first audit of ``reconcile --fix``, a register writes Z and
    is held before linking it, and a remove marks X and is held before
    unlinking it; then the run ends. Before: Z was a remaining ``orphan``
    error (exit 1, the nightly job red) and X an ``interrupted-removal``
    saying the removal "did not finish". Now both are ``in-progress``
    warnings, and once the writers finish the catalog is clean."""
    tiles = {i: write_tile(tmp_path / "tiles", f"{i}.tif", 12.0, 52.0) for i in (X, Y, Z)}
    store = LocalStore(str(tmp_path / "cat"))
    producer.register([tiles[X], tiles[Y]], catalog=store, collection="c", partition=partition)

    # reconcile held after its first audit (its second read of the root)
    held = PauseAfterGet(store, "catalog.json", nth=2)
    run, ran = in_thread(lambda: producer.reconcile(held, fix=True))
    assert held.reached.wait(30)
    writing = PausingStore(store, pause_before=parent_of(partition, Z))
    register, registered = in_thread(
        lambda: producer.register([tiles[Z]], catalog=writing, collection="c", partition=partition)
    )
    removing = PausingStore(store, pause_before=parent_of(partition, X))
    remove, removed = in_thread(lambda: producer.remove(X, catalog=removing, collection="c"))
    try:
        assert writing.reached.wait(30) and removing.reached.wait(30)
        assert store.exists(key_of(partition, Z))
        assert REMOVING in json.loads(store.get(key_of(partition, X))[0])["properties"]
        held.resume.set()
        run.join(30)
    finally:
        held.resume.set()
        writing.resume.set()
        removing.resume.set()
        register.join(30)
        remove.join(30)
    assert "error" not in ran, ran
    report = ran["result"]
    assert [p for p in report.remaining if p.is_error] == [], [str(p) for p in report.remaining]
    under_way = {p.key: p for p in report.remaining if p.kind == "in-progress"}
    assert set(under_way) == {key_of(partition, Z), key_of(partition, X)}, [str(p) for p in report.remaining]
    assert "registration" in under_way[key_of(partition, Z)].message
    assert "removal" in under_way[key_of(partition, X)].message
    assert all(r.ok for r in registered["result"]), registered
    assert removed["result"].action == "removed"
    final = audit(store, default_validator())
    assert but_emptied(final.problems) == [], [str(p) for p in final.problems]
    assert {info.id for info in final.items.values()} == {Y, Z}


def test_an_old_orphan_and_an_old_removal_are_still_errors_and_fixed(tmp_path):
    """What the first audit finds is repaired as before, and an orphan that
    appears during the run but was written long ago (not a writer at work)
    stays an ``orphan`` error: only young ones are under way."""
    tiles = {i: write_tile(tmp_path / "tiles", f"{i}.tif", 12.0, 52.0) for i in (X, Y)}
    store = LocalStore(str(tmp_path / "cat"))
    producer.register([tiles[Y]], catalog=store, collection="c")
    old = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # a register killed before its link two days ago, whose item turns up
    # (restored from a backup) while reconcile runs
    side = LocalStore(str(tmp_path / "side"))
    producer.register([tiles[X]], catalog=side, collection="c")
    doc = json.loads(side.get(key_of(None, X))[0])
    doc["properties"]["created"] = doc["properties"]["updated"] = old
    held = PauseAfterGet(store, "catalog.json", nth=2)
    run, ran = in_thread(lambda: producer.reconcile(held, fix=True))
    assert held.reached.wait(30)
    try:
        store.put(key_of(None, X), json.dumps(doc).encode())
    finally:
        held.resume.set()
        run.join(30)
    report = ran["result"]
    assert [p.kind for p in report.remaining if p.is_error] == ["orphan"], [str(p) for p in report.remaining]
    assert report.remaining[0].key == key_of(None, X)
    # the next run links it
    again = producer.reconcile(store, fix=True)
    assert [p for p in again.remaining if p.is_error] == []
    assert again.fixed.get("orphan") == 1


def test_reconcile_fix_racing_a_register_of_a_new_year_reports_its_partitions_in_progress(tmp_path):
    """A register into a ``year/month`` collection creates the partitions of
    a new period bottom-up (the item, its month, its year) and links the
    year last. Held there while ``reconcile --fix`` ends: before, the new
    year and month catalogs were remaining ``orphan`` errors (exit 1); now
    they are ``in-progress`` like the item they hold."""
    old = write_tile(tmp_path / "tiles", f"{Y}.tif", 12.0, 52.0)
    new = write_tile(tmp_path / "tiles", "n_20250704.tif", 12.0, 52.0)
    store = LocalStore(str(tmp_path / "cat"))
    producer.register([old], catalog=store, collection="c", partition="year/month")
    held = PauseAfterGet(store, "catalog.json", nth=2)
    run, ran = in_thread(lambda: producer.reconcile(held, fix=True))
    assert held.reached.wait(30)
    writing = PausingStore(store, pause_before="c/collection.json")
    register, registered = in_thread(
        lambda: producer.register([new], catalog=writing, collection="c", partition="year/month")
    )
    try:
        assert writing.reached.wait(30)
        assert store.exists("c/2025/07/catalog.json") and store.exists("c/2025/catalog.json")
        held.resume.set()
        run.join(30)
    finally:
        held.resume.set()
        writing.resume.set()
        register.join(30)
    report = ran["result"]
    assert [str(p) for p in report.remaining if p.is_error] == []
    assert {p.key for p in report.remaining if p.kind == "in-progress"} == {
        "c/2025/catalog.json",
        "c/2025/07/catalog.json",
        "c/2025/07/n_20250704/n_20250704.json",
    }, [str(p) for p in report.remaining]
    assert all(r.ok for r in registered["result"])
    final = audit(store, default_validator())
    assert but_emptied(final.problems) == [], [str(p) for p in final.problems]


def test_reconcile_fix_racing_a_move_to_another_period_reports_it_in_progress(tmp_path):
    """A register whose product's date changed moves its item: it links the
    new item in the new period, then removes the old one. Held in between
    while ``reconcile --fix`` ends: before, a remaining ``duplicate-id``
    error (exit 1); now ``in-progress``, and the move ends with one item."""
    tile = write_tile(tmp_path / "tiles", f"{X}.tif", 12.0, 52.0)
    store = LocalStore(str(tmp_path / "cat"))
    producer.register([tile], catalog=store, collection="c", partition="year/month")
    held = PauseAfterGet(store, "catalog.json", nth=2)
    run, ran = in_thread(lambda: producer.reconcile(held, fix=True))
    assert held.reached.wait(30)
    old = key_of("year/month", X)
    moving = PausingStore(store, pause_before=old)  # the mark of the old item
    move, moved = in_thread(
        lambda: producer.register(
            [tile], catalog=moving, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
    )
    try:
        assert moving.reached.wait(30)
        held.resume.set()
        run.join(30)
    finally:
        held.resume.set()
        moving.resume.set()
        move.join(30)
    report = ran["result"]
    assert [str(p) for p in report.remaining if p.is_error] == []
    (under_way,) = [p for p in report.remaining if p.kind == "in-progress"]
    assert {under_way.key, under_way.target} == {old, f"c/2023/07/{X}/{X}.json"}
    assert "mov" in under_way.message
    assert [r.action for r in moved["result"]] == ["updated"]
    final = audit(store, default_validator())
    assert but_emptied(final.problems) == [], [str(p) for p in final.problems]
    assert [info.key for info in final.items.values()] == [f"c/2023/07/{X}/{X}.json"]
