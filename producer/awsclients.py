"""AWS clients shared per process: building one (a botocore/aiobotocore
session, its service model, credential resolution) costs 0.1-0.2 s of CPU,
more than a register commit, so the S3 catalog store and the SNS sink keep
the ones they built, keyed by :func:`client_key`, and reuse them for equal
options. Nothing is built here; stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: environment variables besides ``AWS_*`` that change what a client does
_CLIENT_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def client_key(*parts: Any) -> str | None:
    """A digest of everything a client is built from: ``parts`` (the
    caller's options), the ``AWS_*`` (and proxy) environment, the
    modification times of the AWS config and credentials files, and the
    process id (a forked child cannot use its parent's connections). None
    when a part is not plain data (a session or config object): such
    options get a client of their own.

    Only the digest is kept, never the options themselves: the key holds no
    secret in a form that can be printed. A changed credential, endpoint,
    profile or config file gives a different key, hence a new client.
    """
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in _CLIENT_ENV}
    files = []
    for var, default in (
        ("AWS_CONFIG_FILE", "~/.aws/config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    ):
        path = os.path.expanduser(env.get(var, default))
        try:
            files.append([path, os.stat(path).st_mtime_ns])
        except OSError:
            files.append([path, None])
    try:
        text = json.dumps([os.getpid(), parts, env, files], sort_keys=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


class SharedClients:
    """At most ``size`` clients by key, the least recently used dropped
    first (dropping a reference is all: the client closes when collected)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._clients: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def keys(self) -> list[str]:
        """The digests held (no secret: see :func:`client_key`)."""
        with self._lock:
            return list(self._clients)

    def get(self, key: str | None, build: Callable[[], T]) -> T:
        """The client under ``key``, built with ``build()`` when absent (and
        every time when ``key`` is None). Built outside the lock: two threads
        may both build, one result is kept."""
        if key is None:
            return build()
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        client = build()
        with self._lock:
            client = self._clients.setdefault(key, client)
            self._clients.move_to_end(key)
            while len(self._clients) > self.size:
                self._clients.popitem(last=False)
        return client
