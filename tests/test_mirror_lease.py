"""The mirror's compaction lease (issue 12): one writer compacts a partition
while the others skip, an expired lease is taken over by compare-and-swap,
and readers, validate and reconcile ignore the lease object."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import producer
from producer import mirror
from producer.changes import Change, ChangeKind
from producer.mirror import MirrorSink, compact_leased, lease_key, rebuild, release_lease, take_lease
from producer.store import open_store
from producer.store.base import Store
from tests.crashes import write_tile

BASE = "c/items.parquet"


@pytest.fixture
def catalog(tmp_path: Path) -> tuple[Path, Store]:
    folder = tmp_path / "tiles"
    tiles = [write_tile(folder, f"t{i}_2024011{i}.tif", 6.0 + i, 46.0) for i in range(3)]
    root = tmp_path / "cat"
    producer.register(tiles, catalog=str(root), collection="c")
    store = open_store(str(root))
    rebuild(store, "c", only_stale=False)
    return root, store


def _released(store: Store) -> bool:
    """The lease is released: on a local store it stays, expired (it keeps
    the fragments folder, mr37: before, it was deleted), so any writer takes it."""
    data, _ = store.get(lease_key(BASE))
    return json.loads(data)["expires"] < time.time() - mirror.LEASE_SECONDS


def _edit_all(store: Store, sink: MirrorSink, tag: str) -> None:
    """One UPDATED change per item, each applied alone (one fragment each)."""
    items = [doc for _, doc in mirror.walk_collection(store, "c") if doc.get("type") == "Feature"]
    for n, item in enumerate(sorted(items, key=lambda d: d["id"]), start=1):
        item = json.loads(json.dumps(item))
        item["properties"]["updated"] = f"2099-0{n}-01T00:00:00Z"
        item["properties"]["title"] = f"{tag} {n}"
        key = f"c/{item['id']}/{item['id']}.json"
        sink.apply({}, [Change(ChangeKind.UPDATED, "c", item["id"], key, item)])


def test_a_writer_that_finds_the_lease_held_writes_its_fragment_and_does_not_compact(catalog) -> None:
    root, store = catalog
    held = take_lease(store, BASE)
    assert held is not None
    _edit_all(store, MirrorSink(store, compact_after=1, check_every=1), "edit")
    assert len(mirror.list_fragments(store, BASE)) == 3  # nothing folded while held
    rows, _ = mirror.read_mirror(store, BASE)
    assert sorted(it["properties"]["title"] for it in rows.values()) == ["edit 1", "edit 2", "edit 3"]
    release_lease(store, BASE, held)
    assert _released(store)
    assert compact_leased(store, BASE) is True
    assert mirror.list_fragments(store, BASE) == [] and _released(store)


def test_only_one_of_two_writers_takes_the_lease_and_an_expired_one_is_taken_over_once(catalog) -> None:
    _, store = catalog
    now = time.time()
    first = take_lease(store, BASE, now)
    assert first is not None
    assert take_lease(store, BASE, now + 1) is None  # held, not expired
    late = now + mirror.LEASE_SECONDS + 1  # the holder died: expired
    data, stale = store.get(lease_key(BASE))
    taken = take_lease(store, BASE, late)
    assert taken is not None and taken != first
    # a second writer that read the expired lease before the takeover loses its put
    with pytest.raises(producer.errors.PreconditionFailed):
        store.put(lease_key(BASE), data, if_version=stale)
    assert take_lease(store, BASE, late) is None
    release_lease(store, BASE, first)  # the dead holder's release leaves the new lease
    assert store.exists(lease_key(BASE))
    release_lease(store, BASE, taken)
    assert _released(store)
    assert take_lease(store, BASE, now) is not None  # a released lease is taken at once


def test_validate_reconcile_and_search_ignore_a_lease_object(catalog) -> None:
    root, store = catalog
    assert take_lease(store, BASE) is not None
    assert producer.validate_catalog(str(root)) == []
    report = producer.reconcile(str(root))
    assert report.problems == [] and report.found == {}
    fixed = producer.reconcile(str(root), fix=True)
    assert fixed.problems == [] and fixed.fixed == {}
    assert store.exists(lease_key(BASE))  # the fix leaves a live lease to its holder
    ids = sorted(f["id"] for f in producer.search(str(root))["features"])
    assert len(ids) == 3


def _three_fragments_on_s3(tmp_path: Path, s3_server, name: str, day: str):
    """A collection of 3 items on S3 whose mirror partition has a base and 3
    fragments (one edit each, no compaction); its URL and a plain store."""
    folder = tmp_path / "tiles"
    tiles = [write_tile(folder, f"{name}{i}_{day}{i}.tif", 6.0 + i, 46.0) for i in range(3)]
    url = f"s3://{s3_server.new_bucket()}/stac"
    producer.register(tiles, catalog=url, collection="c", storage_options=s3_server.storage_options)
    plain = open_store(url, s3_server.storage_options)
    rebuild(plain, "c", only_stale=False)
    _edit_all(plain, MirrorSink(plain, compact_after=-1), "edit")
    assert len(mirror.list_fragments(plain, BASE)) == 3
    return url, plain


def test_a_leased_compaction_on_s3_deletes_its_fragments_with_one_request(tmp_path: Path, s3_server) -> None:
    """On S3 the folded fragments go in one DeleteObjects (a HEAD and a
    DELETE each before), and the lease is created and deleted around it."""
    from tests.faultproxy import FaultProxy

    url, plain = _three_fragments_on_s3(tmp_path, s3_server, "s", "2024021")
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = {
            **s3_server.storage_options,
            "client_kwargs": {
                **s3_server.storage_options["client_kwargs"],
                "endpoint_url": proxy.endpoint_url,
            },
        }
        assert compact_leased(open_store(url, options), BASE) is True
        trace = list(proxy.trace)
    lines = [f"{m} {p} {q}" for m, p, q in trace]
    frag_requests = [(m, q) for m, p, q in trace if "/items-fragments/" in p and not p.endswith(".lease")]
    assert [m for m, _ in frag_requests if m in ("HEAD", "DELETE")] == [], lines
    assert len([q for m, _, q in trace if m == "POST" and "delete" in q]) == 1, lines
    assert [m for m, p, _ in trace if p.endswith("/compacting.lease")] == ["GET", "PUT", "DELETE"], lines
    assert mirror.list_fragments(plain, BASE) == [] and not plain.exists(lease_key(BASE))
    rows, _ = mirror.read_mirror(plain, BASE)
    assert sorted(it["properties"]["title"] for it in rows.values()) == ["edit 1", "edit 2", "edit 3"]


def test_a_compaction_on_s3_reads_its_fragments_at_once(tmp_path: Path, s3_server) -> None:
    """The fragments of a partition are read in parallel on S3 (a compaction
    of 32+ fragments was one round trip per fragment, in turn, on the
    critical path of the writer that compacts). The first fragment's GET is
    held here until another one has started (before: none started while it
    was held); the fold is the same."""
    import threading

    url, plain = _three_fragments_on_s3(tmp_path, s3_server, "p", "2024031")
    frags = mirror.list_fragments(plain, BASE)
    started: list[str] = []
    second = threading.Event()
    overlapped: list[bool] = []

    class Held:
        def __init__(self, inner: Store) -> None:
            self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def get(self, key: str) -> tuple[bytes, str]:
            if key in frags:
                started.append(key)
                if len(started) == 1:
                    overlapped.append(second.wait(2))
                else:
                    second.set()
            return self.inner.get(key)

    part = mirror.read_partition(Held(plain), BASE)
    assert overlapped == [True]
    assert [info.key for info, _ in part.fragments] == frags  # in the listing's order
    assert compact_leased(Held(plain), BASE) is True
    rows, _ = mirror.read_mirror(plain, BASE)
    assert sorted(it["properties"]["title"] for it in rows.values()) == ["edit 1", "edit 2", "edit 3"]
    assert mirror.list_fragments(plain, BASE) == []


def test_a_local_partitions_fragments_are_read_one_at_a_time(tmp_path: Path, monkeypatch) -> None:
    """On a local store the fragments are read as they are folded (one
    fragment's bytes in memory at a time, as before the parallel reads)."""
    from producer.store.local import LocalStore

    store = LocalStore(str(tmp_path / "cat"))
    keys = [f"c/items-fragments/{i}.ndjson" for i in range(3)]
    for key in keys:
        store.put(key, key.encode())
    read: list[str] = []
    real_get = store.get

    def get(key: str):  # records the order; the real read runs
        read.append(key)
        return real_get(key)

    monkeypatch.setattr(store, "get", get)
    lazy = iter(mirror._read_fragments(store, [*keys, "c/items-fragments/gone.ndjson"]))
    assert read == []
    assert next(lazy) == keys[0].encode() and read == keys[:1]
    assert list(lazy) == [keys[1].encode(), keys[2].encode(), None]
