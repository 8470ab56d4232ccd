"""Prefect adapters: the ``register_in_stac`` task and the ``@registers_in_stac``
decorator. The only module of the package that imports Prefect
(``pip install 'stac-producer[prefect]'``); ``import producer`` never loads it.

Make registration the last step of a flow::

    from prefect import allow_failure, flow, task
    from producer.prefect import register_in_stac, registers_in_stac

    @task
    def make_ndvi(scene: str) -> str:
        ...                        # write the COG
        return "s3://bucket/ndvi/scene_20240501.tif"

    @flow
    def pipeline(scenes: list[str]) -> list[dict]:
        outputs = make_ndvi.map(scenes)            # futures are resolved for you
        return register_in_stac(allow_failure(outputs), catalog="s3://bucket/stac", collection="ndvi")

or let the task that writes a product register it itself::

    @task
    @registers_in_stac(catalog="s3://bucket/stac", collection="ndvi")
    def make_ndvi(scene: str) -> str:
        ...
        return "s3://bucket/ndvi/scene_20240501.tif"

``allow_failure`` (from ``prefect``) matters when an upstream task can fail:
with it, the products that were written are registered and each failed
upstream becomes a failed row, so the task (and the flow) fails listing it.
Without it Prefect does not run the task at all (``NotReady``), and a flow
that only returns the task's value ends ``Completed`` with ``None``.

What the task does on each run: registers every product (one bad product does
not stop the others), logs one line per product, publishes a table artifact
(``id``, ``action``, ``href``, ``error``, ``source``), and then fails the task
run with :class:`RegistrationFailed` if any product failed. Transient storage
failures (:class:`~producer.errors.StoreError`,
:class:`~producer.errors.ConflictError`, other ``OSError``) are retried; bad
input is not (see :func:`retry_on_storage_errors`). Registering is idempotent,
so a retry re-registers the good products as ``unchanged``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import inspect
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from prefect import Flow, Task, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.events import emit_event
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.logging.handlers import APILogHandler
from prefect.states import State
from prefect.types.names import raise_on_name_alphanumeric_dashes_only
from prefect.utilities.urls import url_for

from producer import api
from producer.errors import (
    ConflictError,
    InputError,
    ProducerError,
    StoreError,
)
from producer.ingest import check_collection_id
from producer.logs import ROOT_LOGGER
from producer.options import RegisterOptions, resolve_options
from producer.provenance import FLOW_RUN_PROPERTY
from producer.redact import redact
from producer.results import Action, ErrorKind
from producer.sinks.notify import PrefectEventSink
from producer.store.base import Store, catalog_argument
from producer.urls import pathlib_merged_url
from producer.worker_secrets import flow_phrased, flow_spelling, refuse_catalog_credentials

__all__ = [
    "CatalogProblemsRemain",
    "RegistrationFailed",
    "artifact_key_for",
    "check_artifact_key",
    "forward_logs",
    "prefect_event_sink",
    "product_urls",
    "register_and_report",
    "register_in_stac",
    "registers_in_stac",
    "retry_on_storage_errors",
    "retry_unless_bad_input",
    "run_sinks",
    "with_flow_run",
    "FLOW_RUN_PROPERTY",
]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

#: the task's default retry schedule for transient storage errors (seconds)
RETRY_DELAYS: list[float] = [2.0, 10.0, 30.0]

_MAX_LISTED_FAILURES = 20

#: the task's and the decorator's keywords besides the option fields (for
#: the "did you mean" of a misspelt one)
_TASK_KEYWORDS = ("products", "catalog", "collection", "artifact_key", "options", "storage_options")


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


class RegistrationFailed(ProducerError, RuntimeError):
    """One or more products could not be registered; the others were.

    ``results``: every product's result dict (:meth:`RegisterResult.to_dict`),
    the failed ones with an ``error``. ``transient``: the failure involved a
    storage error (so :func:`retry_on_storage_errors` retries the run).
    """

    def __init__(
        self, message: str, results: Sequence[Mapping[str, Any]] | None = None, *, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.results: list[dict[str, Any]] = [dict(r) for r in results or ()]
        self.transient: bool = transient

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The result dicts of the products that failed."""
        return [r for r in self.results if r.get("action") == "error"]


class CatalogProblemsRemain(ProducerError, RuntimeError):
    """A catalog still has errors (after a reconcile fix, or an audit).

    ``problems``: one dict per remaining problem (``Problem.to_dict()``).
    """

    def __init__(self, message: str, problems: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems: list[dict[str, Any]] = [dict(p) for p in problems or ()]


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------


def product_urls(value: Any) -> list[str]:
    """Flatten what upstream tasks returned into product URLs/paths.

    Accepts a ``str`` or ``os.PathLike``, a :class:`~prefect.futures.PrefectFuture`
    or :class:`~prefect.states.State` (its result is taken, which waits for it
    and raises if it failed), and lists/tuples/sets/generators of any of these,
    nested to any depth. ``None`` entries are skipped (a task that wrote
    nothing). Duplicates are dropped, first occurrence kept. Anything else
    (a number, a mapping, bytes) raises :class:`~producer.errors.InputError`;
    an exception object (a failed upstream passed with
    :func:`prefect.allow_failure`) is raised.
    """
    urls, upstream = _collect(value)
    if upstream:
        raise upstream[0]
    return urls


def _collect(value: Any) -> tuple[list[str], list[BaseException]]:
    """:func:`product_urls`, but upstream failures are returned, not raised.

    With ``register_in_stac(allow_failure(futures), ...)`` Prefect hands the
    task the exception of each failed upstream in place of its result.
    """
    out: list[str] = []
    upstream: list[BaseException] = []
    seen: set[str] = set()

    def visit(item: Any) -> None:
        if item is None:
            return
        if isinstance(item, BaseException):
            upstream.append(item)
            return
        if isinstance(item, (str, os.PathLike)):
            url = os.fspath(item)
            if not isinstance(url, str) or not url:
                raise InputError(f"cannot register {item!r}: the path is empty or not text")
            merged = pathlib_merged_url(url) if not isinstance(item, str) else None
            if merged is not None:  # Path("s3://b/x.tif") is s3:/b/x.tif
                raise InputError(
                    f"cannot register {redact(url)!r}: a URL that went through pathlib, which merges the "
                    f"'//' after its scheme; pass the URL as a str, e.g. {redact(merged)!r}"
                )
            if url not in seen:
                seen.add(url)
                out.append(url)
            return
        if isinstance(item, PrefectFuture):
            visit(item.result(raise_on_failure=False))
            return
        if isinstance(item, State):
            visit(item.result(raise_on_failure=False))
            return
        if isinstance(item, (Mapping, bytes, bytearray)) or not isinstance(item, Iterable):
            raise InputError(
                f"cannot register {item!r} ({type(item).__name__}): expected a product URL or path "
                "(str or pathlib.Path), a list of them, or the futures of tasks that return them"
            )
        for sub in item:
            visit(sub)

    visit(value)
    return out, upstream


def _slug(text: str) -> str:
    """``text`` in lowercase letters, digits and single dashes (``"stac"`` when none is left)."""
    key = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    return re.sub(r"-{2,}", "-", key).strip("-") or "stac"


def artifact_key_for(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) from ``parts``,
    the same for the same parts and distinct for distinct ones: parts that
    are a key already give themselves joined (``stac-ndvi``); others their
    letters and digits and a short hash of them as given, so collections
    ``NDVI.v2`` and ``ndvi_v2`` keep two tables (``stac-ndvi-v2-<hash>``),
    not one each run overwrites."""
    text = "-".join(p for p in parts if p)
    key = _slug(text)
    if key == text:
        return key
    return f"{key}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def check_artifact_key(key: str | None, name: str = "artifact_key") -> None:
    """Refuse an artifact key Prefect would refuse, before anything is written.

    Prefect checks a table artifact's key only when the artifact is created:
    after the registration (or repair) it reports on. ``None`` passes (the
    default key is used). Raises :class:`~producer.errors.InputError` naming
    ``name``, the rule and a key that would do.
    """
    if key is None:
        return
    problem = not isinstance(key, str) or not key
    if not problem:
        try:
            raise_on_name_alphanumeric_dashes_only(key, name)
        except ValueError:
            problem = True
    if problem:
        suggestion = _slug(key) if isinstance(key, str) else "stac"
        raise InputError(
            f"{name} {key!r} is not a Prefect artifact key: it must be lowercase letters, "
            f"digits and dashes only (e.g. {suggestion!r}); nothing was registered or written"
        )


# --------------------------------------------------------------------------
# the core: register, log, publish, fail
# --------------------------------------------------------------------------


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow or task run, this module's logger outside."""
    if TaskRunContext.get() is not None or FlowRunContext.get() is not None:
        return get_run_logger()
    return log


def _in_run() -> bool:
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


class _RunLogs(APILogHandler):
    """Sends a ``producer.*`` record to the logs of the flow or task run it
    was emitted in (resolved per record, from the emitting thread's run
    context, so concurrent runs each get their own); records emitted outside
    any run are left to the other handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _in_run() and bool(super().filter(record))


_forwarding_lock = threading.Lock()
_forwarding: dict[str, Any] = {"users": 0, "handler": None, "level": None}


def _reaches_api(logger: logging.Logger) -> bool:
    """True if ``logger``'s records already reach a Prefect API handler
    (``PREFECT_LOGGING_EXTRA_LOGGERS=producer`` attaches one)."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(isinstance(h, APILogHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


@contextlib.contextmanager
def forward_logs() -> Iterator[None]:
    """Inside a flow or task run: the package's log records (``producer.*``:
    one line per product, the register summary with its compare-and-swap
    conflicts, warnings) go to the run's logs, for the duration of the block.

    No ``PREFECT_LOGGING_EXTRA_LOGGERS`` needed; when it already names
    ``producer`` nothing is added (no record is sent twice). While any block
    is active, a ``producer`` logger without a level of its own logs at the
    level of Prefect's run loggers (``PREFECT_LOGGING_LEVEL``, INFO by
    default); the level is restored after the last block. Mutates the
    ``producer`` logger (one handler, its level) and nothing else; reentrant
    and thread-safe.
    """
    logger = logging.getLogger(ROOT_LOGGER)
    with _forwarding_lock:
        if _forwarding["users"] == 0:
            if not _reaches_api(logger):
                _forwarding["handler"] = _RunLogs()
                logger.addHandler(_forwarding["handler"])
            if logger.level == logging.NOTSET:
                run_level = logging.getLogger("prefect.task_runs").getEffectiveLevel()
                if run_level < logger.getEffectiveLevel():
                    _forwarding["level"] = logger.level
                    logger.setLevel(run_level)
        _forwarding["users"] += 1
    try:
        yield
    finally:
        with _forwarding_lock:
            _forwarding["users"] -= 1
            if _forwarding["users"] == 0:
                if _forwarding["handler"] is not None:
                    logger.removeHandler(_forwarding["handler"])
                if _forwarding["level"] is not None:
                    logger.setLevel(_forwarding["level"])
                _forwarding.update(handler=None, level=None)


def prefect_event_sink(catalog_url: str | None = None) -> PrefectEventSink | None:
    """Inside a flow or task run: a sink that emits one Prefect event per
    committed change (``stac.item.created|updated|removed``, resource
    ``stac.item.<collection>.<item id>``, the collection as related resource;
    see :func:`producer.sinks.notify.change_event`), related by Prefect to the
    run. ``catalog_url`` makes the payload's ``href`` absolute. Outside any
    run: ``None`` (no events). Emitting writes nothing to the catalog.
    """
    if not _in_run():
        return None
    return PrefectEventSink(emit_event, catalog_url=catalog_url)


def run_sinks(catalog: str | Store) -> list[PrefectEventSink]:
    """The sinks a Prefect run adds to a verb call on ``catalog``: inside a
    flow or task run, the :func:`prefect_event_sink` (hrefs absolute under
    the catalog's URL, without credentials); outside any run, none."""
    sink = prefect_event_sink(catalog.url if isinstance(catalog, Store) else str(catalog))
    return [sink] if sink is not None else []


def _flow_run_id() -> str | None:
    """The id of the flow run this code runs in (from a flow or a task run), or None."""
    flow_ctx = FlowRunContext.get()
    if flow_ctx is not None and flow_ctx.flow_run is not None:
        return str(flow_ctx.flow_run.id)
    task_ctx = TaskRunContext.get()
    if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
        return str(task_ctx.task_run.flow_run_id)
    return None


def with_flow_run(options: RegisterOptions) -> RegisterOptions:
    """``options`` plus the flow run this code runs in, when it runs in one:
    the property :data:`FLOW_RUN_PROPERTY` (its id) and a ``rel: via`` link
    to it (its page in the Prefect UI when ``PREFECT_UI_URL`` is set, else
    its API resource under ``PREFECT_API_URL``; no link without either).
    Outside any run: ``options`` unchanged. Like ``updated``, the run does
    not count as a change: an item whose content a rerun (another flow run)
    leaves as it was stays ``unchanged`` and keeps naming the run that wrote
    that content."""
    run_id = _flow_run_id()
    if run_id is None:
        return options
    given = options.properties if isinstance(options.properties, dict) else {}
    properties = {**given, FLOW_RUN_PROPERTY: run_id}
    url = url_for("flow-run", obj_id=run_id) or url_for("flow-run", obj_id=run_id, url_type="api")
    via = tuple(options.via) + ((url,) if url and url not in options.via else ())
    return dataclasses.replace(options, properties=properties, via=via)


def _table_rows(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": r.get("id") or "",
            # as the CLI's table: a created/updated item not linked yet says so
            "action": f"{r.get('action', 'error')}{' (link pending)' if r.get('link_pending') else ''}",
            "href": r.get("href") or "",
            "error": r.get("error") or "",
            "source": r.get("source", ""),
        }
        for r in results
    ]


def _describe_failures(failed: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for r in failed[:_MAX_LISTED_FAILURES]:
        source, error = str(r.get("source", "?")), str(r.get("error") or "registration failed")
        lines.append(f"  - {error}" if error.startswith(source) else f"  - {source}: {error}")
    if len(failed) > _MAX_LISTED_FAILURES:
        lines.append(f"  ... and {len(failed) - _MAX_LISTED_FAILURES} more (see the table artifact)")
    return "\n".join(lines)


def register_and_report(
    products: Any,
    *,
    catalog: str | Store,
    collection: str,
    artifact_key: str | None = None,
    options: RegisterOptions | None = None,
    storage_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Register ``products`` and report: the body of :func:`register_in_stac`.

    ``products``: anything :func:`product_urls` accepts; exception objects in
    it (failed upstream tasks passed with :func:`prefect.allow_failure`) are
    reported as failed rows. ``options``, ``storage_options`` and
    ``overrides``: as for :func:`producer.register` (a
    :class:`~producer.options.RegisterOptions`, the storage shorthand, its
    fields by name). Writes the catalog (items, parents); inside a flow or
    task run also logs one line per product to the run logger, creates a
    table artifact keyed ``artifact_key`` (default ``stac-<collection>``) and
    emits a Prefect event per item created or updated (``stac.item.*``, see
    :func:`prefect_event_sink`), for automations.
    Returns one result dict per product; errors phrase their hints with the
    parameter names, inside a run a credentials hint as the worker's role or
    environment (:func:`~producer.worker_secrets.flow_spelling`). Raises
    :class:`RegistrationFailed` (after registering the others) when any
    product failed, with ``transient=True`` when a storage error was
    involved; :class:`~producer.errors.InputError` for unusable options or
    inputs, :class:`TypeError` for an unknown option.
    """
    catalog = catalog_argument(catalog)
    if isinstance(catalog, str):  # before its URL is named in any log line or artifact
        refuse_catalog_credentials(catalog)
    check_artifact_key(artifact_key)  # Prefect would refuse it only after the registration
    opts = with_flow_run(resolve_options(options, storage_options, keywords=_TASK_KEYWORDS, **overrides))
    logger = _logger()
    urls, upstream = _collect(products)
    where = f"collection {collection!r} of catalog {redact(str(getattr(catalog, 'url', catalog)))}"
    dicts: list[dict[str, Any]] = []
    if urls:
        # api.register logs each product and a summary (with compare-and-swap
        # conflicts): forwarded into the run's logs
        # in a run, a product URL with credentials is refused as the flows refuse one
        # (rotate them; the worker's credentials), not advising storage_options
        phrased = flow_phrased() if _in_run() else contextlib.nullcontext()
        with forward_logs(), phrased:
            results = api.register(
                urls, catalog=catalog, collection=collection, options=opts, sinks=run_sinks(catalog)
            )
        # a credentials hint names the worker's role or environment, not parameters
        dicts = [r.to_dict(spell=flow_spelling if _in_run() else None) for r in results]
    elif not upstream:
        logger.warning("nothing to register into %s: no product URLs were given", where)
        return []
    dicts += [
        {
            "source": "(upstream task)",
            "id": None,
            "href": None,
            "action": Action.ERROR,
            # the upstream's own text can hold a presigned URL or userinfo
            "error": redact(f"upstream task failed: {type(exc).__name__}: {exc}"),
        }
        for exc in upstream
    ]

    for d in dicts:  # api.register logged every product at INFO; failures stand out here
        if d["action"] == "error":
            logger.error("failed %s: %s", d["source"], d.get("error"))
    counts = Counter(d["action"] for d in dicts)
    summary = (
        ", ".join(f"{counts[a]} {a}" for a in ("created", "updated", "unchanged", "error") if counts[a])
        or "nothing (no product found)"
    )
    pending = sum(1 for d in dicts if d.get("link_pending"))
    if pending:  # ack="durable": written and stored, a leader links them
        summary += f" ({pending} with the link pending: ack durable)"
    logger.info("registered into %s: %s", where, summary)

    if _in_run():
        # _sync: this code is synchronous, also when an async task called it
        # (through a worker thread), where Prefect would hand back a coroutine
        create_table_artifact(  # type: ignore[call-arg]
            table=_table_rows(dicts),
            key=artifact_key or artifact_key_for("stac", collection),
            description=(f"STAC registration into {where}{' (dry run)' if opts.dry_run else ''}: {summary}."),
            _sync=True,
        )

    failed = [d for d in dicts if d["action"] == "error"]
    if failed:
        # error_type "storage": the store failed or compare-and-swap gave up
        transient = any(d.get("error_type") == ErrorKind.STORAGE for d in failed)
        others = " (the others were registered)" if len(failed) < len(dicts) else ""
        message = (
            f"{len(failed)} of {len(dicts)} product(s) failed to register into {where}"
            f"{others}:\n{_describe_failures(failed)}"
        )
        if transient:
            message += "\nA storage error was involved: the run can be retried."
        # not chained to a failed upstream: its unredacted text would be
        # printed again with this task's traceback (its row names it, redacted)
        raise RegistrationFailed(message, dicts, transient=transient) from None
    return dicts


def _failure(state: State[Any]) -> str | None:
    """What ``state`` failed with, as the retry conditions weigh it: ``None``
    (it did not fail), ``"retryable"`` (a storage error, a lost
    compare-and-swap, a registration whose failures involved storage),
    ``"bad-input"`` (any other error of the producer's: no retry fixes it),
    ``"os"`` (another ``OSError``: the network) or ``"other"``. Read
    synchronously: in an async task Prefect's ``state.result()`` returns a
    coroutine (its async dispatch), so calling it plainly never saw the
    exception."""
    try:
        state.result(_sync=True)  # type: ignore[call-overload]
    except RegistrationFailed as exc:
        return "retryable" if exc.transient else "bad-input"
    except (StoreError, ConflictError):
        return "retryable"
    except ProducerError:
        return "bad-input"
    except OSError:
        return "os"
    except Exception:
        return "other"
    return None


def retry_on_storage_errors(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn``: retry transient storage failures, never bad input.

    Retries :class:`~producer.errors.StoreError`,
    :class:`~producer.errors.ConflictError`, other ``OSError`` (network), and
    :class:`RegistrationFailed` whose failures involved storage
    (``transient``). Does not retry :class:`~producer.errors.InputError` and
    friends, a failed registration caused only by bad products, or anything
    else. (Prefect calls this only for plain functions, hence no partial.)
    """
    return _failure(state) in ("retryable", "os")


def retry_unless_bad_input(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn`` for a task decorated with :func:`registers_in_stac`:
    retry whatever failed, except a registration that failed for bad input
    only (:class:`~producer.errors.InputError` and friends, a
    :class:`RegistrationFailed` that is not ``transient``), which no retry of
    the task can fix (it would run the producing function again for nothing).
    :func:`registers_in_stac` above ``@task`` adds it to the task itself."""
    return _failure(state) != "bad-input"


# --------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------


@task(
    name="register-in-stac",
    task_run_name="register-in-stac-{collection}",
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=retry_on_storage_errors,
    cache_policy=NO_CACHE,
)
def register_in_stac(
    products: Any,
    *,
    catalog: str | Store,
    collection: str,
    artifact_key: str | None = None,
    options: RegisterOptions | None = None,
    storage_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Register products into a STAC collection; fail the run if any failed.

    ``products``: a URL/path, a list of them, or upstream futures/results
    (nested lists too; wrap futures in :func:`prefect.allow_failure` to
    register what was written when some upstream runs failed). ``options``
    (a :class:`~producer.options.RegisterOptions`), ``storage_options`` and
    the keyword ``overrides`` (its fields by name, e.g. ``id_template=...``)
    are those of :func:`producer.register`; ``artifact_key`` names the table
    artifact (default ``stac-<collection>``). Returns the result dicts.
    Retried (3 times, 2/10/30 s apart) on transient storage errors only.
    """
    return register_and_report(
        products,
        catalog=catalog,
        collection=collection,
        artifact_key=artifact_key,
        options=options,
        storage_options=storage_options,
        **overrides,
    )


# --------------------------------------------------------------------------
# the decorator
# --------------------------------------------------------------------------


def _materialised(value: Any) -> Any:
    """A one-shot iterator read into a list (registering it would consume
    it, leaving the caller nothing); any other value as it is."""
    if isinstance(value, Iterator) and not isinstance(value, (str, bytes, bytearray, Sequence, Mapping)):
        return list(value)
    return value


def registers_in_stac(
    *,
    catalog: str | Store,
    collection: str,
    artifact_key: str | None = None,
    options: RegisterOptions | None = None,
    storage_options: dict[str, Any] | None = None,
    properties: Mapping[str, Any] | Callable[[Any], Mapping[str, Any] | None] | None = None,
    **overrides: Any,
) -> Callable[[F], F]:
    """Register what a function or task returns, right after it returns it.

    The decorated callable must return the written product URL(s): a ``str``
    or ``Path``, or a (nested) list of them; ``None`` registers nothing. Its
    return value is passed through unchanged, except a one-shot iterator
    (a generator object, ``map(...)``, ...): registering it would consume
    it, so it is read once into a list, which is registered, given to a
    ``properties`` function and returned in its place. When registration fails the
    call raises :class:`RegistrationFailed` (naming the function, each failed
    product and its error), so a Prefect task fails; a return value of another
    type raises :class:`~producer.errors.InputError`.

    Both orders work:

    * ``@task`` above ``@registers_in_stac(...)``: the plain function is
      wrapped, so registration runs inside the task run (its logs and table
      artifact belong to the task run, and the task's own ``retries`` cover
      it).
    * ``@registers_in_stac(...)`` above ``@task``: a new :class:`~prefect.Task`
      with the same name and options is returned around the wrapped function
      (``.submit``/``.map`` keep working); same behaviour as above, and its
      retries skip a registration that failed for bad input
      (:func:`retry_unless_bad_input`, with the task's own condition). Under
      ``@task``, give ``retry_condition_fn=retry_unless_bad_input`` to the task.

    Sync and ``async`` functions are supported, generators are not; a
    :class:`~prefect.Flow` is refused (decorate the function under ``@flow``
    instead). ``options``, ``storage_options``, ``overrides``: as for
    :func:`producer.register`; they, ``catalog`` (a URL or path, ``str`` or
    ``pathlib.Path``, or an open store) and ``collection`` are checked here,
    at decoration time, before the function ever runs.

    ``properties``: extra item properties, a mapping (as for
    :func:`producer.register`) or a function of the returned value that
    returns a mapping (or None), e.g. ``properties=lambda path:
    {"processing:level": "L2"}``; called after each call, its properties
    are merged over the static ones and checked like them (a reserved key
    fails the call with :class:`~producer.errors.InputError`, nothing
    registered). Inside a flow run the flow run is added too (see
    :func:`with_flow_run`).
    """
    # refused now, not after the decorated function has run and written its product
    catalog = catalog_argument(catalog)
    if isinstance(catalog, str):
        refuse_catalog_credentials(catalog)
    check_collection_id(collection)
    check_artifact_key(artifact_key)
    if properties is not None and not callable(properties):
        overrides["properties"] = properties
    opts = resolve_options(options, storage_options, keywords=(*_TASK_KEYWORDS, "properties"), **overrides)
    extra = properties if callable(properties) else None

    def options_for(name: str, value: Any) -> RegisterOptions:
        if extra is None:
            return opts
        more = extra(value)
        if more is None:
            return opts
        if not isinstance(more, Mapping):
            raise InputError(
                f"{name}: the properties function returned {type(more).__name__}, not a mapping "
                "of item properties"
            )
        try:
            given = opts.properties if isinstance(opts.properties, dict) else {}
            return dataclasses.replace(opts, properties={**given, **more})
        except InputError as exc:
            raise InputError(f"{name}: the properties function: {exc}") from None

    def register_output(name: str, value: Any) -> None:
        try:
            urls = product_urls(value)
        except InputError as exc:
            raise InputError(
                f"{name} returned {value!r}, which @registers_in_stac cannot register: {exc}"
            ) from None
        if not urls:
            _logger().warning("%s returned no product URL: nothing registered", name)
            return
        try:
            register_and_report(
                urls,
                catalog=catalog,
                collection=collection,
                artifact_key=artifact_key,
                options=options_for(name, value),
            )
        except RegistrationFailed as exc:
            raise RegistrationFailed(
                f"{name}: registration in STAC failed: {exc}", exc.results, transient=exc.transient
            ) from exc.__cause__

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"@registers_in_stac cannot wrap the generator {fn.__qualname__}; "
                "return the product URL(s) instead of yielding them"
            )
        name = getattr(fn, "__qualname__", repr(fn))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                value = _materialised(await fn(*args, **kwargs))
                # registration is blocking I/O: run it off the event loop
                # (to_thread copies the context, so run logging still works)
                await asyncio.to_thread(register_output, name, value)
                return value

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = _materialised(fn(*args, **kwargs))
            register_output(name, value)
            return value

        return wrapper

    def decorate(obj: F) -> F:
        if isinstance(obj, Flow):
            raise TypeError(
                f"@registers_in_stac cannot wrap the flow {obj.name!r}: put it below @flow "
                "(on the function) or use the register_in_stac task inside the flow"
            )
        if isinstance(obj, Task):
            # a copy with every option of the original (retries, hooks, cache,
            # name, ...), running the wrapped function
            # its retries skip a registration that failed for bad input
            # (retry_unless_bad_input), and keep the task's own condition
            given = obj.retry_condition_fn

            def retry(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> Any:
                if not retry_unless_bad_input(task, task_run, state):
                    return False
                # the task's own (maybe async: Prefect awaits what it returns)
                return given(task, task_run, state) if given is not None else True

            new: Task[..., Any] = obj.with_options(retry_condition_fn=retry)
            new.fn = wrap(obj.fn)
            new.task_key = f"{obj.task_key}-registers-in-stac"
            return new  # type: ignore[return-value]
        if not callable(obj):
            raise TypeError(f"@registers_in_stac decorates a function or a Prefect task, not {obj!r}")
        return wrap(obj)  # type: ignore[return-value]

    return decorate
