"""One aiobotocore session per process for the S3 file systems the producer makes.

The catalog store (:class:`producer.store.s3.S3Store`, a private
:class:`s3fs.S3FileSystem`) and the product reader
(:mod:`producer.extract.source`, fsspec's cached file system) are separate
file systems, and s3fs gives each its own ``AioSession`` unless it is handed
one. Every session loads botocore's service models and endpoint rules
again when it makes its first client: ~90 ms of CPU per file system on the
2-core test machine, which a Lambda cold start (one store, one reader) paid
twice. Shared, the second client costs ~6 ms.

A session holds no connection (each file system keeps its own client and
connection pool) and resolves credentials from the standard AWS chain; the
explicit ``key``/``secret``/``token``/``client_kwargs`` of a file system
still go to its own client. It is not shared when the options configure the
session itself (``profile``, ``session_vars``, ``event_hooks``, or a
``session`` of the caller's), nor across a fork (keyed by process id: a
refreshable credential's lock belongs to the parent's event loop).
Loads nothing at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["with_shared_session"]

#: s3fs options that configure the session itself (``AioSession(**kwargs)``)
SESSION_OPTIONS = frozenset({"session", "profile", "session_vars", "event_hooks"})

_lock = threading.Lock()
_shared: tuple[int, Any] | None = None


def _session() -> Any:
    global _shared
    with _lock:
        if _shared is None or _shared[0] != os.getpid():
            from aiobotocore.session import AioSession  # noqa: PLC0415 (s3fs loaded it already)

            _shared = (os.getpid(), AioSession())
        return _shared[1]


def with_shared_session(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` (a copy) for the file system of ``url``, with this process's
    shared session added when ``url`` is ``s3://``/``s3a://`` and the options
    leave the session to s3fs; otherwise the copy unchanged."""
    out = dict(options)
    if url.lower().startswith(("s3://", "s3a://")) and not SESSION_OPTIONS & out.keys():
        out["session"] = _session()
    return out
