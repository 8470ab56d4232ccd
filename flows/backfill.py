"""Backfill: crawl a prefix and register every product, in concurrent batches.

The prefix (a local directory, a glob, or ``s3://bucket/prefix``) is expanded
with :func:`producer.api.expand_paths`; the products are cut into batches of
``batch_size`` and each batch is one :func:`producer.prefect.register_in_stac`
task run, submitted to a thread pool. Batches of the same collection can run
at the same time: parents are updated by compare-and-swap, so no link is lost.
Each batch is retried on its own on transient storage errors; registering is
idempotent, so a rerun of the whole backfill only reports ``unchanged``.

    python -m flows.backfill s3://bucket/ndvi --catalog s3://bucket/stac --collection ndvi
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from producer.api import expand_paths
from producer.options import RegisterOptions, resolve_options
from producer.prefect import RegistrationFailed, artifact_key_for, register_in_stac

#: how many batches run at once (override with ``backfill.with_options(task_runner=...)``)
MAX_WORKERS = 4
_ACTIONS = ("created", "updated", "unchanged", "error")


@task(name="list-products")
def list_products(prefix: str | list[str], storage_options: dict[str, Any] | None = None) -> list[str]:
    """Every product under ``prefix`` (sorted; see :func:`producer.api.expand_paths`)."""
    return expand_paths(prefix, storage_options)


@flow(name="stac-backfill", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))  # type: ignore[arg-type]
def backfill(
    prefix: str | list[str],
    catalog: str,
    collection: str,
    batch_size: int = 200,
    storage_options: dict[str, Any] | None = None,
    options: RegisterOptions | None = None,
) -> dict[str, Any]:
    """Register every product under ``prefix`` into ``collection`` of ``catalog``.

    ``options``: how each product is registered (a
    :class:`~producer.options.RegisterOptions`; in a deployment, a JSON object
    of its fields). ``storage_options``: of the data and the catalog, where
    ``options`` sets neither (``options.data_storage_options`` also lists
    ``prefix``). ``batch_size`` is the number of products per task run.

    Writes items and parents (one compare-and-swap per parent per batch),
    a table artifact per batch (from the task) and a summary artifact
    ``backfill-<collection>``. Returns ``{"products", "batches", "created",
    "updated", "unchanged", "error", "failed_batches"}``; fails the run with
    :class:`~producer.prefect.RegistrationFailed` (after every batch ran) if any
    product failed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    logger = get_run_logger()
    opts = resolve_options(options, storage_options)
    products = list_products(prefix, opts.data_storage_options)
    batches = [products[i : i + batch_size] for i in range(0, len(products), batch_size)]
    logger.info(
        "%d product(s) under %s: %d batch(es) of up to %d", len(products), prefix, len(batches), batch_size
    )

    futures = [
        register_in_stac.with_options(task_run_name=f"register-batch-{n:04d}").submit(
            batch,
            catalog=catalog,
            collection=collection,
            options=opts,
        )
        for n, batch in enumerate(batches)
    ]

    counts: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    failed_batches = 0
    for batch, future in zip(batches, futures, strict=True):
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, RegistrationFailed):
            results: list[dict[str, Any]] = outcome.results
            failed_batches += 1
        elif isinstance(outcome, BaseException):  # the batch did not get to register
            results = [
                {"source": s, "action": "error", "error": f"{type(outcome).__name__}: {outcome}"}
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
    }
    create_table_artifact(
        table=[{"action": a, "count": counts[a]} for a in _ACTIONS],
        key=artifact_key_for("backfill", collection),
        description=f"Backfill of {prefix} into collection {collection!r} of {catalog}: "
        f"{len(products)} product(s) in {len(batches)} batch(es).",
    )
    logger.info("backfill summary: %s", summary)
    if failures:
        listed = "\n".join(f"  - {r.get('error') or r.get('source')}" for r in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        raise RegistrationFailed(
            f"backfill of {prefix}: {len(failures)} of {len(products)} product(s) failed "
            f"({failed_batches} of {len(batches)} batch(es)); summary {summary}:\n{listed}{more}",
            failures,
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.backfill``: run :func:`backfill` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m flows.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("prefix", help="directory, glob or s3://bucket/prefix to crawl")
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(backfill(args.prefix, args.catalog, args.collection, args.batch_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
