"""Sinks: what follows the static catalog (see :mod:`producer.changes`).

Each sink lives in its own module and imports its optional dependencies
there, so ``import producer.sinks`` costs nothing:

- :mod:`producer.sinks.pgstac`: :class:`~producer.sinks.pgstac.PgstacSink`,
  a pgSTAC database kept in step (extra ``stac-producer[pgstac]``).
- :mod:`producer.sinks.notify`: change notifications: a Python callback
  (:class:`~producer.sinks.notify.CallbackSink`), Prefect events
  (:class:`~producer.sinks.notify.PrefectEventSink`) and Amazon SNS messages
  (:class:`~producer.sinks.notify.SnsSink`, needs boto3: ``[s3]``).

This module is the seam between the commit path and the sinks. The verbs
(:mod:`producer.ingest`, :mod:`producer.removal`, :mod:`producer.repair`)
take ``sinks: Sequence[Sink]``, built by :mod:`producer.api` from the
options, and call:

- :func:`check_sinks` before their first write: a sink that can be
  unreachable (a database) says so while the static catalog is untouched;
- :func:`deliver` after a batch is committed (items written and linked),
  once per collection, with the committed collection document.

Optional members of a sink, besides the :class:`~producer.changes.Sink`
protocol's ``apply``:

- ``check()``: raise (a :class:`~producer.errors.StoreError`) if the sink
  cannot take changes now. Cheap: one connection, no writes.
- ``wants_unchanged = True``: the sink holds its own copy that can fall
  behind the catalog (its ``apply`` failed after a commit) and its ``apply``
  is idempotent; it is then also handed the items a run found unchanged (as
  ``UPDATED``) and the removals that found nothing left to remove (as
  ``REMOVED``), so that rerunning the same command brings it back in line.
  Sinks that report changes (notifications) leave it unset: unchanged is
  not a change. ``lacking(collection, unchanged)``, if present, picks the
  unchanged changes the sink does not hold yet (the mirror's cheap check).
- ``outbox_id``: a stable, path-safe name; the sink's changes then go
  through the collection's outbox (:mod:`producer.sinks.outbox`), so that a
  call that failed is sent by the next verb of the collection.

What ``apply`` raises may carry ``undelivered``: the changes of the call
(the very objects it was handed) that it did not deliver; the others were.
The outbox then keeps only those (none: the error is reported once and
nothing is kept, e.g. a change that can never be sent). Without it the
whole call counts as undelivered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from producer.changes import Change, ChangeKind, Sink
from producer.sinks.outbox import Entry, Outbox, describe_entries, flatten, outbox_id

__all__ = [
    "Outbox",
    "SinkFailure",
    "check_sinks",
    "deliver",
    "describe",
    "remedy_text",
    "removed",
    "wants_unchanged",
]

log = logging.getLogger(__name__)


def describe(sink: Sink) -> str:
    """How messages name ``sink``: its ``repr`` (a sink keeps secrets out of it)."""
    return repr(sink)


def wants_unchanged(sink: Sink) -> bool:
    """Whether ``sink`` is also handed unchanged items and no-op removals."""
    return bool(getattr(sink, "wants_unchanged", False))


def check_sinks(sinks: Sequence[Sink]) -> None:
    """Call ``check()`` of every sink that has one; the first failure propagates.
    Writes nothing."""
    for sink in sinks:
        check = getattr(sink, "check", None)
        if callable(check):
            check()


class SinkFailure(Exception):
    """One sink's ``apply`` failed: ``sink`` (as :func:`describe` names it) and the ``error``.

    ``remedy``, what brings the sink back in line: ``"rerun"`` (the sink
    keeps a copy and takes unchanged items: rerunning the verb, or
    reconcile, repairs it), ``"outbox"`` (the changes are kept in the
    collection's outbox, ``kept``: the next register, remove or reconcile of
    the collection sends them) or ``"none"`` (nothing will resend them).
    """

    def __init__(
        self, sink: str, error: BaseException, remedy: str = "rerun", kept: str | None = None
    ) -> None:
        super().__init__(f"{sink}: {error}")
        self.sink = sink
        self.error = error
        self.remedy = remedy
        self.kept = kept


def remedy_text(failures: Sequence[SinkFailure], collection: str, rerun: str) -> str:
    """What brings the failed sinks back in line, in words: ``rerun`` (e.g.
    "register again, or reconcile") for sinks that keep a copy, the outbox
    for notification sinks, a plain warning where nothing will resend."""
    parts = []
    if any(f.remedy == "rerun" for f in failures):
        parts.append(f"{rerun}, to bring it in line")
    if any(f.remedy == "outbox" for f in failures):
        parts.append(
            f"the missed notifications are kept in the outbox of collection {collection!r}: the next "
            "register, remove or reconcile of that collection with the same sink sends them"
        )
    lost = [f.sink for f in failures if f.remedy == "none"]
    if lost:
        parts.append(f"{', '.join(lost)} will not be sent these changes again")
    return "; ".join(parts)


def deliver(
    sinks: Sequence[Sink],
    collection: dict[str, Any],
    changes: Sequence[Change],
    unchanged: Iterable[Change] = (),
    outbox: Outbox | None = None,
) -> list[SinkFailure]:
    """Hand one collection's committed ``changes`` (in commit order) to every
    sink; sinks that :func:`wants_unchanged` also get ``unchanged`` (changes
    of kind ``UPDATED`` or ``REMOVED`` that changed nothing in the catalog),
    after the real ones, filtered by the sink's ``lacking(collection,
    unchanged)`` when it has one (a mirror that already holds them is not
    rewritten). A sink with nothing to apply is not called.

    ``outbox`` (:mod:`producer.sinks.outbox`): sinks with an ``outbox_id``
    first get the entries of theirs that are due (an earlier failed call),
    then their changes; those are written to the outbox before the call
    (one create-only PUT), deleted after it (marked failed if it fails).

    Every sink is called even when one fails: returns the failures (empty:
    all applied). Mutates nothing; writes only the outbox and what the
    sinks write.
    """
    extra = list(unchanged)
    failures: list[SinkFailure] = []
    coll_id = str(collection.get("id", ""))
    for sink in sinks:
        sink_id = outbox_id(sink) if outbox is not None else None
        try:
            batch = list(changes)
            if extra and wants_unchanged(sink):
                lacking = getattr(sink, "lacking", None)
                batch += list(lacking(collection, extra)) if callable(lacking) else extra
        except Exception as exc:
            failures.append(SinkFailure(describe(sink), exc))
            continue
        if outbox is None or sink_id is None:
            if not batch:
                continue
            try:
                sink.apply(collection, batch)
            except Exception as exc:  # each sink fails on its own; the caller reports per product
                remedy = "rerun" if wants_unchanged(sink) else "none"
                failures.append(SinkFailure(describe(sink), exc, remedy))
            continue
        failure = _deliver_kept(sink, sink_id, outbox, coll_id, collection, batch)
        if failure is not None:
            failures.append(failure)
    return failures


def _deliver_kept(
    sink: Sink, sink_id: str, outbox: Outbox, coll_id: str, collection: dict[str, Any], batch: list[Change]
) -> SinkFailure | None:
    """:func:`deliver` for a sink with an outbox: due entries first, then
    ``batch`` recorded, applied, and the entries deleted; when the call
    fails, each entry keeps only its changes the error names
    ``undelivered`` (:func:`_keep`). Returns the failure, or None."""
    try:
        due = outbox.due(coll_id, sink_id)
    except Exception as exc:  # the outbox unreadable: deliver this batch anyway
        log.warning("reading the outbox of %s in collection %r failed (%s)", describe(sink), coll_id, exc)
        due = []
    if not due and not batch:
        return None
    key: str | None = None
    if batch:
        try:
            key = outbox.record(coll_id, sink_id, batch)
        except Exception as exc:  # deliver anyway: the outbox is the safety net, not the path
            log.warning("recording changes in the outbox of %s failed (%s)", describe(sink), exc)
    if due:
        log.info("sending %s to %s", describe_entries(due), describe(sink))
    try:
        sink.apply(collection, flatten(due) + batch)
    except Exception as exc:
        left = _undelivered(exc)
        entries = [*due, *([Entry(key, batch)] if key is not None else [])]
        kept = _keep(outbox, entries, left, key)
        if key is None and (left is None or any(id(c) in left for c in batch)):
            return SinkFailure(describe(sink), exc, "none")  # the batch could not be recorded
        if kept is None:
            return SinkFailure(describe(sink), exc, "none")  # nothing it missed can be resent
        return SinkFailure(describe(sink), exc, "outbox", kept)
    outbox.done([e.key for e in due] + ([key] if key is not None else []))
    return None


def _undelivered(exc: BaseException) -> set[int] | None:
    """The ``id()`` of each change ``exc`` names undelivered, or None: it
    names none, so the whole call counts as undelivered."""
    undelivered = getattr(exc, "undelivered", None)
    if undelivered is None:
        return None
    try:
        return {id(c) for c in undelivered}
    except TypeError:
        return None


def _keep(outbox: Outbox, entries: list[Entry], left: set[int] | None, fresh: str | None) -> str | None:
    """After a failed call: each of ``entries`` keeps only its changes in
    ``left`` (all of them when ``left`` is None), or is deleted when none of
    them is left. An entry is rewritten (state ``failed``) only when it
    lost changes, or it is ``fresh`` (this call's, still ``pending``).
    Returns the first key kept, or None."""
    kept: str | None = None
    delivered: list[str] = []
    for entry in entries:
        keep = entry.changes if left is None else [c for c in entry.changes if id(c) in left]
        if not keep:
            delivered.append(entry.key)
            continue
        kept = kept or entry.key
        if len(keep) == len(entry.changes) and entry.key != fresh:
            continue  # already due as it is
        try:
            outbox.failed(entry.key, keep)
        except Exception as mark_exc:  # still as it was: sent again once due (at least once)
            log.warning("marking outbox entry %s failed did not work (%s)", entry.key, mark_exc)
    outbox.done(delivered)
    return kept


def removed(collection: str, item_id: str, key: str, item: dict[str, Any] | None) -> Change:
    """A ``REMOVED`` change; ``item``: the last committed document, or (nothing
    was left to remove) a stub with the id and collection only."""
    doc = item if item is not None else {"type": "Feature", "id": item_id, "collection": collection}
    return Change(ChangeKind.REMOVED, collection, item_id, key, doc)
