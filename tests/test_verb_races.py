"""Races between different verbs and writers, forced by pausing one side at
its critical point (tests/pausing.py): after each, every item is linked
once, no product took another's item, and each caller was told the truth.
"""

from __future__ import annotations

import json

import pytest

import producer
from producer import mirror
from producer.audit import audit
from producer.sinks.notify import CallbackSink
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import CrashingStore, PausingStore, SimulatedKill, write_tile
from tests.pausing import PauseAfterGet, in_thread
from tests.trees import but_emptied

X = "x_20240310"


@pytest.fixture
def store(request, tmp_path) -> Store:
    """A fresh catalog: ``local`` (default) or ``s3`` (indirect parameter)."""
    if getattr(request, "param", "local") == "local":
        return LocalStore(str(tmp_path / "cat"))
    srv = request.getfixturevalue("s3_server")
    return open_store(srv.url(f"verb-races-{tmp_path.name}"), srv.storage_options)


def items_by_key(store: Store) -> dict[str, str]:
    """key -> id of every linked item; asserts the catalog has no problem at
    all and its mirror holds exactly its items."""
    report = audit(store, default_validator())
    assert but_emptied(report.problems) == [], [str(p) for p in report.problems]
    assert not report.orphans
    assert mirror.diff(store, "c").clean
    return {key: info.id for key, info in report.items.items()}


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_two_products_racing_for_a_new_id_in_two_periods_the_loser_is_refused(store, tmp_path):
    """Two products whose names give one id, dated into two months of a
    ``year/month`` collection, registered at the same moment: the second
    read "no such id" from the id index, then the first ran whole. Before:
    the second overwrote the first's index entry and both said ``created``:
    two items with one id, and ``reconcile --fix`` then deleted the older,
    another product's item. Now the second sees the first's entry when it
    claims the id, and is refused as without the race, nothing written."""
    first = write_tile(tmp_path / "a", f"{X}.tif", 12.0, 52.0)
    second = write_tile(tmp_path / "b", f"{X}.tif", 20.0, 40.0)
    paused = PauseAfterGet(store, f"c/.ids/{X}", missing=True)
    thread, out = in_thread(
        lambda: producer.register(
            [second], catalog=paused, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
    )
    assert paused.reached.wait(30)
    try:
        (fast,) = producer.register([first], catalog=store, collection="c", partition="year/month")
    finally:
        paused.resume.set()
        thread.join(30)
    assert fast.action == "created", fast.error
    (slow,) = out["result"]
    assert slow.action == "error" and slow.error_type == "input"
    assert str(first) in slow.error and str(second) in slow.error
    assert items_by_key(store) == {f"c/2024/03/{X}/{X}.json": X}
    assert not store.exists(f"c/2023/07/{X}/{X}.json")


def test_two_products_taking_a_removed_id_at_once_in_two_periods_end_with_one_item(tmp_path):
    """``remove`` leaves the id index entry. Two products named alike, dated
    into two other months, then registered at once: both read the entry
    naming the removed item. Before: both "moved" it, the second overwrote
    the first's entry on its retry, and the id had two items. Now the entry
    is claimed from the version read, like a new id's, and the loser is
    refused."""
    store = LocalStore(str(tmp_path / "cat"))
    gone = write_tile(tmp_path / "gone", f"{X}.tif", 12.0, 52.0)
    producer.register([gone], catalog=store, collection="c", partition="year/month")
    assert producer.remove(X, catalog=store, collection="c").action == "removed"
    first = write_tile(tmp_path / "a", f"{X}.tif", 14.0, 52.0)
    second = write_tile(tmp_path / "b", f"{X}.tif", 20.0, 40.0)
    paused = PauseAfterGet(store, f"c/.ids/{X}")
    thread, out = in_thread(
        lambda: producer.register(
            [second], catalog=paused, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
    )
    assert paused.reached.wait(30)
    try:
        (fast,) = producer.register(
            [first], catalog=store, collection="c", partition="year/month", datetime="2022-05-01T00:00:00Z"
        )
    finally:
        paused.resume.set()
        thread.join(30)
    assert fast.action == "created", fast.error
    (slow,) = out["result"]
    assert slow.action == "error" and slow.error_type == "input", slow.error
    assert str(first) in slow.error and str(second) in slow.error
    assert items_by_key(store) == {f"c/2022/05/{X}/{X}.json": X}


def _orphan(store: Store, tmp_path, partition: str | None) -> str:
    """Register X killed right after its item write (its id index entry
    first, partitioned): X is an orphan. Returns its key."""
    producer.register(
        [write_tile(tmp_path / "y", "y_20240115.tif", 10.0, 50.0)],
        catalog=store,
        collection="c",
        partition=partition,
    )
    killed = CrashingStore(store, crash_after=2 if partition else 1)
    with pytest.raises(SimulatedKill):
        producer.register(
            [write_tile(tmp_path / "x", f"{X}.tif", 12.0, 52.0)],
            catalog=killed,
            collection="c",
            partition=partition,
        )
    key = f"c/2024/03/{X}/{X}.json" if partition else f"c/{X}/{X}.json"
    assert key in audit(store, default_validator()).orphans
    return key


@pytest.mark.parametrize(
    "store, partition",
    [("local", None), ("local", "year/month"), ("s3", None)],
    ids=["local-flat", "local-year-month", "s3-flat"],
    indirect=["store"],
)
def test_remove_while_reconcile_fix_is_about_to_link_its_orphan_leaves_no_dangling_link(
    store, tmp_path, partition
):
    """``reconcile --fix`` has read the orphan X again (unmarked) and is
    about to link it; ``remove X`` runs whole meanwhile and says
    ``removed``. Before: reconcile linked the deleted item, a dangling link
    it reported as remaining. Now it sees, after linking, that the item
    went, and finishes the removal: the remove's answer stays true."""
    key = _orphan(store, tmp_path, partition)
    paused = PauseAfterGet(store, key, nth=2)  # the audit's read, then the re-read before the link
    seen: list = []
    thread, out = in_thread(
        lambda: producer.reconcile(paused, fix=True, on_change=CallbackSink(seen.append, outbox_id="seen"))
    )
    assert paused.reached.wait(30)
    try:
        assert producer.remove(X, catalog=store, collection="c").action == "removed"
    finally:
        paused.resume.set()
        thread.join(30)
    report = out["result"]
    assert but_emptied(report.remaining) == [], [str(p) for p in report.remaining]
    assert set(items_by_key(store).values()) == {"y_20240115"}
    assert not store.exists(key)
    assert [c.item_id for c in seen if str(c.kind) == "created"] == []


def test_reconcile_fix_racing_a_move_leaves_the_id_index_on_the_moved_item(tmp_path):
    """``reconcile --fix`` walks the linked items to check the id index; it
    has read X in 2024/03 when a register moves X to 2023/07 (new item,
    old one removed, entry pointed at the new key). Before: reconcile then
    found the entry 'stale' and pointed it back at the deleted item, and the
    next move of X left two items with one id. Now the entry is rewritten
    only over the version read and while the item is still there."""
    store = LocalStore(str(tmp_path / "cat"))
    tile = write_tile(tmp_path / "x", f"{X}.tif", 12.0, 52.0)
    producer.register([tile], catalog=store, collection="c", partition="year/month")
    paused = PauseAfterGet(store, f"c/2024/03/{X}/{X}.json", nth=2)  # the audit, then the index walk
    thread, out = in_thread(lambda: producer.reconcile(paused, fix=True))
    assert paused.reached.wait(30)
    try:
        (moved,) = producer.register(
            [tile], catalog=store, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
        assert moved.action == "updated", moved.error
    finally:
        paused.resume.set()
        thread.join(30)
    assert "stale-index" not in out["result"].fixed
    assert json.loads(store.get(f"c/.ids/{X}")[0])["item"] == f"c/2023/07/{X}/{X}.json"
    (again,) = producer.register(
        [tile], catalog=store, collection="c", partition="year/month", datetime="2022-01-01T00:00:00Z"
    )
    assert again.action == "updated", again.error
    assert items_by_key(store) == {f"c/2022/01/{X}/{X}.json": X}


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_remove_racing_a_move_to_another_period_removes_the_moved_item(store, tmp_path):
    """``remove X`` has found X in 2024/03 (id index) and read it to mark it
    when a register moves X to 2023/07 (new item, old one removed). Before:
    the remove then found nothing at the old key and said ``absent`` while
    X stood in 2023/07. Now it looks the id up again and removes X where it
    went: ``removed``, and no X is left."""
    tile = write_tile(tmp_path / "x", f"{X}.tif", 12.0, 52.0)
    producer.register(
        [tile, write_tile(tmp_path / "y", "y_20240115.tif", 10.0, 50.0)],
        catalog=store,
        collection="c",
        partition="year/month",
    )
    paused = PauseAfterGet(store, f"c/2024/03/{X}/{X}.json")
    thread, out = in_thread(lambda: producer.remove(X, catalog=paused, collection="c"))
    assert paused.reached.wait(30)
    try:
        (moved,) = producer.register(
            [tile], catalog=store, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
        assert moved.action == "updated", moved.error
    finally:
        paused.resume.set()
        thread.join(30)
    result = out["result"]
    assert result.action == "removed", result
    assert result.href.endswith(f"c/2023/07/{X}/{X}.json")
    assert set(items_by_key(store).values()) == {"y_20240115"}


def test_a_product_claiming_an_id_another_is_still_registering_gets_a_retryable_error(tmp_path):
    """As above, but the first registration has claimed the id and not yet
    written its item when the second claims it: the second cannot judge an
    item that does not exist yet, so it fails retryably, nothing written;
    its retry judges the first's item and is refused."""
    store = LocalStore(str(tmp_path / "cat"))
    first = write_tile(tmp_path / "a", f"{X}.tif", 12.0, 52.0)
    second = write_tile(tmp_path / "b", f"{X}.tif", 20.0, 40.0)
    late = PauseAfterGet(store, f"c/.ids/{X}", missing=True)
    thread_b, out_b = in_thread(
        lambda: producer.register(
            [second], catalog=late, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
    )
    assert late.reached.wait(30)  # the second read "no entry"
    early = PausingStore(store, pause_before=f"c/2024/03/{X}/{X}.json")
    thread_a, out_a = in_thread(
        lambda: producer.register([first], catalog=early, collection="c", partition="year/month")
    )
    try:
        assert early.reached.wait(30)  # the first claimed the id, its item not written
        late.resume.set()
        thread_b.join(30)
    finally:
        late.resume.set()
        early.resume.set()
        thread_a.join(30)
    (slow,) = out_b["result"]
    assert slow.action == "error" and slow.error_type == "storage", slow.error
    assert "under way" in slow.error and "register again" in slow.error
    (fast,) = out_a["result"]
    assert fast.action == "created", fast.error
    assert items_by_key(store) == {f"c/2024/03/{X}/{X}.json": X}
    (retry,) = producer.register(
        [second], catalog=store, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
    )
    assert retry.action == "error" and retry.error_type == "input"
    assert str(first) in retry.error and str(second) in retry.error
    assert items_by_key(store) == {f"c/2024/03/{X}/{X}.json": X}


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_a_product_reading_another_products_fresh_claim_waits_for_its_item(store, tmp_path):
    """The first registration has written its id index entry and not yet its
    item when the second, another product named alike, *reads* the entry
    (two periods of a ``year/month`` collection). Before: an entry naming no
    item looked like one a ``remove`` or a killed register left, the second
    took it over and both items were written, two items with one id. Now
    the entry says when and for which product it was claimed: another
    product's fresh claim is waited for (a retryable error, nothing
    written), and the retry judges the first's item like without the race."""
    first = write_tile(tmp_path / "a", f"{X}.tif", 12.0, 52.0)
    second = write_tile(tmp_path / "b", f"{X}.tif", 20.0, 40.0)
    early = PausingStore(store, pause_before=f"c/2024/03/{X}/{X}.json")
    thread_a, out_a = in_thread(
        lambda: producer.register([first], catalog=early, collection="c", partition="year/month")
    )
    try:
        assert early.reached.wait(30)  # the first claimed the id, its item not written
        (slow,) = producer.register(
            [second], catalog=store, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
        )
    finally:
        early.resume.set()
        thread_a.join(30)
    assert slow.action == "error" and slow.error_type == "storage", slow.error
    assert "under way" in slow.error and "register again" in slow.error
    assert not store.exists(f"c/2023/07/{X}/{X}.json")
    (fast,) = out_a["result"]
    assert fast.action == "created", fast.error
    assert items_by_key(store) == {f"c/2024/03/{X}/{X}.json": X}
    (retry,) = producer.register(
        [second], catalog=store, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
    )
    assert retry.action == "error" and retry.error_type == "input", retry.error
    assert str(first) in retry.error and str(second) in retry.error
    assert items_by_key(store) == {f"c/2024/03/{X}/{X}.json": X}
    index = json.loads(store.get(f"c/.ids/{X}")[0])
    assert index["product"] == str(first) and "claimed" in index


def test_an_id_removed_right_after_its_registration_is_free_for_another_month_at_once(tmp_path):
    """Register, ``remove``, register the product again with a corrected
    date (another month), all within a minute: the removal lifts the
    entry's claim, so the new registration is not told to wait."""
    store = LocalStore(str(tmp_path / "cat"))
    tile = write_tile(tmp_path / "a", f"{X}.tif", 12.0, 52.0)
    producer.register([tile], catalog=store, collection="c", partition="year/month")
    assert producer.remove(X, catalog=store, collection="c").action == "removed"
    other = write_tile(tmp_path / "b", f"{X}.tif", 20.0, 40.0)
    (again,) = producer.register(
        [other], catalog=store, collection="c", partition="year/month", datetime="2023-07-01T00:00:00Z"
    )
    assert again.action == "created", again.error
    assert items_by_key(store) == {f"c/2023/07/{X}/{X}.json": X}
