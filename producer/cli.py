"""``stac-producer``: parse arguments, call :mod:`producer.api`, print.

Exit codes: 0 all done, 1 some products (or checks) failed, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from producer.errors import InputError, ProducerError
from producer.redact import redact


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cli_phrasing(message: str | None) -> str | None:
    """Api messages name Python parameters (``id_template=``, ``replace=True``);
    a CLI user needs the matching flags."""
    if message is None:
        return None
    return message.replace("id_template=", "--id-template ").replace("replace=True", "--replace")


def _storage_options(pairs: Sequence[str]) -> dict:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--storage-option")
        key, value = pair.split("=", 1)
        if key == "endpoint_url":
            out.setdefault("client_kwargs", {})["endpoint_url"] = value
        else:
            out[key] = value
    return out


def _provider(text: str) -> dict:
    name, _, rest = text.partition(":")
    roles, _, url = rest.partition(":") if not rest.startswith("http") else ("", "", rest)
    provider: dict[str, Any] = {"name": name}
    if roles:
        provider["roles"] = [r for r in roles.split(",") if r]
    if url:
        provider["url"] = url
    return provider


catalog_option = click.option(
    "--catalog",
    "-c",
    required=True,
    envvar="STAC_CATALOG",
    show_envvar=True,
    help="Catalog root: a local path, file://, memory:// or s3:// URL.",
)
collection_option = click.option(
    "--collection",
    required=True,
    envvar="STAC_COLLECTION",
    show_envvar=True,
    help="Collection id (created on first use).",
)
storage_option = click.option(
    "--storage-option",
    "-o",
    "storage_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec storage option, repeatable (endpoint_url=... sets the S3 endpoint).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stac-producer")
def main() -> None:
    """Register raster products into a static STAC catalog, and keep it valid."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@catalog_option
@collection_option
@click.option(
    "--datetime", "datetime_", metavar="ISO|START/END", help="Explicit datetime or range for every product."
)
@click.option(
    "--datetime-pattern",
    metavar="REGEX",
    help="Regex on the file name: named groups year/month/day[/hour/minute/second], "
    "start/end, or one group holding a date.",
)
@click.option(
    "--datetime-source",
    "datetime_sources",
    multiple=True,
    type=click.Choice(["explicit", "filename", "tags"]),
    help="Order of datetime sources to try (repeatable; default explicit, filename, tags).",
)
@click.option(
    "--id-template",
    default="{stem}",
    show_default=True,
    help="Item id template: {stem}, {name}, {parent}, {collection}.",
)
@click.option(
    "--href-rewrite",
    "href_rewrites",
    multiple=True,
    metavar="FROM=TO",
    help="Rewrite asset href prefixes, e.g. /data=s3://bucket/data (repeatable).",
)
@click.option(
    "--partition",
    type=click.Choice(["year", "year/month"]),
    help="Put items under <collection>/<YYYY>[/<MM>]/ sub-catalogs.",
)
@click.option("--stats", is_flag=True, help="Compute band statistics (from overviews when present).")
@click.option("--checksum", is_flag=True, help="Add a sha2-256 file:checksum (reads whole files).")
@click.option("--dry-run", is_flag=True, help="Extract and validate; write nothing.")
@click.option(
    "--replace",
    is_flag=True,
    help="Overwrite an existing item that has the same id but describes another product "
    "(default: refuse; or tell them apart with --id-template '{parent}_{stem}').",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per product.")
@click.option("--collection-title", help="Title of a new collection.")
@click.option("--collection-description", help="Description of a new collection.")
@click.option("--license", "license_", help="SPDX license id of a new collection (default: other).")
@click.option("--keyword", "keywords", multiple=True, help="Keyword of a new collection (repeatable).")
@click.option(
    "--provider",
    "providers",
    multiple=True,
    metavar="NAME[:ROLES[:URL]]",
    help="Provider of a new collection, e.g. 'ESA:producer,licensor:https://esa.int'.",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1),
    help="Products committed per parent compare-and-swap.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@storage_option
def register(
    paths: tuple[str, ...],
    catalog: str,
    collection: str,
    datetime_: str | None,
    datetime_pattern: str | None,
    datetime_sources: tuple[str, ...],
    id_template: str,
    href_rewrites: tuple[str, ...],
    partition: str | None,
    stats: bool,
    checksum: bool,
    dry_run: bool,
    replace: bool,
    as_json: bool,
    collection_title: str | None,
    collection_description: str | None,
    license_: str | None,
    keywords: tuple[str, ...],
    providers: tuple[str, ...],
    batch_size: int,
    progress: bool | None,
    storage_pairs: tuple[str, ...],
) -> None:
    """Register PATHS (files, directories, globs, URLs) into the catalog."""
    from producer import api

    meta: dict[str, Any] = {}
    if collection_title:
        meta["title"] = collection_title
    if collection_description:
        meta["description"] = collection_description
    if license_:
        meta["license"] = license_
    if keywords:
        meta["keywords"] = list(keywords)
    if providers:
        meta["providers"] = [_provider(p) for p in providers]
    storage_options = _storage_options(storage_pairs)
    try:
        sources = api.expand_paths(paths, storage_options)
    except InputError as exc:
        raise click.UsageError(redact(str(exc))) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    if not sources:
        raise click.UsageError(redact(f"no products found in {' '.join(paths)}"))
    show_bar = (sys.stderr.isatty() if progress is None else progress) and len(sources) > 1
    bar = click.progressbar(length=len(sources), label="registering", file=sys.stderr) if show_bar else None

    def tick(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.pos)

    try:
        results = api.register(
            sources,
            catalog=catalog,
            collection=collection,
            storage_options=storage_options,
            collection_meta=meta or None,
            partition=partition,
            datetime=datetime_,
            datetime_pattern=datetime_pattern,
            datetime_sources=datetime_sources or None,
            id_template=id_template,
            href_rewrites=href_rewrites,
            stats=stats,
            checksum=checksum,
            dry_run=dry_run,
            batch_size=batch_size,
            progress=tick,
            replace=replace,
        )
    except InputError as exc:
        raise click.UsageError(redact(str(exc))) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    finally:
        if bar is not None:
            bar.render_finish()

    failed = [r for r in results if not r.ok]
    for r in failed:
        r.error = _cli_phrasing(r.error)
    if as_json:
        for r in results:
            click.echo(json.dumps({**r.to_dict(), **({"dry_run": True} if dry_run else {})}))
    else:
        rows = [(r.id or "-", r.action, r.href if r.ok else r.error) for r in results]
        click.echo(_table(rows, ["id", "action", "item / error"]))
        counts: dict[str, int] = {}
        for r in results:
            counts[r.action] = counts.get(r.action, 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        click.echo(f"\n{len(results)} products: {summary}{' (dry run: nothing written)' if dry_run else ''}")
    for r in failed:
        if as_json:
            click.echo(f"error: {r.error}", err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("catalog", envvar="STAC_CATALOG")
@click.option("--check-assets", is_flag=True, help="Also check that asset hrefs exist.")
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON lines.")
@storage_option
def validate(catalog: str, check_assets: bool, as_json: bool, storage_pairs: tuple[str, ...]) -> None:
    """Check the whole CATALOG: schemas (offline), links, orphans, extents."""
    from producer import api

    try:
        problems = api.validate_catalog(
            catalog, storage_options=_storage_options(storage_pairs), check_assets=check_assets
        )
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    errors = [p for p in problems if p.is_error]
    for p in problems:
        click.echo(json.dumps(p.to_dict()) if as_json else f"{'ERROR' if p.is_error else 'warning'} {p}")
    if not as_json:
        click.echo(
            f"{catalog}: {len(errors)} errors, {len(problems) - len(errors)} warnings"
            + (" — valid" if not errors else "")
        )
    sys.exit(1 if errors else 0)


@main.command()
@click.argument("item_id")
@catalog_option
@collection_option
@storage_option
def remove(item_id: str, catalog: str, collection: str, storage_pairs: tuple[str, ...]) -> None:
    """Unlink and delete ITEM_ID; recompute the collection extent exactly."""
    from producer import api

    try:
        result = api.remove(
            item_id, catalog=catalog, collection=collection, storage_options=_storage_options(storage_pairs)
        )
    except InputError as exc:
        raise click.UsageError(redact(str(exc))) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    if result.action == "absent":
        click.echo(f"{item_id}: no such item in collection {collection}", err=True)
        sys.exit(1)
    if result.action == "kept":
        click.echo(
            f"{item_id}: not removed: it was registered again while being removed "
            f"({result.href}); run remove again to remove the new version",
            err=True,
        )
        sys.exit(1)
    extra = " (extent recomputed)" if result.extent_recomputed else ""
    click.echo(f"removed {item_id} ({result.href}){extra}")


@main.command()
@click.argument("catalog", envvar="STAC_CATALOG")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="PREFIX",
    help="Product prefix/folder/glob to compare with the catalog (repeatable); "
    "also checks that asset hrefs exist.",
)
@click.option("--fix", is_flag=True, help="Repair what was found (default: report only).")
@click.option(
    "--dead",
    type=click.Choice(["flag", "remove"]),
    default="flag",
    show_default=True,
    help="Items whose assets are gone: flag (deprecated: true) or remove.",
)
@click.option("--collection", help="Collection for products found under --data with no item.")
@click.option(
    "--check-assets/--no-check-assets",
    default=None,
    help="Check asset hrefs exist (default: on when --data is given).",
)
@click.option("--id-template", default="{stem}", show_default=True)
@click.option("--href-rewrite", "href_rewrites", multiple=True, metavar="FROM=TO")
@click.option("--datetime-pattern", metavar="REGEX")
@click.option("--partition", type=click.Choice(["year", "year/month"]))
@storage_option
def reconcile(
    catalog: str,
    data: tuple[str, ...],
    fix: bool,
    dead: str,
    collection: str | None,
    check_assets: bool | None,
    id_template: str,
    href_rewrites: tuple[str, ...],
    datetime_pattern: str | None,
    partition: str | None,
    storage_pairs: tuple[str, ...],
) -> None:
    """Find (and with --fix repair) orphans, dangling/duplicate links, stale
    extents, items whose assets are gone and products with no item.

    Exit 0: nothing left to do. Exit 1: problems remain, an asset could not be
    checked (its item is left unchanged), or a missing product could not be
    registered. Exit 2: usage error."""
    from producer import api

    if fix and data and not collection:
        raise click.UsageError("--fix with --data needs --collection for the missing products")
    try:
        report = api.reconcile(
            catalog,
            storage_options=_storage_options(storage_pairs),
            data=list(data) or None,
            fix=fix,
            dead=dead,
            collection=collection,
            check_assets=check_assets,
            register_options={
                "id_template": id_template,
                "href_rewrites": href_rewrites,
                "datetime_pattern": datetime_pattern,
                "partition": partition,
            },
        )
    except InputError as exc:
        raise click.UsageError(redact(str(exc))) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    rows = [(kind, found, fixed, report.failed.get(kind, 0)) for kind, found, fixed in report.rows()]
    click.echo(_table(rows or [("(nothing)", 0, 0, 0)], ["finding", "found", "fixed", "failed"]))
    shown = report.remaining if fix else report.problems
    for p in shown:
        click.echo(f"{'ERROR' if p.is_error else 'warning'} {redact(_cli_phrasing(str(p)) or '')}")
    blocking = [p for p in shown if p.is_error or p.kind == "missing-product"]
    unchecked = sum(1 for p in shown if p.kind == "asset-unchecked")
    not_registered = sum(1 for p in shown if p.kind == "register-failed")
    click.echo("")
    if unchecked:
        click.echo(
            f"{unchecked} asset(s) could not be checked (see the reasons above): their items "
            "were left unchanged, neither flagged nor removed; make the data reachable "
            "(--storage-option endpoint_url=..., credentials, permissions) and rerun",
            err=True,
        )
    if not_registered:
        click.echo(
            f"{not_registered} product(s) under --data could not be registered (see the errors "
            "above); fix or move them and rerun reconcile --fix",
            err=True,
        )
    if fix:
        click.echo(
            f"{catalog}: " + ("valid after repair" if not blocking else f"{len(blocking)} problems left")
        )
    elif report.problems:
        click.echo("nothing written; rerun with --fix to repair")
    sys.exit(1 if blocking else 0)


@main.command("handle-event")
@click.argument("payload", type=click.File("r"), default="-")
@catalog_option
@collection_option
@click.option("--prefix", "prefixes", multiple=True, help="Accept only keys under this prefix (repeatable).")
@click.option(
    "--suffix",
    "suffixes",
    multiple=True,
    help="Accept only keys with this ending (repeatable; default .tif .tiff .nc).",
)
@click.option("--id-template", default="{stem}", show_default=True)
@click.option("--datetime-pattern", metavar="REGEX")
@click.option("--href-rewrite", "href_rewrites", multiple=True, metavar="FROM=TO")
@storage_option
def handle_event(
    payload,
    catalog: str,
    collection: str,
    prefixes: tuple[str, ...],
    suffixes: tuple[str, ...],
    id_template: str,
    datetime_pattern: str | None,
    href_rewrites: tuple[str, ...],
    storage_pairs: tuple[str, ...],
) -> None:
    """Apply an S3 event PAYLOAD (JSON file or - for stdin; direct, SQS, SNS or
    EventBridge shape): created objects are registered, removed ones removed.
    Prints the handler's result as JSON."""
    from producer.events import DEFAULT_SUFFIXES, HandlerConfig, handle

    try:
        event = json.load(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{payload.name}: not JSON ({exc})") from exc
    try:
        config = HandlerConfig(
            catalog=catalog,
            collection=collection,
            prefixes=prefixes,
            suffixes=suffixes or DEFAULT_SUFFIXES,
            id_template=id_template,
            storage_options=_storage_options(storage_pairs) or None,
            datetime_pattern=datetime_pattern,
            href_rewrites=href_rewrites,
        )
        result = handle(event, config)
    except InputError as exc:
        raise click.UsageError(redact(str(exc))) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    click.echo(json.dumps(result, indent=2))
    sys.exit(1 if result.get("failed") else 0)


@main.command()
@click.option(
    "--dir", "workdir", default="demo", show_default=True, help="Folder for the sample data and the catalog."
)
@click.option("--count", default=6, show_default=True, type=click.IntRange(1, 500))
def demo(workdir: str, count: int) -> None:
    """Write sample COGs, register them into a local catalog, validate it."""
    from producer.demo import run_demo

    code = run_demo(workdir, count=count, echo=click.echo, table=_table)
    sys.exit(code)


@main.command()
@click.argument("catalog")
@click.option("--bbox", metavar="W,S,E,N", help="Items meeting this box (west > east crosses the antimeridian).")
@click.option(
    "--datetime", "datetime_", metavar="START/END", help="Instant or range; '..' leaves an end open."
)
@click.option("--collections", metavar="A,B", help="Only these collections (comma-separated).")
@click.option("--ids", metavar="X,Y", help="Only these item ids (comma-separated).")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many features (numberMatched counts all).")
@storage_option
def search(
    catalog: str,
    bbox: str | None,
    datetime_: str | None,
    collections: str | None,
    ids: str | None,
    limit: int | None,
    storage_pairs: tuple[str, ...],
) -> None:
    """Search CATALOG's stac-geoparquet mirror; print a STAC API /search-like
    FeatureCollection as JSON."""
    from producer.search import search as run_search

    try:
        result = run_search(
            catalog,
            bbox=bbox,
            datetime=datetime_,
            collections=collections,
            ids=ids,
            limit=limit,
            storage_options=_storage_options(storage_pairs) or None,
        )
    except InputError as exc:
        message = redact(str(exc))
        for flag in ("bbox", "datetime", "collections", "ids", "limit"):
            if message.startswith(f"{flag} "):
                message = f"--{message}"
        raise click.UsageError(message) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(str(exc))) from exc
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
