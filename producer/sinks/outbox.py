"""The sinks' outbox: changes a notification sink has not taken yet, kept in
the catalog so that the next verb of the collection sends them.

Notification sinks (SNS, the callback, Prefect events) report changes; they
keep no copy that a rerun could compare, and a rerun finds the items
``unchanged`` (unchanged is not a change). So a publish that failed after
the commit would be lost. The outbox makes it durable:

1. Before a notification sink is called, the changes it is handed are
   written as one create-only entry
   ``<collection>/.outbox/<sink id>/<UTC time>-<random>`` (key from
   :func:`producer.catalog.layout.outbox_prefix`; no ``.json`` suffix, so
   no walk takes it for a STAC document), state ``pending``.
2. The sink is called. Delivered: the entry is deleted. Failed: the entry
   is rewritten with state ``failed``.
3. Every later ``register``, ``remove`` or ``reconcile`` of the collection
   configured with that sink first lists the sink's outbox (one LIST, empty
   in the normal case), and hands the entries that are due (``failed``, or
   ``pending`` for longer than :data:`PENDING_LEASE_SECONDS`: their writer
   died between writing the entry and the sink's answer) to the sink before
   its own changes, oldest first; delivered entries are deleted.

Delivery is at least once: an entry delivered but not deleted (a crash, a
failed delete), or flushed by two writers at the same moment, is sent again.
A writer does not flush another writer's fresh ``pending`` entry (it may
still be on its way), which keeps concurrent writers from doubling every
message. Not covered: a process killed between the commit and the entry's
write (one PUT) loses that batch's notifications.

A sink takes part when it has an ``outbox_id`` (a short, stable, path-safe
name: the same sink configured again finds its entries). The entry holds
the committed item documents, nothing else (no credentials).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from producer.catalog.layout import outbox_prefix
from producer.changes import Change, ChangeKind, Sink
from producer.errors import NotFound
from producer.store.base import Store

__all__ = ["PENDING_LEASE_SECONDS", "Entry", "Outbox", "outbox_id", "safe_sink_id"]

log = logging.getLogger(__name__)

#: how long a ``pending`` entry belongs to the writer that wrote it (its
#: sink call is under way); after that a writer that died is assumed
PENDING_LEASE_SECONDS = 300.0
_FORMAT = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_sink_id(text: str, limit: int = 80) -> str:
    """``text`` as a path-safe outbox name: runs of other characters become
    ``-``, at most ``limit`` characters.

    >>> safe_sink_id("callback-my_module.<lambda>")
    'callback-my_module.-lambda-'
    """
    return _UNSAFE.sub("-", text)[:limit].strip(".") or "sink"


def outbox_id(sink: Sink) -> str | None:
    """The sink's outbox name (its ``outbox_id``), or None: it keeps no outbox."""
    value = getattr(sink, "outbox_id", None)
    return safe_sink_id(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Entry:
    """One outbox entry as read: its ``key``, the ``changes`` it holds."""

    key: str
    changes: list[Change]


def _encode(changes: list[Change], state: str, written: str) -> bytes:
    return json.dumps(
        {
            "format": _FORMAT,
            "state": state,
            "written": written,
            "changes": [
                {
                    "kind": str(c.kind),
                    "collection": c.collection,
                    "id": c.item_id,
                    "key": c.key,
                    "item": c.item,
                }
                for c in changes
            ],
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def _decode(data: bytes) -> tuple[str, datetime | None, list[Change]]:
    doc = json.loads(data)
    written: datetime | None
    try:
        written = datetime.fromisoformat(str(doc.get("written")))
    except ValueError:
        written = None
    changes = [
        Change(ChangeKind(c["kind"]), str(c["collection"]), str(c["id"]), str(c["key"]), dict(c["item"]))
        for c in doc.get("changes", [])
    ]
    return str(doc.get("state")), written, changes


@dataclass
class Outbox:
    """The outbox of the catalog in ``store`` (see the module docstring).

    ``lease``: seconds a ``pending`` entry is left to its writer.
    """

    store: Store
    lease: float = PENDING_LEASE_SECONDS

    def due(self, collection_id: str, sink_id: str) -> list[Entry]:
        """The entries of ``sink_id`` in the collection that are due, oldest
        first (one LIST, one GET per entry listed). An entry that cannot be
        decoded is logged and left. Reads only."""
        prefix = outbox_prefix(collection_id, sink_id)
        now = datetime.now(UTC)
        out = []
        for key in sorted(self.store.list(prefix)):
            try:
                data, _ = self.store.get(key)
                state, written, changes = _decode(data)
            except NotFound:
                continue  # delivered by another writer since the LIST
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("outbox entry %s/%s is unreadable (%s); left as it is", self.store.url, key, exc)
                continue
            fresh = written is not None and (now - written).total_seconds() < self.lease
            if state == "pending" and fresh:
                continue  # its writer is still delivering it
            out.append(Entry(key, changes))
        return out

    def record(self, collection_id: str, sink_id: str, changes: list[Change]) -> str:
        """Write ``changes`` as a new ``pending`` entry (create-only); returns its key."""
        now = datetime.now(UTC)
        key = f"{outbox_prefix(collection_id, sink_id)}/{now.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(6)}"
        self.store.put(key, _encode(changes, "pending", now.isoformat()), create_only=True)
        return key

    def failed(self, key: str, changes: list[Change]) -> None:
        """Mark entry ``key`` ``failed``: the next verb of the collection sends it."""
        self.store.put(key, _encode(changes, "failed", datetime.now(UTC).isoformat()))

    def done(self, keys: list[str]) -> None:
        """Delete delivered entries; a failed delete is logged (the entry is
        then sent again: at least once)."""
        for key in keys:
            try:
                self.store.delete(key)
            except NotFound:
                pass
            except Exception as exc:  # delivered already: never fail the verb for this
                log.warning(
                    "deleting the delivered outbox entry %s/%s failed (%s); it will be sent again",
                    self.store.url,
                    key,
                    exc,
                )


def describe_entries(entries: list[Entry]) -> str:
    """``n change(s) of k entry(ies)`` for log lines."""
    return f"{sum(len(e.changes) for e in entries)} change(s) of {len(entries)} outbox entry(ies)"


def flatten(entries: list[Entry]) -> list[Change]:
    """The changes of ``entries``, in order."""
    return [c for e in entries for c in e.changes]
