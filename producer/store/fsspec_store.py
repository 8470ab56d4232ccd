"""A store on any fsspec file system (``memory://``, ``gcs://``, ``az://``, ...).

Single-writer mode: generic fsspec offers no conditional write, so this store
checks ``if_version`` / ``create_only`` and writes while holding a
:class:`threading.Lock` shared by every :class:`FsspecStore` on the same root
*in this process*. That makes compare-and-swap safe between threads of one
process and nothing more: two processes or hosts writing the same catalog
through this store can lose updates. Hence ``concurrent_safe = False``; run
one writer (e.g. one Prefect worker with a concurrency limit of 1), or use a
backend with real conditional writes (local paths, ``s3://``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import fsspec

from producer.errors import InputError, NotFound, PreconditionFailed, StoreError
from producer.redact import redact
from producer.store.base import describe_condition
from producer.store.keys import check_key, check_prefix, is_listable, under_prefix

log = logging.getLogger(__name__)

# One lock per root URL, created on first use (not at import) and shared by
# every FsspecStore instance on that root, so re-opening a store does not
# weaken single-writer mode inside one process.
_ROOT_LOCKS: dict[str, threading.Lock] = {}
_ROOT_LOCKS_GUARD = threading.Lock()


def _root_lock(url: str) -> threading.Lock:
    with _ROOT_LOCKS_GUARD:
        lock = _ROOT_LOCKS.get(url)
        if lock is None:
            lock = _ROOT_LOCKS[url] = threading.Lock()
        return lock


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FsspecStore:
    """Catalog documents on an fsspec file system, in single-writer mode.

    ``FsspecStore("memory://stac")``, ``FsspecStore("gcs://bucket/stac",
    {"token": ...})``. ``storage_options`` go to the file system constructor
    (a private instance: ``skip_instance_cache=True``). Versions are the
    SHA-256 of the document bytes. Writes create parent directories where the
    backend has them. Conditional writes are guarded by an in-process lock
    only: ``concurrent_safe = False`` (see the module docstring).
    """

    concurrent_safe: bool = False

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        options = dict(storage_options or {})
        options.setdefault("skip_instance_cache", True)
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise StoreError(f"cannot open catalog {url!r}: {exc}") from exc
        except ValueError as exc:
            raise StoreError(f"cannot open catalog {url!r}: {exc}; is the URL scheme right?") from exc
        self.fs: Any = fs
        self._root = path.rstrip("/")
        self.url = url.rstrip("/")
        self._lock = _root_lock(self.url)

    def __repr__(self) -> str:
        return f"FsspecStore({redact(self.url)!r})"

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(key)}"

    def _cat(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"{key!r} not found in catalog {self.url}") from None
        except StoreError:
            raise
        except Exception as exc:  # backends raise all sorts
            raise StoreError(f"cannot read {key!r} in catalog {self.url}: {exc}") from exc

    def _exists(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return bool(self.fs.isfile(path))

    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(bytes, sha256 hex)``."""
        data = self._cat(key)
        version = _version(data)
        log.debug("%r get %s: %d bytes, version %s", self, key, len(data), version)
        return data, version

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_version: str | None = None,
        create_only: bool = False,
    ) -> str:
        """Write ``data`` at ``key`` (whole-object write); return its version.

        Checks the condition and writes under the root's in-process lock.
        Readers see whole documents on object stores and ``memory://``; on
        other backends that depends on the backend's write path.
        """
        if if_version is not None and create_only:
            raise InputError("put(): pass either if_version or create_only, not both")
        path = self._path(key)
        data = bytes(data)
        with self._lock:
            if create_only and self._exists(path):
                raise PreconditionFailed(f"{key!r} already exists in catalog {self.url} (create_only)")
            if if_version is not None:
                try:
                    current = _version(self._cat(key))
                except NotFound:
                    raise PreconditionFailed(
                        f"{key!r} in catalog {self.url} was deleted since it was read"
                    ) from None
                if current != if_version:
                    raise PreconditionFailed(f"{key!r} in catalog {self.url} changed since it was read")
            try:
                parent = path.rsplit("/", 1)[0]
                if parent:
                    self.fs.makedirs(parent, exist_ok=True)
                self.fs.pipe_file(path, data)
            except Exception as exc:
                raise StoreError(f"cannot write {key!r} in catalog {self.url}: {exc}") from exc
            finally:
                self.fs.invalidate_cache(path)
        version = _version(data)
        condition = describe_condition(if_version, create_only)
        log.debug("%r put %s (%s): %d bytes, new version %s", self, key, condition, len(data), version)
        return version

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Remove ``key`` (under the root's in-process lock)."""
        path = self._path(key)
        with self._lock:
            if if_version is not None:
                if _version(self._cat(key)) != if_version:
                    raise PreconditionFailed(f"{key!r} in catalog {self.url} changed since it was read")
            elif not self._exists(path):
                raise NotFound(f"{key!r} not found in catalog {self.url}")
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                raise NotFound(f"{key!r} not found in catalog {self.url}") from None
            except Exception as exc:
                raise StoreError(f"cannot delete {key!r} in catalog {self.url}: {exc}") from exc
            finally:
                self.fs.invalidate_cache(path)
        log.debug("%r delete %s (%s)", self, key, describe_condition(if_version))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield document keys under ``prefix`` (segment-wise, recursive)."""
        prefix = check_prefix(prefix)
        start = f"{self._root}/{prefix}" if prefix else self._root
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(start)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise StoreError(f"cannot list {prefix!r} in catalog {self.url}: {exc}") from exc
        # find() answers in the file system's own path form, the form
        # url_to_fs gave self._root in; a backend that answers with URLs is
        # brought to that form by fsspec's public strip_protocol
        base = self._root + "/"
        count = 0
        for path in found:
            path = fsspec.core.strip_protocol(path) if "://" in path else path
            if not path.startswith(base):
                continue
            key = path[len(base) :]
            if is_listable(key) and under_prefix(key, prefix):
                count += 1
                yield key
        log.debug("%r list %r: %d key(s)", self, prefix, count)

    def exists(self, key: str) -> bool:
        """True if ``key`` is a document."""
        return self._exists(self._path(key))
