"""Issue 12 points 3 and 4: the serial tail of a pooled batch. Each item's
mirror line is encoded by the thread that wrote the item, while workers
still extract, and the mirror's fragment joins those lines: the same bytes
it wrote when it encoded the batch itself after the last product."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

import producer
from producer import mirror, parallel
from producer.catalog.documents import REMOVING
from producer.changes import Change, ChangeKind, item_line
from producer.commit import Committer
from producer.ingest import validator
from producer.options import RegisterOptions
from producer.store import LocalStore
from tests import rasters
from tests.trees import assert_stac_valid_tree


class Recorder:
    """A sink keeping every change it is handed."""

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        self.changes += changes


def _fragments(store: LocalStore) -> list[bytes]:
    keys = mirror.list_fragments(store, mirror.mirror_key("c/x/x.json"))
    return [store.get(key)[0] for key in keys]


def test_a_lone_batch_hands_each_created_items_line_made_with_its_document(tmp_path) -> None:
    """Without a worker pool the writer makes a created item's mirror line
    with its document's encoding (``Committer.write_item(lines=...)``), and
    the sink joins it: the line is the committed document's, the fragment
    what the sink encodes itself. A rerun finds the items unchanged: they
    carry no line (nothing encoded for a mirror that may not need them)."""
    sources = rasters.dated_cogs(tmp_path / "data", 3)
    catalog = tmp_path / "cat"
    seen = Recorder()
    results = producer.register(sources, catalog=str(catalog), collection="c", sinks=[seen])
    assert [r.action for r in results] == ["created"] * 3, [r.error for r in results]
    assert [c.kind for c in seen.changes] == [ChangeKind.CREATED] * 3
    assert all(c.line is not None and c.line == item_line(c.item) for c in seen.changes)
    store = LocalStore(str(catalog))
    (fragment,) = _fragments(store)
    assert fragment == _reencoded(fragment, "x")
    again = Recorder()
    results = producer.register(sources, catalog=str(catalog), collection="c", sinks=[again])
    assert [r.action for r in results] == ["unchanged"] * 3
    assert all(c.line is None for c in again.changes)
    assert_stac_valid_tree(catalog)


def test_a_staged_local_batch_hands_each_items_line_made_with_its_document(tmp_path, monkeypatch) -> None:
    """A local batch of more than a few items stages its new documents
    (``Committer.stage_item``); their mirror lines come with the staged
    encoding too, and are the committed documents' lines."""
    staged: list[str] = []
    original = Committer.stage_item

    def spy(self, staging, key, item, lines=None):  # type: ignore[no-untyped-def]
        staged.append(key)
        return original(self, staging, key, item, lines)

    monkeypatch.setattr(Committer, "stage_item", spy)
    sources = rasters.dated_cogs(tmp_path / "data", 10)
    catalog = tmp_path / "cat"
    seen = Recorder()
    results = producer.register(sources, catalog=str(catalog), collection="c", sinks=[seen])
    assert [r.action for r in results] == ["created"] * 10, [r.error for r in results]
    assert len(staged) == 10
    assert len(seen.changes) == 10
    assert all(c.line is not None and c.line == item_line(c.item) for c in seen.changes)
    (fragment,) = _fragments(LocalStore(str(catalog)))
    assert fragment == _reencoded(fragment, "x")
    assert_stac_valid_tree(catalog)


def _reencoded(data: bytes, where: str) -> bytes:
    """The fragment ``data`` encoded again from its parsed items, by the
    sink's own encoder with no prepared lines."""
    header, *lines = data.decode().splitlines()
    upserts = {(item := json.loads(line))["id"]: item for line in lines}
    return mirror.encode_fragment(upserts, json.loads(header)["removed"], where)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_pooled_batch_hands_each_items_line_and_the_fragment_is_what_the_sink_encodes(
    tmp_path, kind, monkeypatch
):
    if kind == "process" and parallel._fork_context() is None:
        pytest.skip("needs fork")
    monkeypatch.setattr(parallel, "EXTRACT_KIND", kind)
    sources = rasters.dated_cogs(tmp_path / "data", 12)
    catalog = tmp_path / "cat"
    seen = Recorder()
    results = producer.register(
        sources, catalog=str(catalog), collection="c", options=RegisterOptions(workers=2), sinks=[seen]
    )
    assert [r.action for r in results] == ["created"] * 12, [r.error for r in results]
    # the writer's line is the committed document's, for every item
    assert len(seen.changes) == 12
    assert all(c.line is not None and c.line == item_line(c.item) for c in seen.changes)
    store = LocalStore(str(catalog))
    (fragment,) = _fragments(store)
    assert fragment == _reencoded(fragment, "x")
    assert [json.loads(line)["id"] for line in fragment.decode().splitlines()[1:]] == [r.id for r in results]
    assert_stac_valid_tree(catalog)


def test_mirror_sink_joins_prepared_lines_and_encodes_the_rest(tmp_path):
    store = LocalStore(str(tmp_path / "cat"))
    items = [
        {
            "type": "Feature",
            "id": f"i{n}",
            "properties": {"updated": f"2024-01-0{n + 1}T00:00:00Z", "v": [n, 1.5, "é"]},
        }
        for n in range(4)
    ]
    changes = [
        Change(
            ChangeKind.CREATED,
            "c",
            it["id"],
            f"c/{it['id']}/{it['id']}.json",
            it,
            item_line(it) if n % 2 else None,
        )
        for n, it in enumerate(items)
    ]
    # a later change of i1 without a line: its line must not be the stale prepared one
    newer = {**items[1], "properties": {**items[1]["properties"], "v": 2}}
    changes.append(Change(ChangeKind.UPDATED, "c", "i1", "c/i1/i1.json", newer))
    mirror.MirrorSink(store).apply({"id": "c"}, changes)
    (fragment,) = _fragments(store)
    expected = {it["id"]: it for it in [items[0], newer, items[2], items[3]]}
    assert fragment == mirror.encode_fragment(expected, {}, "x")


class _RemovedAtSettle:
    """A local store whose first GET of item ``key`` after the collection
    was put (the settle step's check) waits until a whole ``remove`` of that
    item (mirror included) ran through another store first."""

    def __init__(self, inner: LocalStore, key: str, remove: Any) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.key, self.remove = key, remove
        self.committed = False
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        out = self.inner.put(key, data, **kwargs)
        self.committed |= key == "c/collection.json"
        return out

    def get(self, key: str) -> Any:
        if key == self.key and self.committed and not self.fired:
            self.fired = True
            self.remove()
        return self.inner.get(key)


def test_a_remove_between_a_pooled_batchs_link_and_settle_loses_in_the_mirror_too(tmp_path, monkeypatch):
    """The pooled path hands the sinks each item as the settle step left it:
    an item a racing remove took (unlinked, deleted, its tombstone in the
    mirror) is written and linked again by the settle, and the mirror gets
    that newer document, not the line encoded from the first write (whose
    older stamp loses to the tombstone: the item was then in the catalog
    but not in ``search``)."""
    monkeypatch.setattr(parallel, "EXTRACT_KIND", "thread")
    sources = rasters.dated_cogs(tmp_path / "data", 6)
    catalog = str(tmp_path / "cat")
    producer.register(sources[:1], catalog=catalog, collection="c")
    target = producer.register(sources[1:2], catalog=catalog, collection="c", dry_run=True)[0].id
    removed: list[str] = []

    def remove() -> None:
        removed.append(producer.remove(target, catalog=catalog, collection="c").action)

    racing = _RemovedAtSettle(LocalStore(catalog), f"c/{target}/{target}.json", remove)
    results = producer.register(
        sources[1:], catalog=racing, collection="c", options=RegisterOptions(workers=2)
    )
    assert all(r.ok for r in results), [r.error for r in results]
    assert racing.fired and removed == ["removed"]
    assert producer.validate_catalog(catalog) == []
    hits = {f["id"]: f for f in producer.search(catalog)["features"]}
    assert target in hits
    # the mirror holds the document the settle step wrote again, not the first write's line
    item = json.loads(LocalStore(catalog).get(f"c/{target}/{target}.json")[0])
    assert hits[target]["properties"]["updated"] == item["properties"]["updated"]
    found = set(hits)
    assert found == {r.id for r in producer.register(sources, catalog=catalog, collection="c", dry_run=True)}


def test_local_settle_one_by_one_still_rewrites_an_item_marked_or_deleted_after_the_write(tmp_path):
    """Guard for the serial settle of a local store: an item a concurrent
    remove marked, and one it deleted, after this committer wrote them are
    written again and left unmarked; the untouched one is not rewritten."""
    sources = rasters.dated_cogs(tmp_path / "data", 3)
    catalog = tmp_path / "cat"
    results = producer.register(sources, catalog=str(catalog), collection="c")
    assert all(r.ok for r in results)
    store = LocalStore(str(catalog))
    committer = Committer(store, validator().check)
    keys = [f"c/{r.id}/{r.id}.json" for r in results]
    items = []
    for key in keys:
        data, version = store.get(key)
        committer.written_versions[key] = version
        items.append((key, json.loads(data)))
    marked = json.loads(store.get(keys[0])[0])
    marked["properties"][REMOVING] = True
    store.put(keys[0], json.dumps(marked).encode())
    store.delete(keys[1])
    untouched = store.get(keys[2])[1]
    redone = committer.settle_batch("c", items, None, threads=16)
    assert sorted(redone) == sorted(keys[:2])
    for key in keys:
        assert REMOVING not in json.loads(store.get(key)[0])["properties"]
    assert store.get(keys[2])[1] == untouched
    assert_stac_valid_tree(catalog)


class _RemovedAtSecondGet(_RemovedAtSettle):
    """:class:`_RemovedAtSettle`, firing before the second GET of ``key``
    instead (the first is the write's look at what is there, the second the
    settle step's check; an unchanged item puts no collection)."""

    gets = 0

    def get(self, key: str) -> Any:
        if key == self.key:
            self.gets += 1
            if self.gets == 2 and not self.fired:
                self.fired = True
                self.remove()
        return self.inner.get(key)


def test_an_unchanged_item_a_racing_remove_took_goes_to_every_sink_as_created(tmp_path):
    """Registering a product again finds its item unchanged; a remove between
    that write and the settle step deletes it, and the settle step writes and
    links it again. Every sink saw the remover's ``removed``, so every sink
    gets the item as ``created`` (as ``unchanged`` it reached only the sinks
    that take unchanged items: notifications never heard it came back)."""
    sources = rasters.dated_cogs(tmp_path / "data", 2)
    catalog = str(tmp_path / "cat")
    producer.register(sources, catalog=catalog, collection="c")
    target = producer.register(sources[1:2], catalog=catalog, collection="c", dry_run=True)[0].id
    removed: list[str] = []

    def remove() -> None:
        removed.append(producer.remove(target, catalog=catalog, collection="c").action)

    racing = _RemovedAtSecondGet(LocalStore(catalog), f"c/{target}/{target}.json", remove)
    seen = Recorder()
    (result,) = producer.register(sources[1:2], catalog=racing, collection="c", sinks=[seen])
    assert result.ok, result.error
    assert racing.fired and removed == ["removed"]
    assert [(c.kind, c.item_id) for c in seen.changes] == [(ChangeKind.CREATED, target)]
    item = json.loads(LocalStore(catalog).get(f"c/{target}/{target}.json")[0])
    assert seen.changes[0].item["properties"]["updated"] == item["properties"]["updated"]
    assert producer.validate_catalog(catalog) == []
    assert target in {f["id"] for f in producer.search(catalog)["features"]}


@pytest.mark.parametrize("count", [3, 10])  # 10: a staged batch
def test_created_items_with_hrefs_made_relative_hand_lines_of_the_committed_documents(
    tmp_path, count
) -> None:
    """rv36: data inside the catalog folder and a rendered thumbnail, so the
    stored document differs from the committed one (hrefs made relative):
    a line handed with a change is always the committed item's, and the
    fragment is what the sink encodes itself, lone and staged, first run
    and rerun (unchanged), with non-ASCII in the items."""
    catalog = tmp_path / "cat"
    sources = rasters.dated_cogs(catalog / "données", count)
    seen = Recorder()
    options = RegisterOptions(thumbnail=True)
    results = producer.register(sources, catalog=str(catalog), collection="c", sinks=[seen], options=options)
    assert [r.action for r in results] == ["created"] * count, [r.error for r in results]
    assert len(seen.changes) == count
    assert all(c.line is None or c.line == item_line(c.item) for c in seen.changes)
    stored = [json.loads((catalog / k).read_text()) for k in (c.key for c in seen.changes)]
    assert any(not a["href"].startswith(("/", "file:")) for doc in stored for a in doc["assets"].values()), (
        "no href was made relative: the test does not test what it says"
    )
    (fragment,) = _fragments(LocalStore(str(catalog)))
    assert fragment == _reencoded(fragment, "x")
    again = Recorder()
    producer.register(sources, catalog=str(catalog), collection="c", sinks=[again], options=options)
    assert all(c.line is None or c.line == item_line(c.item) for c in again.changes)
    assert_stac_valid_tree(catalog)
