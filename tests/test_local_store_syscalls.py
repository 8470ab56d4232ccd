"""LocalStore's cheap paths (issue 12, point 5): create-only writes through an
unnamed file named by ``linkat`` under the lock (no temp name, no lexists),
their fallback, and that the create-only check stays atomic against every
other writer, an earlier release's included."""

from __future__ import annotations

import multiprocessing
import os
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from producer.errors import PreconditionFailed
from producer.store import local
from producer.store.local import LocalStore, Staging
from tests.pausing import hold_at_line, line_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE: Linux")


@pytest.fixture(params=["unnamed", "fallback"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on both ways of a create-only write: the unnamed file
    (where the file system has them: ``tmp_path``'s does, and the test
    checks it) and the temp file + lock + rename kept for the others."""
    if request.param == "fallback":
        monkeypatch.setattr(local, "TMPFILE_WRITES", False)
    return str(request.param)


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_create_only_names_under_the_lock_an_earlier_release_takes(tmp_path: Path, way: str) -> None:
    """A writer of an earlier release (a long-lived worker not yet upgraded)
    makes a create-only write as ``lexists`` under the catalog's lock, then
    a rename over the name. Played here by hand: the lock taken, the name
    checked absent. A create-only put by this release must wait for that
    lock rather than name its document in between (it did, in review rv36:
    the earlier writer's rename then replaced it, and both reported the
    creation); once the earlier writer has renamed and let go, the put is
    refused and the earlier writer's bytes stay."""
    root = tmp_path / "stac"
    LocalStore(str(root), durability="os").put("c/collection.json", b"{}")
    older = LocalStore(str(root), durability="os")
    target = root / "c" / "a" / "a.json"
    target.parent.mkdir()
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def put() -> None:
        try:
            outcome["version"] = LocalStore(str(root), durability="os").put(
                "c/a/a.json", b"new", create_only=True
            )
        except PreconditionFailed as exc:
            outcome["refused"] = exc
        finally:
            done.set()

    fd, forks = older._lock()
    try:
        assert not os.path.lexists(target)  # the earlier release's check, under the lock
        thread = threading.Thread(target=put)
        thread.start()
        named_meanwhile = done.wait(0.5)
        temp = target.parent / ".older-temp"
        temp.write_bytes(b"older")
        os.replace(temp, target)  # the earlier release's rename, still under the lock
    finally:
        local._unlock(fd, forks)
    thread.join(10)
    assert not named_meanwhile, f"named while an earlier writer held the lock: {outcome}"
    assert isinstance(outcome.get("refused"), PreconditionFailed)
    assert target.read_bytes() == b"older"
    assert sorted(os.listdir(target.parent)) == ["a.json"]


@pytest.mark.parametrize("durability", ["fsync", "os"])
def test_create_only_returns_the_version_and_makes_folders(tmp_path: Path, way: str, durability: str) -> None:
    store = LocalStore(str(tmp_path / "stac"), durability=durability)
    version = store.put("x/y/z/doc.json", b"hello", create_only=True)
    assert store.get("x/y/z/doc.json") == (b"hello", version)
    with store.batch():
        assert store.put("x/new/doc.json", b"2", create_only=True) == store.get("x/new/doc.json")[1]


@pytest.mark.parametrize("what", ["file", "folder", "link", "dangling link"])
def test_create_only_on_an_existing_name_fails_and_changes_nothing(
    tmp_path: Path, way: str, what: str
) -> None:
    root = tmp_path / "stac"
    store = LocalStore(str(root), durability="fsync")
    store.put("a/keep.json", b"keep")
    target = root / "a" / "doc.json"
    if what == "file":
        target.write_bytes(b"old")
    elif what == "folder":
        target.mkdir()
        (target / "inside").write_bytes(b"x")
    elif what == "link":
        target.symlink_to("keep.json")
    else:
        target.symlink_to("nowhere.json")
    before = {name: (root / name).lstat().st_ino for name in _files(root)}
    with pytest.raises(PreconditionFailed):
        store.put("a/doc.json", b"new", create_only=True)
    assert {name: (root / name).lstat().st_ino for name in _files(root)} == before  # no temp file left
    if what == "file":
        assert target.read_bytes() == b"old"
    elif what == "link":
        assert os.readlink(target) == "keep.json"
        assert (root / "a" / "keep.json").read_bytes() == b"keep"


def test_create_only_new_file_mode_follows_the_umask(tmp_path: Path, way: str) -> None:
    store = LocalStore(str(tmp_path / "stac"))
    old = os.umask(0o027)
    try:
        store.put("a.json", b"1", create_only=True)
    finally:
        os.umask(old)
    store.put("b.json", b"1", create_only=True)
    assert (tmp_path / "stac" / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "stac" / "b.json").stat().st_mode & 0o777 == 0o644 & ~old


def test_failed_create_prunes_the_folders_it_made(tmp_path: Path, way: str) -> None:
    root = tmp_path / "stac"
    store = LocalStore(str(root))
    store.put("a.json", b"1")
    (root / "new").mkdir()
    (root / "new" / "doc.json").mkdir()  # a folder where the document goes
    with pytest.raises(PreconditionFailed):
        store.put("new/doc.json", b"x", create_only=True)
    assert (root / "new" / "doc.json").is_dir()


def _racer(url: str, keys: int, start: Any, out: Any, tag: int, fallback: bool) -> None:
    if fallback:
        local.TMPFILE_WRITES = False
    store = LocalStore(url, durability="os")
    start.wait()
    won = []
    for k in range(keys):
        try:
            store.put(f"c/k{k}/k{k}.json", f"{tag}".encode(), create_only=True)
            won.append(k)
        except PreconditionFailed:
            pass
    out.put((tag, won))


@pytest.mark.parametrize("mix", ["unnamed", "fallback", "both"])
def test_processes_racing_create_only_have_one_winner_per_key(tmp_path: Path, mix: str) -> None:
    """Four processes create the same 40 keys at once (after a barrier):
    each key has exactly one winner, whose bytes it holds, and nothing else
    is left in any folder. ``both``: two processes write unnamed files (no
    lock), two take the fallback (lock + create-only rename): the fallback's
    naming must be atomic against writers that take no lock."""
    url = str(tmp_path / "stac")
    LocalStore(url).put("c/collection.json", b"{}")
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(
            target=_racer,
            args=(url, 40, start, out, tag, mix == "fallback" or (mix == "both" and tag % 2 == 1)),
        )
        for tag in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * 4
    winners: dict[int, list[int]] = {}
    for tag, won in results:
        for k in won:
            winners.setdefault(k, []).append(tag)
    assert sorted(winners) == list(range(40))
    for k, tags in winners.items():
        assert len(tags) == 1, f"key {k} created by {tags}"
        folder = tmp_path / "stac" / "c" / f"k{k}"
        assert os.listdir(folder) == [f"k{k}.json"]
        assert (folder / f"k{k}.json").read_bytes() == str(tags[0]).encode()


def test_a_create_only_put_waits_for_a_staged_naming_under_way(tmp_path: Path, way: str) -> None:
    """A staged document is named under the lock, and so is a create-only
    put's (unnamed file or temp file): the publishing thread is paused (a
    trace function) right before it names its temp file, holding the lock;
    a create-only put of the same key meanwhile waits, and once the staging
    has named its document the put is refused: one winner, no document
    replaced, nothing else left in the folder."""
    store = LocalStore(str(tmp_path / "stac"), durability="os")
    store.put("c/collection.json", b"{}")
    staging = Staging(store)
    staging.stage("c/a/a.json", b"staged")
    paused, resume = threading.Event(), threading.Event()
    name_line = line_of(Staging._rename, "_link_new(")
    tracer = hold_at_line(Staging._rename, name_line, paused, resume, timeout=10, must_resume=False)

    outcome: dict[str, Any] = {}

    def publish() -> None:
        sys.settrace(tracer)
        try:
            outcome.update(staging.publish())
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=publish)
    thread.start()
    assert paused.wait(10)
    refused: list[BaseException] = []
    done = threading.Event()

    def put() -> None:
        try:
            store.put("c/a/a.json", b"other", create_only=True)
        except PreconditionFailed as exc:
            refused.append(exc)
        finally:
            done.set()

    other = threading.Thread(target=put)
    other.start()
    named_meanwhile = done.wait(0.5)
    resume.set()
    thread.join(10)
    other.join(10)
    assert not named_meanwhile, "a create-only put named its document while a staged naming held the lock"
    assert outcome["c/a/a.json"] == store.get("c/a/a.json")[1]
    assert store.get("c/a/a.json")[0] == b"staged"
    assert len(refused) == 1
    assert os.listdir(tmp_path / "stac" / "c" / "a") == ["a.json"]


# -- the symbolic-link walk's memo of plain folders ------------------------------


def _calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """The paths ``os.<name>`` (``lstat``, ``stat``) is called with from now on."""
    seen: list[str] = []
    real = getattr(os, name)

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, name, counting)
    return seen


def _lstats(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return _calls(monkeypatch, "lstat")


def test_a_folder_found_plain_is_not_looked_at_again_within_plain_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A register call walks ``<collection>`` for each of its keys: within
    :attr:`LocalStore.plain_for` a folder found plain is not ``lstat``-ed
    again; the document itself is, every time."""
    root = tmp_path / "stac"
    store = LocalStore(str(root), durability="os")
    store.put("c/collection.json", b"{}")
    store.put("c/i/i.json", b"1", create_only=True)
    seen = _lstats(monkeypatch)
    store.get("c/collection.json")
    store.get("c/i/i.json")
    store.put("c/i/i.json", b"2")
    monkeypatch.undo()
    assert seen == [f"{root}/c/collection.json", f"{root}/c/i/i.json", f"{root}/c/i/i.json"]
    store.plain_for = 0.0  # expired at once: every folder looked at again
    seen = _lstats(monkeypatch)
    store.get("c/i/i.json")
    monkeypatch.undo()
    assert seen == [f"{root}/c", f"{root}/c/i", f"{root}/c/i/i.json"]


@pytest.mark.parametrize("call", ["get", "put", "create_only", "list"])
def test_a_folder_swapped_for_a_link_out_of_the_root_is_refused_after_plain_for(
    tmp_path: Path, call: str
) -> None:
    """Within the memo's time a folder swapped for a link is the race the
    walk never caught (between its lstat and the open); after it, the
    link is found and refused as always, nothing read or written outside."""
    import time

    from producer.errors import StoreError

    root, outside = tmp_path / "stac", tmp_path / "outside"
    store = LocalStore(str(root), durability="os")
    store.plain_for = 0.05
    store.put("c/i/i.json", b"inside")
    (outside / "i").mkdir(parents=True)
    (outside / "i" / "i.json").write_bytes(b"outside")
    os.rename(root / "c", tmp_path / "moved")
    os.symlink(outside, root / "c")
    time.sleep(0.1)
    with pytest.raises(StoreError, match="symbolic link"):
        if call == "get":
            store.get("c/i/i.json")
        elif call == "put":
            store.put("c/i/i.json", b"new")
        elif call == "create_only":
            store.put("c/j/j.json", b"new", create_only=True)
        else:
            list(store.list("c/i"))
    assert (outside / "i" / "i.json").read_bytes() == b"outside"
    assert sorted(_files(outside)) == ["i", "i/i.json"]


def test_a_link_inside_the_root_still_works_with_the_memo(tmp_path: Path) -> None:
    root = tmp_path / "stac"
    store = LocalStore(str(root), durability="os")
    store.put("real/i/i.json", b"1")
    os.symlink(root / "real", root / "alias")
    for _ in range(2):  # the second time within plain_for
        assert store.get("alias/i/i.json")[0] == b"1"
        store.put("alias/j/j.json", b"2", create_only=False)
        assert store.get("real/j/j.json")[0] == b"2"
        store.delete("real/j/j.json")


def test_a_folder_this_store_pruned_is_forgotten(tmp_path: Path) -> None:
    """A delete prunes the folders it leaves empty: were they still taken
    as plain, a link put in their place at once would be written through
    (the memo said: a directory)."""
    root, outside = tmp_path / "stac", tmp_path / "outside"
    outside.mkdir()
    store = LocalStore(str(root), durability="os")
    store.put("c/keep.json", b"k")
    store.put("c/i/i.json", b"1")
    store.delete("c/i/i.json")  # prunes c/i
    assert not (root / "c" / "i").exists()
    os.symlink(outside, root / "c" / "i")
    from producer.errors import StoreError

    with pytest.raises(StoreError, match="symbolic link"):
        store.put("c/i/i.json", b"2", create_only=True)
    assert list(outside.iterdir()) == []


# -- temp file names: the pid and random part once per process -------------------


def _temp_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".stac-producer.tmp."))


def test_a_forked_childs_temp_names_differ_from_the_parents(tmp_path: Path) -> None:
    """The pid and random part of temp names are made once per process: a
    forked child must make its own (its pid; and a random part of its own,
    as the count goes on from the same value in both)."""
    root = tmp_path / "stac"
    store = LocalStore(str(root), durability="os")
    store.put("c/collection.json", b"{}")
    staging = Staging(store)  # staged temp files stay until published: their names can be read
    staging.stage("c/p/p.json", b"parent")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = Staging(store)
            child.stage("c/k/k.json", b"child")
            os.write(write, b"ok")
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and os.read(read, 2) == b"ok"
    os.close(read)
    (parent_name,) = _temp_names(root / "c" / "p")
    (child_name,) = _temp_names(root / "c" / "k")
    parent_tag = parent_name.removeprefix(".stac-producer.tmp.p.json.").rsplit(".", 1)[0]
    child_tag = child_name.removeprefix(".stac-producer.tmp.k.json.").rsplit(".", 1)[0]
    assert parent_tag.split(".")[0] == str(os.getpid()) and child_tag.split(".")[0] == str(pid)
    assert parent_tag.split(".")[1] != child_tag.split(".")[1]
    staging.discard()


def test_a_taken_temp_name_is_skipped_for_the_next(tmp_path: Path) -> None:
    """Uniqueness comes from ``O_EXCL``: a temp name that exists (here: made
    in advance for the next counts) is skipped, not a failed write."""
    import copy

    root = tmp_path / "stac"
    store = LocalStore(str(root), durability="os")
    store.put("c/i/i.json", b"1")
    upcoming = copy.copy(local._TEMP_COUNT)
    beside = f"{root}/c/i/.stac-producer.tmp.i.json.{local._temp_tag()}"
    start = next(upcoming)
    taken = [Path(f"{beside}{n:x}") for n in range(start, start + 3)]
    for path in taken:
        path.write_bytes(b"someone's")
    store.put("c/i/i.json", b"2")
    assert store.get("c/i/i.json")[0] == b"2"
    assert _temp_names(root / "c" / "i") == sorted(p.name for p in taken)  # theirs left, none of ours


def test_a_store_stats_its_root_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``LocalStore()`` stats the root (is it under a file?); that stat also
    says it is a folder, so the first key's walk does not stat it again
    (a register call opens a store)."""
    root = tmp_path / "stac"
    LocalStore(str(root)).put("c/i/i.json", b"1")
    stats = _calls(monkeypatch, "stat")
    store = LocalStore(str(root), durability="os")
    assert store.get("c/i/i.json")[0] == b"1"
    store.put("c/i/i.json", b"2")
    monkeypatch.undo()
    assert stats == [str(root)]


def test_a_short_write_goes_on_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The kernel may take part of a write (a signal, a quota edge, some
    file systems): every put goes on from where the write stopped, whole
    bytes and nothing twice, on both ways of a create-only write and for a
    replacing one; a write that takes nothing fails the put (an I/O error),
    leaving nothing. ``os.write`` is the real one, given at most 7 bytes a
    call for the document's descriptor (st37: the first write is now of
    the bytes themselves, the memoryview made only after a short one)."""
    store = LocalStore(str(tmp_path / "stac"), durability="os")
    store.put("c/collection.json", b"{}")
    real_write = os.write
    calls: list[int] = []
    then_nothing = [False]

    def short_write(fd: int, data: Any) -> int:
        if fd <= 2 or not stat.S_ISREG(os.fstat(fd).st_mode):  # pytest's output, pipes: as they are
            return real_write(fd, data)
        calls.append(len(data))
        if then_nothing[0] and len(calls) > 1:
            return 0
        return real_write(fd, bytes(data)[:7])

    document = bytes(range(256)) * 3 + b"end"
    monkeypatch.setattr(os, "write", short_write)
    version = store.put("c/a/a.json", document, create_only=True)
    store.put("c/b.json", document[:10])
    store.put("c/b.json", document)
    monkeypatch.setattr(os, "write", real_write)
    assert store.get("c/a/a.json") == (document, version)
    assert store.get("c/b.json")[0] == document
    assert len(calls) > 2 * len(document) // 7
    calls.clear()
    then_nothing[0] = True  # the first call takes 7 bytes, the next nothing
    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(local.StoreError, match="the write took no bytes"):
        store.put("c/d/d.json", document, create_only=True)
    monkeypatch.setattr(os, "write", real_write)
    assert not (tmp_path / "stac" / "c" / "d").exists()
    assert _files(tmp_path / "stac" / "c") == ["a", "a/a.json", "b.json", "collection.json"]
