"""Event-driven registration: one object-storage event payload → the catalog.

The flow hands the payload (an S3 notification, or SQS/SNS/EventBridge
around one; see :mod:`producer.events`) to the one event handler,
:func:`producer.events.handle`: created objects are registered, removed ones
unlinked. It publishes a table artifact of what happened to each object and
fails — after every record was processed — if any record failed. In a
deployment the payload arrives from a Prefect event trigger (see
``deploy/prefect.yaml``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger

from producer.events import DEFAULT_SUFFIXES, HandlerConfig, handle
from producer.options import RegisterOptions
from producer.prefect import (
    RETRY_DELAYS,
    RegistrationFailed,
    artifact_key_for,
    forward_logs,
    retry_on_storage_errors,
)
from producer.redact import redact
from producer.results import ErrorKind
from producer.worker_secrets import (
    flow_spelling,
    refuse_catalog_credentials,
    refuse_secret_parameters,
    refuse_storage_credentials,
    with_worker_secrets,
)


class StorageFailures(RegistrationFailed):
    """Records of an event failed on storage (``error_type`` ``storage``):
    handling the event again may succeed. ``out``: the handler's result of
    the attempt that raised it."""

    def __init__(self, out: dict[str, Any]) -> None:
        failed = [f for f in out["failed"] if f.get("error_type") == ErrorKind.STORAGE]
        super().__init__(
            f"{len(failed)} event record(s) failed on storage, first: {failed[0].get('error')}",
            transient=True,
        )
        self.out = out

    def __reduce__(self) -> tuple[Any, ...]:  # Prefect may pickle a failed state's exception
        return (type(self), (self.out,))


#: per ``handle-event`` task run (its id), the handler's result of its last
#: failed attempt, merged with those before: a retry finds the items those
#: attempts wrote as they are (``unchanged``), and reports what the run did
_EARLIER_ATTEMPTS: dict[str, dict[str, Any]] = {}

#: what an entry says a run did, by weight: a retry's weaker word gives way
#: to an earlier attempt's stronger one for the same object and item
_WEIGHT = {"unchanged": 0, "absent": 0, "updated": 1, "created": 2, "removed": 2}


def _with_earlier(out: dict[str, Any], earlier: dict[str, Any] | None) -> dict[str, Any]:
    """``out`` (an attempt's result, mutated) with each entry of
    ``registered`` and ``removed`` that an earlier attempt (``earlier``,
    merged alike) reported for the same object and item with a stronger
    action (``created`` over ``updated`` over ``unchanged``; ``removed``
    over ``absent``) given that action: the earlier attempt wrote it, this
    one found it written."""
    if not earlier:
        return out
    for section in ("registered", "removed"):
        before = {
            (str(e.get("source")), str(e.get("id"))): str(e.get("action")) for e in earlier.get(section, [])
        }
        for entry in out.get(section, []):
            was = before.get((str(entry.get("source")), str(entry.get("id"))))
            if was is not None and _WEIGHT.get(was, -1) > _WEIGHT.get(str(entry.get("action")), 3):
                entry["action"] = was
    return out


def _task_run_id() -> str | None:
    context = TaskRunContext.get()
    return str(context.task_run.id) if context is not None else None


@task(
    name="handle-event",
    cache_policy=NO_CACHE,
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_on_storage_errors,
)
def handle_event(payload: dict[str, Any], config: HandlerConfig) -> dict[str, Any]:
    """:func:`producer.events.handle` as a task run (it never raises per record).
    Hints name the flow's ``options`` fields, credentials the worker's (see
    :func:`~producer.worker_secrets.flow_spelling`); the package's log records
    go to the run's logs.

    A record that failed on storage raises :class:`StorageFailures` (its
    ``out`` the result), so that the task is retried as ``register-in-stac``
    is (3 times, 2/10/30 s apart): an event run is the only delivery of its
    event, no queue redelivers it. Handling an event again is idempotent.
    Bad input alone is not retried: the result is returned. A retry reports
    the items an earlier attempt wrote as that attempt did (``created``,
    not the ``unchanged`` it finds), see :func:`_with_earlier`."""
    run_id = _task_run_id()
    with forward_logs():
        out = handle(payload, config, spell=flow_spelling)
    out = _with_earlier(out, _EARLIER_ATTEMPTS.get(run_id or ""))
    if any(f.get("error_type") == ErrorKind.STORAGE for f in out["failed"]):
        if run_id is not None:
            _EARLIER_ATTEMPTS[run_id] = out
        raise StorageFailures(out)
    _EARLIER_ATTEMPTS.pop(run_id or "", None)
    return out


def _failed_object(failure: dict[str, Any]) -> str:
    """What a failure is about: the object's URL, else the SQS message, else
    the payload itself (one that is no event at all)."""
    if failure.get("url"):
        return str(failure["url"])
    if failure.get("message_id") is not None:
        return f"message {failure['message_id']}"
    return "the payload"


def _failure_line(failure: dict[str, Any]) -> str:
    """One failure of the flow's error: its object, then its error (which
    names the object itself when it begins with it: not said twice)."""
    what, error = _failed_object(failure), str(failure.get("error") or "failed")
    return f"  - {error}" if error.startswith(what) else f"  - {what}: {error}"


def _rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        {
            "object": r.get("source", ""),
            "outcome": r.get("action", ""),
            "id": r.get("id") or "",
            "detail": r.get("href") or "",
        }
        for r in out.get("registered", [])
    ]
    rows += [
        {
            "object": r.get("source", ""),  # the deleted object
            "outcome": r.get("action", ""),
            "id": r.get("id", ""),
            "detail": r.get("href") or "",
        }
        for r in out.get("removed", [])
    ]
    rows += [
        {"object": r.get("url", ""), "outcome": "skipped", "id": "", "detail": r.get("reason", "")}
        for r in out.get("skipped", [])
    ]
    rows += [
        {
            "object": _failed_object(r),
            "outcome": "failed",
            "id": "",
            "detail": r.get("error", ""),
        }
        for r in out.get("failed", [])
    ]
    return rows


@flow(name="stac-event")
def handle_s3_event(
    payload: dict[str, Any],
    catalog: str,
    collection: str,
    prefixes: list[str] | None = None,
    suffixes: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    options: RegisterOptions | None = None,
) -> dict[str, Any]:
    """Register/remove the objects of one event ``payload``; return the handler's dict.

    The parameters other than ``payload`` build the
    :class:`~producer.events.HandlerConfig` (``suffixes=None``: the default
    product endings, ``[]`` or ``["*"]``: every key; ``options``: a
    :class:`~producer.options.RegisterOptions`, in a deployment a JSON object
    of its fields; ``storage_options``: of the data and the catalog, where
    ``options`` sets neither). Writes to the catalog through the
    api; publishes a table artifact ``event-<collection>``. Raises
    :class:`~producer.prefect.RegistrationFailed` listing the failed records
    when any failed (after handling the others). The pgSTAC DSN is read from
    ``STAC_PGSTAC_DSN`` in the worker's environment, as the Lambda handler
    reads it; ``options.pgstac`` holding a password is refused (flow
    parameters are stored in plain text).
    """
    refuse_catalog_credentials(catalog)
    refuse_secret_parameters(options)
    refuse_storage_credentials(storage_options, options)
    logger = get_run_logger()
    config = HandlerConfig(
        catalog=catalog,
        collection=collection,
        prefixes=tuple(prefixes or ()),
        suffixes=DEFAULT_SUFFIXES if suffixes is None else tuple(suffixes),
        options=with_worker_secrets(options),  # STAC_PGSTAC_DSN of the worker, never a parameter
        storage_options=storage_options,
    )
    state = handle_event(payload, config, return_state=True)
    _EARLIER_ATTEMPTS.pop(str(state.state_details.task_run_id), None)  # the retries are over
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, StorageFailures):  # still failing on storage after the retries
        out = outcome.out
    elif isinstance(outcome, BaseException):  # a bug: its own traceback
        raise outcome
    else:
        out = outcome
    logger.info(
        "event: %d registered, %d removed, %d skipped, %d failed",
        len(out["registered"]),
        len(out["removed"]),
        len(out["skipped"]),
        len(out["failed"]),
    )
    rows = _rows(out)
    if rows:
        create_table_artifact(
            table=rows,
            key=artifact_key_for("event", collection),
            description=f"Event handled into collection {collection!r} of {redact(catalog)}.",
        )
    if out["failed"]:
        listed = "\n".join(_failure_line(f) for f in out["failed"][:20])
        results = out["registered"] + [
            {"source": f.get("url") or "", "action": "error", "error": f.get("error")} for f in out["failed"]
        ]
        others = " (the others were handled)" if len(rows) > len(out["failed"]) else ""
        transient = any(f.get("error_type") == ErrorKind.STORAGE for f in out["failed"])
        retried = "\nA storage error was involved (handled again, up to 3 times): the run can be retried."
        raise RegistrationFailed(
            f"{len(out['failed'])} event record(s) failed{others}:\n{listed}{retried if transient else ''}",
            results,
            transient=transient,
        )
    return out
