"""What one commit costs on S3, counted request by request (issue 12, point 2).

A register goes through ``tests/faultproxy.py`` (no faults: it forwards and
records every request) in front of moto on 127.0.0.1. The commit path alone
is measured: ``ingest.register_products`` without sinks (the mirror's
requests are its own module's business).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import producer
from producer import ingest
from producer.catalog import intents
from producer.catalog.layout import intent_key
from producer.commit import contended
from producer.errors import PreconditionFailed
from producer.options import RegisterOptions
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.store.s3 import S3Store
from tests.crashes import write_tile
from tests.faultproxy import FaultProxy
from tests.trees import assert_stac_valid_tree

COLL = "c/collection.json"


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("req-tiles")
    return [
        write_tile(folder, f"r{i}_202405{10 + i:02d}.tif", 5.0 + i * 0.5, 45.0 + i * 0.3) for i in range(6)
    ]


def _register(path: Path, catalog: str | Store, options: dict | None = None) -> None:
    opts = RegisterOptions(catalog_storage_options=options) if options else RegisterOptions()
    (res,) = ingest.register_products([str(path)], catalog=catalog, collection="c", options=opts)
    assert res.ok, res.error


def _linked(store: Store) -> list[str]:
    coll = json.loads(store.get(COLL)[0])
    return sorted(link["href"] for link in coll["links"] if link["rel"] == "item")


def test_a_lone_register_into_an_existing_s3_collection_puts_no_intent_and_makes_at_most_6_requests(
    s3_server, tiles
):
    """Lone writer, collection there: GET collection (layout) with GET root
    + LIST intents beside it (preflight reuses all three), PUT item,
    PUT collection (plain compare-and-swap), GET item (settle a racing
    remove). Before: a second collection GET, an intent PUT, two LISTs,
    another collection GET and a HEAD + DELETE of the intent on top (12)."""
    prefix = f"req-{uuid.uuid4().hex[:8]}"
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = {
            **s3_server.storage_options,
            "client_kwargs": {
                **s3_server.storage_options["client_kwargs"],
                "endpoint_url": proxy.endpoint_url,
            },
        }
        catalog = s3_server.url(prefix)
        _register(tiles[0], catalog, options)  # creates root and collection
        assert not contended(open_store(catalog, options).url, "c")
        proxy.clear()
        _register(tiles[1], catalog, options)
        trace = list(proxy.trace)
    lines = [f"{m} {p} {q}" for m, p, q in trace]
    assert not [m for m, p, _ in trace if "/_intents/" in p], lines  # no intent written, read or deleted
    lists = [q for m, p, q in trace if m == "GET" and "list-type" in q]
    assert len(lists) == 1 and "_intents/" in lists[0], lines  # one listing, folder only
    assert len(trace) <= 6, lines
    store = open_store(catalog, s3_server.storage_options)
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[:2])
    assert producer.validate_catalog(catalog, storage_options=s3_server.storage_options) == []


class Overtaken:
    """A real store whose first conditional put of the collection is preceded,
    just before it is sent, by another register of ``other`` (a concurrent
    writer that wins the race). Counts lost conditional puts and records the
    keys written."""

    def __init__(self, inner: Store, other: Path) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.other = other
        self.fired = threading.Event()
        self.conflicts = 0
        self.puts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        if key == COLL and kwargs.get("if_version") and not self.fired.is_set():
            self.fired.set()
            _register(self.other, self.inner)  # the other writer, through the plain store
        try:
            version = self.inner.put(key, data, **kwargs)
        except PreconditionFailed:
            self.conflicts += 1
            raise
        self.puts.append(key)
        return version


def test_a_writer_that_loses_its_plain_compare_and_swap_announces_an_intent_and_keeps_doing_so(
    tmp_path, tiles
):
    """The optimistic put lost to another writer: it counts as a conflict, the
    change is committed through an intent all the same, and the process
    keeps announcing intents on that collection while contention is recent."""
    root = tmp_path / "cat"
    plain = LocalStore(str(root))
    _register(tiles[2], plain)
    assert not contended(plain.url, "c")
    racing = Overtaken(LocalStore(str(root)), tiles[3])
    _register(tiles[4], racing)
    assert racing.fired.is_set() and racing.conflicts == 1
    assert [k for k in racing.puts if "/_intents/" in k], racing.puts  # went on through an intent
    assert contended(plain.url, "c")
    after = Overtaken(LocalStore(str(root)), tiles[3])
    after.fired.set()  # no more racing: still announces (contention is recent)
    _register(tiles[5], after)
    assert [k for k in after.puts if "/_intents/" in k] and after.conflicts == 0
    assert _linked(plain) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[2:6])
    assert [k for k in plain.list("c/_intents/")] == []
    assert producer.validate_catalog(str(root)) == []
    assert_stac_valid_tree(root)


def test_intent_keys_sort_by_their_writers_clock_and_an_old_format_key_has_no_time():
    """The group commit's leader (oldest pending intent) is read off the keys
    of a listing: no intent is read to decide who waits."""
    t0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    keys = [intent_key("c", intents.new_token(t0 + timedelta(seconds=s))) for s in (5, 0.001, 60, 0)]
    assert sorted(keys) == [keys[3], keys[1], keys[0], keys[2]]
    assert [intents.key_time(k) for k in sorted(keys)] == [
        t0,
        t0 + timedelta(milliseconds=1),
        t0 + timedelta(seconds=5),
        t0 + timedelta(seconds=60),
    ]
    assert intents.key_time(intent_key("c", "0" * 32)) is None  # written by an older version


def test_a_batch_on_s3_settles_its_items_with_one_listing_instead_of_a_get_each(s3_server, tiles):
    """After the link, a concurrent remove is ruled out for the whole batch
    by one ListObjectsV2 (each item listed with the ETag this writer put),
    not by a GET of every item."""
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = {
            **s3_server.storage_options,
            "client_kwargs": {
                **s3_server.storage_options["client_kwargs"],
                "endpoint_url": proxy.endpoint_url,
            },
        }
        catalog = s3_server.url(f"req-{uuid.uuid4().hex[:8]}")
        opts = RegisterOptions(catalog_storage_options=options)
        results = ingest.register_products(
            [str(t) for t in tiles], catalog=catalog, collection="c", options=opts
        )
        trace = list(proxy.trace)
    assert [r.action for r in results] == ["created"] * len(tiles)
    item_gets = [
        p for m, p, q in trace if m in ("GET", "HEAD") and "list-type" not in q and p.endswith(".json")
    ]
    assert [p for p in item_gets if not p.endswith(("/catalog.json", "/collection.json"))] == []
    assert len([q for m, _, q in trace if "list-type" in q and "prefix=" in q and "_intents" not in q]) == 1
    store = open_store(catalog, s3_server.storage_options)
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles)
    assert producer.validate_catalog(catalog, storage_options=s3_server.storage_options) == []


class RemovedBeforeTheListing:
    """A real S3 store whose first ``list_versions`` is preceded by a complete
    ``remove`` of one item of the batch (marked, unlinked, deleted by another
    process, between the register's link and its settle step)."""

    def __init__(self, inner: S3Store, victim: str) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.victim = victim
        self.removed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list_versions(self, prefix: str) -> Any:
        if not self.removed:
            self.removed.append(producer.remove(self.victim, catalog=self.inner, collection="c").action)
        return self.inner.list_versions(prefix)


def test_a_remove_that_finishes_before_the_settle_listing_still_loses_to_the_register(s3_server, tiles):
    """The listing misses the removed item, so it is settled one by one as
    before: written again and linked (a register racing a remove wins)."""
    catalog = s3_server.url(f"req-{uuid.uuid4().hex[:8]}")
    store = RemovedBeforeTheListing(S3Store(catalog, s3_server.storage_options), tiles[1].stem)
    opts = RegisterOptions(catalog_storage_options=s3_server.storage_options)
    results = ingest.register_products([str(t) for t in tiles], catalog=store, collection="c", options=opts)
    assert store.removed == ["removed"]
    assert [r.action for r in results] == ["created"] * len(tiles)
    inner = open_store(catalog, s3_server.storage_options)
    assert _linked(inner) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles)
    assert inner.exists(f"c/{tiles[1].stem}/{tiles[1].stem}.json")
    assert producer.validate_catalog(catalog, storage_options=s3_server.storage_options) == []


def test_a_writer_that_applies_other_writers_intents_deletes_them_all_with_one_request_on_s3(
    s3_server, tiles
):
    """Three writers died right after announcing their items (fresh intents
    pending); the next register applies all three with its own change and
    deletes the four intents with one DeleteObjects (POST ?delete), where it
    sent one DELETE each. ``delete_many`` of a key already gone is no error."""
    prefix = f"req-{uuid.uuid4().hex[:8]}"
    catalog = s3_server.url(prefix)
    plain = open_store(catalog, s3_server.storage_options)
    _register(tiles[0], plain)
    for path in tiles[1:4]:
        _died_after_intent(plain, path)
    assert len(list(plain.list(intent_key("c") + "/"))) == 3
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = {
            **s3_server.storage_options,
            "client_kwargs": {
                **s3_server.storage_options["client_kwargs"],
                "endpoint_url": proxy.endpoint_url,
            },
        }
        _register(tiles[4], catalog, options)
        trace = list(proxy.trace)
    lines = [f"{m} {p} {q}" for m, p, q in trace]
    assert [m for m, p, _ in trace if m == "DELETE"] == [], lines
    assert len([q for m, _, q in trace if m == "POST" and "delete" in q]) == 1, lines
    assert list(plain.list(intent_key("c") + "/")) == []
    assert _linked(plain) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[:5])
    assert producer.validate_catalog(catalog, storage_options=s3_server.storage_options) == []
    store = S3Store(catalog, s3_server.storage_options)
    store.put("x/a.json", b"{}")
    assert store.delete_many(["x/a.json", "x/gone.json"]) == {}
    assert not store.exists("x/a.json")


def _died_after_intent(store: Store, path: Path) -> None:
    """Register ``path`` into ``store``, killed right after its intent is written."""
    from producer.catalog.layout import is_intent_key
    from producer.commit import note_contention
    from tests.crashes import SimulatedKill

    class Kill:
        def __init__(self, inner: Store) -> None:
            self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put(self, key: str, data: bytes, **kwargs: Any) -> str:
            version = self.inner.put(key, data, **kwargs)
            if is_intent_key(key):
                raise SimulatedKill(f"killed after {key}")
            return version

    note_contention(store.url, "c")  # announce an intent instead of a plain put
    with pytest.raises(SimulatedKill):
        _register(path, Kill(store))
