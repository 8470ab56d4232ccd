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

from producer.errors import Hint, InputError, NotFound, PreconditionFailed, StoreError
from producer.httplimits import is_timeout, is_unreachable
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


#: seconds an http(s) catalog's server may take to answer one request before
#: the read fails (aiohttp's own default is 5 minutes); the storage option
#: ``timeout`` (seconds) overrides it
HTTP_TIMEOUT = 60.0
#: the way out of a catalog server that did not answer in time (the CLI spells
#: it ``-o timeout=300``)
TIMEOUT_HINT = Hint("storage_options", {"timeout": 300}, "wait longer for the catalog's server")


def _http_options(options: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
    """``options`` with aiohttp's session timeout bounded: the storage option
    ``timeout`` (seconds, a number or its text, as ``-o timeout=30`` gives
    it), else a ``client_kwargs`` timeout the caller set, else
    :data:`HTTP_TIMEOUT`; and the bound in seconds for messages."""
    import aiohttp  # noqa: PLC0415 (fsspec's http file system needs it anyway)

    client = dict(options.get("client_kwargs") or {})
    if "timeout" in options:
        given = options.pop("timeout")
        try:
            seconds = float(given)
        except (TypeError, ValueError):
            raise InputError(
                f"storage option timeout={given!r}: expected a number of seconds", hints=(TIMEOUT_HINT,)
            ) from None
        if seconds <= 0:
            raise InputError(
                f"storage option timeout={given!r}: expected a positive number of seconds",
                hints=(TIMEOUT_HINT,),
            )
        client["timeout"] = aiohttp.ClientTimeout(total=seconds)
    elif not isinstance(client.get("timeout"), aiohttp.ClientTimeout):
        client["timeout"] = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    options["client_kwargs"] = client
    timeout = client["timeout"]
    return options, timeout.total or timeout.sock_read or timeout.connect


#: what a store was doing, for messages: "(reading 'catalog.json')"
_DOING = {
    "read": "reading",
    "check": "looking for",
    "write": "writing",
    "delete": "deleting",
    "list": "listing",
}


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
        #: seconds a request may wait for an answer, when the backend says (http)
        self.timeout: float | None = None
        if url.split("://", 1)[0].lower() in ("http", "https"):
            options, self.timeout = _http_options(options)
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        # the URL's scheme or the installed packages: bad input, which no retry fixes
        except ImportError as exc:
            raise InputError(f"cannot open catalog {url!r}: {exc}") from exc
        except ValueError as exc:
            raise InputError(f"cannot open catalog {url!r}: {exc}; is the URL scheme right?") from exc
        self.fs: Any = fs
        self._root = path.rstrip("/")
        self.url = url.rstrip("/")
        self._lock = _root_lock(self.url)
        #: http(s): whether the server lists folders (None: not asked yet)
        self._lists_folders: bool | None = None

    def __repr__(self) -> str:
        return f"FsspecStore({redact(self.url)!r})"

    def _path(self, key: str) -> str:
        return f"{self._root}/{check_key(key)}"

    def _failure(self, verb: str, key: str, exc: BaseException) -> StoreError:
        """The :class:`StoreError` for a backend's exception when asked to
        ``verb`` ``key``: a server that did not answer in time, a connection
        that failed (the network's fault: retry), or anything else."""
        if is_timeout(exc):
            within = f" within {self.timeout:g} s" if self.timeout else " in time"
            return StoreError(
                f"catalog {self.url} did not answer{within} ({_DOING[verb]} {key!r}); retry later, "
                "or wait longer",
                hints=(TIMEOUT_HINT,),
            )
        reason = redact(f"{exc}") or type(exc).__name__
        if is_unreachable(exc):
            return StoreError(
                f"cannot reach catalog {self.url} ({_DOING[verb]} {key!r}): {reason}; "
                "check the URL and the network, then retry"
            )
        return StoreError(f"cannot {verb} {key!r} in catalog {self.url}: {reason}")

    def _cat(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"{key!r} not found in catalog {self.url}") from None
        except StoreError:
            raise
        except Exception as exc:  # backends raise all sorts
            raise self._failure("read", key, exc) from exc

    def _exists(self, path: str) -> bool:
        """True if ``path`` is a document; a backend that cannot answer raises
        :class:`StoreError` (``isfile`` alone calls any failure "no file")."""
        self.fs.invalidate_cache(path)
        key = path[len(self._root) + 1 :]
        try:
            if self.timeout is not None:  # http: a GET whose 404 is "no", any other failure raises
                return bool(self.fs.exists(path, strict=True))
            return bool(self.fs.info(path).get("type") == "file")
        except (FileNotFoundError, NotADirectoryError):
            return False
        except Exception as exc:  # backends raise all sorts
            raise self._failure("check", key, exc) from exc

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
        self._refuse_http_write(key)
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
                raise self._failure("write", key, exc) from exc
            finally:
                self.fs.invalidate_cache(path)
        version = _version(data)
        condition = describe_condition(if_version, create_only)
        log.debug("%r put %s (%s): %d bytes, new version %s", self, key, condition, len(data), version)
        return version

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Remove ``key`` (under the root's in-process lock)."""
        self._refuse_http_write(key)
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
                raise self._failure("delete", key, exc) from exc
            finally:
                self.fs.invalidate_cache(path)
        log.debug("%r delete %s (%s)", self, key, describe_condition(if_version))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield document keys under ``prefix`` (segment-wise, recursive)."""
        prefix = check_prefix(prefix)
        start = f"{self._root}/{prefix}" if prefix else self._root
        self.fs.invalidate_cache()
        if self.timeout is not None:  # http: a folder's 404 is "absent" only where folders are listed
            self._check_listing()
        try:
            found = self.fs.find(start)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._failure("list", prefix, exc) from exc
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

    def _refuse_http_write(self, key: str) -> None:
        """An http(s) catalog is read-only: raise :class:`InputError` before a
        write (not a retryable storage error: a retry fails the same way; and
        a server that took the PUT would be written without compare-and-swap)."""
        if self.timeout is not None:
            raise InputError(
                f"catalog {self.url} is read over http(s), which is read-only (validate, search, "
                f"reconcile without fix); nothing was written ({key!r}): write through the catalog's "
                "storage URL (s3://..., a local path) instead"
            )

    def _check_listing(self) -> None:
        """Raise :class:`InputError` when this http(s) catalog's server lists
        no folder (S3 website hosting, CloudFront, nginx without autoindex:
        a folder's URL gives 404, 403 or a page without links) although it
        serves the root ``catalog.json``. Else every listing would read as
        empty: ``search`` would miss the items in the mirror's fragments and
        ``validate`` report a missing root. Asks once per store (one request
        for the root folder, one HEAD of ``catalog.json`` when it lists nothing)."""
        if self._lists_folders is None:
            try:
                listed = bool(self.fs.ls(self._root + "/", detail=False))
            except FileNotFoundError:
                listed = False
            except Exception as exc:
                if getattr(exc, "status", None) != 403:
                    raise self._failure("list", "", exc) from exc
                listed = False
            # nothing listed and no root either: an empty or mistyped catalog URL
            self._lists_folders = listed or not self._exists(self._path("catalog.json"))
        if not self._lists_folders:
            raise InputError(
                f"the server of catalog {self.url} lists no folder (a folder's URL gives no index of "
                "its files), and finding the catalog's orphans (validate, reconcile) and the "
                "stac-geoparquet mirror's recent fragments (search) needs those listings: run it on "
                "the catalog's storage URL (s3://..., a local path) instead, or have the server list "
                "folders"
            )
