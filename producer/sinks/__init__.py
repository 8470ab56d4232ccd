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

Two optional members of a sink, besides the :class:`~producer.changes.Sink`
protocol's ``apply``:

- ``check()``: raise (a :class:`~producer.errors.StoreError`) if the sink
  cannot take changes now. Cheap: one connection, no writes.
- ``wants_unchanged = True``: the sink holds its own copy that can fall
  behind the catalog (its ``apply`` failed after a commit) and its ``apply``
  is idempotent; it is then also handed the items a run found unchanged (as
  ``UPDATED``) and the removals that found nothing left to remove (as
  ``REMOVED``), so that rerunning the same command brings it back in line.
  Sinks that report changes (notifications) leave it unset: unchanged is
  not a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from producer.changes import Change, ChangeKind, Sink

__all__ = ["SinkFailure", "check_sinks", "deliver", "describe", "removed", "wants_unchanged"]


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
    """One sink's ``apply`` failed: ``sink`` (as :func:`describe` names it) and the ``error``."""

    def __init__(self, sink: str, error: BaseException) -> None:
        super().__init__(f"{sink}: {error}")
        self.sink = sink
        self.error = error


def deliver(
    sinks: Sequence[Sink],
    collection: dict[str, Any],
    changes: Sequence[Change],
    unchanged: Iterable[Change] = (),
) -> list[SinkFailure]:
    """Hand one collection's committed ``changes`` (in commit order) to every
    sink; sinks that :func:`wants_unchanged` also get ``unchanged`` (changes
    of kind ``UPDATED`` or ``REMOVED`` that changed nothing in the catalog),
    after the real ones. A sink with nothing to apply is not called.

    Every sink is called even when one fails: returns the failures (empty:
    all applied). Mutates nothing; what the sinks write is theirs.
    """
    extra = list(unchanged)
    failures: list[SinkFailure] = []
    for sink in sinks:
        batch = list(changes) + (extra if wants_unchanged(sink) else [])
        if not batch:
            continue
        try:
            sink.apply(collection, batch)
        except Exception as exc:  # each sink fails on its own; the caller reports per product
            failures.append(SinkFailure(describe(sink), exc))
    return failures


def removed(collection: str, item_id: str, key: str, item: dict[str, Any] | None) -> Change:
    """A ``REMOVED`` change; ``item``: the last committed document, or (nothing
    was left to remove) a stub with the id and collection only."""
    doc = item if item is not None else {"type": "Feature", "id": item_id, "collection": collection}
    return Change(ChangeKind.REMOVED, collection, item_id, key, doc)
