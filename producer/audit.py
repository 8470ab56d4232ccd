"""Walking a whole catalog: what is wrong with it. Read-only.

:func:`audit` reads every document once, breadth-first from the root,
following ``child`` and ``item`` links, then lists the store to find
documents nothing links (orphans). Nothing in this module writes: the
repair of what it finds is :mod:`producer.repair`.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from producer.catalog import documents as docs
from producer.catalog import intents
from producer.catalog.extent import (
    bbox_contains,
    box2d,
    clusters,
    format_time,
    interval_contains,
    item_interval,
    parse_time,
)
from producer.catalog.layout import (
    LAYOUT_FIELD,
    ROOT_KEY,
    Layout,
    below_collection,
    collection_key,
    collection_of,
    folder_collection_id,
    is_catalog_document_key,
    is_document_key,
    is_intent_key,
    is_lease_key,
    is_thumbnail_key,
    item_follows,
    item_link_count,
    layout_record_problem,
    layouts_of_item,
    recorded_layout,
    resolve_href,
)
from producer.catalog.mirrorlinks import MIRROR_ROLE, linked_mirror_keys, mirror_key
from producer.catalog.summaries import Tally, stored_summaries
from producer.errors import CatalogError, NotFound, ProducerError, StoreError
from producer.hrefs import absolute_assets, document_url, rendered_thumbnail
from producer.httplimits import with_http_timeout
from producer.redact import redact
from producer.results import ProblemKind
from producer.store.base import Store
from producer.store.open import has_credentials
from producer.urls import protocol
from producer.validate import Validator

#: problem kinds that make a catalog invalid (validate exits 1)
ERRORS: frozenset[ProblemKind] = frozenset(
    {
        "missing-root",
        "unreadable",
        "schema",
        "dangling-link",
        "duplicate-link",
        "orphan",
        "misplaced",
        "extent",
        "wrong-type",
        "collection-mismatch",
        "malformed",
        "duplicate-id",
        # the run could not do its job: an asset whose existence could not be
        # checked (never treated as missing), a product reconcile could not register
        "asset-unchecked",
        "register-failed",
        # the stac-geoparquet mirror of a collection could not be read to compare
        "mirror-unchecked",
        # ... or, stale, could not be rebuilt by reconcile with fix
        "mirror-failed",
        # a product under reconcile's data that no item describes: the catalog is
        # incomplete until it is registered
        "missing-product",
        # a sink or the pgSTAC database is behind the catalog: the catalog is
        # fine, but the run's job (keeping them in step) is not done
        "sink-failed",
        "pgstac-missing",
        "pgstac-extra",
        "pgstac-differing",
        "pgstac-collection",
    }
)


#: how a finding's message names the repair: the Python call (also the
#: Prefect reconcile flow's parameter); the CLI shows ``reconcile --fix``
#: instead (:meth:`Problem.phrased`)
REPAIR = "reconcile(fix=True)"
#: the same with dead items removed; the CLI shows ``reconcile --fix --dead remove``
REPAIR_DEAD = "reconcile(fix=True, dead='remove')"


@dataclass
class Problem:
    """One finding: ``kind`` (an error if in ERRORS, else a warning: the catalog
    is still correct STAC), the document ``key``, a message."""

    kind: ProblemKind
    key: str
    message: str
    target: str | None = None  # the linked key, for link problems

    def __post_init__(self) -> None:
        # a message may quote an asset href or a product URL: never its
        # user info or signature (printed, logged, kept in flow artifacts)
        # (keys are document keys, looked up by; a product's URL as key is
        # redacted where the finding is made, in producer.repair)
        self.message = redact(self.message)

    @property
    def is_error(self) -> bool:
        return self.kind in ERRORS

    def __str__(self) -> str:
        return f"{self.key}: [{self.kind}] {self.message}"

    def phrased(self, repair: str) -> Problem:
        """This finding with its repair named as ``repair`` (the CLI passes
        ``reconcile --fix``; :data:`REPAIR_DEAD` becomes ``repair`` with
        ``--dead remove``); the message is otherwise unchanged."""
        message = self.message.replace(REPAIR_DEAD, f"{repair} --dead remove")
        return replace(self, message=message.replace(REPAIR, repair))

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "key": self.key,
            "message": self.message,
            "severity": "error" if self.is_error else "warning",
        }


@dataclass
class ItemInfo:
    key: str
    id: str
    bbox: list[float]
    interval: tuple[str, str]
    collection_key: str | None
    parent_key: str
    assets: dict[str, str] = field(default_factory=dict)  # asset key -> href
    updated: str = ""  # the item's ``updated`` property ("" if none)
    removing: bool = False  # carries the mark of an unfinished ``remove``
    stores: tuple[str, ...] = ()  # keys of the assets that are Zarr stores (folders)


#: boxes an :class:`ExtentTally` buffers before folding them into its clusters
_FOLD_EVERY = 4096


class ExtentTally:
    """The exact extent of items seen one by one, in memory bounded by the
    number of longitude clusters (not the number of items).

    Boxes are folded into unlimited clusters every :data:`_FOLD_EVERY` items
    (clustering is associative: :func:`~producer.catalog.extent.clusters`),
    and the :data:`~producer.catalog.extent.MAX_CLUSTERS` limit applies only
    in :meth:`extent`, so the result is value for value
    :func:`documents.exact_extent` of the same items."""

    def __init__(self) -> None:
        self._clusters: list[list[float]] = []
        self._pending: list[list[float]] = []
        self._start: tuple[datetime, str] | None = None
        self._end: tuple[datetime, str] | None = None

    def add(self, bbox: list[float], interval: tuple[str, str]) -> None:
        """Count one item's 2D ``bbox`` and (start, end) ``interval`` in."""
        self._pending.append(bbox)
        start, end = parse_time(interval[0]), parse_time(interval[1])
        if self._start is None or start < self._start[0]:
            self._start = (start, interval[0])
        if self._end is None or end > self._end[0]:
            self._end = (end, interval[1])
        if len(self._pending) >= _FOLD_EVERY:
            self._fold()

    def _fold(self) -> None:
        if self._pending:
            self._clusters = clusters(self._clusters + self._pending, limit=sys.maxsize)
            self._pending = []

    def boxes(self) -> list[list[float]]:
        """The clusters of the boxes seen so far (their union is the boxes' union)."""
        self._fold()
        return [list(b) for b in self._clusters]

    def interval(self) -> tuple[str, str] | None:
        """(earliest start, latest end) as written by the items, None if none."""
        if self._start is None or self._end is None:
            return None
        return self._start[1], self._end[1]

    def extent(self) -> dict:
        """The exact extent of the items seen (``documents.exact_extent``)."""
        interval = self.interval()
        if interval is None:
            return docs.exact_extent([])
        return docs.exact_extent(self.stand_ins())

    def stand_ins(self) -> list[dict]:
        """A few item-like documents (one per cluster, each with the whole
        interval) whose exact extent is the exact extent of every item seen:
        what a walk hands :meth:`Committer.recompute_extent` instead of every item."""
        interval = self.interval()
        if interval is None:
            return []
        return [
            {
                "id": f"cluster-{n}",
                "bbox": box,
                "properties": {"start_datetime": interval[0], "end_datetime": interval[1]},
            }
            for n, box in enumerate(self.boxes())
        ]


@dataclass
class AuditReport:
    """What :func:`audit` found. Per-item state is not kept (bounded memory)
    unless ``audit(keep_items=True)``: ``items`` then holds every linked item;
    otherwise only the items a finding names (being removed, an asset gone
    or unchecked, a duplicate id), which the repairs act on."""

    problems: list[Problem] = field(default_factory=list)
    #: key -> type of every catalog and collection reached from the root (items
    #: are counted in ``item_count``, not listed)
    reached: dict[str, str] = field(default_factory=dict)
    items: dict[str, ItemInfo] = field(default_factory=dict)
    #: collection key -> extent as stored
    extents: dict[str, dict] = field(default_factory=dict)
    collection_ids: dict[str, str] = field(default_factory=dict)
    #: orphan document key -> its parsed content (None if unreadable)
    orphans: dict[str, dict | None] = field(default_factory=dict)
    #: keys of the collections whose document records no layout (written
    #: before layouts were recorded; ``reconcile --fix`` records it)
    unrecorded_layout: list[str] = field(default_factory=list)
    #: collection key -> the layout its document records (collections
    #: without a usable record are absent)
    layouts: dict[str, Layout] = field(default_factory=dict)
    #: collection key -> {asset key: href} of its ``collection-mirror`` assets
    mirror_assets: dict[str, dict[str, str]] = field(default_factory=dict)
    #: collection key -> the mirror base keys of the partitions holding its
    #: linked items (:func:`~producer.catalog.mirrorlinks.mirror_key`: one per
    #: partition, so bounded by the partitions, not the items)
    mirror_files: dict[str, set[str]] = field(default_factory=dict)
    #: collection key -> the base keys of :attr:`mirror_files` whose asset
    #: the collection does not carry, though it carries others (``search``
    #: reads only linked files, so it misses their items): ``unlinked-mirror``
    unlinked_mirrors: dict[str, list[str]] = field(default_factory=dict)
    #: collection key -> (its managed summaries as stored, the tally of its items)
    summaries: dict[str, tuple[dict, Tally]] = field(default_factory=dict)
    #: keys of the pending group-commit intents (``<collection>/_intents/...``)
    intents: list[str] = field(default_factory=list)
    #: keys of the rendered thumbnails (``<c>/.../<id>/<id>.<8 hex>.png``) in
    #: a collection's folder that no item document links, linked or not
    unlinked_thumbnails: list[str] = field(default_factory=list)

    #: keys of the group-commit leaders' leases (``<collection>/_intents/leader.lease``,
    #: ``ack="durable"``): no problem, live or expired; ``reconcile --fix``
    #: deletes an expired one
    leases: list[str] = field(default_factory=list)
    #: collection key -> the exact extent of its linked (usable) items, as tallied
    footprints: dict[str, ExtentTally] = field(default_factory=dict)
    #: collection key -> for its linked items, the sets of layouts their keys
    #: may follow (:func:`~producer.catalog.layout.layouts_of_item`: a few
    #: distinct sets, not one per item)
    item_layouts: dict[str, set[frozenset[Layout]]] = field(default_factory=dict)
    #: linked items visited (with a usable footprint)
    item_count: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def items_of(self, collection_key: str) -> list[ItemInfo]:
        """The kept items of a collection (every one only with ``keep_items``)."""
        return [i for i in self.items.values() if i.collection_key == collection_key]

    def exact_extent(self, collection_key: str) -> dict:
        """The exact extent of the linked items of a collection."""
        tally = self.footprints.get(collection_key)
        return tally.extent() if tally is not None else docs.exact_extent([])


def _check_intents(store: Store, report: AuditReport) -> set[tuple[str, str]]:
    """A ``stale-intent`` warning for each intent older than
    :data:`~producer.catalog.intents.INTENT_TTL` or unreadable (one GET each;
    a fresh one belongs to a writer at work). Returns the (collection id,
    item id) pairs the intents younger than
    :data:`~producer.catalog.intents.INTENT_FRESH` carry: items a leader or
    the next writer is bound to link."""
    now = datetime.now(UTC)
    fresh: set[tuple[str, str]] = set()
    for key in report.intents:
        try:
            data, _ = store.get(key)
        except NotFound:
            continue  # applied and deleted since the listing
        written = intents.written_at(data)
        intent = intents.parse(data, key)
        if intent is None:
            message = "not a group-commit intent this version can apply"
        elif written is not None and (now - written).total_seconds() > intents.INTENT_TTL:
            message = f"pending since {format_time(written)}: its writer died before applying it"
        else:
            if intent.age(now) <= intents.INTENT_FRESH:  # older: only a reconcile links its items
                fresh.update((intent.collection, str(item.get("id"))) for item in intent.items)
            continue
        report.problems.append(
            Problem("stale-intent", key, message + f"; {REPAIR} deletes it (and links its items)")
        )
    return fresh


def read_doc(store: Store, key: str) -> dict:
    """The document at ``key``; an item's relative asset hrefs resolved
    (:func:`producer.hrefs.absolute_assets`), so reconcile compares, checks
    and publishes absolute ones."""
    data, _ = store.get(key)
    return absolute_assets(docs.loads(data, key), document_url(store.url, key))


#: a document to visit: (key, expected types, key of the collection it
#: belongs to, key of the document that links it, the link's rel and href)
_Visit = tuple[str, tuple[str, ...], str | None, str | None, str, str]

#: the document types a catalog holds (a JSON file of another kind at a key
#: where no catalog document goes is a product's sidecar, not an orphan)
_STAC_TYPES = ("Catalog", "Collection", "Feature")

#: listed keys hashed per batch when finding orphans
_LIST_BATCH = 65536


class _Walk:
    """The state of one :func:`audit` walk that is not part of its report.

    Per linked item only two 64-bit hashes are kept (of its key, and of its
    collection and id: orphans and duplicate ids are found from them after
    the walk), and per listed document one hash: 24 bytes per item in all.
    A hash collision could hide an orphan or a duplicate id (a chance of
    about n²/2⁶⁴: 5·10⁻⁸ for a million items)."""

    def __init__(
        self,
        store: Store,
        validator: Validator | None,
        check_assets: bool,
        storage_options: dict | None,
        keep_items: bool,
        on_item: Callable[[ItemInfo], None] | None,
    ) -> None:
        self.store = store
        self.validator = validator
        self.check_assets = check_assets
        self.storage_options = storage_options
        self.keep_items = keep_items
        self.on_item = on_item
        self.item_keys = array("q")  # hash of each tallied item's key (in step with item_ids)
        self.reached_items = array("q")  # hash of each item document visited, tallied or not
        self.item_ids = array("q")  # hash of (collection key, item id), in step
        self.listed = array("q")  # hash of each document key listed before the walk
        self.thumbnails = array("q")  # hash of each rendered thumbnail's key listed before the walk
        self.linked_thumbnails = array("q")  # hash of each thumbnail key an item read links
        self.unreachable: dict[str, str] = {}  # for the asset checks
        self.outside: dict[str, int] = {}  # collection key -> items outside its stored extent
        self.unfindable: dict[str, int] = {}  # collection key -> linked items no verb finds by id
        self.stored: dict[str, tuple[list[float], list] | None] = {}  # usable stored extents
        self.exists: dict[str, bool | None] = {}  # non-child link targets checked
        #: partition catalog key -> the key of the document linking it (one
        #: entry per partition: months and splits, not items)
        self.partitions: dict[str, str] = {}
        self.filled: set[str] = set()  # partition catalogs holding an item link
        #: linking document key -> its dangling-link findings, checked against
        #: that document read again once the walk is over (:func:`_drop_gone_links`)
        self.dangling: dict[str, list[Problem]] = {}


def audit(
    store: Store,
    validator: Validator,
    *,
    check_assets: bool = False,
    storage_options: dict | None = None,
    schemas: bool = True,
    keep_items: bool = True,
    on_item: Callable[[ItemInfo], None] | None = None,
) -> AuditReport:
    """Check the catalog under ``store``; returns every problem found. Writes nothing.

    The tree is walked depth first, one partition after the other: at most
    one partition's item links are pending and one item document is held at
    a time; extents, summaries and asset checks are tallied as items come.
    ``keep_items``: keep an :class:`ItemInfo` of every linked item in
    ``report.items`` (O(items) memory; otherwise only those a finding names).
    ``on_item``: called with each linked item's :class:`ItemInfo` as it is
    visited (an item linked from two documents is seen twice)."""
    report = AuditReport()
    walk = _Walk(store, validator if schemas else None, check_assets, storage_options, keep_items, on_item)
    root_listed = False
    for key in store.list(""):
        if is_intent_key(key):
            report.intents.append(key)
        elif is_lease_key(key):
            report.leases.append(key)
        elif is_document_key(key):
            walk.listed.append(hash(key))
            root_listed = root_listed or key == ROOT_KEY
        elif is_thumbnail_key(key):
            walk.thumbnails.append(hash(key))
    report.intents.sort()
    pending = _check_intents(store, report)
    if not root_listed:
        unreached_keys = sorted(_unreached_keys(store, walk))
        roots = _nested_roots(
            {k: (_read_or_none(store, k), None) for k in unreached_keys if k.endswith(ROOT_KEY)}, store.url
        )
        below = [document_url(store.url, key[: -len(ROOT_KEY)].rstrip("/")) for key in roots]
        report.problems.append(
            Problem(
                "missing-root",
                ROOT_KEY,
                f"no root catalog.json ({REPAIR} creates it and links the collections)"
                + (
                    f"; catalogs of their own lie below it, at {', '.join(below)}: if one of them is the catalog "
                    "meant, give its URL"
                    if below
                    else ""
                ),
            )
        )
        for key in unreached_keys:
            if any(key.startswith(root[: -len(ROOT_KEY)]) for root in roots):
                continue  # another catalog's: not an orphan of this one
            report.orphans[key] = None
            report.problems.append(Problem("orphan", key, "not reachable: there is no root"))
        for key, url in zip(roots, below):
            report.problems.append(_nested_problem(key, url))
        return report

    stack: list[_Visit] = [(ROOT_KEY, ("Catalog", "Collection"), None, None, "", "")]
    while stack:
        key, expect, coll_key, parent_key, rel, href = stack.pop()
        if expect != ("Feature",) and key in report.reached:
            continue
        doc = _visit(walk, report, key, expect, coll_key, parent_key, rel, href)
        # an item's own links (e.g. one item linking another, or itself) are not
        # followed: only catalogs and collections link the tree, and items are
        # not remembered as reached, so following them could walk a cycle forever
        if doc is not None and doc.get("type") != "Feature":
            if doc.get("type") == "Collection":
                coll_key = key
            # reversed: the first link is visited first, each child to its end
            stack.extend(reversed(_follow_links(walk, report, key, doc, coll_key)))

    _drop_gone_links(walk, report)
    unreached: dict[str, tuple[dict | None, StoreError | None]] = {}
    for key in sorted(_unreached_keys(store, walk, set(report.reached))):
        unread: StoreError | None = None
        try:
            found: dict | None = read_doc(store, key)
        except NotFound:
            continue  # deleted since the listing (a removal finished meanwhile): no orphan
        except StoreError as exc:
            found, unread = None, exc
        except ProducerError:
            found = None
        if not is_catalog_document_key(key) and (found is None or found.get("type") not in _STAC_TYPES):
            continue  # a JSON file that is no STAC document where none goes: a product's sidecar
        unreached[key] = (found, unread)
        _note_thumbnail(walk, key, found)  # an orphan item's PNG is its own: linked with it
    for nested in _nested_roots(unreached, store.url):
        folder = nested[: -len(ROOT_KEY)]
        for key in [k for k in unreached if k.startswith(folder)]:
            del unreached[key]
        report.problems.append(_nested_problem(nested, document_url(store.url, folder.rstrip("/"))))
    linked_now = _linked_since(store, report, unreached)
    for key, (found, unread) in unreached.items():
        if key in linked_now:
            continue  # a writer linked it after the walk passed its parent: no orphan
        report.orphans[key] = found
        if unread is not None:
            # could not check is never "found": say why, so a rerun is the fix
            report.problems.append(
                Problem(
                    "orphan",
                    key,
                    f"no document links it, and it could not be read ({unread}): "
                    "run again once storage answers",
                )
            )
            continue
        if (
            found is not None
            and found.get("type") == "Feature"
            and below_collection(key)
            and (collection_of(key), str(found.get("id"))) in pending
            and removal_started(found) is None
        ):
            # an ack="durable" register returned with its change stored in a
            # fresh intent: its leader links it within moments
            report.problems.append(_pending_problem(key))
            continue
        report.problems.append(_orphan_problem(key, found, report.layouts))

    _check_unlinked_thumbnails(store, walk, report)
    _check_duplicate_ids(store, walk, report)
    _check_empty_partitions(walk, report)
    _check_unfindable_count(walk, report)
    _check_extents(walk, report)
    for coll_key, (stored, tally) in report.summaries.items():
        why = tally.uncovered(stored)  # values of removed items stay by design (no O(N) remove)
        if why is not None:
            report.problems.append(Problem("stale-summary", coll_key, f"{why} ({REPAIR} recomputes them)"))
    _check_unlinked_mirrors(report)
    if check_assets:
        _check_mirror_assets(store, report, storage_options)
    return report


def _note_thumbnail(walk: _Walk, key: str, doc: dict | None) -> None:
    """Count the rendered thumbnail the item document ``doc`` at ``key``
    links (if any) as linked. Nothing to do (not even a look at the assets)
    when the listing held no thumbnail."""
    if walk.thumbnails and isinstance(doc, dict) and doc.get("type") == "Feature":
        linked = rendered_thumbnail(key, doc, walk.store.url)
        if linked is not None:
            walk.linked_thumbnails.append(hash(linked))


def _check_unlinked_thumbnails(store: Store, walk: _Walk, report: AuditReport) -> None:
    """An ``unlinked-thumbnail`` warning for each rendered thumbnail in a
    collection's folder that no item document links, linked or orphan: a
    register killed between writing the PNG and its item, or the preview of
    a product a ``replace`` put another one in place of. Matched by hash: one
    more listing only when some listed PNG is unlinked (none for a catalog
    without thumbnails, or whose thumbnails are all linked)."""
    if not walk.thumbnails:
        return
    import numpy as np  # noqa: PLC0415 (lazy, as in _unreached_keys)

    listed = np.unique(np.frombuffer(walk.thumbnails, dtype=np.int64))
    linked = (
        np.frombuffer(walk.linked_thumbnails, dtype=np.int64)
        if walk.linked_thumbnails
        else np.empty(0, np.int64)
    )
    missing = np.setdiff1d(listed, linked)
    if not len(missing):
        return
    folders = tuple(key.rsplit("/", 1)[0] + "/" for key in report.collection_ids)
    wanted = set(missing.tolist())
    found = sorted(
        key
        for key in store.list("")
        if is_thumbnail_key(key) and hash(key) in wanted and key.startswith(folders)
    )
    report.unlinked_thumbnails = found
    for key in found:
        report.problems.append(
            Problem(
                "unlinked-thumbnail",
                key,
                "a thumbnail no item links (its register was killed before writing the item, or a replace "
                f"gave the item another product): {REPAIR} deletes it once it is an hour old (a register "
                "writes the PNG before its item, so a younger one may be one at work)",
            )
        )


def _check_unlinked_mirrors(report: AuditReport) -> None:
    """An ``unlinked-mirror`` warning per collection that links mirror files
    as assets but not the file of every partition holding its linked items
    (a register killed between its partition writes and the collection's
    compare-and-swap that adds the asset): ``search`` reads only the linked
    files, so it misses those items. A collection linking no mirror file at
    all (written before the mirror) is left alone: ``search`` then finds the
    files beside the partitions. Pure (from the walk): no read."""
    for coll_key, files in sorted(report.mirror_files.items()):
        linked = set(linked_mirror_keys(coll_key, {"assets": _mirror_asset_docs(report, coll_key)}))
        if not linked:
            continue
        unlinked = sorted(files - linked)
        if not unlinked:
            continue
        report.unlinked_mirrors[coll_key] = unlinked
        report.problems.append(
            Problem(
                "unlinked-mirror",
                coll_key,
                f"the collection does not link the mirror file of {len(unlinked)} partition(s) holding its "
                f"items ({', '.join(unlinked[:5])}{', ...' if len(unlinked) > 5 else ''}), so search misses "
                f"their items ({REPAIR} links them)",
            )
        )


def _mirror_asset_docs(report: AuditReport, coll_key: str) -> dict[str, dict]:
    """The ``collection-mirror`` assets the walk noted of a collection, as asset dicts."""
    return {
        name: {"href": href, "roles": [MIRROR_ROLE]}
        for name, href in report.mirror_assets.get(coll_key, {}).items()
    }


def _read_or_none(store: Store, key: str) -> dict | None:
    """The document at ``key``, or None when it cannot be read as one."""
    try:
        return read_doc(store, key)
    except ProducerError:
        return None


def _nested_problem(key: str, url: str) -> Problem:
    """The ``nested-catalog`` warning of the root ``key`` of another catalog, at ``url``."""
    return Problem(
        "nested-catalog",
        key,
        "the root of another catalog (its root link names itself), in a folder of this one: not "
        f"this catalog's, so neither checked nor repaired here; validate or reconcile it as {url}",
    )


def _nested_roots(unreached: Mapping[str, tuple[dict | None, StoreError | None]], url: str) -> list[str]:
    """The keys among ``unreached`` of the roots of other catalogs: a
    ``.../catalog.json`` whose ``rel=root`` link names itself (a partition
    catalog's names this catalog's root, at ``url``, relative or absolute),
    outermost first; nothing below one of them is listed again."""
    roots: list[str] = []
    for key in sorted(unreached, key=lambda k: (k.count("/"), k)):
        if any(key.startswith(r[: -len(ROOT_KEY)]) for r in roots):
            continue
        if docs.is_other_root(key, unreached[key][0], url):
            roots.append(key)
    return roots


def _unreached_keys(store: Store, walk: _Walk, reached: set[str] | None = None) -> list[str]:
    """The document keys listed before the walk that it did not reach: one
    more listing, matched by hash, only when the hashes say there are some."""
    import numpy as np  # noqa: PLC0415 (lazy: only a walk needs it)

    listed = np.unique(np.frombuffer(walk.listed, dtype=np.int64)) if walk.listed else np.empty(0, np.int64)
    seen = [hash(k) for k in reached or ()]
    if walk.reached_items:
        seen_arr = np.concatenate(
            [np.frombuffer(walk.reached_items, dtype=np.int64), np.array(seen, np.int64)]
        )
    else:
        seen_arr = np.array(seen, np.int64)
    missing = np.setdiff1d(listed, seen_arr, assume_unique=False)
    if not len(missing):
        return []
    out: list[str] = []
    batch: list[str] = []

    def flush() -> None:
        hashes = np.array([hash(k) for k in batch], np.int64)
        out.extend(k for k, hit in zip(batch, np.isin(hashes, missing)) if hit)
        batch.clear()

    for key in store.list(""):
        if is_document_key(key) and not is_intent_key(key):
            batch.append(key)
            if len(batch) >= _LIST_BATCH:
                flush()
    if batch:
        flush()
    return out


def _visit(
    walk: _Walk,
    report: AuditReport,
    key: str,
    expect: tuple[str, ...],
    coll_key: str | None,
    parent_key: str | None,
    rel: str,
    href: str,
) -> dict | None:
    """Read and check one linked document into ``report`` (mutated); the
    document if its links are to be followed, else None. A link to a missing
    document is reported on the document that holds it (``dangling-link``)."""
    try:
        data, _ = walk.store.get(key)
    except NotFound:
        if parent_key is None:
            report.reached[key] = "?"
            report.problems.append(Problem("unreadable", key, f"{key!r} not found"))
        else:
            problem = Problem(
                "dangling-link",
                parent_key,
                f"{rel} link {href} points at a missing document ({REPAIR} drops the link)",
                key,
            )
            report.problems.append(problem)
            walk.dangling.setdefault(parent_key, []).append(problem)
        return None
    except CatalogError as exc:
        report.problems.append(Problem("malformed", key, str(exc)))
        return None
    try:
        doc = absolute_assets(docs.loads(data, key), document_url(walk.store.url, key))
    except CatalogError as exc:
        report.reached[key] = "?"
        report.problems.append(Problem("unreadable", key, str(exc)))
        return None
    kind = doc.get("type")
    if kind != "Feature" or expect != ("Feature",):
        report.reached[key] = str(kind)
    if kind not in expect:
        report.problems.append(
            Problem("wrong-type", key, f"linked as {' or '.join(expect)} but has type {kind!r}")
        )
        return None
    if walk.validator is not None:
        for message in walk.validator.errors(doc):
            report.problems.append(Problem("schema", key, message))
    if kind in ("Catalog", "Collection"):
        for message in docs.parent_problems(doc, collection_id=folder_collection_id(key)):
            report.problems.append(Problem("malformed", key, message))
    if kind == "Collection":
        _note_collection(walk, report, key, doc)
    if kind == "Catalog" and coll_key is not None and parent_key is not None:
        walk.partitions[key] = parent_key
        if item_link_count(doc):
            walk.filled.add(key)
    if kind == "Feature":
        walk.reached_items.append(hash(key))  # linked, even when it cannot be tallied
        _note_thumbnail(walk, key, doc)
        if coll_key is not None and key.startswith(coll_key.rsplit("/", 1)[0] + "/"):
            report.mirror_files.setdefault(coll_key, set()).add(mirror_key(key))
        _note_item(walk, report, key, doc, coll_key, parent_key)
        if coll_key in report.summaries:
            report.summaries[coll_key][1].add(doc)
    return doc


def _linked_since(
    store: Store, report: AuditReport, unreached: dict[str, tuple[dict | None, StoreError | None]]
) -> set[str]:
    """The keys of ``unreached`` (documents listed but not reached: orphans
    so far) that are linked now: the document their ``parent`` link names
    links them (read again: one GET per parent), and that parent was reached
    by the walk or is itself linked now (a new period's partitions, linked
    bottom-up). A register that links its item, or a new partition, after
    the walk read the parent is at work, not leaving an orphan: reported, a
    check racing ingestion would fail for a catalog that has none. Its
    extent and summaries were not tallied (at worst a ``stale-*`` warning)."""
    memo: dict[str, bool] = {}
    links_of: dict[str, set[str] | None] = {}

    def links(parent: str) -> set[str] | None:
        if parent not in links_of:
            try:
                doc = docs.loads(store.get(parent)[0], parent)
                raw = doc.get("links")
                links_of[parent] = {
                    target
                    for link in (raw if isinstance(raw, list) else [])
                    if isinstance(link, dict) and link.get("rel") in docs.CHILD_RELS
                    for target in [resolve_href(parent, str(link.get("href", "")))]
                    if target is not None
                }
            except (ProducerError, OSError):
                links_of[parent] = None
        return links_of[parent]

    def linked(key: str, depth: int = 0) -> bool:
        if key in memo:
            return memo[key]
        memo[key] = False  # a cycle of parent links is no link
        found, unread = unreached[key]
        parent = _parent_key(key, found) if unread is None else None
        if parent is None or depth > 16:
            return False
        if parent in report.reached:
            above = True
        elif parent in unreached:
            above = linked(parent, depth + 1)
        else:
            above = False
        memo[key] = above and key in (links(parent) or set())
        return memo[key]

    return {key for key in unreached if linked(key)}


def _parent_key(key: str, doc: dict | None) -> str | None:
    """The document key a STAC document's ``parent`` link names, if any."""
    if not isinstance(doc, dict) or doc.get("type") not in _STAC_TYPES:
        return None
    for link in doc.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "parent":
            return resolve_href(key, str(link.get("href", "")))
    return None


def _drop_gone_links(walk: _Walk, report: AuditReport) -> None:
    """Drop the ``dangling-link`` findings of the walk whose link is gone
    from its document as stored now (read again: one GET per document
    holding such links, after the walk, so after every miss it explains).
    A ``remove`` running while the walk passes unlinks its item and then
    deletes it: the link the walk read is gone by then, and a dangling link
    reported for it would fail a check of a catalog that never had one. A
    document that cannot be read again is taken to still link them (the
    findings stand); one deleted since is gone with its links (a partition
    of a finished move)."""
    gone: set[int] = set()
    for parent_key, problems in walk.dangling.items():
        links = _child_links(walk.store, parent_key)
        if links is not None:
            gone.update(id(p) for p in problems if p.target not in links)
    walk.dangling.clear()
    if gone:
        report.problems[:] = [p for p in report.problems if id(p) not in gone]


def _child_links(store: Store, parent_key: str) -> set[str] | None:
    """The keys the document at ``parent_key`` links as children now (read
    again); empty when it is gone, None when it cannot be read or has no
    list of links."""
    try:
        doc = docs.loads(store.get(parent_key)[0], parent_key)
    except NotFound:
        return set()
    except (ProducerError, OSError):
        return None
    links = doc.get("links")
    if not isinstance(links, list):
        return None
    return {
        target
        for link in links
        if isinstance(link, dict) and link.get("rel") in docs.CHILD_RELS
        for target in [resolve_href(parent_key, str(link.get("href", "")))]
        if target is not None
    }


def _note_collection(walk: _Walk, report: AuditReport, key: str, doc: dict) -> None:
    """Record a collection's stored extent, id, summaries, layout and mirror assets."""
    extent = doc.get("extent", {})
    report.extents[key] = extent
    report.collection_ids[key] = str(doc.get("id"))
    report.summaries[key] = (stored_summaries(doc), Tally())
    report.footprints[key] = ExtentTally()
    walk.stored[key] = None
    if docs.extent_problem(extent) is None:
        walk.stored[key] = (box2d(extent["spatial"]["bbox"][0]), extent["temporal"]["interval"][0])
    if LAYOUT_FIELD not in doc:
        report.unrecorded_layout.append(key)
    elif layout_record_problem(doc) is None:
        report.layouts[key] = recorded_layout(doc, key) or Layout()  # with its max_links
    mirrors = {
        str(name): str(asset["href"])
        for name, asset in (doc.get("assets") or {}).items()
        if isinstance(asset, dict)
        and isinstance(asset.get("href"), str)
        and MIRROR_ROLE in (asset.get("roles") or [])
    }
    if mirrors:
        report.mirror_assets[key] = mirrors


def _target_exists(walk: _Walk, report: AuditReport, target: str) -> bool | None:
    """Whether a ``root``/``parent``/``collection`` link target exists: True,
    False, or None when it is not a document (a directory: reported as
    ``malformed`` into ``report``). Remembered per target (they are the few
    documents above the items)."""
    if target in report.reached:
        return True
    if target not in walk.exists:
        if len(walk.exists) > 4096:
            walk.exists.clear()
        try:
            walk.store.get(target)
            walk.exists[target] = True
        except CatalogError as exc:
            report.problems.append(Problem("malformed", target, str(exc)))
            walk.exists[target] = None
        except (NotFound, ProducerError):
            walk.exists[target] = False
    return walk.exists[target]


def _follow_links(
    walk: _Walk, report: AuditReport, key: str, doc: dict, coll_key: str | None
) -> list[_Visit]:
    """Check the links of the document at ``key`` (duplicate and dangling
    ones into ``report``, mutated); return the documents it links down to
    (their existence is checked when they are visited)."""
    out: list[_Visit] = []
    seen_links: set[tuple[str, str]] = set()
    for link in doc.get("links", []):
        rel, href = link.get("rel"), link.get("href", "")
        if rel not in ("child", "item", "root", "parent", "collection"):
            continue
        target = resolve_href(key, href)
        if target is None:
            continue  # absolute links point outside the catalog: not ours to check
        if rel in docs.CHILD_RELS:
            if (rel, target) in seen_links:
                report.problems.append(
                    Problem(
                        "duplicate-link",
                        key,
                        f"links {href} ({rel}) more than once ({REPAIR} drops the copies)",
                        target,
                    )
                )
                continue
            seen_links.add((rel, target))
            expect = ("Catalog", "Collection") if rel == "child" else ("Feature",)
            out.append((target, expect, coll_key, key, str(rel), str(href)))
            continue
        exists = _target_exists(walk, report, target)
        if exists is False:
            report.problems.append(
                Problem(
                    "dangling-link",
                    key,
                    f"{rel} link {href} points at a missing document ({REPAIR} drops the link)",
                    target,
                )
            )
    return out


def _footprint(doc: dict) -> tuple[list[float], tuple[str, str]] | None:
    """An item's (2D bbox, interval), or None if either is unusable."""
    raw = doc.get("bbox")
    if not isinstance(raw, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in raw
    ):
        return None
    try:
        interval = item_interval(doc)
        bbox = box2d(raw)
        parse_time(interval[0]), parse_time(interval[1])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return bbox, interval


def usable_items(pairs: Iterable[tuple[str, dict]]) -> list[dict]:
    """The item documents of ``(key, doc)`` pairs whose bbox and datetime can
    enter an extent (the others are reported by the schema check)."""
    return [doc for _, doc in pairs if _footprint(doc) is not None]


def _asset_hrefs(doc: dict) -> tuple[dict[str, str], tuple[str, ...]]:
    """``({asset key: href}, keys of the Zarr stores among them)`` of an
    item document: a Zarr store is an asset whose media type names Zarr
    (``application/vnd+zarr`` as written by register) or whose href ends in
    ``.zarr``."""
    assets: dict[str, str] = {}
    stores: list[str] = []
    for name, a in (doc.get("assets") or {}).items():
        if isinstance(a, dict) and isinstance(a.get("href"), str):
            assets[str(name)] = a["href"]
            media = a.get("type")
            path = urlsplit(a["href"]).path.rstrip("/").lower()
            if (isinstance(media, str) and "zarr" in media.lower()) or path.endswith(".zarr"):
                stores.append(str(name))
    return assets, tuple(stores)


def _note_item(
    walk: _Walk, report: AuditReport, key: str, doc: dict, coll_key: str | None, parent_key: str | None
) -> None:
    """Tally one linked item into ``report`` (mutated): its footprint into
    its collection's extent, its layout, its findings (collection mismatch,
    interrupted removal, outside the stored extent, assets); its
    :class:`ItemInfo` is kept only with ``keep_items`` or a finding that
    names it."""
    footprint = _footprint(doc)
    if footprint is None:
        return  # the schema check reports it
    bbox, interval = footprint
    expected = report.collection_ids.get(coll_key or "")
    if expected is not None and doc.get("collection") not in (None, expected):
        report.problems.append(
            Problem(
                "collection-mismatch",
                key,
                f"item says collection {doc.get('collection')!r} but sits under {coll_key} ({expected!r})",
            )
        )
    assets, stores = _asset_hrefs(doc)
    removing = removal_started(doc)
    if removing is not None:
        report.problems.append(
            Problem(
                "interrupted-removal",
                key,
                f"a removal started at {removing} did not finish: the item is still linked "
                f"({REPAIR} unlinks and deletes it)",
            )
        )
    if coll_key:
        _check_findable(walk, report, key, str(doc.get("id")), coll_key)
    props = doc.get("properties") or {}
    info = ItemInfo(
        key,
        str(doc.get("id")),
        bbox,
        interval,
        coll_key,
        parent_key or "",
        assets,
        str(props.get("updated") or ""),
        removing is not None,
        stores,
    )
    report.item_count += 1
    walk.item_keys.append(hash(key))
    walk.item_ids.append(hash((coll_key, info.id)))
    keep = walk.keep_items or info.removing
    if coll_key:
        report.footprints.setdefault(coll_key, ExtentTally()).add(bbox, interval)
        report.item_layouts.setdefault(coll_key, set()).add(layouts_of_item(key))
        stored = walk.stored.get(coll_key)
        if stored is not None and not _inside(stored, bbox, interval) and walk.outside.get(coll_key, 0) < 20:
            # the collection was read before this item's partition: a register
            # may have linked it since, and widened the extent after its link
            stored = _reread_extent(walk, report, coll_key) or stored
        if stored is not None and not _inside(stored, bbox, interval):
            walk.outside[coll_key] = walk.outside.get(coll_key, 0) + 1
            if walk.outside[coll_key] <= 20:
                report.problems.append(
                    Problem(
                        "extent",
                        coll_key,
                        f"extent does not contain item {info.id} ({key}; {REPAIR} recomputes the extent)",
                    )
                )
    if walk.check_assets and not info.removing:
        keep = _check_item_assets(walk, report, info) or keep
    if keep:
        report.items[key] = info
    if walk.on_item is not None:
        walk.on_item(info)


def _inside(stored: tuple[list[float], list], bbox: list[float], interval: tuple[str, str]) -> bool:
    """Whether a stored (2D bbox, interval) extent contains an item's footprint."""
    return bbox_contains(stored[0], bbox) and interval_contains(stored[1], interval)


def _reread_extent(walk: _Walk, report: AuditReport, coll_key: str) -> tuple[list[float], list] | None:
    """The usable extent of the collection at ``coll_key`` as stored now (one
    GET), noted into ``walk`` and ``report`` in place of the one read when the
    walk entered the collection; None (nothing changed) if it cannot be read
    or is not usable. A ``register`` links its item into a partition before it
    widens the collection's extent, so an item the walk meets outside the
    extent it read may be one linked since, inside the extent as it is now."""
    try:
        doc = docs.loads(walk.store.get(coll_key)[0], coll_key)
    except (ProducerError, OSError):
        return None
    extent = doc.get("extent") if doc.get("type") == "Collection" else None
    if not isinstance(extent, dict) or docs.extent_problem(extent) is not None:
        return None
    report.extents[coll_key] = extent
    walk.stored[coll_key] = (box2d(extent["spatial"]["bbox"][0]), extent["temporal"]["interval"][0])
    return walk.stored[coll_key]


def _check_empty_partitions(walk: _Walk, report: AuditReport) -> None:
    """An ``empty-partition`` warning for each partition catalog that links
    no item and has none below it (the topmost of such a subtree only):
    left by removals and moves. Valid STAC; kept on purpose (see
    docs/RELIABILITY.md). From what the walk noted per partition: no I/O."""
    nonempty: set[str] = set()
    for key in walk.filled:
        while key in walk.partitions and key not in nonempty:
            nonempty.add(key)
            key = walk.partitions[key]
    empty = [key for key in walk.partitions if key not in nonempty]
    for key in sorted(empty):
        if walk.partitions[key] in walk.partitions and walk.partitions[key] not in nonempty:
            continue  # its parent is reported for the whole empty subtree
        report.problems.append(
            Problem(
                "empty-partition",
                key,
                "links no item, nor does any partition below it (its items were removed or "
                "moved to other periods): valid STAC, kept linked on purpose, and its period's "
                f"next item goes there; {REPAIR} leaves it, since unlinking a partition a "
                "registration may be linking an item into at that moment could hide that item",
            )
        )


#: unfindable items named one by one per collection; the rest are counted
#: (a catalog another tool wrote in its own layout has every item so)
UNFINDABLE_NAMED = 20


def _check_findable(walk: _Walk, report: AuditReport, key: str, item_id: str, coll_key: str) -> None:
    """An ``unfindable-item`` warning when the verbs would not find the
    linked item at ``key`` by its id: its folder and file do not name it,
    or its folders are not the recorded layout's (another tool's layout, a
    layout record edited by hand). Valid STAC, but ``remove`` would say
    ``absent`` and a registration of its product would write a second item.
    The first :data:`UNFINDABLE_NAMED` of a collection are named, the others
    counted (:func:`_check_unfindable_count`)."""
    layout = report.layouts.get(coll_key)
    named = key.split("/")[-2:] == [item_id, f"{item_id}.json"]
    if named and (layout is None or item_follows(layout, key)):
        return
    walk.unfindable[coll_key] = walk.unfindable.get(coll_key, 0) + 1
    if walk.unfindable[coll_key] > UNFINDABLE_NAMED:
        return
    where = (
        f"its key is not where {layout.describe()} puts items"
        if named and layout is not None
        else "its key does not name its id"
    )
    period = "<period>/" if layout is not None and layout.partition else ""
    report.problems.append(
        Problem(
            "unfindable-item",
            key,
            f"linked, but {where}: the verbs look item {item_id!r} up at "
            f"{coll_key.rsplit('/', 1)[0]}/{period}{item_id}/{item_id}.json, so remove would not find it and "
            f"a registration of its product would write a second item; to bring it in, register its "
            f"product again, then {REPAIR} keeps that item and removes this one",
        )
    )


def _check_unfindable_count(walk: _Walk, report: AuditReport) -> None:
    """After the walk: one ``unfindable-item`` warning per collection counting
    the unfindable items beyond the :data:`UNFINDABLE_NAMED` named."""
    for coll_key, count in walk.unfindable.items():
        if count > UNFINDABLE_NAMED:
            report.problems.append(
                Problem(
                    "unfindable-item",
                    coll_key,
                    f"... and {count - UNFINDABLE_NAMED} more linked items of this collection that the verbs "
                    "cannot find by their id (the same cause and way in as those named)",
                )
            )


def removal_started(doc: dict | None) -> str | None:
    """The removal marker of an item document (when ``remove`` started), or None."""
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        return None
    props = doc.get("properties")
    if not isinstance(props, dict) or docs.REMOVING not in props:
        return None
    return str(props[docs.REMOVING])


def _pending_problem(key: str) -> Problem:
    """An item a durable register wrote and its leader has yet to link: a
    ``link-pending`` warning (a normal state for moments), not an orphan."""
    return Problem(
        "link-pending",
        key,
        "not linked yet: a register with ack durable stored its change, and a leader links it "
        f"within moments (if that leader died: the next register of the collection, or {REPAIR})",
    )


def _orphan_problem(key: str, doc: dict | None, layouts: dict[str, Layout] | None = None) -> Problem:
    """An unlinked document: an ``orphan`` error, unless it is an item whose
    removal was interrupted after the unlink (a warning: readers no longer
    reach it, and ``reconcile --fix`` deletes it), or an item whose key
    follows another layout than its collection records (``misplaced``: an
    error ``reconcile --fix`` leaves alone, since linking it would mix two
    layouts in one collection)."""
    removing = removal_started(doc)
    if removing is not None:
        return Problem(
            "interrupted-removal",
            key,
            f"a removal started at {removing} did not finish: the item is unlinked "
            f"but not deleted ({REPAIR} deletes it)",
        )
    if doc is not None and doc.get("type") == "Feature" and below_collection(key):
        coll_id = collection_of(key)
        item_id = doc.get("id")
        if isinstance(item_id, str) and item_id and key.split("/")[-2:] != [item_id, f"{item_id}.json"]:
            # a copy or a renamed folder: every verb finds an item at
            # .../<id>/<id>.json, so linked here it could be neither removed
            # nor updated, and a registration of its product would add another
            return Problem(
                "misplaced",
                key,
                f"no document links it, and its key does not name its id {item_id!r} (an item of "
                f"collection {coll_id!r} lies at .../{item_id}/{item_id}.json): reconcile does not "
                "link it; delete it if it is a copy, else register its product again (it then lands "
                "where the collection's layout puts it), then delete this document",
            )
        recorded = (layouts or {}).get(collection_key(coll_id))
        # a key below split partitions is deeper than its scheme: it follows
        # the recorded layout when its first folders are the scheme's and the
        # deeper ones split folders (reconcile --fix links it there)
        if recorded is not None and not item_follows(recorded, key):
            found = sorted(layout.describe() for layout in layouts_of_item(key))
            follows = (
                f"its key follows the {' or '.join(found)} layout"
                if found
                else "its key's folders follow no layout this tool makes"
            )
            return Problem(
                "misplaced",
                key,
                f"no document links it, and {follows}, while collection {coll_id!r} records "
                f"{recorded.describe()}: reconcile does not link it; register its product again "
                "(it then lands where the collection's layout puts it), then delete this document",
            )
    if doc is None:  # not readable as a document: nothing to link
        return Problem("orphan", key, "no document links it")
    return Problem("orphan", key, f"no document links it ({REPAIR} links it)")


def _check_duplicate_ids(store: Store, walk: _Walk, report: AuditReport) -> None:
    """Two linked items of one collection with the same id (e.g. one product
    registered under two periods of a partitioned collection): an error.
    Found from the walk's hashes; only when there are some (or an orphan item
    has a linked item's id) are the collections walked again to name them
    (their items kept in ``report``)."""
    import numpy as np  # noqa: PLC0415 (lazy: only a walk needs it)

    if not walk.item_ids:
        return
    pairs = np.unique(
        np.stack([np.frombuffer(walk.item_ids, np.int64), np.frombuffer(walk.item_keys, np.int64)], axis=1),
        axis=0,
    )
    ids, counts = np.unique(pairs[:, 0], return_counts=True)
    doubled = {int(h) for h in ids[counts > 1]}
    # an orphan item with the id of a linked one (a move killed before the
    # unlink): the linked one is kept too, for reconcile to choose between them
    orphan_ids = [
        hash((collection_key(collection_of(key)), str(doc.get("id"))))
        for key, doc in report.orphans.items()
        if isinstance(doc, dict) and doc.get("type") == "Feature" and below_collection(key)
    ]
    if orphan_ids:
        hits = np.isin(np.array(orphan_ids, np.int64), ids)
        doubled.update(h for h, hit in zip(orphan_ids, hits) if hit)
    if not doubled:
        return
    for coll_key in sorted(report.collection_ids):
        for key, doc in collection_items(store, coll_key):
            footprint = _footprint(doc)
            if footprint is None or doc.get("type") != "Feature" or key in report.items:
                continue
            if hash((coll_key, str(doc.get("id")))) in doubled:
                props = doc.get("properties") or {}
                assets, stores = _asset_hrefs(doc)
                report.items[key] = ItemInfo(
                    key,
                    str(doc.get("id")),
                    footprint[0],
                    footprint[1],
                    coll_key,
                    "",
                    assets,
                    str(props.get("updated") or ""),
                    removal_started(doc) is not None,
                    stores,
                )
    seen: dict[tuple[str | None, str], str] = {}
    for key in sorted(report.items):
        info = report.items[key]
        first = seen.setdefault((info.collection_key, info.id), key)
        if first != key:
            report.problems.append(
                Problem(
                    "duplicate-id",
                    key,
                    f"item id {info.id!r} is also used by {first} in the same "
                    f"collection; {REPAIR} keeps the most recently updated one",
                    first,
                )
            )


def _check_extents(walk: _Walk, report: AuditReport) -> None:
    """After the walk: a collection with no usable extent, the count of items
    outside beyond the 20 named, and a ``stale-extent`` when the stored
    extent covers every item but is not their exact union."""
    for coll_key, extent in report.extents.items():
        problem = docs.extent_problem(extent)
        if problem is not None:
            report.problems.append(Problem("extent", coll_key, f"collection has no usable extent: {problem}"))
            continue
        outside = walk.outside.get(coll_key, 0)
        if outside > 20:
            report.problems.append(
                Problem("extent", coll_key, f"... and {outside - 20} more items outside the extent")
            )
        exact = report.exact_extent(coll_key)
        if not outside and norm_extent(exact) != norm_extent(extent):
            report.problems.append(
                Problem(
                    "stale-extent",
                    coll_key,
                    "extent is not the exact union of its items: larger than it, or its sub-boxes "
                    f"(clusters) differ ({REPAIR} recomputes it)",
                )
            )


def norm_extent(extent: dict) -> tuple:
    """Comparable form of an extent: every bbox (overall and clusters) and the
    first interval, rounded; raises for a malformed extent."""
    bboxes = tuple(tuple(round(v, 7) for v in box2d(b)) for b in extent["spatial"]["bbox"])
    if len(bboxes) == 2 and bboxes[0] == bboxes[1]:
        bboxes = bboxes[:1]  # one cluster written as a sub-box too: the same extent
    interval = tuple(extent["temporal"]["interval"][0])
    return bboxes, interval


#: names of exception classes (anywhere in the class hierarchy) that mean the
#: storage endpoint itself could not be reached: builtins, botocore, aiohttp
_UNREACHABLE = frozenset(
    {
        "ConnectionError",
        "TimeoutError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
    }
)
#: schemes whose hrefs get no catalog storage options (they are not of that file system)
_PLAIN_SCHEMES = ("", "file", "local", "http", "https")


def _why(exc: BaseException) -> str:
    text = redact(" ".join(str(exc).split())) or "no message"
    return f"{type(exc).__name__}: {text[:300]}"


def _asset_exists(
    href: str, storage_options: dict | None, unreachable: dict[str, str] | None = None
) -> tuple[bool | None, str]:
    """Whether the asset at ``href`` exists, as one of three answers.

    ``(True, "")`` it exists; ``(False, "")`` only on a definite not-found
    (:class:`FileNotFoundError`, e.g. S3 404); ``(None, why)`` when it could
    not be checked: connection error, timeout, 403, 5xx, a bad URL. An unknown
    is never to be treated as missing. Nothing is written. The file system's
    listing cache is dropped for ``href`` first, so a stale listing never
    answers "missing".

    ``unreachable`` (mutated): file system token -> why its endpoint could not
    be reached; once an endpoint failed, further hrefs on it are answered
    unknown without trying (each try can take seconds of retries).
    """
    from fsspec.core import url_to_fs  # noqa: PLC0415 (cold start: fsspec ~80 ms, only for asset checks)

    scheme = protocol(href)
    if scheme not in _PLAIN_SCHEMES and has_credentials(href):
        # the storage client would take them for the bucket's name, and its
        # error prints them (botocore: Invalid bucket name "KEY:SECRET@bucket")
        return None, (
            "its URL carries credentials (KEY:SECRET@ before the bucket), which are not sent to the "
            "storage: write the href without them; the catalog's storage options give the credentials"
        )
    options = {} if scheme in _PLAIN_SCHEMES else dict(storage_options or {})
    if scheme in ("http", "https"):  # a silent server: GDAL_HTTP_TIMEOUT, not aiohttp's 5 minutes
        options = with_http_timeout(options)
    try:
        fs, path = url_to_fs(href, **options)
    except Exception as exc:
        return None, _why(exc)
    token = str(getattr(fs, "_fs_token", id(fs)))
    if scheme in ("http", "https"):  # one file system serves every server: per server
        token += " " + urlsplit(href).netloc
    if unreachable is not None and token in unreachable:
        return None, f"not tried: {unreachable[token]}"
    try:
        fs.invalidate_cache(path)
        fs.info(path)
        return True, ""
    except FileNotFoundError as exc:
        # fsspec's http file system answers FileNotFoundError for ANY failed
        # HEAD and GET (refused, timed out, 5xx): only a 404/410 is missing
        cause = exc.__cause__ if scheme in ("http", "https") else None
        if cause is None or getattr(cause, "status", None) in (404, 410):
            why = _bucket_unknown(fs, path, unreachable)
            if not why and cause is not None and urlsplit(href).path.endswith("/"):
                why = (
                    "a folder's URL, which a server without folder listings (a bucket "
                    "over https) answers 404 even when the folder holds files"
                )
            return (None, why) if why else (False, "")
        failure: BaseException = cause
    except Exception as exc:
        failure = exc
    why = _why(failure)
    if unreachable is not None and _UNREACHABLE & {c.__name__ for c in type(failure).__mro__}:
        unreachable[token] = f"the storage endpoint could not be reached ({why})"
        return None, unreachable[token]
    return None, why


#: whether an object exists (:func:`_asset_exists`), for the other verbs
asset_exists = _asset_exists


#: a Zarr store's root metadata objects, one of which every store has: v3,
#: v2 consolidated, v2 group, v2 array
ZARR_METADATA = ("zarr.json", ".zmetadata", ".zgroup", ".zarray")


def _store_exists(
    href: str, storage_options: dict | None, unreachable: dict[str, str] | None = None
) -> tuple[bool | None, str]:
    """:func:`_asset_exists` for a Zarr store (a folder) at ``href``: it
    exists if one of its root metadata objects (:data:`ZARR_METADATA`) or
    ``href`` itself does; it is missing only when all of them are definitely
    not found. Its folder URL alone is never trusted: over http(s) a bucket
    has no folder object and answers 404 for a live store."""
    parts = urlsplit(href)
    why = ""
    for name in ZARR_METADATA:
        if protocol(href) in ("http", "https"):  # a query string stays at the end
            target = parts._replace(path=parts.path.rstrip("/") + "/" + name).geturl()
        else:  # a path or an object key: '?' and '#' are characters of its name
            target = href.rstrip("/") + "/" + name
        exists, why = _asset_exists(target, storage_options, unreachable)
        if exists is not False:
            return exists, why
    return _asset_exists(href, storage_options, unreachable)


#: object stores whose first path segment is a bucket (container)
_BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


def _bucket_unknown(fs, path: str, checked: dict[str, str] | None) -> str:
    """After a not-found on an object-store ``path``: why that answer cannot
    be trusted ("" if it can). A bucket that does not exist (a typo, or
    another endpoint than the data's) or cannot be looked at makes every
    object in it "not found", which says nothing about the object. One check
    per bucket; ``checked`` (mutated) remembers the answers."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if not _BUCKET_PROTOCOLS & set(protocols):
        return ""
    bucket = path.split("/", 1)[0]
    key = f"bucket:{protocols[0]}://{bucket}"
    if checked is not None and key in checked:
        return checked[key]
    try:
        fs.invalidate_cache(bucket)
        fs.info(bucket)
        why = ""
    except FileNotFoundError:
        why = (
            f"its bucket {bucket!r} does not exist at this endpoint, so the object's absence "
            "says nothing: check the bucket name and the endpoint/credentials of the data"
        )
    except Exception as exc:
        why = f"could not check that its bucket {bucket!r} exists ({_why(exc)})"
    if checked is not None:
        checked[key] = why
    return why


def _check_item_assets(walk: _Walk, report: AuditReport, info: ItemInfo) -> bool:
    """Add a ``missing-asset`` problem per asset of ``info`` that is
    definitely gone, an ``asset-unchecked`` one per asset whose existence
    could not be checked; True if it added any. Writes nothing."""
    found = False
    for name, href in info.assets.items():
        check = _store_exists if name in info.stores else _asset_exists
        exists, why = check(href, walk.storage_options, walk.unreachable)
        if exists is False:
            report.problems.append(
                Problem("missing-asset", info.key, f"asset {name!r} at {href} does not exist")
            )
            found = True
        elif exists is None:
            report.problems.append(
                Problem(
                    "asset-unchecked",
                    info.key,
                    f"asset {name!r} at {href} could not be checked ({why}); the item is left "
                    "as it is: make the data reachable (endpoint, credentials, permissions) "
                    "and run again",
                )
            )
            found = True
    return found


def _check_mirror_assets(store: Store, report: AuditReport, storage_options: dict | None) -> None:
    """Add a ``missing-asset`` problem (on the collection) per
    ``collection-mirror`` asset whose file is gone, ``asset-unchecked`` where
    it could not be checked. A relative href is resolved against the
    collection document and looked up in ``store``. Writes nothing."""
    unreachable: dict[str, str] = {}
    for coll_key, assets in sorted(report.mirror_assets.items()):
        for name, href in sorted(assets.items()):
            target = resolve_href(coll_key, href)
            why = ""
            if target is not None:
                try:
                    exists: bool | None = store.exists(target)
                except (ProducerError, OSError) as exc:
                    exists, why = None, f"{type(exc).__name__}: {exc}"
            elif "://" not in href and not href.startswith("/"):
                exists, why = None, "a relative href that leaves the catalog root"
            else:
                exists, why = _asset_exists(href, storage_options, unreachable)
            if exists is False:
                report.problems.append(
                    Problem(
                        "missing-asset",
                        coll_key,
                        f"mirror asset {name!r} at {href} does not exist: {REPAIR} writes it",
                    )
                )
            elif exists is None:
                report.problems.append(
                    Problem(
                        "asset-unchecked",
                        coll_key,
                        f"mirror asset {name!r} at {href} could not be checked ({why})",
                    )
                )


def collection_items(store: Store, collection_key: str) -> Iterator[tuple[str, dict]]:
    """Yield ``(key, item)`` for every item linked under a collection (via
    partitions), depth first: one partition's item links pending at a time,
    one item document held at a time (an item linked twice is yielded twice)."""
    stack = [collection_key]
    seen: set[str] = set()  # catalogs only: bounded by the partitions
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        try:
            doc = read_doc(store, key)
        except NotFound:
            continue
        if doc.get("type") == "Feature":
            yield key, doc
            continue
        seen.add(key)
        below = []
        for link in doc.get("links", []):
            if link.get("rel") in docs.CHILD_RELS:
                target = resolve_href(key, link.get("href", ""))
                if target is not None:
                    below.append(target)
        stack.extend(reversed(below))
