"""The public verbs: :func:`register`, :func:`remove`, :func:`validate_catalog`,
:func:`reconcile`.

Each takes the catalog as a URL (local path, ``file://``, ``memory://``,
``s3://``) or an already-open :class:`~producer.store.base.Store`, and
returns plain result objects; nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from producer.catalog import documents as docs
from producer.catalog.layout import Layout, item_parent_key
from producer.commit import Committer, IdentityConflict, item_start, same_content
from producer.errors import ID_TEMPLATE_HINT, Hint, InputError, ProducerError, StoreError
from producer.extract.options import ExtractOptions
from producer.options import RegisterOptions, changed_fields, parse_rewrites, resolve_options
from producer.results import RegisterResult, RemoveResult, error_type_of  # noqa: F401 (re-exported)
from producer.sources import PRODUCT_SUFFIXES, expand_paths  # noqa: F401 (re-exported)
from producer.store.base import Store

if TYPE_CHECKING:
    from producer.audit import Problem, ReconcileReport

__all__ = ["expand_paths", "item_id_for", "parse_rewrites", "reconcile", "register", "remove", "validate_catalog"]

Progress = Callable[[int, int], None]


# --- helpers -------------------------------------------------------------------


def _open(catalog: str | Store, storage_options: dict | None) -> Store:
    if not isinstance(catalog, str):
        return catalog
    from producer.store import open_store

    # storage options describe remote storage; a local catalog beside remote
    # data (S3 products, catalog on disk) takes none
    return open_store(catalog, storage_options if _is_url(catalog) else None)


def _validator():
    from producer.validate import default_validator

    return default_validator()


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def item_id_for(url: str, *, id_template: str = "{stem}", collection: str | None = None) -> str:
    """The id :func:`register` gives the product at ``url`` (raises UnsafeIdError)."""
    from producer.extract.ids import make_item_id

    return make_item_id(url, ExtractOptions(id_template=id_template, collection=collection))


def _check_collection_id(collection: str) -> None:
    from producer.extract.ids import check_id

    check_id(collection, what="collection id")


# --- register -----------------------------------------------------------------


def register(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    catalog: str | Store,
    collection: str,
    options: RegisterOptions | None = None,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> list[RegisterResult]:
    """Extract, validate and upsert one STAC Item per product; link and extend parents.

    ``options``: a :class:`~producer.options.RegisterOptions` (default: all
    defaults); ``overrides``: any of its fields by name (``id_template=...``),
    applied on top; ``storage_options``: the storage options of both the data
    and the catalog, where ``options`` sets neither. An unknown override is a
    :class:`TypeError` naming the valid ones.

    Returns one :class:`RegisterResult` per product, in input order. A bad
    product gets an ``error`` result and changes nothing; the others are
    still registered. Writes (unless ``dry_run``): each item document, then
    one compare-and-swap per parent per batch of ``batch_size`` products.
    Raises :class:`~producer.errors.InputError` only for unusable options
    (bad collection id, bad rewrite rule, unknown partition scheme).

    An existing item with the same id that describes another product (its
    ``data`` asset href differs) is left alone and the product gets an
    ``input`` error naming both, with hints (same file name in two folders:
    an ``id_template`` such as ``'{parent}_{stem}'``); ``replace=True``
    overwrites it instead.
    """
    opts = resolve_options(options, storage_options, **overrides)
    _check_collection_id(collection)
    layout = Layout(opts.partition)
    extract_options = ExtractOptions(
        datetime=opts.datetime,
        datetime_sources=opts.datetime_sources,
        datetime_pattern=opts.datetime_pattern,
        id_template=opts.id_template,
        href_rewrites=parse_rewrites(opts.href_rewrites),
        stats=opts.stats,
        checksum=opts.checksum,
        collection=collection,
        storage_options=dict(opts.data_storage_options or {}),
    )
    sources = expand_paths(paths, opts.data_storage_options)
    store = _open(catalog, opts.catalog_storage_options)
    committer = Committer(
        store, _validator().check, layout=layout, root_meta=opts.root_meta, max_retries=opts.max_retries
    )
    collection_meta, dry_run, batch_size, replace = (
        opts.collection_meta,
        opts.dry_run,
        opts.batch_size,
        opts.replace,
    )
    results: list[RegisterResult] = []
    done = 0
    for start in range(0, len(sources), max(1, batch_size)):
        chunk = sources[start : start + batch_size]
        results.extend(
            _register_chunk(
                chunk,
                committer,
                collection,
                extract_options,
                collection_meta,
                dry_run,
                progress,
                done,
                len(sources),
                replace,
            )
        )
        done += len(chunk)
    return results


def _prepare(
    source: str, committer: Committer, collection: str, options: ExtractOptions, coll_title: str
) -> tuple[RegisterResult, str | None, dict | None]:
    """Extract and validate one product; returns (result, key, doc) or an error result."""
    from producer.extract import create_item
    from producer.extract.ids import make_item_id

    result = RegisterResult(source=source)
    try:
        result.id = make_item_id(source, options)  # known even if extraction fails
        item = create_item(source, options)
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        result.id = doc["id"]
        layout = committer.layout
        when = item_start(doc) if layout.partition else None
        key = layout.item_key(collection, doc["id"], when)
        docs.set_item_links(
            doc, key, layout, collection, layout.chain(collection, when)[0], collection_title=coll_title
        )
        stamp = "1970-01-01T00:00:00Z"  # replaced at commit; validated as a date-time here
        doc["properties"].setdefault("created", stamp)
        doc["properties"].setdefault("updated", stamp)
        committer.validate(doc, f"{committer.store_path(key)} (item for {source})")
        doc["properties"].pop("created")
        doc["properties"].pop("updated")
        result.href = committer.store_path(key)
        return result, key, doc
    except ProducerError as exc:
        result.fail(str(exc), exc)
    except Exception as exc:  # one broken product must not sink the batch
        result.fail(f"{source}: unexpected {type(exc).__name__}: {exc}", exc)
    return result, None, None


def _register_chunk(
    chunk: list[str],
    committer: Committer,
    collection: str,
    options: ExtractOptions,
    collection_meta: dict | None,
    dry_run: bool,
    progress: Progress | None,
    done: int,
    total: int,
    replace: bool = False,
) -> list[RegisterResult]:
    coll_title = (collection_meta or {}).get("title") or collection
    prepared: list[tuple[RegisterResult, str, dict]] = []
    results: list[RegisterResult] = []
    seen: dict[str, str] = {}
    for i, source in enumerate(chunk):
        result, key, doc = _prepare(source, committer, collection, options, coll_title)
        results.append(result)
        if key is not None and doc is not None:
            if key in seen:
                clash = InputError(
                    f"{source}: maps to the same item id {doc['id']!r} as {seen[key]}.",
                    hints=(ID_TEMPLATE_HINT,),
                )
                result.fail(str(clash), clash)
                result.href = None
            else:
                seen[key] = source
                prepared.append((result, key, doc))
        if progress:
            progress(done + i + 1, total)
    if not prepared:
        return results

    try:
        preread = committer.preflight(collection, [doc for _, _, doc in prepared])
        _check_new_parents(committer, preread, collection, collection_meta)
    except (ProducerError, OSError) as exc:
        _fail_all(prepared, _as_project_error(exc, "cannot read the catalog: "))
        return results

    if dry_run:
        for result, key, doc in prepared:
            try:
                existing, _ = committer.read(key, ("Feature",))
                if not replace:
                    committer.check_identity(key, existing, doc)
            except (ProducerError, OSError) as exc:
                result.fail(f"{result.source}: {exc}", _as_project_error(exc))
                continue
            if existing is None:
                result.action = "created"
            elif same_content(existing, doc):
                result.action = "unchanged"
            else:
                result.action = "updated"
            result.item = doc
        return results

    # Partitioned: where each id sits now (id index, one GET per item), so a
    # product whose datetime moved it to another period is moved, not doubled.
    index: dict[str, tuple[str | None, str | None]] = {}
    if committer.layout.partition:
        for result, key, doc in prepared:
            try:
                index[key] = committer.read_index(collection, doc["id"])
                _check_same_product(committer, key, doc, index[key][0], replace)
            except (ProducerError, OSError) as exc:
                result.fail(f"{result.source}: not registered: {exc}", _as_project_error(exc))
                result.href = None
        prepared = [entry for entry in prepared if entry[0].error is None]
        if not prepared:
            return results

    # the root first: nothing is ever written below a missing root
    try:
        committer.ensure_root(preread)
    except (ProducerError, OSError) as exc:
        _fail_all(prepared, _as_project_error(exc, "cannot write the root catalog: "))
        return results

    written: list[tuple[str, dict]] = []
    for result, key, doc in prepared:
        try:
            result.action = committer.put_item(key, doc, replace=replace)
            result.item = doc
            written.append((key, doc))
        except ProducerError as exc:
            result.fail(f"{result.source}: {exc}", exc)
        except OSError as exc:  # disk full, permission denied, ... in a store: this product only
            result.fail(
                f"{result.source}: not registered: cannot write "
                f"{committer.store_path(key)}: {_os_error(exc)}",
                StoreError(str(exc)),
            )
            result.href = None
    if written:
        try:
            committer.link_items(collection, written, collection_meta, preread)
            committer.settle_items(collection, written, collection_meta)
        except (ProducerError, OSError) as exc:
            detail = exc if isinstance(exc, ProducerError) else _os_error(exc)
            kind = exc if isinstance(exc, ProducerError) else StoreError(str(exc))
            for result, _, _ in prepared:
                if result.ok:
                    result.fail(
                        f"{result.source}: item written but not linked ({detail}); "
                        "rerun the registration or reconcile with fixing",
                        kind,
                    )
            return results
    if index:
        _finish_moves(committer, collection, prepared, index, replace)
    return results


def _as_project_error(exc: BaseException, doing: str = "") -> BaseException:
    """``exc`` if it is a project error, else a :class:`StoreError` (an OS
    error from a store: retryable) saying ``doing`` and the cause."""
    if isinstance(exc, ProducerError) or not isinstance(exc, OSError):
        return exc
    return StoreError(f"{doing}{_os_error(exc)}")


def _fail_all(prepared: list[tuple[RegisterResult, str, dict]], exc: BaseException) -> None:
    """Fail every product of a batch with ``exc`` (nothing of it was written)."""
    for result, _, _ in prepared:
        result.fail(f"{result.source}: not registered: {exc}", exc)
        result.href = None


def _os_error(exc: OSError) -> str:
    """An OS error as one line with its cause, and what to do about it."""
    import errno

    text = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{text} (free space on the catalog's storage, then register again)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or isinstance(exc, PermissionError):
        return f"{text} (give this process write access to the catalog, then register again)"
    return text


def _check_same_product(
    committer: Committer, key: str, doc: dict, old_key: str | None, replace: bool
) -> None:
    """Before a move: the item the id index names in another period must
    describe the same product, by the rule :meth:`Committer.put_item` applies
    within a period (raises :class:`IdentityConflict`, nothing written),
    unless ``replace``. One GET, only when the period changed."""
    if replace or old_key is None or old_key == key:
        return
    old, _ = committer.read(old_key, ("Feature",))
    committer.check_identity(old_key, old, doc)


def _finish_moves(
    committer: Committer,
    collection: str,
    prepared: list[tuple[RegisterResult, str, dict]],
    index: dict[str, tuple[str | None, str | None]],
    replace: bool = False,
) -> None:
    """Partitioned collections, after the new items are written and linked:
    remove the item each id had in another period (remove protocol), then
    point the id index at the new key.

    The index is updated last, so a crash anywhere before leaves it naming
    the old item, and a re-run of the registration finds and finishes the
    move. Writes: per moved item the removal's writes; per new or moved id
    one index entry.
    """
    for result, key, doc in prepared:
        if not result.ok:
            continue
        old_key, version = index.get(key, (None, None))
        try:
            if old_key is not None and old_key != key:
                # judged again inside the removal's marking compare-and-swap:
                # another product may have replaced the old item meanwhile
                def keep_if(old: dict, doc: dict = doc, old_key: str = old_key) -> str | None:
                    try:
                        committer.check_identity(old_key, old, doc)
                    except IdentityConflict as exc:
                        return str(exc)
                    return None

                # the extent stays exact: when the old copy sat on an edge this
                # walks the collection once (a move is rare: the product's
                # datetime changed), like remove does
                outcome = committer.remove_item(collection, old_key, keep_if=None if replace else keep_if)
                if outcome.action == "kept":
                    result.fail(
                        f"{result.source}: item written at {committer.store_path(key)}, but its "
                        f"old copy at {committer.store_path(old_key)} was kept "
                        f"({outcome.reason or 'it was registered again meanwhile'}); "
                        "remove one of the two items",
                        InputError(),
                    )
                    continue
                if result.action == "created":
                    result.action = "updated"  # the id existed: it moved period
            committer.write_index(collection, doc["id"], key, (old_key, version))
        except (ProducerError, OSError) as exc:
            result.fail(
                f"{result.source}: item written and linked, but its old copy at "
                f"{committer.store_path(old_key or key)} was not removed ({exc}); "
                "rerun the registration to finish the move",
                exc,
            )


def _check_new_parents(
    committer: Committer, preread: dict, collection: str, collection_meta: dict | None
) -> None:
    """Validate the collection and root documents a batch would create, before any write."""
    layout = committer.layout
    coll_key = layout.collection_key(collection)
    if coll_key in preread and preread[coll_key][0] is None:
        doc = docs.new_collection(
            collection, collection_meta, layout, (committer.root_meta or {}).get("title")
        )
        committer.validate(
            doc, f"{committer.store_path(coll_key)} (new collection; check the collection metadata)"
        )
    if layout.root_key in preread and preread[layout.root_key][0] is None:
        committer.validate(
            docs.new_root(committer.root_meta), f"{committer.store_path(layout.root_key)} (new root catalog)"
        )


# --- remove -------------------------------------------------------------------


def _find_item_key(store: Store, layout: Layout, collection: str, item_id: str) -> str | None:
    """Key of the item ``item_id``: the unpartitioned key, else the id index
    of a partitioned collection (O(1) either way); a listing of the collection
    only for catalogs written before the id index existed."""
    key = Layout().item_key(collection, item_id)
    if store.exists(key):
        return key
    indexed, _ = Committer(store, lambda doc, where: None).read_index(collection, item_id)
    if indexed is not None and store.exists(indexed):
        return indexed
    # no index entry, or a stale one (a move killed before its last write):
    # the listing finds the item; reconcile --fix rewrites the entry
    suffix = f"/{item_id}/{item_id}.json"
    for candidate in store.list(f"{collection}/"):
        if candidate.endswith(suffix):
            return candidate
    return None


def remove(
    item_id: str,
    *,
    catalog: str | Store,
    collection: str,
    storage_options: dict | None = None,
    max_retries: int = 25,
    product: str | None = None,
    href_rewrites: Iterable[str | tuple[str, str]] = (),
) -> RemoveResult:
    """Mark the item as being removed, unlink it, fix the extent, delete it.

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
    """
    from producer.extract.ids import check_id

    _check_collection_id(collection)
    check_id(item_id, what="item id")
    store = _open(catalog, storage_options)
    committer = Committer(store, _validator().check, max_retries=max_retries)
    key = _find_item_key(store, committer.layout, collection, item_id)
    if key is None:
        return RemoveResult(id=item_id, href=None, action="absent")
    keep_if: Callable[[dict], str | None] | None = None
    if product is not None:
        from producer.commit import product_href, same_product
        from producer.extract.assets import resolve_location, rewrite_href

        wanted = rewrite_href(resolve_location(product), parse_rewrites(href_rewrites))

        def keep_other_product(item: dict) -> str | None:
            described = product_href(item)
            if described is not None and not same_product(described, wanted):
                return f"the item describes {described}, not {wanted}; it stays"
            return None

        keep_if = keep_other_product
    parent = item_parent_key(key, collection)
    coll_key = Layout().collection_key(collection)
    # the documents this removal rewrites are checked before any write
    committer.check_parents(
        {k: committer.read(k, ("Catalog", "Collection")) for k in dict.fromkeys((coll_key, parent))},
        collection,
    )
    outcome = committer.remove_item(collection, key, keep_if=keep_if)
    return RemoveResult(
        id=item_id,
        href=committer.store_path(key),
        action=outcome.action,
        extent_recomputed=outcome.extent_recomputed,
        reason=outcome.reason,
    )


# --- validate / reconcile --------------------------------------------------------


def validate_catalog(
    catalog: str | Store, *, storage_options: dict[str, Any] | None = None, check_assets: bool = False
) -> list[Problem]:
    """Check a whole catalog tree; return a list of :class:`producer.audit.Problem`.

    Reads every document once. Checks schemas, links that resolve, dangling
    and duplicate links, orphan documents and extents that contain their items.
    """
    from producer.audit import audit

    store = _open(catalog, storage_options)
    return audit(store, _validator(), check_assets=check_assets, storage_options=storage_options).problems


def reconcile(
    catalog: str | Store,
    *,
    storage_options: dict[str, Any] | None = None,
    data: str | list[str] | None = None,
    fix: bool = False,
    dead: Literal["flag", "remove"] = "flag",
    collection: str | None = None,
    check_assets: bool | None = None,
    options: RegisterOptions | None = None,
    register_options: Mapping[str, Any] | None = None,
    max_retries: int = 25,
) -> ReconcileReport:
    """Find and (with ``fix=True``) repair catalog problems; see :func:`producer.audit.reconcile`.

    ``storage_options``: of the catalog and of ``data``. Products under
    ``data`` that no item describes are registered into ``collection`` with
    ``options`` (a :class:`~producer.options.RegisterOptions`), or with
    ``register_options``, the same as keyword overrides by field name.
    Writes only with ``fix``.
    """
    from producer.audit import reconcile as _reconcile

    opts = resolve_options(options, **dict(register_options or {}))
    if fix and data is not None and not collection:
        raise InputError(
            "repairing with data needs a collection for the products no item describes.",
            hints=(Hint("collection", "ndvi", "register them into this collection"),),
        )
    store = _open(catalog, storage_options)
    return _reconcile(
        store,
        _validator(),
        data=data,
        fix=fix,
        dead=dead,
        collection=collection,
        check_assets=check_assets,
        storage_options=storage_options,
        register_options=changed_fields(opts),
        max_retries=max_retries,
    )
