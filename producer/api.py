"""The public verbs: :func:`register`, :func:`remove`, :func:`validate_catalog`,
:func:`reconcile` (and :func:`item_id_for`, :func:`parse_rewrites`).

Each takes the catalog as a URL (local path, ``file://``, ``memory://``,
``s3://``) or an already-open :class:`~producer.store.base.Store`, and
returns plain result objects; nothing here prints. This module is a facade:
the work is done by :mod:`producer.ingest` (register), :mod:`producer.removal`
(remove), :mod:`producer.audit` (validate, read-only) and
:mod:`producer.repair` (reconcile).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from producer import ingest
from producer.catalog.layout import is_catalog_document_key
from producer.changes import Change, Sink
from producer.errors import Hint, InputError, MissingBucket, no_catalog_in
from producer.extract.ids import make_item_id
from producer.extract.options import ExtractOptions
from producer.grouping import GROUP_SUFFIXES, Grouping
from producer.ingest import Progress, open_catalog, validator
from producer.options import (  # noqa: F401 (re-exported)
    RECONCILE_WITHOUT_DATA,
    RegisterOptions,
    check_max_retries,
    check_switch,
    parse_rewrites,
    resolve_options,
)
from producer.results import RegisterResult, RemoveResult, error_type_of  # noqa: F401 (re-exported)
from producer.sources import PRODUCT_SUFFIXES, expand_paths  # (also re-exported)
from producer.store.base import Store

if TYPE_CHECKING:
    from producer.audit import Problem
    from producer.query import DatetimeQuery
    from producer.repair import ReconcileReport
    from producer.sinks.pgstac import PgstacSink


def expand_products(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], options: RegisterOptions
) -> list[str]:
    """:func:`expand_paths` as :func:`register` expands ``paths`` with
    ``options``: with a ``group``, folders and prefixes give previews,
    metadata and documentation files too (PNG, JPEG, XML, JSON, PDF)."""
    suffixes = GROUP_SUFFIXES if options.group else PRODUCT_SUFFIXES
    return expand_paths(paths, options.data_storage_options, suffixes)


def item_id_for(
    url: str, *, id_template: str = "{stem}", collection: str | None = None, group: str | None = None
) -> str:
    """The id :func:`register` gives the product at ``url`` (raises
    UnsafeIdError); with a ``group`` pattern, its ``id`` group (raises
    InputError when the pattern does not match ``url``)."""
    options = ExtractOptions(id_template=id_template, collection=collection)
    if group:
        return Grouping(pattern=group).assign(url, options).item_id
    return make_item_id(url, options)


# --- what follows the catalog --------------------------------------------------


def _pgstac_sink(dsn: str, catalog_url: str) -> PgstacSink:
    """The pgSTAC sink of ``dsn`` following the catalog at ``catalog_url``
    (imported here: the ``pgstac`` extra is optional)."""
    from producer.sinks.pgstac import PgstacSink  # noqa: PLC0415

    return PgstacSink(dsn, catalog_url=catalog_url)


def _mirror_sink(store: Store) -> Sink:
    """The stac-geoparquet mirror sink of ``store``, which :func:`build_sinks`
    always puts first: every writer keeps the mirror current, so that
    :func:`search` needs no rebuild. Imported here: producer.mirror loads
    pyarrow and stac-geoparquet (1.1-1.9 s measured on the 2-core test
    machine), which ``import producer`` and ``stac-producer --help`` must
    not pay."""
    global _MirrorSink  # imported once, not at each call
    if _MirrorSink is None:
        from producer.mirror import MirrorSink  # noqa: PLC0415 (pyarrow + stac-geoparquet: 1.1-1.9 s measured)

        _MirrorSink = MirrorSink
    return _MirrorSink(store)


#: :class:`producer.mirror.MirrorSink` once :func:`_mirror_sink` imported it
_MirrorSink: Any = None


def build_sinks(
    store: Store,
    *,
    pgstac: str | None = None,
    sns_topic: str | None = None,
    on_change: Callable[[Change], Any] | None = None,
    extra: Sequence[Sink] = (),
) -> list[Sink]:
    """The sinks that follow ``store``'s catalog for one verb call, in the
    order they are handed each committed batch (see :mod:`producer.sinks`):
    the stac-geoparquet mirror always, a pgSTAC database when ``pgstac`` (a DSN) is given, an SNS topic when
    ``sns_topic`` (an ARN) is, the ``on_change`` callback, then ``extra``
    (e.g. Prefect events). Published hrefs are absolute under ``store.url``.
    Connects to nothing yet (the verbs check the sinks before their first
    write). Raises :class:`~producer.errors.InputError` for a topic that is
    not an ARN or an ``on_change`` that is not callable or is async, and
    :class:`TypeError` for an ``extra`` sink without an ``apply`` method."""
    for sink in extra:  # before anything is written: a sink without apply failed only after the commit
        if not callable(getattr(sink, "apply", None)):
            raise TypeError(
                f"sinks must hold sinks (objects with an apply(collection, changes) method), not "
                f"{type(sink).__name__}: give a function taking one Change as on_change= instead"
            )
    sinks: list[Sink] = [_mirror_sink(store)]
    if pgstac:
        sinks.append(_pgstac_sink(pgstac, store.url))
    if sns_topic or on_change is not None:  # imported only then: a plain register's cold start skips it
        from producer.sinks.notify import notification_sinks  # noqa: PLC0415

        sinks += notification_sinks(sns_topic=sns_topic, on_change=on_change, catalog_url=store.url)
    sinks += extra
    return sinks


# --- register -----------------------------------------------------------------

#: the keywords of :func:`register` and :func:`register_item` besides the
#: option fields, for the "did you mean" of a misspelt one
_REGISTER_KEYWORDS = (
    "paths",
    "catalog",
    "collection",
    "options",
    "progress",
    "storage_options",
    "on_change",
    "sinks",
    "expand",
)
_REGISTER_ITEM_KEYWORDS = ("assets", "item_id", *_REGISTER_KEYWORDS[1:4], *_REGISTER_KEYWORDS[5:8])


def register(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    catalog: str | Store,
    collection: str,
    options: RegisterOptions | None = None,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    on_change: Callable[[Change], Any] | None = None,
    sinks: Sequence[Sink] = (),
    expand: bool = True,
    **overrides: Any,
) -> list[RegisterResult]:
    """Extract, validate and upsert one STAC Item per product; link and extend parents.

    ``options``: a :class:`~producer.options.RegisterOptions` (default: all
    defaults); ``overrides``: any of its fields by name (``id_template=...``),
    applied on top; ``storage_options``: the storage options of both the data
    and the catalog, where ``options`` sets neither. An unknown override is a
    :class:`TypeError` naming the valid ones.

    ``paths``: files, folders and object-store prefixes (walked for
    products), globs; ``expand=False`` takes every path literally as one
    product, never walked nor expanded as a glob (the event handler's object
    keys: a key holding ``*``, ``?`` or ``[`` that no longer exists is
    "not found", not a pattern matching other objects).

    Returns one :class:`RegisterResult` per product, in input order; a
    product given twice (a folder and a file inside it, two spellings of
    one path or URL) is registered once and has one result, at its first
    position (:func:`producer.sources.distinct`). A bad
    product gets an ``error`` result and changes nothing; the others are
    still registered. Writes (unless ``dry_run``): each item document, then
    one compare-and-swap per parent per batch of ``batch_size`` products.
    Raises :class:`~producer.errors.InputError` only for unusable options
    (bad collection id, bad rewrite rule, unknown partition scheme, a
    ``partition`` other than the one the existing collection records) or
    paths (an empty one, a URL that went through ``pathlib``), and
    :class:`TypeError` for an argument of the wrong type (``paths=None``,
    ``catalog=12``, ``expand="no"``), each before anything is written.
    Folders, prefixes and globs that hold no product give no result and a
    WARNING naming what they hold.

    A new collection records its layout (``partition``) in its document;
    ``partition=None`` into an existing collection follows that record.

    ``pgstac`` (an option: a PostgreSQL DSN, a secret never shown): the
    database is checked before each batch is written (unreachable: every
    product of the batch gets a ``storage`` error and nothing is written),
    and every committed item, unchanged ones included, is upserted there
    after the batch is committed. If that fails, the catalog stays
    committed and the products get a ``storage`` error saying the database
    is behind: register again, or :func:`reconcile` with ``pgstac``.

    An existing item with the same id that describes another product (its
    ``data`` asset href differs) is left alone and the product gets an
    ``input`` error naming both, with hints (same file name in two folders:
    an ``id_template`` such as ``'{parent}_{stem}'``, offered only when it
    gives the two different ids and is not the template in use; else the
    error says to rename one); ``replace=True`` overwrites it instead.

    Multi-asset items (:mod:`producer.grouping`): with ``group`` (a regex
    with the named groups ``id`` and ``asset``, searched in each product's
    path or URL) the products of one id become one item, one asset each
    (folders also give their PNG/JPEG/XML/JSON/PDF files); a product it does
    not match gets an ``input`` error. ``asset_key`` names the asset of
    single-product items. Such an item is merged into, under
    compare-and-swap, by later products of it: their assets are added or
    replace the same keys, the others stay. Flat collections only.

    Change events: ``on_change`` (a function taking one
    :class:`~producer.changes.Change`) is called for every item created or
    updated, after its batch is committed (never for ``unchanged`` ones);
    ``sns_topic`` (an option) publishes the same to Amazon SNS; ``sinks``:
    more :class:`~producer.changes.Sink` objects to hand each committed
    batch to. A sink that fails leaves the catalog committed and gives the
    batch's products a ``storage`` error saying so (register again to
    resend: delivery is at least once).
    """
    opts = resolve_options(options, storage_options, keywords=_REGISTER_KEYWORDS, **overrides)
    check_switch("expand", expand)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function (or None), not {type(progress).__name__}")
    store = open_catalog(catalog, opts.catalog_storage_options, opts.catalog_storage_option_name)
    return ingest.register_products(
        paths,
        catalog=store,
        collection=collection,
        options=opts,
        progress=progress,
        sinks=build_sinks(
            store, pgstac=opts.pgstac, sns_topic=opts.sns_topic, on_change=on_change, extra=sinks
        ),
        expand=expand,
    )


def register_item(
    *,
    assets: Mapping[str, str],
    item_id: str,
    catalog: str | Store,
    collection: str,
    options: RegisterOptions | None = None,
    storage_options: dict[str, Any] | None = None,
    on_change: Callable[[Change], Any] | None = None,
    sinks: Sequence[Sink] = (),
    **overrides: Any,
) -> list[RegisterResult]:
    """Register one multi-asset item ``item_id`` from ``assets``
    (``{asset_key: url}``, e.g. ``{"B04": "s3://b/scene/B04.tif",
    "thumbnail": "s3://b/scene/thumb.png"}``); see
    :mod:`producer.grouping` for the roles, projection fields, geometry and
    the identity rule. An item ``item_id`` registered earlier the same way
    (or with ``group``) is merged into: these assets are added or replace
    the same keys, the others stay. Options, sinks and the result list (one
    per asset, in ``assets`` order) are as for :func:`register`; ``group``
    and ``asset_key`` do not apply. Raises
    :class:`~producer.errors.InputError` for an unusable id, asset key or
    option (nothing written)."""
    opts = resolve_options(options, storage_options, keywords=_REGISTER_ITEM_KEYWORDS, **overrides)
    if not isinstance(assets, Mapping):
        raise TypeError(
            f"assets must be a mapping of asset keys to URLs, not {type(assets).__name__}: "
            "e.g. assets={'B04': 's3://bucket/scene/B04.tif'}"
        )
    assets = {key: os.fspath(url) if isinstance(url, os.PathLike) else url for key, url in assets.items()}
    if opts.group or opts.asset_key:
        raise InputError("register_item takes its asset keys from assets=: drop group and asset_key")
    grouping = Grouping.explicit(item_id, assets, opts.id_template)
    store = open_catalog(catalog, opts.catalog_storage_options, opts.catalog_storage_option_name)
    return ingest.register_products(
        (),
        catalog=store,
        collection=collection,
        options=opts,
        sinks=build_sinks(
            store, pgstac=opts.pgstac, sns_topic=opts.sns_topic, on_change=on_change, extra=sinks
        ),
        grouping=grouping,
    )


# --- remove -------------------------------------------------------------------


def remove(
    item_id: str,
    *,
    catalog: str | Store,
    collection: str,
    storage_options: dict | None = None,
    max_retries: int = 25,
    product: str | None = None,
    href_rewrites: Iterable[str | tuple[str, str]] = (),
    pgstac: str | None = None,
    sns_topic: str | None = None,
    on_change: Callable[[Change], Any] | None = None,
    sinks: Sequence[Sink] = (),
) -> RemoveResult:
    """Mark the item as being removed, unlink it, fix the extent, delete it.

    The item is found in O(1) from the layout the collection records (no
    partition to pass, no listing); see :func:`producer.removal.find_item_key`.

    ``product``: the URL/path of the product whose item is to go (what an
    object-removed event names). The item is then removed only if it
    describes that product (its ``data`` href equals ``product`` after
    ``href_rewrites``, as :func:`register` would write it); an item of
    another product that shares the id is kept (``action="kept"`` with a
    ``reason``) and nothing is written.

    See :meth:`producer.commit.Committer.remove_item`: the item is marked
    (property ``producer:removing``) by compare-and-swap, unlinked from its
    parent, the collection extent recomputed exactly from the remaining items
    when the item touched one of its edges (that case reads every item of the
    collection once), and the document deleted only if it is still the marked
    version. No link ever points at a missing item; a crash at any point is
    finished by running ``remove`` again or ``reconcile --fix``. If a
    ``register`` of the same product rewrites the item meanwhile, the
    register wins: action ``kept``.

    ``pgstac``: a PostgreSQL DSN (a secret, never shown) of a pgSTAC
    database that follows the catalog. It is checked first (unreachable:
    :class:`~producer.errors.StoreError`, nothing written); after the
    delete the item is deleted there too (also when the catalog has no
    such item any more, so a rerun converges). If that fails the result is
    an ``error`` (``storage``) saying the catalog is done and the database
    is behind.

    ``sns_topic`` (an SNS topic ARN), ``on_change`` (a function taking one
    :class:`~producer.changes.Change`) and ``sinks``: told of the removal
    (kind ``removed``, the last committed item) once it is committed; not
    told when there was nothing to remove. A failure there is a ``storage``
    error as for pgSTAC.
    """
    from producer import removal  # noqa: PLC0415 (cold start: register and the Lambda's first event need no remove)

    check_max_retries(max_retries)
    store = open_catalog(catalog, storage_options)
    return removal.remove_item(
        item_id,
        catalog=store,
        collection=collection,
        max_retries=max_retries,
        product=product,
        href_rewrites=href_rewrites,
        sinks=build_sinks(store, pgstac=pgstac, sns_topic=sns_topic, on_change=on_change, extra=sinks),
    )


# --- search -------------------------------------------------------------------


def search(
    catalog: str | Store,
    *,
    bbox: str | Sequence[float] | None = None,
    datetime: DatetimeQuery | None = None,
    collections: str | Iterable[str] | None = None,
    ids: str | Iterable[str] | None = None,
    limit: int | None = None,
    storage_options: dict[str, Any] | None = None,
    intersects: Any = None,
) -> dict[str, Any]:
    """Items of ``catalog`` matching every filter given, read from its
    stac-geoparquet mirror (which every :func:`register`, :func:`remove` and
    :func:`reconcile` keeps current), as a STAC API ``/search``-like
    FeatureCollection: ``numberMatched`` counts all matches, ``features``
    holds at most ``limit`` items.

    ``bbox``: ``(west, south, east, north)`` or ``"w,s,e,n"``; ``intersects``
    (instead of ``bbox``): a GeoJSON geometry (a dict, its JSON text, or a
    shapely geometry); an item matches when its geometry meets either; ``datetime``:
    an instant or an interval ``"start/end"`` (``..`` open), RFC 3339, or a
    timezone-aware datetime, a date (the whole day) or a ``(start, end)``
    pair of those (None: open);
    ``collections``/``ids``: names, or one comma-separated string. Writes
    nothing. Raises :class:`~producer.errors.InputError` for a bad filter or
    an unknown collection. See :func:`producer.query.search`.
    """
    # lazy: producer.query loads duckdb and pyarrow (1.1 s measured), which
    # `import producer` and every other verb must not pay
    from producer.query import search as run_search  # noqa: PLC0415 (duckdb + pyarrow: 1.1 s measured)

    return run_search(
        catalog,
        bbox=bbox,
        datetime=datetime,
        collections=collections,
        ids=ids,
        limit=limit,
        storage_options=storage_options,
        intersects=intersects,
    )


# --- validate / reconcile --------------------------------------------------------


def require_catalog(catalog: str | Store, storage_options: dict[str, Any] | None = None) -> Store:
    """The store of ``catalog``, after checking that a catalog is there:
    raise :class:`~producer.errors.InputError` ("no catalog at ...: check the
    URL", as :func:`search` says) when it has no root ``catalog.json`` and
    holds no STAC document at all (nothing, or only products and sidecars: a
    data folder), which is a mistyped path or prefix, not a catalog to repair. A store that holds documents but lost its root is a
    catalog: :func:`validate_catalog` and :func:`reconcile` report its
    ``missing-root``. A bucket that does not exist is an InputError too.
    Reads the root (and, when it is missing, the first key of a listing);
    writes nothing."""
    store = open_catalog(catalog, storage_options)
    # a document where the layout puts one: a data folder's products and
    # sidecars are no catalog (the audit that follows lists it all anyway)
    try:
        if store.exists("catalog.json") or any(is_catalog_document_key(k) for k in store.list()):
            return store
    except MissingBucket as exc:
        raise no_catalog_in(exc, store.url) from exc
    raise InputError(f"no catalog at {store.url} (catalog.json is missing): check the URL")


def validate_catalog(
    catalog: str | Store, *, storage_options: dict | None = None, check_assets: bool = False
) -> list[Problem]:
    """Check a whole catalog tree; return a list of :class:`producer.audit.Problem`.

    Reads every document once. Checks schemas, links that resolve, dangling
    and duplicate links, orphan documents and extents that contain their items.
    Writes nothing. No catalog at all there (no root, no document: a
    mistyped path) raises :class:`~producer.errors.InputError`
    (:func:`require_catalog`).
    """
    from producer.audit import audit  # noqa: PLC0415 (the read-only verbs only: a register's cold start skips it)

    check_switch("check_assets", check_assets)
    store = require_catalog(catalog, storage_options)
    return audit(
        store, validator(), check_assets=check_assets, storage_options=storage_options, keep_items=False
    ).problems


def _refuse_register_only(
    options: RegisterOptions | None, register_options: Mapping[str, Any] | None
) -> None:
    """Without ``data`` nothing is registered: register options that only
    shape what ``data`` registers (all but :data:`RECONCILE_WITHOUT_DATA`)
    would be ignored, so they are refused (:class:`InputError`, nothing read)."""
    given = set(register_options or {})
    if options is not None:
        default = RegisterOptions()
        given |= {
            f.name
            for f in dataclasses.fields(RegisterOptions)
            if getattr(options, f.name) != getattr(default, f.name)
        }
    ignored = sorted(given - RECONCILE_WITHOUT_DATA)
    if ignored:
        raise InputError(
            f"{', '.join(ignored)} only {'applies' if len(ignored) == 1 else 'apply'} with data: they shape how "
            "the products found under data with no item are registered, and without data nothing is "
            "registered (they would be ignored); give data (and collection), or leave them out"
        )


def reconcile(
    catalog: str | Store,
    *,
    storage_options: dict[str, Any] | None = None,
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    fix: bool = False,
    dead: Literal["flag", "remove"] = "flag",
    collection: str | None = None,
    check_assets: bool | None = None,
    options: RegisterOptions | None = None,
    register_options: Mapping[str, Any] | None = None,
    max_retries: int = 25,
    pgstac: str | None = None,
    on_change: Callable[[Change], Any] | None = None,
    sinks: Sequence[Sink] = (),
    dry_run: bool | None = None,
) -> ReconcileReport:
    """Find and (with ``fix=True``) repair catalog problems; see :func:`producer.repair.reconcile`.

    ``storage_options``: of the catalog and of ``data``. Products under
    ``data`` that no item describes are registered into ``collection`` with
    ``options`` (a :class:`~producer.options.RegisterOptions`), or with
    ``register_options``, the same as keyword overrides by field name.
    Writes only with ``fix``, and nothing with ``dry_run`` (default: the
    ``dry_run`` of the options): ``fix=True, dry_run=True`` reports in
    ``would_fix`` what a fix would resolve, and writes, registers, sends
    and syncs nothing.

    ``pgstac`` (default: the ``pgstac`` of ``options``): a PostgreSQL DSN
    (a secret, never shown) of a pgSTAC database, compared with the static
    catalog, which is the source of truth: items missing, extra or
    differing there are ``pgstac-*`` problems, and ``fix`` brings the
    database in line. It is checked first: unreachable raises
    :class:`~producer.errors.StoreError` before anything is written.

    Change events (with ``fix``): the ``sns_topic`` of ``options``,
    ``on_change`` and ``sinks`` are told of the items ``fix`` registers,
    updates or removes, as for :func:`register` and :func:`remove`.
    The stac-geoparquet mirror of each collection is compared with its JSON
    items too: differing is a ``mirror-stale`` warning, and ``fix`` rebuilds
    the mirror files that differ. A partition holding items whose mirror
    file the collection does not link (``search`` misses them) is an
    ``unlinked-mirror`` warning; ``fix`` links it.

    No catalog at all at ``catalog`` (no root, no document: a mistyped
    path) raises :class:`~producer.errors.InputError` (:func:`require_catalog`),
    unless ``data`` is given: ``fix=True`` with ``data`` and ``collection``
    builds the catalog there from the products (a catalog rebuilt from its
    data), and without ``fix`` reports what that would do.
    """
    check_max_retries(max_retries)
    check_switch("fix", fix)
    check_switch("dry_run", dry_run, optional=True)
    check_switch("check_assets", check_assets, optional=True)
    # a pathlib.Path (or a list of them) as the text the repair lists
    urls: str | list[str] | None = (
        os.fspath(data)
        if isinstance(data, (str, os.PathLike))
        else None
        if data is None
        else [os.fspath(d) for d in data]
    )
    if urls is None:
        _refuse_register_only(options, register_options)
    opts = resolve_options(options, storage_options, **dict(register_options or {}))
    if dry_run is not None:
        opts = dataclasses.replace(opts, dry_run=dry_run)
    if fix and urls is not None and not collection:
        raise InputError(
            "repairing with data needs a collection for the products no item describes.",
            hints=(Hint("collection", "ndvi", "register them into this collection"),),
        )
    # the catalog with the catalog's storage options; asset checks and the
    # listing of ``data`` read the data, with the data's
    if urls is None:
        store = require_catalog(catalog, opts.catalog_storage_options)
    else:
        store = open_catalog(catalog, opts.catalog_storage_options, opts.catalog_storage_option_name)
    dsn = pgstac if pgstac is not None else opts.pgstac
    from producer import repair  # noqa: PLC0415 (cold start: register and --help need no reconcile)

    return repair.reconcile(
        store,
        validator(),
        data=urls,
        fix=fix,
        dead=dead,
        collection=collection,
        check_assets=check_assets,
        storage_options=opts.data_storage_options,
        options=opts,
        max_retries=max_retries,
        sinks=build_sinks(store, sns_topic=opts.sns_topic, on_change=on_change, extra=sinks),
        pgstac=_pgstac_sink(dsn, store.url) if dsn else None,
        mirror=True,
    )
