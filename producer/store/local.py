"""A store on a local (or network-mounted, POSIX-locking) directory.

Atomicity comes from two things:

* every write goes to a hidden temporary file in the target's directory, is
  fsynced, then renamed over the target (``os.replace``), so readers see the
  old or the new document, never a partial one;
* every write and delete checks its condition and renames/unlinks while holding
  an exclusive ``fcntl.flock`` on one lock file per catalog root
  (``<root>/.stac-producer.lock``), so compare-and-swap is atomic across
  threads and processes on this host (and across hosts where the file system
  honours ``flock``, e.g. NFSv4; not guaranteed on every network mount);
* a create-only write on Linux puts its bytes in an unnamed file in the
  target's directory (``O_TMPFILE``), fsynced, which ``linkat`` then names,
  under the lock; ``linkat`` fails with EEXIST when the name exists,
  atomically in the kernel, so no temp name and no ``lexists`` are needed,
  and a crash leaves nothing (the kernel frees an unnamed inode). Where the
  file system, the kernel or a missing ``/proc`` refuses that, the temp file
  way is taken (noted per root and process). Every create-only naming, that
  one's and a staged document's, is a hard link that fails on an existing
  name, under the lock; the lock keeps them atomic against a writer of an
  earlier release, whose create-only check is ``lexists`` + rename under it.

Symbolic links are never followed out of the root: every key is checked
first (each of its components below the root is ``lstat``-ed; a
key passing through a link is resolved to its real path), and a key that
leaves the root through a symlinked
folder or file is refused with a :class:`StoreError` (nothing is read, written
or deleted outside); symlinked files that leave the root are not listed. The
lock file is opened with ``O_NOFOLLOW``. Links that stay inside the root are
allowed. (A link swapped in between the check and the write is not caught:
whoever can write into the catalog folder can also write the catalog. A
folder found plain is not looked at again for :attr:`LocalStore.plain_for`
seconds, the same race a little wider: :meth:`LocalStore._existing_below`.)

A writer killed between writing its temp file and the rename leaves the
temp file behind (hidden, never listed). :meth:`LocalStore.put` of an item
(``<id>/<id>.json``) sweeps the item's folder (one document: O(1)), at most
once per ``sweep_interval`` seconds per directory and store; every other
folder (parents, which can hold every item folder of a flat collection, the
mirror's, the id index's, outboxes) is swept by
:meth:`LocalStore.sweep_temps`, which ``reconcile --fix`` calls. A sweep
deletes temp files older than ``temp_max_age``
(default 15 minutes): a live writer holds its temp file for the time of one
write plus a lock wait (milliseconds), so age tells a dead writer's file from
a live one's without any coordination between hosts.

Durability per batch (:meth:`LocalStore.batch`): inside it, a write still
fsyncs its temp file before the rename (so its bytes are durable before its
name points at them, and a write-back error such as a full disk is reported
for that file alone), but the directories whose entries it changed
(the document's folder, and the parent of every folder it created) are not
fsynced per write: they are collected, and when the batch ends each is
fsynced once; past :data:`SYNCFS_PAST` distinct folders one ``syncfs`` of
the catalog's file system replaces them (``syncfs`` also flushes other
processes' dirty pages, so it only pays off for many folders) where it
reports write-back errors (:func:`syncfs_reports_errors`), except for
folders on another file system mounted below the root. The register
pipeline waits for that before any parent links them. A failed directory
fsync (or ``syncfs``) fails the write, or the batch: never swallowed.

The new items of a register batch of more than :data:`SYNCFS_PAST`
products (where :func:`syncfs_reports_errors`) go through :class:`Staging` instead
(:meth:`LocalStore.staging`): past the first few of each flush window
(fsynced as written), their temp files are written without an
fsync, flushed together by one ``syncfs``, and only then renamed,
create-only. The name still never points at bytes a power loss can lose;
a write-back error ``syncfs`` reports names none of the items staged
unsynced. The per-file fsync was most of the CPU of a local item write.

``durability="os"`` (:meth:`LocalStore.os_durability`, the register
option ``durability``) fsyncs nothing: the temp file + rename, the lock,
the compare-and-swap and the order of the writes are kept, so a killed
process leaves exactly what it leaves with fsync; only a power loss (or a
kernel crash) may lose the last writes the kernel had not written back yet,
which ``reconcile(fix=True)`` repairs (see docs/RELIABILITY.md).

Versions are the SHA-256 of the document bytes. A token made of inode, mtime
and size would be cheaper, but after temp+rename the freed inode number is
often reused by the very next write, mtime only advances once per kernel tick,
and equal sizes are common (a counter going 3 -> 4), so two different
contents could share a token and a stale compare-and-swap would win. With a
content hash, a version can only match when the bytes are identical, and then
applying a change read from those bytes is exactly right.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import hashlib
import itertools
import logging
import os
import re
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from producer.errors import CatalogError, InputError, NotFound, PreconditionFailed, StoreError
from producer.store.base import describe_condition
from producer.store.keys import RESERVED_PREFIX, check_key, check_prefix, is_listable, under_prefix
from producer.urls import is_file_url, local_path

log = logging.getLogger(__name__)

#: what an opener passed to :meth:`LocalStore._open_in_folder` returns
_T = TypeVar("_T")

LOCK_NAME = RESERVED_PREFIX + ".lock"
#: documents that link others: their folders can be large (not swept per write)
_PARENT_NAMES = ("catalog.json", "collection.json")
_TMP_PREFIX = RESERVED_PREFIX + ".tmp."


def _load_syncfs() -> Any | None:
    """libc's ``syncfs(fd)`` (Linux), or None."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()
#: a batch that changed more folders than this ends with one ``syncfs``
#: instead of one fsync per folder
SYNCFS_PAST = 8
#: the new documents of a staging flush window fsynced as they are written
#: (:class:`Staging`): n new items of a flat collection change n + 1 folders
#: (their own, the collection's), so with up to this many the batch's end
#: fsyncs each folder too and nothing in the batch flushes the whole file
#: system
_EARLY = SYNCFS_PAST - 1
#: staged documents renamed per hold of the lock (:meth:`Staging.publish`)
_RENAMES_PER_LOCK = 256
#: the durability modes: ``fsync`` (durable when a write returns, or when its
#: batch ends) and ``os`` (no fsync: the kernel writes back when it likes)
DURABILITY_MODES = ("fsync", "os")
#: the open batches of this context: store id -> the folders its writes
#: changed (a context variable, so another thread's writes outside any batch
#: stay synced one by one; threads handed the context share the set)
_BATCHES: contextvars.ContextVar[dict[int, set[str]] | None] = contextvars.ContextVar(
    "stac_producer_local_batches", default=None
)
#: ids of the stores whose writes are not fsynced in this context (``os``)
_RELAXED: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "stac_producer_local_relaxed", default=frozenset()
)


_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
#: the lock descriptors held now in this process (see :func:`_after_fork_in_child`)
_HELD_LOCKS: set[int] = set()
#: how many forks this process descends from since import (a hold taken
#: before a fork is not the child's to release)
_FORKS = [0]
#: held around opening a lock descriptor and noting it, and around a fork,
#: so that no child is forked between the two
_FORK_GUARD = threading.Lock()

#: create-only writes through an unnamed file (``O_TMPFILE``) given its name
#: by ``linkat`` (Linux; see :meth:`LocalStore._create_unnamed`); False turns
#: them off in this process (the tests force the fallback with it)
TMPFILE_WRITES = hasattr(os, "O_TMPFILE") and sys.platform.startswith("linux")
_TMPFILE_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
#: errors of ``open(O_TMPFILE)`` that say the file system (or kernel) has no
#: unnamed files: EISDIR from a kernel older than 3.11, which opens the folder
_TMPFILE_REFUSED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS, errno.EPERM})
#: errors of the ``linkat`` of ``/proc/self/fd/N`` that say it cannot be done
#: here (no /proc: ENOENT, checked apart; a /proc link not followed: EXDEV;
#: /proc refused: EACCES, the folder itself let the unnamed file be made)
_LINK_REFUSED = frozenset(
    {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
)
#: the lock files (one per root) of the catalogs where an unnamed file was
#: refused in this process: their create-only writes take the fallback
_NO_TMPFILE: set[str] = set()
#: errors of ``link(2)`` from a file system without hard links
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})


def _link_new(tmp: str, path: str | Path) -> bool:
    """Give the temp file ``tmp`` the name ``path`` unless that name exists
    (a file, a folder or a link): True when named, False when it existed
    (``tmp`` is left to the caller). ``link(2)`` fails with EEXIST in the
    kernel, atomically (the callers hold the lock too, for writers of an
    earlier release: :meth:`LocalStore._create_unnamed`); the temp name is
    then removed (a crash in between leaves it to the sweeps). Where the file
    system has no hard links: ``lexists`` + ``os.replace`` (under the lock:
    there no unnamed files are linked either)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            return False
        os.replace(tmp, path)
        return True
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return True


#: this process's part of temp file names, ``"<pid>.<random hex>."``, made
#: on first use and again in a forked child (:func:`_after_fork_in_child`):
#: ``os.getpid()`` and ``secrets.token_hex`` were a syscall each per write
_TEMP_TAG = [""]
#: the temp names' counter (``next`` is atomic under the GIL)
_TEMP_COUNT = itertools.count()


def _temp_tag() -> str:
    """:data:`_TEMP_TAG`, made on first use in this process."""
    tag = _TEMP_TAG[0]
    if not tag:
        tag = _TEMP_TAG[0] = f"{os.getpid()}.{secrets.token_hex(6)}."
    return tag


def _open_temp(beside: str) -> tuple[int, str]:
    """Create a new temp file named ``beside`` + this process's tag + the
    next count; its descriptor and name. ``O_EXCL`` makes the name unique:
    a name taken (by a dead writer of a recycled pid whose random part
    matched, or anything else) is skipped for the next count."""
    tag = beside + _temp_tag()
    for _ in range(99):
        tmp = f"{tag}{next(_TEMP_COUNT):x}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), tmp
        except FileExistsError:
            continue
    tmp = f"{tag}{next(_TEMP_COUNT):x}"
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), tmp


def _flock_exclusive(fd: int) -> None:
    """``fcntl.flock(fd, LOCK_EX)`` (imported here: POSIX only, so the module
    imports on any OS)."""
    import fcntl  # noqa: PLC0415

    fcntl.flock(fd, fcntl.LOCK_EX)


def _after_fork_in_child() -> None:
    """In a child forked while some thread held a catalog's lock: close the
    child's copies of the held lock descriptors. A flock belongs to the open
    file description, which the child's copy keeps open: the lock stayed
    held after the parent released it, for as long as the child lived (a
    process pool's worker: every writer of the catalog waited for it), and
    a write of the child itself waited for a lock it held. The parent's
    hold is not affected (its own descriptor keeps it)."""
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()
    _FORKS[0] += 1
    _TEMP_TAG[0] = ""  # another pid, and not the parent's random part
    _FORK_GUARD.release()


def _unlock(fd: int, forks: int) -> None:
    """Release a hold taken by :meth:`LocalStore._lock` (``forks``: the fork
    count it was taken at): close its descriptor, unless a fork made this
    process since (the child's copy was closed at the fork; the number may
    name another file by now). Forgotten and closed under the fork guard: a
    fork between the two would leave the child a copy it does not know of,
    holding the lock for the child's life."""
    if forks == _FORKS[0]:
        with _FORK_GUARD:
            _HELD_LOCKS.discard(fd)
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_FORK_GUARD.acquire, after_in_parent=_FORK_GUARD.release, after_in_child=_after_fork_in_child
    )


def syncfs(directory: Path) -> None:
    """Flush every dirty page and metadata change of the file system holding
    ``directory`` to stable storage (one call, however many files)."""
    assert _SYNCFS is not None
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}")
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a short write goes on from where it
    stopped; a write that takes nothing is an I/O error). The first write
    is of ``data`` itself: a regular file takes a small document whole, so
    the memoryview a short write needs is made only then."""
    if not data:
        return
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)
    while True:
        if written <= 0:
            raise OSError(errno.EIO, "the write took no bytes")
        view = view[written:]
        if not view:
            return
        written = os.write(fd, view)


def _read_all(path: str | Path) -> bytes:
    """The bytes of the file at ``path``: one ``read`` of one byte more than
    the size ``fstat`` gives, without a buffered file object
    (``open(path, "rb").read()`` took twice as long for a small document).
    A regular file's read returns all it asked for up to the end, so exactly
    ``size`` bytes means the whole file; anything else (it grew or shrank
    meanwhile, a special file) reads on to the end. Raises what
    ``os.open``/``os.read`` raise (a directory: IsADirectoryError)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) != size:
            chunks = [data]
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: :func:`_root_from_url` of absolute plain paths met before (pathlib's
#: parsing of the text alone: no file system, no working folder, no home),
#: so that a process opening one catalog per call does not parse it again
_ABSOLUTE_ROOTS: dict[str, tuple[Path, str]] = {}
#: at most this many kept (then forgotten all at once)
_ABSOLUTE_ROOTS_KEPT = 64


def _root_from_url(url: str) -> tuple[Path, str]:
    """``(absolute root path, url as reported)`` for a plain path or ``file://`` URL."""
    if url[:1] == "/" and "://" not in url:  # an absolute plain path: a pure function of the text
        known = _ABSOLUTE_ROOTS.get(url)
        if known is None:
            path = Path(url)
            known = (path, str(path).rstrip("/") or "/")
            if len(_ABSOLUTE_ROOTS) >= _ABSOLUTE_ROOTS_KEPT:
                _ABSOLUTE_ROOTS.clear()  # one call: safe beside other threads
            _ABSOLUTE_ROOTS[url] = known
        return known
    if is_file_url(url):
        try:
            path = Path(local_path(url)).absolute()
        except InputError as exc:
            raise StoreError(f"cannot open {url!r}: file:// URLs on another host are not supported") from exc
        return path, "file://" + str(path).rstrip("/")
    if "://" in url:
        raise StoreError(f"cannot open {url!r} as a local directory: not a path or file:// URL")
    path = Path(url)
    if url.startswith("~"):
        path = path.expanduser()
    if not path.is_absolute():
        path = path.absolute()
    text = str(path)
    return path, (text.rstrip("/") or "/")


def _refuse_root_under_a_file(root: Path, url: str) -> bool:
    """An :class:`InputError` when ``root`` is, or lies under, something that
    is not a directory (a typo or a catalog.json given as the catalog): no
    write could ever succeed there, so it is not a storage error to retry.
    One ``stat`` per missing level, up to the first that exists (the
    parents are made only when the root is missing: most roots exist).
    Returns whether the root itself is a directory now."""
    path = root
    while True:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):  # missing, or a parent further up is the file
            parent = path.parent
            if parent == path:
                return False
            path = parent
            continue
        except OSError:
            return False  # permissions, I/O: the store's own errors say it when it is used
        if stat.S_ISDIR(st.st_mode):
            return path is root or path == root  # (the root itself, most often: no Path comparison)
        what = "the catalog path is a file" if path == root else f"{str(path)!r} is a file"
        raise InputError(
            f"catalog {url}: {what}, not a directory, and a catalog is a folder (holding "
            "catalog.json), so none can be read or written there; choose another catalog path (the "
            "catalog's folder, or for a new catalog a directory or a path that does not exist yet)"
        )


class LocalStore:
    """Catalog documents as files under one directory.

    ``LocalStore("/data/stac")`` or ``LocalStore("file:///data/stac")``. The
    directory is created on the first write. Writes create parent directories
    as needed and the lock file ``<root>/.stac-producer.lock``; deletes remove
    directories they leave empty (never the root). Conditional writes are
    atomic across processes (``concurrent_safe = True``); POSIX only
    (``fcntl``).
    """

    concurrent_safe: bool = True
    #: temp files older than this (seconds) belong to a dead writer and are deleted
    temp_max_age: float = 900.0
    #: a directory is swept for such files at most once per this many seconds
    sweep_interval: float = 300.0
    #: seconds a folder the symbolic-link walk found plain (a directory, not
    #: a link) is taken as such without another ``lstat`` (per store; see
    #: :meth:`_existing_below`)
    plain_for: float = 1.0

    def __init__(self, url: str, durability: str = "fsync") -> None:
        if durability not in DURABILITY_MODES:
            raise InputError(
                f"durability {durability!r} for catalog {url!r}: use one of {', '.join(DURABILITY_MODES)}"
            )
        #: ``fsync`` (default) or ``os``: see the module docstring
        self.durability = durability
        self.root, self.url = _root_from_url(url)
        is_dir = _refuse_root_under_a_file(self.root, self.url)
        self._swept: dict[str, float] = {}  # directory -> monotonic time of last sweep
        self._plain: dict[str, float] = {}  # folder found (or made) plain -> monotonic time then
        self._batch_lock = threading.Lock()  # a batch's folder set is shared by its write threads
        self._real_root: str | None = None  # the root's real path + "/", for open_read
        # the root's path as text, for _path (set once it is a folder: its stat above says so)
        self._real_dir: str | None = os.fspath(self.root) if is_dir else None
        self._syncfs_ok: bool | None = None  # whether staging may rely on syncfs (checked once)
        self._lock_file = os.path.join(self.root, LOCK_NAME)  # opened by every write: its text made once

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a Prefect process pool or Dask sends the task's
        ``catalog`` to a worker): without the lock, which cannot be
        pickled, and the per-process caches, which the copy finds again."""
        state = dict(self.__dict__)
        state.update(
            _swept={},
            _plain={},
            _batch_lock=None,
            _real_root=None,
            _real_dir=None,
            _syncfs_ok=None,
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._batch_lock = threading.Lock()
        if "_lock_file" not in state:  # pickled by a version that joined it per write
            self._lock_file = os.path.join(self.root, LOCK_NAME)
        if "_plain" not in state:  # pickled by a version without it
            self._plain = {}

    # -- helpers -----------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file for ``key``; :class:`StoreError` if it leads out of the root.

        Every write, read and delete asks, so the common case is cheap: the
        key's own components below the root are checked with one ``lstat``
        each (:meth:`_real_root_dir`); only a key that
        passes through a symbolic link is resolved in full
        (:meth:`_check_inside`). ``os.path.realpath`` of root and key on
        every call cost 0.3 ms, more than the write of a small document.
        """
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """:meth:`_path` as text (no Path built: ~2.5 us per call), for
        :meth:`get` and :meth:`put`."""
        parts = check_key(key).split("/")
        real_root = self._real_root_dir()
        if real_root is None or self._existing_below(real_root, parts) is None:
            path = self.root.joinpath(*parts)
            self._check_inside(key, path)
            return os.fspath(path)
        return real_root.rstrip(os.sep) + os.sep + key

    def _target(self, key: str) -> tuple[Path, list[str]]:
        """:meth:`_target_text` with the key's path as a Path."""
        text, missing = self._target_text(key)
        return Path(text), missing

    def _target_text(self, key: str) -> tuple[str, list[str]]:
        """:meth:`_path` of a key to write (as text), and the folders above
        it (below the root) that do not exist yet, deepest first (as text:
        no Path is built per write; a new item's folder is one): the
        ``lstat`` walk of :meth:`_path` stops at the first missing
        component, so it tells which they are (no ``stat`` per folder as
        :meth:`_missing_dirs`)."""
        parts = check_key(key).split("/")
        real_root = self._real_root_dir()
        found = None if real_root is None else self._existing_below(real_root, parts)
        if found is None or real_root is None:
            path = self.root.joinpath(*parts)
            self._check_inside(key, path)
            return os.fspath(path), self._missing_dirs(path)
        text = real_root.rstrip(os.sep) + os.sep + key
        missing: list[str] = []
        if found < len(parts) - 1:
            cut = len(text)
            for _ in range(len(parts) - 1 - found):  # parts[found] .. parts[-2] are missing
                cut = text.rfind(os.sep, 0, cut)
                missing.append(text[:cut])
        return text, missing

    def _existing_below(self, real_root: str, parts: list[str]) -> int | None:
        """How many leading components of ``parts`` exist below ``real_root``
        (one ``lstat`` each, up to the first missing one), or None when one of
        them is a symbolic link or cannot be checked (the full check decides).
        ``parts`` are checked key components (no ``.``/``..``/empty).

        A folder found plain (a directory, not a link) is taken as such for
        :attr:`plain_for` seconds without another ``lstat`` (a register call
        walks ``<collection>`` for each of its keys); the last component, the
        document itself, is looked at every time. Not a weaker check: the
        walk was never atomic with the open that follows it (a folder
        swapped for a link between the two was never caught), and a swap
        within the memo's time is the same race; a long-lived store (an
        event handler, a worker) checks again after it. A folder this store
        deletes or prunes is forgotten at once (see docs/RELIABILITY.md)."""
        memo = self._plain
        now = time.monotonic()
        current = real_root
        last = len(parts) - 1
        for i, part in enumerate(parts):
            current = current + os.sep + part
            if i < last:
                found = memo.get(current)
                if found is not None and now - found < self.plain_for:
                    continue
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                return i
            except OSError:
                return None  # the full check decides (and reports)
            if stat.S_ISLNK(mode):
                return None
            if i < last and stat.S_ISDIR(mode):
                if len(memo) >= 4096:  # bounded memory in long backfills
                    memo.clear()
                memo[current] = now
        return len(parts)

    def _made(self, folders: list[str]) -> None:
        """Note ``folders``, made by this store, as plain (:meth:`_existing_below`)."""
        now = time.monotonic()
        for folder in folders:
            self._plain[folder] = now

    def _forget(self, folder: str | Path) -> None:
        """Forget that ``folder`` was found plain (this store removed it)."""
        if self._plain:
            self._plain.pop(os.fspath(folder), None)

    def _real_root_dir(self) -> str | None:
        """The root's path as text, for the ``lstat`` walk below it, once the
        root is a directory (None before: the full check decides).

        Not its real path: the walk checks the key's components *below* the
        root, and the kernel resolves the root's own path (links above the
        catalog included) the same way for ``lstat(root + "/" + part)`` as
        for the real path, so the answer is the same. ``os.path.realpath``
        (an ``lstat`` per component of the root, in Python) cost ~30 us per
        store, and a register call opens one."""
        if self._real_dir is None and os.path.isdir(self.root):
            self._real_dir = os.fspath(self.root)
        return self._real_dir

    def _check_inside(self, key: str, path: Path) -> None:
        """Raise :class:`StoreError` naming ``key``, the symlink and the fix
        when ``path`` resolves (through symlinks) to outside the root."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return
        link, current = path, self.root  # name the first link on the way that leaves
        for part in path.relative_to(self.root).parts:
            current = current / part
            if current.is_symlink():
                link = current
                break
        raise StoreError(
            f"{key!r} in catalog {self.url} leads outside the catalog through the symbolic link "
            f"{link} -> {os.path.realpath(link)}; the producer never writes, reads or deletes through "
            "such links: replace the link by a real folder/file inside the catalog, or use the "
            "link's target as the catalog"
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the root's exclusive lock (creating root and lock file)."""
        fd, forks = self._lock()
        try:
            yield
        finally:
            _unlock(fd, forks)  # closing releases the lock

    def _lock(self) -> tuple[int, int]:
        """Open the root's lock file (creating root and lock file) and take its
        exclusive ``flock``; returns the descriptor and the fork count, for
        :func:`_unlock`, whose close releases it (:meth:`put` calls this
        without a generator-based context manager around it, ~2 us per
        write). A child forked during the hold closes its copy at once
        (:func:`_after_fork_in_child`).

        Opened per hold, not kept open per store: flock locks belong to the
        open file description, so a description of its own per hold is what
        makes threads of one process, and a child forked while a hold is on,
        exclude each other; and a lock file deleted with its catalog folder
        and made again is found anew (a kept descriptor would lock the old
        inode while other processes lock the new one)."""
        lock = self._lock_file
        try:
            try:
                with _FORK_GUARD:
                    fd = os.open(lock, _LOCK_FLAGS, 0o644)
                    _HELD_LOCKS.add(fd)
            except FileNotFoundError:  # no root yet: create it (one syscall less per write otherwise)
                self.root.mkdir(parents=True, exist_ok=True)
                with _FORK_GUARD:
                    fd = os.open(lock, _LOCK_FLAGS, 0o644)
                    _HELD_LOCKS.add(fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the lock file is a symlink: never create its target
                raise StoreError(
                    f"cannot lock catalog {self.url}: its lock file {self.root / LOCK_NAME} is a symbolic "
                    "link; delete that link (the producer recreates the lock file)"
                ) from exc
            raise StoreError(
                f"cannot lock catalog {self.url}: {exc}; check that the directory is writable"
            ) from exc
        forks = _FORKS[0]
        try:
            _flock_exclusive(fd)
        except BaseException:
            _unlock(fd, forks)
            raise
        return fd, forks

    def _read(self, key: str, path: str | Path) -> bytes:
        try:
            return _read_all(path)
        except FileNotFoundError:
            raise NotFound(f"{key!r} not found in catalog {self.url}") from None
        except IsADirectoryError:
            # not "missing": a create-only write could never succeed there
            raise CatalogError(
                f"{self.url}/{key} is a directory, not a document: move that directory away "
                "(or delete it if it holds nothing you need), then run the command again"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r} in catalog {self.url}: {exc}") from exc

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Durability per batch for the writes made inside (this context and
        the threads it is handed to; see the module docstring): the folders
        whose entries they changed are not fsynced one by one; on a normal
        exit each is fsynced once (past :data:`SYNCFS_PAST` of them: one
        ``syncfs`` of the root's file system where it is trusted, and an
        fsync of each folder on another one) before this returns, and a failure raises
        :class:`StoreError`; on an exception nothing more is synced (as if
        the process died there). A batch nested in another of the same
        store adds its folders to the outer one."""
        current = _BATCHES.get() or {}
        if id(self) in current:
            yield
            return
        dirs: set[str] = set()
        token = _BATCHES.set({**current, id(self): dirs})
        try:
            yield
        finally:
            _BATCHES.reset(token)
        if not dirs or not self._syncs():
            return
        if len(dirs) > SYNCFS_PAST and syncfs_reports_errors(self.root):
            # a folder on another file system (one mounted below the root)
            # is not flushed by the root's syncfs: it is fsynced, and only
            # the root's own folders count towards the syncfs
            try:
                root_device = os.stat(self.root).st_dev
                elsewhere = {d for d in dirs if not _on_device(d, root_device)}
                if len(dirs) - len(elsewhere) > SYNCFS_PAST:
                    syncfs(self.root)
                    dirs = elsewhere
            except OSError as exc:
                raise StoreError(
                    f"cannot make the writes to catalog {self.url} durable: {exc}; nothing written in this "
                    "batch is linked yet: check the disk, then run the command again"
                ) from exc
        for directory in sorted(dirs, key=_depth, reverse=True):
            # a folder a later delete of this batch pruned took its entries with it
            self._fsync_dir(directory, gone_ok=True)

    @contextlib.contextmanager
    def unbatched(self) -> Iterator[None]:
        """The writes made inside (this context) are durable when each
        returns, as outside a batch, even inside one: for a document others
        must find on storage before the batch's next writes (the root before
        the first item)."""
        current = _BATCHES.get() or {}
        if id(self) not in current:
            yield
            return
        token = _BATCHES.set({k: v for k, v in current.items() if k != id(self)})
        try:
            yield
        finally:
            _BATCHES.reset(token)

    @contextlib.contextmanager
    def os_durability(self) -> Iterator[None]:
        """No fsync for the writes made inside (this context and the threads
        it is handed to): durability ``os`` for one call, whatever
        :attr:`durability` says."""
        token = _RELAXED.set(_RELAXED.get() | {id(self)})
        try:
            yield
        finally:
            _RELAXED.reset(token)

    def _syncs(self) -> bool:
        """Whether writes are fsynced here and now (durability ``fsync``)."""
        return self.durability == "fsync" and id(self) not in _RELAXED.get()

    def _batch_dirs(self) -> set[str] | None:
        """The folder set of this store's open batch in this context, or None
        (see :func:`producer.parallel.map_ordered` for threads)."""
        return (_BATCHES.get() or {}).get(id(self))

    def _write_temp(self, key: str, path: str | Path, data: bytes, sync: bool, created: list[str]) -> str:
        """Write ``data`` to a hidden temp file beside ``path`` (fsynced if
        ``sync``); ``created``: the folders missing above it, made first (a
        folder pruned meanwhile is made again and noted there). Returns the
        temp file's path (text: no Path is made per write)."""
        text = os.fspath(path)  # kept by the Path: the rename reuses it (its parent's would be built)
        cut = text.rfind(os.sep) + 1
        beside = f"{text[:cut]}{_TMP_PREFIX}{text[cut:]}."
        try:
            fd, tmp = self._open_in_folder(key, path, created, lambda: _open_temp(beside))
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
        try:
            try:  # the bytes straight to the descriptor: no buffered file object (3 syscalls less)
                _write_all(fd, data)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # disk full, quota, I/O error: a store error naming the key
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _open_in_folder(self, key: str, path: str | Path, created: list[str], opener: Callable[[], _T]) -> _T:
        """``opener()``, an open of a new file in ``path``'s folder, which
        the first attempt assumes exists (it mostly does; the open fails
        otherwise) unless ``created`` names folders the walk found missing
        (made first). A concurrent delete may remove a folder meanwhile (it
        prunes empty ones): it is made again and the open retried, up to 5
        times, each folder made noted in ``created``. Other ``OSError``s of
        ``opener`` go to the caller, who words them."""
        for attempt in range(5):
            if attempt or created:
                self._make_folder(key, path, created, again=bool(attempt))
            try:
                return opener()
            except FileNotFoundError:
                continue
            except NotADirectoryError as exc:
                if not attempt:
                    continue  # the mkdir of the next attempt says which parent is a file
                raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
        raise StoreError(f"cannot write {key!r} in catalog {self.url}: its directory keeps disappearing")

    def _create_unnamed(self, key: str, path: str, data: bytes, sync: bool, created: list[str]) -> bool:
        """A create-only write with no temp name: ``data`` goes to an
        unnamed file in ``path``'s folder (``O_TMPFILE``), fsynced if
        ``sync``, which ``linkat`` of ``/proc/self/fd/N`` then names
        ``path``. ``linkat`` fails with EEXIST when the name exists (a file,
        a folder or a link), in the kernel, atomically: that is the
        create-only check, so no ``lexists`` is needed, and a crash leaves
        no file behind (the kernel frees an unnamed inode). The naming is
        still done under the catalog's lock, which costs ~6 us: a writer of
        an earlier release (one catalog written by an upgraded and a not yet
        upgraded process) checks the name and renames over it under that
        lock, and a name made between its two steps would be replaced, both
        writers reporting the creation. The lock opens with ``O_NOFOLLOW``,
        so a lock file that is a symbolic link is refused before any name is
        made.
        ``created``: the folders missing above ``path`` (made here; a folder
        pruned meanwhile is made again, and noted in ``created``).

        Returns False, having named nothing, where unnamed files are refused
        (the file system, the kernel, no /proc): noted for the root, so this
        process's later create-only writes there take the temp-file way at
        once. :class:`PreconditionFailed` when the name exists,
        :class:`StoreError` when the write fails."""
        text = os.fspath(path)
        folder = text[: text.rfind(os.sep)] or os.sep
        try:
            fd = self._open_in_folder(key, path, created, lambda: os.open(folder, _TMPFILE_FLAGS, 0o644))
        except StoreError:
            raise
        except OSError as exc:
            if exc.errno in _TMPFILE_REFUSED:
                _NO_TMPFILE.add(self._lock_file)
                return False
            raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
        try:
            try:
                _write_all(fd, data)
                if sync:
                    os.fsync(fd)
            except OSError as exc:  # disk full, quota, I/O error
                raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
            proc = f"/proc/self/fd/{fd}"
            last: OSError | None = None
            for _ in range(5):
                try:
                    # a dir fd makes CPython call linkat (link(2) does not
                    # follow the /proc link: EXDEV); the path is absolute,
                    # so which descriptor it is does not matter. Named under
                    # the lock: a writer of an earlier release makes its
                    # create-only check (lexists) and its rename under it,
                    # and a name made between the two would be replaced
                    lock, forks = self._lock()
                    try:
                        os.link(proc, text, src_dir_fd=fd, follow_symlinks=True)
                    finally:
                        _unlock(lock, forks)
                    return True
                except FileExistsError:
                    raise PreconditionFailed(
                        f"{key!r} already exists in catalog {self.url} (create_only)"
                    ) from None
                except FileNotFoundError as exc:
                    if not os.path.exists(proc):  # no /proc here
                        _NO_TMPFILE.add(self._lock_file)
                        return False
                    # the folder went meanwhile (a delete pruned it): again
                    self._make_folder(key, path, created, again=True)
                    last = exc
                except OSError as exc:
                    if exc.errno in _LINK_REFUSED:
                        _NO_TMPFILE.add(self._lock_file)
                        return False
                    raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
            raise StoreError(
                f"cannot write {key!r} in catalog {self.url}: {last}; its directory keeps disappearing"
            )
        finally:
            os.close(fd)

    def _make_folder(self, key: str, path: str | Path, created: list[str], *, again: bool) -> None:
        """Make the folder of ``path`` (and its parents). ``again``: it was
        found missing after the walk (a delete pruned it meanwhile), so which
        folders are made is learnt first and noted in ``created`` (their
        entries are made durable, and pruned after a failure, as the ones the
        walk found missing). ``Path.mkdir(parents=True, exist_ok=True)``, with
        its first ``mkdir`` on text (no Path built: one folder, a new item's,
        is the common case) and pathlib's walk up only when a parent is
        missing too."""
        text = os.fspath(path)
        folder = text[: text.rfind(os.sep)] or os.sep
        if again:
            missing = self._missing_dirs(Path(text))
            if len(missing) > len(created):
                created[:] = missing
        try:
            try:
                os.mkdir(folder)
            except FileNotFoundError:  # a parent is missing too
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError:  # as Path.mkdir(exist_ok=True): EEXIST, or another error, of a directory is fine
                if not os.path.isdir(folder):
                    raise
            return
        except (FileNotFoundError, FileExistsError, NotADirectoryError):
            # a parent it made pruned before the child's mkdir, or one found
            # made (EEXIST) and pruned before pathlib's is_dir: a race with a
            # delete, or a parent that is a file; one at a time below says which
            pass
        except OSError as exc:
            raise StoreError(f"cannot create the directory for {key!r} in catalog {self.url}: {exc}") from exc
        self._make_folders_one_by_one(key, Path(folder), created)

    def _make_folders_one_by_one(self, key: str, folder: Path, created: list[str]) -> None:
        """Make ``folder`` and its missing parents below the root from the
        top down, each one this call makes noted in ``created`` (deepest
        first), again from the top when a delete prunes one before its
        child is made (rv36: ``mkdir(parents=True)`` then failed the write
        with "No such file or directory"; deletes prune under the lock,
        folders are made without it). Only after such a race: it costs a
        ``mkdir`` per level."""
        chain: list[Path] = []  # below the root, deepest first
        current = folder
        while current != self.root and self.root in current.parents:
            chain.append(current)
            current = current.parent
        last: OSError | None = None
        for _ in range(8):
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                for directory in reversed(chain):
                    try:
                        os.mkdir(directory)
                    except FileExistsError:
                        # FileNotFoundError here: pruned since, from the top
                        if not stat.S_ISDIR(os.stat(directory).st_mode):
                            raise NotADirectoryError(
                                errno.ENOTDIR, "not a directory", str(directory)
                            ) from None
                        continue
                    made = os.fspath(directory)
                    if made not in created:
                        created.append(made)
                created.sort(key=_depth, reverse=True)
                return
            except FileNotFoundError as exc:
                last = exc  # pruned again meanwhile: from the top
            except NotADirectoryError as exc:
                created.sort(key=_depth, reverse=True)
                raise StoreError(
                    f"cannot write {key!r} in catalog {self.url}: a parent is a file ({exc})"
                ) from exc
            except OSError as exc:
                created.sort(key=_depth, reverse=True)
                raise StoreError(
                    f"cannot create the directory for {key!r} in catalog {self.url}: {exc}"
                ) from exc
        created.sort(key=_depth, reverse=True)
        raise StoreError(
            f"cannot create the directory for {key!r} in catalog {self.url}: {last}; "
            "its folders keep being removed (a concurrent delete prunes them)"
        )

    def _fsync_dir(self, directory: str | Path, *, gone_ok: bool = False) -> None:
        """fsync ``directory``, so the entries renamed or created in it are
        durable; :class:`StoreError` if that fails (the write is then not
        known to be durable: never reported as done). A file system that
        cannot fsync a directory at all (``EINVAL``) has nothing to sync, nor
        has a folder that no longer exists when ``gone_ok``."""
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno == errno.EINVAL or (gone_ok and exc.errno == errno.ENOENT):
                return
            raise StoreError(
                f"cannot make the folder {directory} of catalog {self.url} durable (fsync: {exc}); "
                "what was written there may be lost on power loss: check the disk, then run the "
                "command again"
            ) from exc

    # -- Store protocol ----------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(bytes, sha256 hex)``; no lock needed (renames are atomic)."""
        data = self._read(key, self._file(key))
        version = _version(data)
        log.debug("%r get %s: %d bytes, version %s", self, key, len(data), version)
        return data, version

    def open_read(self, key: str) -> BinaryIO:
        """An open binary file of ``key``'s current bytes, for a reader that
        reads only parts of a large file (the mirror's parquet footers, column
        chunks and row groups) and needs no version: nothing is hashed. The
        caller closes it. A write replaces the file by rename, so the open
        file keeps the bytes it was opened on. Raises :class:`NotFound`."""
        path = self.root.joinpath(*check_key(key).split("/"))
        real = os.path.realpath(path)
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root).rstrip(os.sep) + os.sep
        if not real.startswith(self._real_root):
            self._check_inside(key, path)  # names the link that leaves the root and raises
        try:
            return open(real, "rb")  # handed to the caller, who closes it
        except FileNotFoundError:
            raise NotFound(f"{key!r} not found in catalog {self.url}") from None
        except IsADirectoryError:
            raise CatalogError(
                f"{self.url}/{key} is a directory, not a document: move that directory away"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r} in catalog {self.url}: {exc}") from exc

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_version: str | None = None,
        create_only: bool = False,
    ) -> str:
        """Write ``data`` at ``key`` via temp file + rename; return its version.

        The temp file is written before taking the lock; the condition check
        and the rename happen under the lock. On a failed condition the temp
        file is removed and nothing changes.
        """
        if if_version is not None and create_only:
            raise InputError("put(): pass either if_version or create_only, not both")
        path, created = self._target_text(key)
        data = bytes(data)
        sync = self._syncs()
        if create_only and TMPFILE_WRITES and self._lock_file not in _NO_TMPFILE:
            try:
                named = self._create_unnamed(key, path, data, sync, created)
            except BaseException:
                self._prune(created)
                raise
            if named:
                return self._written(key, path, created, data, sync, if_version, create_only)
        try:
            tmp = self._write_temp(key, path, data, sync, created)
        except BaseException:
            self._prune(created)
            raise
        try:
            lock, forks = self._lock()
            try:
                if create_only:
                    try:
                        named = _link_new(tmp, path)
                    except OSError as exc:
                        raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
                    if not named:  # a file, a folder or a link
                        raise PreconditionFailed(
                            f"{key!r} already exists in catalog {self.url} (create_only)"
                        )
                elif if_version is not None:
                    try:
                        current = _version(self._read(key, path))
                    except NotFound:
                        raise PreconditionFailed(
                            f"{key!r} in catalog {self.url} was deleted since it was read"
                        ) from None
                    if current != if_version:
                        raise PreconditionFailed(f"{key!r} in catalog {self.url} changed since it was read")
                if not create_only:
                    try:
                        os.replace(tmp, path)
                    except IsADirectoryError as exc:
                        raise StoreError(
                            f"cannot write {key!r} in catalog {self.url}: it is a directory"
                        ) from exc
                    except OSError as exc:
                        raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
            finally:
                _unlock(lock, forks)  # closing releases the lock
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._prune(created)
            raise
        return self._written(key, path, created, data, sync, if_version, create_only)

    def _written(
        self,
        key: str,
        path: str,
        created: list[str],
        data: bytes,
        sync: bool,
        if_version: str | None,
        create_only: bool,
    ) -> str:
        """:meth:`put`'s end once ``path`` has its new bytes: the folders
        made durable, the bookkeeping, the version returned."""
        if sync:
            self._changed_dirs(path, created)
        self._after_write(path, created)
        if created:  # made here, so plain: the next walks need not look
            self._made(created)
        version = _version(data)
        if log.isEnabledFor(logging.DEBUG):  # describe_condition is not free
            log.debug(
                "%r put %s (%s): %d bytes, new version %s",
                self,
                key,
                describe_condition(if_version, create_only),
                len(data),
                version,
            )
        return version

    def _after_write(self, path: str | Path, created: list[str]) -> None:
        """Bookkeeping after ``path`` was renamed into place (``created``: the
        folders the write made): a write into an item's own folder
        (``<id>/<id>.json``, one document: O(1)) sweeps it for dead writers'
        temp files, at most once per :attr:`sweep_interval`, unless this
        write created it (a new folder holds none). Every other folder is
        swept by :meth:`sweep_temps`, which ``reconcile --fix`` calls: a
        parent's (a flat collection holds every item folder), the mirror
        base's (the collection's or partition's), the id index's and an
        outbox's can each hold a collection's worth of entries, and a scan
        of one per write (per store: a register call opens one) was O(N)."""
        text = os.fspath(path)  # on text: three Path attributes cost ~3 us per write
        cut = text.rfind(os.sep)
        folder = text[:cut]
        if created and created[0] == folder:
            return
        name = text[cut + 1 :]
        if (
            name.endswith(".json")
            and name[:-5] == folder[folder.rfind(os.sep) + 1 :]
            and name not in _PARENT_NAMES
        ):
            self._sweep_temps(folder)

    def _changed_dirs(self, path: str | Path, created: list[str]) -> None:
        """After a write that put a new name at ``path`` (and made the
        folders ``created``): make those entries durable, at once or when
        the batch ends (nothing with durability ``os``)."""
        if not self._syncs():
            return
        # the folder holding the new name, and the parent of every folder
        # this write created (its entry is new too); in a batch: once,
        # when the batch ends
        changed = [_parent(os.fspath(path)), *(_parent(d) for d in created)]
        batch = self._batch_dirs()
        if batch is not None:
            with self._batch_lock:
                batch.update(changed)
        else:
            for directory in changed:
                self._fsync_dir(directory)

    def staging(self, count: int) -> Staging | None:
        """A :class:`Staging` for the ``count`` create-only writes of this
        batch, or None (each write then fsyncs its own file, as ``put``
        does): outside :meth:`batch`, for :data:`SYNCFS_PAST` documents or
        fewer (an fsync each costs less than flushing the whole file system,
        other processes' writes included), or where ``syncfs`` does not
        report write-back errors (:func:`syncfs_reports_errors`)."""
        if self._batch_dirs() is None or count <= SYNCFS_PAST:
            return None
        if self._syncs() and not self._syncfs_reports_errors():
            return None
        return Staging(self)

    def _syncfs_reports_errors(self) -> bool:
        """:func:`syncfs_reports_errors` for the root (its nearest existing
        folder before the first write), once per store."""
        if self._syncfs_ok is None:
            folder = self.root
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            self._syncfs_ok = syncfs_reports_errors(folder)
        return self._syncfs_ok

    def _missing_dirs(self, path: Path) -> list[str]:
        """The directories above ``path`` (below the root) that do not exist yet, deepest first."""
        out = []
        parent = path.parent
        while parent != self.root and self.root in parent.parents and not parent.exists():
            out.append(os.fspath(parent))
            parent = parent.parent
        return out

    def _prune(self, dirs: list[str]) -> None:
        """After a failed write, remove the directories it created, deepest
        first, while they are empty (a concurrent writer's file keeps one)."""
        for directory in dirs:
            self._forget(directory)
            try:
                os.rmdir(directory)
            except OSError:
                break

    def sweep_temps(self, prefix: str = "") -> int:
        """Delete the temp files of killed writers (older than
        :attr:`temp_max_age`) in every folder under ``prefix``; return how
        many. Reads the whole tree: called by ``reconcile --fix``, not per write."""
        start = self.root.joinpath(*check_prefix(prefix).split("/")) if prefix else self.root
        removed = 0
        for dirpath, dirnames, _ in os.walk(start):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            self._swept.pop(dirpath, None)
            removed += self._sweep_temps(dirpath)
        return removed

    def _sweep_temps(self, directory: str) -> int:
        """Delete temp files older than :attr:`temp_max_age` in ``directory``
        (left by writers killed before their rename); return how many.

        At most once per :attr:`sweep_interval` per directory, so its cost
        (one directory scan) is spread over many writes. Never raises: a
        file that vanished or cannot be removed is skipped.
        """
        now = time.monotonic()
        last = self._swept.get(directory)
        if last is not None and now - last < self.sweep_interval:
            return 0
        if len(self._swept) >= 4096:  # bounded memory in long backfills
            self._swept.clear()
        self._swept[directory] = now
        cutoff = time.time() - self.temp_max_age
        removed = 0
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.startswith(_TMP_PREFIX):
                continue
            try:
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff
                ):
                    os.unlink(entry.path)
                    removed += 1
                    log.debug("%r removed the stale temp file %s", self, entry.path)
            except OSError:
                continue
        return removed

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Remove ``key`` (under the lock) and then every parent directory it
        leaves empty, up to but not including the root; durable as a write is
        (the folder that lost an entry is fsynced: at once, or when the
        batch ends; not with durability ``os``)."""
        path = self._path(key)
        with self._locked():
            if if_version is not None and _version(self._read(key, path)) != if_version:
                raise PreconditionFailed(f"{key!r} in catalog {self.url} changed since it was read")
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise NotFound(f"{key!r} not found in catalog {self.url}") from None
            except IsADirectoryError:
                raise NotFound(f"{key!r} in catalog {self.url} is a directory, not a document") from None
            except OSError as exc:
                raise StoreError(f"cannot delete {key!r} in catalog {self.url}: {exc}") from exc
            log.debug("%r delete %s (%s)", self, key, describe_condition(if_version))
            parent = path.parent
            while parent != self.root and self.root in parent.parents:
                self._forget(parent)
                try:
                    parent.rmdir()
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        raise StoreError(f"cannot prune {parent} in catalog {self.url}: {exc}") from exc
                    break
                parent = parent.parent
            if self._syncs():
                # the folder whose entry went (the file's, or the last folder
                # pruned): a power loss must not bring back what a remove or a
                # group commit deleted for good; in a batch, when it ends
                batch = self._batch_dirs()
                if batch is not None:
                    with self._batch_lock:
                        batch.add(os.fspath(parent))
                else:
                    self._fsync_dir(parent, gone_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield document keys under ``prefix`` (segment-wise), skipping the
        lock file and temporary files."""
        prefix = check_prefix(prefix)
        parts = prefix.split("/")
        # paths as text (no Path per call or per folder walked): the root's,
        # and below it the checked prefix's components, as joinpath gives them
        root = os.fspath(self.root)
        base = root.rstrip(os.sep) + os.sep
        start = base + prefix if prefix else root
        real_root = self._real_root_dir()
        found = self._existing_below(real_root, parts) if prefix and real_root is not None else None
        if prefix and found is None:
            self._check_inside(prefix, Path(start))  # as _path: resolved in full only past a link
        elif prefix and found is not None and found < len(parts):
            # a folder on the way is missing (a collection's intents folder,
            # mostly): nothing below it, and no stat or walk to learn that
            log.debug("%r list %r: 0 key(s)", self, prefix)
            return
        root_real: str | None = None  # the root's real path + "/": only once a link is found
        if os.path.isfile(start):
            listable = is_listable(prefix)
            log.debug("%r list %r: %d key(s)", self, prefix, int(listable))
            if listable:
                yield prefix
            return

        def onerror(exc: OSError) -> None:
            if not isinstance(exc, FileNotFoundError):
                raise StoreError(f"cannot list {prefix!r} in catalog {self.url}: {exc}") from exc

        count = 0
        for dirpath, dirnames, filenames in os.walk(start, onerror=onerror):
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
            rel = "." if dirpath == root else dirpath[len(base) :]  # below the root: os.walk joins onto start
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    if root_real is None:
                        root_real = os.path.realpath(self.root).rstrip(os.sep) + os.sep
                    if not os.path.realpath(full).startswith(root_real):
                        continue  # a file linked in from outside is not a document of this catalog
                if is_listable(key) and under_prefix(key, prefix):
                    count += 1
                    yield key
        log.debug("%r list %r: %d key(s)", self, prefix, count)

    def exists(self, key: str) -> bool:
        """True if ``key`` is a file (:class:`StoreError` if it leads out of the root)."""
        return self._path(key).is_file()

    def modified(self, key: str) -> datetime:
        """When the file at ``key`` was last written (its mtime, UTC); :class:`NotFound` if absent."""
        try:
            mtime = self._path(key).stat().st_mtime
        except FileNotFoundError as exc:
            raise NotFound(f"{key!r} not found") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {key!r}: {exc.strerror or exc}") from exc
        return datetime.fromtimestamp(mtime, UTC)


class _Staged:
    """One staged document: its key, final path, temp file, the folders its
    temp write created, its version, and whether its bytes are durable
    already (fsynced when written: a folder on another file system)."""

    __slots__ = ("created", "durable", "key", "path", "tmp", "version")

    def __init__(
        self, key: str, path: Path, tmp: str, created: list[str], version: str, durable: bool
    ) -> None:
        self.key, self.path, self.tmp, self.created = key, path, tmp, created
        self.version, self.durable = version, durable


def _on_device(folder: str, device: int) -> bool:
    """Whether ``folder`` is on the file system ``device``; True for a folder
    gone meanwhile (pruned by a later delete: nothing left to sync)."""
    try:
        return os.stat(folder).st_dev == device
    except FileNotFoundError:
        return True
    except OSError:
        return False  # cannot tell: its fsync says what is wrong


def _parent(path: str) -> str:
    """The folder of ``path`` (an absolute, normalised path as text), as
    ``Path(path).parent`` gives it, without building a Path."""
    return path[: path.rfind(os.sep)] or os.sep


def _depth(path: str) -> int:
    """How deep ``path`` (absolute, normalised, as text) lies: its
    separators, for sorting deepest first (as ``len(Path(path).parts)``)."""
    return path.count(os.sep) if path != os.sep else 0


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _kernel_at_least(major: int, minor: int) -> bool:
    """Whether the running Linux kernel is ``major.minor`` or later."""
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return found is not None and (int(found[1]), int(found[2])) >= (major, minor)


#: file systems whose ``syncfs`` makes data durable and reports its
#: write-back errors (local block file systems; not FUSE, whose daemon
#: ``syncfs`` does not reach, nor network or layered ones, unverified; not
#: btrfs either: a subvolume's st_dev is not the mount's, so it is not found)
_SYNCFS_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "f2fs", "tmpfs"})


def _mount_type(mountinfo: str, device: int) -> str | None:
    """The file system type of the mount whose device (major:minor, the
    third field of a ``/proc/self/mountinfo`` line) is ``device``, or None."""
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == wanted and " - " in line:
            return line.split(" - ", 1)[1].split()[0]
    return None


def _fs_type(device: int) -> str | None:
    """The type of the mounted file system with st_dev ``device``, or None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            return _mount_type(fh.read(), device)
    except OSError:
        return None


def syncfs_reports_errors(directory: Path) -> bool:
    """Whether ``syncfs`` of the file system holding ``directory`` makes its
    data durable and reports its write-back errors: Linux 5.17 or later
    (before 5.8 it failed only for a bad descriptor, so a full disk at
    write-back went unseen; before 5.17 it dropped the file system's own
    sync error, a failed journal commit's, which an fsync reports) and a
    file system of :data:`_SYNCFS_TYPES`."""
    if _SYNCFS is None or not sys.platform.startswith("linux") or not _kernel_at_least(5, 17):
        return False
    try:
        device = os.stat(directory).st_dev
    except OSError:
        return False
    return _fs_type(device) in _SYNCFS_TYPES


class Staging:
    """Create-only writes of one batch, made durable together
    (:meth:`LocalStore.staging`; see docs/RELIABILITY.md).

    :meth:`stage` is the first half of ``put(key, data, create_only=True)``:
    the bytes go to a hidden temp file beside the key, *not* fsynced (but
    for the first :data:`_EARLY` of each flush window, so that a window
    with no more new documents needs no ``syncfs``), and no
    name points at them yet; a key that exists already (or is staged
    already) raises :class:`PreconditionFailed` at once. :meth:`publish`
    then makes every staged temp file durable with one ``syncfs`` of the
    catalog's file system, through a descriptor opened before the first
    staged byte (so it reports any write-back error since), and only then
    renames each one to its key, still create-only (under the lock). A name
    never points at bytes a power loss can lose, as with ``put``, at one
    flush per batch instead of an fsync per document (the fsync was most of
    the CPU of a local item write).

    When ``syncfs`` reports an error, none is named: every staged
    document not fsynced as written fails (the temp files are closed, and a
    file's error can go with its evicted inode, so a clean fsync now does
    not prove a file whole); an fsync of each says whose error it is, for
    the messages. A document in a folder on another file system than the
    root is fsynced as it is written. Thread-safe. :meth:`age` tells how
    long the oldest staged temp file has waited: a caller publishes long
    before :attr:`LocalStore.temp_max_age`, when sweeps take temp files for
    a dead writer's (one taken all the same comes back from :meth:`publish`
    as :class:`PreconditionFailed`: write it the usual way).
    """

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._items: list[_Staged] = []
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        self._fd: int | None = None  # the root, opened before the first staged byte
        self._root_dev: int | None = None
        self._trusted = True  # the root's file system flushes with syncfs (checked with the descriptor)
        self._devices: dict[str, bool] = {}  # folder -> on another file system (this window)
        self._since: float | None = None  # monotonic time of the oldest staged byte
        self._fsynced = 0  # documents of this window fsynced as written because they came first

    def age(self) -> float:
        """Seconds since the oldest document now staged was staged (0: none)."""
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    def stage(self, key: str, data: bytes) -> str:
        """Write ``data`` for ``key`` to a temp file (see the class); return
        the version it will have. :class:`PreconditionFailed` when ``key``
        exists or is staged already (nothing written), :class:`StoreError`
        when the temp file cannot be written (nothing left)."""
        store = self.store
        path, created = store._target(key)
        with self._lock:
            if key in self._keys:
                raise PreconditionFailed(f"{key!r} is staged already in catalog {store.url} (create_only)")
            if self._fd is None:  # before any staged byte: syncfs then sees every later error
                try:
                    self._fd = os.open(store.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    self._root_dev = os.fstat(self._fd).st_dev
                except OSError as exc:
                    raise StoreError(f"cannot write {key!r} in catalog {store.url}: {exc}") from exc
                # the root as it is now (the store checked its nearest folder
                # before the root existed): where syncfs is not trusted,
                # every document is fsynced as written
                self._trusted = _fs_type(self._root_dev) in _SYNCFS_TYPES
                self._devices = {}
            self._keys.add(key)
        try:
            if os.path.lexists(path):  # a file, a folder or a link: the caller writes it the usual way
                raise PreconditionFailed(f"{key!r} already exists in catalog {store.url} (create_only)")
            # the first few of a window are fsynced as written: a flush
            # window with that few new items (a re-run that finds most
            # products registered) needs no syncfs, which would also flush
            # every other process's writes on the file system
            with self._lock:
                early = self._fsynced < _EARLY
                self._fsynced += early
            # a folder on another file system than the root (a mount below
            # it): syncfs of the root would not flush it, so fsync as written
            durable = store._syncs() and (
                early
                or not self._trusted
                or self._elsewhere(_parent(created[-1] if created else os.fspath(path)))
            )
            data = bytes(data)
            try:
                tmp = store._write_temp(key, path, data, durable, created)
            except BaseException:
                store._prune(created)
                raise
        except BaseException:
            with self._lock:
                self._keys.discard(key)
            raise
        staged = _Staged(key, path, tmp, created, _version(data), durable)
        with self._lock:
            self._items.append(staged)
            if self._since is None:
                self._since = time.monotonic()
        return staged.version

    @property
    def window(self) -> float:
        """Seconds a document may stay staged before its batch publishes
        what it has (an eighth of :attr:`LocalStore.temp_max_age`)."""
        return self.store.temp_max_age / 8

    def _elsewhere(self, folder: str) -> bool:
        """Whether ``folder`` (an existing one) is on another file system than
        the root; one stat per folder and flush window (a flat collection's
        new items all hang below the collection's folder)."""
        known = self._devices.get(folder)
        if known is None:
            try:
                known = os.stat(folder).st_dev != self._root_dev
            except OSError:
                return True  # cannot tell: fsync as written, as put does
            self._devices[folder] = known
        return known

    def publish(self) -> dict[str, str | StoreError | PreconditionFailed]:
        """Make the staged bytes durable, then give each its name (see the
        class). Returns, per staged key: its version (written), a
        :class:`PreconditionFailed` (another writer created the key
        meanwhile; nothing of this one is left) or a :class:`StoreError`
        (its bytes could not be made durable or renamed; nothing left).
        The staging is empty afterwards and can stage again."""
        items, fd = self._take()
        out: dict[str, str | StoreError | PreconditionFailed] = {}
        try:
            failed = self._make_durable(items, fd)
            for staged in reversed(items):  # deepest folders first: a shared new folder goes last
                error = failed.get(staged.key)
                if error is not None:
                    self._drop(staged)
                    out[staged.key] = error
            store = self.store
            pending = [s for s in items if s.key not in failed]
            for start in range(0, len(pending), _RENAMES_PER_LOCK):
                try:
                    with store._locked():
                        for staged in pending[start : start + _RENAMES_PER_LOCK]:
                            out[staged.key] = self._rename(staged)
                except (StoreError, OSError) as exc:  # the lock failed: none of the rest is named
                    if isinstance(exc, StoreError):
                        error = exc
                    else:
                        error = StoreError(f"cannot lock catalog {store.url}: {exc}; check the disk")
                        error.__cause__ = exc
                    for staged in reversed(pending[start:]):
                        if staged.key not in out:
                            self._drop(staged)
                            out[staged.key] = error
                    break
            for staged in pending:
                if isinstance(out.get(staged.key), str):
                    store._changed_dirs(staged.path, staged.created)
                    store._after_write(staged.path, staged.created)
            refused = sum(not isinstance(outcome, str) for outcome in out.values())
            log.debug("%r published %d staged document(s), %d refused", store, len(items), refused)
            return out
        except BaseException:
            for staged in reversed(items):
                if staged.key not in out:
                    self._drop(staged)
            raise
        finally:
            _close(fd)

    def discard(self) -> None:
        """Remove every temp file staged and not yet published."""
        items, fd = self._take()
        for staged in reversed(items):
            self._drop(staged)
        _close(fd)

    def _take(self) -> tuple[list[_Staged], int | None]:
        """The staged documents and the root's descriptor, leaving the
        staging empty (a new flush window)."""
        with self._lock:
            items, self._items, self._keys, self._since = self._items, [], set(), None
            fd, self._fd, self._fsynced = self._fd, None, 0
        return items, fd

    def _make_durable(self, items: list[_Staged], fd: int | None) -> dict[str, StoreError]:
        """The keys whose bytes could not be made durable, with the error.

        When ``syncfs`` reports a write-back error, every staged document
        not fsynced as written fails: a file's error can be lost with its
        inode once no descriptor holds it (the temp files are closed), so
        the files that do not report it are not known to be whole. An fsync
        of each says which files do, for the messages."""
        store = self.store
        if not store._syncs() or all(staged.durable for staged in items):
            return {}  # nothing staged unsynced: nothing to flush
        flush = _SYNCFS
        if flush is not None and fd is not None and flush(fd) == 0:
            return {}
        reported = f"syncfs: {os.strerror(ctypes.get_errno() or errno.EIO)}"
        failed: dict[str, StoreError] = {}
        owners = 0
        for staged in items:
            if staged.durable:
                continue
            try:
                tmp_fd = os.open(staged.tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(tmp_fd)
                finally:
                    os.close(tmp_fd)
            except OSError as exc:
                owners += 1
                failed[staged.key] = StoreError(f"cannot write {staged.key!r} in catalog {store.url}: {exc}")
            else:
                failed[staged.key] = StoreError(
                    f"cannot write {staged.key!r} in catalog {store.url}: the file system reported a "
                    f"write-back error while the batch was written ({reported}), so none of the items it "
                    "staged unsynced since its last flush was named: check the disk, then register again"
                )
        log.warning(
            "%r: the file system reported a write-back error (%s) while %d item(s) were staged (%d of their "
            "files report it); none of them is written",
            store,
            reported,
            len(failed),
            owners,
        )
        return failed

    def _rename(self, staged: _Staged) -> str | StoreError | PreconditionFailed:
        """Under the lock: ``staged``'s temp file to its key, create-only."""
        store = self.store
        try:
            # a hard link, which fails on an existing name, as every
            # create-only naming (LocalStore._create_unnamed)
            if not _link_new(staged.tmp, staged.path):
                self._drop(staged, prune=False)  # the folder holds the other writer's document
                return PreconditionFailed(
                    f"{staged.key!r} already exists in catalog {store.url} (create_only)"
                )
        except FileNotFoundError:
            # its temp file (or folder) went meanwhile: a sweep took it for a
            # dead writer's; the caller writes the document the usual way
            self.store._prune(staged.created)
            return PreconditionFailed(f"{staged.key!r}: its staged bytes in catalog {store.url} were removed")
        except OSError as exc:
            self._drop(staged)
            return StoreError(f"cannot write {staged.key!r} in catalog {store.url}: {exc}")
        return staged.version

    def _drop(self, staged: _Staged, *, prune: bool = True) -> None:
        with contextlib.suppress(OSError):
            os.unlink(staged.tmp)
        if prune:
            self.store._prune(staged.created)
