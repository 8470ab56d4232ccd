"""Partitioned collections: a product whose datetime moved it to another
period is moved, crash-safely, found through the id index in O(1) (issue 8,
point 9); two items sharing an id are an error that reconcile --fix repairs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import producer
from producer.audit import audit
from producer.catalog.layout import INTENT_DIR
from producer.sinks.notify import CallbackSink
from producer.store import CountingStore
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import copy_state, crash_runs, write_tile
from tests.trees import but_emptied

X = "x_20240310"
OLD_KEY = f"c/2024/03/{X}/{X}.json"
NEW_KEY = f"c/2023/07/{X}/{X}.json"
MOVED = "2023-07-01T00:00:00Z"


@pytest.fixture
def tile(tmp_path) -> Path:
    return write_tile(tmp_path / "tiles", f"{X}.tif", 12.0, 52.0)


@pytest.fixture
def other(tmp_path) -> Path:
    return write_tile(tmp_path / "tiles", "y_20240115.tif", 10.0, 50.0)


def register(store: Store | str, tile: Path, when: str | None = None):
    (res,) = producer.register([tile], catalog=store, collection="c", partition="year/month", datetime=when)
    assert res.ok, res.error
    return res


def items_by_key(store: Store) -> dict[str, str]:
    """key -> id of every linked item; asserts the catalog has no problem at all."""
    report = audit(store, default_validator())
    assert but_emptied(report.problems) == [], [str(p) for p in report.problems]
    assert not report.orphans
    return {key: info.id for key, info in report.items.items()}


def _catalog_lists(counting: CountingStore) -> list[str]:
    """The prefixes ``counting`` listed, but the mirror's: the mirror sink lists
    the fragment folder of each partition it wrote (to decide on compaction),
    and the group commit lists the collection's pending intents (issue 12)."""
    return sorted(
        p for p in counting.lists if p.rstrip("/").rsplit("/", 1)[-1] not in ("items-fragments", INTENT_DIR)
    )


def test_reregistering_a_product_whose_datetime_moved_it_to_another_period_moves_the_item(
    tmp_path, tile, other
):
    """Before: two items with the same id (old and new period), and validate
    said valid."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    register(store, other)
    counting = CountingStore(store)
    res = register(counting, tile, MOVED)
    assert res.action == "updated"
    assert items_by_key(store) == {NEW_KEY: X, "c/2024/01/y_20240115/y_20240115.json": "y_20240115"}
    assert not store.exists(OLD_KEY)
    # found through the id index: no listing of the collection
    assert _catalog_lists(counting) == []
    # and moving back works the same way
    register(store, tile)
    assert set(items_by_key(store)) == {OLD_KEY, "c/2024/01/y_20240115/y_20240115.json"}


def test_remove_in_a_partitioned_collection_finds_the_item_through_the_id_index(tmp_path, tile):
    """Before: remove listed the whole collection to find the item's period."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    counting = CountingStore(store)
    assert producer.remove(X, catalog=counting, collection="c").action == "removed"
    assert _catalog_lists(counting) == []
    assert items_by_key(store) == {}


def test_validate_reports_two_items_with_the_same_id_and_reconcile_keeps_the_newest(tmp_path, tile):
    """A catalog written before the id index (or by a writer that lost it)
    holds the same id in two periods. Before: validate said valid."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    if store.exists(f"c/.ids/{X}"):
        store.delete(f"c/.ids/{X}")  # as written by a version without the index
    register(store, tile, MOVED)
    problems = producer.validate_catalog(store)
    assert [p.kind for p in problems if p.is_error] == ["duplicate-id"]
    report = producer.reconcile(store, fix=True)
    assert report.fixed.get("duplicate-id") == 1
    assert items_by_key(store) == {NEW_KEY: X}  # the most recently registered one
    # the index now names the kept item: a later move finds it
    register(store, tile)
    assert items_by_key(store) == {OLD_KEY: X}


@pytest.mark.parametrize("kind", ["local", "s3-obstore"])
def test_move_killed_after_any_write_is_finished_by_rerun_and_by_reconcile(
    request, monkeypatch, tmp_path, tile, kind
):
    """Crash after each write of a move (new item, its partitions, the
    collection, the old item's mark, unlink, extent, delete, the index).
    On S3 through the obstore client (``STAC_S3_CLIENT=obstore``): its
    conditional delete of the old item goes through the default client."""
    if kind == "local":
        template: Store = LocalStore(str(tmp_path / "template"))
    else:
        from producer.store import open_store
        from producer.store.s3_obstore import CLIENT_ENV

        monkeypatch.setenv(CLIENT_ENV, "obstore")
        srv = request.getfixturevalue("s3_server")
        template = open_store(srv.url(f"move-{uuid.uuid4().hex[:8]}"), srv.storage_options)
    register(template, tile)
    points = 0
    for n, real, writes in crash_runs(
        lambda: copy_state(template), lambda store: register(store, tile, MOVED)
    ):
        points += 1
        snapshot = copy_state(real)
        register(real, tile, MOVED)
        assert items_by_key(real) == {NEW_KEY: X}, (n, writes)
        producer.reconcile(snapshot, fix=True)
        assert list(items_by_key(snapshot).values()) == [X], (n, writes)
        # and a re-run after the reconcile still ends with the item moved
        register(snapshot, tile, MOVED)
        assert items_by_key(snapshot) == {NEW_KEY: X}, (n, writes)
    assert points >= 5
    assert not any(p.name.startswith(".stac-producer.tmp") for p in tmp_path.rglob("*"))


def test_move_on_s3_finds_the_old_item_through_the_id_index(s3_server, tile):
    from producer.store import open_store

    store = open_store(s3_server.url(f"move-{uuid.uuid4().hex[:8]}"), s3_server.storage_options)
    register(store, tile)
    counting = CountingStore(store)
    register(counting, tile, MOVED)
    assert _catalog_lists(counting) == []
    assert items_by_key(store) == {NEW_KEY: X}


@pytest.mark.parametrize(
    "pattern, says",
    [
        (rf"/c/\.ids/{X}$", "its old copy is gone, but the id index entry"),
        (r"/c/2024/03/x_", "was not removed"),
    ],
    ids=["index-put", "old-copy-delete"],
)
def test_a_move_whose_last_write_fails_says_what_is_left_and_its_rerun_finishes_it(
    s3_server, tile, monkeypatch, pattern, says
):
    """A storage fault (503) on the move's last writes. Before: a failed id
    index update said the old copy "was not removed", though it was gone."""
    from producer.store import open_store
    from tests.faultproxy import FaultProxy

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    url = s3_server.url(f"move-{uuid.uuid4().hex[:8]}")
    register(open_store(url, s3_server.storage_options), tile)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.add("PUT" if "ids" in pattern else "DELETE", pattern, "503")
        options = {**s3_server.storage_options, "client_kwargs": {"endpoint_url": proxy.endpoint_url}}
        (res,) = producer.register(
            [tile],
            catalog=url,
            collection="c",
            partition="year/month",
            datetime=MOVED,
            storage_options=options,
        )
    store = open_store(url, s3_server.storage_options)
    assert res.error_type == "storage", res
    assert says in res.error and "rerun the registration" in res.error, res.error
    assert store.exists(OLD_KEY) == (says == "was not removed")
    assert register(store, tile, MOVED).ok
    assert items_by_key(store) == {NEW_KEY: X}
    assert json.loads(store.get(f"c/.ids/{X}")[0])["item"] == NEW_KEY


def test_same_id_from_another_product_in_another_period_is_refused_not_moved(tmp_path, tile):
    """Two products named alike in two folders, dated into two periods: the
    second must not 'move' (delete) the item of the first. Nothing written."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    twin = write_tile(tmp_path / "elsewhere", f"{X}.tif", 20.0, 40.0)
    before = sorted(
        (p.relative_to(tmp_path / "cat").as_posix(), p.read_bytes())
        for p in (tmp_path / "cat").rglob("*")
        if p.is_file()
    )
    (res,) = producer.register([twin], catalog=store, collection="c", partition="year/month", datetime=MOVED)
    assert not res.ok and res.error_type == "input"
    # the same rule and the same way out as within one period
    assert str(tile) in res.error and str(twin) in res.error
    assert "id_template=" in res.error and "replace=True" in res.error
    after = sorted(
        (p.relative_to(tmp_path / "cat").as_posix(), p.read_bytes())
        for p in (tmp_path / "cat").rglob("*")
        if p.is_file()
    )
    assert after == before
    assert items_by_key(store) == {OLD_KEY: X}


def test_same_id_in_two_periods_within_one_batch_is_refused_like_in_a_flat_collection(tmp_path):
    """Two products of one call mapping to one id, dated into two periods:
    the second is refused as in a flat collection (the batch decided "the
    same item" by key, which holds the period: both were created)."""
    first = write_tile(tmp_path / "x", "a_20240131.tif", 10.0, 50.0)
    second = write_tile(tmp_path / "x", "b_20240301.tif", 11.0, 50.0)
    store = LocalStore(str(tmp_path / "cat"))
    results = producer.register(
        [first, second], catalog=store, collection="c", partition="year/month", id_template="{parent}"
    )
    assert [r.action for r in results] == ["created", "error"]
    assert results[1].error_type == "input"
    assert f"maps to the same item id 'x' as {first}" in results[1].error
    assert "id_template=" in results[1].error
    assert items_by_key(store) == {"c/2024/01/x/x.json": "x"}


def test_same_id_from_another_product_in_another_period_with_replace_moves_it(tmp_path, tile):
    """replace=True works across periods as within one: the other product's
    item is replaced (moved), never left beside it under the same id."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    twin = write_tile(tmp_path / "elsewhere", f"{X}.tif", 20.0, 40.0)
    (res,) = producer.register(
        [twin], catalog=store, collection="c", partition="year/month", datetime=MOVED, replace=True
    )
    assert res.ok, res.error
    assert items_by_key(store) == {NEW_KEY: X}
    doc = json.loads((tmp_path / "cat" / NEW_KEY).read_text())
    assert doc["assets"]["data"]["href"] == str(twin)


def _kinds(changes: list) -> list[tuple[str, str, str]]:
    return [(str(c.kind), c.item_id, c.key) for c in changes]


def _registered_as_created(store: LocalStore, path) -> None:
    """Register ``path`` into MOVED's month: a new item there, ``created``
    in the result and in the change sent (no item existed to move)."""
    seen: list = []
    (res,) = producer.register(
        [path],
        catalog=store,
        collection="c",
        partition="year/month",
        datetime=MOVED,
        on_change=CallbackSink(seen.append, outbox_id="seen"),
    )
    assert res.ok, res.error
    assert res.action == "created"
    assert _kinds(seen) == [("created", X, NEW_KEY)]
    assert items_by_key(store) == {NEW_KEY: X}


def test_registering_an_id_again_after_its_removal_is_created_not_a_move(tmp_path, tile):
    """``remove`` leaves the id index entry (crash safety); the next
    registration of the id into another period found no item to move. Before:
    it said ``updated`` and sinks were sent an ``updated`` change for an item
    that did not exist."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    assert producer.remove(X, catalog=store, collection="c").action == "removed"
    # what the real run will do, said by a dry run (nothing written)
    (dry,) = producer.register(
        [tile], catalog=store, collection="c", partition="year/month", datetime=MOVED, dry_run=True
    )
    assert (dry.action, dry.href) == ("created", store.url + "/" + NEW_KEY)
    _registered_as_created(store, tile)
    assert json.loads(store.get(f"c/.ids/{X}")[0])["item"] == NEW_KEY


def test_another_product_taking_a_removed_id_in_another_period_is_created(tmp_path, tile):
    """The same with a different product taking the id: no identity check
    against an item that is gone, and ``created``."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    producer.remove(X, catalog=store, collection="c")
    twin = write_tile(tmp_path / "elsewhere", f"{X}.tif", 20.0, 40.0)
    _registered_as_created(store, twin)


def test_dry_run_of_a_move_says_updated_like_the_real_run(tmp_path, tile):
    """Before: the dry run read only the new key (absent) and said
    ``created``; the real run moves the item and says ``updated``."""
    store = LocalStore(str(tmp_path / "cat"))
    register(store, tile)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "cat").rglob("*"))
    (dry,) = producer.register(
        [tile], catalog=store, collection="c", partition="year/month", datetime=MOVED, dry_run=True
    )
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "cat").rglob("*")) == before
    seen: list = []
    (real,) = producer.register(
        [tile],
        catalog=store,
        collection="c",
        partition="year/month",
        datetime=MOVED,
        on_change=CallbackSink(seen.append, outbox_id="seen"),
    )
    assert (dry.action, dry.href) == (real.action, real.href) == ("updated", store.url + "/" + NEW_KEY)
    assert _kinds(seen) == [("removed", X, OLD_KEY), ("created", X, NEW_KEY)]
    # another product taking the id in another period: refused by the dry run as by the real run
    twin = write_tile(tmp_path / "elsewhere", f"{X}.tif", 20.0, 40.0)
    (dry,) = producer.register([twin], catalog=store, collection="c", partition="year/month", dry_run=True)
    assert not dry.ok and dry.error_type == "input"
