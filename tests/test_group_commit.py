"""Group commit of the collection document (issue 12, point 2).

A writer announces its change as an intent (``<collection>/_intents/``); the
winner of the collection's compare-and-swap applies every fresh intent it
lists. Races are forced with a paused store, crashes injected after each
write, writers run as processes against moto on 127.0.0.1.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import producer
from producer.audit import audit
from producer.catalog import intents
from producer.catalog.documents import exact_extent
from producer.catalog.layout import intent_key, is_intent_key
from producer.changes import Change
from producer.commit import note_contention
from producer.errors import PreconditionFailed
from producer.sinks.notify import CallbackSink
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import CrashingStore, SimulatedKill, copy_state, crash_runs, write_tile
from tests.trees import assert_stac_valid_tree

COLL = "c/collection.json"


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("gc-tiles")
    return [
        write_tile(folder, f"t{i}_202403{10 + i:02d}.tif", 8.0 + i * 0.7, 50.0 - i * 0.4) for i in range(12)
    ]


class Recording:
    """A real store that records its writes and counts lost conditional puts;
    with ``pause_after_intent`` it holds the caller once its intent is
    written, in the listing of the intents and the read of the collection
    that go with the announcement or follow it (``reached`` / ``resume``):
    the writer has announced, and has not yet seen what others did since."""

    def __init__(self, inner: Store, pause_after_intent: bool = False) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.puts: list[str] = []
        self.conflicts = 0
        #: keys of the conditional puts that lost, in order
        self.lost: list[str] = []
        self.pause = pause_after_intent
        self.reached, self.resume = threading.Event(), threading.Event()
        #: the item is written (what follows is the collection's commit); the intent landed
        self.item_written, self.landed = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _hold(self) -> None:
        if self.pause and self.item_written.is_set() and not self.resume.is_set():
            assert self.landed.wait(30), "the paused writer never announced its change"
            self.reached.set()
            assert self.resume.wait(30), "the test never resumed the paused writer"

    def get(self, key: str) -> tuple[bytes, str]:
        if key == COLL:
            self._hold()
        return self.inner.get(key)

    def list(self, prefix: str = "") -> Any:
        if "_intents" in prefix:
            self._hold()
        return self.inner.list(prefix)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        try:
            version = self.inner.put(key, data, **kwargs)
        except PreconditionFailed:
            self.conflicts += 1
            self.lost.append(key)
            raise
        self.puts.append(key)
        if is_intent_key(key):
            self.landed.set()
        elif key.endswith(".json") and key not in (COLL, "catalog.json"):
            self.item_written.set()
        return version


def _linked(store: Store) -> list[str]:
    coll = json.loads(store.get(COLL)[0])
    return sorted(link["href"] for link in coll["links"] if link["rel"] == "item")


def _items(store: Store) -> list[dict]:
    return [json.loads(store.get(f"c/{h[2:]}")[0]) for h in _linked(store)]


def _intents_left(store: Store) -> list[str]:
    return [k for k in store.list(intent_key("c")) if is_intent_key(k)]


def test_a_paused_writers_intent_is_applied_by_the_other_and_it_stops_without_retrying(tmp_path, tiles):
    """Writer A is held right after announcing its change; B commits, applying
    A's intent with its own. A, resumed, finds its change in the collection:
    it never writes the collection and loses no compare-and-swap."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    paused = Recording(LocalStore(str(root)), pause_after_intent=True)
    note_contention(paused.url, "c")  # A announces (B, which lists A's intent, does too)
    out: dict = {}

    def run_a() -> None:
        try:
            out["a"] = producer.register([tiles[1]], catalog=paused, collection="c")
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run_a)
    thread.start()
    try:
        assert paused.reached.wait(30), "A never announced its change"
        other = Recording(LocalStore(str(root)))
        (b,) = producer.register([tiles[2]], catalog=other, collection="c")
        assert b.ok and COLL in other.puts
    finally:
        paused.resume.set()
        thread.join(30)
    assert "error" not in out, out.get("error")
    (a,) = out["a"]
    assert a.ok and a.action == "created"
    assert COLL not in paused.puts and paused.conflicts == 0
    store = LocalStore(str(root))
    ids = sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[:3])
    assert _linked(store) == ids
    assert json.loads(store.get(COLL)[0])["extent"] == exact_extent(_items(store))
    assert _intents_left(store) == []
    assert producer.validate_catalog(str(root)) == []
    assert_stac_valid_tree(root)


def _died_after_intent(store: Store, path: Path) -> None:
    """Register ``path`` into ``store``, killed right after its intent is written."""

    class Kill(Recording):
        def put(self, key: str, data: bytes, **kwargs: Any) -> str:
            version = super().put(key, data, **kwargs)
            if is_intent_key(key):
                raise SimulatedKill(f"killed after {key}")
            return version

    note_contention(store.url, "c")  # so that it announces an intent instead of a plain put
    with pytest.raises(SimulatedKill):
        producer.register([path], catalog=Kill(store), collection="c")


def test_crash_after_each_write_with_another_writers_intent_pending(tmp_path, tiles):
    """B died after announcing its change; A's registration, killed after each
    of its writes (its intent, the collection carrying B's change too, the
    deletes of both intents, ...), is completed by a rerun and separately by
    reconcile --fix: both items linked, exact extent, nothing reported."""
    template = LocalStore(str(tmp_path / "template"))
    producer.register([tiles[3]], catalog=template, collection="c")
    _died_after_intent(template, tiles[4])
    expected = sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[3:6])

    def run(store: Store) -> None:
        (res,) = producer.register([tiles[5]], catalog=store, collection="c")
        assert res.ok, res.error

    def check(store: Store, how: str) -> None:
        report = audit(store, default_validator())
        assert report.problems == [], (how, [str(p) for p in report.problems])
        assert not report.orphans, how
        assert _linked(store) == expected, how
        assert json.loads(store.get(COLL)[0])["extent"] == exact_extent(_items(store)), how

    def fresh_copy() -> Store:
        # B died "just now" in every copy: its intent is one another writer applies
        store = copy_state(template)
        for key in _intents_left(store):
            doc = json.loads(store.get(key)[0])
            doc["written"] = datetime.now(UTC).isoformat()
            store.put(key, json.dumps(doc).encode())
        return store

    points = 0
    for n, real, writes in crash_runs(fresh_copy, run):
        points += 1
        snapshot = copy_state(real)
        run(real)
        check(real, f"rerun after write {n} {writes}")
        report = producer.reconcile(snapshot, fix=True)
        assert report.remaining == [], [str(p) for p in report.remaining]
        check(snapshot, f"reconcile --fix after write {n} {writes}")
    assert points >= 4


def test_stale_and_applied_intents_are_reported_and_cleared_by_reconcile(tmp_path, tiles):
    """An intent whose writer died an hour ago is never applied by another
    writer: validate warns, reconcile --fix links its item (an orphan) and
    deletes it; an intent already applied is deleted too."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    producer.register([tiles[6]], catalog=store, collection="c")
    _died_after_intent(store, tiles[7])
    (stale,) = _intents_left(store)
    doc = json.loads(store.get(stale)[0])
    doc["written"] = (datetime.now(UTC) - timedelta(seconds=intents.INTENT_TTL + 60)).isoformat()
    store.put(stale, json.dumps(doc).encode())
    # an intent already applied (its writer died before deleting it)
    six = f"c/{tiles[6].stem}/{tiles[6].stem}.json"
    link = {"rel": "item", "href": f"./{tiles[6].stem}/{tiles[6].stem}.json", "type": "application/geo+json"}
    applied = intent_key("c", "0" * 32)
    item = json.loads(store.get(six)[0])
    store.put(
        applied, intents.dumps(intents.new_intent("c", None, [link], [], {}, [item], datetime.now(UTC)))
    )

    producer.register([tiles[8]], catalog=store, collection="c")  # does not apply the stale one
    assert f"./{tiles[7].stem}/{tiles[7].stem}.json" not in _linked(store)
    assert _intents_left(store) == [stale]  # the applied one went with this commit
    kinds = sorted((p.kind, p.key) for p in producer.validate_catalog(str(root)))
    assert ("stale-intent", stale) in kinds
    assert not [p for p in producer.validate_catalog(str(root)) if p.is_error and p.kind == "stale-intent"]

    report = producer.reconcile(str(root), fix=True)
    # linking the orphan applies nothing stale; the intent, now applied, is deleted
    assert report.found.get("stale-intent") == 1 and report.fixed.get("orphan") == 1
    assert report.remaining == []
    assert _intents_left(store) == []
    assert f"./{tiles[7].stem}/{tiles[7].stem}.json" in _linked(store)
    assert_stac_valid_tree(root)


# --- processes against moto -----------------------------------------------------

_start: Any = None


def _init(start: Any) -> None:
    global _start
    _start = start


def _writer(catalog: str, options: dict, files: list[str]) -> tuple[list[tuple[str | None, str]], int, int]:
    """Register ``files`` one by one; the outcomes, and the collection puts
    this writer lost and won."""
    store = Recording(open_store(catalog, options))
    _start.wait(120)
    out = []
    for path in files:
        (res,) = producer.register([path], catalog=store, collection="c")
        out.append((res.id, res.action))
    return out, store.lost.count(COLL), store.puts.count(COLL)


@pytest.mark.slow
def test_writer_processes_on_s3_link_everything_once_and_every_lost_put_lost_to_a_won_one(s3_server, tiles):
    """How many puts lose depends on timing, not on the protocol alone: each
    process starts on the plain path (up to W-1 lose the first round), and
    two writers can both lead when one's token is older than the other's but
    its intent lands after the other's listing, or when a leader is slower
    than the waits. The bound that was here (fewer conflicts than writers)
    failed 1 run in 8 under load with 4 vs < 4. What the protocol does
    guarantee, whatever the timing: a writer puts the collection at most
    once per commit, and a put loses only to another writer's won put
    (each won put makes at most W-1 others lose; no writer loses to
    nothing). Conflicts per item are measured by bench/concurrency.py; the
    stop-after-a-lost-put rule is forced deterministically by
    test_a_paused_writers_intent_is_applied_by_the_other_and_it_stops_without_retrying."""
    writers = 4
    catalog = s3_server.url(f"gc-{uuid.uuid4().hex[:8]}")
    options = s3_server.storage_options
    producer.register([str(tiles[0])], catalog=catalog, collection="c", storage_options=options)
    shares = [[str(t) for t in tiles[1 + w :: writers]][:2] for w in range(writers)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(writers, initializer=_init, initargs=(ctx.Barrier(writers),)) as pool:
        done = pool.starmap(_writer, [(catalog, options, share) for share in shares], chunksize=1)
    outcomes = [o for share, _, _ in done for o in share]
    assert [o for o in outcomes if o[1] != "created"] == []
    store = open_store(catalog, options)
    want = sorted(f"./{Path(p).stem}/{Path(p).stem}.json" for share in shares for p in share)
    assert _linked(store) == sorted([*want, f"./{tiles[0].stem}/{tiles[0].stem}.json"])
    assert json.loads(store.get(COLL)[0])["extent"] == exact_extent(_items(store))
    lost, won = sum(d[1] for d in done), sum(d[2] for d in done)
    assert 1 <= won <= len(outcomes)
    assert lost <= (writers - 1) * won
    assert _intents_left(store) == []
    assert producer.validate_catalog(catalog, storage_options=options) == []


def test_removed_item_of_a_dead_writer_is_not_relinked_by_the_next_register(tmp_path, tiles):
    """Writer A dies right after announcing its item (fresh intent); the item
    is removed; writer B then registers another item. B must not apply A's
    intent: the tree has no dangling link, and the remove deleted it."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    producer.register([tiles[9]], catalog=store, collection="c")
    _died_after_intent(store, tiles[10])
    assert len(_intents_left(store)) == 1
    removed = producer.remove(tiles[10].stem, catalog=str(root), collection="c")
    assert removed.action == "removed"
    assert _intents_left(store) == []  # the remove took the announcement back
    producer.register([tiles[11]], catalog=str(root), collection="c")
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in (tiles[9], tiles[11]))
    assert producer.validate_catalog(str(root)) == []
    assert_stac_valid_tree(root)


def test_an_intent_left_by_a_failed_delete_is_logged_with_the_python_spelling(tmp_path, tiles, caplog):
    """The library's log says how to clear the leftover intent in Python
    (``reconcile(fix=True)``), never with the CLI's ``--fix`` flag."""

    class NoIntentDeletes(Recording):
        def delete(self, key: str, **kwargs: Any) -> None:
            if is_intent_key(key):
                raise OSError("delete refused")
            self.inner.delete(key, **kwargs)

    root = tmp_path / "cat"
    with caplog.at_level("WARNING", logger="producer"):
        (res,) = producer.register([tiles[0]], catalog=NoIntentDeletes(LocalStore(str(root))), collection="c")
    assert res.ok, res.error
    (line,) = [r.getMessage() for r in caplog.records if "intent" in r.getMessage()]
    assert "reconcile(fix=True)" in line and "--fix" not in line
    report = producer.reconcile(str(root), fix=True)
    assert report.remaining == [] and _intents_left(LocalStore(str(root))) == []
    assert_stac_valid_tree(root)


def test_a_writer_waiting_for_the_leader_heads_only_the_leaders_intent_and_the_leader_applies_and_deletes_both(
    tmp_path, tiles
):
    """A announced first (the leader) and is held; B announces after it. B
    learns from the listing's keys alone that A leads, so it reads no
    intent while it waits: each look is a HEAD of A's intent (no GET of the
    collection, no listing). A, resumed during B's first look, applies both
    changes and deletes both intents; B sees A's intent gone, reads the
    collection once, finds its change, and neither puts the collection nor
    deletes anything."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    paused = Recording(LocalStore(str(root)), pause_after_intent=True)
    note_contention(paused.url, "c")  # both announce intents
    out: dict = {}

    def run_a() -> None:
        try:
            out["a"] = producer.register([tiles[1]], catalog=paused, collection="c")
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run_a)

    class B(Recording):
        gets: list[str]
        heads: list[str]
        deletes: list[str]

        def get(self, key: str) -> tuple[bytes, str]:
            if self.item_written.is_set():  # from the announcement on (it goes with a read)
                self.gets.append(key)
            return self.inner.get(key)

        def exists(self, key: str) -> bool:
            if is_intent_key(key):
                self.heads.append(key)
                if len(self.heads) == 1:  # the first look of its wait
                    paused.resume.set()
                    thread.join(30)
            return self.inner.exists(key)

        def delete(self, key: str, **kwargs: Any) -> None:
            self.deletes.append(key)
            self.inner.delete(key, **kwargs)

    thread.start()
    try:
        assert paused.reached.wait(30), "A never announced its change"
        other = B(LocalStore(str(root)))
        other.gets, other.heads, other.deletes = [], [], []
        (b,) = producer.register([tiles[2]], catalog=other, collection="c")
    finally:
        paused.resume.set()
        thread.join(30)
    assert "error" not in out, out.get("error")
    assert b.ok and out["a"][0].ok
    leader = [k for k in paused.puts if is_intent_key(k)]
    assert len(leader) == 1 and other.heads == leader  # one look, at the leader's intent
    assert [k for k in other.gets if is_intent_key(k)] == []  # B read no intent
    # after announcing: the read beside the listing, and one after its intent was gone
    assert other.gets.count(COLL) == 2
    assert other.deletes == []  # the leader deleted B's intent with its own
    assert COLL not in other.puts and COLL in paused.puts  # A applied both
    store = LocalStore(str(root))
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[:3])
    assert _intents_left(store) == []
    assert producer.validate_catalog(str(root)) == []
    assert_stac_valid_tree(root)


def test_a_waiter_whose_leader_is_gone_without_its_change_puts_after_one_look(tmp_path, tiles):
    """A's intent (A died after announcing) leads; B waits for it. At B's
    first look A's intent is gone without B's change applied (withdrawn by a
    remove of A's item): B goes back to the listing at once, leads and puts
    its change, instead of waiting out its remaining looks."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    producer.register([tiles[0]], catalog=store, collection="c")
    _died_after_intent(store, tiles[1])
    (leader,) = _intents_left(store)

    class B(Recording):
        heads: list[str]
        gets: list[str]
        lists = 0

        def get(self, key: str) -> tuple[bytes, str]:
            if self.item_written.is_set():
                self.gets.append(key)
            return self.inner.get(key)

        def list(self, prefix: str = "") -> Any:
            if self.item_written.is_set() and "_intents" in prefix:
                self.lists += 1
            return self.inner.list(prefix)

        def exists(self, key: str) -> bool:
            if is_intent_key(key):
                self.heads.append(key)
                if key == leader and len(self.heads) == 1:
                    # a remove of A's item: it withdraws A's intent (B's change not applied)
                    self.inner.delete(key)
                    self.inner.delete(f"c/{tiles[1].stem}/{tiles[1].stem}.json")
            return self.inner.exists(key)

    other = B(LocalStore(str(root)))
    other.heads, other.gets = [], []
    note_contention(other.url, "c")
    (b,) = producer.register([tiles[2]], catalog=other, collection="c")
    assert b.ok and b.action == "created"
    assert other.heads == [leader]  # one look, then the listing
    assert COLL in other.puts and other.conflicts == 0
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in (tiles[0], tiles[2]))
    assert _intents_left(store) == []
    assert producer.validate_catalog(str(root)) == []
    # the look found the leader gone: the listing and the read of the
    # collection that follow (in parallel) are the next attempt, with no GET
    # of the collection of its own in between (before: 3 GETs)
    assert other.gets.count(COLL) == 2 and other.lists == 2


def test_an_announcement_goes_with_the_first_listing_and_read_of_the_collection(tmp_path, tiles):
    """A writer that announces an intent does not wait for the intent's PUT
    before it lists the intents and reads the collection: the three go out
    together (one round trip, not two). The intent PUT is held here until the
    listing has started (before: it never started while the PUT was pending)."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    listing = threading.Event()

    class Held(Recording):
        overlapped: bool | None = None

        def list(self, prefix: str = "") -> Any:
            if "_intents" in prefix:
                listing.set()
            return self.inner.list(prefix)

        def put(self, key: str, data: bytes, **kwargs: Any) -> str:
            if is_intent_key(key) and self.overlapped is None:
                self.overlapped = listing.wait(2)
            return super().put(key, data, **kwargs)

    store = Held(LocalStore(str(root)))
    note_contention(store.url, "c")
    (b,) = producer.register([tiles[1]], catalog=store, collection="c")
    assert b.ok and COLL in store.puts and store.conflicts == 0
    assert store.overlapped is True
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[:2])
    assert _intents_left(store) == []
    assert producer.validate_catalog(str(root)) == []


def test_a_waiter_looks_at_the_leader_about_one_round_trip_apart(tmp_path, tiles, monkeypatch):
    """The pause before each look at the leader's intent follows the round
    trip the waiter just measured (its listing and read of the collection),
    not a fixed ~0.1 s: a leader's round is a few round trips, and a longer
    pause only delays noticing its end. Each request of B takes 5 ms more
    here; every pause B asks for is at most 1.25 times the time from its
    item's write to that pause (which holds its announcement, listing and
    read), and at least 0.75 times the floor (before: 0.05-0.15 s each)."""
    from producer import commit

    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    _died_after_intent(LocalStore(str(root)), tiles[1])  # a leader that never finishes
    pauses: list[tuple[float, float]] = []  # (asked, time since B's item was written)
    written: list[float] = []

    class Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            pauses.append((seconds, time.monotonic() - written[0]))
            time.sleep(seconds)

    class Slow(Recording):
        def _late(self) -> None:
            time.sleep(0.005)

        def get(self, key: str) -> tuple[bytes, str]:
            self._late()
            return self.inner.get(key)

        def list(self, prefix: str = "") -> Any:
            self._late()
            return self.inner.list(prefix)

        def exists(self, key: str) -> bool:
            self._late()
            return self.inner.exists(key)

        def put(self, key: str, data: bytes, **kwargs: Any) -> str:
            self._late()
            version = super().put(key, data, **kwargs)
            if key.endswith(".json") and key not in (COLL, "catalog.json") and not written:
                written.append(time.monotonic())
            return version

    monkeypatch.setattr(commit, "time", Clock())
    store = Slow(LocalStore(str(root)))
    note_contention(store.url, "c")
    (b,) = producer.register([tiles[2]], catalog=store, collection="c")
    assert b.ok and COLL in store.puts
    assert pauses, "B never waited for the leader"
    floor = getattr(commit, "LEADER_WAIT_MIN", 0.005)
    first_asked, first_since = pauses[0]
    assert 0.75 * floor <= first_asked <= 1.25 * first_since, pauses
    assert all(0.75 * floor <= asked <= 1.25 * commit.LEADER_WAIT for asked, _ in pauses)
    # the dead leader is overtaken after its patience: both changes applied
    assert _linked(store) == sorted(f"./{t.stem}/{t.stem}.json" for t in tiles[:3])
    assert _intents_left(store) == []
    assert producer.validate_catalog(str(root)) == []


class _PausedRerun(Recording):
    """:class:`Recording` for a rerun whose item is on storage already (its
    write finds it unchanged and puts nothing): the read of the item counts
    as its write, so the writer is held once it has announced its change."""

    def __init__(self, inner: Store, item_key: str) -> None:
        super().__init__(inner, pause_after_intent=True)
        self.item_key = item_key

    def get(self, key: str) -> tuple[bytes, str]:
        if key == self.item_key:
            self.item_written.set()
        return super().get(key)


def test_a_rerun_whose_intent_another_writer_applies_still_announces_its_orphan_created(tmp_path, tiles):
    """A register killed after writing its item, before linking it; its rerun
    is held right after announcing the link, and another writer applies that
    intent with its own. The rerun never writes the collection, yet the item
    became part of the catalog for it: ``created``, and its sink is told so
    (the applying writer announces only its own items). Before: ``unchanged``,
    and no sink ever heard of the item."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    stem = tiles[1].stem
    item_key = f"c/{stem}/{stem}.json"
    crashing = CrashingStore(LocalStore(str(root)))
    counted = CrashingStore(copy_state(LocalStore(str(root))))
    producer.register([tiles[1]], catalog=counted, collection="c")
    crashing.crash_after = counted.writes.index(item_key) + 1
    with pytest.raises(SimulatedKill):
        producer.register([tiles[1]], catalog=crashing, collection="c")
    assert f"./{stem}/{stem}.json" not in _linked(LocalStore(str(root)))  # written, not linked

    paused = _PausedRerun(LocalStore(str(root)), item_key)
    note_contention(paused.url, "c")  # the rerun announces (see the test above)
    heard: list[Change] = []
    out: dict = {}

    def rerun() -> None:
        try:
            out["a"] = producer.register(
                [tiles[1]],
                catalog=paused,
                collection="c",
                on_change=CallbackSink(heard.append, outbox_id="a"),
            )
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=rerun)
    thread.start()
    try:
        assert paused.reached.wait(30), "the rerun never announced its change"
        other = Recording(LocalStore(str(root)))
        (b,) = producer.register([tiles[2]], catalog=other, collection="c")
        assert b.ok and COLL in other.puts
    finally:
        paused.resume.set()
        thread.join(30)
    assert "error" not in out, out.get("error")
    (a,) = out["a"]
    assert COLL not in paused.puts and item_key not in paused.puts  # linked for it, by the other writer
    assert a.ok and a.action == "created"
    assert [(c.kind.value, c.item_id) for c in heard] == [("created", stem)]
    assert f"./{stem}/{stem}.json" in _linked(LocalStore(str(root)))
    assert producer.validate_catalog(str(root)) == []
