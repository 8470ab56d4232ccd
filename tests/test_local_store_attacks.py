"""Adversarial tests of the local store's cheap create-only paths (rv36):
a delete's pruning racing an unnamed file, a writer killed between naming
a document by a hard link and removing its temp name."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from producer.errors import PreconditionFailed
from producer.store import local
from producer.store.local import LocalStore, Staging
from tests.pausing import hold_at_line, line_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE, fork: Linux")


def _held_put(
    store: LocalStore, key: str, data: bytes, function: Any, lineno: int
) -> tuple[threading.Thread, dict[str, Any], threading.Event]:
    """Start a create-only ``store.put(key, data)`` in a thread held (by
    :func:`_pause_at`) when ``function`` reaches ``lineno``; returns once it
    is held: the thread, what it gives (``version`` or ``error``) and the
    event that lets it go on."""
    paused, resume = threading.Event(), threading.Event()
    tracer = hold_at_line(function, lineno, paused, resume)
    out: dict[str, Any] = {}

    def write() -> None:
        sys.settrace(tracer)
        try:
            out["version"] = store.put(key, data, create_only=True)
        except BaseException as exc:
            out["error"] = exc
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=write)
    thread.start()
    assert paused.wait(20), f"the write never reached line {lineno} of {function.__qualname__}"
    return thread, out, resume


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("depth", [1, 2])
def test_a_delete_pruning_the_folder_of_an_unnamed_file_before_its_link(tmp_path: Path, depth: int) -> None:
    """An unnamed file is no entry of its folder: a delete of the folder's
    last document (another store: its own lock) prunes the folder between
    the ``O_TMPFILE`` open and the ``linkat``. The write makes the folders
    again and names its document there; nothing else is left."""
    root = tmp_path / "stac"
    sub = "/".join(["x"] * depth)
    key, other = f"c/{sub}/a.json", f"c/{sub}/b.json"
    writer, deleter = LocalStore(str(root)), LocalStore(str(root))
    writer.put("c/collection.json", b"{}")
    deleter.put(other, b"b")
    # held before the lock the naming takes: a delete prunes under it
    naming = line_of(LocalStore._create_unnamed, "self._lock()")
    thread, out, resume = _held_put(writer, key, b"a", LocalStore._create_unnamed, naming)
    deleter.delete(other)
    assert not (root / "c" / "x").exists()  # pruned, the unnamed file notwithstanding
    resume.set()
    thread.join(20)
    assert "error" not in out, out
    assert writer.get(key) == (b"a", out["version"])
    assert _files(root / "c") == sorted(
        ["collection.json", "x", *[f"x{'/x' * i}" for i in range(1, depth)], f"{sub}/a.json"]
    )


def test_the_folders_made_again_after_a_prune_are_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folders a write makes again (a delete pruned them after the
    walk) hold new entries: their parents are fsynced as for folders the
    walk found missing (observed, not replaced)."""
    root = tmp_path / "stac"
    writer, deleter = LocalStore(str(root)), LocalStore(str(root))
    writer.put("c/collection.json", b"{}")
    deleter.put("c/x/y/b.json", b"b")
    synced: list[str] = []
    real = LocalStore._fsync_dir

    def observed(self: LocalStore, directory: Path, **kwargs: Any) -> None:
        synced.append(os.fspath(directory))
        real(self, directory, **kwargs)

    naming = line_of(LocalStore._create_unnamed, "self._lock()")  # before the lock: a delete prunes under it
    thread, out, resume = _held_put(writer, "c/x/y/a.json", b"a", LocalStore._create_unnamed, naming)
    deleter.delete("c/x/y/b.json")
    monkeypatch.setattr(LocalStore, "_fsync_dir", observed)
    resume.set()
    thread.join(20)
    assert "error" not in out, out
    assert set(synced) >= {str(root / "c" / "x" / "y"), str(root / "c" / "x"), str(root / "c")}


def _dies_in_child(function: Any, lineno: int, body: Any, *, sigkill: bool = False) -> int:
    """Run ``body`` in a forked child that dies when ``function`` reaches
    ``lineno``: ``os._exit(17)``, or a SIGKILL (``sigkill``: nothing of the
    process runs after it). Returns the child's wait status, once asserted
    that it died there."""
    import signal

    code = function.__code__

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None

        def line(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == lineno:
                if sigkill:
                    os.kill(os.getpid(), signal.SIGKILL)
                os._exit(17)
            return line

        return line

    pid = os.fork()
    if pid == 0:
        try:
            sys.settrace(tracer)
            body()
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    if sigkill:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the child never got there"
    else:
        assert os.waitstatus_to_exitcode(status) == 17, "the child never got there"
    return status


@pytest.mark.parametrize("how", ["put", "staged"])
def test_a_writer_killed_between_the_hard_link_and_the_temp_names_removal(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback's and a staged document's naming is a hard link of the
    temp file, then the temp name's removal: a kill in between leaves a temp
    name that is a second link to the document. It is never listed, a later
    write replaces the document's name (not the inode both share), and the
    sweep removes only the temp name: the document is never changed or lost."""
    monkeypatch.setattr(local, "TMPFILE_WRITES", False)  # the temp file + lock way
    root = tmp_path / "stac"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    unlink = line_of(local._link_new, "os.unlink(tmp)")

    def body() -> None:
        if how == "put":
            store.put("c/a/a.json", b"first", create_only=True)
        else:
            staging = Staging(store)
            staging.stage("c/a/a.json", b"first")
            staging.publish()

    _dies_in_child(local._link_new, unlink, body)  # after the hard link, before the temp name's removal
    folder = root / "c" / "a"
    names = sorted(os.listdir(folder), key=lambda n: n != "a.json")
    assert names[0] == "a.json" and len(names) == 2 and names[1].startswith(".stac-producer.tmp.a.json.")
    assert os.stat(folder / names[1]).st_ino == os.stat(folder / "a.json").st_ino
    assert sorted(store.list("c/")) == ["c/a/a.json", "c/collection.json"]
    with pytest.raises(PreconditionFailed):
        store.put("c/a/a.json", b"again", create_only=True)
    _, version = store.get("c/a/a.json")
    new = store.put("c/a/a.json", b"second", if_version=version)
    assert (folder / names[1]).read_bytes() == b"first"  # the old inode, under the temp name only
    store.temp_max_age = 0.0
    assert store.sweep_temps() == 1
    assert os.listdir(folder) == ["a.json"]
    assert store.get("c/a/a.json") == (b"second", new)


def _owner(url: str, tag: int, fallback: bool, start: Any, out: Any, rounds: int) -> None:
    """Create, rewrite (compare-and-swap) and delete (compare-and-swap) a
    few keys, each in a folder of its own that its delete prunes; staged
    creates every third round. Whatever a create-only write made is this
    process's until it deletes it: another writer's create-only must fail
    against it, so each read, rewrite and delete of an owned key succeeds
    and sees this process's bytes. Reports the violations."""
    import random

    if fallback:
        local.TMPFILE_WRITES = False
    store = LocalStore(url, durability="os")
    rng = random.Random(tag)
    owned: dict[str, tuple[bytes, str]] = {}
    bad: list[str] = []
    created = 0
    start.wait()
    for n in range(rounds):
        key = f"c/k{rng.randrange(4)}/k.json"
        mine = f"{tag}.{n}".encode()
        ours = key in owned
        try:
            if key in owned:
                data, version = owned.pop(key)
                got = store.get(key)
                if got != (data, version):
                    bad.append(f"{key}: read {got[0]!r}, owned {data!r}")
                    continue
                if rng.random() < 0.5:
                    owned[key] = (mine, store.put(key, mine, if_version=version))
                else:
                    store.delete(key, if_version=version)
            elif n % 3 == 0:
                staging = Staging(store)
                try:
                    version = staging.stage(key, mine)
                except PreconditionFailed:
                    continue
                if staging.publish()[key] == version:
                    owned[key] = (mine, version)
                    created += 1
            else:
                owned[key] = (mine, store.put(key, mine, create_only=True))
                created += 1
        except PreconditionFailed:
            if ours:
                bad.append(f"{key}: a compare-and-swap of an owned document failed")
        except Exception as exc:  # reported to the test
            bad.append(f"{key}: {type(exc).__name__}: {exc}")
    out.put((tag, created, bad))


@pytest.mark.parametrize("mix", ["unnamed", "both"])
def test_processes_creating_rewriting_and_deleting_keep_each_create_only_document_its_creators(
    tmp_path: Path, mix: str
) -> None:
    """Four processes create (unnamed, fallback or staged), rewrite and
    delete the same four keys, whose folders the deletes prune: a document
    a create-only write made is never replaced by another create-only write
    (a read, rewrite or delete by its creator would then fail), and nothing
    is left but documents."""
    import multiprocessing

    url = str(tmp_path / "stac")
    LocalStore(url).put("c/collection.json", b"{}")
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_owner, args=(url, tag, mix == "both" and tag % 2 == 1, start, out, 300))
        for tag in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * 4
    assert sum(created for _, created, _ in results) > 40, results
    assert [bad for _, _, bad in results] == [[]] * 4
    for folder in (tmp_path / "stac" / "c").iterdir():
        if folder.is_dir():
            assert os.listdir(folder) == ["k.json"]


@pytest.mark.parametrize("paused_way", ["fallback", "unnamed"])
def test_a_create_only_paused_before_its_naming_loses_to_the_other_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paused_way: str
) -> None:
    """One create-only write is held right before it names its document
    (the fallback: before its hard link; the unnamed way: before its
    ``linkat``; both under the lock), the other way tries the same key
    meanwhile: it waits for the lock (an earlier release's writer, whose
    check is ``lexists`` + rename under it, is excluded the same way), then
    finds the held one's document and fails; one winner, whose bytes stay."""
    root = tmp_path / "stac"
    store = LocalStore(str(root), durability="os")
    store.put("c/collection.json", b"{}")
    if paused_way == "fallback":
        function, needle = local._link_new, "os.link(tmp, path)"
    else:
        function, needle = LocalStore._create_unnamed, "os.link(proc"
    monkeypatch.setattr(local, "TMPFILE_WRITES", paused_way == "unnamed")
    thread, out, resume = _held_put(store, "c/a/a.json", b"held", function, line_of(function, needle))
    monkeypatch.setattr(local, "TMPFILE_WRITES", paused_way == "fallback")

    def write_other() -> None:
        try:
            out["other"] = store.put("c/a/a.json", b"other", create_only=True)
        except BaseException as exc:
            out["other_error"] = exc

    other = threading.Thread(target=write_other)
    other.start()
    other.join(0.5)
    waited = other.is_alive()  # the held naming holds the lock
    resume.set()
    thread.join(20)
    other.join(20)
    assert waited, out
    assert isinstance(out.get("other_error"), PreconditionFailed), out
    assert store.get("c/a/a.json") == (b"held", out["version"])
    assert os.listdir(root / "c" / "a") == ["a.json"]


def test_a_writer_killed_before_it_names_its_unnamed_file_leaves_no_file(tmp_path: Path) -> None:
    """SIGKILL right before the ``linkat`` (the bytes written and fsynced):
    the kernel frees the unnamed inode, so the folder the write made is
    left empty, with no temp file for a sweep, and the key can be created."""
    root = tmp_path / "stac"
    store = LocalStore(str(root))
    store.put("c/collection.json", b"{}")
    lineno = line_of(LocalStore._create_unnamed, "os.link(proc")
    _dies_in_child(
        LocalStore._create_unnamed,
        lineno,
        lambda: store.put("c/a/a.json", b"x" * 1_000_000, create_only=True),
        sigkill=True,
    )
    assert _files(root / "c") == ["a", "collection.json"]
    assert store.put("c/a/a.json", b"a", create_only=True) == store.get("c/a/a.json")[1]


@pytest.mark.parametrize("way", ["unnamed", "fallback"])
def test_a_folder_pruned_between_its_mkdir_and_its_childs_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """``mkdir(parents=True)`` makes a missing parent, then the child; a
    delete of another writer's document pruning that parent in between
    (another register's item created and removed in the same new
    partition) made the child's ``mkdir`` fail, and the write with it
    ("cannot create the directory ... No such file or directory"): the
    folders are made again, noted as made by this write (their parents
    fsynced), and the document is written."""
    import pathlib

    monkeypatch.setattr(local, "TMPFILE_WRITES", way == "unnamed")
    root = tmp_path / "stac"
    writer, other = LocalStore(str(root)), LocalStore(str(root))
    writer.put("c/collection.json", b"{}")
    lineno = line_of(pathlib.Path.mkdir, "self.mkdir(mode, parents=False")
    synced: list[str] = []
    real = LocalStore._fsync_dir

    def observed(self: LocalStore, directory: Path, **kwargs: Any) -> None:
        synced.append(os.fspath(directory))
        real(self, directory, **kwargs)

    monkeypatch.setattr(LocalStore, "_fsync_dir", observed)
    thread, out, resume = _held_put(writer, "c/x/y/a.json", b"a", pathlib.Path.mkdir, lineno)
    assert (root / "c" / "x").is_dir() and not (root / "c" / "x" / "y").exists()
    other.put("c/x/d.json", b"d")
    other.delete("c/x/d.json")  # prunes c/x, which the paused mkdir just made
    assert not (root / "c" / "x").exists()
    synced.clear()
    resume.set()
    thread.join(20)
    assert "error" not in out, out
    assert writer.get("c/x/y/a.json") == (b"a", out["version"])
    assert _files(root / "c") == ["collection.json", "x", "x/y", "x/y/a.json"]
    assert {str(root / "c" / "x" / "y"), str(root / "c" / "x"), str(root / "c")} <= set(synced)
