"""Reconcile: audit a whole catalog and (with ``fix``) repair it — the nightly job.

Wraps :func:`producer.api.reconcile`: orphans, dangling and duplicate links,
stale extents, items whose assets are gone (``dead``: ``flag`` or
``remove``) and, given ``data``, products nobody registered (registered into
``collection``). Publishes two table artifacts: per problem kind how many were
found, fixed and remain (``<artifact_key>``), and every problem found
(``<artifact_key>-problems``). The run fails when errors remain (after the
fix, or found by an audit without ``fix``): among them assets whose existence
could not be checked (``asset-unchecked``: their items are left unchanged) and
products that could not be registered (``register-failed``) and mirrors
that could not be read to compare (``mirror-unchecked``) or, with ``fix``,
rebuilt (``mirror-failed``). Warnings do not
fail it.

    python -m flows.reconcile s3://bucket/stac --fix --data s3://bucket/ndvi --collection ndvi
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from producer import ReconcileReport, api
from producer.errors import InputError, ProducerError
from producer.options import RegisterOptions
from producer.prefect import (
    CatalogProblemsRemain,
    check_artifact_key,
    forward_logs,
    retry_on_storage_errors,
    run_sinks,
)
from producer.worker_secrets import (
    flow_phrased,
    refuse_catalog_credentials,
    refuse_secret_parameters,
    refuse_storage_credentials,
    with_worker_secrets,
)

_MAX_PROBLEM_ROWS = 1000


@task(
    name="reconcile-catalog",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_on_storage_errors,
    cache_policy=NO_CACHE,
)
def run_reconcile(
    catalog: str,
    data: str | list[str] | None,
    fix: bool,
    dead: Literal["flag", "remove"],
    collection: str | None,
    storage_options: dict[str, Any] | None,
    options: RegisterOptions | None,
) -> ReconcileReport:
    """One :func:`producer.api.reconcile` call; returns its ``ReconcileReport``.

    Writes to the catalog only with ``fix``. Retried on storage errors only
    (reconcile is idempotent).
    """
    # the package's records (register summary, give-ups) in the run's logs;
    # a credentials hint names the worker's, not storage_options
    with forward_logs(), flow_phrased():
        return api.reconcile(
            catalog,
            storage_options=storage_options,
            data=data,
            fix=fix,
            dead=dead,
            collection=collection,
            options=options,
            sinks=run_sinks(catalog),  # stac.item.* Prefect events for what --fix changes
        )


@flow(name="stac-reconcile")
def reconcile_catalog(
    catalog: str,
    data: str | list[str] | None = None,
    fix: bool = False,
    dead: Literal["flag", "remove"] = "flag",
    collection: str | None = None,
    storage_options: dict[str, Any] | None = None,
    options: RegisterOptions | None = None,
    artifact_key: str = "stac-reconcile",
) -> dict[str, Any]:
    """Find (and with ``fix`` repair) the problems of ``catalog``.

    Returns ``{"found": {kind: n}, "fixed": {kind: n}, "dry_run": bool,
    "would_fix": {kind: n}, "failed": {kind: n}, "remaining": [problem
    dicts], "registered": [result dicts]}``. With ``fix`` and the
    ``dry_run`` of ``options``, nothing is written: ``fixed`` is empty,
    ``would_fix`` (the artifact's column) counts what a fix would fix, and
    the run fails as an audit does when errors were found. Raises
    :class:`~producer.prefect.CatalogProblemsRemain` when errors remain,
    including assets that could not be checked and failed registrations.
    ``options``: how products under ``data`` that no item describes are
    registered (a :class:`~producer.options.RegisterOptions`; in a
    deployment, a JSON object of its fields). The pgSTAC database to compare
    (and with ``fix`` bring in line) is read from ``STAC_PGSTAC_DSN`` in the
    worker's environment: flow parameters are stored in plain text, so
    ``options.pgstac`` holding a password is refused. ``collection`` without
    ``data`` is refused: it would limit nothing.
    """
    if dead not in ("flag", "remove"):
        raise ValueError(f"dead must be 'flag' or 'remove', got {dead!r}")
    if collection and not data:  # as the CLI refuses --collection without --data
        raise InputError(
            f"collection {collection!r} names the collection that products found under data are "
            "registered into; without data it limits nothing (reconcile checks, and with fix "
            "repairs, every collection of the catalog): set data to the products' prefix, or leave "
            "collection unset; nothing was checked or repaired"
        )
    check_artifact_key(artifact_key)  # before the repair: Prefect checks it only at the artifact
    logger = get_run_logger()
    refuse_catalog_credentials(catalog)
    refuse_secret_parameters(options)
    refuse_storage_credentials(storage_options, options)
    # the pgSTAC DSN from the worker's environment (STAC_PGSTAC_DSN), never a parameter
    report = run_reconcile(
        catalog, data, fix, dead, collection, storage_options, with_worker_secrets(options)
    )

    left: Counter[str] = Counter(p.kind for p in report.remaining)
    # a dry run (the options' dry_run) fixed nothing: its column is what a fix would fix
    fixed_name, fixed = ("would_fix", report.would_fix) if report.dry_run else ("fixed", report.fixed)
    kinds = sorted(set(report.found) | set(fixed) | set(left))
    found = dict(report.found)
    failed = dict(report.failed)
    rows = [
        {
            "kind": kind,
            "found": found.get(kind, 0),
            fixed_name: fixed.get(kind, 0),
            "failed": failed.get(kind, 0),
            "remaining": left.get(kind, 0),
        }
        for kind in kinds
    ]
    for kind in kinds:
        logger.info("%s: %d found, %d %s", kind, found.get(kind, 0), fixed.get(kind, 0), fixed_name)
    mode = " (dry run: nothing written)" if report.dry_run else " with fix" if fix else " (audit only)"
    create_table_artifact(
        table=rows or [{"kind": "(none)", "found": 0, fixed_name: 0, "failed": 0, "remaining": 0}],
        key=artifact_key,
        description=f"Reconcile of {catalog}{mode}: "
        f"{sum(found.values())} problem(s) found, {sum(fixed.values())} {fixed_name.replace('_', ' ')}, "
        f"{sum(failed.values())} failed, {len(report.remaining)} remaining.",
    )
    remaining_ids = {(p.kind, p.key) for p in report.remaining}
    problems = [
        {
            **p.to_dict(),
            "status": "remaining" if (p.kind, p.key) in remaining_ids else ("fixed" if fix else "found"),
        }
        for p in report.problems[:_MAX_PROBLEM_ROWS]
    ]
    if problems:
        create_table_artifact(
            table=problems,
            key=f"{artifact_key}-problems",
            description=f"Problems found in {catalog}"
            + (f" (first {_MAX_PROBLEM_ROWS})" if len(report.problems) > _MAX_PROBLEM_ROWS else ""),
        )

    out: dict[str, Any] = {
        "found": found,
        "fixed": dict(report.fixed),
        "dry_run": report.dry_run,
        "would_fix": dict(report.would_fix),
        "failed": failed,
        "remaining": [p.to_dict() for p in report.remaining],
        "registered": [r.to_dict() for r in report.registered],
    }
    errors = [p for p in report.remaining if p.is_error]
    for p in errors:
        if p.kind in ("asset-unchecked", "register-failed", "mirror-unchecked", "mirror-failed"):
            logger.error("%s", p)
    if errors:
        listed = "\n".join(f"  - {p}" for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        hint = (
            " (a dry run: nothing was repaired; run without dry_run to repair them)"
            if report.dry_run
            else ""
            if fix
            else " (run with fix=True to repair them)"
        )
        kinds_left = {p.kind for p in errors}
        if "asset-unchecked" in kinds_left:
            hint += "; assets that could not be checked left their items unchanged: make the data reachable"
        if "register-failed" in kinds_left:
            hint += "; products that could not be registered must be fixed or moved"
        if "mirror-unchecked" in kinds_left:
            hint += "; mirrors that could not be read were not compared: make the catalog's storage reachable"
        if "mirror-failed" in kinds_left:
            hint += (
                "; mirrors that could not be rebuilt stay behind the catalog until a fix run rebuilds them"
            )
        raise CatalogProblemsRemain(
            f"{catalog}: {len(errors)} error(s) remain{hint}:\n{listed}{more}", out["remaining"]
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flows.reconcile``: run :func:`reconcile_catalog` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m flows.reconcile", description=__doc__.split("\n\n")[0])
    parser.add_argument("catalog")
    parser.add_argument("--fix", action="store_true")
    parser.add_argument("--dead", choices=("flag", "remove"), default="flag")
    parser.add_argument("--data", action="append", help="product prefix to compare (repeatable)")
    parser.add_argument("--collection")
    args = parser.parse_args(argv)
    try:
        summary = reconcile_catalog(args.catalog, args.data, args.fix, args.dead, args.collection)
    except ProducerError as exc:  # the run's logs hold the traceback; the shell gets the message
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
