"""Contract tests for every store (local directory, memory://, S3 on moto),
plus the races that prove compare-and-swap never loses an update."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from producer.errors import InputError, MissingBucket, NotFound, PreconditionFailed, ProducerError, StoreError
from producer.store import CountingStore, FsspecStore, LocalStore, S3Store, Store, local, open_store
from producer.store.s3_obstore import ObstoreS3Store
from tests.pausing import PauseAfterGet, hold_at_line, line_of
from tests.s3server import S3Server

BACKENDS = ["local", "memory", "s3", "s3-obstore"]
#: each S3 client: the default (s3fs), obstore (STAC_S3_CLIENT=obstore)
S3_CLIENTS = {"s3": S3Store, "s3-obstore": ObstoreS3Store}


def _cleanup_memory(url: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = fs._strip_protocol(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def make_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Store]]:
    """``make_store(backend)`` -> a fresh, empty store; memory roots are removed after the test."""
    memory_roots: list[str] = []

    def make(backend: str) -> Store:
        name = uuid.uuid4().hex[:10]
        if backend == "local":
            return open_store(str(tmp_path / f"stac-{name}"))
        if backend == "memory":
            url = f"memory://stac-{name}"
            memory_roots.append(url)
            return open_store(url)
        if backend in S3_CLIENTS:
            srv: S3Server = request.getfixturevalue("s3_server")
            return S3_CLIENTS[backend](srv.url(f"stac-{name}"), srv.storage_options)
        raise AssertionError(backend)

    yield make
    for url in memory_roots:
        _cleanup_memory(url)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, make_store: Callable[[str], Store]) -> Store:
    return make_store(request.param)


# -- basics --------------------------------------------------------------------


def test_open_store_picks_the_backend(tmp_path: Path, s3_server: S3Server) -> None:
    local = open_store(str(tmp_path / "cat"))
    assert isinstance(local, LocalStore) and local.concurrent_safe
    assert local.url == str(tmp_path / "cat")
    assert open_store(f"file://{tmp_path}/cat/").url == f"file://{tmp_path}/cat"
    mem = open_store("memory://somewhere/stac/")
    assert isinstance(mem, FsspecStore) and not mem.concurrent_safe
    assert mem.url == "memory://somewhere/stac"
    s3 = open_store(s3_server.url("stac") + "/", s3_server.storage_options)
    assert isinstance(s3, S3Store) and s3.concurrent_safe
    assert s3.url == f"s3://{s3_server.bucket}/stac"
    for st in (local, mem, s3):
        assert isinstance(st, Store)


def test_open_store_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="local paths take none"):
        open_store(str(tmp_path), {"anon": True})
    with pytest.raises(InputError, match="nosuchscheme"):
        open_store("nosuchscheme://x/y")
    with pytest.raises(StoreError, match="'..' segments"):
        open_store("s3://bucket/../x")


def test_missing_s3fs_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # import s3fs -> ImportError
    with pytest.raises(StoreError, match=r"pip install 'stac-producer\[s3\]'"):
        open_store("s3://bucket/stac")


def test_round_trip(store: Store) -> None:
    version = store.put("catalog.json", b'{"id": "root"}')
    data, got_version = store.get("catalog.json")
    assert data == b'{"id": "root"}'
    assert got_version == version
    assert store.exists("catalog.json")
    assert not store.exists("other.json")
    store.put("ndvi/2024/01/item/item.json", b"{}")  # parents created as needed
    assert store.get("ndvi/2024/01/item/item.json")[0] == b"{}"


def test_version_changes_on_every_change(store: Store) -> None:
    versions = [store.put("doc.json", b"0")]
    for i in range(1, 6):  # same size, back-to-back: same mtime tick locally
        versions.append(store.put("doc.json", str(i).encode()))
        assert store.get("doc.json")[1] == versions[-1]
    assert len(set(versions)) == len(versions)


def test_stale_version_is_refused_and_nothing_changes(store: Store) -> None:
    v1 = store.put("doc.json", b"one")
    v2 = store.put("doc.json", b"two", if_version=v1)
    with pytest.raises(PreconditionFailed):
        store.put("doc.json", b"three", if_version=v1)
    assert store.get("doc.json") == (b"two", v2)
    assert isinstance(PreconditionFailed("x"), StoreError)


def test_if_version_on_missing_key_fails(store: Store) -> None:
    v = store.put("doc.json", b"one")
    store.delete("doc.json")
    with pytest.raises(PreconditionFailed):
        store.put("doc.json", b"two", if_version=v)
    assert not store.exists("doc.json")


@pytest.mark.parametrize("data", [b"", b"{}"], ids=["empty", "json"])
def test_create_only(store: Store, data: bytes) -> None:
    v = store.put("new.json", data, create_only=True)
    with pytest.raises(PreconditionFailed):
        store.put("new.json", b"other", create_only=True)
    with pytest.raises(PreconditionFailed):
        store.put("new.json", b"", create_only=True)
    assert store.get("new.json") == (data, v)


def test_both_conditions_is_a_usage_error(store: Store) -> None:
    with pytest.raises(InputError):
        store.put("doc.json", b"x", if_version="abc", create_only=True)


def test_missing_key(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get("nope.json")
    with pytest.raises(FileNotFoundError):  # NotFound is also the built-in
        store.get("dir/nope.json")
    with pytest.raises(NotFound):
        store.delete("nope.json")
    with pytest.raises(NotFound):
        store.delete("nope.json", if_version="whatever")


def test_delete(store: Store) -> None:
    v1 = store.put("a/b/c.json", b"1")
    store.put("a/b/c.json", b"2")
    with pytest.raises(PreconditionFailed):
        store.delete("a/b/c.json", if_version=v1)
    assert store.exists("a/b/c.json")
    store.delete("a/b/c.json", if_version=store.get("a/b/c.json")[1])
    assert not store.exists("a/b/c.json")
    store.put("x.json", b"x")
    store.delete("x.json")
    assert list(store.list()) == []


def test_list(store: Store) -> None:
    keys = {
        "catalog.json",
        "ndvi/collection.json",
        "ndvi/i1/i1.json",
        "ndvi/2024/01/i2/i2.json",
        "ndvi2/collection.json",
    }
    for key in keys:
        store.put(key, b"{}")
    assert set(store.list()) == keys
    assert set(store.list("")) == keys
    ndvi = {k for k in keys if k.startswith("ndvi/")}
    assert set(store.list("ndvi")) == ndvi  # segment-wise: not ndvi2/
    assert set(store.list("ndvi/")) == ndvi
    assert set(store.list("ndvi/2024")) == {"ndvi/2024/01/i2/i2.json"}
    assert set(store.list("ndvi/collection.json")) == {"ndvi/collection.json"}
    assert set(store.list("nothing")) == set()


def test_list_of_an_empty_store(store: Store) -> None:
    assert list(store.list()) == []
    assert list(store.list("a/b")) == []


BAD_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "a/../../b",
    "./a",
    "a/",
    "",
    "a\\b",
    "..",
    ".stac-producer.lock",
    "a/.stac-producer.tmp.x",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_rejected(store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="invalid store key"):
        store.put(key, b"x")
    with pytest.raises(StoreError, match="invalid store key"):
        store.get(key)
    with pytest.raises(StoreError, match="invalid store key"):
        store.delete(key)
    with pytest.raises(StoreError, match="invalid store key"):
        store.exists(key)
    assert list(store.list()) == []


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//b"])
def test_unsafe_list_prefix_is_rejected(store: Store, prefix: str) -> None:
    with pytest.raises(StoreError):
        list(store.list(prefix))


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    root = tmp_path / "inner" / "stac"
    store = LocalStore(str(root))
    for key in ("../escape.json", "../../escape.json", "/tmp/escape.json"):
        with pytest.raises(StoreError):
            store.put(key, b"x")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


def test_lock_and_temp_files_are_never_listed(store: Store) -> None:
    store.put("catalog.json", b"{}")
    store.put("ndvi/collection.json", b"{}")
    # leftovers of a crashed writer, or a lock file, dropped next to documents
    if isinstance(store, LocalStore):
        assert (store.root / ".stac-producer.lock").exists()
        (store.root / "ndvi" / ".stac-producer.tmp.collection.json.1.abc").write_bytes(b"partial")
    elif isinstance(store, S3Store):
        store.fs.pipe_file(f"{store.bucket}/{store.prefix}/ndvi/.stac-producer.tmp.x", b"partial")
        store.fs.pipe_file(f"{store.bucket}/{store.prefix}/.stac-producer.lock", b"")
    else:
        assert isinstance(store, FsspecStore)
        store.fs.pipe_file(f"{store._root}/ndvi/.stac-producer.tmp.x", b"partial")
    assert set(store.list()) == {"catalog.json", "ndvi/collection.json"}
    assert set(store.list("ndvi")) == {"ndvi/collection.json"}


def test_errors_are_producer_errors(store: Store) -> None:
    with pytest.raises(ProducerError):
        store.get("missing.json")
    with pytest.raises(OSError):
        store.get("missing.json")


# -- local specifics -------------------------------------------------------------


def test_local_writes_leave_no_temp_files_and_prune_empty_dirs(tmp_path: Path) -> None:
    root = tmp_path / "stac"
    store = LocalStore(f"file://{root}")
    v = store.put("ndvi/2024/01/i/i.json", b"1")
    with pytest.raises(PreconditionFailed):
        store.put("ndvi/2024/01/i/i.json", b"2", if_version="stale")
    with pytest.raises(PreconditionFailed):
        store.put("ndvi/2024/01/i/i.json", b"2", create_only=True)
    names = sorted(p.name for p in root.rglob("*"))
    assert names == [".stac-producer.lock", "01", "2024", "i", "i.json", "ndvi"]
    store.put("ndvi/collection.json", b"{}")
    store.delete("ndvi/2024/01/i/i.json", if_version=v)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        ".stac-producer.lock",
        "ndvi",
        "ndvi/collection.json",
    ]
    store.delete("ndvi/collection.json")
    assert root.is_dir()  # the root itself stays
    assert [p.name for p in root.iterdir()] == [".stac-producer.lock"]


def test_local_version_is_the_content_hash(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    v = store.put("a.json", b"abc")
    assert v == hashlib.sha256(b"abc").hexdigest()


def test_local_readers_never_see_partial_documents(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    store.put("big.json", b"a" * 200_000)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            data, version = store.get("big.json")
            if len(data) != 200_000 or len(set(data)) != 1 or version != hashlib.sha256(data).hexdigest():
                bad.append(f"{len(data)} bytes, {len(set(data))} distinct")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(40):
        store.put("big.json", bytes([97 + i % 26]) * 200_000)
    stop.set()
    for t in threads:
        t.join()
    assert bad == []


# -- S3 specifics ----------------------------------------------------------------


def test_s3_versions_are_etags(s3_server: S3Server) -> None:
    store = open_store(s3_server.url(f"etag-{uuid.uuid4().hex[:8]}"), s3_server.storage_options)
    v = store.put("a.json", b"abc")
    assert v == '"' + hashlib.md5(b"abc").hexdigest() + '"'  # single-part ETag
    head = s3_server.client().head_object(Bucket=s3_server.bucket, Key=f"{store.prefix}/a.json")  # type: ignore[attr-defined]
    assert head["ETag"] == v


def test_s3_uses_standard_aws_environment(s3_server: S3Server) -> None:
    # AWS_ENDPOINT_URL and dummy credentials are set by the server fixture
    store = open_store(s3_server.url(f"env-{uuid.uuid4().hex[:8]}"))
    store.put("catalog.json", b"{}", create_only=True)
    assert store.get("catalog.json")[0] == b"{}"


@pytest.mark.parametrize("client", sorted(S3_CLIENTS))
def test_s3_missing_bucket_is_a_store_error_naming_it(s3_server: S3Server, client: str) -> None:
    store = S3_CLIENTS[client]("s3://no-such-bucket-here/stac", s3_server.storage_options)
    for call in (
        lambda: store.get("catalog.json"),
        lambda: store.put("catalog.json", b"{}"),
        lambda: list(store.list()),
    ):
        with pytest.raises(StoreError, match="no-such-bucket-here") as info:
            call()
        assert not isinstance(info.value, NotFound)


def test_s3_list_paginates(s3_server: S3Server) -> None:
    store = open_store(s3_server.url(f"page-{uuid.uuid4().hex[:8]}"), s3_server.storage_options)
    assert isinstance(store, S3Store)
    store.list_page_size = 2
    keys = {f"c/i{n}/i{n}.json" for n in range(7)} | {"c", "c/collection.json", "c2/x.json"}
    for key in keys:
        store.put(key, b"{}")
    assert set(store.list()) == keys
    assert set(store.list("c")) == keys - {"c2/x.json"}


def _client_error(code: str, status: int, op: str = "PutObject") -> OSError:
    from botocore.exceptions import ClientError

    cause = ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )
    wrapped = OSError(5, code)  # the shape s3fs raises: OSError from ClientError
    wrapped.__cause__ = cause
    return wrapped


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("PreconditionFailed", 412, PreconditionFailed),
        ("ConditionalRequestConflict", 409, PreconditionFailed),
        ("NoSuchKey", 404, NotFound),
        ("404", 404, NotFound),
        ("NoSuchBucket", 404, MissingBucket),
        ("AccessDenied", 403, StoreError),
        ("InternalError", 500, StoreError),
    ],
)
def test_s3_error_translation(s3_server: S3Server, code: str, status: int, expected: type) -> None:
    store = open_store(s3_server.url("stac"), s3_server.storage_options)
    assert isinstance(store, S3Store)
    err = store._translate(_client_error(code, status), "put_object", "catalog.json")
    assert type(err) is expected
    if code == "AccessDenied":
        assert "access denied" in str(err) and store.url in str(err)
    if status >= 500:  # throttled or failing server: the fix is to retry later
        assert str(err).endswith("; retry later"), err


# -- races: no lost update ---------------------------------------------------------


def _increment(store: Store, key: str, times: int) -> int:
    """Add 1 to the counter document ``times`` times by read-modify-write with
    CAS retries; return the number of conflicts seen."""
    conflicts = 0
    for _ in range(times):
        while True:
            data, version = store.get(key)
            try:
                store.put(key, str(int(data) + 1).encode(), if_version=version)
                break
            except PreconditionFailed:
                conflicts += 1
    return conflicts


def _threaded_increments(store: Store, threads: int, times: int) -> list[int]:
    """``threads`` threads each add 1 ``times`` times; return each thread's conflicts.

    A conflict is forced, not left to the scheduler: the first thread is held
    right after its first read of the counter until another thread has
    committed a new version, so its compare-and-swap write must fail once and
    be retried.
    """
    store.put("counter", b"0", create_only=True)
    held = PauseAfterGet(store, "counter")
    conflicts: dict[int, int] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            conflicts[i] = _increment(held if i == 0 else store, "counter", times)
        except BaseException as exc:  # surface in the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    try:
        assert held.reached.wait(30), "the first thread never read the counter"
        assert held.held is not None
        deadline = time.monotonic() + 30
        while store.get("counter")[1] == held.held[1]:  # until another thread has committed
            assert time.monotonic() < deadline, "no other thread committed while the first was held"
            time.sleep(0.001)
    finally:
        held.resume.set()
        for t in pool:
            t.join()
    assert errors == []
    assert int(store.get("counter")[0]) == threads * times
    return [conflicts[i] for i in range(threads)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_never_lose_an_update(make_store: Callable[[str], Store], backend: str) -> None:
    store = make_store(backend)
    threads, times = (6, 12) if backend == "s3" else (8, 40)
    conflicts = _threaded_increments(store, threads, times)
    assert conflicts[0] >= 1  # the held thread's write lost, and its retry still counted


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_create_only_race_has_one_winner(make_store: Callable[[str], Store], backend: str) -> None:
    store = make_store(backend)
    barrier = threading.Barrier(8)
    winners: list[int] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            store.put("parent/collection.json", str(i).encode(), create_only=True)
            winners.append(i)
        except PreconditionFailed:
            pass

    pool = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(winners) == 1
    assert store.get("parent/collection.json")[0] == str(winners[0]).encode()


def _process_worker(url: str, times: int, start: Any) -> None:
    start.wait()
    _increment(open_store(url), "counter", times)


@pytest.mark.slow
def test_processes_never_lose_an_update_local(tmp_path: Path) -> None:
    url = str(tmp_path / "stac")
    store = open_store(url)
    store.put("counter", b"0", create_only=True)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs, times = 4, 50
    workers = [ctx.Process(target=_process_worker, args=(url, times, start)) for _ in range(procs)]
    for p in workers:
        p.start()
    start.set()
    for p in workers:
        p.join(timeout=60)
    assert [p.exitcode for p in workers] == [0] * procs
    assert int(store.get("counter")[0]) == procs * times
    assert sorted(os.listdir(url)) == [".stac-producer.lock", "counter"]  # no temp files left


def _open_fds(root: Path) -> list[str]:
    """What this process's open descriptors under ``root`` name (the lock
    file, temp files, folders). Counting every descriptor of the process
    failed under load when a thread left by an earlier test closed two of
    its own during the loop (59 after, 61 before)."""
    named = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor too)
            continue
        if target.startswith(os.path.realpath(root)):
            named.append(target)
    return sorted(named)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd") or not hasattr(os, "fork"), reason="Linux")
def test_local_lock_is_released_after_failed_puts_and_excludes_a_forked_child(tmp_path: Path) -> None:
    """Every put takes the root's lock on a descriptor of its own and closes
    it on every path: refused conditions and a failed rename leak no
    descriptor and leave no lock held (a leaked one would block the next
    write of another process), and a child forked while the parent holds
    the lock waits for it and then gets it: the child's inherited copy of
    the parent's descriptor (the same open file description, which the
    flock belongs to) is closed at the fork, or the lock would stay held
    for as long as the child lives."""
    store = LocalStore(str(tmp_path / "stac"))
    version = store.put("a.json", b"1", create_only=True)
    (tmp_path / "stac" / "dir.json").mkdir()
    before = _open_fds(tmp_path)
    for _ in range(50):
        with pytest.raises(PreconditionFailed):
            store.put("a.json", b"2", create_only=True)
        with pytest.raises(PreconditionFailed):
            store.put("a.json", b"2", if_version="0" * 64)
        with pytest.raises(StoreError):
            store.put("dir.json", b"2")
    assert _open_fds(tmp_path) == before == []
    ready_r, ready_w = os.pipe()
    with store._locked():
        pid = os.fork()
        if pid == 0:  # the child: its put must wait for the parent's hold
            code = 1
            try:
                os.close(ready_r)
                os.write(ready_w, b"x")
                store.put("a.json", b"child", if_version=version)
                code = 0
            finally:
                os._exit(code)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"x"
        time.sleep(0.3)
        assert store.get("a.json")[0] == b"1"  # the child is still waiting
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)
    os.close(ready_r)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if done == (0, 0):  # it kept waiting: the lock stayed held by its inherited copy
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child never got the lock the parent released")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert store.get("a.json")[0] == b"child"
    assert sorted(os.listdir(tmp_path / "stac")) == [".stac-producer.lock", "a.json", "dir.json"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_local_lock_released_while_a_child_is_forked_is_not_kept_by_the_child(tmp_path: Path) -> None:
    """A fork at the moment a thread releases the root's lock: the child
    must not keep a copy of the descriptor being released. Its release
    (forget the descriptor, then close it) ran outside the guard that keeps
    forks away from the open, so a fork between the two left the child a
    copy it did not know of: the flock stayed held for the child's life
    (every writer of the catalog waited for it). The releasing thread is
    paused (by a trace function) right before the close, and the fork is
    made then."""
    import fcntl

    from producer.store import local

    store = LocalStore(str(tmp_path / "stac"))
    store.put("a.json", b"1")
    paused, forked = threading.Event(), threading.Event()
    # with the release guarded, the fork waits for it instead: the held thread goes on after 2 s
    close_line = line_of(local._unlock, "os.close(fd)")
    tracer = hold_at_line(local._unlock, close_line, paused, forked, timeout=2, must_resume=False)

    def release() -> None:
        sys.settrace(tracer)
        try:
            with store._locked():
                pass
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=release)
    thread.start()
    assert paused.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: the lock must be free once the parent released it
        code = 1
        try:
            fd = os.open(tmp_path / "stac" / ".stac-producer.lock", os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            code = 0
        finally:
            os._exit(code)
    forked.set()
    thread.join(10)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child kept the lock the parent released"


# -- CountingStore ---------------------------------------------------------------


def test_counting_store(tmp_path: Path) -> None:
    store = CountingStore(LocalStore(str(tmp_path)))
    assert isinstance(store, Store)
    assert store.url == str(tmp_path) and store.concurrent_safe
    v = store.put("a.json", b"1", create_only=True)
    store.get("a.json")
    store.put("a.json", b"2", if_version=v)
    with pytest.raises(PreconditionFailed):
        store.put("a.json", b"3", if_version=v)  # failed calls count too
    store.exists("b.json")
    assert list(store.list("")) == ["a.json"]
    store.delete("a.json")
    assert store.puts == {"a.json": 3}
    assert store.gets == {"a.json": 1}
    assert store.deletes == {"a.json": 1}
    assert store.lists == {"": 1}
    assert store.exists_calls == {"b.json": 1}
    assert store.totals() == {"get": 1, "put": 3, "delete": 1, "list": 1, "exists": 1}
    assert store.total() == 7
    store.reset()
    assert store.total() == 0


def test_local_root_paths_home_relative_and_under_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root as given: ``~`` expanded, a relative path made absolute, an
    absolute one kept; a root that is a file or lies (several missing
    levels down) under one is refused, naming the file."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert LocalStore("~/cat").root == tmp_path / "home" / "cat"
    assert LocalStore("rel/cat").root == tmp_path / "rel" / "cat"
    assert LocalStore(str(tmp_path / "abs")).url == str(tmp_path / "abs")
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(InputError, match="the catalog path is a file"):
        LocalStore(str(tmp_path / "file.json"))
    with pytest.raises(InputError, match="file.json' is a file"):
        LocalStore(str(tmp_path / "file.json" / "a" / "b"))
    LocalStore(str(tmp_path / "missing" / "a" / "b")).put("x.json", b"{}")
    assert (tmp_path / "missing" / "a" / "b" / "x.json").read_bytes() == b"{}"


def test_local_root_of_an_absolute_path_is_parsed_once_and_checked_every_time(tmp_path: Path) -> None:
    """An absolute path's root is pathlib's reading of its text, kept per
    process (a bounded memo: a register call opens a store); whether it is
    a folder or lies under a file is asked again by every store."""
    root = tmp_path / "cat"
    spelled = f"{tmp_path}//cat/./"
    first = LocalStore(spelled)
    assert (first.root, first.url) == (root, str(root))
    again = LocalStore(spelled)
    assert (again.root, again.url) == (root, str(root))
    root.write_text("{}")  # the same text, now a file: refused as the first time would have
    with pytest.raises(InputError, match="the catalog path is a file"):
        LocalStore(spelled)
    root.unlink()
    root.mkdir()
    assert LocalStore(spelled)._real_dir == str(root)  # a folder again: its stat says so
    for n in range(local._ABSOLUTE_ROOTS_KEPT * 2):
        assert LocalStore(f"{tmp_path}/many/{n}").url == f"{tmp_path}/many/{n}"
    assert len(local._ABSOLUTE_ROOTS) <= local._ABSOLUTE_ROOTS_KEPT
