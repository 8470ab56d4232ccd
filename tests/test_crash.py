"""A crash after any single storage write is repaired by re-running the same
command, and separately by one ``reconcile --fix``, into a valid AND complete
catalog (issue 8, point 5).

Each scenario is run killed after write 1, 2, ... (``tests/crashes.py``)
until it completes; every crash state is copied, then repaired both ways.
Local runs cover every scenario; S3 (moto on 127.0.0.1) runs the smallest set
that still crosses every kind of write: a first partitioned registration
(root, item, month, year, collection, root link, id index) and a partitioned
remove (mark, unlink, extent, conditional delete).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import producer
from producer import mirror
from producer.audit import audit
from producer.changes import Change
from producer.sinks.notify import CallbackSink
from producer.store import open_store
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.store.s3_obstore import CLIENT_ENV
from producer.validate import default_validator
from tests.crashes import CrashingStore, SimulatedKill, copy_state, crash_runs, write_tile
from tests.rasters import dated_cogs
from tests.trees import but_emptied

A_ID, B_ID = "a_20240310", "b_20240115"


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crash-products")
    return {
        A_ID: write_tile(folder, f"{A_ID}.tif", 12.0, 52.0),
        B_ID: write_tile(folder, f"{B_ID}.tif", 10.0, 50.0),
    }


def _register(store: Store, paths: list[Path], partition: str | None) -> None:
    results = producer.register(paths, catalog=store, collection="c", partition=partition)
    assert all(r.ok for r in results), [r.error for r in results]


# scenario -> (products in the catalog before, verb, item ids expected after)
SCENARIOS = {
    "first-registration": ([], "register", {A_ID}),
    "registration-into-existing": ([B_ID], "register", {A_ID, B_ID}),
    "remove": ([A_ID, B_ID], "remove", {B_ID}),
}


def assert_valid_and_complete(store: Store, expected: set[str], partition: str | None) -> None:
    """No problem at all (errors or warnings), exactly ``expected`` items,
    each linked from the root down and inside the collection extent."""
    # validate_catalog(store) is exactly audit(store).problems; one walk gives
    # both the verdict and the items (S3 round trips are the slow part here)
    report = audit(store, default_validator())
    assert but_emptied(report.problems) == [], [str(p) for p in report.problems]
    assert not report.orphans  # nothing left behind, e.g. an unlinked removed item
    ids = sorted(info.id for info in report.items.values())
    assert ids == sorted(expected)
    depth = 4 if partition == "year/month" else 2
    assert all(key.count("/") == depth for key in report.items)
    if isinstance(store, LocalStore):
        leftovers = [
            name
            for _, _, names in os.walk(store.root)
            for name in names
            if name.startswith(".stac-producer.tmp")
        ]
        assert leftovers == []


def _run_matrix(
    make_empty: Callable[[], Store], products: dict[str, Path], scenario: str, partition: str | None
) -> int:
    """Run ``scenario`` killed after each write; check both repairs of every
    crash state. Returns the number of crash points."""
    before, verb, expected = SCENARIOS[scenario]
    template = make_empty()
    if before:
        _register(template, [products[i] for i in before], partition)

    def run(store: Store) -> None:
        if verb == "register":
            _register(store, [products[A_ID]], partition)
        else:
            result = producer.remove(A_ID, catalog=store, collection="c")
            assert result.action in ("removed", "absent")

    points = 0
    for n, real, writes in crash_runs(lambda: copy_state(template), run):
        points += 1
        snapshot = copy_state(real)
        # (a) the same command again, on the crashed state itself
        run(real)
        try:
            assert_valid_and_complete(real, expected, partition)
        except AssertionError as exc:
            raise AssertionError(f"re-run after a crash after write {n} {writes}: {exc}") from exc
        # (b) one reconcile --fix on a copy of the crashed state
        if verb == "register":
            report = producer.reconcile(
                snapshot,
                fix=True,
                data=[str(products[A_ID])],
                collection="c",
                register_options={"partition": partition},
            )
        else:
            report = producer.reconcile(snapshot, fix=True)
        assert all(r.ok for r in report.registered), [r.error for r in report.registered]
        try:
            assert_valid_and_complete(snapshot, expected, partition)
        except AssertionError as exc:
            raise AssertionError(f"reconcile --fix after a crash after write {n} {writes}: {exc}") from exc
        # the mirror's writes are crash points too: reconcile --fix brings it in line
        # (a re-run does only when it links the item: then it is `created`)
        left = mirror.diff(snapshot, "c")
        assert left.clean, f"mirror after reconcile --fix, crash after write {n} {writes}: {left}"
    return points


@pytest.mark.parametrize("partition", [None, "year/month"], ids=["flat", "year-month"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_crash_after_any_write_is_repaired_by_rerun_and_by_reconcile_local(
    tmp_path, products, scenario, partition
):
    """Local catalog. Before the fix: a month catalog written but never linked
    to its year, a collection written before the root (never created after),
    states only a new registration repaired, and a remove killed between unlink
    and delete undone by reconcile --fix."""

    def make_empty() -> Store:
        return LocalStore(str(tmp_path / f"cat-{uuid.uuid4().hex[:8]}"))

    assert _run_matrix(make_empty, products, scenario, partition) >= 2


@pytest.mark.parametrize(
    "scenario, partition, client",
    [("first-registration", "year/month", "s3fs"), ("remove", None, "s3fs"), ("remove", None, "obstore")],
    ids=["first-registration-year-month", "remove-flat", "remove-flat-obstore"],
)
def test_crash_after_any_write_is_repaired_by_rerun_and_by_reconcile_s3(
    s3_server, monkeypatch, products, scenario, partition, client
):
    """S3 catalog (moto): every kind of write is crossed (create-only, If-Match
    puts, the id index, the mark, conditional delete). With the obstore
    client (``STAC_S3_CLIENT=obstore``) too: before, the crash harness's
    copies made their conditional deletes under the template's prefix."""
    monkeypatch.setenv(CLIENT_ENV, client)

    def make_empty() -> Store:
        return open_store(s3_server.url(f"crash-{uuid.uuid4().hex[:8]}"), s3_server.storage_options)

    assert _run_matrix(make_empty, products, scenario, partition) >= 3


_KILLED_WRITER = """
import os, sys
import producer.store.local as local
local.os.replace = lambda *args: os._exit(137)  # die between temp write and rename
local.LocalStore(sys.argv[1]).put("c/collection.json", b"{}")
"""


def test_temp_file_left_by_a_killed_local_writer_is_removed_by_reconcile_fix(tmp_path):
    """A writer killed between its temp file and the rename leaves the temp
    file behind; before, nothing ever removed it. A live writer's (young)
    temp file is left alone. Parent folders (large in a flat collection) are
    swept by reconcile --fix, not on every write."""
    import subprocess
    import sys
    import time

    root = tmp_path / "cat"
    from tests import rasters

    (first,) = producer.register([rasters.write_utm(tmp_path / "data")], catalog=str(root), collection="c")
    assert first.ok, first.error
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(root)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 137, proc.stderr
    (dead,) = [p for p in (root / "c").iterdir() if p.name.startswith(".stac-producer.tmp")]
    hour_ago = time.time() - 3600
    os.utime(dead, (hour_ago, hour_ago))  # the killed writer died an hour ago
    live = root / "c" / ".stac-producer.tmp.collection.json.999.abcdef"
    live.write_bytes(b"{")  # a writer still at work
    store = LocalStore(str(root))
    store.put("c/collection.json", store.get("c/collection.json")[0])
    assert dead.exists()  # a write into a parent folder does not scan it
    report = producer.reconcile(store, fix=True)
    assert report.remaining == []
    assert not dead.exists()
    assert live.exists()
    assert live.name in [p.name for p in (root / "c").iterdir()]


def test_temp_file_left_in_an_item_folder_is_removed_by_the_next_write_into_it(tmp_path):
    """An item folder holds one document, so the next write into it sweeps it."""
    import time

    store = LocalStore(str(tmp_path / "cat"))
    store.put("c/x/x.json", b"{}")
    dead = tmp_path / "cat" / "c" / "x" / ".stac-producer.tmp.x.json.1.dead"
    dead.write_bytes(b"{")
    hour_ago = time.time() - 3600
    os.utime(dead, (hour_ago, hour_ago))
    LocalStore(str(tmp_path / "cat")).put("c/x/x.json", b"{ }")
    assert not dead.exists()


@pytest.mark.parametrize(
    "key", ["c/items.parquet", "c/.ids/x", "c/collection/collection.json", "c/notes.json"]
)
def test_a_write_beside_other_documents_does_not_scan_their_folder(tmp_path, key):
    """Only an item's own folder (``<id>/<id>.json``) is swept per write: the
    mirror base's folder (the collection's), the id index's and a parent's
    can hold a collection's worth of entries (reconcile --fix sweeps them)."""
    import time

    root = tmp_path / "cat"
    folder = root.joinpath(*key.split("/")[:-1])
    folder.mkdir(parents=True)
    dead = folder / ".stac-producer.tmp.y.json.1.dead"
    dead.write_bytes(b"{")
    hour_ago = time.time() - 3600
    os.utime(dead, (hour_ago, hour_ago))
    store = LocalStore(str(root))
    store.put(key, b"{}")
    store.put(key, b"{ }")
    assert dead.exists()
    assert store.sweep_temps() == 1
    assert not dead.exists()


def _item_documents(store: Store, item_id: str) -> list[str]:
    """Keys of every document of ``item_id`` on storage, linked or not (its id index entry aside)."""
    return [key for key in store.list("c/") if key.endswith(f"/{item_id}/{item_id}.json")]


@pytest.mark.parametrize(
    "kind, partition",
    [("local", None), ("local", "year/month"), ("s3", "year/month"), ("s3-obstore", "year/month")],
    ids=["local-flat", "local-year-month", "s3-year-month", "s3-obstore-year-month"],
)
def test_remove_after_a_register_killed_after_any_write_removes_the_item_for_good(
    request, monkeypatch, tmp_path, products, kind, partition
):
    """``register A`` killed after each of its writes, then ``remove A`` (not a
    re-run of the register), then ``reconcile --fix``: A is gone wherever the
    register left it, and stays gone. Before: in a ``year/month`` collection the
    id index entry was written last, so ``remove`` answered ``absent`` for an
    item written (even linked) without it, and ``reconcile --fix`` linked the
    item left behind."""
    if kind == "local":

        def make_empty() -> Store:
            return LocalStore(str(tmp_path / f"cat-{uuid.uuid4().hex[:8]}"))
    else:
        srv = request.getfixturevalue("s3_server")
        monkeypatch.setenv(CLIENT_ENV, "obstore" if kind == "s3-obstore" else "s3fs")

        def make_empty() -> Store:
            return open_store(srv.url(f"crash-{uuid.uuid4().hex[:8]}"), srv.storage_options)

    template = make_empty()
    _register(template, [products[B_ID]], partition)
    points = 0
    for n, real, writes in crash_runs(
        lambda: copy_state(template), lambda store: _register(store, [products[A_ID]], partition)
    ):
        points += 1
        where = f"register killed after write {n} {writes}"
        left = _item_documents(real, A_ID)
        result = producer.remove(A_ID, catalog=real, collection="c")
        assert result.action == ("removed" if left else "absent"), f"{where}: left {left}, remove {result}"
        assert _item_documents(real, A_ID) == [], where
        producer.reconcile(real, fix=True)
        try:
            assert_valid_and_complete(real, {B_ID}, partition)
        except AssertionError as exc:
            raise AssertionError(f"reconcile --fix after remove, {where}: {exc}") from exc
        assert _item_documents(real, A_ID) == [], where
        assert mirror.diff(real, "c").clean, where
        found = producer.search(real, collections="c")
        assert A_ID not in {f["id"] for f in found["features"]}, where
        assert producer.remove(A_ID, catalog=real, collection="c").action == "absent", where
    assert points >= 3


def _killed_between_items_and_link(
    make_empty: Callable[[], Store], paths: list[str], partition: str | None, workers: int
) -> Store:
    """A catalog where ``register paths`` was killed right after its last item
    document was written, before any parent linked them (the orphan window)."""
    counted = CrashingStore(make_empty())
    producer.register(paths, catalog=counted, collection="c", partition=partition, workers=workers)
    names = {f"/{Path(p).stem}.json" for p in paths}
    last = max(i for i, key in enumerate(counted.writes) if any(key.endswith(n) for n in names))
    real = make_empty()
    with pytest.raises(SimulatedKill):
        producer.register(
            paths, catalog=CrashingStore(real, last + 1), collection="c", partition=partition, workers=workers
        )
    return real


@pytest.mark.parametrize(
    "kind, partition, workers",
    [("local", None, 2), ("local", "year/month", 1), ("s3", None, 1), ("s3", "year/month", 1)],
    ids=["local-flat-pipelined", "local-year-month", "s3-flat-group-commit", "s3-year-month"],
)
def test_rerun_after_a_kill_before_the_link_announces_every_item_created(
    request, tmp_path, kind, partition, workers
):
    """Killed after writing its items, before linking them: the rerun links
    them (they become part of the catalog now) and reports and announces
    each as ``created``; a rerun of the completed register announces
    nothing; ``reconcile --fix`` of the same state announces each too.
    Before: the rerun found each item unchanged and told the sinks nothing."""
    if kind == "local":

        def make_empty() -> Store:
            return LocalStore(str(tmp_path / f"cat-{uuid.uuid4().hex[:8]}"))
    else:
        srv = request.getfixturevalue("s3_server")

        def make_empty() -> Store:
            return open_store(srv.url(f"crash-{uuid.uuid4().hex[:8]}"), srv.storage_options)

    paths = dated_cogs(tmp_path / "data", 6)
    ids = {Path(p).stem for p in paths}
    real = _killed_between_items_and_link(make_empty, paths, partition, workers)
    snapshot = copy_state(real)
    assert audit(real, default_validator()).orphans  # the items are there, unlinked

    seen: list[Change] = []
    sink = CallbackSink(seen.append, outbox_id="seen")
    results = producer.register(
        paths, catalog=real, collection="c", partition=partition, workers=workers, on_change=sink
    )
    assert all(r.ok for r in results), [r.error for r in results]
    assert {r.action for r in results} == {"created"}
    assert sorted((c.kind.value, c.item_id) for c in seen) == sorted(("created", i) for i in ids)
    assert_valid_and_complete(real, ids, partition)

    seen.clear()  # the same register again: everything linked already, nothing to tell
    again = producer.register(
        paths, catalog=real, collection="c", partition=partition, workers=workers, on_change=sink
    )
    assert {r.action for r in again} == {"unchanged"}
    assert seen == []

    report = producer.reconcile(snapshot, fix=True, on_change=sink)
    assert report.remaining == []
    assert sorted((c.kind.value, c.item_id) for c in seen) == sorted(("created", i) for i in ids)
    assert_valid_and_complete(snapshot, ids, partition)
