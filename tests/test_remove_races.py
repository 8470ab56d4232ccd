"""Races between ``remove`` and the other verbs, forced by pausing one side
at its critical point (issue 8, point 6: register X while remove X, reconcile
--fix while remove). Each must end valid, never with a link to a deleted item.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import producer
from producer.audit import audit
from producer.catalog.documents import REMOVING
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import PausingStore, run_paused, write_tile
from tests.pausing import PauseAfterGet
from tests.trees import but_emptied

X, Y = "x_20240310", "y_20240115"


@pytest.fixture
def tiles(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "tiles"
    return {X: write_tile(folder, f"{X}.tif", 12.0, 52.0), Y: write_tile(folder, f"{Y}.tif", 10.0, 50.0)}


@pytest.fixture
def store(request, tmp_path) -> Store:
    """A fresh catalog: ``local`` (default) or ``s3`` (indirect parameter)."""
    if getattr(request, "param", "local") == "local":
        return LocalStore(str(tmp_path / "cat"))
    srv = request.getfixturevalue("s3_server")
    return open_store(srv.url(f"races-{tmp_path.name}"), srv.storage_options)


def linked_items(store: Store) -> dict[str, dict]:
    """id -> item document of every item reached from the root; asserts the
    catalog is valid (no problem at all)."""
    report = audit(store, default_validator())
    assert but_emptied(report.problems) == [], [str(p) for p in report.problems]
    return {info.id: store.get(key)[0] for key, info in report.items.items()}


def item_key(partition: str | None, item_id: str) -> str:
    return f"c/2024/03/{item_id}/{item_id}.json" if partition else f"c/{item_id}/{item_id}.json"


@pytest.mark.parametrize(
    "store, partition",
    [("local", None), ("local", "year/month"), ("s3", None)],
    ids=["local-flat", "local-year-month", "s3-flat"],
    indirect=["store"],
)
def test_register_while_remove_is_paused_between_unlink_and_delete_keeps_the_item_linked(
    store, tiles, partition
):
    """Before: remove deleted the item the register had just rewritten and
    linked, leaving a link to a deleted item."""
    producer.register([tiles[X], tiles[Y]], catalog=store, collection="c", partition=partition)
    paused = PausingStore(store, pause_before=f"delete:{item_key(partition, X)}")

    def register_again() -> None:
        (res,) = producer.register([tiles[X]], catalog=store, collection="c", partition=partition)
        assert res.ok, res.error

    result = run_paused(paused, lambda: producer.remove(X, catalog=paused, collection="c"), register_again)
    assert result.action == "kept"
    items = linked_items(store)
    assert set(items) == {X, Y}
    assert REMOVING.encode() not in items[X]


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_remove_while_register_is_paused_before_linking_leaves_no_dangling_link(store, tiles):
    """The other order: the item is written, the remove runs whole (mark,
    unlink, delete), then the register links it. Before: a link to a deleted
    item. Now the register notices and writes the item again."""
    producer.register([tiles[Y]], catalog=store, collection="c")
    paused = PausingStore(store, pause_before="c/collection.json")

    def remove_meanwhile() -> None:
        res = producer.remove(X, catalog=store, collection="c")
        assert res.action == "removed"

    results = run_paused(
        paused, lambda: producer.register([tiles[X]], catalog=paused, collection="c"), remove_meanwhile
    )
    assert all(r.ok for r in results), [r.error for r in results]
    assert set(linked_items(store)) == {X, Y}


@pytest.mark.parametrize(
    "store, partition",
    [("local", None), ("local", "year/month"), ("s3", None)],
    ids=["local-flat", "local-year-month", "s3-flat"],
    indirect=["store"],
)
def test_reconcile_fix_while_remove_is_paused_between_unlink_and_delete_does_not_link_it_again(
    store, tiles, partition
):
    """Before: reconcile --fix saw the unlinked item as an orphan and linked
    it again; the remove then deleted it: a link to a deleted item."""
    producer.register([tiles[X], tiles[Y]], catalog=store, collection="c", partition=partition)
    paused = PausingStore(store, pause_before=f"delete:{item_key(partition, X)}")

    def reconcile_meanwhile() -> None:
        producer.reconcile(store, fix=True)

    result = run_paused(
        paused, lambda: producer.remove(X, catalog=paused, collection="c"), reconcile_meanwhile
    )
    assert result.action == "removed"
    assert set(linked_items(store)) == {Y}
    assert not store.exists(item_key(partition, X))


@pytest.mark.parametrize("store", ["local", "s3"], indirect=True)
def test_remove_while_a_partitioned_register_is_paused_after_its_item_write_finds_the_item(store, tiles):
    """``remove X`` runs whole while ``register X`` into a ``year/month``
    collection has written the item and its month and year links but not the
    collection yet. Before: the id index entry came last, so remove answered
    ``absent`` and left the item. Now the entry is written before the item:
    remove removes it, and the register, which resumes after, wins as in the
    flat layout (it writes the removed item again and links it)."""
    producer.register([tiles[Y]], catalog=store, collection="c", partition="year/month")
    paused = PausingStore(store, pause_before="c/collection.json")
    removed: list[str] = []

    def remove_meanwhile() -> None:
        removed.append(producer.remove(X, catalog=store, collection="c").action)

    results = run_paused(
        paused,
        lambda: producer.register([tiles[X]], catalog=paused, collection="c", partition="year/month"),
        remove_meanwhile,
    )
    assert removed == ["removed"]
    assert all(r.ok for r in results), [r.error for r in results]
    items = linked_items(store)
    assert set(items) == {X, Y}
    assert REMOVING.encode() not in items[X]
    assert store.exists(item_key("year/month", X))


def test_register_while_remove_is_paused_keeps_an_item_below_a_split_year_linked(store, tiles):
    """A ``year`` collection whose year is split puts X in ``c/2024/03/``.
    Before: the remove that found X registered again meanwhile linked it
    back with the layout guessed from its key depth (``year/month``), which
    the collection (``year``) refused: the remove failed, X stayed unlinked."""
    producer.register([tiles[Y]], catalog=store, collection="c", partition="year", max_links=1)
    producer.register([tiles[X]], catalog=store, collection="c")
    key = f"c/2024/03/{X}/{X}.json"
    assert store.exists(key)  # below the split year
    paused = PausingStore(store, pause_before=f"delete:{key}")

    def register_again() -> None:
        (res,) = producer.register([tiles[X]], catalog=store, collection="c")
        assert res.ok, res.error

    result = run_paused(paused, lambda: producer.remove(X, catalog=paused, collection="c"), register_again)
    assert result.action == "kept"
    items = linked_items(store)
    assert set(items) == {X, Y}
    assert REMOVING.encode() not in items[X]


class _FinishRemoveBeforeRead:
    """The reading side's store: its first read of ``key`` first lets the
    paused ``remove`` finish (resume, wait for it), so the document listed a
    moment ago is deleted when it is read."""

    def __init__(self, inner: Store, key: str, paused: PausingStore, finish: Callable[[], None]) -> None:
        self.inner, self.key, self.paused, self.finish = inner, key, paused, finish
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        if key == self.key and not self.paused.resume.is_set():
            self.finish()
        return self.inner.get(key)


@pytest.mark.parametrize(
    "store, partition",
    [("local", None), ("local", "year/month"), ("s3", None)],
    ids=["local-flat", "local-year-month", "s3-flat"],
    indirect=["store"],
)
def test_validate_while_a_remove_deletes_the_unlinked_item_reports_no_orphan(store, tiles, partition):
    """``validate`` (``reconcile`` walks the same way) lists the catalog
    while a remove has unlinked X, and reads X after the remove deleted it.
    Before: an ``orphan`` error ("no document links it") for a document that
    no longer exists, and exit 1 of a nightly check for a catalog that is fine."""
    producer.register([tiles[X], tiles[Y]], catalog=store, collection="c", partition=partition)
    key = item_key(partition, X)
    paused = PausingStore(store, pause_before=f"delete:{key}")
    out: dict[str, object] = {}
    remover = threading.Thread(
        target=lambda: out.update(action=producer.remove(X, catalog=paused, collection="c").action)
    )
    remover.start()
    assert paused.reached.wait(30), "the remove never reached its delete"

    def finish() -> None:
        paused.resume.set()
        remover.join(30)

    reading = _FinishRemoveBeforeRead(store, key, paused, finish)
    try:
        problems = producer.validate_catalog(reading)
    finally:
        finish()
    assert out == {"action": "removed"}
    assert not store.exists(key)
    assert [str(p) for p in but_emptied(problems)] == []


@pytest.mark.parametrize(
    "store, partition",
    [("local", None), ("local", "year/month"), ("s3", None)],
    ids=["local-flat", "local-year-month", "s3-flat"],
    indirect=["store"],
)
def test_validate_that_read_the_link_before_a_remove_ran_whole_reports_no_dangling_link(
    store, tiles, partition
):
    """``validate`` (and the last audit of ``reconcile --fix``) has read the
    document linking X when a remove runs whole (mark, unlink, delete); the
    walk then finds X gone. Before: a ``dangling-link`` error, exit 1, for a
    catalog that never had one. Now the walk reads the parent again on a
    missing target, and a link that is gone is no problem."""
    producer.register([tiles[X], tiles[Y]], catalog=store, collection="c", partition=partition)
    parent = "c/2024/03/catalog.json" if partition else "c/collection.json"
    held = PauseAfterGet(store, parent)
    out: dict[str, object] = {}
    walker = threading.Thread(target=lambda: out.update(problems=producer.validate_catalog(held)))
    walker.start()
    assert held.reached.wait(30)
    try:
        assert producer.remove(X, catalog=store, collection="c").action == "removed"
    finally:
        held.resume.set()
        walker.join(30)
    errors = [str(p) for p in out["problems"] if p.is_error]  # type: ignore[attr-defined]
    assert errors == []
    # a link to a document deleted by hand is still one
    producer.register([tiles[X]], catalog=store, collection="c", partition=partition)
    store.delete(item_key(partition, X))
    assert [p.kind for p in producer.validate_catalog(store) if p.is_error] == ["dangling-link"]


@pytest.mark.parametrize(
    "store, partition",
    [("local", None), ("local", "year/month"), ("s3", None)],
    ids=["local-flat", "local-year-month", "s3-flat"],
    indirect=["store"],
)
def test_validate_that_read_the_parent_before_a_register_linked_its_item_reports_no_orphan(
    store, tiles, partition
):
    """A register has written X (listed by ``validate``), and links it just
    after the walk read the document that now links it. Before: an
    ``orphan`` error (exit 1) for an item that is linked; a check racing
    ingestion failed for a catalog without a problem. Now an unreached
    document is looked up in the parent its ``parent`` link names first."""
    producer.register([tiles[Y]], catalog=store, collection="c", partition=partition)
    if partition:  # X's month exists, so the register's link is one write to it
        producer.register([tiles[X]], catalog=store, collection="c", partition=partition)
        assert producer.remove(X, catalog=store, collection="c").action == "removed"
    parent = "c/2024/03/catalog.json" if partition else "c/collection.json"
    writing = PausingStore(store, pause_before=parent)
    register = threading.Thread(
        target=lambda: producer.register([tiles[X]], catalog=writing, collection="c", partition=partition)
    )
    register.start()
    assert writing.reached.wait(30)
    held = PauseAfterGet(store, parent)
    out: dict[str, object] = {}
    walker = threading.Thread(target=lambda: out.update(problems=producer.validate_catalog(held)))
    try:
        walker.start()
        assert held.reached.wait(30)
        writing.resume.set()
        register.join(30)
    finally:
        writing.resume.set()
        held.resume.set()
        walker.join(30)
    assert [str(p) for p in out["problems"] if p.is_error] == []  # type: ignore[attr-defined]
    # an item no document links still is an orphan
    producer.register([tiles[X]], catalog=store, collection="c", partition=partition)
    doc, _ = store.get(parent)
    coll = json.loads(doc)
    coll["links"] = [link for link in coll["links"] if X not in link.get("href", "")]
    store.put(parent, json.dumps(coll).encode())
    assert "orphan" in [p.kind for p in producer.validate_catalog(store) if p.is_error]


def test_many_dangling_links_of_one_document_read_it_again_once(tmp_path: Path) -> None:
    """Each missing target read its linking document again (one GET and one
    parse per dangling link): a collection whose item folders were deleted
    by hand, N of them, read and parsed its collection N more times (a
    partition of thousands of links: quadratic). One reading again per
    linking document, after the walk, still tells a gone link from one left."""
    from producer.store import CountingStore

    folder = tmp_path / "tiles"
    tiles = [write_tile(folder, f"t_2024030{d}.tif", 10.0 + d, 50.0) for d in range(1, 7)]
    local = LocalStore(str(tmp_path / "cat"))
    assert all(r.ok for r in producer.register(tiles, catalog=local, collection="c"))
    for d in range(1, 6):  # five of the six deleted, links left
        local.delete(f"c/t_2024030{d}/t_2024030{d}.json")
    store = CountingStore(local)
    problems = producer.validate_catalog(store)
    dangling = sorted(p.target or "" for p in problems if p.kind == "dangling-link")
    assert dangling == [f"c/t_2024030{d}/t_2024030{d}.json" for d in range(1, 6)]
    assert store.gets["c/collection.json"] <= 2, store.gets["c/collection.json"]
