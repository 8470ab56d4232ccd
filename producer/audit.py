"""Walking a whole catalog: what is wrong with it, and (reconcile) repairing it.

:func:`audit` reads every document once, breadth-first from the root,
following ``child`` and ``item`` links, then lists the store to find
documents nothing links (orphans). It never writes.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from producer.catalog import documents as docs
from producer.catalog.extent import bbox_contains, box2d, interval_contains, item_interval, parse_time
from producer.catalog.layout import layout_of_item, resolve_href
from producer.errors import CatalogError, NotFound, ProducerError
from producer.store.base import Store

#: problem kinds that make a catalog invalid (validate exits 1)
ERRORS = {
    "missing-root",
    "unreadable",
    "schema",
    "dangling-link",
    "duplicate-link",
    "orphan",
    "extent",
    "wrong-type",
    "collection-mismatch",
    "malformed",
    "duplicate-id",
    # the run could not do its job: an asset whose existence could not be
    # checked (never treated as missing), a product reconcile could not register
    "asset-unchecked",
    "register-failed",
    # a product under reconcile's data that no item describes: the catalog is
    # incomplete until it is registered
    "missing-product",
}


@dataclass
class Problem:
    """One finding: ``kind`` (an error if in ERRORS, else a warning: the catalog
    is still correct STAC), the document ``key``, a message."""

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


def audit(
    store: Store,
    validator,
    *,
    check_assets: bool = False,
    storage_options: dict | None = None,
    schemas: bool = True,
) -> AuditReport:
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
            report.problems.append(
                Problem("wrong-type", key, f"linked as {' or '.join(expect)} but has type {kind!r}")
            )
            continue
        if schemas:
            for message in validator.errors(doc):
                report.problems.append(Problem("schema", key, message))
        if kind in ("Catalog", "Collection"):
            for message in docs.parent_problems(doc, collection_id=_folder_id(key)):
                report.problems.append(Problem("malformed", key, message))
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
                    report.problems.append(
                        Problem("duplicate-link", key, f"links {href} ({rel}) more than once", target)
                    )
                    continue
                seen_links.add((rel, target))
            if target not in keys:
                try:
                    store.get(target)  # not listed: missing, or not a document (a directory)
                except CatalogError as exc:
                    report.problems.append(Problem("malformed", target, str(exc)))
                    continue
                except (NotFound, ProducerError):
                    pass
                else:
                    if rel in docs.CHILD_RELS:
                        queue.append(
                            (
                                target,
                                ("Catalog", "Collection") if rel == "child" else ("Feature",),
                                coll_key,
                                key,
                            )
                        )
                    continue
                report.problems.append(
                    Problem("dangling-link", key, f"{rel} link {href} points at a missing document", target)
                )
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
        report.problems.append(_orphan_problem(key, report.orphans[key]))

    _check_duplicate_ids(report)
    _check_extents(report)
    if check_assets:
        _check_assets(report, storage_options)
    return report


def _folder_id(key: str) -> str | None:
    """The collection id the layout implies for ``<id>/collection.json``."""
    parts = key.split("/")
    return parts[0] if len(parts) == 2 and parts[1] == "collection.json" else None


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


def _note_item(
    report: AuditReport, key: str, doc: dict, coll_key: str | None, parent_key: str | None
) -> None:
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
    assets = {
        name: a.get("href")
        for name, a in (doc.get("assets") or {}).items()
        if isinstance(a, dict) and isinstance(a.get("href"), str)
    }
    removing = _removal_started(doc)
    if removing is not None:
        report.problems.append(
            Problem(
                "interrupted-removal",
                key,
                f"a removal started at {removing} did not finish: the item is still linked "
                "(reconcile --fix unlinks and deletes it)",
            )
        )
    props = doc.get("properties") or {}
    report.items[key] = ItemInfo(
        key,
        str(doc.get("id")),
        bbox,
        interval,
        coll_key,
        parent_key or "",
        assets,
        str(props.get("updated") or ""),
        removing is not None,
    )


def _removal_started(doc: dict | None) -> str | None:
    """The removal marker of an item document (when ``remove`` started), or None."""
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        return None
    props = doc.get("properties")
    if not isinstance(props, dict) or docs.REMOVING not in props:
        return None
    return str(props[docs.REMOVING])


def _orphan_problem(key: str, doc: dict | None) -> Problem:
    """An unlinked document: an ``orphan`` error, unless it is an item whose
    removal was interrupted after the unlink (a warning: readers no longer
    reach it, and ``reconcile --fix`` deletes it)."""
    removing = _removal_started(doc)
    if removing is not None:
        return Problem(
            "interrupted-removal",
            key,
            f"a removal started at {removing} did not finish: the item is unlinked "
            "but not deleted (reconcile --fix deletes it)",
        )
    return Problem("orphan", key, "no document links it")


def _check_duplicate_ids(report: AuditReport) -> None:
    """Two linked items of one collection with the same id (e.g. one product
    registered under two periods of a partitioned collection): an error."""
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
                    "collection; reconcile --fix keeps the most recently updated one",
                    first,
                )
            )


def _check_extents(report: AuditReport) -> None:
    members: dict[str, list[ItemInfo]] = {}
    for info in report.items.values():
        if info.collection_key:
            members.setdefault(info.collection_key, []).append(info)
    for coll_key, extent in report.extents.items():
        infos = members.get(coll_key, [])
        problem = docs.extent_problem(extent)
        if problem is not None:
            report.problems.append(Problem("extent", coll_key, f"collection has no usable extent: {problem}"))
            continue
        bbox = box2d(extent["spatial"]["bbox"][0])
        interval = extent["temporal"]["interval"][0]
        outside = [
            i for i in infos if not (bbox_contains(bbox, i.bbox) and interval_contains(interval, i.interval))
        ]
        for info in outside[:20]:
            report.problems.append(
                Problem("extent", coll_key, f"extent does not contain item {info.id} ({info.key})")
            )
        if len(outside) > 20:
            report.problems.append(
                Problem("extent", coll_key, f"... and {len(outside) - 20} more items outside the extent")
            )
        exact = docs.exact_extent(
            {
                "bbox": i.bbox,
                "properties": {"start_datetime": i.interval[0], "end_datetime": i.interval[1]},
                "id": i.id,
            }
            for i in infos
        )
        if not outside and _norm_extent(exact) != _norm_extent(extent):
            report.problems.append(
                Problem(
                    "stale-extent",
                    coll_key,
                    "extent is not the exact union of its items: larger than it, or its sub-boxes "
                    "(clusters) differ (reconcile --fix recomputes it)",
                )
            )


def _norm_extent(extent: dict) -> tuple:
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
    from producer.redact import redact

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
    from fsspec.core import url_to_fs

    scheme = href.partition("://")[0].lower() if "://" in href else ""
    options = {} if scheme in _PLAIN_SCHEMES else dict(storage_options or {})
    try:
        fs, path = url_to_fs(href, **options)
    except Exception as exc:
        return None, _why(exc)
    token = str(getattr(fs, "_fs_token", id(fs)))
    if unreachable is not None and token in unreachable:
        return None, f"not tried: {unreachable[token]}"
    try:
        fs.invalidate_cache(path)
        fs.info(path)
        return True, ""
    except FileNotFoundError:
        why = _bucket_unknown(fs, path, unreachable)
        return (None, why) if why else (False, "")
    except Exception as exc:
        why = _why(exc)
        if unreachable is not None and _UNREACHABLE & {c.__name__ for c in type(exc).__mro__}:
            unreachable[token] = f"the storage endpoint could not be reached ({why})"
            return None, unreachable[token]
        return None, why


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


def _check_assets(report: AuditReport, storage_options: dict | None) -> None:
    """Add a ``missing-asset`` problem per asset that is definitely gone, an
    ``asset-unchecked`` one per asset whose existence could not be checked.
    Items being removed are skipped. Writes nothing."""
    unreachable: dict[str, str] = {}
    for info in report.items.values():
        if info.removing:
            continue
        for name, href in info.assets.items():
            exists, why = _asset_exists(href, storage_options, unreachable)
            if exists is False:
                report.problems.append(
                    Problem("missing-asset", info.key, f"asset {name!r} at {href} does not exist")
                )
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


def _unchanged_since(updated: str, was_marked: bool):
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


def _finish_removals(committer, first: AuditReport, report: ReconcileReport) -> None:
    """Finish every removal a crash or a racing verb left half done, and drop
    all but the most recently updated item of each id within a collection.

    Items (linked or orphan) carrying :data:`docs.REMOVING` are removed with
    :meth:`Committer.remove_item`. Duplicates are removed the same way; the
    kept one's id index entry is pointed at it (partitioned collections).
    Each removal is judged on the document as it is then (an item registered
    again since the audit is kept); later steps re-read what they link.
    Writes: per removed item the removal's writes; per duplicate group one
    index entry at most.
    """
    # (collection id, item id) -> [(updated, key, marked)]
    by_id: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for info in first.items.values():
        by_id.setdefault((info.key.split("/")[0], info.id), []).append(
            (info.updated, info.key, info.removing)
        )
    for key, doc in first.orphans.items():
        if doc is None or doc.get("type") != "Feature" or key.count("/") < 2:
            continue
        props = doc.get("properties") or {}
        by_id.setdefault((key.split("/")[0], str(doc.get("id"))), []).append(
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
            _bump(report.fixed, "duplicate-id" if key in {e[1] for e in live} else "interrupted-removal")
        if live[1:] and live[0][1].count("/") > 2:
            committer.write_index(coll_id, item_id, live[0][1])


@dataclass
class ReconcileReport:
    """Findings per kind before any fix, what was fixed, what failed, and what is left.

    ``failed``: per kind, how many could not be handled (``asset-unchecked``:
    assets whose existence could not be checked, their items left unchanged;
    ``missing-product``: products that failed to register). Those also appear
    in ``remaining`` as errors (``asset-unchecked``, ``register-failed``).
    """

    found: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)
    registered: list = field(default_factory=list)  # RegisterResult of missing products
    failed: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, int, int]]:
        kinds = sorted(set(self.found) | set(self.fixed))
        return [(k, self.found.get(k, 0), self.fixed.get(k, 0)) for k in kinds]


def _bump(counter: dict[str, int], kind: str, n: int = 1) -> None:
    counter[kind] = counter.get(kind, 0) + n


def _missing_products(
    first: AuditReport, data: str | list[str], storage_options: dict | None, register_options: dict | None
) -> list[str]:
    """Products under ``data`` that no item describes. Items reached from the
    root count, and so do orphan items (reconcile links them) unless their
    removal was started. Reads the data listing only."""
    from producer.api import expand_paths, parse_rewrites
    from producer.extract.assets import resolve_location, rewrite_href

    rewrites = parse_rewrites((register_options or {}).get("href_rewrites", ()))
    known = {href for info in first.items.values() for href in info.assets.values()}
    for doc in first.orphans.values():
        if isinstance(doc, dict) and doc.get("type") == "Feature" and _removal_started(doc) is None:
            known.update(
                a["href"]
                for a in (doc.get("assets") or {}).values()
                if isinstance(a, dict) and isinstance(a.get("href"), str)
            )
    missing = []
    for path in expand_paths(data, storage_options):
        if rewrite_href(resolve_location(path), rewrites) not in known:
            missing.append(path)
    return missing


def _repair_links(committer, store: Store, first: AuditReport, report: ReconcileReport) -> None:
    """Drop dangling and duplicate links: one compare-and-swap per document."""
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


def _handle_dead_items(
    committer, store: Store, first: AuditReport, report: ReconcileReport, dead: str
) -> None:
    """Items with an asset that is definitely gone and none that could not be
    checked: ``flag`` sets ``deprecated: true`` (one compare-and-swap);
    ``remove`` marks, unlinks, then deletes the item, so a crash in between is
    finished by the next ``reconcile --fix``."""
    unchecked = {p.key for p in first.problems if p.kind == "asset-unchecked"}
    # an item with another asset that could not be checked is left alone too
    dead_items = sorted({p.key for p in first.problems if p.kind == "missing-asset"} - unchecked)
    for key in dead_items:
        if dead == "remove":
            outcome = committer.remove_item(
                key.split("/")[0], key, keep_if=_unchanged_since(first.items[key].updated, False)
            )
            if outcome.action == "kept":
                continue
        else:

            def flag(doc):
                if doc is None or doc.get("properties", {}).get("deprecated") is True:
                    return None
                doc["properties"]["deprecated"] = True
                return doc

            committer.cas(key, flag, expect=("Feature",))
        _bump(report.fixed, "missing-asset")


def _parent_of(store: Store, key: str) -> str:
    """The document that should link the catalog or collection at ``key``:
    the root for a top-level folder, else the collection or catalog of the
    folder above (an existing one first; a collection for a top-level folder)."""
    from producer.catalog.layout import ROOT_KEY

    folder = posixpath.dirname(posixpath.dirname(key))
    if not folder:
        return ROOT_KEY
    for name in ("collection.json", "catalog.json"):
        if store.exists(f"{folder}/{name}"):
            return f"{folder}/{name}"
    return f"{folder}/{'collection.json' if '/' not in folder else 'catalog.json'}"


def _new_parent(store: Store, key: str) -> dict:
    """A new document for a missing parent at ``key`` (root, collection or
    partition catalog), built like the commit protocol builds them."""
    from producer.catalog.layout import ROOT_KEY, Layout

    if key == ROOT_KEY:
        return docs.new_root(None)
    coll_id = key.split("/")[0]
    if key == f"{coll_id}/collection.json":
        return docs.new_collection(coll_id, None, Layout())
    label = key[len(coll_id) + 1 : -len("/catalog.json")]
    return docs.new_partition(key, _parent_of(store, key), Layout(), coll_id, label)


def _link_orphan_catalog(committer, store: Store, key: str, doc: dict) -> None:
    """Link an orphan catalog or collection from the document above it. A
    missing parent (partition catalog, collection, root: left so by a crash
    between its child's creation and its own) is created and linked in turn."""
    from producer.catalog.layout import ROOT_KEY, relative_href

    title = doc.get("title") or doc.get("id")
    while key != ROOT_KEY:
        parent = _parent_of(store, key)
        link = {"rel": "child", "href": relative_href(parent, key), "type": docs.JSON}
        if isinstance(title, str) and title:
            link["title"] = title
        fresh = _new_parent(store, parent) if not store.exists(parent) else None

        def add(d: dict | None, link=link, fresh=fresh) -> dict | None:
            if d is None:
                if fresh is None:
                    return None
                d = docs.copy_doc(fresh)
                docs.add_links(d, [link])
                return d
            return d if docs.add_links(d, [link]) else None

        expect = ("Collection",) if parent.endswith("/collection.json") else ("Catalog", "Collection")
        outcome = committer.cas(parent, add, expect=expect)
        if not outcome.created:
            return  # it existed: linked already, or an orphan handled on its own
        key, title = parent, (outcome.doc or {}).get("title")


def _link_orphans(
    store: Store, validator, committer, first: AuditReport, report: ReconcileReport, max_retries: int
) -> None:
    """Link orphan items and catalogs where they sit (items through their
    partition chain, bottom-up). An orphan item is read again first: one
    deleted meanwhile is skipped, one marked for removal meanwhile deleted."""
    from producer.commit import Committer

    for key, doc in sorted(first.orphans.items()):
        if doc is None or _removal_started(doc) is not None:
            continue
        parts = key.split("/")
        if doc.get("type") == "Feature" and len(parts) >= 3:
            try:
                doc = _read(store, key)
            except NotFound:
                continue
            if _removal_started(doc) is not None:
                committer.remove_item(parts[0], key)
                _bump(report.fixed, "interrupted-removal")
                continue
            coll_id = parts[0]
            lay = layout_of_item(key)
            orphan_committer = Committer(store, validator.check, layout=lay, max_retries=max_retries)
            orphan_committer.link_items(coll_id, [(key, doc)])
            _bump(report.fixed, "orphan")
        elif doc.get("type") in ("Catalog", "Collection") and len(parts) >= 2:
            _link_orphan_catalog(committer, store, key, doc)
            _bump(report.fixed, "orphan")


def _repair_index(committer, linked: AuditReport, report: ReconcileReport) -> None:
    """Point the id index entry of every linked item of a partitioned
    collection at that item (a move killed before its last write, or a
    catalog from before the index existed). One GET per such item; one write
    per entry that was missing or stale."""
    for key, info in sorted(linked.items.items()):
        if key.count("/") < 3:
            continue  # flat layout: no index
        coll_id = key.split("/")[0]
        if committer.read_index(coll_id, info.id)[0] != key:
            committer.write_index(coll_id, info.id, key)
            _bump(report.fixed, "stale-index")


def _register_missing(
    store: Store,
    missing_products: list[str],
    collection: str | None,
    storage_options: dict | None,
    register_options: dict | None,
    report: ReconcileReport,
) -> list[Problem]:
    """Register the products no item describes; return a ``register-failed``
    problem (an error) per product that could not be registered."""
    if not collection:
        raise ValueError("registering missing products needs a collection")
    from producer.api import register

    opts = dict(register_options or {})
    report.registered = register(
        missing_products, catalog=store, collection=collection, storage_options=storage_options, **opts
    )
    _bump(report.fixed, "missing-product", sum(1 for r in report.registered if r.ok))
    failed = [
        Problem("register-failed", str(r.source), f"not registered: {r.error}")
        for r in report.registered
        if not r.ok
    ]
    if failed:
        _bump(report.failed, "missing-product", len(failed))
    return failed


def reconcile(
    store: Store,
    validator,
    *,
    data: str | list[str] | None = None,
    fix: bool = False,
    dead: str = "flag",
    collection: str | None = None,
    check_assets: bool | None = None,
    storage_options: dict | None = None,
    register_options: dict | None = None,
    max_retries: int = 25,
) -> ReconcileReport:
    """Find orphans, dangling and duplicate links, stale extents, dead items,
    interrupted removals and unregistered products; with ``fix=True`` repair them.

    Without ``fix`` nothing is written. ``dead``: what to do with items whose
    assets are definitely gone — ``flag`` sets ``deprecated: true`` on the
    item, ``remove`` marks, unlinks and deletes it. An asset that could not be
    checked (unreachable endpoint, 403, 5xx, timeout) leaves its item
    untouched and is an ``asset-unchecked`` error in ``remaining``. Items
    carrying the removal marker are unlinked and deleted, never linked again.
    ``data``: product prefixes/paths to compare against the catalog; products
    no item points at are registered into ``collection`` with
    ``register_options``; each one that fails is a ``register-failed`` error in
    ``remaining``. Each repair is a single write or a compare-and-swap, so a
    crash after any write leaves a state the next ``fix`` run completes.
    """
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
    # could not be checked: nothing is done about them, and they stay errors
    unresolved = [p for p in first.problems if p.kind == "asset-unchecked"]
    if unresolved:
        report.failed["asset-unchecked"] = len(unresolved)

    missing_products: list[str] = []
    if data is not None:
        missing_products = _missing_products(first, data, storage_options, register_options)
        report.found["missing-product"] = len(missing_products)
        for path in missing_products:
            report.problems.append(Problem("missing-product", path, "no item describes this product"))

    if not fix:
        report.remaining = list(report.problems)
        return report

    # 0. temp files of killed writers (local catalogs; O(tree), like the audit)
    sweep = getattr(store, "sweep_temps", None)
    if callable(sweep):
        sweep()
    # Documents this tool cannot update safely stop the repair before any
    # write: fixing around them could drop or rewrite a collection.
    malformed = [p for p in first.problems if p.kind == "malformed"]
    if malformed:
        raise CatalogError(
            "nothing was repaired, because existing documents must be fixed by hand "
            "first: " + "; ".join(f"{p.key}: {p.message}" for p in malformed)
        )

    committer = Committer(store, validator.check, max_retries=max_retries)
    # 1. links: dangling and duplicate
    _repair_links(committer, store, first, report)
    # 2. removals that a crash interrupted, then items whose assets are gone
    _finish_removals(committer, first, report)
    _handle_dead_items(committer, store, first, report, dead)
    # 3. orphans: link them where they sit
    _link_orphans(store, validator, committer, first, report, max_retries)
    # 4. products nobody registered
    if missing_products:
        unresolved += _register_missing(
            store, missing_products, collection, storage_options, register_options, report
        )

    # 5. extents: exact union of what is now linked. The snapshot only
    # decides which collections to recompute; the value comes from a walk
    # made after a shrink marker is in place (Committer.recompute_extent), so
    # a register racing this step is not left outside the extent.
    mid = audit(store, validator, schemas=False)
    _repair_index(committer, mid, report)
    for coll_key in mid.extents:
        infos = mid.items_of(coll_key)
        exact = docs.exact_extent(
            {
                "id": i.id,
                "bbox": i.bbox,
                "properties": {"start_datetime": i.interval[0], "end_datetime": i.interval[1]},
            }
            for i in infos
        )

        def needed(doc, exact=exact):
            if docs.SHRINK_FIELD in doc:
                return True  # a leftover marker: clear it
            current = doc.get("extent")
            try:
                return not (current and _norm_extent(current) == _norm_extent(exact))
            except (KeyError, IndexError, TypeError, ValueError):
                return True

        def walk(coll_key=coll_key):
            return usable_items(collection_items(store, coll_key))

        if committer.recompute_extent(coll_key, needed, walk):
            stale = [p for p in first.problems if p.key == coll_key and p.kind in ("stale-extent", "extent")]
            kinds = {p.kind for p in stale} or {"stale-extent"}
            for kind in kinds:
                _bump(report.fixed, kind)

    final = audit(store, validator, check_assets=False)
    report.remaining = final.problems + unresolved
    return report
