"""Walking a whole catalog: what is wrong with it, and (reconcile) repairing it.

:func:`audit` reads every document once, breadth-first from the root,
following ``child`` and ``item`` links, then lists the store to find
documents nothing links (orphans). It never writes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

from producer.catalog import documents as docs
from producer.catalog.extent import bbox_contains, interval_contains, item_interval
from producer.catalog.layout import resolve_href
from producer.errors import CatalogError, NotFound, ProducerError
from producer.store.base import Store

#: problem kinds that make a catalog invalid (validate exits 1)
ERRORS = {
    "missing-root", "unreadable", "schema", "dangling-link", "duplicate-link",
    "orphan", "extent", "wrong-type", "collection-mismatch", "duplicate-id",
}
#: kinds reported but not invalid: the catalog is still correct STAC
#: (``removing``: a linked item marked by an unfinished ``remove``)
WARNINGS = {"stale-extent", "missing-asset", "removing"}


@dataclass
class Problem:
    """One finding: ``kind`` (see ERRORS / WARNINGS), the document ``key``, a message."""

    kind: str
    key: str
    message: str
    target: str | None = None  # the linked key, for link problems

    @property
    def is_error(self) -> bool:
        return self.kind in ERRORS

    def __str__(self) -> str:
        return f"{self.key}: [{self.kind}] {self.message}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "message": self.message,
                "severity": "error" if self.is_error else "warning"}


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


@dataclass
class AuditReport:
    problems: list[Problem] = field(default_factory=list)
    #: key -> type of every document reached from the root
    reached: dict[str, str] = field(default_factory=dict)
    items: dict[str, ItemInfo] = field(default_factory=dict)
    #: collection key -> extent as stored
    extents: dict[str, dict] = field(default_factory=dict)
    collection_ids: dict[str, str] = field(default_factory=dict)
    #: orphan document key -> its parsed content (None if unreadable)
    orphans: dict[str, dict | None] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def items_of(self, collection_key: str) -> list[ItemInfo]:
        return [i for i in self.items.values() if i.collection_key == collection_key]


def _read(store: Store, key: str) -> dict:
    data, _ = store.get(key)
    return docs.loads(data, key)


def audit(store: Store, validator, *, check_assets: bool = False,
          storage_options: dict | None = None, schemas: bool = True) -> AuditReport:
    """Check the catalog under ``store``; returns every problem found. Writes nothing."""
    report = AuditReport()
    keys = {k for k in store.list("") if k.endswith(".json")}
    root = "catalog.json"
    if root not in keys:
        report.problems.append(Problem("missing-root", root, "no root catalog.json"))
        for key in sorted(keys):
            report.orphans[key] = None
            report.problems.append(Problem("orphan", key, "not reachable: there is no root"))
        return report

    # (key, expected types, collection key this document belongs to, parent key)
    queue: deque[tuple[str, tuple[str, ...], str | None, str | None]] = deque(
        [(root, ("Catalog", "Collection"), None, None)]
    )
    while queue:
        key, expect, coll_key, parent_key = queue.popleft()
        if key in report.reached:
            continue
        try:
            doc = _read(store, key)
        except (CatalogError, NotFound) as exc:
            report.reached[key] = "?"
            report.problems.append(Problem("unreadable", key, str(exc)))
            continue
        kind = doc.get("type")
        report.reached[key] = str(kind)
        if kind not in expect:
            report.problems.append(Problem(
                "wrong-type", key, f"linked as {' or '.join(expect)} but has type {kind!r}"))
            continue
        if schemas:
            for message in validator.errors(doc):
                report.problems.append(Problem("schema", key, message))
        if kind == "Collection":
            coll_key = key
            report.extents[key] = doc.get("extent", {})
            report.collection_ids[key] = str(doc.get("id"))
        if kind == "Feature":
            _note_item(report, key, doc, coll_key, parent_key)
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
                    report.problems.append(Problem("duplicate-link", key,
                                                   f"links {href} ({rel}) more than once", target))
                    continue
                seen_links.add((rel, target))
            if target not in keys:
                report.problems.append(Problem(
                    "dangling-link", key, f"{rel} link {href} points at a missing document", target))
                continue
            if rel == "child":
                queue.append((target, ("Catalog", "Collection"), coll_key, key))
            elif rel == "item":
                queue.append((target, ("Feature",), coll_key, key))

    for key in sorted(keys - set(report.reached)):
        try:
            report.orphans[key] = _read(store, key)
        except ProducerError:
            report.orphans[key] = None
        report.problems.append(Problem("orphan", key, "no document links it"))

    _check_duplicate_ids(report)
    _check_extents(report)
    if check_assets:
        _check_assets(report, storage_options)
    return report


def _note_item(report: AuditReport, key: str, doc: dict, coll_key: str | None,
               parent_key: str | None) -> None:
    try:
        interval = item_interval(doc)
        bbox = list(doc["bbox"])
    except (KeyError, TypeError, ValueError):
        return  # the schema check reports it
    expected = report.collection_ids.get(coll_key or "")
    if expected is not None and doc.get("collection") not in (None, expected):
        report.problems.append(Problem(
            "collection-mismatch", key,
            f"item says collection {doc.get('collection')!r} but sits under {coll_key} ({expected!r})"))
    assets = {name: a.get("href") for name, a in (doc.get("assets") or {}).items()
              if isinstance(a, dict) and isinstance(a.get("href"), str)}
    props = doc.get("properties") or {}
    report.items[key] = ItemInfo(key, str(doc.get("id")), bbox, interval, coll_key,
                                 parent_key or "", assets, str(props.get("updated") or ""),
                                 bool(props.get(docs.REMOVING)))
    if props.get(docs.REMOVING):
        report.problems.append(Problem(
            "removing", key, f"item {doc.get('id')} is marked as being removed since "
            f"{props.get(docs.REMOVING)}; run the removal again or reconcile --fix to finish it"))


def _check_duplicate_ids(report: AuditReport) -> None:
    """Two linked items of one collection with the same id (e.g. one product
    registered under two periods of a partitioned collection): an error."""
    seen: dict[tuple[str | None, str], str] = {}
    for key in sorted(report.items):
        info = report.items[key]
        first = seen.setdefault((info.collection_key, info.id), key)
        if first != key:
            report.problems.append(Problem(
                "duplicate-id", key, f"item id {info.id!r} is also used by {first} in the same "
                "collection; reconcile --fix keeps the most recently updated one", first))


def _check_extents(report: AuditReport) -> None:
    members: dict[str, list[ItemInfo]] = {}
    for info in report.items.values():
        if info.collection_key:
            members.setdefault(info.collection_key, []).append(info)
    for coll_key, extent in report.extents.items():
        infos = members.get(coll_key, [])
        try:
            bbox = extent["spatial"]["bbox"][0]
            interval = extent["temporal"]["interval"][0]
        except (KeyError, IndexError, TypeError):
            report.problems.append(Problem("extent", coll_key, "collection has no usable extent"))
            continue
        outside = [i for i in infos if not (bbox_contains(bbox, i.bbox)
                                           and interval_contains(interval, i.interval))]
        for info in outside[:20]:
            report.problems.append(Problem(
                "extent", coll_key, f"extent does not contain item {info.id} ({info.key})"))
        if len(outside) > 20:
            report.problems.append(Problem(
                "extent", coll_key, f"... and {len(outside) - 20} more items outside the extent"))
        exact = docs.exact_extent({"bbox": i.bbox, "properties": {
            "start_datetime": i.interval[0], "end_datetime": i.interval[1]}, "id": i.id}
            for i in infos)
        if not outside and _norm_extent(exact) != _norm_extent(extent):
            report.problems.append(Problem(
                "stale-extent", coll_key,
                "extent is larger than the union of its items (reconcile --fix recomputes it)"))


def _norm_extent(extent: dict) -> tuple:
    bbox = tuple(round(v, 7) for v in extent["spatial"]["bbox"][0])
    interval = tuple(extent["temporal"]["interval"][0])
    return bbox, interval


def _asset_exists(href: str, storage_options: dict | None) -> bool:
    import fsspec

    try:
        fs, _, (path,) = fsspec.get_fs_token_paths(href, storage_options=storage_options or {})
        return bool(fs.exists(path))
    except Exception:
        return False


def _check_assets(report: AuditReport, storage_options: dict | None) -> None:
    for info in report.items.values():
        for name, href in info.assets.items():
            if not _asset_exists(href, storage_options):
                report.problems.append(Problem(
                    "missing-asset", info.key, f"asset {name!r} at {href} does not exist"))


def collection_items(store: Store, collection_key: str) -> Iterator[tuple[str, dict]]:
    """Yield ``(key, item)`` for every item linked under a collection (via partitions)."""
    queue = deque([collection_key])
    seen = set()
    while queue:
        key = queue.popleft()
        if key in seen:
            continue
        seen.add(key)
        try:
            doc = _read(store, key)
        except NotFound:
            continue
        if doc.get("type") == "Feature":
            yield key, doc
            continue
        for link in doc.get("links", []):
            if link.get("rel") in docs.CHILD_RELS:
                target = resolve_href(key, link.get("href", ""))
                if target is not None:
                    queue.append(target)


# --- reconcile ------------------------------------------------------------------

def _finish_removals(store: Store, validator, first: AuditReport, report: "ReconcileReport",
                     max_retries: int) -> set[str]:
    """Finish every removal a crash or a racing verb left half done, and drop
    all but the most recently updated item of each id within a collection.

    Items (linked or orphan) carrying :data:`docs.REMOVING` are removed with
    :meth:`Committer.remove_item`. Duplicates are removed the same way; the
    kept one's id index entry is pointed at it (partitioned collections).
    Returns the keys removed (later steps must not link them again).
    Writes: per removed item the removal's writes; per duplicate group one
    index entry at most.
    """
    from producer.commit import Committer

    committer = Committer(store, validator.check, max_retries=max_retries)
    # (collection id, item id) -> [(updated, key, marked)]
    by_id: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for info in first.items.values():
        by_id.setdefault((info.key.split("/")[0], info.id), []).append(
            (info.updated, info.key, info.removing))
    for key, doc in first.orphans.items():
        if doc is None or doc.get("type") != "Feature" or key.count("/") < 2:
            continue
        props = doc.get("properties") or {}
        by_id.setdefault((key.split("/")[0], str(doc.get("id"))), []).append(
            (str(props.get("updated") or ""), key, bool(props.get(docs.REMOVING))))
    removed: set[str] = set()
    for (coll_id, item_id), entries in sorted(by_id.items()):
        live = sorted((e for e in entries if not e[2]), reverse=True)
        doomed = [e[1] for e in entries if e[2]] + [e[1] for e in live[1:]]
        for key in doomed:
            committer.remove_item(coll_id, key)
            removed.add(key)
            _bump(report.fixed, "orphan" if key in first.orphans else
                  "duplicate-id" if key in {e[1] for e in live} else "removing")
        if live[1:] and live[0][1].count("/") > 2:
            committer.write_index(coll_id, item_id, live[0][1])
    return removed


@dataclass
class ReconcileReport:
    """Findings per kind before any fix, what was fixed, and what is left."""

    found: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)
    registered: list = field(default_factory=list)  # RegisterResult of missing products

    def rows(self) -> list[tuple[str, int, int]]:
        kinds = sorted(set(self.found) | set(self.fixed))
        return [(k, self.found.get(k, 0), self.fixed.get(k, 0)) for k in kinds]


def _layout_for(key: str, collection_id: str):
    """Infer the partition scheme from where an item document sits."""
    from producer.catalog.layout import Layout

    depth = key.count("/") - 2  # <coll>/<parts...>/<id>/<id>.json
    return Layout({0: None, 1: "year", 2: "year/month"}.get(depth, None))


def _bump(counter: dict[str, int], kind: str, n: int = 1) -> None:
    counter[kind] = counter.get(kind, 0) + n


def reconcile(store: Store, validator, *, data: str | list[str] | None = None, fix: bool = False,
              dead: str = "flag", collection: str | None = None, check_assets: bool | None = None,
              storage_options: dict | None = None, register_options: dict | None = None,
              max_retries: int = 25) -> ReconcileReport:
    """Find orphans, dangling and duplicate links, stale extents, dead items and
    unregistered products; with ``fix=True`` repair them all.

    Without ``fix`` nothing is written. ``dead``: what to do with items whose
    assets are gone — ``flag`` sets ``deprecated: true`` on the item,
    ``remove`` unlinks and deletes it. ``data``: product prefixes/paths to
    compare against the catalog; products no item points at are registered
    into ``collection`` with ``register_options``.
    """
    from producer.catalog.layout import resolve_href
    from producer.commit import Committer

    if dead not in ("flag", "remove"):
        raise ValueError("dead must be 'flag' or 'remove'")
    if check_assets is None:
        check_assets = data is not None
    report = ReconcileReport()
    first = audit(store, validator, check_assets=check_assets, storage_options=storage_options)
    report.problems = list(first.problems)
    for p in first.problems:
        _bump(report.found, p.kind)

    missing_products: list[str] = []
    if data is not None:
        from producer.api import expand_paths, parse_rewrites
        from producer.extract.assets import resolve_location, rewrite_href

        rewrites = parse_rewrites((register_options or {}).get("href_rewrites", ()))
        known = {href for info in first.items.values() for href in info.assets.values()}
        for path in expand_paths(data, storage_options):
            href = rewrite_href(resolve_location(path), rewrites)
            if href not in known:
                missing_products.append(path)
        report.found["missing-product"] = len(missing_products)
        for path in missing_products:
            report.problems.append(Problem("missing-product", path, "no item describes this product"))

    if not fix:
        report.remaining = list(report.problems)
        return report

    committer = Committer(store, validator.check, max_retries=max_retries)

    # 1. links: dangling and duplicate, one compare-and-swap per document
    bad_links: dict[str, list[Problem]] = {}
    for p in first.problems:
        if p.kind in ("dangling-link", "duplicate-link"):
            bad_links.setdefault(p.key, []).append(p)
    for key, problems in bad_links.items():
        def mutate(doc, key=key):
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

    # 2. dead items
    dead_items = sorted({p.key for p in first.problems if p.kind == "missing-asset"})
    for key in dead_items:
        info = first.items[key]
        if dead == "remove":
            committer.unlink_item(info.parent_key, key)
            try:
                store.delete(key)
            except NotFound:
                pass
        else:
            def flag(doc):
                if doc is None or doc.get("properties", {}).get("deprecated") is True:
                    return None
                doc["properties"]["deprecated"] = True
                return doc
            committer.cas(key, flag, expect=("Feature",))
        _bump(report.fixed, "missing-asset")

    # 2b. removals left half done (the item carries the mark) are finished,
    #     never undone; of items sharing an id in a collection the most
    #     recently updated one is kept
    finished = _finish_removals(store, validator, first, report, max_retries)

    # 3. orphans: link them where they sit (items bottom-up through their chain)
    for key, doc in sorted(first.orphans.items()):
        if doc is None or key in finished:
            continue
        parts = key.split("/")
        if doc.get("type") == "Feature" and len(parts) >= 3:
            coll_id = parts[0]
            lay = _layout_for(key, coll_id)
            orphan_committer = Committer(store, validator.check, layout=lay, max_retries=max_retries)
            orphan_committer.link_items(coll_id, [(key, doc)])
            _bump(report.fixed, "orphan")
        elif doc.get("type") in ("Catalog", "Collection") and len(parts) >= 2:
            folder = "/".join(parts[:-2])
            parent = "catalog.json" if not folder else (
                f"{folder}/collection.json" if store.exists(f"{folder}/collection.json")
                else f"{folder}/catalog.json")
            from producer.catalog.layout import relative_href

            link = {"rel": "child", "href": relative_href(parent, key), "type": docs.JSON,
                    "title": doc.get("title") or doc.get("id")}
            committer.cas(parent, lambda d, link=link: d if d is not None and docs.add_links(d, [link]) else None,
                          expect=("Catalog", "Collection"))
            _bump(report.fixed, "orphan")

    # 4. products nobody registered
    if missing_products:
        if not collection:
            raise ValueError("registering missing products needs a collection")
        from producer.api import register

        opts = dict(register_options or {})
        report.registered = register(missing_products, catalog=store, collection=collection,
                                     storage_options=storage_options, **opts)
        _bump(report.fixed, "missing-product", sum(1 for r in report.registered if r.ok))

    # 5. extents: exact union of what is now linked
    mid = audit(store, validator, schemas=False)
    for coll_key in mid.extents:
        infos = mid.items_of(coll_key)
        exact = docs.exact_extent({"id": i.id, "bbox": i.bbox, "properties": {
            "start_datetime": i.interval[0], "end_datetime": i.interval[1]}} for i in infos)

        def compute(doc, exact=exact):
            current = doc.get("extent")
            try:
                if current and _norm_extent(current) == _norm_extent(exact):
                    return None
            except (KeyError, IndexError, TypeError):
                pass
            return exact

        if committer.set_extent(coll_key, compute):
            stale = [p for p in first.problems if p.key == coll_key and p.kind in ("stale-extent", "extent")]
            kinds = {p.kind for p in stale} or {"stale-extent"}
            for kind in kinds:
                _bump(report.fixed, kind)

    final = audit(store, validator, check_assets=False)
    report.remaining = final.problems
    return report
