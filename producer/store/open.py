"""Pick the store for a catalog URL."""

from __future__ import annotations

from typing import Any

from producer.errors import InputError
from producer.store.base import Store
from producer.store.local import LocalStore
from producer.urls import is_local, protocol


def open_store(url: str, storage_options: dict[str, Any] | None = None) -> Store:
    """Return the store for ``url``; nothing is read or written.

    * plain paths and ``file://`` / ``local://`` URLs (any letter case; see
      :mod:`producer.urls`) -> :class:`~producer.store.local.LocalStore`
      (``storage_options`` must be empty);
    * ``s3://`` (and ``s3a://``) -> :class:`~producer.store.s3.S3Store`;
    * any other fsspec URL (``memory://``, ``gcs://``, ...) ->
      :class:`~producer.store.fsspec_store.FsspecStore` (single-writer mode).

    ``storage_options`` go to the fsspec/s3fs file system; the caller's dict
    is not modified.
    """
    if not isinstance(url, str) or not url.strip():
        raise InputError(f"catalog URL must be a non-empty string, got {url!r}")
    url = url.strip()
    if is_local(url):
        if storage_options:
            raise InputError(
                f"storage_options {sorted(storage_options)} were given for the local catalog {url!r}; "
                "local paths take none, drop them"
            )
        return LocalStore(url)
    # imported here: both load fsspec (s3: s3fs too), which a local catalog never needs
    if protocol(url) in ("s3", "s3a"):
        from producer.store.s3 import S3Store  # noqa: PLC0415

        return S3Store(url, storage_options)
    from producer.store.fsspec_store import FsspecStore  # noqa: PLC0415

    return FsspecStore(url, storage_options)
