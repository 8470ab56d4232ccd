"""Repairing a catalog: what :func:`producer.audit.audit` finds, fixed.

:func:`reconcile` audits the catalog (read-only), then with ``fix=True``
repairs it step by step, each step a single write or a compare-and-swap, so
a crash after any write leaves a state the next run completes: dangling and
duplicate links, interrupted removals and duplicate ids, items whose assets
are gone, orphans, products no item describes (registered through
:mod:`producer.ingest`), the id index, the layout record of collections
written before layouts were recorded, and extents.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from producer import thumbnail
from producer.audit import (
    REPAIR,
    REPAIR_DEAD,
    AuditReport,
    ExtentTally,
    ItemInfo,
    Problem,
    asset_exists,
    audit,
    collection_items,
    norm_extent,
    read_doc,
    removal_started,
    usable_items,
)
from producer.catalog import documents as docs
from producer.catalog.extent import box2d, format_time, item_interval
from producer.catalog.layout import (
    LAYOUT_FIELD,
    ROOT_KEY,
    Layout,
    below_collection,
    collection_key,
    collection_of,
    is_collection_key,
    is_partitioned_item_key,
    layout_of_item,
    parent_of_folder_document,
    partition_label,
    relative_href,
    resolve_href,
)
from producer.catalog.mirrorlinks import link_bases
from producer.catalog.summaries import Tally
from producer.changes import Change, ChangeKind, Sink
from producer.commit import CLAIM_TTL, Committer
from producer.errors import (
    CatalogError,
    Hint,
    InputError,
    NotFound,
    PreconditionFailed,
    ProducerError,
    python_spelling,
)
from producer.extract.assets import resolve_location, rewrite_href
from producer.grouping import drop_assets, is_data, is_group_item
from producer.hrefs import rendered_thumbnail
from producer.ingest import collection_layout, register_products
from producer.options import RegisterOptions, parse_rewrites, resolve_options
from producer.redact import redact
from producer.results import ProblemKind, RegisterResult
from producer.sinks import Outbox, check_sinks, deliver, remedy_text, removed
from producer.sinks.outbox import outbox_id
from producer.sources import (
    GLOB_CHARS,
    STORE_SUFFIXES,
    distinct,
    expand_paths,
    is_remote,
    no_products_found,
    ordinal,
    path_strings,
)
from producer.store.base import Store, modified
from producer.timestamps import parse_time
from producer.urls import is_local, local_path, product_storage_options, protocol
from producer.validate import Validator

if TYPE_CHECKING:
    from producer.sinks.pgstac import PgstacSink


@dataclass
class ReconcileReport:
    """Findings per kind before any fix, what was fixed, what failed, and what is left.

    ``failed``: per kind, how many could not be handled (``asset-unchecked``:
    assets whose existence could not be checked, their items left unchanged;
    ``missing-product``: products that failed to register). Those also appear
    in ``remaining`` as errors (``asset-unchecked``, ``register-failed``).

    ``dry_run``: a ``fix`` run that wrote nothing; ``fixed`` is empty, and
    ``would_fix`` counts per kind the problems found that a ``fix`` run would
    resolve (judged from this audit: a racing writer may change it), with
    the missing products that would register (extracted and validated, not
    written: ``registered``). Nothing was repaired, so ``remaining`` holds
    every problem found.
    """

    found: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    would_fix: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)
    registered: list[RegisterResult] = field(default_factory=list)  # of missing products
    failed: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, int, int]]:
        kinds = sorted(set(self.found) | set(self.fixed))
        return [(k, self.found.get(k, 0), self.fixed.get(k, 0)) for k in kinds]


def _bump(counter: dict[str, int], kind: str, n: int = 1) -> None:
    counter[kind] = counter.get(kind, 0) + n


def _unchanged_since(updated: str, was_marked: bool) -> Callable[[dict], str | None]:
    """A ``keep_if`` for :meth:`Committer.remove_item` acting on an audit
    snapshot: remove the item only if it is still as the audit saw it (still
    marked, or the same ``updated``); one registered again since is kept."""

    def keep_if(doc: dict) -> str | None:
        props = doc.get("properties") or {}
        if props.get(docs.REMOVING):
            return None
        if was_marked:
            return "registered again since its removal started"
        if str(props.get("updated") or "") != updated:
            return "updated since the audit"
        return None

    return keep_if


def _finish_removals(
    committer: Committer, first: AuditReport, report: ReconcileReport, changes: list[Change]
) -> None:
    """Finish every removal a crash or a racing verb left half done, and drop
    all but the most recently updated item of each id within a collection.

    Items (linked or orphan) carrying :data:`docs.REMOVING` are removed with
    :meth:`Committer.remove_item`. Duplicates are removed the same way; the
    kept one's id index entry is pointed at it (partitioned collections).
    Each removal is judged on the document as it is then (an item registered
    again since the audit is kept); later steps re-read what they link.
    Writes: per removed item the removal's writes and the DELETE of its
    thumbnail; per duplicate group one index entry at most.
    """
    # (collection id, item id) -> [(updated, key, marked)]
    by_id: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for info in first.items.values():
        by_id.setdefault((collection_of(info.key), info.id), []).append(
            (info.updated, info.key, info.removing)
        )
    # a misplaced orphan is never linked: were it the newest of its id, the
    # item it stands beside would be removed for a document no verb finds
    misplaced = {p.key for p in first.problems if p.kind == "misplaced"}
    for key, doc in first.orphans.items():
        if doc is None or doc.get("type") != "Feature" or not below_collection(key) or key in misplaced:
            continue
        props = doc.get("properties") or {}
        by_id.setdefault((collection_of(key), str(doc.get("id"))), []).append(
            (str(props.get("updated") or ""), key, bool(props.get(docs.REMOVING)))
        )
    for (coll_id, item_id), entries in sorted(by_id.items()):
        live = sorted((e for e in entries if not e[2]), reverse=True)
        doomed = [e[1] for e in entries if e[2]] + [e[1] for e in live[1:]]
        snapshot = {e[1]: e for e in entries}
        for key in doomed:
            outcome = committer.remove_item(coll_id, key, keep_if=_unchanged_since(*snapshot[key][::2]))
            if outcome.action == "kept":
                continue  # registered again since the audit: that register wins
            if outcome.action == "removed":
                thumbnail.delete(
                    committer.store, key, outcome.item
                )  # beside the removed document, not the kept one's
                changes.append(removed(coll_id, item_id, key, outcome.item))
            _bump(report.fixed, "duplicate-id" if key in {e[1] for e in live} else "interrupted-removal")
        if live[1:] and is_partitioned_item_key(live[0][1]):
            committer.write_index(coll_id, item_id, live[0][1])


class _Wanted:
    """The products under ``data`` (listed before the audit), struck off as
    the audit's walk meets an item describing them (:meth:`strike` is its
    ``on_item`` hook): memory in the products listed, not in the items.

    A product struck off keeps which item of which collection described it
    first (one entry per product), so a second item of that collection
    describing it (the product registered under two ids, e.g. with another
    id template) is found as the walk meets it: :attr:`duplicates`."""

    def __init__(self, data: str | list[str], storage_options: dict | None, options: RegisterOptions) -> None:
        if isinstance(data, list | tuple):
            empty = [n for n, p in enumerate(data, 1) if isinstance(p, str) and not p.strip()]
            if empty:
                # refused, as a typo in a path is: skipped, it could hide the
                # prefix that was meant (an unset variable) behind "0 missing"
                raise InputError(
                    f"data: its {ordinal(empty[0])} entry of the {len(data)} given is empty: a products' "
                    "folder, prefix or glob was meant there (a variable left unset?); give it, or leave that "
                    "entry out. Nothing was checked or written"
                )
        elif isinstance(data, str) and not data.strip():
            raise InputError(
                "data is empty: a products' folder, prefix or glob was meant (a variable left unset?); "
                "give it, or leave data out. Nothing was checked or written"
            )
        entries = path_strings(data)  # an empty path is refused as such, not as a missing file ''
        if not entries:  # an empty list compares nothing: "0 missing" would pass for a complete catalog
            raise InputError(
                "data names no product path: give the folder, prefix or glob of the products to "
                "compare, or leave data out; nothing was checked or written"
            )
        for given in entries:
            # a mistyped local path is no product: else it is reported as one
            # that no item describes, and a fix fails to register it
            path = str(given)
            typo = is_local(path) and not any(c in path for c in GLOB_CHARS)
            if typo and not os.path.exists(local_path(path)):
                raise InputError(
                    f"{path}: no such file or folder: check the path of the products to compare; "
                    "nothing was checked or written"
                )
        rewrites = parse_rewrites(options.href_rewrites)
        self.by_href: dict[str, list[str]] = {}
        #: product href -> {collection key: (key, id, products) of the first item
        #: met describing it}; products: a hash of the set of listed products
        #: that item describes (one number, not the set)
        self.described: dict[str, dict[str | None, tuple[str, str, int]]] = {}
        #: a ``duplicate-product`` warning per further item describing a product
        self.duplicates: list[Problem] = []
        self.order: list[str] = []
        found: list[str] = []
        for given in entries:
            listed = expand_paths(given, storage_options)
            if not listed:
                # a mistyped glob or prefix compares nothing: "0 missing" would
                # pass for a complete catalog, night after night
                fact, example = no_products_found([str(given)], storage_options=storage_options)
                way = f"; check the path of the products to compare, or match them with a glob: {example!r}"
                raise InputError(f"{fact}{way if example else ''}; nothing was checked or written")
            path = str(given)
            if listed == [path] and is_remote(path) and protocol(path) not in ("http", "https"):
                self._check_object(path, storage_options)
            found.extend(listed)
        for path in distinct(found):
            self.by_href.setdefault(rewrite_href(resolve_location(path), rewrites), []).append(path)
            self.order.append(path)

    @staticmethod
    def _check_object(url: str, storage_options: dict | None) -> None:
        """Raise :class:`InputError` when no object is at ``url``, a remote
        path taken as one product (a prefix without its ``/``, a key): the
        remote twin of a local path that does not exist. One HEAD; a store
        that cannot tell leaves it to the registration to report."""
        if any(c in url for c in GLOB_CHARS) or url.rstrip("/").lower().endswith(STORE_SUFFIXES):
            return
        exists, _ = asset_exists(url, product_storage_options(storage_options))
        if exists is False:
            raise InputError(
                f"{redact(url)}: no such object or prefix: check the path of the products to compare "
                "(a prefix ends in /); nothing was checked or written"
            )

    def strike(self, info: ItemInfo) -> None:
        hrefs = list(dict.fromkeys(info.assets.values()))
        # the listed products this item describes: two items describing the
        # same ones are one registered twice; items sharing only some (a land
        # mask mapped into each day's multi-asset item) are not
        products = hash(frozenset(h for h in hrefs if h in self.by_href or h in self.described))
        named: set[str] = set()  # the items this one was found a duplicate of (once each)
        for href in hrefs:
            paths = self.by_href.pop(href, None)
            if info.removing:
                continue  # on its way out: no second description of anything
            if paths is not None:
                self.described[href] = {info.collection_key: (info.key, info.id, products)}
                continue
            seen = self.described.get(href)
            if seen is None:
                continue  # no product listed under data
            first = seen.setdefault(info.collection_key, (info.key, info.id, products))
            if (
                first[0] != info.key
                and first[1] != info.id
                and first[2] == products
                and first[0] not in named
            ):
                # another item (one linked twice is met twice; one id twice is a
                # duplicate-id, which a fix resolves) of the same products
                named.add(first[0])
                self.duplicates.append(_duplicate_product(href, first[:2], info))

    def missing(self, first: AuditReport) -> list[str]:
        """Products no item describes: items reached from the root count, and
        so do orphan items (reconcile links them) unless their removal was
        started."""
        for doc in first.orphans.values():
            if isinstance(doc, dict) and doc.get("type") == "Feature" and removal_started(doc) is None:
                for a in (doc.get("assets") or {}).values():
                    if isinstance(a, dict) and isinstance(a.get("href"), str):
                        self.by_href.pop(a["href"], None)
        left = {path for paths in self.by_href.values() for path in paths}
        return [path for path in self.order if path in left]


def _duplicate_product(href: str, first: tuple[str, str], info: ItemInfo) -> Problem:
    """A ``duplicate-product`` warning: item ``info`` describes the product at
    ``href`` as the item ``first`` (key, id) of the same collection does."""
    coll_id = collection_of(info.key) if info.collection_key else None
    where = f" of collection {coll_id!r}" if coll_id else ""
    return Problem(
        "duplicate-product",
        info.key,
        f"item {info.id!r} and item {first[1]!r} ({first[0]}){where} both describe the product "
        f"{redact(href)}: it was registered under two ids (e.g. with two id templates), so search "
        f"returns it twice; remove the item whose id you do not want (remove {info.id!r} or "
        f"{first[1]!r} from that collection): reconcile cannot choose for you",
        first[0],
    )


def _repair_links(committer: Committer, store: Store, first: AuditReport, report: ReconcileReport) -> None:
    """Drop dangling and duplicate links: one compare-and-swap per document."""
    bad_links: dict[str, list[Problem]] = {}
    for p in first.problems:
        if p.kind in ("dangling-link", "duplicate-link"):
            bad_links.setdefault(p.key, []).append(p)
    for key, problems in bad_links.items():

        def mutate(doc: dict | None, key: str = key) -> dict | None:
            if doc is None:
                return None
            seen: set[tuple[str, str]] = set()
            kept = []
            for link in doc["links"]:
                rel = link.get("rel")
                target = resolve_href(key, link.get("href", ""))
                if target is not None and rel in docs.CHILD_RELS + ("root", "parent", "collection"):
                    if rel in docs.CHILD_RELS and (rel, target) in seen:
                        continue
                    if not store.exists(target):
                        continue
                    seen.add((rel, target))
                kept.append(link)
            if len(kept) == len(doc["links"]):
                return None
            doc["links"] = kept
            return doc

        if committer.cas(key, mutate, expect=("Catalog", "Collection", "Feature")).changed:
            for p in problems:
                _bump(report.fixed, p.kind)


def _missing_assets(first: AuditReport) -> dict[str, dict[str, str]]:
    """Item key -> {asset key: href} of its assets the audit found definitely
    gone (its ``missing-asset`` problems, matched against the audited
    assets). Pure."""
    out: dict[str, dict[str, str]] = {}
    for p in first.problems:
        info = first.items.get(p.key)
        if p.kind != "missing-asset" or info is None:
            continue
        for name, href in info.assets.items():
            if p.message.startswith(f"asset {name!r} at {href} "):
                out.setdefault(p.key, {})[name] = href
    return out


def _handle_dead_items(
    committer: Committer, first: AuditReport, report: ReconcileReport, dead: str, changes: list[Change]
) -> list[Problem]:
    """Items with an asset that is definitely gone and none that could not be
    checked. A single-product item: ``flag`` sets ``deprecated: true`` (one
    compare-and-swap); ``remove`` marks, unlinks, then deletes the item (and
    its thumbnail), so a crash in between is finished by the next
    ``reconcile --fix``.

    A multi-asset item (:func:`producer.grouping.is_group_item`) loses only
    what is gone: ``remove`` drops the gone assets under compare-and-swap on
    the item (geometry, bbox, datetime and projection recomputed, an
    ``updated`` change for the sinks), and the item goes by the removal
    protocol (a ``removed`` change, its thumbnail deleted) only when no data
    asset is left. ``flag`` deprecates it only when a data asset is gone; a
    gone sidecar (metadata, overview, documentation) leaves it as it is and
    is returned as a ``missing-asset`` warning for ``remaining``. An item
    changed since the audit is left for the next run. Writes: one
    compare-and-swap per item, or the removal's writes."""
    unchecked = {p.key for p in first.problems if p.kind == "asset-unchecked"}
    # an item with another asset that could not be checked is left alone too;
    # items only: a collection's missing mirror file is the mirror's to repair (mirror-stale)
    missing = _missing_assets(first)
    dead_items = sorted(
        {p.key for p in first.problems if p.kind == "missing-asset" and p.key in first.items} - unchecked
    )
    left: list[Problem] = []
    for key in dead_items:
        info = first.items[key]
        coll_id = collection_of(key)
        gone = missing.get(key, {})
        if dead == "remove":
            kind, doc = _drop_gone_assets(committer, key, info.updated, gone)
            if kind == "dropped":
                assert doc is not None
                changes.append(Change(ChangeKind.UPDATED, coll_id, info.id, key, doc))
            elif kind in ("single", "last"):
                outcome = committer.remove_item(coll_id, key, keep_if=_unchanged_since(info.updated, False))
                if outcome.action == "kept":
                    continue
                if outcome.action == "removed":
                    thumbnail.delete(
                        committer.store, key, outcome.item
                    )  # after the item: a PNG left by a crash is harmless
                    changes.append(removed(coll_id, info.id, key, outcome.item))
            else:
                continue  # gone, or changed since the audit: the next run judges it again
        else:
            state: dict[str, str] = {}

            def flag(
                doc: dict | None, gone: dict[str, str] = gone, state: dict[str, str] = state
            ) -> dict | None:
                if doc is None or doc.get("properties", {}).get("deprecated") is True:
                    return None
                if is_group_item(doc):
                    assets = doc.get("assets") or {}
                    if not any(isinstance(assets.get(k), dict) and is_data(assets[k]) for k in gone):
                        state["sidecar"] = "yes"
                        return None
                doc["properties"]["deprecated"] = True
                return doc

            flagged = committer.cas(key, flag, expect=("Feature",))
            if state.get("sidecar"):
                names = ", ".join(repr(k) for k in sorted(gone))
                left.append(
                    Problem(
                        "missing-asset",
                        key,
                        f"asset {names} (not data) is gone; the item keeps its data assets and is not "
                        f"deprecated: {REPAIR_DEAD} drops the gone asset from it",
                    )
                )
                continue
            if flagged.changed and flagged.doc is not None:
                changes.append(Change(ChangeKind.UPDATED, coll_id, info.id, key, flagged.doc))
        _bump(report.fixed, "missing-asset")
    return left


def _drop_gone_assets(
    committer: Committer, key: str, updated: str, gone: dict[str, str]
) -> tuple[str, dict | None]:
    """Drop the assets ``gone`` from the multi-asset item at ``key`` under
    compare-and-swap, if it is still as the audit saw it (same ``updated``,
    not being removed). Returns what happened and the written document:
    ``("dropped", doc)``; ``("last", None)`` when no data asset would be left
    (nothing written: the caller removes the item); ``("single", None)`` for
    an item that is not a multi-asset one (nothing written); ``("gone" |
    "changed", None)`` when it is gone or changed since (nothing written)."""
    state = {"kind": "gone"}

    def drop(doc: dict | None) -> dict | None:
        state["kind"] = "gone"
        if doc is None:
            return None
        props = doc.get("properties") or {}
        if not is_group_item(doc):
            state["kind"] = "single"
            return None
        assets = doc.get("assets") or {}
        keys = [k for k in gone if k in assets]
        if props.get(docs.REMOVING) or str(props.get("updated") or "") != updated or not keys:
            state["kind"] = "changed"
            return None
        new = drop_assets(doc, keys)
        if new is None:
            state["kind"] = "last"
            return None
        new["properties"]["updated"] = format_time(committer.clock())
        state["kind"] = "dropped"
        return new

    outcome = committer.cas(key, drop, expect=("Feature",))
    if state["kind"] == "dropped" and not outcome.changed:
        return "changed", None
    return state["kind"], outcome.doc if state["kind"] == "dropped" else None


def _new_parent(store: Store, key: str) -> dict:
    """A new document for a missing parent at ``key`` (root, collection or
    partition catalog), built like the commit protocol builds them. A
    collection made here records no layout yet: the layout step of the same
    run records the one its items sit in."""
    if key == ROOT_KEY:
        return docs.new_root(None)
    coll_id = collection_of(key)
    if is_collection_key(key):
        return docs.new_collection(coll_id, None, Layout(), recorded=False)
    label = partition_label(coll_id, key)
    parent = parent_of_folder_document(key, store.exists)
    return docs.new_partition(key, parent, Layout(), coll_id, label)


def _link_orphan_catalog(committer: Committer, store: Store, key: str, doc: dict) -> None:
    """Link an orphan catalog or collection from the document above it. A
    missing parent (partition catalog, collection, root: left so by a crash
    between its child's creation and its own) is created and linked in turn."""
    title = doc.get("title") or doc.get("id")
    while key != ROOT_KEY:
        parent = parent_of_folder_document(key, store.exists)
        link = {"rel": "child", "href": relative_href(parent, key), "type": docs.JSON}
        if isinstance(title, str) and title:
            link["title"] = title
        fresh = _new_parent(store, parent) if not store.exists(parent) else None

        def add(d: dict | None, link: dict = link, fresh: dict | None = fresh) -> dict | None:
            if d is None:
                if fresh is None:
                    return None
                d = docs.copy_doc(fresh)
                docs.add_links(d, [link])
                return d
            return d if docs.add_links(d, [link]) else None

        expect = ("Collection",) if is_collection_key(parent) else ("Catalog", "Collection")
        outcome = committer.cas(parent, add, expect=expect)
        if not outcome.created:
            return  # it existed: linked already, or an orphan handled on its own
        key, title = parent, (outcome.doc or {}).get("title")


def _restore_root(store: Store, committer: Committer, first: AuditReport) -> bool:
    """A catalog without its root (the audit ``first`` found ``missing-root``,
    and every document an orphan): link each collection found from a new root,
    created only if none exists (as a register creates it), so the tree below
    them is reached again. Returns whether the root exists now (False: no
    collection was found, or the root was there all along)."""
    if not any(p.kind == "missing-root" for p in first.problems):
        return False
    for key in sorted(first.orphans):
        if not is_collection_key(key):
            continue
        try:
            doc = read_doc(store, key)
        except ProducerError:
            continue  # deleted meanwhile or unreadable: left to the final audit
        if doc.get("type") == "Collection":
            _link_orphan_catalog(committer, store, key, doc)
    return store.exists(ROOT_KEY)


def _link_orphans(
    store: Store, committer: Committer, first: AuditReport, report: ReconcileReport, changes: list[Change]
) -> None:
    """Link orphan items and catalogs where they sit (items through their
    partition chain, bottom-up). An orphan item is read again first: one
    deleted meanwhile is skipped, one marked for removal meanwhile deleted;
    and once more after its link (one GET): one a ``remove`` marked or
    deleted between the two is unlinked again (the removal finished).
    An item the audit found ``misplaced`` (its key follows another layout
    than its collection records) is left alone: the problem stays."""
    misplaced = {p.key for p in first.problems if p.kind == "misplaced"}
    pending = {p.key for p in first.problems if p.kind == "link-pending"}
    for key, doc in sorted(first.orphans.items()):
        if doc is None or removal_started(doc) is not None or key in misplaced:
            continue
        if doc.get("type") == "Feature" and below_collection(key):
            try:
                doc = read_doc(store, key)
            except NotFound:
                continue
            if removal_started(doc) is not None:
                outcome = committer.remove_item(collection_of(key), key)
                if outcome.action == "removed":
                    changes.append(removed(collection_of(key), str(doc.get("id")), key, outcome.item))
                _bump(report.fixed, "interrupted-removal")
                continue
            # linked through the chain its key was made with, by a committer
            # of the collection's recorded layout (its key follows it: the
            # audit found it no misplaced one), else of the layout the key shows
            layout = first.layouts.get(collection_key(collection_of(key))) or layout_of_item(key)
            linked = replace(committer, layout=layout).link_items(collection_of(key), [(key, doc)])
            if not committer.present_unmarked(key):
                # a remove ran between the read and the link (it said
                # ``removed``): finish it, so the link made here goes too
                committer.remove_item(collection_of(key), key)
                continue
            # an orphan was no part of the catalog: linked, it is a new item to
            # those following it (linked meanwhile by a register: that one said so)
            if key in linked:
                changes.append(Change(ChangeKind.CREATED, collection_of(key), str(doc.get("id")), key, doc))
            _bump(report.fixed, "link-pending" if key in pending else "orphan")
        elif doc.get("type") in ("Catalog", "Collection") and "/" in key:
            _link_orphan_catalog(committer, store, key, doc)
            _bump(report.fixed, "orphan")


class _IndexCheck:
    """The audit's ``on_item`` hook that points the id index entry of every
    linked item of a partitioned collection at that item when it is missing
    or points elsewhere (a move killed before its last write, or a catalog
    from before the index existed): one GET per such item, one write per
    entry fixed, nothing kept per item. Runs after the duplicates are
    removed (step 2), so each id has one linked item. An entry a register
    changed since it was read, or an item gone (moved) since the walk read
    it, is left as it is: one more GET per entry fixed."""

    def __init__(self, committer: Committer, report: ReconcileReport) -> None:
        self.committer = committer
        self.report = report

    def __call__(self, info: ItemInfo) -> None:
        if not is_partitioned_item_key(info.key):
            return  # flat layout: no index
        coll_id = collection_of(info.key)
        entry = self.committer.read_index(coll_id, info.id)
        if entry[0] == info.key:
            return
        # the walk read the item a while ago: a register may have moved it
        # since (old item deleted, entry pointed at the new key last). Only
        # over the entry as read, and only while the item is still there
        if not self.committer.present_unmarked(info.key):
            return
        try:
            self.committer.write_index(coll_id, info.id, info.key, entry, claim=True)
        except PreconditionFailed:
            return  # changed meanwhile by a register: it holds the right key
        _bump(self.report.fixed, "stale-index")


def _register_missing(
    store: Store,
    missing_products: list[str],
    collection: str | None,
    storage_options: dict | None,
    options: RegisterOptions,
    report: ReconcileReport,
    sinks: Sequence[Sink] = (),
    *,
    dry_run: bool = False,
) -> list[Problem]:
    """Register the products no item describes (handing them to ``sinks``);
    return a ``register-failed`` problem (an error) per product that could
    not be registered. ``dry_run``: extract and validate them only (nothing
    written, nothing handed to the sinks); those that would register count
    into ``report.would_fix``."""
    if not collection:
        raise ValueError("registering missing products needs a collection")
    report.registered = register_products(
        missing_products,
        catalog=store,
        collection=collection,
        options=replace(options, dry_run=dry_run),
        sinks=() if dry_run else sinks,
    )
    ok = sum(1 for r in report.registered if r.ok)
    _bump(report.would_fix if dry_run else report.fixed, "missing-product", ok)
    failed = [
        Problem("register-failed", redact(str(r.source)), f"not registered: {r.error}")
        for r in report.registered
        if not r.ok
    ]
    if failed:
        _bump(report.failed, "missing-product", len(failed))
    return failed


def _record_layouts(committer: Committer, linked: AuditReport, report: ReconcileReport) -> None:
    """Record in each collection written before layouts were recorded the
    layout its linked items sit in (one compare-and-swap per such collection),
    so later verbs find its items without listing it. Run after the id index
    is repaired: a collection that records a partitioned layout has every
    item in its index. A collection with no item, or with items no one
    layout places, is left unrecorded (nothing says which layout is right).
    Keys in ``<YYYY>/<MM>/`` follow a split ``year`` layout as well as
    ``year/month``: when every item's key follows both, ``year/month`` is
    recorded (it places them all without a split)."""
    for coll_key in sorted(linked.unrecorded_layout):
        kinds = linked.item_layouts.get(coll_key, set())
        common = frozenset.intersection(*kinds) if kinds else frozenset()
        if not common:
            continue
        layout = max(common, key=lambda layout: len(layout.partition or ""))

        def record(doc: dict | None, layout: Layout = layout) -> dict | None:
            if doc is None or LAYOUT_FIELD in doc:
                return None  # gone, or recorded meanwhile (by a new register)
            docs.record_layout(doc, layout)
            return doc

        if committer.cas(coll_key, record, expect=("Collection",)).changed:
            _bump(report.fixed, "unrecorded-layout")


def _link_mirrors(committer: Committer, linked: AuditReport, report: ReconcileReport) -> None:
    """Link in each collection the mirror file of every partition holding
    its items that it does not link (``unlinked-mirror``: a register killed
    between its partition writes and the collection's compare-and-swap), as
    the commit does: the base file first (create-only, empty, no pyarrow:
    kept if there), then the asset by compare-and-swap, so a crash in
    between leaves an unlinked base, never a dangling asset. The base then
    lacks the partition's items until the mirror is rebuilt (with
    ``mirror``, step 8 of this run; else ``mirror.diff`` reports it)."""
    for coll_key, keys in sorted(linked.unlinked_mirrors.items()):
        coll_id = linked.collection_ids.get(coll_key)
        if coll_id is None:
            continue
        if link_bases(committer.store, coll_id, keys, max_retries=committer.max_retries):
            _bump(report.fixed, "unlinked-mirror")


def _footprint_walk(store: Store, coll_key: str) -> list[dict]:
    """Stand-ins for the usable items linked under a collection now (a few
    item-like documents with the same exact extent, see
    :meth:`ExtentTally.stand_ins`): the walk of
    :meth:`Committer.recompute_extent`, one item document held at a time."""
    tally = ExtentTally()
    for doc in usable_items(collection_items(store, coll_key)):
        bbox, interval = box2d(doc["bbox"]), item_interval(doc)
        tally.add(bbox, interval)
    return tally.stand_ins()


def _extent_needed(exact: dict) -> Callable[[dict], bool]:
    """Whether a collection document needs its extent recomputed: a leftover
    shrink marker, or an extent other than ``exact``."""

    def needed(doc: dict) -> bool:
        if docs.SHRINK_FIELD in doc:
            return True  # a leftover marker: clear it
        current = doc.get("extent")
        try:
            return not (current and norm_extent(current) == norm_extent(exact))
        except (KeyError, IndexError, TypeError, ValueError):
            return True

    return needed


def _repair_extents(
    committer: Committer, store: Store, first: AuditReport, linked: AuditReport, report: ReconcileReport
) -> set[str]:
    """Set every collection extent to the exact union of what is now linked.

    The ``linked`` snapshot only decides which collections to recompute; the
    value comes from a walk made after a shrink marker is in place
    (:meth:`Committer.recompute_extent`), so a register racing this step is
    not left outside the extent. Writes: two compare-and-swaps per
    collection whose extent changed. Returns the collections counted fixed."""
    counted: set[str] = set()
    for coll_key in linked.extents:
        needed = _extent_needed(linked.exact_extent(coll_key))

        def walk(coll_key: str = coll_key) -> list[dict]:
            return _footprint_walk(store, coll_key)

        if committer.recompute_extent(coll_key, needed, walk):
            stale = [p for p in first.problems if p.key == coll_key and p.kind in ("stale-extent", "extent")]
            for kind in {p.kind for p in stale} or {"stale-extent"}:
                _bump(report.fixed, kind)
            counted.add(coll_key)
    return counted


def _count_resolved_extents(
    first: AuditReport, final: AuditReport, counted: set[str], report: ReconcileReport
) -> None:
    """Count as fixed the extent findings of the first audit that the run
    resolved before its extent step (a registration of missing products
    merges the extent, which makes an overall box wider than its sub-boxes
    exact), so that step wrote nothing: gone in the final audit, not yet
    counted; and the unfindable items it removed as duplicate ids. Else the
    report showed a finding neither fixed nor failed."""
    left = {(p.kind, p.key) for p in final.problems}
    for p in first.problems:
        if p.kind in ("stale-extent", "extent") and p.key not in counted and (p.kind, p.key) not in left:
            _bump(report.fixed, p.kind)
    # an unfindable item is no step's own target, but removing it as a
    # duplicate id (its product registered again where the verbs look)
    # resolves it: counted when it is gone, else "found 1, fixed 0" while
    # the item was removed
    duplicates = {p.key for p in first.problems if p.kind == "duplicate-id"}
    for p in first.problems:
        if p.kind == "unfindable-item" and p.key in duplicates and (p.kind, p.key) not in left:
            _bump(report.fixed, p.kind)


def _repair_summaries(
    committer: Committer, store: Store, linked: AuditReport, report: ReconcileReport
) -> None:
    """Set the summaries and ``item_assets`` of every collection whose stored
    ones are not what its linked items give to exactly what they give (this
    is where values of removed items go; only summaries that missed
    something count as a fixed ``stale-summary``).

    Walk, compare-and-swap the exact value in, then walk again and merge (a
    union, never a loss): a register that linked an item after the first
    walk read its parent either merged it itself after this write, or its
    link is there for the second walk. Writes: two compare-and-swaps per
    stale collection (the second writes nothing without a racer)."""
    for coll_key, (stored, tally) in linked.summaries.items():
        if tally.stale(stored) is None:
            continue  # exact already; values of removed items are dropped below
        reported = tally.uncovered(stored) is not None
        exact = Tally()
        for _, item in collection_items(store, coll_key):
            exact.add(item)

        def replace_in(doc: dict | None, tally: Tally = exact) -> dict | None:
            return doc if doc is not None and tally.replace_in(doc) else None

        outcome = committer.cas(coll_key, replace_in, expect=("Collection",))
        again = Tally()
        for _, item in collection_items(store, coll_key):
            again.add(item)

        def merge_into(doc: dict | None, tally: Tally = again) -> dict | None:
            return doc if doc is not None and tally.merge_into(doc) else None

        committer.cas(coll_key, merge_into, expect=("Collection",))
        if outcome.changed and reported:
            _bump(report.fixed, "stale-summary")


def _note_findings(
    report: ReconcileReport,
    first: AuditReport,
    wanted: _Wanted | None,
) -> tuple[list[Problem], list[str]]:
    """Count what the audit found into ``report`` (mutated) and look for
    products under ``data`` no item describes. Returns the problems nothing
    will resolve (assets that could not be checked) and the missing products."""
    report.problems = list(first.problems)
    for p in first.problems:
        _bump(report.found, p.kind)
    # could not be checked: nothing is done about them, and they stay errors
    unresolved = [p for p in first.problems if p.kind == "asset-unchecked"]
    if unresolved:
        report.failed["asset-unchecked"] = len(unresolved)
    missing: list[str] = []
    if wanted is not None:
        # warnings nothing resolves: kept in ``remaining`` after a fix
        unresolved += wanted.duplicates
        for p in wanted.duplicates:
            report.problems.append(p)
            _bump(report.found, p.kind)
        missing = wanted.missing(first)
        report.found["missing-product"] = len(missing)
        for path in missing:
            # keyed by the product's URL as shown: never its user info or signature
            report.problems.append(Problem("missing-product", redact(path), "no item describes this product"))
    return unresolved, missing


#: what a ``fix`` run resolves of every problem of the kind found: the
#: links, removals and intents it finishes, and what it recomputes exactly
#: from what is linked after the other repairs (extents, summaries)
_RESOLVED_KINDS = (
    "dangling-link",
    "duplicate-link",
    "duplicate-id",
    "interrupted-removal",
    "stale-intent",
    "extent",
    "stale-extent",
    "stale-summary",
    "mirror-stale",
    "unlinked-mirror",
    "pgstac-missing",
    "pgstac-extra",
    "pgstac-differing",
    "pgstac-collection",
)


def _would_fix(store: Store, first: AuditReport, report: ReconcileReport, dead: str) -> dict[str, int]:
    """Per kind, how many of the problems found (``report.found``, the audit
    ``first``) a ``fix`` run would resolve, judged as its steps judge them:
    orphans it would link (not misplaced, not being removed), items whose
    assets are gone (none unchecked; with ``flag``, a multi-asset item only
    when a data asset is gone: one GET each). Missing products are counted
    by :func:`_register_missing`. Writes nothing."""
    out = {kind: report.found[kind] for kind in _RESOLVED_KINDS if report.found.get(kind)}
    # an unfindable item that is also a duplicate id goes with the duplicates
    duplicates = {p.key for p in first.problems if p.kind == "duplicate-id"}
    for p in first.problems:
        if p.kind == "unfindable-item" and p.key in duplicates:
            _bump(out, p.kind)
    stale = _stale_thumbnails(store, first, delete=False)
    if stale:
        out["unlinked-thumbnail"] = stale
    if report.found.get("missing-root") and any(is_collection_key(key) for key in first.orphans):
        out["missing-root"] = 1  # linked from a new root (the orphans below it: seen by the fix run)
    misplaced = {p.key for p in first.problems if p.kind == "misplaced"}
    pending = {p.key for p in first.problems if p.kind == "link-pending"}
    for key, doc in first.orphans.items():
        if doc is None or removal_started(doc) is not None or key in misplaced:
            continue
        if (doc.get("type") == "Feature" and below_collection(key)) or (
            doc.get("type") in ("Catalog", "Collection") and "/" in key
        ):
            _bump(out, "link-pending" if key in pending else "orphan")
    unchecked = {p.key for p in first.problems if p.kind == "asset-unchecked"}
    gone = _missing_assets(first)
    dead_items = {p.key for p in first.problems if p.kind == "missing-asset" and p.key in first.items}
    for key in sorted(dead_items - unchecked):
        if dead == "flag":
            try:
                doc = read_doc(store, key)
            except NotFound:
                continue
            assets = doc.get("assets") or {}
            if is_group_item(doc) and not any(
                isinstance(assets.get(k), dict) and is_data(assets[k]) for k in gone.get(key, {})
            ):
                continue  # a gone sidecar: left as it is, a warning
        _bump(out, "missing-asset")
    return out


def _refuse_malformed(store: Store, first: AuditReport, *, sweep_temps: bool = True) -> None:
    """Before the first repair write: sweep temp files of killed writers
    (local catalogs, unless not ``sweep_temps``; O(tree), like the audit),
    and raise :class:`CatalogError` if a document this tool cannot update
    safely is present (fixing around it could drop or rewrite a collection)."""
    sweep = getattr(store, "sweep_temps", None)
    if sweep_temps and callable(sweep):
        sweep()
    malformed = [p for p in first.problems if p.kind == "malformed"]
    if malformed:
        raise CatalogError(
            "nothing was repaired, because existing documents must be fixed by hand "
            "first: " + "; ".join(f"{p.key}: {p.message}" for p in malformed)
        )


def reconcile(
    store: Store,
    validator: Validator,
    *,
    data: str | list[str] | None = None,
    fix: bool = False,
    dead: str = "flag",
    collection: str | None = None,
    check_assets: bool | None = None,
    storage_options: dict | None = None,
    options: RegisterOptions | None = None,
    max_retries: int = 25,
    sinks: Sequence[Sink] = (),
    pgstac: PgstacSink | None = None,
    mirror: bool = False,
    dry_run: bool | None = None,
) -> ReconcileReport:
    """Find orphans, dangling and duplicate links, stale extents, dead items,
    interrupted removals and unregistered products; with ``fix=True`` repair them.

    Without ``fix`` nothing is written. ``dry_run`` (default: the
    ``dry_run`` of ``options``) with ``fix``: nothing is written either (no
    repair, no registration, no temp-file sweep, nothing handed to the sinks
    or the database); the report counts in ``would_fix`` what a ``fix`` run
    would resolve, the missing products are extracted and validated as
    ``register --dry-run`` does (one that would fail is a
    ``register-failed`` error), and the checks a ``fix`` run makes before its
    first write (malformed documents, a contradicting partition, the sinks)
    raise as they would there. ``dead``: what to do with items whose
    assets are definitely gone — ``flag`` sets ``deprecated: true`` on the
    item, ``remove`` marks, unlinks and deletes it (and its thumbnail). A
    multi-asset item (``group``) loses only its gone assets with ``remove``,
    and goes with its last data asset; ``flag`` deprecates it only when a
    data asset is gone (a gone sidecar is a ``missing-asset`` warning in
    ``remaining``). An asset that could not be
    checked (unreachable endpoint, 403, 5xx, timeout) leaves its item
    untouched and is an ``asset-unchecked`` error in ``remaining``. Items
    carrying the removal marker are unlinked and deleted, never linked again.
    ``data``: product prefixes/paths to compare against the catalog; products
    no item points at are registered into ``collection`` with
    ``options`` (default: the defaults; ``storage_options`` are the data's: the
    asset checks and the listing of ``data`` use them); each one that fails is a ``register-failed`` error in
    ``remaining``. A collection written before layouts were recorded gets the
    layout its items sit in recorded (``fixed["unrecorded-layout"]``). Each
    repair is a single write or a compare-and-swap, so a crash after any
    write leaves a state the next ``fix`` run completes.

    ``sinks`` (:mod:`producer.sinks`): checked before the first repair
    write, then handed what the repairs changed (removed, flagged, linked
    orphan and newly registered items); a sink that fails is a
    ``sink-failed`` error in ``remaining``. ``pgstac``: a pgSTAC database
    compared with the static catalog (the source of truth) after the
    repairs: items missing there, extra there or differing there are
    ``pgstac-missing``/``pgstac-extra``/``pgstac-differing`` problems (and a
    collection row that differs ``pgstac-collection``); ``fix`` brings the
    database in line (:meth:`~producer.sinks.pgstac.PgstacSink.sync`). The
    database is checked first: one that cannot be reached raises its
    :class:`~producer.errors.StoreError` before anything is written.

    ``mirror``: compare each collection's stac-geoparquet mirror with its
    JSON items (:func:`producer.mirror.diff`, O(items) reads) after the
    repairs; a collection whose mirror differs is a ``mirror-stale`` warning
    (the catalog is right; only ``search`` lags), and ``fix`` rewrites the
    mirror files that differ (:func:`producer.mirror.rebuild`); one that
    could not be read to compare (a storage error) is a ``mirror-unchecked``
    error: the run did not check what it was asked to.
    """
    if dead not in ("flag", "remove"):
        raise ValueError("dead must be 'flag' or 'remove'")
    if check_assets is None:
        check_assets = data is not None
    if pgstac is not None:
        pgstac.check()
    report = ReconcileReport()
    options = resolve_options(options, storage_options)
    if dry_run is None:
        dry_run = options.dry_run
    if data is not None and collection and options.partition:
        # a partition the collection's recorded layout contradicts: refused as
        # register refuses it, before the walk (not only when a fix has
        # missing products to register, halfway through the run)
        collection_layout(store, collection, options.partition)
    wanted = _Wanted(data, storage_options, options) if data is not None else None
    first = audit(
        store,
        validator,
        check_assets=check_assets,
        storage_options=storage_options,
        keep_items=False,
        on_item=wanted.strike if wanted is not None else None,
    )
    unresolved, missing_products = _note_findings(report, first, wanted)
    if fix:
        check_sinks(sinks)
        _refuse_malformed(store, first, sweep_temps=not dry_run)
    if not fix or dry_run:
        if pgstac is not None:
            report.problems += _compare_pgstac(store, first, pgstac, report, fix=False)
        if mirror:
            report.problems += _compare_mirror(store, first, report, fix=False)
        report.remaining = list(report.problems)
        if fix:
            report.dry_run = True
            report.would_fix = _would_fix(store, first, report, dead)
            if missing_products:
                report.remaining += _register_missing(
                    store, missing_products, collection, storage_options, options, report, dry_run=True
                )
        return report

    committer = Committer(
        store, validator.check, max_retries=max_retries, relative_hrefs=not options.absolute_hrefs
    )
    changes: list[Change] = []  # what the repairs changed, in order, for the sinks
    # 1. links: dangling and duplicate
    _repair_links(committer, store, first, report)
    # 2. removals that a crash interrupted, then items whose assets are gone
    _finish_removals(committer, first, report, changes)
    unresolved += _handle_dead_items(committer, first, report, dead, changes)
    # 3. orphans: link them where they sit (a catalog that lost only its
    # root: the root first, then what is still unlinked below it)
    _link_orphans(store, committer, first, report, changes)
    if _restore_root(store, committer, first):
        second = audit(store, validator, schemas=False, keep_items=False)
        reached = len(set(first.orphans) - set(second.orphans))
        if reached:
            _bump(report.fixed, "orphan", reached)
        _link_orphans(store, committer, second, report, changes)
    # 4. products nobody registered
    if missing_products:
        unresolved += _register_missing(
            store, missing_products, collection, storage_options, options, report, sinks
        )
    # 5. from what is linked now: the id index, the layout record, extents
    # (the id index is repaired as the walk meets each item)
    linked = audit(store, validator, schemas=False, keep_items=False, on_item=_IndexCheck(committer, report))
    _record_layouts(committer, linked, report)
    _link_mirrors(committer, linked, report)
    counted = _repair_extents(committer, store, first, linked, report)
    _repair_summaries(committer, store, linked, report)
    # rendered thumbnails no item links, old enough not to be a register's at work
    deleted = _stale_thumbnails(store, first, delete=True)
    if deleted:
        _bump(report.fixed, "unlinked-thumbnail", deleted)
    # group-commit intents applied, unreadable or stale (their items were linked in 3.)
    for coll_id in sorted({collection_of(key) for key in first.intents}):
        cleared = committer.clear_intents(coll_id)
        if cleared:
            _bump(report.fixed, "stale-intent", len(cleared))
    # leaders' leases that expired (their holder died): the next writer would
    # take them over; deleted so nothing of a dead writer is left
    for key in first.leases:
        committer.clear_expired_lease(collection_of(key))
    # 6. the sinks: told what the repairs changed, with the repaired collections
    if sinks and (changes or any(outbox_id(sink) for sink in sinks)):
        unresolved += _publish(committer, sinks, changes, sorted(set(linked.collection_ids.values())))

    final = audit(store, validator, check_assets=False, keep_items=False)
    report.remaining = _under_way(store, first, final) + unresolved
    _count_resolved_extents(first, final, counted, report)
    if report.found.get("missing-root") and not any(p.kind == "missing-root" for p in final.problems):
        _bump(report.fixed, "missing-root")  # restored above, or made by the registration in 4.
    # 7. the pgSTAC database, brought in line with the repaired catalog
    if pgstac is not None:
        report.remaining += _compare_pgstac(store, final, pgstac, report, fix=True)
    # 8. the stac-geoparquet mirror, rebuilt where it differs from the repaired catalog
    if mirror:
        report.remaining += _compare_mirror(store, final, report, fix=True)
    return report


#: seconds since an item was written (its ``updated``) or marked for removal
#: during which, found unlinked or still marked by the last audit of a ``fix``
#: run that its first audit did not find so, it is a writer's work under way:
#: the commit protocol's own bound for a registration under way
#: (:data:`~producer.commit.CLAIM_TTL`)
UNDER_WAY_FOR = CLAIM_TTL


def _stale_thumbnails(store: Store, first: AuditReport, *, delete: bool) -> int:
    """How many of the unlinked thumbnails the audit ``first`` found are
    still there, older than :data:`UNDER_WAY_FOR` and still linked by no
    item (the item beside one, read again, may have linked it since: a
    register at work writes its PNG, then its item); with ``delete``, each
    such PNG is deleted. A PNG whose age the store cannot tell is left.
    One HEAD per unlinked PNG, one GET per old one (and one DELETE)."""
    now = datetime.now(UTC)
    count = 0
    for key in first.unlinked_thumbnails:
        try:
            written = modified(store, key)
        except NotFound:
            continue  # deleted since the audit
        if written is None or (now - written).total_seconds() < UNDER_WAY_FOR:
            continue
        item_key = key[: -len(".01234567.png")] + ".json"
        try:
            if rendered_thumbnail(item_key, read_doc(store, item_key), store.url) == key:
                continue
        except NotFound:
            pass
        except ProducerError:
            continue  # an item there that cannot be read: its PNG is not judged unlinked
        if delete:
            try:
                store.delete(key)
            except (NotFound, FileNotFoundError):
                continue
        count += 1
    return count


def _under_way(store: Store, first: AuditReport, final: AuditReport) -> list[Problem]:
    """The problems of ``final`` (the last audit of a ``fix`` run), each
    orphan item and interrupted removal that a writer racing the run has under
    way turned into an ``in-progress`` warning: one the ``first`` audit did
    not find (it appeared during the run) whose write or removal mark is
    younger than :data:`UNDER_WAY_FOR`, and an orphan catalog or collection
    (a new period's partition, a new collection) above such an item, and a
    duplicate id whose newer item is that young (a move, :func:`_moving`). A
    register writes its item (and new parents, bottom-up) before it links
    them and a remove marks its item before it unlinks it, so a run that
    looks between the two must not fail for it: its writer finishes it, and
    the next run finishes it if the writer died. An older one stays what it
    is (an error for an orphan); a linked marked item gone meanwhile (the
    removal finished) is dropped. One GET per linked marked item."""
    before = {(p.kind, p.key) for p in first.problems}
    now = datetime.now(UTC)
    out: list[Problem] = []
    # an orphan catalog (a new period's partitions, a new collection) left
    # for after the items: it is under way when a young item below it is
    parents: list[Problem] = []
    for p in final.problems:
        if p.kind == "duplicate-id" and (p.kind, p.key) not in before:
            out.append(_moving(store, p, now) or p)
            continue
        if p.kind not in ("orphan", "interrupted-removal") or (p.kind, p.key) in before:
            out.append(p)
            continue
        if p.kind == "orphan" and (final.orphans.get(p.key) or {}).get("type") in ("Catalog", "Collection"):
            parents.append(p)
            continue
        doc = final.orphans.get(p.key)
        if doc is None and p.kind == "interrupted-removal":  # a linked one: not kept by the audit
            try:
                doc = read_doc(store, p.key)
            except NotFound:
                continue  # deleted since: the removal finished
            except ProducerError:
                doc = None
        stamp, under_way = _young_stamp(doc, now)
        if not under_way:
            out.append(p)
        elif p.kind == "orphan":
            out.append(
                Problem(
                    "in-progress",
                    p.key,
                    f"written at {stamp}, while this run was checking, and not linked yet: a registration "
                    f"at work (it links its item after writing it); left to it, and to the next {REPAIR}, "
                    "which links the item if its writer died",
                )
            )
        else:
            out.append(
                Problem(
                    "in-progress",
                    p.key,
                    f"a removal started at {stamp}, while this run was checking, has not finished yet: "
                    f"left to it, and to the next {REPAIR}, which finishes it if its remove died",
                )
            )
    new_items = sorted(p.key for p in out if p.kind == "in-progress" and p.key in final.orphans)
    for p in parents:
        folder = p.key.rsplit("/", 1)[0] + "/"
        below = next((key for key in new_items if key.startswith(folder)), None)
        if below is None:
            out.append(p)
            continue
        out.append(
            Problem(
                "in-progress",
                p.key,
                f"created while this run was checking, above an item a registration at work is adding "
                f"({below}), and not linked yet (registrations link new partitions and collections after "
                f"their items); left to it, and to the next {REPAIR}, which links it if its writer died",
            )
        )
    return out


def _moving(store: Store, p: Problem, now: datetime) -> Problem | None:
    """A ``duplicate-id`` the last audit of a ``fix`` run found and its first
    did not, as an ``in-progress`` warning when the more recently updated of
    the two items was written less than :data:`UNDER_WAY_FOR` ago: a register
    moving an item to another period links the new item, then removes the
    old one, and a run looking in between sees both. None otherwise (also
    when either cannot be read: two GETs)."""
    stamps: dict[str, str] = {}
    for key in (p.key, p.target):
        if key is None:
            return None
        try:
            doc = read_doc(store, key)
        except ProducerError:
            return None
        props = doc.get("properties")
        updated = props.get("updated") if isinstance(props, dict) else None
        if not isinstance(updated, str):
            return None
        stamps[key] = updated
    try:
        newer = max(stamps, key=lambda key: parse_time(stamps[key]))
    except (TypeError, ValueError):
        return None
    stamp, young = _young_stamp({"type": "Feature", "properties": {"updated": stamps[newer]}}, now)
    if not young:
        return None
    older = p.key if newer != p.key else p.target
    return Problem(
        "in-progress",
        p.key,
        f"item {newer} was written at {stamp}, while this run was checking, with the id of {older}: "
        "a registration moving the item to another period (it links the new item, then removes the "
        f"old one); left to it, and to the next {REPAIR}, which keeps the most recently updated one "
        "if its writer died",
        p.target,
    )


def _young_stamp(doc: dict | None, now: datetime) -> tuple[str, bool]:
    """An item document's removal mark, else its ``updated`` time, and whether
    it is younger than :data:`UNDER_WAY_FOR` (a stamp ahead of ``now`` by
    less than that too: another machine's clock); ``("", False)`` for
    anything else."""
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        return "", False
    props = doc.get("properties")
    stamp = removal_started(doc) or (props.get("updated") if isinstance(props, dict) else None)
    if not isinstance(stamp, str):
        return "", False
    try:
        age = (now - parse_time(stamp)).total_seconds()
    except (TypeError, ValueError):
        return stamp, False
    return stamp, -UNDER_WAY_FOR < age < UNDER_WAY_FOR


def _as_repair(hint: Hint) -> str:
    """A hint as a finding writes it: a call of ``reconcile(fix=True)`` as
    :data:`~producer.audit.REPAIR` (which the CLI spells ``reconcile --fix``)."""
    if hint.verb == "reconcile" and hint.option == "fix":
        return REPAIR
    return python_spelling(hint)


def _compare_mirror(store: Store, tree: AuditReport, report: ReconcileReport, *, fix: bool) -> list[Problem]:
    """Compare the stac-geoparquet mirror of every collection of ``tree`` (an
    audit) with its JSON items (O(items) reads); count a differing collection
    into ``report.found`` as ``mirror-stale`` (and, when ``fix`` rebuilt its
    differing files, ``report.fixed``). Returns the problems left: each
    difference without ``fix``; with it, a collection whose rebuild failed
    (``mirror-failed``, an error: the run did not do its job).
    Writes (``fix``): the stale mirror files and the fragments folded."""
    # lazy: producer.mirror loads pyarrow + stac-geoparquet (1.1-1.9 s measured)
    from producer import mirror  # noqa: PLC0415

    problems: list[Problem] = []
    for coll_key, coll_id in sorted(tree.collection_ids.items()):
        try:
            if read_doc(store, coll_key).get("type") != "Collection":
                continue  # a catalog at a collection's place: the audit reports it
            found = mirror.diff(store, coll_id)
        except (ProducerError, OSError) as exc:
            # a hint to run reconcile is spelled as the audit names its repair (the CLI respells it)
            why = exc.phrased(_as_repair) if isinstance(exc, ProducerError) else str(exc)
            _bump(report.found, "mirror-unchecked")
            _bump(report.failed, "mirror-unchecked")
            problems.append(
                Problem(
                    "mirror-unchecked",
                    coll_key,
                    f"the stac-geoparquet mirror of collection {coll_id!r} could not be compared with its "
                    f"items ({why}): search may not agree with the catalog; make the catalog's storage "
                    "reachable and rerun reconcile",
                )
            )
            continue
        if found.clean:
            continue
        what = "; ".join(
            f"{name}: {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''}"
            for name, ids in (
                ("missing", found.missing),
                ("extra", found.extra),
                ("differing", found.differing),
                ("linked files absent", found.absent_files),
                ("partition files unlinked", found.unlinked_files),
                ("partitions whose mirror files do not read", found.unreadable_files),
            )
            if ids
        )
        _bump(report.found, "mirror-stale")
        message = f"the stac-geoparquet mirror of collection {coll_id!r} differs from its items ({what})"
        if not fix:
            problems.append(Problem("mirror-stale", coll_key, message + f": {REPAIR} rebuilds it"))
            continue
        try:
            mirror.rebuild(store, coll_id)
        except (ProducerError, OSError) as exc:
            _bump(report.failed, "mirror-stale")
            problems.append(
                Problem(
                    "mirror-failed",
                    coll_key,
                    f"{message}; rebuilding it failed ({exc}): search does not agree with the catalog "
                    f"until {REPAIR} runs again",
                )
            )
            continue
        _bump(report.fixed, "mirror-stale")
    return problems


def _publish(
    committer: Committer, sinks: Sequence[Sink], changes: list[Change], collections: Sequence[str] = ()
) -> list[Problem]:
    """Hand the repairs' ``changes`` to the sinks, per collection with its
    document as committed now (one GET each); sinks with an outbox are also
    handed what theirs holds in each of ``collections`` (the outbox entries
    are deleted once delivered). Returns a ``sink-failed`` error per
    collection a sink could not take."""
    by_collection: dict[str, list[Change]] = {}
    if any(outbox_id(sink) for sink in sinks):
        by_collection.update({coll_id: [] for coll_id in collections})
    for change in changes:
        by_collection.setdefault(change.collection, []).append(change)
    problems = []
    for coll_id, group in sorted(by_collection.items()):
        coll_key = committer.layout.collection_key(coll_id)
        try:
            coll_doc, _ = committer.read(coll_key, ("Collection",))
        except (ProducerError, OSError) as exc:
            problems.append(Problem("sink-failed", coll_key, f"the sinks were not told the repairs: {exc}"))
            continue
        if coll_doc is None:
            continue  # the collection is gone: nothing left to follow
        for failure in deliver(sinks, coll_doc, group, outbox=Outbox(committer.store)):
            problems.append(
                Problem(
                    "sink-failed",
                    coll_key,
                    f"repaired in the catalog, but not applied to {failure.sink} ({failure.error}): "
                    + remedy_text([failure], coll_id, "reconcile again"),
                )
            )
    return problems


def _keys_of(store: Store, coll_key: str, ids: set[str]) -> dict[str, str]:
    """The document key of each item of ``ids`` (one walk of the collection,
    only when some item differs: memory follows the differences)."""
    keys: dict[str, str] = {}
    if ids:
        for key, doc in collection_items(store, coll_key):
            if str(doc.get("id")) in ids:
                keys.setdefault(str(doc.get("id")), key)
    return keys


def _compare_pgstac(
    store: Store, tree: AuditReport, pgstac: PgstacSink, report: ReconcileReport, *, fix: bool
) -> list[Problem]:
    """Compare every collection of the catalog (``tree``, an audit) with the
    pgSTAC database, items streamed from the catalog to the database (memory:
    one chunk and the differences; a fix walks the items again); count what
    differs into ``report.found`` (and, when ``fix`` brought the database
    in line, ``report.fixed``). Returns the problems left: every difference
    without ``fix``, none with it (a database failure raises)."""
    problems: list[Problem] = []
    for coll_key, coll_id in sorted(tree.collection_ids.items()):
        coll_doc = read_doc(store, coll_key)
        if coll_doc.get("type") != "Collection":
            continue  # a catalog at a collection's place: the audit reports it

        def committed(coll_key: str = coll_key) -> Iterator[dict[str, Any]]:
            """One walk of the collection's committed items (streamed: the
            database compares them; sync walks again to upsert)."""
            for _key, doc in collection_items(store, coll_key):
                if removal_started(doc) is None:
                    yield doc

        diff = pgstac.sync(coll_doc, committed) if fix else pgstac.diff(coll_doc, committed)
        keys = {} if fix else _keys_of(store, coll_key, set(diff.missing) | set(diff.differing))
        database = f"the pgSTAC database {pgstac.database}"  # host:port/dbname, never the DSN
        found: list[tuple[ProblemKind, str, str]] = []
        found += [
            ("pgstac-missing", keys.get(i, coll_key), f"item {i!r} is not in {database}")
            for i in diff.missing
        ]
        found += [
            ("pgstac-differing", keys.get(i, coll_key), f"item {i!r} differs in {database}")
            for i in diff.differing
        ]
        found += [
            (
                "pgstac-extra",
                coll_key,
                f"item {i!r} of collection {coll_id!r} is in {database} but not in the catalog",
            )
            for i in diff.extra
        ]
        if diff.collection_differs:
            found.append(
                ("pgstac-collection", coll_key, f"collection {coll_id!r} is absent or differs in {database}")
            )
        for kind, key, message in found:
            _bump(report.found, kind)
            if fix:
                _bump(report.fixed, kind)
            else:
                problems.append(Problem(kind, key, message))
    return problems
