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
``session`` of the caller's) or bring their own event loop, nor across a
fork or a change of the AWS environment or config files (keyed by
:func:`producer.awsclients.client_key`: the resolved credentials stay with
the session, and a refreshable credential's lock belongs to one loop).
Loads nothing at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producer.awsclients import SharedClients, client_key

__all__ = ["with_shared_session"]

#: s3fs options that configure the session itself (``AioSession(**kwargs)``),
#: or run the file system on a loop of the caller's (a refreshable
#: credential's lock belongs to one event loop)
SESSION_OPTIONS = frozenset({"session", "profile", "session_vars", "event_hooks", "loop", "asynchronous"})

#: sessions by :func:`producer.awsclients.client_key` of the environment: a
#: session resolves credentials, profile and config once and keeps them, so a
#: changed ``AWS_*`` variable or a rewritten config/credentials file (and a
#: fork: the pid is in the key) must give a new one
_sessions = SharedClients(4)


def _session() -> Any:
    def build() -> Any:
        from aiobotocore.session import AioSession  # noqa: PLC0415 (s3fs loaded it already)

        return AioSession()

    return _sessions.get(client_key("aiobotocore-session"), build)


def with_shared_session(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` (a copy) for the file system of ``url``, with this process's
    shared session added when ``url`` is ``s3://``/``s3a://`` and the options
    leave the session to s3fs; otherwise the copy unchanged."""
    out = dict(options)
    if url.lower().startswith(("s3://", "s3a://")) and not SESSION_OPTIONS & out.keys():
        out["session"] = _session()
    return out
