"""Backfill: crawl a prefix and register every product, in concurrent batches.

The prefix (a local directory, a glob, or ``s3://bucket/prefix``) is expanded
with :func:`producer.api.expand_paths`; the products are grouped by the
parent document their items will be linked into (:func:`plan_batches`: the
partition of the date in the file name, else the collection) and cut into
batches of up to ``batch_size``, a parent's products in the same batch when
they fit, so concurrent batches do not fight over one document. Each batch is
one :func:`producer.prefect.register_in_stac` task run, on the task runner
the parameters choose (:func:`task_runner_for`):

* ``concurrency`` threads in the flow's process (the default: 4);
* ``dask_address="tcp://scheduler:8786"``: an existing Dask cluster (prefect-dask's
  ``DaskTaskRunner``; ``pip install 'stac-producer[dask]'`` on the flow's and
  the workers' machines), batches spread over its workers;
* ``dask=True``: a local Dask cluster of ``concurrency`` workers (processes).

Batches of the same collection can run at the same time: parents are updated
by compare-and-swap, so no link is lost. Each batch is retried on its own on
transient storage errors; registering is idempotent, so a rerun of the whole
backfill only reports ``unchanged``.

    python -m flows.backfill s3://bucket/ndvi --catalog s3://bucket/stac --collection ndvi
    python -m flows.backfill s3://bucket/ndvi ... --dask-address tcp://10.0.0.5:8786
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any, ParamSpec, TypeVar

from prefect import Flow, flow, task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import Field

from producer.api import expand_paths
from producer.catalog.layout import Layout
from producer.errors import InputError, ProducerError
from producer.extract.datetimes import from_explicit, from_filename
from producer.extract.ids import check_id
from producer.ingest import collection_layout, open_catalog
from producer.options import RegisterOptions, resolve_options
from producer.prefect import RegistrationFailed, artifact_key_for, register_in_stac
from producer.redact import redact
from producer.sources import GLOB_CHARS, no_products_found
from producer.urls import is_local, local_path
from producer.worker_secrets import (
    flow_phrased,
    refuse_catalog_credentials,
    refuse_secret_parameters,
    refuse_storage_credentials,
    with_worker_secrets,
)

P = ParamSpec("P")
R = TypeVar("R")

#: how many batches run at once by default (the ``concurrency`` parameter)
MAX_WORKERS = 4
_ACTIONS = ("created", "updated", "unchanged", "error")


@task(name="list-products")
def list_products(prefix: str | list[str], storage_options: dict[str, Any] | None = None) -> list[str]:
    """Every product under ``prefix`` (sorted; see :func:`producer.api.expand_paths`)."""
    with flow_phrased():  # no credentials: the worker's, not storage_options
        return expand_paths(prefix, storage_options)


def task_runner_for(
    concurrency: int = MAX_WORKERS, dask: bool = False, dask_address: str | None = None
) -> TaskRunner[Any]:
    """The task runner of the batches: ``concurrency`` threads, or a Dask
    cluster (an existing one at ``dask_address``, else with ``dask`` a local
    one of ``concurrency`` worker processes, listening on 127.0.0.1 only).

    Raises :class:`~producer.errors.InputError` when Dask is asked for and
    prefect-dask is not installed (the ``dask`` extra), or ``dask_address``
    is not a scheduler address (``tcp://HOST:PORT``): before any product is
    listed, where Dask itself would refuse it only once the batches start."""
    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}")
    if not dask and not dask_address:
        return ThreadPoolTaskRunner(max_workers=concurrency)
    try:
        from prefect_dask import DaskTaskRunner  # noqa: PLC0415 (the optional dask extra)
    except ImportError:
        raise InputError(
            "running the backfill on Dask needs prefect-dask: pip install 'stac-producer[dask]' "
            "(or leave dask and dask_address unset to run batches in threads)"
        ) from None
    if dask_address:
        return DaskTaskRunner(address=_checked_dask_address(dask_address))
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": concurrency, "host": "127.0.0.1", "dashboard_address": None}
    )


def _checked_dask_address(address: str) -> str:
    """``address`` when distributed's own parser takes it as a scheduler's
    ``PROTOCOL://HOST:PORT``; else an InputError naming ``dask_address``."""
    from distributed.comm.addressing import get_address_host_port  # noqa: PLC0415 (the dask extra)

    problem = "" if isinstance(address, str) else f"a {type(address).__name__}, not a string"
    if not problem:
        try:
            host, port = get_address_host_port(address.strip(), strict=True)
        except ValueError as exc:
            problem = str(exc)
        else:
            if not host:
                problem = "no host"
            elif not 0 < port < 65536:
                problem = f"port {port} out of range"
    if problem:
        raise InputError(
            f"dask_address {address!r} is not a Dask scheduler address ({problem}): give it as "
            "tcp://HOST:PORT, e.g. tcp://dask-scheduler:8786 (or leave it unset to run batches in "
            "threads, or set dask to run a local cluster)"
        )
    return address.strip()


def parent_hint(product: str, layout: Layout, collection: str, options: RegisterOptions) -> str:
    """The parent document a product's item will most likely be linked into,
    read from its name only (no file is opened): the partition of its
    explicit or file-name datetime, else (no date in the name) its folder;
    the collection in the flat layout."""
    if layout.partition is None:
        return layout.collection_key(collection)
    try:
        found = from_explicit(options.datetime) or from_filename(
            posixpath.basename(product), options.datetime_pattern
        )
    except ProducerError:
        found = None
    when = None if found is None else (found.datetime or found.start)
    if when is None:
        return posixpath.dirname(product)
    return layout.parent_key(collection, when)


@task(name="plan-batches")
def plan_batches(
    products: list[str], catalog: str, collection: str, options: RegisterOptions, batch_size: int
) -> list[list[str]]:
    """Batches of up to ``batch_size`` products, grouped by :func:`parent_hint`:
    a parent's products share a batch when they fit in one, small groups
    are packed together, and a group larger than ``batch_size`` fills whole
    batches of its own. Reads the collection's recorded layout (one GET);
    raises its :class:`~producer.errors.InputError` when ``options.partition``
    contradicts it, before any batch runs."""
    try:
        layout = collection_layout(
            open_catalog(catalog, options.catalog_storage_options), collection, options.partition
        )
    except InputError:
        # a partition the collection's layout contradicts: every product of
        # every batch would fail with this one refusal, so the run fails once
        raise
    except ProducerError:
        layout = Layout(options.partition)  # the registrations report the problem per product
    groups: dict[str, list[str]] = {}
    for product in products:
        groups.setdefault(parent_hint(product, layout, collection, options), []).append(product)
    batches: list[list[str]] = []
    current: list[str] = []
    for _, group in sorted(groups.items()):
        if len(group) > batch_size:
            batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
            continue
        if len(current) + len(group) > batch_size:
            batches.append(current)
            current = []
        current.extend(group)
    if current:
        batches.append(current)
    return batches


def registration_options(
    options: RegisterOptions | None, storage_options: dict[str, Any] | None
) -> RegisterOptions:
    """The options each product is registered with: the flow's ``options``
    and ``storage_options`` parameters, plus the secrets of the worker's
    environment (``STAC_PGSTAC_DSN``, :mod:`producer.worker_secrets`).
    Resolved in the flow's process, never passed on as a (sub-)flow
    parameter: Prefect stores those in plain text."""
    return resolve_options(with_worker_secrets(options), storage_options)


class _RedactedParameters(Flow[P, R]):
    """A flow whose runs' parameters reach the Prefect server with every URL
    in them redacted (:func:`producer.redact.redact`): the batches sub-flow
    takes the product URLs, and Prefect stores a sub-flow run's parameters in
    plain text, so a presigned URL's signature would be stored once more.
    The run itself gets them whole."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return {key: _redacted(value) for key, value in super().serialize_parameters(parameters).items()}


def _redacted(value: Any) -> Any:
    """``value`` (JSON-like) with :func:`redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def register_batches(
    batches: list[list[str]],
    catalog: str,
    collection: str,
    options: RegisterOptions | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[Any]:
    """The batches sub-flow (run by :func:`backfill` on the task runner it
    chose, its parameters stored redacted: :class:`_RedactedParameters`):
    submit one :func:`register_in_stac` task run per batch; returns each batch's outcome
    (its result dicts, or the exception it ended with). ``options`` and
    ``storage_options``: the backfill's own parameters, as it was given them
    (the secrets are read here, from the environment: see
    :func:`registration_options`)."""
    options = registration_options(options, storage_options)
    futures = [
        register_in_stac.with_options(task_run_name=f"register-batch-{n:04d}").submit(
            batch,
            catalog=catalog,
            collection=collection,
            options=options,
        )
        for n, batch in enumerate(batches)
    ]
    return [future.result(raise_on_failure=False) for future in futures]


@flow(name="stac-backfill", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))  # type: ignore[arg-type]
def backfill(
    prefix: str | list[str],
    catalog: str,
    collection: str,
    batch_size: Annotated[int, Field(ge=1)] = 200,  # the minimum in the schema: the server refuses 0
    storage_options: dict[str, Any] | None = None,
    options: RegisterOptions | None = None,
    concurrency: Annotated[int, Field(ge=1)] = MAX_WORKERS,
    dask: bool = False,
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Register every product under ``prefix`` into ``collection`` of ``catalog``.

    ``options``: how each product is registered (a
    :class:`~producer.options.RegisterOptions`; in a deployment, a JSON object
    of its fields). ``storage_options``: of the data and the catalog, where
    ``options`` sets neither (``options.data_storage_options`` also lists
    ``prefix``). ``batch_size`` is the number of products per task run;
    batches are grouped by parent document (:func:`plan_batches`).
    ``concurrency``, ``dask`` and ``dask_address`` choose where the batches
    run (:func:`task_runner_for`): threads here, a local Dask cluster, or an
    existing one; the batches run in a sub-flow on that runner.

    Secrets never travel as parameters (Prefect stores those in plain
    text): the pgSTAC DSN is read from ``STAC_PGSTAC_DSN`` in the worker's
    environment; ``options.pgstac`` holding a password is refused
    (:mod:`producer.worker_secrets`), and so is a ``catalog`` URL with
    credentials in it. ``prefix`` and ``catalog`` are redacted wherever the
    run names them. A prefix under which no product is found fails the run
    (:class:`~producer.errors.InputError` naming the endings it holds), an
    unsafe ``collection`` id fails it before anything is listed.

    Writes items and parents (one compare-and-swap per parent per batch),
    a table artifact per batch (from the task) and a summary artifact
    ``backfill-<collection>``. Returns ``{"products", "batches", "created",
    "updated", "unchanged", "error", "failed_batches", "dry_run"}`` (with
    ``options.dry_run`` the counts say what a real run would do); fails the run with
    :class:`~producer.prefect.RegistrationFailed` (after every batch ran) if any
    product failed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    refuse_catalog_credentials(catalog)  # before its URL is named in any log line or artifact
    refuse_secret_parameters(options)
    refuse_storage_credentials(storage_options, options)
    # once, before listing: else every product of every batch fails with it
    check_id(collection, what="collection id")
    runner = task_runner_for(concurrency, dask, dask_address)
    logger = get_run_logger()
    opts = registration_options(options, storage_options)
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
    shown = " ".join(redact(p) for p in prefixes)  # a presigned URL's signature stays out
    for given in prefixes:  # a mistyped local path: else it is registered as a product, and fails
        if (
            is_local(given)
            and not any(c in given for c in GLOB_CHARS)
            and not os.path.exists(local_path(given))
        ):
            raise InputError(f"{given}: no such file or folder: check the prefix; nothing was registered")
    products = list_products(prefix, opts.data_storage_options)
    if not products:
        fact, example = no_products_found(prefixes, storage_options=opts.data_storage_options)
        fix = f". Give prefix a list of such files, or a glob: {example!r}" if example else ""
        raise InputError(f"{fact}{fix}")
    batches = plan_batches(products, catalog, collection, opts, batch_size)
    logger.info(
        "%d product(s) under %s: %d batch(es) of up to %d on %s",
        len(products),
        shown,
        len(batches),
        batch_size,
        type(runner).__name__,
    )
    # the parameters the backfill was given, not the resolved options: the
    # sub-flow run's parameters are stored as its own, secrets would be too;
    # and the product URLs are stored redacted (presigned signatures)
    batches_flow = _RedactedParameters(register_batches, name="stac-backfill-batches", task_runner=runner)
    outcomes = batches_flow(batches, catalog, collection, options, storage_options)

    counts: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    failed_batches = 0
    for batch, outcome in zip(batches, outcomes, strict=True):
        if isinstance(outcome, RegistrationFailed):
            results: list[dict[str, Any]] = outcome.results
            failed_batches += 1
        elif isinstance(outcome, BaseException):  # the batch did not get to register
            results = [
                {"source": s, "action": "error", "error": redact(f"{type(outcome).__name__}: {outcome}")}
                for s in batch
            ]
            failed_batches += 1
        else:
            results = outcome
        counts.update(r.get("action", "error") for r in results)
        failures.extend(r for r in results if r.get("action") == "error")

    summary: dict[str, Any] = {
        "products": len(products),
        "batches": len(batches),
        **{a: counts[a] for a in _ACTIONS},
        "failed_batches": failed_batches,
        # the counts of a dry run are what a real run would do: nothing was written
        "dry_run": opts.dry_run,
    }
    dry = " (dry run: nothing written)" if opts.dry_run else ""
    create_table_artifact(
        table=[{"action": a, "count": counts[a]} for a in _ACTIONS],
        key=artifact_key_for("backfill", collection),
        description=f"Backfill of {shown} into collection {collection!r} of {redact(catalog)}{dry}: "
        f"{len(products)} product(s) in {len(batches)} batch(es).",
    )
    logger.info("backfill summary%s: %s", dry, summary)
    if failures:
        listed = "\n".join(f"  - {redact(str(r.get('error') or r.get('source')))}" for r in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        raise RegistrationFailed(
            f"backfill of {shown}: {len(failures)} of {len(products)} product(s) failed "
            f"({failed_batches} of {len(batches)} batch(es)); summary {summary}:\n{listed}{more}",
            failures,
        )
    return summary


def _at_least_one(text: str) -> int:
    """A count of the command line (``--batch-size``, ``--concurrency``):
    refused there, naming the flag, rather than by the flow's parameter
    check (a traceback naming the parameter)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.backfill``: run :func:`backfill` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m flows.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="directory, glob or s3://bucket/prefix to crawl")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--batch-size", type=_at_least_one, default=200)
    parser.add_argument("--concurrency", type=_at_least_one, default=MAX_WORKERS, help="batches at once")
    parser.add_argument("--dask", action="store_true", help="run the batches on a local Dask cluster")
    parser.add_argument("--dask-address", default=None, help="scheduler of an existing Dask cluster")
    args = parser.parse_args(argv)
    try:
        summary = backfill(
            args.prefix,
            args.catalog,
            args.collection,
            args.batch_size,
            concurrency=args.concurrency,
            dask=args.dask,
            dask_address=args.dask_address,
        )
    except ProducerError as exc:  # the run's logs hold the traceback; the shell gets the message
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
