"""A store on a local (or network-mounted, POSIX-locking) directory.

Atomicity comes from two things:

* every write goes to a hidden temporary file in the target's directory, is
  fsynced, then renamed over the target (``os.replace``), so readers see the
  old or the new document, never a partial one;
* every write and delete checks its condition and renames/unlinks while holding
  an exclusive ``fcntl.flock`` on one lock file per catalog root
  (``<root>/.stac-producer.lock``), so compare-and-swap is atomic across
  threads and processes on this host (and across hosts where the file system
  honours ``flock``, e.g. NFSv4; not guaranteed on every network mount).

A writer killed between writing its temp file and the rename leaves the
temp file behind (hidden, never listed). :meth:`LocalStore.put` sweeps the
directory it writes into, at most once per ``sweep_interval`` seconds per
directory and store, and deletes temp files older than ``temp_max_age``
(default 15 minutes): a live writer holds its temp file for the time of one
write plus a lock wait (milliseconds), so age tells a dead writer's file from
a live one's without any coordination between hosts.

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
import errno
import hashlib
import os
import secrets
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from producer.errors import InputError, NotFound, PreconditionFailed, StoreError
from producer.store.keys import RESERVED_PREFIX, check_key, check_prefix, is_listable, under_prefix

LOCK_NAME = RESERVED_PREFIX + ".lock"
_TMP_PREFIX = RESERVED_PREFIX + ".tmp."


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _root_from_url(url: str) -> tuple[Path, str]:
    """``(absolute root path, url as reported)`` for a plain path or ``file://`` URL."""
    if url.startswith(("file://", "local://")):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"cannot open {url!r}: file:// URLs on another host are not supported")
        path = Path(unquote(parts.path)).absolute()
        return path, "file://" + str(path).rstrip("/")
    if "://" in url:
        raise StoreError(f"cannot open {url!r} as a local directory: not a path or file:// URL")
    path = Path(url).expanduser().absolute()
    text = str(path)
    return path, (text.rstrip("/") or "/")


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

    def __init__(self, url: str) -> None:
        self.root, self.url = _root_from_url(url)
        self._swept: dict[Path, float] = {}  # directory -> monotonic time of last sweep

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    # -- helpers -----------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the root's exclusive lock (creating root and lock file)."""
        import fcntl  # POSIX only; imported here so the module imports anywhere

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot lock catalog {self.url}: {exc}; check that the directory is writable") from exc
        try:
            # flock locks belong to the open file description: each call opens
            # its own, so threads of one process exclude each other too.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, key: str, path: Path) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"{key!r} not found in catalog {self.url}") from None
        except IsADirectoryError:
            raise NotFound(f"{key!r} in catalog {self.url} is a directory, not a document") from None
        except OSError as exc:
            raise StoreError(f"cannot read {key!r} in catalog {self.url}: {exc}") from exc

    def _write_temp(self, key: str, path: Path, data: bytes) -> Path:
        """Write ``data`` to a fsynced hidden temp file beside ``path``."""
        for _attempt in range(5):
            # A concurrent delete may remove a directory we just created
            # (it prunes empty ones): create it again and retry.
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise StoreError(f"cannot write {key!r} in catalog {self.url}: a parent is a file ({exc})") from exc
            except OSError as exc:
                raise StoreError(f"cannot create the directory for {key!r} in catalog {self.url}: {exc}") from exc
            tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}.{secrets.token_hex(6)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return tmp
        raise StoreError(f"cannot write {key!r} in catalog {self.url}: its directory keeps disappearing")

    def _fsync_dir(self, directory: Path) -> None:
        with contextlib.suppress(OSError):
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # -- Store protocol ----------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(bytes, sha256 hex)``; no lock needed (renames are atomic)."""
        data = self._read(key, self._path(key))
        return data, _version(data)

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
        path = self._path(key)
        data = bytes(data)
        tmp = self._write_temp(key, path, data)
        try:
            with self._locked():
                if create_only and (path.exists() or path.is_symlink()):
                    raise PreconditionFailed(f"{key!r} already exists in catalog {self.url} (create_only)")
                if if_version is not None:
                    try:
                        current = _version(self._read(key, path))
                    except NotFound:
                        raise PreconditionFailed(
                            f"{key!r} in catalog {self.url} was deleted since it was read"
                        ) from None
                    if current != if_version:
                        raise PreconditionFailed(f"{key!r} in catalog {self.url} changed since it was read")
                try:
                    os.replace(tmp, path)
                except IsADirectoryError as exc:
                    raise StoreError(f"cannot write {key!r} in catalog {self.url}: it is a directory") from exc
                except OSError as exc:
                    raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir(path.parent)
        self._sweep_temps(path.parent)
        return _version(data)

    def _sweep_temps(self, directory: Path) -> int:
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
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Remove ``key`` (under the lock) and then every parent directory it
        leaves empty, up to but not including the root."""
        path = self._path(key)
        with self._locked():
            if if_version is not None:
                if _version(self._read(key, path)) != if_version:
                    raise PreconditionFailed(f"{key!r} in catalog {self.url} changed since it was read")
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise NotFound(f"{key!r} not found in catalog {self.url}") from None
            except IsADirectoryError:
                raise NotFound(f"{key!r} in catalog {self.url} is a directory, not a document") from None
            except OSError as exc:
                raise StoreError(f"cannot delete {key!r} in catalog {self.url}: {exc}") from exc
            parent = path.parent
            while parent != self.root and self.root in parent.parents:
                try:
                    parent.rmdir()
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        raise StoreError(f"cannot prune {parent} in catalog {self.url}: {exc}") from exc
                    break
                parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield document keys under ``prefix`` (segment-wise), skipping the
        lock file and temporary files."""
        prefix = check_prefix(prefix)
        start = self.root.joinpath(*prefix.split("/")) if prefix else self.root
        if start.is_file():
            if is_listable(prefix):
                yield prefix
            return

        def onerror(exc: OSError) -> None:
            if not isinstance(exc, FileNotFoundError):
                raise StoreError(f"cannot list {prefix!r} in catalog {self.url}: {exc}") from exc

        for dirpath, dirnames, filenames in os.walk(start, onerror=onerror):
            dirnames[:] = [d for d in dirnames if not d.startswith(RESERVED_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}"
                if is_listable(key) and under_prefix(key, prefix):
                    yield key

    def exists(self, key: str) -> bool:
        """True if ``key`` is a file."""
        return self._path(key).is_file()
