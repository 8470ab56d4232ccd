"""What a commit changed, for the consumers that follow the catalog.

The static catalog is the source of truth. After each batch is committed
(items written, parents linked), the committed changes are handed, per
collection, to the sinks that follow it: the stac-geoparquet mirror, a
pgSTAC database, change notifications. ``unchanged`` items are not changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from producer.jsontext import compact
from producer.ringtext import compact_rows


class ChangeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REMOVED = "removed"


@dataclass(frozen=True)
class Change:
    """One committed change of one item.

    ``key``: the item document's key in the catalog store (relative to the
    catalog root). ``item``: the committed item document (links relative,
    as stored) for created/updated; the last committed version for removed.
    ``line``: :func:`item_line` of ``item`` when the writer already encoded
    it (a pooled register does, in the thread that wrote the item, while
    workers still extract), so that a sink writing JSON lines (the mirror)
    joins bytes instead of encoding the batch after its last item; None
    otherwise. Not part of the change's identity (not compared).
    """

    kind: ChangeKind
    collection: str
    item_id: str
    key: str
    item: dict[str, Any] = field(repr=False)
    line: str | None = field(default=None, repr=False, compare=False)


def item_line(item: dict[str, Any]) -> str:
    """``item`` as one line of compact JSON (no NaN or infinity): how the
    mirror's NDJSON fragments hold an item. Raises ``TypeError`` or
    ``ValueError`` when ``item`` is not JSON.

    A polygon's rings are written by :func:`~producer.ringtext.compact_rows`
    (the item document's encoding wrote the same ring a moment ago) and
    spliced into the rest; the text is the same as without."""
    fast = compact(item)  # orjson's text where it is json's (producer/jsontext.py)
    if fast is not None:
        return fast
    geometry = item.get("geometry") if type(item) is dict else None
    rings = _rings(geometry)
    if rings is not None:
        assert type(geometry) is dict  # for mypy: _rings said so
        head = json.dumps(
            {**item, "geometry": {**geometry, "coordinates": _PLACEHOLDER}},
            separators=(",", ":"),
            allow_nan=False,
        )
        if head.count(_MARKER) == 1:  # else the marker's text occurs in the item: the plain way
            return head.replace(_MARKER, rings, 1)
    return json.dumps(item, separators=(",", ":"), allow_nan=False)


#: stands for a geometry's coordinates in :func:`item_line` (and its JSON text)
_PLACEHOLDER = "\x00stac-producer coordinates\x00"
_MARKER = json.dumps(_PLACEHOLDER)


def _rings(geometry: Any) -> str | None:
    """The compact text of a Polygon's or MultiPolygon's coordinates when
    they are lists down to the positions (exact types); else None."""
    if type(geometry) is not dict:
        return None
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if type(coordinates) is not list:
        return None
    if kind == "Polygon":
        polygons = [coordinates]
    elif kind == "MultiPolygon" and _LISTS.issuperset(map(type, coordinates)):
        polygons = coordinates
    else:
        return None
    texts = []
    for polygon in polygons:
        if not polygon or not _LISTS.issuperset(map(type, polygon)):
            return None
        if not all(_LISTS.issuperset(map(type, ring)) for ring in polygon):
            return None
        texts.append("[" + ",".join(map(compact_rows, polygon)) + "]")
    return texts[0] if kind == "Polygon" else "[" + ",".join(texts) + "]"


_LISTS = frozenset((list,))


class Sink(Protocol):
    """Follows a catalog: told every committed change, in commit order per item."""

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Apply ``changes`` (all of one collection, whose committed document is
        ``collection``). Raises on failure; the caller reports and retries."""
        ...
