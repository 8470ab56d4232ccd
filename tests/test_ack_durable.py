"""``ack="durable"`` (issue 12, point 2): a contended register may return
once its intent is stored and a live leader holds the collection's lease
(``<collection>/_intents/leader.lease``); the leader lists the intents
again after it gives the lease back and applies what it finds.

Writers run as threads (local) and processes (moto on 127.0.0.1); races
are forced with paused stores, crashes injected after each write of a
leader.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import producer
from producer import commit, mirror
from producer.audit import audit
from producer.catalog import intents
from producer.catalog.documents import exact_extent
from producer.catalog.layout import intent_key, is_intent_key, is_lease_key, lease_key
from producer.cli import main
from producer.commit import note_contention
from producer.errors import InputError
from producer.events import HandlerConfig
from producer.options import RegisterOptions
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.validate import default_validator
from tests.crashes import CrashingStore, PausingStore, copy_state, crash_runs, run_paused, write_tile
from tests.faultproxy import FaultProxy
from tests.pausing import in_thread
from tests.trees import assert_stac_valid_tree

COLL = "c/collection.json"
LEASE = lease_key("c")


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ack-tiles")
    return [
        write_tile(folder, f"a{i}_202405{1 + i % 28:02d}.tif", 6.0 + i * 0.5, 48.0 - i * 0.3)
        for i in range(16)
    ]


def _href(path: Path) -> str:
    return f"./{path.stem}/{path.stem}.json"


def _linked(store: Store) -> list[str]:
    coll = json.loads(store.get(COLL)[0])
    return sorted(link["href"] for link in coll["links"] if link["rel"] == "item")


def _items(store: Store) -> list[dict]:
    return [json.loads(store.get(f"c/{h[2:]}")[0]) for h in _linked(store)]


def _left(store: Store) -> list[str]:
    """Intents and leases still stored under the collection."""
    return sorted(k for k in store.list(intent_key("c") + "/") if is_intent_key(k) or is_lease_key(k))


def _check_done(store: Store, want: list[str], how: str = "", orphans: int = 0) -> None:
    """``want`` linked, exact extent, no problem but ``orphans`` orphan
    items, no intent and no lease left."""
    assert _linked(store) == sorted(want), how
    assert json.loads(store.get(COLL)[0])["extent"] == exact_extent(_items(store)), how
    report = audit(store, default_validator())
    assert [p for p in report.problems if p.kind != "orphan"] == [], (how, [str(p) for p in report.problems])
    assert len(report.orphans) == orphans, how
    assert _left(store) == [], how


def _plant_lease(store: Store, seconds: float = 30.0) -> None:
    """A live lease, as a leader at work holds it."""
    now = datetime.now(UTC)
    store.put(LEASE, intents.new_lease("someone-else", now, seconds), create_only=True)


def _contended(root: Path, first: Path) -> LocalStore:
    """A local catalog at ``root`` whose collection ``c`` holds ``first``,
    its contention remembered by this process and a live lease planted: the
    next ``ack="durable"`` register there returns with its link pending."""
    store = LocalStore(str(root))
    producer.register([first], catalog=store, collection="c")
    note_contention(store.url, "c")
    _plant_lease(store)
    return store


def _until_expired(store: Store) -> None:
    """Sleep until the lease stored (if any) has expired."""
    if store.exists(LEASE):
        expires = intents.lease_expires(store.get(LEASE)[0])
        assert expires is not None
        time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)


# --- the option ---------------------------------------------------------------------


def test_ack_is_an_option_with_a_flag_an_environment_variable_and_a_checked_value() -> None:
    assert RegisterOptions().ack == "linked"
    assert HandlerConfig.from_env({"STAC_CATALOG": "/x", "STAC_COLLECTION": "c"}).options.ack == "linked"
    env = {"STAC_CATALOG": "/x", "STAC_COLLECTION": "c", "STAC_ACK": "durable"}
    assert HandlerConfig.from_env(env).options.ack == "durable"
    with pytest.raises(InputError, match=r"unknown ack 'soon'.*'linked'.*'durable'") as refused:
        RegisterOptions(ack="soon")
    assert refused.value.hint is not None and refused.value.hint.option == "ack"
    out = CliRunner().invoke(main, ["register", "--help"], terminal_width=200)
    assert "--ack [linked|durable]" in out.output


def test_a_lone_durable_writer_returns_linked_and_writes_no_lease(tmp_path, tiles):
    """No contention: the plain compare-and-swap, as with the default."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    (res,) = producer.register([tiles[1]], catalog=str(root), collection="c", ack="durable")
    assert res.ok and res.action == "created" and not res.link_pending
    assert "link_pending" not in res.to_dict()
    _check_done(LocalStore(str(root)), [_href(tiles[0]), _href(tiles[1])])


# --- many writers -------------------------------------------------------------------


def test_writer_threads_on_a_local_catalog_link_everything_once(tmp_path, tiles):
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    note_contention(LocalStore(str(root)).url, "c")  # every writer takes the group path at once
    writers = 5
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(w: int) -> None:
        try:
            for path in tiles[1 + w :: writers]:
                results.extend(producer.register([path], catalog=str(root), collection="c", ack="durable"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(results) == len(tiles) - 1 and all(r.ok and r.action == "created" for r in results)
    _check_done(LocalStore(str(root)), [_href(t) for t in tiles])
    assert producer.validate_catalog(str(root)) == []
    assert_stac_valid_tree(root)


_start: Any = None


def _init(start: Any) -> None:
    global _start
    _start = start


def _writer(catalog: str, options: dict, files: list[str]) -> list[tuple[str | None, str, bool]]:
    store = open_store(catalog, options)
    note_contention(store.url, "c")
    _start.wait(120)
    out = []
    for path in files:
        (res,) = producer.register([path], catalog=store, collection="c", ack="durable")
        out.append((res.id, str(res.action), res.link_pending))
    return out


@pytest.mark.slow
def test_writer_processes_on_s3_link_everything_once(s3_server, tiles):
    writers = 4
    catalog = s3_server.url(f"ack-{uuid.uuid4().hex[:8]}")
    options = s3_server.storage_options
    producer.register([str(tiles[0])], catalog=catalog, collection="c", storage_options=options)
    shares = [[str(t) for t in tiles[1 + w :: writers]][:3] for w in range(writers)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(writers, initializer=_init, initargs=(ctx.Barrier(writers),)) as pool:
        done = pool.starmap(_writer, [(catalog, options, share) for share in shares], chunksize=1)
    outcomes = [o for share in done for o in share]
    assert [o for o in outcomes if o[1] != "created"] == []
    store = open_store(catalog, options)
    _check_done(store, [_href(tiles[0]), *(_href(Path(p)) for share in shares for p in share)])
    assert producer.validate_catalog(catalog, storage_options=options) == []


# --- the leader's last listing --------------------------------------------------------


def test_a_follower_that_saw_the_lease_is_linked_by_the_leaders_listing_after_release(tmp_path, tiles):
    """The leader is held after its last round (nothing pending), right
    before it gives its lease back. A follower announces, finds the lease
    live and returns with its link pending, unlinked. Resumed, the leader
    deletes the lease, lists once more and applies the follower's intent."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    note_contention(LocalStore(str(root)).url, "c")
    leader = PausingStore(LocalStore(str(root)), pause_before=f"delete:{LEASE}")
    seen: dict[str, Any] = {}

    def follow() -> None:
        store = LocalStore(str(root))
        assert store.exists(LEASE)
        (res,) = producer.register([tiles[2]], catalog=store, collection="c", ack="durable")
        seen["follower"] = res
        seen["linked then"] = _linked(store)

    (res,) = _run_paused(leader, tiles[1], follow)
    follower = seen["follower"]
    assert follower.ok and follower.action == "created" and follower.link_pending
    assert follower.to_dict()["link_pending"] is True
    assert _href(tiles[2]) not in seen["linked then"]  # returned before its link
    assert res.ok and not res.link_pending  # the leader's own change is linked when it returns
    _check_done(LocalStore(str(root)), [_href(t) for t in tiles[:3]])


def _run_paused(store: PausingStore, path: Path, meanwhile: Any) -> list[Any]:
    """Register ``path`` with ``ack="durable"`` through ``store`` until it
    pauses, run ``meanwhile``, let it finish; its results."""
    out = run_paused(
        store, lambda: producer.register([path], catalog=store, collection="c", ack="durable"), meanwhile
    )
    assert isinstance(out, list)
    return out


# --- a leader that dies -------------------------------------------------------------


def test_followers_of_a_leader_killed_after_each_write_are_linked_by_the_next_writer_or_reconcile(
    tmp_path, tiles, monkeypatch
):
    """The leader is killed after each of its writes (its intent, its lease,
    the collection, the deletes...). A follower then registers: while the
    dead leader's lease is live it returns with its link pending (as when
    the leader was alive). Once the lease has expired, the next durable
    writer takes it over and links everything; separately, reconcile --fix
    links the orphans and clears the expired lease."""
    monkeypatch.setattr(intents, "LEASE_TTL", 2.0)
    template = LocalStore(str(tmp_path / "template"))
    producer.register([tiles[3]], catalog=template, collection="c")

    def lead(store: Store) -> None:
        note_contention(store.url, "c")  # the group path: intent, lease, rounds
        producer.register([tiles[4]], catalog=store, collection="c", ack="durable")

    points = 0
    pending_seen = 0
    for n, real, writes in crash_runs(lambda: copy_state(template), lead):
        points += 1
        note_contention(real.url, "c")
        (follower,) = producer.register([tiles[5]], catalog=real, collection="c", ack="durable")
        assert follower.ok, follower.error
        pending_seen += follower.link_pending
        snapshot = copy_state(real)
        leader_item = real.exists(f"c/{tiles[4].stem}/{tiles[4].stem}.json")
        want = [_href(tiles[3]), _href(tiles[5]), *([_href(tiles[4])] if leader_item else [])]
        # killed between its item and its intent: an orphan only reconcile links, as ever
        orphan = leader_item and not any(is_intent_key(w) for w in writes)
        _until_expired(real)
        note_contention(real.url, "c")
        (nxt,) = producer.register([tiles[6]], catalog=real, collection="c", ack="durable")
        assert nxt.ok and not nxt.link_pending, (n, writes)
        linked = [h for h in want if not (orphan and h == _href(tiles[4]))]
        _check_done(real, [*linked, _href(tiles[6])], f"next writer after write {n} {writes}", int(orphan))
        report = producer.reconcile(snapshot, fix=True)
        assert report.remaining == [], [str(p) for p in report.remaining]
        _check_done(snapshot, want, f"reconcile --fix after write {n} {writes}")
    assert points >= 5
    assert pending_seen >= 2  # the dead leader's live lease made followers return


def test_reconcile_leaves_a_live_lease_and_validate_reports_none(tmp_path, tiles):
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    store = LocalStore(str(root))
    _plant_lease(store)
    assert producer.validate_catalog(str(root)) == []
    assert producer.reconcile(str(root), fix=True).remaining == []
    assert store.exists(LEASE)  # live: its holder's


# --- a remove racing a pending link -------------------------------------------------


def test_an_item_removed_while_its_link_was_pending_is_unlinked_again_with_an_exact_extent(tmp_path, tiles):
    """A follower's intent is pending (it saw a live lease). A new leader
    reads that intent and is held right before its compare-and-swap; the
    item is removed meanwhile (marked, the intent withdrawn, deleted). The
    leader's put links it anyway; it then finds the item gone, unlinks it
    and shrinks the extent: no dangling link, exact extent."""
    root = tmp_path / "cat"
    store = LocalStore(str(root))
    producer.register([tiles[0], tiles[1]], catalog=store, collection="c")
    note_contention(store.url, "c")
    _plant_lease(store)
    far = tiles[15]  # the farthest tile: the extent's edge
    (pending,) = producer.register([far], catalog=store, collection="c", ack="durable")
    assert pending.link_pending and _href(far) not in _linked(store)
    store.delete(LEASE)  # its holder gone without applying it (as a leader that died)
    leader = PausingStore(LocalStore(str(root)), pause_before=COLL)

    def remove() -> None:
        assert producer.remove(far.stem, catalog=str(root), collection="c").action == "removed"

    (res,) = _run_paused(leader, tiles[2], remove)
    assert res.ok
    _check_done(store, [_href(t) for t in tiles[:3]])
    assert not store.exists(f"c/{far.stem}/{far.stem}.json")


def test_a_remove_withdraws_a_pending_durable_intent_before_any_leader_applies_it(tmp_path, tiles):
    root = tmp_path / "cat"
    store = _contended(root, tiles[0])
    (pending,) = producer.register([tiles[7]], catalog=store, collection="c", ack="durable")
    assert pending.link_pending
    assert producer.remove(tiles[7].stem, catalog=str(root), collection="c").action == "removed"
    store.delete(LEASE)
    note_contention(store.url, "c")
    producer.register([tiles[8]], catalog=store, collection="c", ack="durable")
    _check_done(store, [_href(tiles[0]), _href(tiles[8])])


def test_the_cli_says_which_links_are_pending(tmp_path, tiles):
    root = tmp_path / "cat"
    store = _contended(root, tiles[0])
    out = CliRunner().invoke(
        main, ["register", str(tiles[9]), "-c", str(root), "--collection", "c", "--ack", "durable"]
    )
    assert out.exit_code == 0, out.output
    assert "created (link pending)" in out.output
    assert "1 not linked yet" in out.output
    assert _href(tiles[9]) not in _linked(store)


def test_crashing_store_counts_the_lease_writes(tmp_path, tiles):
    """The leader's lease is a write like the others (crash points above)."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    store = CrashingStore(LocalStore(str(root)))
    note_contention(store.url, "c")
    producer.register([tiles[10]], catalog=store, collection="c", ack="durable")
    assert LEASE in store.writes and f"delete:{LEASE}" in store.writes


def test_every_product_of_a_multi_asset_item_says_its_link_is_pending(tmp_path):
    """The products of one item share its outcome, the pending link too."""
    scenes = []
    for n, name in enumerate(("s1", "s2")):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        scenes.append([write_tile(folder, f"{band}.tif", 7.0 + n, 47.0) for band in ("b1", "b2")])
    root = tmp_path / "cat"
    group = r"(?P<id>[^/]+)/(?P<asset>[^/]+)\.tif$"
    when = "2024-05-13T10:00:00Z"
    producer.register(scenes[0], catalog=str(root), collection="c", group=group, datetime=when)
    store = LocalStore(str(root))
    note_contention(store.url, "c")
    _plant_lease(store)
    results = producer.register(
        scenes[1], catalog=str(root), collection="c", group=group, datetime=when, ack="durable"
    )
    assert [(r.action, r.link_pending) for r in results] == [("created", True), ("created", True)]


class _PauseBeforeSecondLeaseGet:
    """A real store that holds the caller before its second read of the
    lease (a leader's look for a successor, after it gave its lease back)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.reads = 0
        self.reached, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        if key == LEASE:
            self.reads += 1
            if self.reads == 2:
                self.reached.set()
                assert self.resume.wait(30), "the test never resumed the first leader"
        return self.inner.get(key)


def test_a_leader_that_finds_a_successor_leaves_its_followers_to_it(tmp_path, tiles):
    """Leader 1 has given its lease back and is held before it looks for a
    successor; its follower's intent is pending. Leader 2 takes the lease,
    lists (finding that intent) and is held before its compare-and-swap.
    Leader 1 then finds leader 2's live lease and returns without applying
    anything; leader 2, resumed, links the follower's item."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    note_contention(LocalStore(str(root)).url, "c")
    # leader 1 is held before its lease delete while the follower registers
    first = PausingStore(_PauseBeforeSecondLeaseGet(LocalStore(str(root))), pause_before=f"delete:{LEASE}")  # type: ignore[arg-type]
    looking = first.inner
    seen: dict[str, Any] = {}

    def follow() -> None:
        (res,) = producer.register([tiles[2]], catalog=str(root), collection="c", ack="durable")
        seen["follower"] = res

    one, one_out = in_thread(
        lambda: producer.register([tiles[1]], catalog=first, collection="c", ack="durable")
    )
    assert first.reached.wait(30)
    follow()
    assert seen["follower"].link_pending
    first.resume.set()
    assert looking.reached.wait(30), "leader 1 never looked for a successor"
    second = PausingStore(LocalStore(str(root)), pause_before=COLL)
    two, two_out = in_thread(
        lambda: producer.register([tiles[3]], catalog=second, collection="c", ack="durable")
    )
    try:
        assert second.reached.wait(30), "leader 2 never reached its compare-and-swap"
        looking.resume.set()
        one.join(30)
        assert "error" not in one_out, one_out.get("error")
        assert _href(tiles[2]) not in _linked(LocalStore(str(root)))  # left to leader 2
    finally:
        looking.resume.set()
        second.resume.set()
        two.join(30)
    assert "error" not in two_out, two_out.get("error")
    _check_done(LocalStore(str(root)), [_href(t) for t in tiles[:4]])


# --- a follower's view of the collection and the root (fp34) ------------------------


def _proxied(s3_server: Any, proxy: FaultProxy) -> dict:
    """Storage options through ``proxy`` (which records every request)."""
    kwargs = {**s3_server.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint_url}
    return {**s3_server.storage_options, "client_kwargs": kwargs}


def test_a_contended_durable_follower_does_not_read_again_what_its_process_just_read(
    s3_server, tiles, monkeypatch
):
    """Contention remembered, a live leader: the first follower reads the
    collection and the root; the next one, within ``VIEW_FRESH``, takes them
    from its process's view: PUT item, PUT intent, GET lease (3 deep), no
    GET of the collection or the root, no listing."""
    # the mirror lists its fragments after 1 write in CHECK_EVERY, drawn at
    # random (a compaction check, not the register's): the draw never says look
    monkeypatch.setattr(mirror, "random", SimpleNamespace(random=lambda: 0.999))
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = _proxied(s3_server, proxy)
        catalog = s3_server.url(f"view-{uuid.uuid4().hex[:8]}")
        producer.register([str(tiles[0])], catalog=catalog, collection="c", storage_options=options)
        store = open_store(catalog, options)
        note_contention(store.url, "c")
        _plant_lease(store)
        (first,) = producer.register(
            [str(tiles[1])], catalog=catalog, collection="c", storage_options=options, ack="durable"
        )
        assert first.ok and first.link_pending
        proxy.clear()
        (second,) = producer.register(
            [str(tiles[2])], catalog=catalog, collection="c", storage_options=options, ack="durable"
        )
        trace = list(proxy.trace)
    lines = [f"{m} {p} {q}" for m, p, q in trace]
    assert second.ok and second.action == "created" and second.link_pending, second.error
    reads = [p for m, p, q in trace if m in ("GET", "HEAD") and "list-type" not in q]
    assert not [p for p in reads if p.endswith(("/c/collection.json", "/catalog.json"))], lines
    assert not [q for m, _, q in trace if "list-type" in q], lines
    catalog_writes = [p for m, p, _ in trace if m == "PUT" and "fragments/" not in p]  # the mirror's own
    assert len(catalog_writes) == 2, lines  # the item, then its intent
    assert catalog_writes[0].endswith(f"/c/{tiles[2].stem}/{tiles[2].stem}.json"), lines
    assert "/c/_intents/" in catalog_writes[1], lines
    assert [p for p in reads if p.endswith("/" + LEASE)] == [p for p in reads if "/c/" in p], lines


class _Recording:
    """A real store that records, in order, the reads of the collection
    document and the puts of intents made through it."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.ops: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        if key == COLL:
            self.ops.append("get collection")
        return self.inner.get(key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        if is_intent_key(key):
            self.ops.append("put intent")
        return self.inner.put(key, data, **kwargs)


def test_a_durable_follower_reads_the_collection_again_once_its_view_is_older_than_the_window(
    tmp_path, tiles, monkeypatch
):
    root = tmp_path / "cat"
    _contended(root, tiles[0])
    producer.register([tiles[1]], catalog=str(root), collection="c", ack="durable")
    within = _Recording(LocalStore(str(root)))
    (res,) = producer.register([tiles[2]], catalog=within, collection="c", ack="durable")  # type: ignore[arg-type]
    assert res.link_pending and within.ops == ["put intent"]  # the view: nothing read
    monkeypatch.setattr(commit, "VIEW_FRESH", 0.2)
    time.sleep(0.3)
    after = _Recording(LocalStore(str(root)))
    (res,) = producer.register([tiles[3]], catalog=after, collection="c", ack="durable")  # type: ignore[arg-type]
    assert res.link_pending and after.ops[0] == "get collection" and "put intent" in after.ops


def test_a_follower_whose_view_is_behind_another_writers_change_leads_without_clobbering_it(tmp_path, tiles):
    """Its process read the collection a moment ago; meanwhile another
    writer links an item (extent grown) and the description is edited.
    The follower takes its preflight documents from the view (its first
    read of the collection comes after its intent), finds no lease and
    leads: what it puts is built on the collection as stored then."""
    root = tmp_path / "cat"
    store = _contended(root, tiles[0])
    (pending,) = producer.register([tiles[1]], catalog=str(root), collection="c", ack="durable")
    assert pending.link_pending
    # another process: a linked register (it applies the pending intent too), an edit
    (other,) = producer.register([tiles[3]], catalog=str(root), collection="c")
    assert other.ok and not other.link_pending
    data, version = store.get(COLL)
    coll = json.loads(data)
    coll["description"] = "edited elsewhere"
    store.put(COLL, json.dumps(coll).encode(), if_version=version)
    store.delete(LEASE)
    leading = _Recording(LocalStore(str(root)))
    (res,) = producer.register([tiles[2]], catalog=leading, collection="c", ack="durable")  # type: ignore[arg-type]
    assert res.ok and not res.link_pending, res.error  # it led
    assert leading.ops[:2] == ["put intent", "get collection"], leading.ops
    assert json.loads(store.get(COLL)[0])["description"] == "edited elsewhere"
    _check_done(store, [_href(t) for t in tiles[:4]])


def test_a_rerun_that_its_view_shows_linked_is_linked_again_after_a_remove(tmp_path, tiles):
    """The view says the item is linked, but it was removed since (by
    another process): the rerun writes it again, and the collection read
    again (a view that shows the change applied is not trusted) links it."""
    root = tmp_path / "cat"
    producer.register([tiles[0]], catalog=str(root), collection="c")
    store = LocalStore(str(root))
    note_contention(store.url, "c")
    (res,) = producer.register([tiles[4]], catalog=str(root), collection="c", ack="durable")
    assert res.ok and not res.link_pending  # it led (no lease): the view holds its link
    gone = producer.remove(tiles[4].stem, catalog=str(root), collection="c")
    assert gone.ok and gone.action == "removed", gone
    assert _href(tiles[4]) not in _linked(store)
    (again,) = producer.register([tiles[4]], catalog=str(root), collection="c", ack="durable")
    assert again.ok, again.error
    _check_done(store, [_href(tiles[0]), _href(tiles[4])])


def test_validate_and_reconcile_right_after_a_pending_durable_register_warn_link_pending(
    tmp_path, tiles, monkeypatch
):
    """Between a durable follower's return and its leader's apply, the item
    is written and unlinked, its change in a fresh intent: a normal state.
    ``validate`` warns (exit 0) instead of an ``orphan`` error; ``reconcile``
    without fix says the same, and with fix links it. Once the intent is
    older than ``INTENT_FRESH`` no leader applies it: an orphan again."""
    root = tmp_path / "cat"
    store = _contended(root, tiles[0])
    (pending,) = producer.register([tiles[11]], catalog=store, collection="c", ack="durable")
    assert pending.link_pending
    key = f"c/{tiles[11].stem}/{tiles[11].stem}.json"
    problems = producer.validate_catalog(str(root))
    (warned,) = [p for p in problems if p.kind != "mirror-stale"]
    assert (warned.kind, warned.key, warned.is_error) == ("link-pending", key, False)
    assert "ack durable" in warned.message
    with monkeypatch.context() as aged:
        aged.setattr(intents, "INTENT_FRESH", -1.0)
        assert ("orphan", key) in [(p.kind, p.key) for p in producer.validate_catalog(str(root))]
    out = CliRunner().invoke(main, ["validate", str(root)])
    assert out.exit_code == 0, out.output
    assert "ERROR" not in out.output
    found = producer.reconcile(str(root))
    assert found.found.get("link-pending") == 1 and not found.found.get("orphan")
    fixed = producer.reconcile(str(root), fix=True)
    assert fixed.fixed.get("link-pending") == 1 and not fixed.fixed.get("orphan")
    assert _href(tiles[11]) in _linked(store)


def test_the_prefect_task_says_which_links_are_pending(tmp_path, tiles, caplog):
    """The task's summary line and table rows said ``1 created`` for a
    register whose link is pending, where the CLI says it is not linked yet."""
    from producer.prefect import _table_rows, register_and_report

    root = tmp_path / "cat"
    store = _contended(root, tiles[0])
    logger = logging.getLogger("producer.prefect")  # prefect's handlers: it may not propagate
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="producer.prefect"):
            (row,) = register_and_report([str(tiles[12])], catalog=str(root), collection="c", ack="durable")
    finally:
        logger.removeHandler(caplog.handler)
    assert row["link_pending"] and _href(tiles[12]) not in _linked(store)
    # one line, caught once or twice (the handler added, and propagation where prefect allows it)
    (summary,) = {r.getMessage() for r in caplog.records if r.getMessage().startswith("registered into")}
    assert "1 created (1 with the link pending: ack durable)" in summary, summary
    assert _table_rows([row])[0]["action"] == "created (link pending)"
