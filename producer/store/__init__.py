"""Catalog storage: the only code that reads or writes catalog documents.

``open_store(url, storage_options)`` returns the right :class:`Store` for a
catalog URL; see :mod:`producer.store.base` for the interface.
"""

from __future__ import annotations

from producer.store.base import Store
from producer.store.counting import CountingStore
from producer.store.fsspec_store import FsspecStore
from producer.store.local import LocalStore
from producer.store.open import open_store
from producer.store.s3 import S3Store

__all__ = ["Store", "open_store", "LocalStore", "S3Store", "FsspecStore", "CountingStore"]
