"""What the verbs return: one :class:`Result` per product (register) or item (remove).

Results are plain data: they never print, and ``to_dict`` gives the JSON
shape the CLI, the Prefect adapter and the event handler report. Outcomes
are :class:`Action` and :class:`ErrorKind` members, string enums: they
compare equal to (and serialise as) the strings ``"created"``, ``"input"``...
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from producer.errors import ConflictError, Hint, ProducerError, Spelling, StoreError, rephrase
from producer.redact import redact

__all__ = ["Action", "ErrorKind", "RegisterResult", "RemoveResult", "Result", "error_type_of"]


class Action(enum.StrEnum):
    """What a verb did (or, with ``dry_run``, would do) to one product or item."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ERROR = "error"
    #: remove: the item was unlinked and deleted
    REMOVED = "removed"
    #: remove: there was no such item
    ABSENT = "absent"
    #: remove: the item stays (another product's, or registered again meanwhile)
    KEPT = "kept"


class ErrorKind(enum.StrEnum):
    """Whether a failure is worth retrying."""

    #: the product, an option or an existing document is bad: fix it, retrying will not help
    INPUT = "input"
    #: the store failed or compare-and-swap gave up: transient, retry
    STORAGE = "storage"
    #: a bug: please report it
    INTERNAL = "internal"


#: plain attribute assignment, without super()'s lookup per field
_set = object.__setattr__


@dataclass
class Result:
    """What happened to one product (register) or item (remove).

    ``action``: an :class:`Action`. Register results carry the ``source``
    product, and on failure ``error`` (credentials redacted), ``error_type``
    (an :class:`ErrorKind`) and ``hints`` (structured ways out; ``error``
    phrases them for Python, :meth:`error_for` for other callers), and
    ``link_pending`` when ``ack="durable"`` returned before the link. Remove
    results carry ``extent_recomputed`` and, when the item was kept (or
    is absent because its collection is), the ``reason``.
    """

    source: str | None = None
    id: str | None = None
    href: str | None = None
    #: an :class:`Action`; a plain string assigned is turned into one
    action: str = Action.ERROR
    error: str | None = None
    #: an :class:`ErrorKind` or ``None``; a plain string assigned is turned into one
    error_type: str | None = None
    hints: tuple[Hint, ...] = ()
    extent_recomputed: bool | None = None
    reason: str | None = None
    item: dict[str, Any] | None = field(default=None, repr=False)
    #: register with ``ack="durable"``: the item is written and its change of
    #: the collection (link, extent) stored as an intent that a live leader is
    #: bound to apply, but not applied yet when the call returned
    link_pending: bool = False

    def __setattr__(self, name: str, value: Any) -> None:
        # a member assigned (every assignment the verbs make) is kept as is:
        # Enum's call is the slow part of setting a field
        if name == "action":
            if type(value) is not Action:
                value = Action(value)
        elif name == "error_type" and value is not None and type(value) is not ErrorKind:
            value = ErrorKind(value)
        _set(self, name, value)

    def __post_init__(self) -> None:
        if self.extent_recomputed is None and self.action in _REMOVE_ACTIONS:
            self.extent_recomputed = False

    def fail(self, message: str, exc: BaseException) -> None:
        """Mark this result failed with ``message`` (credentials in it redacted),
        classified from ``exc``, whose hints it takes over."""
        self.action = Action.ERROR
        self.error = redact(message)
        self.error_type = error_type_of(exc)
        self.hints = exc.hints if isinstance(exc, ProducerError) else ()

    def __repr__(self) -> str:
        """The dataclass repr with credentials redacted (``source`` may be a
        product URL with ``user:pw@`` or ``?sig=``): a printed or logged list
        of results shows no more than :meth:`to_dict`."""
        shown = []
        for f in fields(self):
            if f.repr:
                value = getattr(self, f.name)
                if f.name == "link_pending" and not value:
                    continue  # shown only when set (ack "durable")
                shown.append(f"{f.name}={redact(value) if isinstance(value, str) else value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def ok(self) -> bool:
        return self.action != Action.ERROR

    @property
    def hint(self) -> Hint | None:
        """The first hint, or ``None``."""
        return self.hints[0] if self.hints else None

    def error_for(self, spell: Spelling) -> str | None:
        """``error`` with its hints spelled by ``spell`` (a CLI flag, an env var)."""
        return None if self.error is None else rephrase(self.error, self.hints, spell)

    def to_dict(self, spell: Spelling | None = None) -> dict[str, Any]:
        """JSON-ready dict: ``id``, ``href``, ``action`` always; ``source``,
        ``error``/``error_type``/``hints``, ``extent_recomputed``, ``reason``
        and ``link_pending`` when they apply. ``spell``: how ``error`` phrases the hints (default
        Python)."""
        out: dict[str, Any] = {}
        if self.source is not None:
            out["source"] = redact(self.source)
        out.update(id=self.id, href=self.href, action=self.action)
        if self.error is not None:
            out["error"] = self.error if spell is None else self.error_for(spell)
            out["error_type"] = self.error_type
            if self.hints:
                out["hints"] = [h.to_dict() for h in self.hints]
        if self.extent_recomputed is not None:
            out["extent_recomputed"] = self.extent_recomputed
        if self.reason is not None:
            out["reason"] = redact(self.reason)
        if self.link_pending and self.ok:
            out["link_pending"] = True
        return out


_REMOVE_ACTIONS = frozenset({Action.REMOVED, Action.ABSENT, Action.KEPT})

#: the names callers know; one type
RegisterResult = Result
RemoveResult = Result


def error_type_of(exc: BaseException) -> ErrorKind:
    """``storage`` for store failures and exhausted retries, ``input`` for the
    other deliberate errors, ``internal`` for anything unexpected."""
    if isinstance(exc, (StoreError, ConflictError)):
        return ErrorKind.STORAGE
    if isinstance(exc, ProducerError):
        return ErrorKind.INPUT
    return ErrorKind.INTERNAL


#: what :func:`producer.validate_catalog` and :func:`producer.reconcile` can
#: find; the errors among them are :data:`producer.audit.ERRORS`, the others
#: are warnings (the catalog is still correct STAC)
ProblemKind = Literal[
    "missing-root",
    "unreadable",
    "schema",
    "dangling-link",
    "duplicate-link",
    "orphan",
    # an orphan item whose key follows another layout than its collection
    # records: never linked by reconcile (it would mix two layouts)
    "misplaced",
    "extent",
    "stale-extent",
    # summaries / item_assets not what the items give (removals do not shrink them)
    "stale-summary",
    "wrong-type",
    "collection-mismatch",
    "malformed",
    "duplicate-id",
    "missing-asset",
    "asset-unchecked",
    "interrupted-removal",
    "register-failed",
    "missing-product",
    # what follows the catalog: a sink that could not take the repairs, and a
    # pgSTAC database that differs from the catalog (reconcile with pgstac)
    "sink-failed",
    "pgstac-missing",
    "pgstac-extra",
    "pgstac-differing",
    "pgstac-collection",
    # the stac-geoparquet mirror differs from the JSON items (a warning: the
    # catalog is right, only search lags; reconcile with fix rebuilds it)
    "mirror-stale",
    # the mirror of a collection could not be read to compare it (a storage
    # error): an error, since the run could not check what it was asked to
    "mirror-unchecked",
    # a stale mirror that reconcile with fix could not rebuild (a storage error)
    "mirror-failed",
    # a partition holding linked items whose mirror file the collection does
    # not link (search misses its items; reconcile with fix links it)
    "unlinked-mirror",
    # a group-commit intent left behind by a writer that died (a warning:
    # never applied by others once stale; reconcile with fix deletes it)
    "stale-intent",
    # an unlinked item whose change a fresh intent holds: an ack="durable"
    # register returned before its leader linked it (a warning: a normal
    # state for moments; reconcile with fix links it)
    "link-pending",
    # a partition catalog that links no item, nor does any partition below
    # it (its items were removed or moved; a warning: valid STAC, left
    # linked on purpose, see docs/RELIABILITY.md)
    "empty-partition",
    # a linked item where no verb looks its id up (a key that does not name
    # its id, or outside the collection's recorded layout): remove says
    # absent and register writes a second item (a warning: valid STAC)
    "unfindable-item",
    # an item a writer is at work on when reconcile with fix looks last: written
    # and not yet linked, or marked and not yet removed, since the run began and
    # recently (a warning: left to its writer, and to the next run if it died)
    "in-progress",
    # two items of one collection describing the same product under reconcile's
    # data (registered under two ids): a warning naming both; removing one is
    # the caller's choice
    "duplicate-product",
    # a rendered thumbnail no item links (a register killed between its PNG
    # and its item, or the preview of a replaced product; a warning:
    # reconcile with fix deletes it once it is older than a register under way)
    "unlinked-thumbnail",
    # a catalog of its own in a folder of this one (its root link names
    # itself: a staging catalog below one at a bucket's root): neither
    # judged nor repaired here (a warning naming its URL)
    "nested-catalog",
]
PROBLEM_KINDS: tuple[str, ...] = get_args(ProblemKind)
