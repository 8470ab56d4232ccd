"""The register pipeline: products → (new ids) id index → items written →
parents linked → moves and their id index entries.

:func:`register_products` extracts and validates every product
(:mod:`producer.extract`, :mod:`producer.validate`), then commits them in
batches with :class:`~producer.commit.Committer`: (partitioned collections)
the id index entry of each new id, the items, then one compare-and-swap per
parent per batch, then the moves of items whose period changed and their
index entries. The public verb
:func:`producer.api.register` and the repair (:mod:`producer.repair`, which
registers products no item describes) both call it; it never prints.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from producer import extract, parallel, placement, provenance, thumbnail
from producer.catalog import documents as docs
from producer.catalog.extent import format_time
from producer.catalog.layout import (
    DEFAULT_MAX_LINKS,
    ROOT_KEY,
    Layout,
    collection_key,
    intent_key,
    is_intent_key,
    linked_layout,
    recorded_layout,
    relative_href,
)
from producer.changes import Change, ChangeKind, Sink, item_line
from producer.commit import Committer, IdentityConflict, contended, item_start, recent_view, same_content
from producer.errors import (
    ConflictError,
    Hint,
    InputError,
    PreconditionFailed,
    ProducerError,
    StoreError,
    ValidationError,
)
from producer.extract.ids import check_id, id_clash_fix, make_item_id, split_location
from producer.extract.options import DEFAULT_DATETIME_SOURCES, ExtractOptions
from producer.grouping import GROUP_SUFFIXES, Grouping, catalog_file_at, not_a_product
from producer.hrefs import absolute_assets
from producer.logs import log_register_summary, log_result
from producer.options import RegisterOptions, parse_rewrites, pipeline_metadata
from producer.parallel import extraction_workers, map_ordered, prepare_all, write_threads
from producer.results import Action, RegisterResult
from producer.sinks import Outbox, SinkFailure, check_sinks, deliver, remedy_text, removed
from producer.sources import (
    PRODUCT_SUFFIXES,
    enclosing_store,
    expand_paths,
    literal_paths,
    no_products_found,
    path_strings,
)
from producer.store import open_store
from producer.store.base import Store, batch_durability, catalog_argument, durability, durable_now, is_local
from producer.store.local import Staging
from producer.urls import check_endpoint_environment, check_s3_options, is_remote, protocol
from producer.urls import is_local as local_location
from producer.validate import Validator, default_validator

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


# --- helpers shared by the verbs ----------------------------------------------


def open_catalog(
    catalog: str | Store, storage_options: dict | None, option: str = "storage_options"
) -> Store:
    """The store of ``catalog`` (a URL or path, ``str`` or ``pathlib.Path``; a
    :class:`Store` is returned as is). Raises :class:`TypeError` for anything else.
    ``option``: the option ``storage_options`` came from, named in a bad option's fix."""
    if type(catalog) is not str:  # (a str, the usual argument, needs no conversion)
        catalog = catalog_argument(catalog)
        if not isinstance(catalog, str):
            return catalog
    # storage options describe remote storage; a local catalog beside remote
    # data (S3 products, catalog on disk) takes none
    return open_store(catalog, storage_options if is_remote(catalog) else None, option=option)


def _check_s3_product_options(locations: Iterable[Any], options: RegisterOptions) -> None:
    """Refuse, before any product is listed or read, the storage options s3fs
    would drop without a word (a misspelt ``anonn``) or fail each product
    with (a ``client_kwargs`` key botocore does not take), when a product
    is on S3 (:func:`~producer.urls.check_s3_options`, as for an S3 catalog)."""
    if all(type(x) is str and "://" not in x for x in locations):
        return  # plain paths (a local register): none is on S3, no protocol to ask
    if any(isinstance(x, str | os.PathLike) and protocol(os.fspath(x)) in ("s3", "s3a") for x in locations):
        check_s3_options(
            options.data_storage_options, "the products' storage options", options.data_storage_option_name
        )


def validator() -> Validator:
    """The shared offline validator."""
    return default_validator()


def check_collection_id(collection: str) -> None:
    """Raise :class:`~producer.errors.UnsafeIdError` for an unusable collection id."""
    if type(collection) is str and collection in _SAFE_COLLECTION_IDS:
        return  # checked before: the answer depends on the text alone
    check_id(collection, what="collection id")
    if len(_SAFE_COLLECTION_IDS) >= _SAFE_COLLECTION_IDS_KEPT:
        _SAFE_COLLECTION_IDS.clear()
    _SAFE_COLLECTION_IDS.add(collection)


#: collection ids :func:`check_collection_id` found safe (a process
#: registering into the same collection call after call); at most
#: :data:`_SAFE_COLLECTION_IDS_KEPT`, then forgotten all at once
_SAFE_COLLECTION_IDS: set[str] = set()
_SAFE_COLLECTION_IDS_KEPT = 256


def collection_layout(
    store: Store,
    collection: str,
    partition: str | None,
    max_links: int = DEFAULT_MAX_LINKS,
    seen: dict[str, tuple[bytes, str, float, dict | None]] | None = None,
    listed: dict[str, tuple[float, list[str]]] | None = None,
    durable: bool = False,
) -> Layout:
    """The layout to register into ``collection`` with: the one its document
    records, else (written before layouts were recorded) the one its links
    show (:func:`~producer.catalog.layout.linked_layout`: one more GET, of a
    year catalog, when partitioned), else (a new collection, or an old one
    with no links) ``partition`` with ``max_links`` (recorded when it
    creates the collection; a recorded layout keeps its own).

    One GET of the collection document (its bytes, version, monotonic
    time and the document parsed from them go into ``seen`` when given,
    keyed by its key: :attr:`Committer.seeded`). On a remote store the
    root's GET (into ``seen``) and, when ``listed`` is given and the
    collection saw no recent contention, the LIST of its pending intents
    (into ``listed``: :attr:`Committer.seeded_intents`) go out together
    with it: one round trip for what preflight would read next. Raises :class:`InputError`, before
    anything is written, when ``partition`` is given and differs from the
    recorded (or linked) layout. A collection that cannot be read is left to the
    batch's own checks (:meth:`Committer.preflight`), which report it per
    product.

    ``durable`` (``ack="durable"``): while this process remembers contention
    on the collection and read or wrote it less than
    :data:`~producer.commit.VIEW_FRESH` seconds ago
    (:func:`~producer.commit.recent_view`), the layout is the one that
    document records, without a request (a collection's layout never
    changes; preflight takes the collection and the root from the same view).
    """
    requested = Layout(partition, max_links)
    key = collection_key(collection)
    view = recent_view(store.url, collection, key) if durable and store.concurrent_safe else None
    try:
        if view is not None:
            doc = view[0]  # as this process read or wrote it a moment ago
        else:
            if seen is not None and not is_local(store):
                # the root, which preflight reads next, in the same round trip
                # (seeded like the collection; absent or unreadable: preflight
                # reads it again and says so)
                with ThreadPoolExecutor(max_workers=2) as pool:
                    pool.submit(contextvars.copy_context().run, _seed_root, store, seen)
                    if listed is not None and store.concurrent_safe and not contended(store.url, collection):
                        # and the pending intents (the plain path needs them)
                        pool.submit(contextvars.copy_context().run, _seed_intents, store, collection, listed)
                    data, version = store.get(key)
            else:
                data, version = store.get(key)
            read_at = time.monotonic()
            if seen is not None:  # handed to Committer.seeded: preflight need not GET it again
                seen[key] = (data, version, read_at, None)
            doc = docs.loads(data, f"{store.url}/{key}", expect=("Collection",))
            if seen is not None:  # nor parse it again
                seen[key] = (data, version, read_at, doc)
        recorded = recorded_layout(doc, f"{store.url}/{key}")
    except (ProducerError, OSError):
        return requested  # absent, or malformed: preflight says so per product
    if recorded is None:  # written before layouts were recorded: as its links say
        recorded = linked_layout(doc, collection, lambda k: _read_catalog(store, k), max_links)
        if recorded is None:
            return requested  # nothing says (no links yet): as told
    if partition is not None and recorded != requested:
        # the way out is a hint, so each caller names its own option: partition=None,
        # --partition left out, STAC_PARTITION unset (the recorded one works too)
        raise InputError(
            f"collection {collection!r} at {store.url}/{key} is {recorded.describe()}, "
            f"not {requested.describe()} (nothing was written): register with the collection's "
            "layout, or into another collection",
            hints=(Hint("partition", recorded.partition, "follow the collection's layout"),),
        )
    return recorded


def _read_catalog(store: Store, key: str) -> dict | None:
    """The catalog document at ``key``, or None when it cannot be read."""
    try:
        data, _ = store.get(key)
        return docs.loads(data, f"{store.url}/{key}", expect=("Catalog",))
    except (ProducerError, OSError):
        return None


def _seed_root(store: Store, seen: dict[str, tuple[bytes, str, float, dict | None]]) -> None:
    """GET the root into ``seen`` (:func:`collection_layout`); nothing when it
    cannot be read (preflight reads it itself)."""
    try:
        data, version = store.get(ROOT_KEY)
    except (ProducerError, OSError):
        return
    seen[ROOT_KEY] = (data, version, time.monotonic(), None)


def _seed_intents(store: Store, collection: str, listed: dict[str, tuple[float, list[str]]]) -> None:
    """LIST the pending intents of ``collection`` into ``listed``
    (:func:`collection_layout`); nothing when the listing fails (preflight
    lists them itself)."""
    try:
        keys = [k for k in store.list(intent_key(collection) + "/") if is_intent_key(k)]
    except (ProducerError, OSError):
        return
    listed[collection] = (time.monotonic(), keys)


def _layout_beside_extraction(
    read_layout: Callable[[], Layout],
    source: str,
    store_url: str,
    options: ExtractOptions,
    early: dict[str, tuple[Any, BaseException | None]],
) -> Layout:
    """``read_layout()`` (:func:`collection_layout`: the collection's GET,
    with the root's and the intents' beside it) on a thread of its own while
    this one extracts ``source`` into ``early`` (:func:`_extract_early`): on
    a remote catalog one round trip overlaps the product's reading (GDAL and
    network reads release the GIL) instead of preceding it.

    Nothing is written meanwhile: the reads only seed the batch's
    compare-and-swap (:attr:`Committer.seeded`, stale at worst: a retry).
    Errors keep their order: what ``read_layout`` raises (a ``partition``
    the collection does not record) is raised, the extraction's result then
    unused, as when it ran first; a product's own error is kept in ``early``
    and reported by :func:`_prepare` as if it had extracted it there, before
    preflight reads anything that failed here. The thread is joined before
    this returns, however the extraction ends."""
    out: dict[str, Any] = {}

    def read() -> None:
        try:
            out["layout"] = read_layout()
        except BaseException as exc:  # raised by the caller, after the join
            out["error"] = exc

    reader = threading.Thread(
        target=contextvars.copy_context().run, args=(read,), name="producer-catalog-read", daemon=True
    )
    reader.start()
    try:
        _extract_early(source, store_url, options, early)
    finally:
        reader.join()
    if "error" in out:
        early.clear()  # unused: the register raises
        raise out["error"]
    layout: Layout = out["layout"]
    return layout


def _extract_early(
    source: str, store_url: str, options: ExtractOptions, early: dict[str, tuple[Any, BaseException | None]]
) -> None:
    """``extract.create_item(source, options)`` into ``early[source]`` (the
    item, or the exception it raised), for :func:`_prepare` to take instead
    of extracting; nothing when ``source`` is refused before extraction
    (:func:`_check_product`, its id): :func:`_prepare` says why."""
    try:
        _check_product(source, store_url)
        make_item_id(source, options)
    except Exception:
        return
    try:
        early[source] = (extract.create_item(source, options), None)
    except Exception as exc:  # the product's own error: _prepare raises it where it extracts
        early[source] = (None, exc)


# --- register -------------------------------------------------------------------


def register_products(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    catalog: str | Store,
    collection: str,
    options: RegisterOptions,
    progress: Progress | None = None,
    sinks: Sequence[Sink] = (),
    grouping: Grouping | None = None,
    expand: bool = True,
) -> list[RegisterResult]:
    """:func:`producer.api.register` (see there); the store may be passed open.

    ``grouping`` (default: from ``options.group`` / ``options.asset_key``):
    how products become multi-asset items (:mod:`producer.grouping`).

    ``partition=None`` into an existing collection follows the layout its
    document records (:func:`collection_layout`). Writes (unless
    ``dry_run``): each item document, then one compare-and-swap per parent
    per batch of ``batch_size`` products, then the id index entries.

    ``sinks`` (:mod:`producer.sinks`; ``options.pgstac`` is not read here,
    :mod:`producer.api` builds the sinks): checked before each batch's first
    write (a sink that cannot take changes fails the batch, nothing written),
    then handed each committed batch's changes (:func:`_publish`). Nothing
    is handed to them in a dry run.
    """
    check_collection_id(collection)
    extract_options = ExtractOptions(
        datetime=options.datetime,
        datetime_sources=tuple(options.datetime_sources or DEFAULT_DATETIME_SOURCES),
        datetime_pattern=options.datetime_pattern,
        id_template=options.id_template,
        href_rewrites=parse_rewrites(options.href_rewrites),
        stats=options.stats,
        checksum=options.checksum,
        collection=collection,
        storage_options=dict(options.data_storage_options or {}),
        provenance=pipeline_metadata(options),
        thumbnail=options.thumbnail,
        listings={},  # this call's only: see ExtractOptions.listings
    )
    grouping = grouping or Grouping.from_options(options.group, options.asset_key, options.id_template)
    if type(paths) is list:  # the usual call: no abc isinstance checks
        given = list(paths)
    else:
        if isinstance(paths, Iterator):  # a generator: read once, for the expansion and the names
            paths = list(paths)
        # (paths of another type are refused below, naming them)
        given = (
            [paths]
            if isinstance(paths, str | os.PathLike)
            else list(paths)
            if isinstance(paths, Iterable)
            else []
        )
    _check_s3_product_options([*given, *(grouping and grouping.sources() or ())], options)
    sources = (grouping and grouping.sources()) or (
        expand_paths(
            paths, options.data_storage_options, GROUP_SUFFIXES if options.group else PRODUCT_SUFFIXES
        )
        if expand
        else literal_paths(paths)
    )
    # products given literally (events, expand=False) are listed by nobody first;
    # only S3 products can be refused, and a plain path (no "://") is none:
    # local products need no look at the environment
    if any("://" in source for source in sources):
        check_endpoint_environment(options.data_storage_options, "the products", sources)
    if not sources and expand and not (grouping and grouping.sources() is not None):
        _warn_no_products(paths, options)
    store = open_catalog(catalog, options.catalog_storage_options, options.catalog_storage_option_name)
    seen: dict[str, tuple[bytes, str, float, dict | None]] = {}
    listed: dict[str, tuple[float, list[str]]] = {}
    early: dict[str, tuple[Any, BaseException | None]] = {}

    def read_layout() -> Layout:
        return collection_layout(
            store, collection, options.partition, options.max_links, seen, listed, options.ack == "durable"
        )

    if len(sources) == 1 and not grouping and not is_local(store):
        # one product into a remote catalog (an event's register): its
        # extraction runs while the catalog's reads are on their way
        layout = _layout_beside_extraction(read_layout, sources[0], store.url, extract_options, early)
    else:
        layout = read_layout()
    if grouping:
        grouping.check_layout(layout, collection)
        # an explicit mapping names every source; else the paths given
        # (files named one by one, not what a folder or glob expanded to)
        named = sources if grouping.sources() is not None else path_strings(paths)
        sources = grouping.outside_catalog(sources, store.url, named)
    committer = Committer(
        store,
        validator().check,
        layout=layout,
        root_meta=options.root_meta,
        max_retries=options.max_retries,
        relative_hrefs=not options.absolute_hrefs,
        ack=options.ack,
    )
    committer.seeded.update(seen)
    committer.seeded_intents.update(listed)
    collection_meta, dry_run, batch_size, replace = (
        options.collection_meta,
        options.dry_run,
        options.batch_size,
        options.replace,
    )
    results: list[RegisterResult] = []
    done = 0
    chunks = (
        grouping.chunks(sources, batch_size, extract_options)
        if grouping
        else [sources[start : start + batch_size] for start in range(0, len(sources), max(1, batch_size))]
    )
    for chunk in chunks:
        with durability(store, options.durability):  # "os": this call fsyncs nothing
            try:
                chunk_results = _register_chunk(
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
                    sinks,
                    grouping,
                    options.workers,
                    early,
                )
            finally:  # the batch's creations of new items are over, however it ended
                committer.finish_creations()
        results.extend(chunk_results)
        if grouping:
            grouping.share()  # every product of an item gets the item's outcome
        for result in results[done:]:  # one INFO line per product
            log_result(log, result, dry_run=dry_run)
        done += len(chunk)
    if grouping:  # the batches gather each item's products: back to the order given
        position = {source: n for n, source in enumerate(sources)}
        results.sort(key=lambda result: position.get(result.source or "", len(position)))
    log_register_summary(
        log,
        results,
        collection=collection,
        catalog=store.url,
        conflicts=committer.conflicts,
        backoff_seconds=committer.backoff_seconds,
        dry_run=dry_run,
    )
    return results


def _warn_no_products(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], options: RegisterOptions
) -> None:
    """A WARNING when the folders, prefixes or globs given held no product
    (:func:`~producer.sources.no_products_found`: the endings looked for,
    those found instead, a glob for them): the call returns no result, and a
    pipeline would otherwise go on as if its products were registered."""
    given = path_strings(paths)
    if not given:  # nothing asked for: nothing to say
        return
    suffixes = GROUP_SUFFIXES if options.group else PRODUCT_SUFFIXES
    fact, example = no_products_found(given, suffixes=suffixes, storage_options=options.data_storage_options)
    advice = f"; name such files one by one, or match them with a glob: {example!r}" if example else ""
    log.warning("%s%s: nothing registered", fact, advice)


@dataclass(frozen=True)
class _Extraction:
    """What extracting and validating a product (:func:`_prepare`) needs of
    the batch's committer, and no more: a fork server's worker process
    receives it pickled (:mod:`producer.parallel`): the store goes as its
    URL, the default validator is rebuilt there (a custom one goes pickled,
    or the batch uses threads when it does not pickle)."""

    collection: str
    options: ExtractOptions
    coll_title: str
    layout: Layout
    store_url: str
    clock: Callable[[], datetime]
    validate: Callable[[dict, str], None]
    #: products extracted already (:func:`_extract_early`), taken once by
    #: :func:`_prepare`; never sent to a worker process
    early: dict[str, tuple[Any, BaseException | None]] | None = None

    @classmethod
    def of(
        cls,
        committer: Committer,
        collection: str,
        options: ExtractOptions,
        coll_title: str,
        early: dict[str, tuple[Any, BaseException | None]] | None = None,
    ) -> _Extraction:
        return cls(
            collection,
            options,
            coll_title,
            committer.layout,
            committer.store.url,
            committer.clock,
            committer.validate,
            early or None,
        )

    def store_path(self, key: str) -> str:
        return f"{self.store_url}/{key}"

    def __call__(self, source: str) -> tuple[RegisterResult, str | None, dict | None]:
        return _prepare(source, self)

    def chunk_environment(self, sources: Sequence[str]) -> contextlib.AbstractContextManager[Any]:
        """Held by a worker around its run of ``sources``
        (:func:`producer.parallel.prepare_all`): one GDAL environment for all
        of them where they are local files (a thumbnail's read runs in it
        too)."""
        from producer.extract.raster import reading_environment  # noqa: PLC0415 (rasterio: workers only)

        return reading_environment(sources)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # the default validator (a lock, compiled checks) is rebuilt in the worker
        default = self.validate == validator().check
        fields = (self.collection, self.options, self.coll_title, self.layout, self.store_url, self.clock)
        return _Extraction._received, (*fields, None if default else self.validate)

    @classmethod
    def _received(
        cls,
        collection: str,
        options: ExtractOptions,
        coll_title: str,
        layout: Layout,
        store_url: str,
        clock: Callable[[], datetime],
        validate: Callable[[dict, str], None] | None,
    ) -> _Extraction:
        validate = validator().check if validate is None else validate
        return cls(collection, options, coll_title, layout, store_url, clock, validate)


#: a group pattern that attaches JSON sidecars to the items of their data files
_SIDECAR_GROUP = Hint(
    "group", r"(?P<id>[^/]+)/(?P<asset>[^/]+)\.(tif|json)$", "attach JSON sidecars as assets of their items"
)


def _check_product(source: str, store_url: str) -> None:
    """Refuse, as one product's :class:`InputError`, what is no single
    product: a file the catalog writes itself (its root, a collection, an
    item document, a thumbnail: named as a product, as the group path does),
    or any other JSON file (GDAL's STACIT driver would open a STAC item as a
    raster: an item whose data asset is another item's document)."""
    what = catalog_file_at(source, store_url)
    if what is not None:
        raise not_a_product(source, what)
    store = enclosing_store(source)
    if store is not None:
        raise InputError(
            f"{source}: not registered: it lies inside the Zarr store {store}, which is one product as a "
            f"whole; register the store itself ({store})"
        )
    if split_location(source)[1].lower().endswith(".json"):
        raise InputError(
            f"{source}: not registered: a JSON file is no raster or NetCDF product (a STAC "
            "document would be read as a mosaic of the items it names); register the data file "
            "it describes, or attach JSON sidecars to the items of their data files with a group pattern",
            hints=(_SIDECAR_GROUP,),
        )


def _prepare(source: str, job: _Extraction) -> tuple[RegisterResult, str | None, dict | None]:
    """Extract and validate one product; returns (result, key, doc) or an error result."""
    result = RegisterResult(source=source)
    options, collection = job.options, job.collection
    try:
        _check_product(source, job.store_url)
        result.id = make_item_id(source, options)  # known even if extraction fails
        done = job.early.pop(source, None) if job.early else None
        if done is None:
            item = extract.create_item(
                source, options
            )  # rasterio loads here, not at import (see extract/__init__)
        elif done[1] is not None:  # extracted beside the catalog's reads: its error, raised here
            raise done[1]
        else:
            item = done[0]
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        result.id = doc["id"]
        layout = job.layout
        when = item_start(doc) if layout.partition else None
        key = layout.item_key(collection, doc["id"], when)
        docs.set_item_links(
            doc, key, layout, collection, layout.chain(collection, when)[0], collection_title=job.coll_title
        )
        if options.provenance is not None:  # (no pipeline metadata: no clock to read)
            provenance.apply(doc, options.provenance, job.clock(), source)
        # the asset, and the PNG to write
        png = thumbnail.prepare(doc, key, source, options) if options.thumbnail else None
        stamp = "1970-01-01T00:00:00Z"  # replaced at commit; validated as a date-time here
        properties = doc["properties"]
        properties.setdefault("created", stamp)
        properties.setdefault("updated", stamp)
        href = job.store_path(key)
        try:
            job.validate(doc, f"{href} (item for {source})")
        except ValidationError as exc:  # the caller's property, not the code, may be at fault
            given = options.provenance.properties if options.provenance else {}
            raise provenance.property_problem(exc.errors, given, source) or exc from None
        properties.pop("created")
        properties.pop("updated")
        if png is not None:
            thumbnail.attach(doc, png)
        result.href = href
        return result, key, doc
    except ProducerError as exc:
        result.fail(str(exc), exc)
    except Exception as exc:  # one broken product must not sink the batch
        result.fail(f"{source}: unexpected {type(exc).__name__}: {exc}", exc)
    return result, None, None


#: a product that was in a worker process when it died, not tried alone since
WORKERS_HINT = Hint("workers", 1, "extract in this process, which shows the cause")


def _why_broken(source: str, exc: BaseException) -> Exception:
    """Why ``source`` has no extraction result (``exc``, a
    :class:`~producer.parallel.WorkerDied`), as the error that classifies it:

    - a local product that crashed a process of its own too: an
      :class:`~producer.errors.InputError` (``input``: a retry crashes again);
      one read from object storage (a URL, a GDAL ``/vsi`` path) may have
      crashed on a storage fault: ``storage``;
    - a result that could not be read back: a ``RuntimeError`` (``internal``,
      a bug: a retry fails the same way);
    - a kill from outside (SIGKILL: the out-of-memory killer; SIGTERM), a
      result that ran out of memory on its way back, no process to start,
      not tried after broken pools: a :class:`~producer.errors.StoreError`
      (``storage``, worth a retry). Only a product never tried alone gets
      the advice to extract it in the caller's process: one that crashed
      would end that process too."""
    died = parallel.WorkerDied
    cause = getattr(exc, "cause", None)
    fact = f"{source}: not registered: {exc}."
    if cause == died.CRASHED:
        if local_location(source) and not source.startswith("/vsi"):
            return InputError(
                f"{fact} It crashes its reader, so registering it again fails the same way: "
                "check the file (for example with gdalinfo) and replace it, or leave it out"
            )
        return StoreError(f"{fact} A storage fault while reading it can do that: retry later")
    if cause == died.UNREADABLE:
        return RuntimeError(f"{fact} This is a bug, please report it")
    if cause == died.KILLED:
        if getattr(exc, "signal", None) == signal.SIGKILL:
            return StoreError(
                f"{fact} It was killed from outside its process, often by the out-of-memory "
                "killer: retry with more memory"
            )
        return StoreError(f"{fact} Its process was ended from outside: retry")
    if cause == died.RESOURCES:
        return StoreError(f"{fact} Retry with more memory or fewer products per batch")
    return StoreError(fact, hints=(WORKERS_HINT,))


#: products of a batch ready to be written: (result, item key, item document)
Prepared = list[tuple[RegisterResult, str, dict]]


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
    sinks: Sequence[Sink] = (),
    grouping: Grouping | None = None,
    workers: int = 1,
    early: dict[str, tuple[Any, BaseException | None]] | None = None,
) -> list[RegisterResult]:
    """Register one batch: extract and validate every product, check the
    parents and the sinks (nothing written so far), then write the root if
    missing, the items, one compare-and-swap per parent, (partitioned) the
    moves and the id index, and hand what was committed to the sinks.
    Returns one result per product of ``chunk``, in order."""
    coll_title = (collection_meta or {}).get("title") or collection
    if _pipelines(committer, chunk, grouping, dry_run, workers):
        piped = _register_pipelined(
            chunk,
            committer,
            collection,
            options,
            collection_meta,
            coll_title,
            progress,
            done,
            total,
            replace,
            sinks,
            workers,
        )
        if piped is not None:
            return piped
    if grouping:
        results, prepared = grouping.prepare_chunk(
            chunk, committer, collection, options, coll_title, progress, done, total
        )
    else:
        results, prepared = _prepare_chunk(
            chunk, committer, collection, options, coll_title, progress, done, total, workers, early
        )
    if not prepared:
        return results

    try:
        preread = committer.preflight(collection, [doc for _, _, doc in prepared])
        _check_new_parents(committer, preread, collection, collection_meta)
    except (ProducerError, OSError) as exc:
        _fail_all(prepared, _as_project_error(exc, "cannot read the catalog: "))
        return results
    title = committer.collection_title(collection, preread, coll_title)
    if title != coll_title:  # the items were linked to the collection as given
        coll_title = title
        for _, _, doc in prepared:
            _retitle(doc, title)
    prepared = placement.place_items(committer, collection, prepared, preread, coll_title)
    placement.warn_if_crowded(committer, collection, preread, committer.notices)
    placement.warn_if_meta_kept(committer, collection, preread, collection_meta, committer.notices)

    # Partitioned: where each id sits now (id index, one GET per item), so a
    # product whose datetime moved it to another period is moved, not doubled.
    # A dry run reads it too: it says what this run would do (a move).
    index: dict[str, tuple[str | None, str | None]] = {}
    if committer.layout.partition:
        prepared = _read_index(committer, collection, prepared, index, replace)
        prepared = placement.keep_where_linked(committer, collection, prepared, index, coll_title)
        if not prepared:
            return results

    if dry_run:
        _dry_run(committer, prepared, replace, index)
        return results

    # a sink that cannot take the batch (database down) fails it while the
    # static catalog is untouched: nothing is committed that it would miss
    if sinks:
        try:
            check_sinks(sinks)
        except Exception as exc:
            cause = exc if isinstance(exc, ProducerError) else StoreError(f"{type(exc).__name__}: {exc}")
            _fail_all(prepared, StoreError(f"{cause}; nothing was written to the catalog"))
            return results

    # the root first: nothing is ever written below a missing root
    try:
        committer.ensure_root(preread)
    except (ProducerError, OSError) as exc:
        _fail_all(prepared, _as_project_error(exc, "cannot write the root catalog: "))
        return results

    # Partitioned: a new id's index entry before its item, so whatever a
    # killed register leaves, remove finds (docs/RELIABILITY.md, write order)
    if index:
        prepared = _index_new_ids(committer, collection, prepared, index, replace)
        if not prepared:
            return results

    # item key -> the committed document's mirror line, made as it is written (for the sinks)
    lines: dict[str, str] | None = {} if sinks and not grouping else None
    try:
        # local catalogs: one syncfs for the batch's directory entries instead
        # of a directory fsync per item; every new name is durable before any
        # parent links it (docs/RELIABILITY.md)
        with batch_durability(committer.store):
            if grouping:
                committed = grouping.write_items(committer, prepared, replace)
            else:
                committed = _write_items(committer, prepared, replace, lines)
    except (ProducerError, OSError) as exc:
        _fail_unlinked(prepared, exc)
        return results
    written = [(key, doc) for key, doc, _ in committed]
    # On S3 (flat layout: no moves after the link) the sinks take the
    # committed batch while the settle step checks its items: neither
    # depends on the other, so one round trip instead of two in sequence.
    together = bool(sinks) and not committer.layout.partition and not is_local(committer.store)

    def publish(only: Collection[str] | None = None) -> None:
        if only is None:  # beside the settle step, which may be writing items again: as first written
            _publish(
                committer, collection, prepared, {key: doc for key, _, doc in committed}, {}, sinks, lines
            )
        else:  # after it: the items it wrote and linked again
            again = {key: committer.rewritten[key] for key in only}
            _publish(committer, collection, prepared, again, {}, sinks, recreated=again)

    if written and not _link_written(
        committer, collection, written, collection_meta, preread, prepared, publish if together else None
    ):
        return results
    _shrink_after_updates(committer, collection, prepared)
    moved: dict[str, tuple[str, dict]] = {}
    if index:
        moved = _finish_moves(committer, collection, prepared, index, replace)
    if sinks and not together:  # items the settle step wrote again as it left them
        docs_by_key = {key: committer.rewritten.get(key, doc) for key, _, doc in committed}
        _publish(
            committer, collection, prepared, docs_by_key, moved, sinks, lines, recreated=committer.rewritten
        )
    return results


def _shrink_after_updates(committer: Committer, collection: str, prepared: Prepared) -> None:
    """Shrink the collection extent when an update moved an item off one of
    its edges (:meth:`Committer.shrink_after_updates`: one walk, only then).
    A failure leaves the extent a valid superset (``validate`` warns
    ``stale-extent``, ``reconcile --fix`` recomputes it): logged, the
    products stay registered."""
    keys = [key for result, key, _ in prepared if result.ok and result.action == Action.UPDATED]
    try:
        committer.shrink_after_updates(collection, keys)
    except (ProducerError, OSError) as exc:
        log.warning(
            "collection %r: the extent was not shrunk after an update moved an item off its edge (%s); "
            "it still covers every item, and a reconcile with fixing makes it exact",
            collection,
            exc,
        )


def _fail_unlinked(prepared: Prepared, exc: Exception) -> None:
    """Items of ``prepared`` may be written but no parent links them: each
    product still counted as good fails, saying a second run finishes it."""
    for result, _, _ in prepared:
        if result.ok:
            result.fail(
                f"{result.source}: item written but not linked ({exc}); register it again",
                _as_project_error(exc),
            )


def _publish(
    committer: Committer,
    collection: str,
    prepared: Prepared,
    committed: dict[str, dict],
    moved: dict[str, tuple[str, dict]],
    sinks: Sequence[Sink],
    lines: dict[str, str] | None = None,
    recreated: Collection[str] = (),
) -> None:
    """Hand a committed batch (items written and linked) to the sinks, with
    the collection document as committed (one GET). ``lines``: item key ->
    the committed document's :func:`item_line`, where the writer made it
    (``Change.line``). ``recreated``: keys the settle step wrote and linked
    again after a racing remove took them: ``created`` for every sink,
    whatever the product's result says (the sinks saw the remover's
    ``removed``), and never with a line (that was the first write's).

    Changes, in commit order: ``created``/``updated`` per item; an item that
    moved to another partition is ``REMOVED`` (old key) then ``CREATED``
    (new key); ``unchanged`` items go only to the sinks that want them
    (:func:`producer.sinks.wants_unchanged`). A sink that fails leaves the
    catalog as committed: each product of the batch still ok gets a storage
    error (retryable) saying the catalog is committed and that sink is
    behind. Mutates the results; writes only through the sinks.
    """
    changes: list[Change] = []
    unchanged: list[Change] = []
    covered: list[RegisterResult] = []
    lines = lines or {}
    for result, key, doc in prepared:
        if not result.ok or key not in committed:
            continue
        covered.append(result)
        item_id, item = doc["id"], committed[key]
        if key in moved:
            old_key, old_item = moved[key]
            changes.append(removed(collection, item_id, old_key, old_item))
            changes.append(Change(ChangeKind.CREATED, collection, item_id, key, item))
        elif key in recreated:
            changes.append(Change(ChangeKind.CREATED, collection, item_id, key, item))
        elif result.action == Action.UNCHANGED:
            unchanged.append(Change(ChangeKind.UPDATED, collection, item_id, key, item, lines.get(key)))
        else:
            changes.append(
                Change(ChangeKind(str(result.action)), collection, item_id, key, item, lines.get(key))
            )
    if not covered:
        return
    coll_key = committer.layout.collection_key(collection)
    try:
        coll_doc = committer.collection_doc(collection)  # as committed: no GET
        if coll_doc is None:
            raise StoreError(f"{committer.store_path(coll_key)} is gone (removed meanwhile?)")
    except (ProducerError, OSError) as exc:
        failures = [SinkFailure("the sinks", _as_project_error(exc, "cannot read the collection: "))]
    else:
        # the mirror's and the outbox's writes made durable together: one
        # fsync per folder they touched, when every sink has its changes
        # (they follow the committed catalog, which is durable already)
        try:
            with batch_durability(committer.store):
                failures = deliver(sinks, coll_doc, changes, unchanged, Outbox(committer.store))
        except (ProducerError, OSError) as exc:
            failures = [
                SinkFailure("the sinks", _as_project_error(exc, "cannot make the sinks' writes durable: "))
            ]
    if not failures:
        return
    behind = "; ".join(f"{f.sink} ({f.error})" for f in failures)
    error = failures[0].error
    kind = error if isinstance(error, ProducerError) else StoreError(str(error))
    remedy = remedy_text(failures, collection, "register again, or reconcile with fix")
    for result in covered:
        result.fail(
            f"{result.source}: committed to the catalog, but not applied to {behind}, which is now "
            f"behind the catalog: {remedy}",
            kind,
        )


def _prepare_chunk(
    chunk: list[str],
    committer: Committer,
    collection: str,
    options: ExtractOptions,
    coll_title: str,
    progress: Progress | None,
    done: int,
    total: int,
    workers: int = 1,
    early: dict[str, tuple[Any, BaseException | None]] | None = None,
) -> tuple[list[RegisterResult], Prepared]:
    """Extract and validate each product (:func:`_extract_each`; ``early``:
    see :func:`_extract_early`). Returns every result, in order, and the
    products ready to be written."""
    results: list[RegisterResult] = []
    prepared: Prepared = []
    for result, entry in _extract_each(
        chunk, committer, collection, options, coll_title, progress, done, total, workers, early=early
    ):
        results.append(result)
        if entry is not None:
            prepared.append(entry)
    return results, prepared


def _extract_each(
    chunk: list[str],
    committer: Committer,
    collection: str,
    options: ExtractOptions,
    coll_title: str,
    progress: Progress | None,
    done: int,
    total: int,
    workers: int = 1,
    before_fork: Callable[[], None] | None = None,
    early: dict[str, tuple[Any, BaseException | None]] | None = None,
) -> Iterator[tuple[RegisterResult, tuple[RegisterResult, str, dict] | None]]:
    """Extract and validate each product (:func:`_prepare`), by worker
    threads (or processes) when the batch is large enough (``workers``: see
    :func:`producer.parallel.extraction_workers`); a second product mapping
    to the item id of an earlier one fails (by id, not by key: in a
    partitioned collection two products of one id in different periods
    have different keys but would be one item twice). Yields each result as it comes, in
    order, with the product ready to be written (or None). Reports
    ``progress`` per product. ``before_fork``: see :func:`producer.parallel.prepare_all`."""
    seen: dict[str, str] = {}  # item id -> the first product that maps to it

    job = _Extraction.of(committer, collection, options, coll_title, early)

    def broken(source: str, exc: BaseException) -> tuple[RegisterResult, str | None, dict | None]:
        result = RegisterResult(source=source)
        with contextlib.suppress(ProducerError):
            result.id = make_item_id(source, options)
        why = _why_broken(source, exc)
        result.fail(str(why), why)
        return result, None, None

    def ready() -> None:  # before each fork of this process
        # rasterio loaded here, once, so that forked workers inherit it: each
        # imported it on its first product otherwise (~0.3 s of CPU per worker
        # per pool; the CLI's process has not loaded it when it forks)
        with contextlib.suppress(Exception):  # a broken install fails each product, as it would here
            _ = extract.create_item
        if before_fork is not None:
            before_fork()

    pool = extraction_workers(workers, len(chunk))
    extracted = prepare_all(job, chunk, pool, broken, parallel.EXTRACT_KIND, before_fork=ready)
    for i, (result, key, doc) in enumerate(extracted):
        source = chunk[i]
        entry: tuple[RegisterResult, str, dict] | None = None
        if key is not None and doc is not None:
            if doc["id"] in seen:
                first = seen[doc["id"]]
                rename, hints = id_clash_fix(first, source, options)
                clash = InputError(
                    f"{source}: maps to the same item id {doc['id']!r} as {first}.{rename}", hints=hints
                )
                result.fail(str(clash), clash)
                result.href = None
            else:
                seen[doc["id"]] = source
                entry = (result, key, doc)
        if progress:
            progress(done + i + 1, total)
        yield result, entry


def _pipelines(
    committer: Committer, chunk: list[str], grouping: Grouping | None, dry_run: bool, workers: int
) -> bool:
    """Whether a batch writes its items while its products are still being
    extracted (:func:`_register_pipelined`): pooled extraction of single
    products into a flat (unpartitioned) collection, not a dry run. A
    partitioned batch needs every item's period to read its parents first."""
    return (
        not grouping
        and not dry_run
        and committer.layout.partition is None
        and extraction_workers(workers, len(chunk)) > 1
    )


def _register_pipelined(
    chunk: list[str],
    committer: Committer,
    collection: str,
    options: ExtractOptions,
    collection_meta: dict | None,
    coll_title: str,
    progress: Progress | None,
    done: int,
    total: int,
    replace: bool,
    sinks: Sequence[Sink],
    workers: int,
) -> list[RegisterResult] | None:
    """:func:`_register_chunk` with each item written as soon as its product
    is extracted, while workers extract the next ones; then, as there, one
    compare-and-swap per parent, and the sinks.

    Every check the batch path makes before its first write is made here
    before extraction starts (parents readable and valid, the sinks ready);
    when one fails this returns None, having written nothing, and the batch
    path runs and reports it per product. The root is created before the
    first item, every item is durable (:func:`batch_durability`) before the
    preflight is read again and the parents link them: a crash anywhere
    leaves items no parent links yet (orphans ``reconcile`` links), never a
    link to a missing item, as in the batch path.
    """
    try:
        preread = committer.preflight(collection, [])
        _check_new_parents(committer, preread, collection, collection_meta)
        if sinks:
            check_sinks(sinks)
    except Exception:  # reported per product by the batch path
        return None
    coll_title = committer.collection_title(collection, preread, coll_title)
    results: list[RegisterResult] = []
    prepared: Prepared = []
    futures: list[Future[tuple[str, dict, dict] | None]] = []
    lines: dict[str, str] = {}  # item key -> its committed document's mirror line, for the sinks
    refused: BaseException | None = None  # the root could not be written: write nothing

    def quiet() -> None:  # no write thread inside a store call when a worker forks
        wait(futures)

    threads = write_threads(len(chunk), committer.store.concurrent_safe)
    staging: Staging | None = None
    published: dict[str, ProducerError | None] = {}  # staged key -> None (named) or why not
    try:
        with (
            batch_durability(committer.store),
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stac-write") as pool,
        ):
            staging = _staging(committer.store, len(chunk))
            for result, entry in _extract_each(
                chunk, committer, collection, options, coll_title, progress, done, total, workers, quiet
            ):
                if staging is not None and staging.age() > staging.window:
                    # a long batch names what it staged so far, long before
                    # sweeps would take the temp files for a dead writer's
                    # (one the sweeps took all the same is written as usual)
                    wait(futures)
                    published.update(committer.publish_staged(staging))
                results.append(result)
                if entry is None:
                    continue
                prepared.append(entry)
                if refused is None and len(prepared) == 1:
                    try:
                        with durable_now(committer.store):  # storage never holds items without a root
                            committer.ensure_root(preread)
                    except (ProducerError, OSError) as exc:
                        refused = exc
                if refused is None:
                    context = contextvars.copy_context()  # the batch's durability
                    futures.append(
                        pool.submit(
                            context.run,
                            _write_one,
                            committer,
                            entry,
                            replace,
                            lines if sinks else None,
                            staging,
                        )
                    )
            outcomes = [f.result() for f in futures]
            if staging is not None:
                published.update(committer.publish_staged(staging))
                outcomes = _apply_published(
                    committer,
                    prepared[: len(futures)],
                    outcomes,
                    published,
                    replace,
                    lines if sinks else None,
                )
            committed = [w for w in outcomes if w is not None]
    except (ProducerError, OSError) as exc:
        _fail_unlinked(prepared, exc)
        # extraction itself failed (a fork refused, say): one result per product still
        for source in chunk[len(results) :]:
            lost = RegisterResult(source=source)
            lost.fail(f"{source}: not registered ({exc}); register it again", _as_project_error(exc))
            results.append(lost)
        return results
    finally:
        if staging is not None:  # what an exception left unpublished (the write threads are done)
            staging.discard()
    if refused is not None:
        _fail_all(prepared, _as_project_error(refused, "cannot write the root catalog: "))
        return results
    if not committed:
        return results
    try:  # fresh parents (and pending intents) for the compare-and-swaps
        preread = committer.preflight(collection, [doc for _, doc, _ in committed])
    except (ProducerError, OSError) as exc:
        detail = _as_project_error(exc, "cannot read the catalog: ")
        for result, _, _ in prepared:
            if result.ok:
                result.fail(
                    f"{result.source}: item written but not linked ({detail}); "
                    "rerun the registration or reconcile with fixing",
                    detail,
                )
        return results
    placement.warn_if_crowded(committer, collection, preread, committer.notices)
    placement.warn_if_meta_kept(committer, collection, preread, collection_meta, committer.notices)
    written = [(key, doc) for key, doc, _ in committed]
    if not _link_written(committer, collection, written, collection_meta, preread, prepared):
        return results
    if sinks:  # items the settle step wrote again as it left them
        docs_by_key = {key: committer.rewritten.get(key, doc) for key, _, doc in committed}
        _publish(
            committer, collection, prepared, docs_by_key, {}, sinks, lines, recreated=committer.rewritten
        )
    return results


def _dry_run(
    committer: Committer,
    prepared: Prepared,
    replace: bool,
    index: dict[str, tuple[str | None, str | None]] | None = None,
) -> None:
    """Set each result's action to what a registration would do (one GET per
    item, nothing written). ``index`` (partitioned: item key -> the id
    index's entry, :func:`_read_index`): an id whose item sits in another
    period would be moved there, ``updated`` as the real run says (one more
    existence check, only then; an entry naming no item moves nothing)."""
    for result, key, doc in prepared:
        thumbnail.discard_pending(doc)
        old_key = (index or {}).get(key, (None, None))[0]
        try:
            existing, _ = committer.read(key, ("Feature",))
            if not replace:
                committer.check_identity(key, existing, doc)
            moves = old_key is not None and old_key != key and committer.store.exists(old_key)
        except (ProducerError, OSError) as exc:
            result.fail(f"{result.source}: {exc}", _as_project_error(exc))
            continue
        if moves:
            result.action = "updated"
        elif existing is None:
            result.action = "created"
        elif same_content(
            existing,
            committer.keep_thumbnail(key, existing, absolute_assets(doc, committer.store_path(key))),
        ):  # as read back, with the stored thumbnail a rerun without the option keeps
            result.action = "unchanged"
        else:
            result.action = "updated"
        result.item = doc


def _read_index(
    committer: Committer,
    collection: str,
    prepared: Prepared,
    index: dict[str, tuple[str | None, str | None]],
    replace: bool,
) -> Prepared:
    """Fill ``index`` (item key -> id index entry) for a partitioned
    collection, and fail a product whose id is another product's in another
    period. Returns the products still to be written."""
    for result, key, doc in prepared:
        try:
            entry = committer.read_index_entry(collection, doc["id"])
            index[key] = (entry.key, entry.version)
            claimed = entry.key if entry.key not in (None, key) else None
            lapses = committer.claim_under_way(entry, doc) if claimed is not None else None
            if (
                claimed is not None
                and lapses is not None
                and committer.read(claimed, ("Feature",))[0] is None
            ):
                # another product's registration has claimed the id and not
                # written its item yet (or died doing so): taking the id now
                # would give it two items
                raise _under_way(committer, doc["id"], claimed, lapses)
            if not _check_same_product(committer, key, doc, index[key][0], replace):
                # an entry naming no item is claimed like a new id's (from
                # its version): two registers taking it at once cannot both win
                index[key] = (None, index[key][1])
        except (ProducerError, OSError) as exc:
            result.fail(f"{result.source}: not registered: {exc}", _as_project_error(exc))
            result.href = None
    return [entry for entry in prepared if entry[0].error is None]


def _write_items(
    committer: Committer, prepared: Prepared, replace: bool, lines: dict[str, str] | None = None
) -> list[tuple[str, dict, dict]]:
    """Write each item document, up to 16 at once on a store that takes
    concurrent writes (:func:`producer.parallel.write_threads`); a failure
    fails that product only. Returns ``(key, doc, committed)`` per item
    written, in batch order (``committed``: the document on storage,
    timestamps included). Mutates each product's result. ``lines``: the
    sinks' lines of the items created, as their encoding makes them
    (:func:`_write_one` with ``encode`` false)."""

    threads = write_threads(len(prepared), committer.store.concurrent_safe)
    staging = _staging(committer.store, len(prepared))
    try:
        written = map_ordered(
            lambda e: _write_one(committer, e, replace, lines, staging, encode=False), prepared, threads
        )
        if staging is not None:
            written = _apply_published(
                committer, prepared, written, committer.publish_staged(staging), replace, lines
            )
    finally:
        if staging is not None:  # what an exception left unpublished: no temp file stays
            staging.discard()
    return [w for w in written if w is not None]


def _staging(store: Store, count: int) -> Staging | None:
    """The store's staging of the ``count`` create-only writes of the batch
    open in this context (a local store inside :func:`batch_durability`,
    for more than a few items), or None. Looked up on the store's own class,
    never through a wrapper: a wrapper that counts or injects faults into
    writes sees every write as a put."""
    staging = getattr(type(store), "staging", None)
    return staging(store, count) if staging is not None else None


def _apply_published(
    committer: Committer,
    prepared: Prepared,
    written: list[tuple[str, dict, dict] | None],
    published: dict[str, ProducerError | None],
    replace: bool,
    lines: dict[str, str] | None,
) -> list[tuple[str, dict, dict] | None]:
    """``written`` (:func:`_write_one`'s outcomes, one per product of
    ``prepared``, in order) once the staged items are named: ``published``
    (:meth:`Committer.publish_staged`, merged over the batch's publishes).
    An item another writer created meanwhile is written the usual way now
    (read, identity check, compare-and-swap); one whose bytes could not be
    made durable fails its product. Mutates the products' results."""
    out = list(written)
    for i, ((result, key, _), w) in enumerate(zip(prepared, written, strict=True)):
        outcome = published.get(key) if w is not None else None
        if outcome is None:
            continue
        if lines is not None:  # the staged document's line; the rewrite puts its own
            lines.pop(key, None)
        if isinstance(outcome, PreconditionFailed):
            out[i] = _write_one(committer, prepared[i], replace, lines)
        else:
            result.fail(f"{result.source}: not registered: {outcome}", outcome)
            result.href = None
            out[i] = None
    return out


def _write_one(
    committer: Committer,
    entry: tuple[RegisterResult, str, dict],
    replace: bool,
    lines: dict[str, str] | None = None,
    staging: Staging | None = None,
    encode: bool = True,
) -> tuple[str, dict, dict] | None:
    """Write one item document (:func:`_write_items`); a failure fails that
    product only and gives None. ``lines``: also put the committed
    document's :func:`item_line` there under its key (the pooled path does,
    in the write thread, so the mirror does not encode the batch after the
    last product; an item that is not JSON gets none, and the sink reports it).
    A created item's line comes with its document's encoding
    (:meth:`Committer.write_item`, :meth:`Committer.stage_item`); ``encode``
    false: no other (an item found unchanged, which the mirror may not
    need, is not encoded here).
    ``staging``: a new item without a thumbnail to write is staged there
    (:meth:`Committer.stage_item`), as created, for :func:`_apply_published`."""
    result, key, doc = entry
    if lines is not None:
        lines.pop(key, None)  # only this write's line
    try:
        staged = None
        if staging is not None and thumbnail.PENDING not in doc:
            staged = committer.stage_item(staging, key, doc, lines)
        if staged is not None:
            result.action, committed = "created", staged
        else:
            # PNG first; deleted again if refused (no PNG: nothing to do around the write)
            around = (
                thumbnail.pending(committer.store, key, doc)
                if thumbnail.PENDING in doc
                else contextlib.nullcontext()
            )
            with around:
                # a created item's line made with its document's encoding, when it can be
                result.action, committed = committer.write_item(key, doc, replace=replace, lines=lines)
        result.item = doc
        if encode and lines is not None and key not in lines:  # not made by write_item
            with contextlib.suppress(TypeError, ValueError):
                lines[key] = item_line(committed)
        return key, doc, committed
    except ProducerError as exc:
        result.fail(f"{result.source}: {exc}", exc)
    except OSError as exc:  # disk full, permission denied, ... in a store: this product only
        result.fail(
            f"{result.source}: not registered: cannot write {committer.store_path(key)}: {_os_error(exc)}",
            StoreError(str(exc)),
        )
        result.href = None
    return None


def _link_written(
    committer: Committer,
    collection: str,
    written: list[tuple[str, dict]],
    collection_meta: dict | None,
    preread: dict[str, tuple[dict | None, str | None]],
    prepared: Prepared,
    alongside: Callable[[Collection[str] | None], None] | None = None,
) -> bool:
    """Link the written items into their parents (and settle races with a
    concurrent remove); on failure fail every product still ok, saying how
    to finish, and return False.

    A product whose item this link made part of the catalog (its parent
    lacked the link: a run killed after writing the item, before linking
    it) becomes ``created``, whatever its write found (``unchanged``: the
    item as the killed run wrote it), so the sinks are told of it
    (:meth:`Committer.link_items` says which, without a request).

    ``alongside`` (the sinks' delivery), when given, runs after the link
    while the settle step runs; called again with the keys the settle step
    wrote again (a concurrent remove took them meanwhile), so the sinks end
    with the items as the catalog does. A failed settle overrides what the
    sinks said: those products were not linked."""
    pending = [(result, key) for result, key, _ in prepared if result.ok]
    try:
        _link_and_settle(committer, collection, written, collection_meta, preread, prepared, alongside)
    except (ProducerError, OSError) as exc:
        detail = exc if isinstance(exc, ProducerError) else _os_error(exc)
        kind = exc if isinstance(exc, ProducerError) else StoreError(str(exc))
        for result, key in pending:
            if _linked_before(committer, collection, key, preread):
                # an item registered before (unchanged, or merged into): its link
                # stands; what failed is the update above it (extent, summaries)
                what = "unchanged" if result.action == Action.UNCHANGED else "written"
                result.fail(
                    f"{result.source}: item {what} and linked, but the catalogs above it were not "
                    f"updated ({detail}); rerun the registration or reconcile with fixing",
                    kind,
                )
                continue
            result.fail(
                f"{result.source}: item written but not linked ({detail}); "
                "rerun the registration or reconcile with fixing",
                kind,
            )
        return False
    return True


def _linked_before(
    committer: Committer, collection: str, key: str, preread: dict[str, tuple[dict | None, str | None]]
) -> bool:
    """Whether the parent of item ``key``, as read before the batch's links
    (``preread``), links it already. No request: False when that parent
    was not pre-read (or links it by another spelling)."""
    parent = committer.layout.item_chain(collection, key)[0]
    doc = preread.get(parent, (None, None))[0]
    if not isinstance(doc, dict) or not isinstance(doc.get("links"), list):
        return False
    href = relative_href(parent, key)
    return any(
        isinstance(link, dict) and link.get("rel") == "item" and link.get("href") == href
        for link in doc["links"]
    )


def _link_and_settle(
    committer: Committer,
    collection: str,
    written: list[tuple[str, dict]],
    collection_meta: dict | None,
    preread: dict[str, tuple[dict | None, str | None]],
    prepared: Prepared,
    alongside: Callable[[Collection[str] | None], None] | None,
) -> None:
    """:func:`_link_written`'s steps: link (and mark what it made part of
    the catalog ``created``), then settle (and ``alongside``)."""
    # ack "durable": the look for a leader (one GET, or leading) runs in the
    # settle step, beside the sinks: the change is durable once linked returns
    linked = committer.link_items(collection, written, collection_meta, preread, defer_lease=True)
    for result, key, _ in prepared:
        # not when another thread of this process made the item and is linking
        # it too: one creation, reported once (docs/RELIABILITY.md)
        if result.ok and key in linked and not committer.created_by_another(key):
            result.action = Action.CREATED
    committer.linked_creations(key for result, key, _ in prepared if result.ok)

    def settle() -> list[str]:
        committer.finish_pending()
        # one listing (S3), else one GET per item in parallel like the writes
        return committer.settle_batch(
            collection,
            written,
            collection_meta,
            write_threads(len(written), committer.store.concurrent_safe),
        )

    if alongside is None:
        settle()
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            settling = pool.submit(contextvars.copy_context().run, settle)
            alongside(None)
            redone = settling.result()
        if redone:
            alongside(redone)
    for result, key, _ in prepared:
        result.link_pending = result.ok and key in committer.pending_links


def _as_project_error(exc: BaseException, doing: str = "") -> BaseException:
    """``exc`` if it is a project error, else a :class:`StoreError` (an OS
    error from a store: retryable) saying ``doing`` and the cause."""
    if isinstance(exc, ProducerError) or not isinstance(exc, OSError):
        return exc
    return StoreError(f"{doing}{_os_error(exc)}")


def _fail_all(prepared: Prepared, exc: BaseException) -> None:
    """Fail every product of a batch with ``exc`` (nothing of it was written)."""
    for result, _, _ in prepared:
        result.fail(f"{result.source}: not registered: {exc}", exc)
        result.href = None


def _os_error(exc: OSError) -> str:
    """An OS error as one line with its cause, and what to do about it."""
    text = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{text} (free space on the catalog's storage, then register again)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or isinstance(exc, PermissionError):
        return f"{text} (give this process write access to the catalog, then register again)"
    return text


def _check_same_product(
    committer: Committer, key: str, doc: dict, old_key: str | None, replace: bool
) -> bool:
    """Before a move: the item the id index names in another period must
    describe the same product, by the rule :meth:`Committer.put_item` applies
    within a period (raises :class:`IdentityConflict`, nothing written),
    unless ``replace``. One GET, only when the period changed. False when
    that read found no item there (the entry outlived it: nothing to move)."""
    if replace or old_key is None or old_key == key:
        return True
    old, _ = committer.read(old_key, ("Feature",))
    committer.check_identity(old_key, old, doc)
    created = (old or {}).get("properties", {}).get("created")
    if isinstance(created, str):  # the same item moving: it keeps when it first appeared
        doc["properties"]["created"] = created
    return old is not None


def _index_new_ids(
    committer: Committer,
    collection: str,
    prepared: Prepared,
    index: dict[str, tuple[str | None, str | None]],
    replace: bool = False,
) -> Prepared:
    """Partitioned collections, before the items are written: point the id
    index entry of each id that has none (or an unreadable one) at the key
    its item is about to be written to, up to 16 entries at once. Returns
    the products still to be written; one whose entry cannot be written
    fails, nothing of it written.

    So an item of a partitioned collection never exists without its entry:
    ``remove`` (:func:`producer.removal.find_item_key`) finds it wherever a
    killed register left it (written, unlinked or half linked), and
    ``reconcile --fix`` never links an item a ``remove`` said was absent. A
    kill after the entry leaves an entry naming a missing document, which
    every reader already takes for "not there" (as after a ``remove``).
    Ids that have an entry keep their order: the entry moves last
    (:func:`_finish_moves`). Mutates ``index``: the written entries name
    their key, so :func:`_finish_moves` writes nothing more for them.
    Writes: one create-only PUT per new id, the same count as before (it
    was written after the links, one at a time). An entry another
    registration wrote since it was read is judged, not overwritten
    (:func:`_claim_id`)."""
    new = [(result, key, doc) for result, key, doc in prepared if index.get(key, (None, None))[0] is None]

    def write(entry: tuple[RegisterResult, str, dict]) -> None:
        result, key, doc = entry
        try:
            index[key] = _claim_id(committer, collection, key, doc, index.get(key, (None, None)), replace)
        except (ProducerError, OSError) as exc:
            result.fail(f"{result.source}: not registered: {exc}", _as_project_error(exc))
            result.href = None

    map_ordered(write, new, write_threads(len(new), committer.store.concurrent_safe))
    return [entry for entry in prepared if entry[0].error is None]


def _claim_id(
    committer: Committer,
    collection: str,
    key: str,
    doc: dict,
    current: tuple[str | None, str | None],
    replace: bool,
) -> tuple[str | None, str | None]:
    """Point the id index entry of ``doc`` at ``key`` from ``current`` (read
    before: no entry, or one naming no item); returns the entry to finish
    the registration with (:func:`_finish_moves`).

    Another registration may have claimed the id since (two products named
    alike registered at once into two periods): its entry is judged like
    one read before the run, never overwritten, so the id never ends with
    two items. Its item written: another product's is refused
    (:class:`IdentityConflict`, nothing written), the same product's is
    moved here. Not yet written: a retryable :class:`ConflictError`,
    nothing written (a rerun finds the item, or an entry naming none when
    that registration died, and goes on)."""
    for _attempt in range(committer.max_retries + 1):
        try:
            committer.write_index(collection, doc["id"], key, current, claim=True, claimant=doc)
            return key, None
        except PreconditionFailed:
            current = committer.read_index(collection, doc["id"])
        taken = current[0]
        if taken is None:  # unreadable, or gone again: claim it from there
            continue
        if taken == key:
            return key, None
        other, _ = committer.read(taken, ("Feature",))
        if other is None:
            raise _under_way(committer, doc["id"], taken)
        if not replace:
            committer.check_identity(taken, other, doc)
        return current
    raise ConflictError(
        f"{committer.store_path(committer.layout.index_key(collection, doc['id']))}: other writers kept "
        "changing it; nothing was written: register again later"
    )


def _under_way(
    committer: Committer, item_id: str, taken: str, lapses: datetime | None = None
) -> ConflictError:
    """The retryable error for an id another registration has claimed and
    whose item it has not written yet; ``lapses``: when that claim lapses
    (a registration that died leaves it until then)."""
    died = (
        f" (if that registration died, the id is free from {format_time(lapses)})"
        if lapses is not None
        else ""
    )
    return ConflictError(
        f"another registration of item id {item_id!r} into {committer.store_path(taken)} is under way; "
        f"nothing was written: register again once it has finished{died}"
    )


def _finish_moves(
    committer: Committer,
    collection: str,
    prepared: Prepared,
    index: dict[str, tuple[str | None, str | None]],
    replace: bool = False,
) -> dict[str, tuple[str, dict]]:
    """Partitioned collections, after the new items are written and linked:
    remove the item each id had in another period (remove protocol), then
    point the id index at the new key. Returns, per new key whose move is
    finished, the old key and the old item's last document.

    The index is updated last, so a crash anywhere before leaves it naming
    the old item, and a re-run of the registration finds and finishes the
    move. Writes: per moved item the removal's writes and one index entry
    (a new id's entry was written before its item: :func:`_index_new_ids`).
    """
    moved: dict[str, tuple[str, dict]] = {}
    for result, key, doc in prepared:
        if not result.ok:
            continue
        old_key, version = index.get(key, (None, None))
        old_gone = False  # the old copy is removed (or was absent): only the index is left
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
                if outcome.action == "removed":
                    # an item of the id existed and moved period; ``absent``:
                    # the index entry outlived its item (``remove`` leaves it:
                    # deleting it could race a register of the same key), so
                    # nothing moved and the result stays what the write said
                    result.action = "updated"
                    if outcome.item is not None:
                        moved[key] = (old_key, outcome.item)
                        # as remove does: the old copy's PNG goes with it (after it:
                        # a PNG left by a crash in between is harmless)
                        try:
                            thumbnail.delete(committer.store, old_key, outcome.item)
                        except (ProducerError, OSError) as exc:
                            log.warning("%s moved; its old thumbnail stays behind (%s)", doc["id"], exc)
            old_gone = True
            committer.write_index(collection, doc["id"], key, (old_key, version))
        except (ProducerError, OSError) as exc:
            index_key = committer.store_path(committer.layout.index_key(collection, doc["id"]))
            left = (
                f"its old copy is gone, but the id index entry {index_key} was not updated"
                if old_gone
                else f"its old copy at {committer.store_path(old_key or key)} was not removed"
            )
            result.fail(
                f"{result.source}: item written and linked, but {left} ({exc}); "
                "rerun the registration to finish the move",
                exc,
            )
    return moved


def _retitle(doc: dict, title: str) -> None:
    """Set the title of ``doc``'s ``collection`` link to ``title``."""
    for link in doc.get("links", []):
        if link.get("rel") == "collection":
            link["title"] = title


def _refuse_other_catalog(committer: Committer, collection: str, coll_key: str) -> None:
    """Raise :class:`InputError` when the folder a new collection would take
    (``coll_key``'s) holds the root of another catalog (its ``catalog.json``'s
    root link names itself, as ``reconcile`` tells a nested catalog): its
    items would be written into that catalog. One GET, only when the
    collection is new; a folder without one, or one this cannot read, is left
    to the writes."""
    folder = coll_key.rsplit("/", 1)[0]
    key = f"{folder}/{ROOT_KEY}"
    try:
        data, _ = committer.store.get(key)
        doc = json.loads(data)
    except (ProducerError, OSError, ValueError):
        return
    if docs.is_other_root(key, doc, committer.store.url):
        where = committer.store_path(folder)
        raise InputError(
            f"collection {collection!r} would be the folder {where}, which holds another catalog (its "
            "catalog.json is a root of its own): registering would write into that catalog (nothing was "
            "written); choose another collection id, or register into that catalog by giving it as the "
            "catalog",
            hints=(Hint("catalog", where, "register into that catalog"),),
        )


def _check_new_parents(
    committer: Committer, preread: dict, collection: str, collection_meta: dict | None
) -> None:
    """Validate the collection and root documents a batch would create, before any write."""
    layout = committer.layout
    coll_key = layout.collection_key(collection)
    if coll_key in preread and preread[coll_key][0] is None:
        _refuse_other_catalog(committer, collection, coll_key)
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
