"""A store wrapper that counts calls per key: tests and benchmarks use it to
prove that an operation does O(1) I/O whatever the catalog size."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from producer.store.base import Store


class CountingStore:
    """Forward every call to ``inner`` and count it, failed calls included.

    ``gets``, ``puts``, ``deletes``, ``exists_calls`` are :class:`Counter`\\ s
    keyed by document key; ``lists`` is keyed by prefix (``""`` = whole
    store). ``calls`` lists every call as ``(kind, key)`` in the order they
    were made (to prove what comes before what, e.g. no GET before a PUT).
    Counting is thread-safe. Writes nothing itself.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url: str = inner.url
        self.concurrent_safe: bool = inner.concurrent_safe
        self._lock = threading.Lock()
        self.gets: Counter[str] = Counter()
        self.puts: Counter[str] = Counter()
        self.deletes: Counter[str] = Counter()
        self.lists: Counter[str] = Counter()
        self.exists_calls: Counter[str] = Counter()
        self.calls: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"CountingStore({self.inner!r}, {self.totals()})"

    def _count(self, counter: Counter[str], key: str, kind: str) -> None:
        with self._lock:
            counter[key] += 1
            self.calls.append((kind, key))

    def totals(self) -> dict[str, int]:
        """``{"get": n, "put": n, "delete": n, "list": n, "exists": n}``."""
        with self._lock:
            return {
                "get": sum(self.gets.values()),
                "put": sum(self.puts.values()),
                "delete": sum(self.deletes.values()),
                "list": sum(self.lists.values()),
                "exists": sum(self.exists_calls.values()),
            }

    def total(self) -> int:
        """All calls of every kind."""
        return sum(self.totals().values())

    def reset(self) -> None:
        """Zero every counter (the inner store is untouched)."""
        with self._lock:
            for counter in (self.gets, self.puts, self.deletes, self.lists, self.exists_calls):
                counter.clear()
            self.calls.clear()

    def get(self, key: str) -> tuple[bytes, str]:
        """Counted :meth:`Store.get`."""
        self._count(self.gets, key, "get")
        return self.inner.get(key)

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_version: str | None = None,
        create_only: bool = False,
    ) -> str:
        """Counted :meth:`Store.put` (writes through to the inner store)."""
        self._count(self.puts, key, "put")
        return self.inner.put(key, data, if_version=if_version, create_only=create_only)

    def delete(self, key: str, *, if_version: str | None = None) -> None:
        """Counted :meth:`Store.delete` (deletes in the inner store)."""
        self._count(self.deletes, key, "delete")
        self.inner.delete(key, if_version=if_version)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Counted :meth:`Store.list` (one count per call, not per key)."""
        self._count(self.lists, prefix, "list")
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        """Counted :meth:`Store.exists`."""
        self._count(self.exists_calls, key, "exists")
        return self.inner.exists(key)
