"""Intents: the change a writer needs in a collection document, announced
as a small create-only object so that another writer can apply it (group
commit; see docs/ARCHITECTURE.md, "Group commit of the collection document").

Pure: building, serialising and parsing intents; the I/O (create-only put,
one listing per attempt, deletes) is :class:`producer.commit.Committer`'s.
An intent lives at ``<collection>/_intents/<token>.intent``
(:func:`producer.catalog.layout.intent_key`): not a ``.json`` key, so the
tree walks, ``validate`` and the mirror never see it.

An intent holds what the collection's compare-and-swap needs and nothing
else: the links to add to the collection (item links in the flat layout,
partition links in a partitioned one), the mirror assets, and for each item
its id, bbox, properties and assets (the extent merge, a shrink marker's
record, summaries), never its geometry.
"""

from __future__ import annotations

import json
import posixpath
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from producer.catalog.extent import box2d, item_interval
from producer.timestamps import format_time, parse_time

#: format version of the intent objects
INTENT_FORMAT = 1
#: another writer applies a pending intent only while it is younger than this
#: (seconds, by the intent's own ``written`` stamp): an older one belongs to a
#: writer that died, and its items are linked by a rerun or ``reconcile --fix``
#: (which check the items still exist), never re-linked blindly by a stranger;
#: a younger one naming a removed item is deleted by the remove
#: (:meth:`producer.commit.Committer.drop_intents_naming`), so no one applies it
INTENT_FRESH = 60.0
#: an unapplied intent older than this is reported by ``validate`` (warning)
#: and deleted by ``reconcile --fix``
INTENT_TTL = 3600.0
#: group commit with ``ack="durable"``: seconds a leader's lease
#: (:func:`producer.catalog.layout.lease_key`) is valid after it was written,
#: by its writer's clock. Shorter than :data:`INTENT_FRESH`, so the intents
#: a leader that died left behind are still fresh when its lease expires and
#: the next writer leads (and applies them)
LEASE_TTL = 10.0
#: seconds a leader keeps applying other writers' intents (rounds, while
#: some are pending) before it gives its lease back; well under
#: :data:`LEASE_TTL`. Each hand-over costs a follower-turned-leader its
#: quick return and overlaps two leaders' last and first rounds; the
#: leader's own register waits out its tenure under a steady load. Measured
#: with 8 writers taking products from one queue (bench/concurrency.py
#: --feed queue, +30 ms per request): 0.3 s gave 4.5-4.7x one writer with
#: 0.10-0.19 conflicts per item, 2 s 4.2-5.1x with 0.05-0.08
LEADER_TENURE = 2.0


@dataclass(frozen=True)
class Intent:
    """A parsed intent (``key`` is where it is stored)."""

    key: str
    collection: str
    written: datetime
    layout: dict | None
    links: list[dict] = field(default_factory=list)
    below: list[dict] = field(default_factory=list)
    assets: dict[str, dict] = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)

    def age(self, now: datetime) -> float:
        """Seconds since the intent was written (by ``now``'s clock)."""
        return (now - self.written).total_seconds()


def new_token(now: datetime) -> str:
    """A fresh intent token that starts with its writer's clock:
    ``<microseconds since the epoch, 14 hex digits>-<16 random hex digits>``,
    so the keys of a listing sort by age and say which pending intent is the
    oldest (the group commit's leader) without reading any of them."""
    return f"{int(now.timestamp() * 1_000_000):014x}-{secrets.token_hex(8)}"


def key_time(key: str) -> datetime | None:
    """The time :func:`new_token` put in an intent key, or None for a key
    without one (written by an older version: its age is in its body)."""
    token = posixpath.basename(key).split(".", 1)[0]
    stamp, sep, rest = token.partition("-")
    if not sep or len(stamp) != 14 or len(rest) != 16:
        return None
    try:
        return datetime.fromtimestamp(int(stamp, 16) / 1_000_000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def item_summary(item: dict) -> dict:
    """What an intent keeps of an item document: type, id, bbox, properties
    and assets (no geometry, no links). Returns a new dict."""
    out: dict[str, Any] = {"type": "Feature", "id": item.get("id"), "bbox": list(item["bbox"])}
    out["properties"] = dict(item.get("properties") or {})
    if isinstance(item.get("assets"), dict):
        out["assets"] = item["assets"]
    return out


def new_intent(
    collection_id: str,
    layout: dict | None,
    links: Sequence[dict],
    below: Sequence[dict],
    assets: Mapping[str, dict],
    items: Iterable[dict],
    now: datetime,
) -> dict:
    """The JSON object of an intent (``items``: full item documents, kept as
    :func:`item_summary`)."""
    return {
        "stac_producer:intent": INTENT_FORMAT,
        "collection": collection_id,
        "written": format_time(now),
        "layout": layout,
        "links": [dict(link) for link in links],
        "below": [dict(link) for link in below],
        "assets": dict(assets),
        "items": [item_summary(item) for item in items],
    }


def dumps(intent: dict) -> bytes:
    return json.dumps(intent, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _links_ok(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(link, dict) and isinstance(link.get("rel"), str) and isinstance(link.get("href"), str)
        for link in value
    )


def _item_ok(item: Any) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("properties"), dict):
        return False
    try:
        box2d(item["bbox"])
        start, end = item_interval(item)
        parse_time(start)
        parse_time(end)
    except (KeyError, TypeError, ValueError):
        return False
    return True


def parse(data: bytes, key: str) -> Intent | None:
    """The intent stored at ``key``, or None when it is not one this version
    can apply (unreadable JSON, another format, a malformed field): such an
    object is never applied, ``validate`` reports it and ``reconcile --fix``
    deletes it once it is older than :data:`INTENT_TTL`."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("stac_producer:intent") != INTENT_FORMAT:
            return None
        written = parse_time(doc["written"])
        collection = doc["collection"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    links, below = doc.get("links", []), doc.get("below", [])
    assets, items = doc.get("assets"), doc.get("items")
    layout = doc.get("layout")
    if (
        not isinstance(collection, str)
        or not (layout is None or isinstance(layout, dict))
        or not _links_ok(links)
        or not _links_ok(below)
        or not isinstance(assets, dict)
        or not all(isinstance(v, dict) for v in assets.values())
        or not isinstance(items, list)
        or not all(map(_item_ok, items))
    ):
        return None
    return Intent(key, collection, written, layout, links, below, assets, items)


def written_at(data: bytes) -> datetime | None:
    """The ``written`` stamp of a stored intent, even one :func:`parse`
    refuses; None when there is none."""
    try:
        doc = json.loads(data)
        return parse_time(doc["written"]) if isinstance(doc, dict) else None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def new_lease(holder: str, now: datetime, ttl: float | None = None) -> bytes:
    """The body of a leader's lease: its holder's token, when it was written
    and when it expires (``now`` + ``ttl``, default :data:`LEASE_TTL`, read
    when called so tests can shorten it), by the holder's clock."""
    ttl = LEASE_TTL if ttl is None else ttl
    body = {
        "stac_producer:lease": INTENT_FORMAT,
        "holder": holder,
        "written": format_time(now),
        "expires": format_time(now + timedelta(seconds=ttl)),
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def lease_expires(data: bytes) -> datetime | None:
    """When the lease ``data`` expires; None when it cannot be read (such a
    lease counts as expired: it is taken over)."""
    try:
        doc = json.loads(data)
        return parse_time(doc["expires"]) if isinstance(doc, dict) else None
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
