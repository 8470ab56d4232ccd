"""The storage interface: the only way the rest of the package touches bytes.

A store is rooted at a catalog URL; keys are ``/``-separated paths relative to
that root (``catalog.json``, ``ndvi/collection.json``). Versions are opaque
strings (an S3 ETag, a local file's inode/mtime/size token, a content hash):
the commit layer only compares them and hands them back to :meth:`put`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from producer.errors import InputError
from producer.redact import redact
from producer.urls import pathlib_merged_url


def describe_condition(if_version: str | None = None, create_only: bool = False) -> str:
    """How a write or delete is conditioned, in words (for log records)."""
    if create_only:
        return "create-only"
    return f"if-version {if_version}" if if_version is not None else "unconditional"


def _local_method(store: Any, name: str) -> Any | None:
    """``store``'s method ``name`` bound to it, or to the store it wraps
    (wrappers keep it in ``inner``); None if no store of the chain has one."""
    seen = 0
    while store is not None and seen < 16:
        if callable(getattr(type(store), name, None)):
            return getattr(store, name)
        store = getattr(store, "inner", None)
        seen += 1
    return None


def batch_durability(store: Any) -> contextlib.AbstractContextManager[None]:
    """The store's ``batch()`` (durability per batch, see
    :meth:`producer.store.local.LocalStore.batch`), looked up through
    wrappers that keep the store they wrap in ``inner``; a no-op context
    for stores without one (S3: a PUT is durable when it returns)."""
    batch = _local_method(store, "batch")
    return batch() if batch is not None else contextlib.nullcontext()


def durable_now(store: Any) -> contextlib.AbstractContextManager[None]:
    """The writes made inside are durable when each returns, even inside a
    :func:`batch_durability` (:meth:`producer.store.local.LocalStore.unbatched`);
    a no-op for stores without batches."""
    unbatched = _local_method(store, "unbatched")
    return unbatched() if unbatched is not None else contextlib.nullcontext()


def durability(store: Any, mode: str) -> contextlib.AbstractContextManager[None]:
    """The writes made inside (this context, and threads handed it) with
    durability ``mode``: ``fsync`` (the store's own default) or ``os`` (a
    local store fsyncs nothing: :meth:`producer.store.local.LocalStore.os_durability`).
    A no-op for stores without fsync (S3: a PUT is durable when it returns)."""
    if mode != "os":
        return contextlib.nullcontext()
    relax = _local_method(store, "os_durability")
    return relax() if relax is not None else contextlib.nullcontext()


def catalog_argument(catalog: Any) -> Any:
    """The ``catalog`` argument of a verb as it opens it: a URL or path
    (``str``, or an ``os.PathLike`` such as a ``pathlib.Path``, made a
    ``str``), or an open store, as it is. Anything else (``None``, bytes, a
    number) raises :class:`TypeError` naming the argument, and a ``Path`` of
    a URL (``Path("s3://b/stac")`` is ``s3:/b/stac``) :class:`InputError`."""
    if isinstance(catalog, os.PathLike):
        catalog = os.fspath(catalog)
        url = pathlib_merged_url(catalog) if isinstance(catalog, str) else None
        if url is not None:
            raise InputError(
                f"catalog {redact(catalog)!r} is a URL that went through pathlib, which merges the '//' "
                f"after its scheme: pass the URL as a str, e.g. catalog={redact(url)!r}"
            )
    if isinstance(catalog, str) or (hasattr(catalog, "url") and callable(getattr(catalog, "get", None))):
        return catalog
    raise TypeError(
        f"catalog must be a URL or path (str or pathlib.Path) or an open store, not {type(catalog).__name__}: "
        "e.g. catalog='s3://bucket/stac' or catalog=Path('stac')"
    )


def modified(store: Any, key: str) -> datetime | None:
    """When the object at ``key`` was last written (UTC), through the store's
    ``modified`` (looked up through wrappers, as :func:`batch_durability`):
    a file's mtime, an S3 object's ``LastModified`` (one HEAD); None for a
    store that cannot tell. Raises :class:`~producer.errors.NotFound` if
    ``key`` is absent."""
    method = _local_method(store, "modified")
    return method(key) if method is not None else None


def is_local(store: Any) -> bool:
    """True for a local store (or a wrapper of one): its reads cost no
    round trip, so running two of them in threads gains nothing."""
    return _local_method(store, "os_durability") is not None


@runtime_checkable
class Store(Protocol):
    """Versioned key/value access to one catalog root.

    Implementations: :class:`producer.store.local.LocalStore` (plain paths and
    ``file://``; a lock plus write-to-temp and atomic rename),
    :class:`producer.store.s3.S3Store` (``s3://``; ETag ``IfMatch`` and
    ``IfNoneMatch='*'``), :class:`producer.store.fsspec_store.FsspecStore`
    (any other fsspec backend, e.g. ``memory://``; single-writer mode).
    """

    #: the catalog root URL the store was opened on (no trailing slash)
    url: str
    #: True when conditional writes are atomic across processes/hosts
    concurrent_safe: bool

    def get(self, key: str) -> tuple[bytes, str]:
        """Return ``(data, version)``; raise :class:`~producer.errors.NotFound`."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_version: str | None = None,
        create_only: bool = False,
    ) -> str:
        """Write ``data`` at ``key`` and return the new version.

        ``if_version``: write only if the current version is still this one.
        ``create_only``: write only if ``key`` does not exist.
        Either condition failing raises
        :class:`~producer.errors.PreconditionFailed` and writes nothing.
        Readers never see a partial document.
        """
        ...

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Delete ``key``; :class:`~producer.errors.NotFound` if absent."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key under ``prefix`` (recursive), in no set order."""
        ...

    def exists(self, key: str) -> bool:
        """True if ``key`` exists."""
        ...
