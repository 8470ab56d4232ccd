"""How many requests a register on S3 makes one after another (issue 12,
point 2): its depth, not its count. Requests that depend on nothing the
other returns go out together; each request here is held 0.15 s, so a
request that waited for another starts after it ended, and the depth is the
longest chain of such requests. S3 through moto on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import producer
from producer import ingest
from producer.changes import Sink
from producer.commit import note_contention
from producer.mirror import MirrorSink
from producer.options import RegisterOptions
from producer.store import open_store
from producer.store.base import Store
from tests.crashes import write_tile

HOLD = 0.15


class Timed:
    """A real S3 store whose every request is held ``HOLD`` seconds before it
    is sent (a slow network), recording ``(kind, key, start, end)``."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.calls: list[tuple[str, str, float, float]] = []
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _timed(self, kind: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        time.sleep(HOLD)
        try:
            out = fn(*args, **kwargs)
            return list(out) if kind == "list" else out
        finally:
            with self.lock:
                self.calls.append((kind, key, start, time.monotonic()))

    def get(self, key: str) -> Any:
        return self._timed("get", key, self.inner.get, key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        return self._timed("put", key, self.inner.put, key, data, **kwargs)

    def delete(self, key: str, **kwargs: Any) -> Any:
        return self._timed("delete", key, self.inner.delete, key, **kwargs)

    def list(self, prefix: str = "") -> Any:
        return self._timed("list", prefix, self.inner.list, prefix)

    def list_versions(self, prefix: str = "") -> Any:
        return self._timed("list", prefix, self.inner.list_versions, prefix)

    def exists(self, key: str) -> Any:
        return self._timed("exists", key, self.inner.exists, key)

    def delete_many(self, keys: list[str]) -> Any:
        return self._timed("delete_many", ",".join(keys), self.inner.delete_many, keys)

    def depth(self) -> int:
        """The longest chain of requests each started after the one before ended."""
        calls = sorted(self.calls, key=lambda c: c[2])
        deep: list[int] = []
        for i, (_, _, start, _) in enumerate(calls):
            before = [deep[j] for j in range(i) if calls[j][3] <= start]
            deep.append(1 + max(before, default=0))
        return max(deep, default=0)


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("depth-tiles")
    return [
        write_tile(folder, f"d{i}_202405{10 + i:02d}.tif", 5.0 + i * 0.5, 45.0 + i * 0.3) for i in range(3)
    ]


def _register(path: Path, store: Store, sinks: list[Sink]) -> None:
    (res,) = ingest.register_products(
        [str(path)], catalog=store, collection="c", options=RegisterOptions(), sinks=sinks
    )
    assert res.ok, res.error


def test_a_lone_register_into_an_existing_s3_collection_with_its_mirror_is_4_requests_deep(s3_server, tiles):
    """GET collection + GET root + LIST intents (together: the layout's read
    and what preflight needs), PUT item, PUT collection, then the settle's
    GET item beside the mirror's PUT fragment (no HEAD of the base: the
    committed collection carries its asset, so the base exists). Before: 8
    deep (the root GET, the LIST, the settle before the mirror, and the
    mirror's HEAD, each a round trip of their own)."""
    catalog = s3_server.url(f"depth-{uuid.uuid4().hex[:8]}")
    plain = open_store(catalog, s3_server.storage_options)
    _register(tiles[0], plain, [MirrorSink(plain, compact_after=-1)])  # root, collection, mirror base
    timed = Timed(open_store(catalog, s3_server.storage_options))
    _register(tiles[1], timed, [MirrorSink(timed, compact_after=-1)])  # compact_after=-1: no compaction LIST
    kinds = [f"{k} {key}" for k, key, _, _ in sorted(timed.calls, key=lambda c: c[2])]
    assert len(timed.calls) == 7, kinds
    assert not [k for k in kinds if k.startswith("exists ")], kinds
    assert timed.depth() <= 4, kinds
    assert producer.validate_catalog(catalog, storage_options=s3_server.storage_options) == []
    assert {
        f["id"] for f in producer.search(catalog, storage_options=s3_server.storage_options)["features"]
    } == {t.stem for t in tiles[:2]}


class RemovedAtSettle(Timed):
    """:class:`Timed`, and the first GET of item ``key`` after the collection
    was put (the settle step's check) waits until a whole ``remove`` of that
    item (mirror included) ran through another store first."""

    def __init__(self, inner: Store, key: str, remove: Any) -> None:
        super().__init__(inner)
        self.key, self.remove = key, remove
        self.committed = threading.Event()
        self.fired = threading.Event()

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        out = super().put(key, data, **kwargs)
        if key == "c/collection.json":
            self.committed.set()
        return out

    def get(self, key: str) -> Any:
        if key == self.key and self.committed.is_set() and not self.fired.is_set():
            self.fired.set()
            self.remove()
        return super().get(key)


def test_a_remove_that_runs_between_the_link_and_the_settle_loses_in_the_catalog_and_in_the_mirror(
    s3_server, tiles
):
    """The sinks deliver while the settle step checks the item; a remove that
    ran meanwhile (unlinked, deleted, its tombstone in the mirror) makes the
    settle write and link the item again, and the sinks get it again after
    the tombstone: the register wins in the catalog AND in the mirror
    (delivering only once, beside the settle, left the mirror without it)."""
    catalog = s3_server.url(f"depth-{uuid.uuid4().hex[:8]}")
    options = s3_server.storage_options
    plain = open_store(catalog, options)
    _register(tiles[0], plain, [MirrorSink(plain, compact_after=-1)])
    stem = tiles[2].stem
    removed: list[str] = []

    def remove() -> None:
        removed.append(producer.remove(stem, catalog=catalog, collection="c", storage_options=options).action)

    racing = RemovedAtSettle(open_store(catalog, options), f"c/{stem}/{stem}.json", remove)
    _register(tiles[2], racing, [MirrorSink(racing, compact_after=-1)])
    assert racing.fired.is_set() and removed == ["removed"]
    assert producer.validate_catalog(catalog, storage_options=options) == []
    ids = {f["id"] for f in producer.search(catalog, storage_options=options)["features"]}
    assert ids == {tiles[0].stem, stem}


def test_a_contended_register_is_6_requests_deep_and_deletes_its_applied_intent_first(s3_server, tiles):
    """Under contention (the group path, here with no other writer): GET
    collection + GET root, PUT item, PUT intent + LIST + GET collection,
    PUT collection, DELETE of the applied intent (alone: other writers wait
    for it, and sent beside the settle step and the mirror it was answered
    ~30 ms later under load, measured), then the settle's GET item beside
    the mirror's PUT fragment (no HEAD of the base: the committed collection
    carries its asset): 6 deep. Before: 9. The intent is gone when the
    register returns."""
    catalog = s3_server.url(f"depth-{uuid.uuid4().hex[:8]}")
    plain = open_store(catalog, s3_server.storage_options)
    _register(tiles[0], plain, [MirrorSink(plain, compact_after=-1)])
    timed = Timed(open_store(catalog, s3_server.storage_options))
    note_contention(timed.url, "c")
    _register(tiles[1], timed, [MirrorSink(timed, compact_after=-1)])
    kinds = [f"{k} {key}" for k, key, _, _ in sorted(timed.calls, key=lambda c: c[2])]
    assert [k for k in kinds if k.startswith("put c/_intents/")], kinds  # the group path was taken
    assert [k for k in kinds if k.startswith(("delete c/_intents/", "delete_many c/_intents/"))], kinds
    assert timed.depth() <= 6, kinds
    assert list(plain.list("c/_intents/")) == []
    assert producer.validate_catalog(catalog, storage_options=s3_server.storage_options) == []
    assert {
        f["id"] for f in producer.search(catalog, storage_options=s3_server.storage_options)["features"]
    } == {t.stem for t in tiles[:2]}
