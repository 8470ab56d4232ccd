"""Catalog storage: the only code that reads or writes catalog documents.

``open_store(url, storage_options)`` returns the right :class:`Store` for a
catalog URL; see :mod:`producer.store.base` for the interface.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from producer.store.base import Store
from producer.store.counting import CountingStore
from producer.store.local import LocalStore
from producer.store.open import open_store

if TYPE_CHECKING:
    from producer.store.fsspec_store import FsspecStore
    from producer.store.s3 import S3Store

__all__ = ["Store", "open_store", "LocalStore", "S3Store", "FsspecStore", "CountingStore"]


def __getattr__(name: str) -> Any:
    """``FsspecStore`` and ``S3Store``, imported on first use: both load fsspec
    (~80 ms of cold start), which a local catalog never needs."""
    module = {"FsspecStore": "producer.store.fsspec_store", "S3Store": "producer.store.s3"}.get(name)
    if module is None:
        raise AttributeError(f"module 'producer.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
