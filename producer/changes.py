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
    ``ValueError`` when ``item`` is not JSON."""
    return json.dumps(item, separators=(",", ":"), allow_nan=False)


class Sink(Protocol):
    """Follows a catalog: told every committed change, in commit order per item."""

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Apply ``changes`` (all of one collection, whose committed document is
        ``collection``). Raises on failure; the caller reports and retries."""
        ...
