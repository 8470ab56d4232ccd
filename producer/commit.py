"""The commit protocol: item first, then its parents by compare-and-swap.

Only this module writes documents (:mod:`producer.repair` decides some
repairs itself, but writes them through :meth:`Committer.cas`).
Everything goes through a :class:`~producer.store.base.Store` passed in.

For one item the I/O is constant whatever the catalog size: a create-only
PUT of the item (then GET+PUT when it exists), one GET of every ancestor
(partition catalogs, collection, root: read once per batch by
:meth:`Committer.preflight`) and a PUT of each ancestor that changes. A batch costs one compare-and-swap per parent, however many items it
adds there.

Restartable: every write is idempotent and the order is chosen so that a
process killed after any single write leaves a state that re-running the
same command (or ``reconcile --fix``) completes: the root exists before
anything below it, an item exists before any link to it, and every link up
an item's chain is checked on every run, not only below a parent this run
created. Removal marks the item first (:data:`~producer.catalog.documents.REMOVING`),
so a half-done removal is recognisable and finished, never undone.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import json
import logging
import os
import posixpath
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from producer.catalog import documents as docs
from producer.catalog import intents, summaries
from producer.catalog.extent import (
    bbox_contains,
    box2d,
    format_time,
    interval_contains,
    item_interval,
    parse_time,
)
from producer.catalog.layout import (
    THUMBNAIL_ASSET,
    Layout,
    collection_key,
    expected_type,
    intent_key,
    is_intent_key,
    item_follows,
    item_parent_key,
    layout_of_item,
    lease_key,
    mark_if_full,
    partition_label,
    recorded_layout,
    relative_href,
)
from producer.catalog.mirrorlinks import (
    EMPTY_BASE,
    carried,
    mirror_asset_key,
    mirror_assets,
    mirror_key,
)
from producer.errors import (
    ID_TEMPLATE_HINT,
    REPLACE_HINT,
    CatalogError,
    ConflictError,
    Hint,
    InputError,
    NotFound,
    PreconditionFailed,
    ProducerError,
    StoreError,
)
from producer.extract.ids import suggested_id
from producer.hrefs import absolute_assets, relative_assets, rendered_thumbnail
from producer.parallel import map_ordered
from producer.provenance import VOLATILE, VOLATILE_RELS
from producer.redact import clean_href
from producer.store.base import Store, is_local

if TYPE_CHECKING:
    from producer.store.local import Staging

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")

Mutation = Callable[[dict | None], dict | None]
#: group commit: a writer whose intent is not the oldest pending one pauses
#: about one round trip (its own last listing and read of the collection,
#: jittered, clamped to [LEADER_WAIT_MIN, LEADER_WAIT] seconds) between looks
#: at the oldest one's intent, for at most LEADER_WAITS * LEADER_WAIT seconds
#: per leader, before it puts itself
LEADER_WAIT = 0.1
LEADER_WAIT_MIN = 0.005
LEADER_WAITS = 3
#: seconds a process keeps committing to a collection through intents after
#: it last saw contention there (a lost compare-and-swap of the collection, or
#: another writer's fresh intent); otherwise a writer that lists no pending
#: intent tries a plain compare-and-swap first (see :meth:`Committer.group_commit`)
CONTENDED_FOR = 30.0
#: (store url, collection id) -> monotonic deadline of the contention seen
_contended: dict[tuple[str, str], float] = {}


def note_contention(store_url: str, collection_id: str) -> None:
    """Remember, in this process, that writers of ``collection_id`` in the
    catalog at ``store_url`` contend: its next commits announce intents
    (group commit) for :data:`CONTENDED_FOR` seconds. Mutates process state only."""
    _contended[(store_url, collection_id)] = time.monotonic() + CONTENDED_FOR


def contended(store_url: str, collection_id: str) -> bool:
    """True while this process remembers contention on the collection
    (:func:`note_contention`)."""
    return _contended.get((store_url, collection_id), 0.0) > time.monotonic()


#: ``ack="durable"`` under contention: seconds a register takes the collection
#: and the root as this process last read or wrote them (:func:`remember_view`)
#: instead of reading them again (see :meth:`Committer.preflight`)
VIEW_FRESH = 2.0
#: (store url, key) -> (``time.monotonic()`` of the read or write, document, version)
_views: dict[tuple[str, str], tuple[float, dict, str]] = {}
_views_lock = threading.Lock()


def remember_view(store_url: str, key: str, doc: dict, version: str, at: float) -> None:
    """Remember, in this process, ``doc`` at ``version`` as the document
    stored at ``key`` of the catalog at ``store_url`` at monotonic time
    ``at`` (read then, or written): :func:`recent_view` hands it out for
    :data:`VIEW_FRESH` seconds. A view older than the one remembered is
    ignored; expired ones are forgotten (the memory held is the documents
    of the last seconds). The document is shared: it must not be mutated."""
    with _views_lock:
        known = _views.get((store_url, key))
        if known is None or known[0] <= at:
            _views[(store_url, key)] = (at, doc, version)
        now = time.monotonic()
        for old in [k for k, (when, _, _) in _views.items() if now - when > VIEW_FRESH]:
            del _views[old]


def recent_view(store_url: str, collection_id: str, key: str) -> tuple[dict, str, float] | None:
    """``(doc, version, monotonic time)`` of ``key`` as this process read or
    wrote it less than :data:`VIEW_FRESH` seconds ago, while it remembers
    contention on ``collection_id`` (:func:`contended`); else None."""
    if not contended(store_url, collection_id):
        return None
    with _views_lock:
        known = _views.get((store_url, key))
    if known is None or time.monotonic() - known[0] > VIEW_FRESH:
        return None
    return known[1], known[2], known[0]


TIMESTAMPS = ("created", "updated")
#: a batch of at least this many items is settled with one listing of the
#: folder they share (:meth:`Committer.settle_batch`) instead of a GET each
SETTLE_LIST_MIN = 4
#: keys beyond twice the batch that settle_batch lists before giving up
SETTLE_LIST_SLACK = 1000
#: seconds a document read before the batch (:attr:`Committer.seeded`)
#: stands in for preflight's read of it; an older one is read again
SEED_FRESH = 2.0


def utcnow() -> datetime:
    """Clock for the ``created``/``updated`` bookkeeping fields only."""
    return datetime.now(UTC)


def item_start(item: dict) -> datetime:
    """Start time of an item document (datetime or start_datetime)."""
    return parse_time(item_interval(item)[0])


def _without_timestamps(item: dict) -> dict:
    props = {k: v for k, v in item.get("properties", {}).items() if k not in TIMESTAMPS and k not in VOLATILE}
    links = [
        link
        for link in item.get("links", [])
        if not (isinstance(link, dict) and link.get("rel") in VOLATILE_RELS)
    ]
    return {**item, "properties": props, "links": links}


#: the asset whose href says which product an item describes
DATA_ASSET = "data"
#: item property marking an item made of several products (a multi-asset
#: item, :mod:`producer.grouping`): its identity is per asset key, and only
#: products of a group merge into it
GROUP = "producer:group"


def product_href(item: dict | None) -> str | None:
    """The href of ``item``'s data asset: the product the item describes.

    That href is the product's location after href rewrites, written by
    every registration, so it already records the item's identity and no
    extra field is needed. ``None`` when the item has no data asset (then
    nothing is known about the product and no identity check is made).
    """
    assets = (item or {}).get("assets")
    asset = assets.get(DATA_ASSET) if isinstance(assets, dict) else None
    href = asset.get("href") if isinstance(asset, dict) else None
    return href if isinstance(href, str) and href else None


def normalise_href(href: str) -> str:
    """``href`` in one spelling per location, for comparisons only.

    Lower-case scheme, ``s3a://``/``s3n://`` → ``s3://``, ``file://`` URLs and
    local paths → a normalised absolute path; ``http(s)://`` URLs lose their
    credentials (``user:pw@``) and request-signing query parameters
    (:func:`producer.redact.clean_href`: ``X-Amz-*``, ``AWSAccessKeyId``,
    ``Signature``, ``X-Goog-*``, ...), which change between two signings of
    the same object. Object keys are
    otherwise kept as they are (``a//b`` and ``a/b`` are different S3 objects).
    """
    text = href.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.replace("+", "").replace(".", "").replace("-", "").isalnum():
        scheme = scheme.lower()
        if scheme in ("s3a", "s3n"):
            scheme = "s3"
        if scheme == "file":
            return posixpath.normpath(unquote(urlsplit(text).path))
        if scheme in ("http", "https"):
            parts = urlsplit(clean_href(text))  # one list of signing parameters
            host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            query = sorted(parse_qsl(parts.query, keep_blank_values=True))
            return f"{scheme}://{host}{unquote(parts.path)}" + (f"?{urlencode(query)}" if query else "")
        return f"{scheme}://{rest}"
    return posixpath.normpath(text)


def same_product(a: str, b: str) -> bool:
    """True when two data hrefs name the same product (see :func:`normalise_href`)."""
    return normalise_href(a) == normalise_href(b)


def _root_and_path(href: str) -> tuple[str, str]:
    """``href`` split into its store (``scheme://host``; ``""`` for a local
    path) and the path within it."""
    scheme, sep, rest = href.partition("://")
    if sep and scheme.lower() != "file":
        host, _, path = rest.partition("/")
        return f"{scheme}://{host}", "/" + path
    return "", urlsplit(href).path if sep else href


def rewrite_between(incoming: str, existing: str) -> str | None:
    """The href rewrite ``FROM=TO`` that turns ``incoming`` into
    ``existing`` when both end in the same folders and file name but lie
    in two stores (a local path and an https URL, two buckets): the item
    at ``existing`` most likely describes this product, published through a
    rewrite. ``None`` within one store (two folders, two products) or when
    the file names differ."""
    (root_in, path_in), (root_ex, path_ex) = _root_and_path(incoming), _root_and_path(existing)
    if root_in == root_ex or "?" in existing or "#" in existing:
        return None
    parts_in, parts_ex = path_in.split("/"), path_ex.split("/")
    common = 0
    while (
        common < min(len(parts_in), len(parts_ex)) - 1
        and parts_in[-1 - common] == parts_ex[-1 - common]
        and parts_in[-1 - common]
    ):
        common += 1
    while common > 0:
        # every folder shared (/srv/data/x.tif served as https://host/srv/data/x.tif):
        # map the first of them rather than nothing (/srv=https://host/srv)
        source = root_in + "/".join(parts_in[:-common])
        target = root_ex + "/".join(parts_ex[:-common])
        if source and target and not source.endswith("://") and not target.endswith("://"):
            return f"{source}={target}"
        common -= 1
    return None


class IdentityConflict(InputError):
    """Registering a product under an id that already describes another one.

    ``existing`` and ``incoming`` are the two products' hrefs. Nothing was
    written. Its hints (``id_template``, ``replace``) are phrased for Python
    in the message; the CLI and the event handler phrase them for theirs.
    The ``id_template`` hint only when its template would give the two
    products two ids, ``incoming`` another than ``item_id`` (not two names
    in one folder that differ only in characters an id cannot hold, nor the
    template already in use); else the message says to rename ``incoming``.
    """

    def __init__(self, item_id: str, where: str, existing: str, incoming: str) -> None:
        self.item_id, self.where, self.existing, self.incoming = item_id, where, existing, incoming
        rule = rewrite_between(incoming, existing)
        if rule is not None:
            # the same path under another root: most likely this very product,
            # registered before with an href rewrite that this call lacks
            # (replacing would publish its unrewritten location instead)
            super().__init__(
                f"item id {item_id!r} is taken: {where} describes {existing}, not {incoming}; "
                f"nothing was written. If that is this product published under another root, "
                "register it with the same href rewrite.",
                hints=(Hint("href_rewrites", [rule], "publish it where the item says"), REPLACE_HINT),
            )
            return
        new = suggested_id(incoming)
        helps = new is not None and new not in (item_id, suggested_id(existing))
        rename = "" if helps else f" To keep both, rename {incoming}: its name gives the same id."
        super().__init__(
            f"item id {item_id!r} is taken: {where} describes {existing}, not {incoming}; "
            f"nothing was written.{rename}",
            hints=(ID_TEMPLATE_HINT, REPLACE_HINT) if helps else (REPLACE_HINT,),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle (a process pool, Dask) rebuilds from the four fields, not the message
        return type(self), (self.item_id, self.where, self.existing, self.incoming), self.__dict__


def same_content(a: dict, b: dict) -> bool:
    """True if two item documents differ at most in ``created``/``updated``
    and the run that wrote them (:data:`producer.provenance.VOLATILE`,
    ``via`` links). Type-strict for booleans: ``true`` is not ``1``, ``false``
    is not ``0`` (Python's ``True == 1``); a whole number and the same float
    are one JSON number."""
    a, b = _without_timestamps(a), _without_timestamps(b)
    return a == b and _same_booleans(a, b)


def _same_booleans(a: Any, b: Any) -> bool:
    """For two values already ``==``: True unless a boolean in one stands
    where the other has a number. One walk without recursion, strings skipped
    (about 45 µs for a 7 kB item, against 2 µs for ``==`` alone)."""
    stack = [(a, b)]
    pop, extend = stack.pop, stack.extend
    while stack:
        x, y = pop()
        kind = type(x)
        if kind is dict:
            extend([(v, y[k]) for k, v in x.items()])
        elif kind is list or kind is tuple:
            extend(zip(x, y))
        elif kind is str:
            continue
        elif (kind is bool) is not (type(y) is bool):
            return False
    return True


CLAIM_TTL = intents.INTENT_TTL
"""Seconds an id index entry written before its item counts as a
registration under way (:meth:`Committer.claim_under_way`): past it, an entry
naming no item is one a killed registration left, free to take."""


@dataclass(frozen=True)
class IndexEntry:
    """An id index entry (partitioned collections): the key of the id's
    item and the entry's version; for an entry a registration wrote before
    its item, when (``claimed``, else None) and the product it claimed the
    id for (``product``: its normalised data href, or None; ``group``: a
    multi-asset item)."""

    key: str | None
    version: str | None
    claimed: datetime | None = None
    product: str | None = None
    group: bool = False

    def claimed_for_another(self, item: dict) -> bool:
        """Whether the claim was for a product :meth:`Committer.check_identity`
        would tell apart from ``item``'s (the same rule, from the entry)."""
        if self.group:
            return GROUP not in item.get("properties", {})
        new = product_href(item)
        return self.product is not None and new is not None and not same_product(self.product, new)


@dataclass
class CasOutcome:
    """What a compare-and-swap did: ``changed`` (wrote), ``created`` (new doc)."""

    doc: dict | None
    changed: bool = False
    created: bool = False
    #: version of ``doc`` on storage (what was written, or read when unchanged)
    version: str | None = None
    #: group commit with ``ack="durable"``: the change is durable as an intent,
    #: but ``doc`` does not hold it yet; ``follow()`` then finds its leader
    #: (:meth:`Committer._follow_or_lead`): None when a live one is bound to
    #: apply it, else this writer led and it returns the outcome, applied
    pending: bool = False
    follow: Callable[[], CasOutcome | None] | None = field(default=None, repr=False)


@dataclass
class RemoveOutcome:
    """What :meth:`Committer.remove_item` did.

    ``action``: ``removed`` (the item is gone and unlinked), ``absent`` (there
    was no item document; any link to it was dropped) or ``kept`` (a register
    rewrote the item while it was being removed: the newer item stays, linked).
    """

    action: str
    item: dict | None = None
    extent_recomputed: bool = False
    reason: str | None = None  # why the item was kept, when ``keep_if`` said so


def _parallel(fn: Callable[[T], R], args: Sequence[T]) -> list[R]:
    """``[fn(a) for a in args]``, run on up to 8 threads when there are several
    (independent small requests: one round trip of latency instead of n).
    Each runs in a copy of the caller's context (a store's batch or
    durability is context-local: :mod:`producer.store.local`), as do the
    helpers below."""
    return map_ordered(fn, args, min(8, len(args)))


def _both(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """``(first(), second())``, the two run concurrently."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(contextvars.copy_context().run, first)
        other = second()
        return pending.result(), other


def _three(first: Callable[[], A], second: Callable[[], B], third: Callable[[], T]) -> tuple[A, B, T]:
    """``(first(), second(), third())``, the three run concurrently."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        one = pool.submit(contextvars.copy_context().run, first)
        two = pool.submit(contextvars.copy_context().run, second)
        three = third()
        return one.result(), two.result(), three


def _stamped(existing: dict | None, new: dict, now: str) -> tuple[str, dict | None]:
    """The item write's action and the document to write (``None``: nothing
    to write) when ``new`` replaces ``existing``: ``created`` stamps both
    timestamps; ``unchanged`` when only the timestamps (and run fields)
    would differ; ``updated`` keeps ``created`` and stamps ``updated``.
    Mutates ``new``'s properties."""
    props = new["properties"]
    if existing is None:  # (an item moving in from another period brings its created)
        props["created"] = props.get("created") or now
        props["updated"] = now
        return "created", new
    if same_content(existing, new):
        return "unchanged", None
    props["created"] = existing.get("properties", {}).get("created", now)
    props["updated"] = now
    return "updated", new


def _footprint(item: dict) -> tuple[list[float], tuple[str, str]] | None:
    """What an item adds to its collection's extent (box, interval), or None
    when unreadable."""
    try:
        return box2d(item["bbox"]), item_interval(item)
    except (KeyError, TypeError, ValueError):
        return None


def _covers_footprint(new: dict, old: dict) -> bool:
    """True when ``new`` covers ``old``'s box and interval (an update that only
    grew the item: the extent can keep every edge); False when either is
    unreadable."""
    now, before = _footprint(new), _footprint(old)
    if now is None or before is None:
        return False
    return bbox_contains(now[0], before[0]) and interval_contains(list(now[1]), before[1])


def _set_assets(doc: dict, assets: Mapping[str, dict]) -> bool:
    """Add (or correct) ``assets`` in ``doc`` (mutated); True if it changed."""
    current = doc.get("assets")
    if not isinstance(current, dict):
        current = {}
    missing = {k: v for k, v in assets.items() if current.get(k) != v}
    if missing:
        doc["assets"] = {**current, **missing}
    return bool(missing)


def _links_child(doc: dict | None, href: str) -> bool:
    """Whether ``doc`` holds a ``child`` link to ``href``: what
    :func:`_add_missing` of that link finds there, so adds nothing (a link
    differing only in its title or type counts, as there)."""
    if doc is None:
        return False
    return any(link.get("rel") == "child" and link.get("href") == href for link in doc["links"])


def _add_missing(doc: dict, links: Sequence[dict]) -> bool:
    """Append each link whose (rel, href) ``doc`` lacks; True if any was added.

    Unlike :func:`docs.add_links` an existing link is left as it is (its title
    is not refreshed), so making sure of a chain link never rewrites a parent.
    """
    if not links:
        return False
    present = {(link.get("rel"), link.get("href")) for link in doc["links"]}
    changed = False
    for link in links:
        if (link["rel"], link["href"]) not in present:
            doc["links"].append(dict(link))
            present.add((link["rel"], link["href"]))
            changed = True
    return changed


@dataclass(frozen=True)
class _Change:
    """A writer's own change of its collection, as :meth:`Committer.group_commit` got it."""

    links: list[dict]
    items: list[dict]
    below: list[dict]
    assets: dict[str, dict]


class _Creation:
    """One writer's create-only write of a new item document, listed in
    :data:`_CREATIONS` from just before the write until the writer has
    linked the item (or failed). ``state``: ``pending`` (writing),
    ``created`` (its write made the document), ``lost`` (the document was
    there already), ``linked`` (created and linked: done), ``failed``
    (created, then not linked: the item is left for a rerun to link)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = "pending"


#: (catalog URL, item key) -> the creations of that item under way in this
#: process. Threads registering the same new product at once: each writer
#: whose create-only write lost finds the winner here, and does not count
#: linking the item (which the winner is doing too) as its own creation.
#: Writers in other processes are not seen: each that links the item may
#: say ``created`` (changes are delivered at least once, docs/RELIABILITY.md).
_CREATIONS: dict[tuple[str, str], list[_Creation]] = {}
_CREATIONS_LOCK = threading.Lock()
#: seconds a linked creation stays listed: a writer that lost to it may
#: still be backing off before it reads the item, and it looked at the
#: parent (read before its write) when the item was not linked yet
RECENT_CREATION = 10.0
#: (catalog URL, item key) -> ``time.monotonic()`` when a creation of that
#: item in this process was linked, oldest first (a key linked again moves
#: to the end), for :data:`RECENT_CREATION` seconds. Kept apart from
#: :data:`_CREATIONS` as plain keys and floats, which the garbage collector
#: stops tracking: a list and a ``_Creation`` per linked item, alive for
#: 10 s, were promoted to the oldest generation and made the collector
#: sweep every object of the process about once per 300 upserts (~45 us of
#: each, ``bench/n0_cpu.py``)
_LINKED: dict[tuple[str, str], float] = {}
#: what a writer that lost to a linked creation sees of it
_LINKED_CREATION = _Creation()
_LINKED_CREATION.state = "linked"


def _unlist(url: str, key: str, creation: _Creation) -> None:
    """Take ``creation`` off :data:`_CREATIONS` (the caller holds the lock)."""
    listed = _CREATIONS.get((url, key), [])
    if creation in listed:
        listed.remove(creation)
    if not listed:
        _CREATIONS.pop((url, key), None)


#: the backoff jitter of every committer of this process (seeding a generator
#: per committer, from os.urandom, was ~11 us of every register); a forked
#: child seeds it again, so processes forked from one do not back off in step
_RNG = random.Random()
os.register_at_fork(after_in_child=_RNG.seed)


@dataclass
class Committer:
    """Writes items and parent documents of one catalog through ``store``.

    ``validate(doc, where)`` must raise for an invalid document; it is called
    on every document before it is written. ``conflicts`` counts
    compare-and-swap attempts that lost a race (each retried, or the last
    one given up) and ``backoff_seconds`` the time slept between retries;
    both only grow, so a caller reads them before and after an operation.
    """

    store: Store
    validate: Callable[[dict, str], None]
    layout: Layout = field(default_factory=Layout)
    root_meta: dict | None = None
    max_retries: int = 25
    backoff: float = 0.05
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=lambda: _RNG)
    conflicts: int = 0
    backoff_seconds: float = 0.0
    #: warnings this committer already logged (each once per run)
    notices: set[str] = field(default_factory=set)
    #: intents listed by :meth:`preflight`, per collection id (consumed by
    #: the next :meth:`group_commit` of that collection)
    listed_intents: dict[str, list[str]] = field(default_factory=dict)
    #: the collection document as this committer's last :meth:`link_items`
    #: of it left it (written, or read back), per collection id
    committed: dict[str, dict] = field(default_factory=dict)
    #: version of each item document as :meth:`write_item` left it (written
    #: or found unchanged), so :meth:`settle_batch` can compare listings
    written_versions: dict[str, str | None] = field(default_factory=dict)
    #: items :meth:`settle_items` wrote again (a concurrent remove took
    #: them), as committed: newer stamps than the remover's tombstone, so
    #: the sinks are handed these, not the first write
    rewritten: dict[str, dict] = field(default_factory=dict)
    #: item key -> the document :meth:`write_item` replaced, when the update
    #: moved the item's box or interval (:meth:`shrink_after_updates`)
    replaced: dict[str, dict] = field(default_factory=dict)
    #: documents read just before this committer existed (key -> bytes,
    #: version, ``time.monotonic()`` of the read, and the document parsed
    #: from the bytes or None; e.g. the collection read to choose the
    #: layout): :meth:`preflight` uses one younger than :data:`SEED_FRESH`
    #: instead of reading (and parsing) it again. A parsed one is shared:
    #: nothing here mutates a document read (compare-and-swap mutates copies)
    seeded: dict[str, tuple[bytes, str, float, dict | None]] = field(default_factory=dict)
    #: intents listed just before this committer existed, per collection id
    #: (``time.monotonic()`` of the listing, keys): :meth:`preflight` uses
    #: one younger than :data:`SEED_FRESH` instead of listing again
    seeded_intents: dict[str, tuple[float, list[str]]] = field(default_factory=dict)
    #: write the asset hrefs of products under the catalog root relative to
    #: the item document (:mod:`producer.hrefs`); False keeps them absolute
    #: (a thumbnail, stored in the catalog, is relative either way)
    relative_hrefs: bool = True
    #: item key -> this committer's create-only write of it (:data:`_CREATIONS`)
    creations: dict[str, _Creation] = field(default_factory=dict)
    #: item key -> the other writers' creations of it this committer's
    #: create-only write lost to (:meth:`created_by_another`)
    others_creating: dict[str, list[_Creation]] = field(default_factory=dict)
    #: when a contended :meth:`group_commit` returns: ``"linked"`` once the
    #: change is in the collection, ``"durable"`` once its intent is stored
    #: and a live leader is bound to apply it (:meth:`_follow_or_lead`)
    ack: str = "linked"
    #: item keys whose collection change a leader has still to apply (their
    #: :meth:`link_items` returned under ``ack="durable"``)
    pending_links: set[str] = field(default_factory=set)
    #: ``ack="durable"``: the looks for a leader that :meth:`link_items`
    #: left to :meth:`finish_pending` (``defer_lease=True``)
    deferred: list[Callable[[], None]] = field(default_factory=list)
    #: keys of the documents the last :meth:`preflight` took from this
    #: process's view (:func:`recent_view`) instead of reading them
    viewed: set[str] = field(default_factory=set)

    # -- reading -------------------------------------------------------------

    def read(self, key: str, expect: Sequence[str] | None = None) -> tuple[dict | None, str | None]:
        """``(doc, version)``, or ``(None, None)`` if the key does not exist."""
        try:
            data, version = self.store.get(key)
        except NotFound:
            return None, None
        doc = docs.loads(data, self.store_path(key), expect=expect)
        return absolute_assets(doc, self.store_path(key)), version  # relative hrefs resolved

    def store_path(self, key: str) -> str:
        return f"{self.store.url}/{key}"

    def stored_form(self, key: str, doc: dict) -> dict:
        """``doc`` as written at ``key``: an item's asset hrefs under the
        catalog root made relative (:func:`producer.hrefs.relative_assets`)."""
        keys = None if self.relative_hrefs else (THUMBNAIL_ASSET,)
        return relative_assets(doc, self.store_path(key), self.store.url, keys)

    def _remember(self, key: str, doc: dict | None, version: str | None, at: float) -> None:
        """Under ``ack="durable"`` on a store shared by several writers:
        :func:`remember_view` of ``doc`` (read or written at ``at``)."""
        if self.ack == "durable" and self.store.concurrent_safe and doc is not None and version is not None:
            remember_view(self.store.url, key, doc, version, at)

    # -- compare-and-swap ---------------------------------------------------

    def _put_over(self, key: str, data: bytes, version: str | None) -> str:
        """Write ``data`` at ``key`` over the version read (None: the key did
        not exist, so the write is create-only); raises PreconditionFailed if
        another writer got there first. Returns the new version."""
        if version is None:
            return self.store.put(key, data, create_only=True)
        return self.store.put(key, data, if_version=version)

    def _lost_race(self, key: str, attempt: int) -> None:
        """Count a compare-and-swap on ``key`` that lost a race and, unless
        it was the last attempt, back off before the next one."""
        self.conflicts += 1
        if attempt < self.max_retries:
            self._sleep(attempt, key)

    def _sleep(self, attempt: int, key: str = "") -> None:
        """Sleep a jittered exponential backoff after lost attempt ``attempt``
        (0-based) on ``key``; adds it to :attr:`backoff_seconds`."""
        delay = self.rng.uniform(0, min(5.0, self.backoff * (2**attempt)))
        log.debug(
            "compare-and-swap conflict on %s (attempt %d of %d): retrying after %.3f s",
            key,
            attempt + 1,
            self.max_retries + 1,
            delay,
        )
        self.backoff_seconds += delay
        time.sleep(delay)

    def _give_up(self, key: str, message: str) -> ConflictError:
        """The :class:`ConflictError` to raise after the last lost race on
        ``key``, logged as a WARNING."""
        attempts = self.max_retries + 1
        log.warning("gave up on %s after %d attempts: other writers kept changing it", key, attempts)
        return ConflictError(message, hints=(Hint("max_retries", 2 * attempts, "try more often"),))

    def check_update(self, key: str, old: dict | None, new: dict) -> None:
        """Validate ``new`` before it replaces ``old``.

        Links already present in ``old`` were validated when they were
        written, and the catalog and collection schemas check each link on
        its own, so only child/item links that are new or changed are
        validated again (structural links always are): a parent holding
        100,000 links costs the same to check as one holding ten. Items are
        always validated whole.
        """
        if old is None or new.get("type") not in ("Catalog", "Collection"):
            self.validate(new, self.store_path(key))  # items: few links, cross-link rules
            return
        light = dict(new)
        light["links"] = docs.new_or_changed_links(old.get("links", []), new["links"])
        self.validate(light, self.store_path(key))

    def cas(
        self,
        key: str,
        mutate: Mutation,
        *,
        expect: Sequence[str],
        first: tuple[dict | None, str | None] | None = None,
        validated: bool = False,
    ) -> CasOutcome:
        """Apply ``mutate`` to the document at ``key`` until the write wins.

        ``mutate`` gets a private copy of the current document (or ``None``
        if absent) and returns the new document, or ``None`` for no change.
        It may run several times, on fresher documents, so it must be a pure
        function of its argument. ``first`` is an already-read
        ``(doc, version)`` to start from. Raises :class:`ConflictError` after
        ``max_retries`` lost races. ``validated``: the caller has already
        validated what ``mutate`` returns (up to bookkeeping fields), so it is
        not validated again.
        """
        for attempt in range(self.max_retries + 1):
            if first is not None and attempt == 0:
                current, version = first
            else:
                current, version = self.read(key, expect)
            new = mutate(docs.copy_doc(current) if current is not None else None)
            if new is None:
                return CasOutcome(current, version=version)
            if not validated:
                self.check_update(key, current, new)
            try:
                written = self._put_over(key, docs.dumps(self.stored_form(key, new)), version)
            except PreconditionFailed:
                self._lost_race(key, attempt)
                continue
            return CasOutcome(new, changed=True, created=version is None, version=written)
        raise self._give_up(
            key,
            f"{self.store_path(key)}: gave up after {self.max_retries + 1} attempts because "
            "other writers kept changing it; retry later or reduce the number of concurrent writers",
        )

    # -- items ------------------------------------------------------------------

    def check_identity(self, key: str, existing: dict | None, item: dict) -> None:
        """Raise :class:`IdentityConflict` if ``existing`` (the document now at
        ``key``) describes another product than ``item``. Reads nothing."""
        if existing is None:
            return
        if GROUP in existing.get("properties", {}) and GROUP not in item.get("properties", {}):
            described = ", ".join(sorted(existing.get("assets") or {})) or "no asset"
            incoming = product_href(item) or "a single product"
            raise IdentityConflict(
                str(item.get("id")), self.store_path(key), f"a multi-asset item ({described})", incoming
            )
        old, new = product_href(existing), product_href(item)
        if old is not None and new is not None and not same_product(old, new):
            raise IdentityConflict(str(item.get("id")), self.store_path(key), old, new)

    def keep_thumbnail(self, key: str, existing: dict | None, item: dict) -> dict:
        """``item`` (not mutated), registered without a thumbnail, with the
        ``thumbnail`` asset of the stored item ``existing`` at ``key`` when
        that is a preview this tool rendered of the same product: a rerun
        without the thumbnail option keeps it (as a multi-asset item keeps
        its own), so the item is ``unchanged`` and never left without the
        link while its PNG stays in the catalog. Another product's
        (``replace``) is not kept: it shows the other product."""
        assets = item.get("assets")
        if existing is None or not isinstance(assets, dict) or THUMBNAIL_ASSET in assets:
            return item
        old, new = product_href(existing), product_href(item)
        if old is None or new is None or not same_product(old, new):
            return item
        if rendered_thumbnail(key, existing, self.store.url) is None:
            return item
        kept = copy.deepcopy(existing["assets"][THUMBNAIL_ASSET])
        return {**item, "assets": {**assets, THUMBNAIL_ASSET: kept}}

    def put_item(self, key: str, item: dict, *, replace: bool = False) -> str:
        """:meth:`write_item`, returning only the action."""
        return self.write_item(key, item, replace=replace)[0]

    def write_item(
        self, key: str, item: dict, *, replace: bool = False, lines: dict[str, str] | None = None
    ) -> tuple[str, dict]:
        """Write one item document; return ``created``, ``updated`` or
        ``unchanged``, and the document as committed (the one written, or the
        stored one when unchanged: what the sinks are handed).

        ``lines``: when the item is created by the first, create-only write
        and its document as written is the committed one (no href made
        relative), its :func:`~producer.changes.item_line` goes there under
        ``key``, made with the document's encoding
        (:func:`~producer.catalog.documents.dumps_with_line`: one more
        orjson pass while the document is warm in the caches, instead of
        the mirror sink's encoding and checks after the commit); otherwise
        nothing goes there.

        Keeps an existing item's ``created`` and sets ``updated``; writes
        nothing when only those two would differ. An existing item that
        describes another product (another data href) is not overwritten:
        :class:`IdentityConflict` is raised and nothing is written, unless
        ``replace`` is true. The check sees the document the compare-and-swap
        replaces, so a concurrent writer cannot slip another product in
        between. ``item`` is not mutated and must have been validated by the
        caller (the timestamps set here are the only change).
        """
        outcome = {"action": "unchanged"}
        item = absolute_assets(item, self.store_path(key))  # as read back (a relative thumbnail)

        def mutate(existing: dict | None) -> dict | None:
            self.replaced.pop(key, None)
            if existing is not None and not replace:
                self.check_identity(key, existing, item)
            fresh = self.keep_thumbnail(key, existing, copy.deepcopy(item))
            outcome["action"], new = _stamped(existing, fresh, format_time(self.clock()))
            if existing is not None and new is not None and _footprint(existing) != _footprint(new):
                self.replaced[key] = existing
            return new

        # Optimistic first attempt: most items of a batch are new, and
        # If-None-Match: * already refuses to overwrite, so PUT without a GET
        # (one request instead of two on S3). A 412 means the item exists: it
        # is read and the usual compare-and-swap continues from there. That
        # 412 lost no race (nothing was read), so it is not a conflict and
        # costs no backoff.
        first = self._as_created(item)
        line = None
        self._begin_creation(key)
        try:
            data, line = self._encode_created(key, first, lines is not None)
            self.written_versions[key] = self.store.put(key, data, create_only=True)
        except PreconditionFailed:
            self._lost_creation(key)
        except BaseException:
            self._lost_creation(key)
            raise
        else:
            self.creations[key].state = "created"
            if line is not None and lines is not None:
                lines[key] = line
            return "created", first
        result = self.cas(key, mutate, expect=("Feature",), validated=True)
        committed = result.doc
        assert committed is not None  # written, or the existing document kept
        self.written_versions[key] = result.version
        return outcome["action"], committed

    def _begin_creation(self, key: str) -> None:
        """List this committer's create-only write of ``key`` as under way
        (:data:`_CREATIONS`), before it is made."""
        creation = _Creation()
        with _CREATIONS_LOCK:
            _CREATIONS.setdefault((self.store.url, key), []).append(creation)
        self.creations[key] = creation

    def _lost_creation(self, key: str) -> None:
        """The create-only write of ``key`` found a document there (or
        failed), or a merge found it there: drop this committer's creation
        of ``key`` from the list, if any, and keep the other writers'
        creations of ``key`` under way (one of them made the document)."""
        creation = self.creations.pop(key, None)
        with _CREATIONS_LOCK:
            if creation is not None:
                creation.state = "lost"
                _unlist(self.store.url, key, creation)
            others = list(_CREATIONS.get((self.store.url, key), []))
            if (self.store.url, key) in _LINKED:
                others.append(_LINKED_CREATION)
        if others:
            self.others_creating[key] = others
        else:
            self.others_creating.pop(key, None)

    def created_by_another(self, key: str) -> bool:
        """Whether another writer of this process made the item document at
        ``key`` and has linked it, or may still be linking it: linking it
        here too is no creation of this writer's. False when that writer
        failed before linking it (the item is then this writer's to link)."""
        return any(c.state in ("pending", "created", "linked") for c in self.others_creating.get(key, ()))

    def linked_creations(self, keys: Iterable[str]) -> None:
        """This committer's creations of ``keys`` are linked: done."""
        for key in keys:
            creation = self.creations.get(key)
            if creation is not None and creation.state == "created":
                creation.state = "linked"

    def finish_creations(self) -> None:
        """The end of this committer's creations (a batch linked, or failed):
        each is taken off :data:`_CREATIONS`, a linked one (see
        :meth:`linked_creations`) after :data:`RECENT_CREATION` seconds; one
        made and not linked failed, so a writer that lost to it links the
        item as its own creation."""
        now = time.monotonic()
        with _CREATIONS_LOCK:
            for key, creation in self.creations.items():
                if creation.state == "linked":  # listed a while yet (RECENT_CREATION)
                    _LINKED.pop((self.store.url, key), None)  # to the end: the newest
                    _LINKED[(self.store.url, key)] = now
                else:
                    creation.state = "failed" if creation.state in ("pending", "created") else creation.state
                _unlist(self.store.url, key, creation)
            stale = []
            for listed, linked_at in _LINKED.items():  # oldest first: stops at the first fresh one
                if now - linked_at <= RECENT_CREATION:
                    break
                stale.append(listed)
            for listed in stale:
                del _LINKED[listed]
        self.creations.clear()

    def _as_created(self, item: dict) -> dict:
        """``item`` as a new item document: ``created`` and ``updated`` now
        (a shallow copy: ``item`` is not mutated and the committed document
        only gains the timestamps, which are not shared). An item moving in
        from another period brings the ``created`` of the one it replaces
        (set by the move, :func:`producer.ingest._check_same_product`): kept."""
        now = format_time(self.clock())
        created = item["properties"].get("created") or now
        return {**item, "properties": {**item["properties"], "created": created, "updated": now}}

    def _encode_created(self, key: str, first: dict, with_line: bool) -> tuple[bytes, str | None]:
        """The bytes of a new item document ``first`` as stored at ``key``
        and, when ``with_line`` and the stored form is ``first`` itself (no
        href made relative), its mirror line from the same encoding
        (:func:`~producer.catalog.documents.dumps_with_line`); else None for
        the line."""
        stored = self.stored_form(key, first)
        if with_line and stored is first:
            return docs.dumps_with_line(stored)
        return docs.dumps(stored), None

    def stage_item(
        self, staging: Staging, key: str, item: dict, lines: dict[str, str] | None = None
    ) -> dict | None:
        """:meth:`write_item`'s first attempt, staged: the new item document
        goes to ``staging`` (a local batch's :class:`~producer.store.local.Staging`),
        which names it only when :meth:`publish_staged` has made the batch
        durable. Returns the document as it will be committed, or None when
        the item exists already (nothing staged: :meth:`write_item` it).
        ``item`` and ``lines`` as for :meth:`write_item` (the line goes there
        once the document is staged; the caller drops it if publishing
        fails)."""
        item = absolute_assets(item, self.store_path(key))  # as read back (a relative thumbnail)
        first = self._as_created(item)
        line = None
        self._begin_creation(key)
        try:
            data, line = self._encode_created(key, first, lines is not None)
            staging.stage(key, data)
        except PreconditionFailed:
            self._lost_creation(key)
            return None
        except BaseException:
            self._lost_creation(key)
            raise
        if line is not None and lines is not None:
            lines[key] = line
        return first

    def publish_staged(self, staging: Staging) -> dict[str, ProducerError | None]:
        """Name every item :meth:`stage_item` staged (see
        :meth:`~producer.store.local.Staging.publish`). Returns, per staged
        key: None (created), :class:`PreconditionFailed` (another writer
        created it meanwhile: :meth:`write_item` it now) or the
        :class:`StoreError` that failed it."""
        out: dict[str, ProducerError | None] = {}
        for key, outcome in staging.publish().items():
            if isinstance(outcome, str):
                self.written_versions[key] = outcome
                if key in self.creations:
                    self.creations[key].state = "created"
                out[key] = None
            else:
                self._lost_creation(key)
                out[key] = outcome
        return out

    def merge_item(
        self, key: str, item: dict, merge: Callable[[dict | None, dict], dict]
    ) -> tuple[str, dict]:
        """:meth:`write_item` for an item made of several products (a
        multi-asset item, :mod:`producer.grouping`): writes ``merge(existing,
        item)`` under compare-and-swap on the item document, so writers of
        other assets of the same item, running at the same time, never wipe
        each other's assets (the loser re-reads and merges again).

        ``merge`` gets a private copy of the stored document (``None`` if
        absent) and returns the new one; it may raise (an identity conflict):
        then nothing is written. Same ``created``/``updated``/``unchanged``
        rules as :meth:`write_item`; the merged document is validated whole
        before it is written. ``item`` is not mutated.
        """
        outcome = {"action": "unchanged"}
        item = absolute_assets(item, self.store_path(key))  # as read back (a relative thumbnail)

        def mutate(existing: dict | None) -> dict | None:
            self.replaced.pop(key, None)
            # an attempt that would create the item is listed as a creation
            # under way (see write_item); one that finds it made by another lost
            if existing is None and key not in self.creations:
                self._begin_creation(key)
            elif existing is not None:
                self._lost_creation(key)
            outcome["action"], new = _stamped(existing, merge(existing, item), format_time(self.clock()))
            if existing is not None and new is not None and not _covers_footprint(new, existing):
                # as write_item: an edge the stored item held may be given up; an
                # asset that only widened the item (the usual merge) gives up none
                self.replaced[key] = existing
            return new

        try:
            committed = self.cas(key, mutate, expect=("Feature",)).doc
        except BaseException:
            if key in self.creations:
                self._lost_creation(key)
            raise
        if key in self.creations:
            self.creations[key].state = "created"
        assert committed is not None  # written, or the existing document kept
        return outcome["action"], committed

    # -- parents ----------------------------------------------------------------

    def collection_title(self, collection_id: str, preread: Mapping[str, tuple], given: str) -> str:
        """The title links to the collection carry: an existing collection's
        own (its id when it has none), whatever metadata this call gave for a
        new one (which that collection keeps); ``given`` for a new one. A
        title taken from the call made every item of a rerun without it (or
        with another) ``updated``, naming the collection by a title it lacks."""
        doc = preread.get(self.layout.collection_key(collection_id), (None, None))[0]
        if doc is None:
            return given
        title = doc.get("title")
        return title if isinstance(title, str) and title else collection_id

    def link_items(
        self,
        collection_id: str,
        items: Sequence[tuple[str, dict]],
        collection_meta: dict | None = None,
        preread: dict[str, tuple[dict | None, str | None]] | None = None,
        defer_lease: bool = False,
    ) -> set[str]:
        """Link already-written items into their parents, bottom-up, and make
        sure every link up their chains exists. Returns the keys of the items
        this call linked: their parent lacked their link when this call
        looked, and now holds it (see :meth:`_noting`); under
        ``ack="durable"`` the collection's change may be pending instead
        (:attr:`pending_links`), and ``defer_lease`` leaves the look for its
        leader (one GET, or leading) to :meth:`finish_pending`, which the
        caller must run (e.g. beside its sinks).

        ``items`` are ``(key, doc)`` pairs of one collection. At most one
        compare-and-swap per parent document: the catalogs that link the
        items, every partition above them, the collection (links + extent)
        and the root. ``preread`` holds documents read by :meth:`preflight`.

        Each ancestor is checked for its link to the document below, whether
        or not this call created that document: a writer killed after
        creating a partition (or the collection) but before linking it upward
        leaves a state that the next call completes, be it a re-run of the
        registration or ``reconcile --fix`` linking an orphan item. Cost: with
        ``preread`` the check is free (the first compare-and-swap attempt
        starts from the pre-read document and writes nothing when the link is
        there); without it, one GET per ancestor. A parent is written only if
        a link or the extent really changed. Which items it linked costs no
        request: the look is at the documents the compare-and-swaps read
        anyway (:meth:`_noting`).
        """
        preread = dict(preread or {})
        layout = self.layout
        coll_key = layout.collection_key(collection_id)
        coll_title = self.collection_title(
            collection_id, preread, (collection_meta or {}).get("title") or collection_id
        )
        hrefs: dict[str, dict[str, str]] = {}  # parent key -> item link href -> item key
        unlinked: dict[str, set[str]] = {}  # parent key -> item keys it lacked (see _noting)

        # level 0: the documents that link items directly
        by_parent: dict[str, list[dict]] = {}
        ensure: dict[str, list[dict]] = {}  # child links an ancestor must hold
        child_of: dict[str, str] = {}  # partition key -> its parent key
        for key, item in items:
            chain = layout.item_chain(collection_id, key)  # from the key: also below split partitions
            parent = chain[0]
            href = relative_href(parent, key)
            hrefs.setdefault(parent, {})[href] = key
            by_parent.setdefault(parent, []).append(
                {
                    "rel": "item",
                    "href": href,
                    "type": docs.GEOJSON,
                    "title": item.get("properties", {}).get("title") or item["id"],
                }
            )
            for child, up in zip(chain[:-2], chain[1:-1]):
                child_of[child] = up

        # Partitions deepest first, then the collection, then the root.
        partitions = sorted(child_of, key=lambda k: k.count("/"), reverse=True)
        for pkey in partitions:
            links = by_parent.pop(pkey, [])
            below = ensure.pop(pkey, [])
            up = child_of[pkey]
            label = partition_label(collection_id, pkey)
            self.cas(
                pkey,
                self._noting(
                    hrefs.get(pkey, {}),
                    unlinked.setdefault(pkey, set()),
                    self._partition_mutation(pkey, up, collection_id, label, coll_title, links, below),
                ),
                expect=("Catalog",),
                first=preread.pop(pkey, None),
            )
            ensure.setdefault(up, []).append(
                {
                    "rel": "child",
                    "href": relative_href(up, pkey),
                    "type": docs.JSON,
                    "title": f"{coll_title} {label}",
                }
            )

        coll_links = by_parent.pop(coll_key, [])
        item_docs = [doc for _, doc in items]
        # the stac-geoparquet mirror file of each partition written
        mirror_keys = {mirror_key(key) for key, _ in items}
        mirror = mirror_assets(collection_id, mirror_keys)
        # With partitions, the items were linked below the collection after
        # preflight read it: read it again, so a shrink marker put meanwhile
        # is seen (a shrink's walk may have missed those links).
        coll_first = preread.pop(coll_key, None)
        self._write_mirror_bases(collection_id, mirror_keys, mirror, coll_first)
        if partitions:
            coll_first = None
        below = ensure.pop(coll_key, [])
        if self.store.concurrent_safe:
            # the first look only: a writer that applies this one's intent
            # links these items for it, and never announces them itself
            outcome = self.group_commit(
                collection_id,
                collection_meta,
                coll_links,
                item_docs,
                below,
                mirror,
                coll_first,
                looked=self._noting(hrefs.get(coll_key, {}), unlinked.setdefault(coll_key, set())),
            )
        else:  # one writer at a time by contract (see producer/store/fsspec_store.py)
            outcome = self.cas(
                coll_key,
                self._noting(
                    hrefs.get(coll_key, {}),
                    unlinked.setdefault(coll_key, set()),
                    self._collection_mutation(
                        collection_id, collection_meta, coll_links, item_docs, below, mirror
                    ),
                ),
                expect=("Collection",),
                first=coll_first,
            )
        if outcome.doc is not None:
            self.committed[collection_id] = outcome.doc
            if outcome.changed:
                self._remember(coll_key, outcome.doc, outcome.version, time.monotonic())
        if outcome.pending:
            keys = [key for key, _ in items]
            self.pending_links.update(keys)
            if outcome.follow is not None:
                self.deferred.append(
                    functools.partial(self._after_pending, collection_id, keys, outcome.follow)
                )
            if not defer_lease:
                self.finish_pending()
        root_first = preread.pop(layout.root_key, None)
        if root_first is None or not _links_child(root_first[0], relative_href(layout.root_key, coll_key)):
            # (the pre-read root linking the collection: the compare-and-swap's
            # first attempt would copy it and find nothing to add)
            rooted = self.cas(
                layout.root_key,
                self._root_mutation(coll_key, coll_title),
                expect=("Catalog", "Collection"),
                first=root_first,
            )
            if rooted.changed:
                self._remember(layout.root_key, rooted.doc, rooted.version, time.monotonic())
        return set().union(*unlinked.values())

    def _after_pending(
        self, collection_id: str, keys: list[str], follow: Callable[[], CasOutcome | None]
    ) -> None:
        """Run ``follow`` (:meth:`_follow_or_lead`); when this writer led,
        its items are linked now: no longer pending, and the collection as
        it left it is the committed one."""
        led = follow()
        if led is not None:
            self.pending_links.difference_update(keys)
            if led.doc is not None:
                self.committed[collection_id] = led.doc
                if led.changed:
                    key = self.layout.collection_key(collection_id)
                    self._remember(key, led.doc, led.version, time.monotonic())

    def finish_pending(self) -> None:
        """Run the looks for a leader that :meth:`link_items` deferred
        (``defer_lease=True``), in order; each may lead. Raises what one
        raised (its intent withdrawn; the others not run: their writes are
        reported failed by the caller too)."""
        while self.deferred:
            self.deferred.pop(0)()

    @staticmethod
    def _noting(hrefs: Mapping[str, str], unlinked: set[str], mutate: Mutation | None = None) -> Mutation:
        """``mutate`` (None: no change), which first puts into ``unlinked``
        the items of ``hrefs`` (item link href -> item key: the items
        :meth:`link_items` links into that parent) the document it is given
        lacks, replacing what an earlier call put there.

        In a compare-and-swap the last call is the attempt that won (or found
        nothing to do), so ``unlinked`` ends holding the items this writer
        linked, not one a racing writer linked between two attempts. In
        :meth:`group_commit` (``looked``) it is called once, on the document
        as first read: another writer may apply this one's intent, linking
        its items for it, so what was missing then is this writer's to
        announce. A racing register of the same product may announce it as
        well (changes are delivered at least once)."""

        def noted(doc: dict | None) -> dict | None:
            unlinked.clear()
            if hrefs:
                present = (
                    {link.get("href") for link in doc["links"] if link.get("rel") == "item"}
                    if doc is not None
                    else set()
                )
                unlinked.update(key for href, key in hrefs.items() if href not in present)
            return mutate(doc) if mutate is not None else None

        return noted

    def _write_mirror_bases(
        self,
        collection_id: str,
        keys: set[str],
        mirror: dict[str, dict],
        known: tuple[dict | None, str | None] | None,
    ) -> None:
        """Create, empty and create-only, each mirror base file of ``keys``
        whose asset (in ``mirror``) the collection as last read (``known``:
        pre-read, else as this committer committed it) does not carry yet,
        BEFORE the
        compare-and-swap (or intent) that adds the asset, like items before
        their links: a committed collection carrying a mirror asset then
        implies its file exists, and a crash in between leaves an unlinked
        empty file, which readers ignore. A file another writer created
        meanwhile is fine (PreconditionFailed). Nothing to write when the
        collection carries every asset already (every later batch of a
        partition)."""
        doc = known[0] if known is not None else self.committed.get(collection_id)
        have = carried(doc, mirror)
        missing = sorted(key for key in keys if mirror_asset_key(collection_id, key) not in have)

        def one(key: str) -> None:
            try:
                self.store.put(key, EMPTY_BASE, create_only=True)
            except PreconditionFailed:
                pass  # there already (another writer, or a batch killed before its link)

        if len(missing) == 1:
            one(missing[0])
        elif missing:
            _parallel(one, missing)

    def collection_doc(self, collection_id: str) -> dict | None:
        """The collection document for the sinks after a commit: the one
        this committer's last :meth:`link_items` of it wrote or read back
        (no request), else one GET (None: absent)."""
        doc = self.committed.get(collection_id)
        if doc is not None:
            return doc
        return self.read(self.layout.collection_key(collection_id), ("Collection",))[0]

    # -- group commit of the collection document --------------------------------

    def group_commit(
        self,
        collection_id: str,
        meta: dict | None,
        links: list[dict],
        items: list[dict],
        below: Sequence[dict] = (),
        assets: Mapping[str, dict] | None = None,
        first: tuple[dict | None, str | None] | None = None,
        looked: Mutation | None = None,
    ) -> CasOutcome:
        """The collection's compare-and-swap of :meth:`link_items`, shared by
        every writer of the collection (group commit). ``looked``, when
        given, is called once with the collection as this writer first read
        it (``first``, else its first GET); it must not change it.

        1. If the change (``links``, ``below``, extent of ``items``,
           ``assets``) is already in ``first`` (or the stored collection),
           nothing is written.
        2. Announce it: create-only put of an intent
           (``<collection>/_intents/<token>.intent``), together with the
           first attempt's listing and read.
        3. Each attempt: list the intents and read the collection (in
           parallel), read the intents not seen yet, apply this writer's and
           every other fresh one (:data:`intents.INTENT_FRESH`) of the same
           layout in ONE compare-and-swap. The writer of the oldest pending
           intent leads: the others look at its intent (one HEAD) about one
           round trip apart (their last listing and read), for at most
           :data:`LEADER_WAITS` * :data:`LEADER_WAIT` seconds per leader
           (once it is gone, back to the listing and read at once: done, or
           the next leader) before putting themselves.
           The winner deletes every intent it applied; a writer whose put lost, or whose intent is gone from
           the listing, reads the collection and stops when its change is in
           it (applied by the winner), without retrying.

        Writes: the intent, at most one collection document per attempt, and
        deletes of applied intents (any other writer's found applied too).
        Crash-safe: see docs/ARCHITECTURE.md. ``conflicts`` counts lost puts.
        """
        coll_key = self.layout.collection_key(collection_id)
        expect = ("Collection",)
        own_mutation = self._collection_mutation(collection_id, meta, links, items, below, assets)
        listed_before = self.listed_intents.pop(collection_id, None)
        doc, version = first if first is not None else self.read(coll_key, expect)
        own_new = own_mutation(docs.copy_doc(doc)) if doc is not None else None
        if first is not None and doc is not None and own_new is None and coll_key in self.viewed:
            # the change is in this process's view of the collection (up to
            # VIEW_FRESH old), which a remove may have unlinked since: a rerun
            # writes nothing only on the collection as stored now
            doc, version = self.read(coll_key, expect)
            own_new = own_mutation(docs.copy_doc(doc)) if doc is not None else None
        if looked is not None:
            looked(doc)
        if doc is not None and own_new is None:
            return CasOutcome(doc, version=version)  # a rerun: the change is there
        give_up_message = (
            f"{self.store_path(coll_key)}: gave up after {self.max_retries + 1} attempts because "
            "other writers kept changing it; retry later or reduce the number of concurrent writers"
        )
        attempt = 0
        if doc is not None and not contended(self.store.url, collection_id):
            lost_before = self.conflicts
            assert own_new is not None
            won = self._optimistic_put(collection_id, own_new, doc, version, listed_before)
            if won is not None:
                return won
            if self.conflicts > lost_before:  # the plain put lost: that was the first attempt
                attempt = 1
                if attempt > self.max_retries:
                    raise self._give_up(coll_key, give_up_message)
        now = self.clock()
        own_key = intent_key(collection_id, intents.new_token(now))
        own_data = intents.dumps(
            intents.new_intent(collection_id, self.layout.record(), links, below, assets or {}, items, now)
        )
        versions: dict[str, str | None] = {}
        seen: dict[str, intents.Intent | None] = {}
        #: per leader's intent: the monotonic time this writer stops waiting for it
        patience: dict[str, float] = {}
        announced = False
        try:
            if self.ack == "durable" and doc is not None:
                # (a new collection is created linked: the root links it next)
                # the change is durable once its intent is stored; who applies
                # it (a live leader, or this writer leading) is settled by
                # ``follow``, which the caller may run beside its sinks
                versions[own_key] = self.store.put(own_key, own_data, create_only=True)
                own = _Change(links, items, list(below), dict(assets or {}))
                follow = functools.partial(self._follow_or_lead, collection_id, meta, own, own_key, versions)
                return CasOutcome(doc, version=version, pending=True, follow=follow)
            while attempt <= self.max_retries:
                started = time.monotonic()
                if announced:
                    listed, (doc, version) = _both(
                        lambda: self.list_intents(collection_id), lambda: self.read(coll_key, expect)
                    )
                else:
                    # the announcement alongside the first listing and read:
                    # the item (and its partitions) are written already, so the
                    # intent names only documents that exist whenever it lands;
                    # a listing that misses it changes nothing (this writer
                    # knows its own key), and one that overtakes another
                    # writer's announcement is the race step 4 already takes
                    own_version, listed, (doc, version) = _three(
                        lambda: self.store.put(own_key, own_data, create_only=True),
                        lambda: self.list_intents(collection_id),
                        lambda: self.read(coll_key, expect),
                    )
                    versions[own_key] = own_version
                    listed = sorted({*listed, own_key})
                    announced = True
                # about one round trip of this writer now: its pace for looks at a leader
                round_trip = min(LEADER_WAIT, max(LEADER_WAIT_MIN, time.monotonic() - started))
                if doc is not None and own_mutation(docs.copy_doc(doc)) is None:
                    # applied by another writer, which deletes what it applied
                    # (ours too, unless the listing shows it is still there)
                    if own_key in listed:
                        self._drop_intents([own_key], doc, collection_id, meta, seen, versions)
                    return CasOutcome(doc, version=version)
                # the writer of the oldest pending intent leads: the others give
                # it a moment to apply theirs too, instead of racing its put
                # (a leader that does not finish, e.g. died, is waited for only
                # LEADER_WAITS * LEADER_WAIT seconds; then anyone applies its
                # intent as well).
                # The keys say their age: a writer that waits reads no intent.
                now = self.clock()
                ages = {k: intents.key_time(k) for k in {*listed, own_key}}
                timed = sorted(
                    (t, k)
                    for k, t in ages.items()
                    if t is not None and (now - t).total_seconds() <= intents.INTENT_FRESH
                )
                if any(k != own_key for _, k in timed):  # another writer commits here now
                    note_contention(self.store.url, collection_id)
                leader = timed[0][1] if timed else own_key
                if leader != own_key:
                    patience.setdefault(leader, time.monotonic() + LEADER_WAITS * LEADER_WAIT)
                if leader != own_key and time.monotonic() < patience[leader]:
                    # each look is one HEAD of the leader's intent (no listing,
                    # no collection body), about one round trip apart (the
                    # leader's round is a few round trips: a fixed pause longer
                    # than one only delays noticing its end). The leader deletes
                    # every intent it applied, its own with them, in one request:
                    # once its intent is gone, the next listing and read of the
                    # collection (in parallel) say whether ours was among them
                    # (then the leader deleted ours too: we delete nothing); if
                    # not (announced after the leader listed), that listing names
                    # the next leader at once, instead of waiting out a leader
                    # that has finished
                    while time.monotonic() < patience[leader]:
                        pause = self.rng.uniform(0.75, 1.25) * round_trip
                        self.backoff_seconds += pause
                        time.sleep(pause)
                        if not self.store.exists(leader):
                            break
                    continue
                fresh = self._read_intents(
                    [k for k in listed if k not in seen and k != own_key], seen, versions
                )
                others = [
                    i
                    for i in fresh
                    if i.key in listed
                    and i.collection == collection_id
                    and i.layout == self.layout.record()
                    and i.age(now) <= intents.INTENT_FRESH
                ]
                if others:
                    note_contention(self.store.url, collection_id)
                mutate = self._collection_mutation(
                    collection_id,
                    meta,
                    [*links, *(link for i in others for link in i.links)],
                    [*items, *(item for i in others for item in i.items)],
                    [*below, *(link for i in others for link in i.below)],
                    {**{k: v for i in others for k, v in i.assets.items()}, **(assets or {})},
                )
                new = mutate(docs.copy_doc(doc) if doc is not None else None)
                if new is None:  # every change listed is in the stored document
                    self._drop_intents(
                        [own_key, *(i.key for i in others)], doc, collection_id, meta, seen, versions
                    )
                    return CasOutcome(doc, version=version)
                self.check_update(coll_key, doc, new)
                try:
                    written = self._put_over(coll_key, docs.dumps(new), version)
                except PreconditionFailed:
                    self.conflicts += 1
                    note_contention(self.store.url, collection_id)
                    current, _ = self.read(coll_key, expect)
                    if current is not None and own_mutation(docs.copy_doc(current)) is None:
                        log.debug("%s: lost the put, but the winner applied this change", coll_key)
                        self._drop_intents([own_key], current, collection_id, meta, seen, versions)
                        return CasOutcome(current)
                    if attempt < self.max_retries:
                        self._sleep(attempt, coll_key)
                    attempt += 1
                    continue
                self._drop_intents(
                    [own_key, *(i.key for i in others)], new, collection_id, meta, seen, versions
                )
                return CasOutcome(new, changed=True, created=version is None, version=written)
        except Exception:
            # not applied: take the announcement back (best effort; a leftover
            # one is applied by the next writer while fresh, else cleared by reconcile)
            self._delete_quietly([own_key], versions)
            raise
        self._delete_quietly([own_key], versions)
        raise self._give_up(coll_key, give_up_message)

    def _optimistic_put(
        self,
        collection_id: str,
        new: dict,
        doc: dict,
        version: str | None,
        listed: list[str] | None,
    ) -> CasOutcome | None:
        """The uncontended path of :meth:`group_commit`: when no intent is
        pending (``listed``, from :meth:`preflight`, else one LIST now), one
        conditional PUT of ``new`` (this writer's change applied to ``doc``,
        computed once by the caller) against ``version``, no intent.
        Returns the outcome when that PUT won; None when an intent is pending
        or the PUT lost (counted in ``conflicts``, and the process then
        announces intents on this collection for :data:`CONTENDED_FOR` s):
        the caller goes on with the group commit. Writes at most the collection.
        """
        coll_key = self.layout.collection_key(collection_id)
        if listed is None:
            listed = self.list_intents(collection_id)
        if listed:  # someone's change is pending (maybe of a writer that died): apply it too
            return None
        self.check_update(coll_key, doc, new)
        try:
            written = self.store.put(coll_key, docs.dumps(new), if_version=version)
        except PreconditionFailed:
            self.conflicts += 1
            note_contention(self.store.url, collection_id)
            log.debug("compare-and-swap conflict on %s (plain attempt): retrying through an intent", coll_key)
            return None
        return CasOutcome(new, changed=True, version=written)

    # -- group commit, ack "durable": a leader under a lease -------------------

    def _follow_or_lead(
        self,
        collection_id: str,
        meta: dict | None,
        own: _Change,
        own_key: str,
        versions: dict[str, str | None],
    ) -> CasOutcome | None:
        """Under ``ack="durable"``, once this writer's intent ``own_key`` is
        stored (the PUT returned): one GET of the collection's leader lease
        (:func:`~producer.catalog.layout.lease_key`).

        A live lease: return None (the change stays pending): its holder
        lists the intents again after it lets the lease go (:meth:`_lead`),
        so that listing, later than this intent, finds it. No lease, or an
        expired one: take it (create-only PUT, or a PUT on the expired
        version) and lead; returns the outcome, this writer's change applied.
        A create-only PUT that loses means a lease written after this
        writer's GET, so after its intent: None as well. A lost takeover
        looks again (the expired lease may have been given back rather than
        taken); after ``max_retries`` such looks, one plain compare-and-swap
        of its own change. A failure withdraws the intent (best effort, as
        :meth:`group_commit` does) and is raised. Writes maybe the lease,
        then what :meth:`_lead` writes."""
        lkey = lease_key(collection_id)
        token = intents.new_token(self.clock())
        try:
            for _attempt in range(self.max_retries + 1):
                try:
                    data, held = self.store.get(lkey)
                except NotFound:
                    data, held = b"", None
                now = self.clock()
                if held is not None:
                    expires = intents.lease_expires(data)
                    if expires is not None and expires > now:
                        note_contention(self.store.url, collection_id)  # a leader at work: contended
                        return None
                body = intents.new_lease(token, now)
                try:
                    if held is None:
                        lease = self.store.put(lkey, body, create_only=True)
                    else:
                        lease = self.store.put(lkey, body, if_version=held)
                except PreconditionFailed:
                    if held is None:  # a lease written after our look: its holder lists our intent
                        note_contention(self.store.url, collection_id)
                        return None
                    continue
                except NotFound:
                    continue  # the expired lease was given back: look again
                return self._lead(collection_id, meta, own, own_key, lkey, lease, versions)
            outcome = self.cas(
                self.layout.collection_key(collection_id),
                self._group_mutation(collection_id, meta, own, []),
                expect=("Collection",),
            )
        except Exception:
            self._delete_quietly([own_key], versions)
            raise
        self._delete_quietly([own_key], versions)
        return outcome

    def _lead(
        self,
        collection_id: str,
        meta: dict | None,
        own: _Change,
        own_key: str,
        lkey: str,
        lease: str,
        versions: dict[str, str | None],
    ) -> CasOutcome:
        """Lead the collection's group commit while holding the lease
        ``lease`` (its version), written before any listing made here.

        Rounds (at most :data:`intents.LEADER_TENURE` seconds): list the
        intents and read the collection (in parallel), read the intents not
        seen yet (in parallel), ONE compare-and-swap applying this writer's
        change and every fresh pending intent of the same layout, then
        delete the applied intents while checking that their items were not
        removed meanwhile (:meth:`_unlink_removed`); again while intents
        are pending. Then give the lease back (a delete on its version) and
        list ONCE more: each intent listed then may be of a writer that saw
        the lease before it went, so that set is applied
        (:meth:`_apply_listed`), and nothing later: a writer announcing
        after the delete finds no lease and leads itself.

        Returns this writer's outcome (its change applied). A failure before
        its own change is applied is raised after the lease is given back
        and the last listing applied (best effort); one after it is logged:
        the intents stay stored, applied by the next writer while fresh or
        by ``reconcile --fix``, as after a crash."""
        coll_key = self.layout.collection_key(collection_id)
        seen: dict[str, intents.Intent | None] = {}
        deadline = time.monotonic() + intents.LEADER_TENURE
        outcome: CasOutcome | None = None
        failure: BaseException | None = None
        released = False
        lost = 0
        try:
            while True:
                listed, (doc, version) = _both(
                    lambda: self.list_intents(collection_id), lambda: self.read(coll_key, ("Collection",))
                )
                others = self._fresh_intents(
                    collection_id, [k for k in listed if k != own_key], seen, versions
                )
                mine = own if outcome is None else None
                new = self._group_mutation(collection_id, meta, mine, others)(
                    docs.copy_doc(doc) if doc is not None else None
                )
                if new is None:  # every listed change is in the collection already
                    self._delete_quietly([*([own_key] if mine else []), *(i.key for i in others)], versions)
                    if outcome is None:
                        outcome = CasOutcome(doc, version=version)
                    break
                self.check_update(coll_key, doc, new)
                try:
                    written = self._put_over(coll_key, docs.dumps(new), version)
                except PreconditionFailed:
                    note_contention(self.store.url, collection_id)
                    self._lost_race(coll_key, lost)
                    lost += 1
                    if lost > self.max_retries:
                        if outcome is None:
                            raise self._give_up(
                                coll_key,
                                f"{self.store_path(coll_key)}: gave up after {self.max_retries + 1} "
                                "attempts because other writers kept changing it; retry later or "
                                "reduce the number of concurrent writers",
                            ) from None
                        break
                    continue
                lost = 0
                outcome = CasOutcome(new, changed=True, created=version is None, version=written)
                applied = [*([own_key] if mine else []), *(i.key for i in others)]
                if time.monotonic() > deadline:
                    # the last round: the lease goes back beside the deletes and checks
                    released = True
                    _three(
                        functools.partial(self._delete_quietly, applied, versions),
                        functools.partial(self._unlink_removed, collection_id, others),
                        functools.partial(self._release_lease, lkey, lease),
                    )
                    break
                _both(
                    functools.partial(self._delete_quietly, applied, versions),
                    functools.partial(self._unlink_removed, collection_id, others),
                )
        except Exception as exc:  # re-raised below unless our change is in (a kill is not caught)
            failure = exc
        if not released:
            self._release_lease(lkey, lease)
        try:
            last = self._apply_listed(collection_id, meta, own_key, lease, seen, versions)
            if last is not None and outcome is not None:
                outcome = replace(outcome, doc=last.doc, version=last.version)
        except (ProducerError, OSError) as exc:
            log.warning(
                "%s: applying the intents listed after the leader's lease was given back failed "
                "(%s): the next writer applies them while fresh, else reconcile(fix=True)",
                coll_key,
                exc,
            )
        if outcome is None:
            assert failure is not None
            raise failure
        if failure is not None:
            if not isinstance(failure, ProducerError | OSError):
                raise failure
            log.warning(
                "%s: leading the group commit failed after this writer's change was applied (%s): "
                "the intents left are applied by the next writer while fresh, else reconcile(fix=True)",
                coll_key,
                failure,
            )
        return outcome

    def _release_lease(self, lkey: str, lease: str) -> None:
        """Give back the leader's lease (a delete on its version: one taken
        over meanwhile stays with its new holder). A failure is logged: the
        lease then expires on its own, which delays the intents announced
        meanwhile until the next writer leads, as after a crash."""
        try:
            self.store.delete(lkey, if_version=lease)
        except (PreconditionFailed, NotFound):
            pass  # taken over after it expired (we were slow), or cleared
        except (ProducerError, OSError) as exc:
            log.warning("could not give back the leader lease %s (%s): it expires on its own", lkey, exc)

    def _apply_listed(
        self,
        collection_id: str,
        meta: dict | None,
        own_key: str,
        lease: str,
        seen: dict[str, intents.Intent | None],
        versions: dict[str, str | None],
    ) -> CasOutcome | None:
        """After the lease ``lease`` is given back: list the intents ONCE
        (with, in parallel, a read of the collection and of the lease) and
        apply exactly those (compare-and-swap, retried on conflicts) until
        each is applied or gone; then delete them and check their items
        (:meth:`_unlink_removed`). Returns the last outcome when it wrote,
        else None.

        Nothing to apply when another live lease is there now: it was written
        after ours stopped being current (one key: deleted, or taken over),
        so after every read that found ours, and its holder lists only after
        writing it: that listing finds every intent acknowledged under ours.
        That spares the overlapping compare-and-swaps of two leaders at each
        hand-over. Reads: one LIST, the collection and the lease, then the
        intents not seen yet."""
        coll_key = self.layout.collection_key(collection_id)
        listed, first, successor = _three(
            lambda: self.list_intents(collection_id),
            lambda: self.read(coll_key, ("Collection",)),
            lambda: self._live_lease(collection_id),
        )
        keys = [k for k in listed if k != own_key]
        if not keys or (successor is not None and successor != lease):
            return None
        others = self._fresh_intents(collection_id, keys, seen, versions)
        if not others:
            return None
        outcome = self.cas(
            coll_key,
            self._group_mutation(collection_id, meta, None, others),
            expect=("Collection",),
            first=first,
        )
        _both(
            lambda: self._delete_quietly([i.key for i in others], versions),
            lambda: self._unlink_removed(collection_id, others if outcome.changed else []),
        )
        return outcome if outcome.changed else None

    def _live_lease(self, collection_id: str) -> str | None:
        """The version of the collection's leader lease when one is stored
        and has not expired (by this writer's clock), else None. One GET."""
        try:
            data, version = self.store.get(lease_key(collection_id))
        except NotFound:
            return None
        expires = intents.lease_expires(data)
        return version if expires is not None and expires > self.clock() else None

    def _fresh_intents(
        self,
        collection_id: str,
        keys: Sequence[str],
        seen: dict[str, intents.Intent | None],
        versions: dict[str, str | None],
    ) -> list[intents.Intent]:
        """The intents among ``keys`` a leader applies: read once each (the
        unseen ones in parallel), of this collection and layout, younger than
        :data:`intents.INTENT_FRESH`; in the order of ``keys``."""
        self._read_intents([k for k in keys if k not in seen], seen, versions)
        now = self.clock()
        out = []
        for key in keys:
            intent = seen.get(key)
            if (
                intent is not None
                and intent.collection == collection_id
                and intent.layout == self.layout.record()
                and intent.age(now) <= intents.INTENT_FRESH
            ):
                out.append(intent)
        return out

    def _group_mutation(
        self, collection_id: str, meta: dict | None, own: _Change | None, others: Sequence[intents.Intent]
    ) -> Mutation:
        """One compare-and-swap's mutation applying ``own`` (may be None) and ``others``."""
        mine = own or _Change([], [], [], {})
        return self._collection_mutation(
            collection_id,
            meta,
            [*mine.links, *(link for i in others for link in i.links)],
            [*mine.items, *(item for i in others for item in i.items)],
            [*mine.below, *(link for i in others for link in i.below)],
            {**{k: v for i in others for k, v in i.assets.items()}, **mine.assets},
        )

    def _unlink_removed(self, collection_id: str, applied: Sequence[intents.Intent]) -> list[str]:
        """After a leader linked other writers' items (``applied``, flat
        layout: their item links are in the intents): GET each (in
        parallel); one a concurrent ``remove`` marked or deleted meanwhile
        must not stay linked (its writer returned under ``ack="durable"``
        and settles nothing after the link): unlink it, look again (a
        register that rewrote it since gets its link back), then shrink the
        extent as a removal does (:meth:`_shrink_extent`). The later remove
        wins. Returns the keys unlinked for good. Reads nothing when no
        intent links an item."""
        coll_key = self.layout.collection_key(collection_id)
        coll_dir = posixpath.dirname(coll_key)
        named: dict[str, tuple[dict, dict | None]] = {}  # item key -> (link, item summary)
        for intent in applied:
            item_links = [link for link in intent.links if link.get("rel") == "item"]
            paired = len(item_links) == len(intent.items)
            for n, link in enumerate(item_links):
                key = posixpath.normpath(posixpath.join(coll_dir, link["href"]))
                named[key] = (link, intent.items[n] if paired else None)
        if not named:
            return []
        keys = sorted(named)
        gone = [k for k, ok in zip(keys, _parallel(self.present_unmarked, keys)) if not ok]
        if not gone:
            return []
        hrefs = {named[k][0]["href"] for k in gone}

        def unlink(doc: dict | None) -> dict | None:
            if doc is None:
                return None
            dropped = sum(docs.remove_links(doc, "item", href) for href in hrefs)
            return doc if dropped else None

        log.info("%s: removed while their links were pending, unlinked again: %s", coll_key, gone)
        self.cas(coll_key, unlink, expect=("Collection",), validated=True)
        back = [k for k, ok in zip(gone, _parallel(self.present_unmarked, gone)) if ok]
        if back:  # registered again meanwhile: the register wins
            links = [named[k][0] for k in back]
            self.cas(
                coll_key,
                lambda doc: doc if doc is not None and docs.add_links(doc, links) else None,
                expect=("Collection",),
            )
        removed = [k for k in gone if k not in back]
        summaries_of = [named[k][1] for k in removed]
        if any(s is None for s in summaries_of):
            summaries_of = [item for intent in applied for item in intent.items]
        if removed and self._shrink_extent(coll_key, [s for s in summaries_of if s is not None]):
            self.committed.pop(collection_id, None)
        return removed

    def list_intents(self, collection_id: str) -> list[str]:
        """Keys of the intents pending in a collection (one listing: the
        trailing ``/`` asks for what lies below the folder only)."""
        return [k for k in self.store.list(intent_key(collection_id) + "/") if is_intent_key(k)]

    def _read_intents(
        self,
        keys: Sequence[str],
        seen: dict[str, intents.Intent | None],
        versions: dict[str, str | None] | None = None,
    ) -> list[intents.Intent]:
        """Read ``keys`` (in parallel) into ``seen`` (None: unreadable or gone)
        and their versions into ``versions``; returns every readable intent
        ``seen`` holds. Intents never change (create-only, then deleted), so
        each is read once per commit."""

        def one(key: str) -> intents.Intent | None:
            try:
                data, version = self.store.get(key)
            except NotFound:
                return None  # applied and deleted meanwhile
            if versions is not None:
                versions[key] = version
            return intents.parse(data, key)

        for key, intent in zip(keys, _parallel(one, keys)):
            seen[key] = intent
        return [i for i in seen.values() if i is not None]

    def _drop_intents(
        self,
        keys: Sequence[str],
        doc: dict | None,
        collection_id: str,
        meta: dict | None,
        seen: Mapping[str, intents.Intent | None],
        versions: Mapping[str, str | None] | None = None,
    ) -> None:
        """Delete the intents ``keys`` (applied in ``doc``) and every other
        one read during this commit whose change ``doc`` already holds (an
        older writer's, applied but not deleted before it died); ``versions``
        as for :meth:`_delete_quietly`."""
        done = set(keys)
        if doc is not None:
            for key, intent in seen.items():
                if key in done or intent is None or intent.layout != self.layout.record():
                    continue
                mutate = self._collection_mutation(
                    collection_id, meta, intent.links, intent.items, intent.below, intent.assets
                )
                if mutate(docs.copy_doc(doc)) is None:
                    done.add(key)
        self._delete_quietly(sorted(done), versions)

    def _delete_quietly(self, keys: Sequence[str], versions: Mapping[str, str | None] | None = None) -> None:
        """Delete ``keys`` in parallel; a key already gone is fine, and a
        failure is logged only (a leftover intent is harmless: see
        :meth:`group_commit`). A store with ``delete_many`` (S3) deletes
        them in one request. Elsewhere a key with a known version
        (``versions``: written or read by this writer) is deleted with
        ``if_version``, where a plain delete first checks that the key
        exists; intents never change, so the condition only fails when it
        is gone."""

        many = getattr(type(self.store), "delete_many", None)
        if callable(many) and keys:
            # one request for all (S3 DeleteObjects, which takes a missing
            # key too): intents never change once written, so an
            # unconditional delete removes exactly the intent that was read
            # or applied (and no client needs a conditional delete here:
            # obstore's has none)
            try:
                failed = self.store.delete_many(list(keys))  # type: ignore[attr-defined]
            except (ProducerError, OSError) as exc:
                failed = {key: str(exc) for key in keys}
            for key, why in sorted(failed.items()):
                log.warning("could not delete the intent %s (%s): reconcile(fix=True) clears it", key, why)
            return

        def one(key: str) -> None:
            version = (versions or {}).get(key)
            try:
                if version is not None:
                    try:
                        self.store.delete(key, if_version=version)
                        return
                    except (PreconditionFailed, NotFound):
                        return  # gone (intents never change)
                    except StoreError:
                        pass  # a server without conditional deletes: the plain one below
                self.store.delete(key)
            except NotFound:
                pass
            except (ProducerError, OSError) as exc:
                log.warning("could not delete the intent %s (%s): reconcile(fix=True) clears it", key, exc)

        _parallel(one, keys)

    def clear_intents(self, collection_id: str) -> list[str]:
        """``reconcile --fix``: delete the intents of a collection that are
        applied, unreadable, or older than :data:`intents.INTENT_TTL` (their
        writer died: their items are orphans the repair links itself).
        Returns the keys deleted. A fresh unapplied intent is left to its
        writer."""
        coll, _ = self.read(self.layout.collection_key(collection_id), ("Collection",))
        now = self.clock()
        drop: list[str] = []
        for key in self.list_intents(collection_id):
            try:
                data, _ = self.store.get(key)
            except NotFound:
                continue
            intent = intents.parse(data, key)
            written = intents.written_at(data)
            if intent is None or written is None:
                if written is None or (now - written).total_seconds() > intents.INTENT_TTL:
                    drop.append(key)
                continue
            if intent.age(now) > intents.INTENT_TTL:
                drop.append(key)
                continue
            partition = (intent.layout or {}).get("partition")
            try:
                writer = replace(self, layout=Layout(partition))
                mutate = writer._collection_mutation(
                    collection_id, None, intent.links, intent.items, intent.below, intent.assets
                )
                applied = coll is not None and mutate(docs.copy_doc(coll)) is None
            except ProducerError:  # another layout than the collection's: it can never apply
                applied = True
            if applied:
                drop.append(key)
        self._delete_quietly(drop)
        return drop

    def clear_expired_lease(self, collection_id: str) -> bool:
        """``reconcile --fix``: delete the group-commit leader's lease of a
        collection when it has expired (its holder died; a live one is left
        to its holder). One GET, then a delete on the version read. True if
        deleted."""
        lkey = lease_key(collection_id)
        try:
            data, version = self.store.get(lkey)
        except NotFound:
            return False
        expires = intents.lease_expires(data)
        if expires is not None and expires > self.clock():
            return False
        try:
            self.store.delete(lkey, if_version=version)
        except (PreconditionFailed, NotFound):
            return False  # taken over or given back meanwhile
        return True

    def settle_items(
        self, collection_id: str, items: Sequence[tuple[str, dict]], collection_meta: dict | None = None
    ) -> list[str]:
        """After :meth:`link_items`: make sure no link points at an item a
        concurrent ``remove`` marked or deleted meanwhile.

        Re-reads each item (one GET per item; its bytes are parsed only when
        they are not the very ones this committer left there, which are
        unmarked: :attr:`written_versions`). One that is gone or carries
        :data:`docs.REMOVING` is written again (``put_item``: recreated, or
        rewritten without the mark, which makes the remover's conditional
        delete fail so it keeps the item) and linked again: a register that
        overlaps a remove of the same item wins, as it does when it runs
        while the remover is paused before its delete. Returns the keys
        written again. Writes: those items and their chain links.
        """
        redone: list[str] = []
        for key, item in items:
            for _attempt in range(self.max_retries + 1):
                if self.present_unmarked(key):
                    break
                self.rewritten[key] = self.write_item(key, item)[1]
                self.link_items(collection_id, [(key, item)], collection_meta)
                redone.append(key)
            else:
                raise self._give_up(
                    key,
                    f"{self.store_path(key)}: a concurrent remove kept deleting it; register it again later",
                )
        return redone

    def present_unmarked(self, key: str) -> bool:
        """Whether item ``key`` exists without :data:`docs.REMOVING` (one
        GET). Bytes with the version this committer left there
        (:attr:`written_versions`: written, or found unchanged; never marked,
        as the mark is no run field) are not parsed."""
        try:
            data, version = self.store.get(key)
        except NotFound:
            return False
        if version == self.written_versions.get(key):
            return True
        doc = docs.loads(data, self.store_path(key), expect=("Feature",))
        return not doc.get("properties", {}).get(docs.REMOVING)

    def settle_batch(
        self,
        collection_id: str,
        items: Sequence[tuple[str, dict]],
        collection_meta: dict | None = None,
        threads: int = 1,
    ) -> list[str]:
        """:meth:`settle_items` for a batch, with one listing instead of one
        GET per item where the store lists versions (S3: ListObjectsV2 gives
        each key's ETag).

        After the link, the folder the batch's items share is listed once
        (pages of 1,000 keys; given up after :data:`SETTLE_LIST_SLACK` keys
        more than twice the batch, so a huge collection costs a bounded
        listing). An item listed with the very version this committer wrote
        is unmarked and present at the time of that listing, which is what
        the GET of :meth:`settle_items` establishes; every other item (gone,
        marked, rewritten, or not in a complete listing) is settled by
        :meth:`settle_items` as before, on up to ``threads`` threads, or
        one by one on a local store (a GET there waits on no round trip:
        16 threads only contend for the GIL, ~2x the CPU of one for 1,000
        items). Writes only what :meth:`settle_items` writes. Returns the
        keys written again. Items whose link is pending in the collection
        (``ack="durable"``, :attr:`pending_links`) are left to their leader.
        """
        # a pending link (ack "durable") of an item the collection links
        # directly: the leader that links it checks the item right after
        # (:meth:`_unlink_removed`), which is this step's work, done then
        coll_key = self.layout.collection_key(collection_id)
        items = [
            (key, doc)
            for key, doc in items
            if key not in self.pending_links or self.layout.item_chain(collection_id, key)[0] != coll_key
        ]
        suspects = list(items)
        lister = getattr(self.store, "list_versions", None)
        if lister is not None and len(items) >= SETTLE_LIST_MIN:
            folder = posixpath.commonpath([posixpath.dirname(key) for key, _ in items])
            listed: dict[str, str] = {}
            bound = 2 * len(items) + SETTLE_LIST_SLACK
            complete = True
            for key, version in lister(folder + "/"):
                listed[key] = version
                if len(listed) > bound:
                    complete = False  # too many other documents there: GET each item
                    break
            if complete:
                suspects = [
                    (key, doc)
                    for key, doc in items
                    if self.written_versions.get(key) is None or listed.get(key) != self.written_versions[key]
                ]
        if not suspects:
            return []
        if threads <= 1 or len(suspects) == 1 or is_local(self.store):
            return self.settle_items(collection_id, suspects, collection_meta)
        with ThreadPoolExecutor(max_workers=min(threads, len(suspects))) as pool:
            redone = pool.map(
                lambda entry: self.settle_items(collection_id, [entry], collection_meta), suspects
            )
            return [key for keys in redone for key in keys]

    def ensure_root(self, preread: dict[str, tuple[dict | None, str | None]]) -> None:
        """Create the root catalog (no children yet) if :meth:`preflight` found none.

        Called before the first item of a batch is written, so storage never
        holds a collection or item without a root above it (a state no later
        run could tell from a foreign directory). Mutates ``preread``: the
        root entry then holds the document written, or is dropped when
        another writer created the root first (it is read fresh later).
        Writes at most one document (create-only); the caller has validated it.
        """
        key = self.layout.root_key
        if key not in preread or preread[key][0] is not None:
            return
        doc = docs.new_root(self.root_meta)
        try:
            version = self.store.put(key, docs.dumps(doc), create_only=True)
        except PreconditionFailed:
            log.debug("root %s was created by another writer meanwhile", key)
            preread.pop(key, None)
            return
        preread[key] = (doc, version)

    def _partition_mutation(
        self,
        key: str,
        parent_key: str,
        collection_id: str,
        label: str,
        coll_title: str,
        links: list[dict],
        below: Sequence[dict] = (),
    ) -> Mutation:
        def mutate(doc: dict | None) -> dict | None:
            created = doc is None
            if doc is None:
                doc = docs.new_partition(key, parent_key, self.layout, collection_id, label, coll_title)
            changed = docs.add_links(doc, links)
            changed |= _add_missing(doc, below)
            changed |= mark_if_full(doc, key, collection_id, self.layout.max_links)
            return doc if (changed or created) else None

        return mutate

    def _collection_mutation(
        self,
        collection_id: str,
        meta: dict | None,
        links: list[dict],
        items: list[dict],
        below: Sequence[dict] = (),
        assets: Mapping[str, dict] | None = None,
    ) -> Mutation:
        """The collection's compare-and-swap: created if absent, ``links`` and
        ``below`` added, extent merged with ``items``, ``assets`` (the mirror
        files) added or updated. With group commit ``items`` holds the
        changes of several writers, each item as its intent keeps it
        (:func:`producer.catalog.intents.item_summary`: id, bbox, properties,
        assets; no geometry or links)."""
        root_title = (self.root_meta or {}).get("title")

        def mutate(doc: dict | None) -> dict | None:
            created = doc is None
            if doc is None:
                doc = docs.new_collection(collection_id, meta, self.layout, root_title)
            else:
                self.check_layout(doc, collection_id)  # a racing creator may have chosen another
            # an extent still the placeholder (no item ever merged, or all
            # removed while partition catalogs stayed) is replaced, not unioned
            was_empty = docs.is_empty(doc) or doc.get("extent") == docs.empty_extent()
            changed = docs.add_links(doc, links)
            changed |= _add_missing(doc, below)
            changed |= _set_assets(doc, assets or {})
            changed |= docs.merge_extent(doc, items, was_empty=was_empty)
            changed |= summaries.merge(doc, items)  # summaries + item_assets, bounded
            # a shrink in progress must learn of these items even when the
            # extent did not grow (see documents.begin_shrink)
            if docs.SHRINK_FIELD in doc:  # (else it changes nothing: no clock read)
                changed |= docs.record_in_shrink(doc, items, self.clock())
            return doc if (changed or created) else None

        return mutate

    def extend_extent(self, collection_id: str, items: Sequence[dict]) -> None:
        """Grow the collection's extent to cover ``items``, linked items as
        they are or are about to be rewritten in place (a multi-asset item
        losing an asset, whose recomputed box or time can reach past the old
        one: grown before the item's write, see producer/removal.py): the collection
        compare-and-swap of :meth:`link_items` without links; nothing written
        when the extent covers them already (a shrink in progress learns of
        them, as for a register). An absent collection is left absent."""
        mutation = self._collection_mutation(collection_id, None, [], list(items))

        def grow(doc: dict | None) -> dict | None:
            return None if doc is None else mutation(doc)

        outcome = self.cas(self.layout.collection_key(collection_id), grow, expect=("Collection",))
        if outcome.changed and outcome.doc is not None:
            self.committed[collection_id] = outcome.doc

    def _root_mutation(self, coll_key: str, coll_title: str) -> Mutation:
        link = {
            "rel": "child",
            "href": relative_href(self.layout.root_key, coll_key),
            "type": docs.JSON,
            "title": coll_title,
        }

        def mutate(doc: dict | None) -> dict | None:
            created = doc is None
            if doc is None:
                doc = docs.new_root(self.root_meta)
            changed = _add_missing(doc, [link])
            return doc if (changed or created) else None

        return mutate

    def preflight(
        self, collection_id: str, items: Sequence[dict]
    ) -> dict[str, tuple[dict | None, str | None]]:
        """Read the parent documents a batch will update, before any write.

        Reads the whole chain of every item once: its partitions, the
        collection and the root (a few GETs per batch, whatever the catalog
        size: one per distinct partition, plus two), and below a partition
        marked split the finer partition a new item would go to
        (:meth:`Layout.placed_partition_keys`). A malformed or foreign
        existing parent raises :class:`CatalogError` here, so bad catalog
        state aborts the batch with storage untouched. The documents read
        seed the first compare-and-swap attempts, so :meth:`link_items` can
        check every link up the chain without reading again. Under
        ``ack="durable"`` with contention remembered, the collection and the
        root come from this process's view when it read or wrote them less
        than :data:`VIEW_FRESH` seconds ago (:func:`recent_view`; their keys
        go into :attr:`viewed`), without a request.
        """
        out: dict[str, tuple[dict | None, str | None]] = {}
        coll_key = self.layout.collection_key(collection_id)
        root_key = self.layout.root_key
        self.viewed = set()
        # ack "durable" under contention: the collection and the root as this
        # process read or wrote them a moment ago (recent_view) stand in for
        # reads; what a follower does with them stays right with a view up to
        # VIEW_FRESH old (docs/ARCHITECTURE.md): the leader applies its
        # intent to the collection as stored then
        use_view = self.ack == "durable" and self.store.concurrent_safe

        def seeded(key: str) -> tuple[dict | None, str | None] | None:
            seed = self.seeded.pop(key, None)
            if seed is None or time.monotonic() - seed[2] > SEED_FRESH:
                if not use_view or key not in (coll_key, root_key):
                    return None
                view = recent_view(self.store.url, collection_id, key)
                if view is None:
                    return None
                self.viewed.add(key)
                return view[0], view[1]
            doc = seed[3]
            if doc is None:
                doc = docs.loads(seed[0], self.store_path(key), expect=expected_type(key))
            self._remember(key, doc, seed[1], seed[2])
            return absolute_assets(doc, self.store_path(key)), seed[1]

        def fresh(key: str) -> tuple[dict | None, str | None]:
            doc, version = self.read(key, expected_type(key))
            if key in (coll_key, root_key):
                self._remember(key, doc, version, time.monotonic())
            return doc, version

        def read(key: str) -> dict | None:
            if key not in out:
                out[key] = seeded(key) or fresh(key)
            return out[key][0]

        def chain() -> None:
            for item in items:
                when = item_start(item) if self.layout.partition else None
                placed = self.layout.placed_partition_keys(collection_id, when, str(item.get("id")), read)
                for key in reversed(placed):  # partitions, nearest first
                    read(key)
            read(coll_key)

        def side() -> None:
            # alongside the chain: the root, and on stores shared by several
            # writers the pending intents (group_commit's plain path needs
            # them; under recent contention it lists them itself)
            # (the root and the listing seeded by the layout's read cost
            # nothing; else the root's GET and the LIST go out together)
            root = seeded(root_key)
            if self.store.concurrent_safe and not contended(self.store.url, collection_id):
                pre = self.seeded_intents.pop(collection_id, None)
                if pre is not None and time.monotonic() - pre[0] <= SEED_FRESH:
                    listed = pre[1]  # listed with the layout's read
                elif root is None and not is_local(self.store):
                    root, listed = _both(lambda: fresh(root_key), lambda: self.list_intents(collection_id))
                else:
                    listed = self.list_intents(collection_id)
                self.listed_intents[collection_id] = listed
            if root is None:
                root = fresh(root_key)
            out.setdefault(root_key, root)

        if root_key == coll_key:  # cannot be, but then the sequential order
            chain()
            read(root_key)
        elif is_local(self.store):  # no round trip to overlap: a thread would only cost
            chain()
            side()
        else:
            _both(side, chain)
        self.check_parents(out, collection_id)
        coll_doc = out.get(self.layout.collection_key(collection_id), (None, None))[0]
        if coll_doc is not None:
            self.check_layout(coll_doc, collection_id)
        return out

    def check_parents(self, documents: dict[str, tuple[dict | None, str | None]], collection_id: str) -> None:
        """Raise :class:`CatalogError` if an existing parent read before any
        write cannot be updated safely (no ``stac_version``, a missing or
        malformed extent, a collection whose id is another collection's);
        see :func:`producer.catalog.documents.parent_problems`."""
        coll_key = self.layout.collection_key(collection_id)
        for key, (doc, _) in documents.items():
            if doc is not None:
                docs.check_parent(
                    doc, self.store_path(key), collection_id=collection_id if key == coll_key else None
                )

    def check_layout(self, collection: dict, collection_id: str) -> None:
        """Raise :class:`CatalogError` if ``collection`` records a layout other
        than the one this committer writes: it was created (or recorded) by
        another writer since this one chose its layout. Nothing of the batch
        may be linked into it: its items' keys follow the other layout."""
        where = self.store_path(self.layout.collection_key(collection_id))
        recorded = recorded_layout(collection, where)
        if recorded is not None and recorded != self.layout:
            raise CatalogError(
                f"{where} is {recorded.describe()}, but this registration chose "
                f"{self.layout.describe()} (the collection was created or recorded by another writer "
                "meanwhile); register again: it follows the collection's layout"
            )

    # -- removal -----------------------------------------------------------------

    def unlink_item(self, parent_key: str, item_key: str) -> bool:
        """Remove every link to ``item_key`` from its parent; True if one existed."""
        href = relative_href(parent_key, item_key)

        def mutate(doc: dict | None) -> dict | None:
            if doc is None:
                return None
            return doc if docs.remove_links(doc, "item", href) else None

        return self.cas(parent_key, mutate, expect=expected_type(parent_key)).changed

    def remove_item(
        self,
        collection_id: str,
        item_key: str,
        keep_if: Callable[[dict], str | None] | None = None,
        shrink: bool = True,
    ) -> RemoveOutcome:
        """Remove the item document at ``item_key``: crash-safe and race-safe.

        1. Mark: compare-and-swap sets property :data:`docs.REMOVING` (a UTC
           timestamp) on the item; an item already marked keeps its mark.
        2. Unlink it from its parent (compare-and-swap).
        3. Shrink the collection extent to the exact union of the remaining
           items, only if the item touched an edge of it (that case reads
           every item of the collection once).
        4. Delete the item only if it is still the marked version
           (conditional delete). If a ``register`` rewrote it meanwhile (the
           new document has no mark), the newer item is kept and linked again.

        ``keep_if(item)``: a reason to keep the item instead (e.g. it
        describes another product than the one whose removal was asked for),
        or None; it is asked inside the marking compare-and-swap, on the very
        document the mark would replace, so a concurrent rewrite is judged on
        its own content. A refusal writes nothing: action ``kept``, ``reason``.
        ``shrink=False`` skips step 3 (the extent stays a valid superset;
        used when the item moves, so a register never walks the collection).

        Every step is idempotent, so calling this again after a crash at any
        point finishes the removal: this is also how ``reconcile --fix``
        finishes the removal of an item that carries the mark (linked or
        orphan), instead of linking it again. Writes: the item (mark, then
        delete), its parent, maybe the collection; with ``kept`` the chain
        links of the kept item. Returns what happened.
        """
        parent = item_parent_key(item_key, collection_id)
        coll_key = collection_key(collection_id)
        stamp = format_time(self.clock())

        refused: dict[str, str] = {}

        def mark(doc: dict | None) -> dict | None:
            refused.clear()
            if doc is None:
                return None
            # decided on the very document the mark would replace, so a
            # concurrent rewrite (e.g. register with replace) is never removed
            # on the strength of a check made on its predecessor
            reason = keep_if(doc) if keep_if is not None else None
            if reason is not None:
                refused["reason"] = reason
                return None
            props = doc.setdefault("properties", {})
            if props.get(docs.REMOVING):
                return None
            props[docs.REMOVING] = stamp
            return doc

        # the mark adds one string property to a stored item: nothing to validate
        marked = self.cas(item_key, mark, expect=("Feature",), validated=True)
        if refused:
            return RemoveOutcome("kept", marked.doc, reason=refused["reason"])
        item, version = marked.doc, marked.version
        # before the unlink: a fresh intent of a writer that died would make
        # the next register of the collection link this item again (dangling).
        # Only the collection's own item links travel in intents: below
        # partitions, the item link is written to its catalog before the intent.
        if parent == coll_key:
            self.drop_intents_naming(collection_id, item_key)
        self.unlink_item(parent, item_key)
        if item is None:
            return RemoveOutcome("absent")
        recomputed = self._shrink_extent(coll_key, [item]) if shrink else False
        if recomputed:  # a batch's sinks (a move) get the collection as shrunk: one GET
            self.committed.pop(collection_id, None)
        for _attempt in range(self.max_retries + 1):
            try:
                self.store.delete(item_key, if_version=version)
                return RemoveOutcome("removed", item, recomputed)
            except NotFound:
                return RemoveOutcome("removed", item, recomputed)  # another remover finished it
            except PreconditionFailed:
                log.debug("conditional delete of %s lost to a concurrent write: reading it again", item_key)
                current, version = self.read(item_key, ("Feature",))
            if current is None:
                return RemoveOutcome("removed", item, recomputed)
            if not current.get("properties", {}).get(docs.REMOVING):
                # re-registered since it was marked: the register wins, keep it linked
                replace(self, layout=self._layout_of(collection_id, item_key)).link_items(
                    collection_id, [(item_key, current)]
                )
                return RemoveOutcome("kept", current, recomputed)
            # re-marked by another remover after a register: delete that version
        raise self._give_up(
            item_key,
            f"{self.store_path(item_key)}: gave up removing it after {self.max_retries + 1} attempts "
            "because other writers kept changing it; retry the removal later",
        )

    def _layout_of(self, collection_id: str, item_key: str) -> Layout:
        """The layout to link the item at ``item_key`` back with: its
        collection's recorded one (with its ``max_links``) when the key follows
        it (below split partitions too), else the one its key's depth shows.
        One GET of the collection (a rare path: a remove lost to a register)."""
        coll_key = self.layout.collection_key(collection_id)
        doc = self.read(coll_key, ("Collection",))[0]
        recorded = recorded_layout(doc, self.store_path(coll_key)) if doc is not None else None
        if recorded is not None and item_follows(recorded, item_key):
            return recorded
        return layout_of_item(item_key)

    def drop_intents_naming(self, collection_id: str, item_key: str) -> list[str]:
        """Delete every pending intent of the collection whose links name
        ``item_key`` (a flat layout's item link), so that no other writer
        applies it after the item is removed. Returns the keys deleted.

        Reads: one LIST of ``<collection>/_intents/`` and each intent listed
        (in parallel; usually none). Writes: the deletes. The intent's other
        items, if any, become orphans that ``reconcile(fix=True)`` links; a
        live writer still applies its own change from memory (the register
        racing a remove is settled by the ``REMOVING`` mark, as before).
        Chosen over appliers checking that foreign intents' items exist: a
        remove is rare, while every register would pay those reads.
        """
        keys = self.list_intents(collection_id)
        if not keys:
            return []
        coll_dir = posixpath.dirname(collection_key(collection_id))
        naming: list[str] = []
        versions: dict[str, str | None] = {}
        for intent in self._read_intents(keys, {}, versions):
            targets = {
                posixpath.normpath(posixpath.join(coll_dir, link["href"]))
                for link in intent.links
                if link.get("rel") == "item"
            }
            if item_key in targets:
                naming.append(intent.key)
        if naming:
            log.info("%s: removing it withdraws the pending intents %s", item_key, naming)
            self._delete_quietly(naming, versions)
        return naming

    def shrink_after_updates(self, collection_id: str, keys: Sequence[str]) -> bool:
        """After a batch is linked: recompute the extent of the collection
        when an item of ``keys`` that :meth:`write_item` updated moved its
        box or interval off an edge the old document attained (the merge only
        grows the extent). Reads and writes nothing otherwise; else the
        two-phase shrink of a removal (one walk). True if it was recomputed."""
        olds = [self.replaced.pop(key) for key in keys if key in self.replaced]
        if not olds:
            return False
        recomputed = self._shrink_extent(self.layout.collection_key(collection_id), olds)
        if recomputed:  # the sinks get the collection as shrunk: one GET
            self.committed.pop(collection_id, None)
        return recomputed

    def _shrink_extent(self, coll_key: str, items: Sequence[dict]) -> bool:
        """Recompute the collection extent without ``items`` (removed, or
        replaced by another version) if one touched an edge: two-phase
        (:meth:`recompute_extent`), so a register racing this removal is
        never left outside the shrunk extent."""

        def needed(coll: dict) -> bool:
            try:
                return any(docs.touches_boundary(coll.get("extent", {}), item) for item in items)
            except (KeyError, TypeError, ValueError):
                return True  # unreadable item geometry: recompute to be safe

        return self.recompute_extent(coll_key, needed, lambda: self._unmarked_items(coll_key))

    def finish_left_shrink(self, coll_key: str) -> bool:
        """Recompute the collection extent when its document still holds a
        shrink marker (live or expired): the shrink of a removal killed
        between its marker and its extent write, finished by its rerun. A
        live marker of another shrink is taken over (its own finish then
        writes nothing, see :meth:`recompute_extent`). True if the extent
        changed; nothing written without a marker."""
        return self.recompute_extent(
            coll_key, lambda coll: docs.SHRINK_FIELD in coll, lambda: self._unmarked_items(coll_key)
        )

    def _unmarked_items(self, coll_key: str) -> list[dict]:
        """Every usable item under the collection, but those marked removing."""
        # imported here: only a removal walks the items (a register's
        # cold start skips producer.audit)
        from producer.audit import collection_items, usable_items  # noqa: PLC0415

        # the item is unlinked, so the walk only meets it again if a
        # register re-linked a new version: that one counts (unmarked)
        return usable_items(
            (k, doc)
            for k, doc in collection_items(self.store, coll_key)
            if not doc.get("properties", {}).get(docs.REMOVING)
        )

    # -- id index (partitioned collections) -----------------------------------

    def read_index(self, collection_id: str, item_id: str) -> tuple[str | None, str | None]:
        """``(item key, version)`` from the id index, or ``(None, None)``.

        One GET. An unreadable entry counts as absent (it is rewritten by
        the next registration of that id).
        """
        entry = self.read_index_entry(collection_id, item_id)
        return entry.key, entry.version

    def read_index_entry(self, collection_id: str, item_id: str) -> IndexEntry:
        """The id index entry of ``item_id`` (:class:`IndexEntry`); one GET.
        An unreadable entry counts as absent, with its version (it is
        rewritten by the next registration of that id)."""
        try:
            data, version = self.store.get(self.layout.index_key(collection_id, item_id))
        except NotFound:
            return IndexEntry(None, None)
        try:
            entry = json.loads(data)
            key = entry.get("item")
        except (ValueError, AttributeError):
            log.warning(
                "id index entry %s is unreadable: treated as absent (the next registration of %r rewrites it)",
                self.layout.index_key(collection_id, item_id),
                item_id,
            )
            return IndexEntry(None, version)
        key = key if isinstance(key, str) else None
        try:
            claimed = parse_time(entry["claimed"]) if isinstance(entry.get("claimed"), str) else None
        except ValueError:
            claimed = None
        product = entry.get("product") if isinstance(entry.get("product"), str) else None
        return IndexEntry(key, version, claimed, product, entry.get("group") is True)

    def claim_under_way(self, entry: IndexEntry, item: dict) -> datetime | None:
        """When ``entry``'s claim lapses, if it is another product's (see
        :meth:`IndexEntry.claimed_for_another`) and younger than
        :data:`CLAIM_TTL`: that registration may not have written its item
        yet. Else None. Reads nothing."""
        if entry.claimed is None or not entry.claimed_for_another(item):
            return None
        lapses = entry.claimed + timedelta(seconds=CLAIM_TTL)
        return lapses if lapses > self.clock() else None

    def release_claim(
        self, collection_id: str, item_id: str, item_key: str, entry: IndexEntry | None = None
    ) -> None:
        """After ``remove`` deleted ``item_key``: rewrite its id index entry
        without its claim, so the id is free at once for another product
        (:meth:`claim_under_way`). One compare-and-swap from ``entry`` (as
        read before the removal; read here when None), when it names
        ``item_key`` with a claim; an entry another registration took since
        is left alone."""
        if entry is None:
            entry = self.read_index_entry(collection_id, item_id)
        if entry.key != item_key or entry.claimed is None or entry.version is None:
            return
        data = json.dumps({"id": item_id, "item": item_key}).encode("utf-8")
        try:
            self.store.put(self.layout.index_key(collection_id, item_id), data, if_version=entry.version)
        except PreconditionFailed:
            pass  # claimed again meanwhile: that registration's entry stays

    def write_index(
        self,
        collection_id: str,
        item_id: str,
        item_key: str,
        current: tuple[str | None, str | None] | None = None,
        *,
        claim: bool = False,
        claimant: dict | None = None,
    ) -> bool:
        """Point the id index entry of ``item_id`` at ``item_key``; True if written.

        Compare-and-swap (create-only when absent) starting from ``current``
        (a :meth:`read_index` result) when given. Writes one small object,
        ``<collection>/.ids/<item_id>``, or nothing if it already points there.
        ``claim``: one attempt from ``current``; a lost one raises
        :class:`PreconditionFailed` (another writer took the entry since
        ``current`` was read: the caller judges it) instead of overwriting.
        ``claimant``: the item about to be written (not yet on storage); the
        entry records when and for which product it was claimed, so another
        product's registration that reads it meanwhile waits for the item
        instead of taking the id (:meth:`claim_under_way`).
        """
        ikey = self.layout.index_key(collection_id, item_id)
        entry: dict[str, str | bool] = {"id": item_id, "item": item_key}
        if claimant is not None:
            entry["claimed"] = format_time(self.clock())
            if GROUP in claimant.get("properties", {}):
                entry["group"] = True
            elif (href := product_href(claimant)) is not None:
                entry["product"] = normalise_href(href)  # no credentials nor signatures
        data = json.dumps(entry).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            if current is None or attempt > 0:
                current = self.read_index(collection_id, item_id)
            key, version = current
            if key == item_key:
                return False
            try:
                if version is None:
                    self.store.put(ikey, data, create_only=True)
                else:
                    self.store.put(ikey, data, if_version=version)
                return True
            except PreconditionFailed:
                if claim:
                    raise
                self._lost_race(ikey, attempt)
        raise self._give_up(
            ikey,
            f"{self.store_path(ikey)}: gave up after {self.max_retries + 1} attempts "
            "because other writers kept changing it; retry later",
        )

    def recompute_extent(
        self,
        collection_key: str,
        needed: Callable[[dict], bool],
        walk: Callable[[], list[dict]],
        give_up_after: float = docs.SHRINK_TTL / 2,
    ) -> bool:
        """Set a collection's extent to the exact union of its items, safely
        against concurrent registers (two-phase, see documents.begin_shrink).

        1. compare-and-swap: if ``needed(collection)``, put a shrink marker
           into the collection (else stop: nothing written);
        2. ``walk()`` returns every item linked under the collection now;
        3. compare-and-swap: if the marker is still ours, write the exact
           union of the walk and of what registers recorded in the marker,
           and remove the marker. Another shrink that replaced the marker
           writes instead; a walk longer than ``give_up_after`` seconds only
           removes the marker (registers stop recording after SHRINK_TTL).

        The extent covers every item at each step, so a crash anywhere leaves
        a valid collection (a leftover marker is ignored after SHRINK_TTL and
        cleared by the next recompute). Returns True if the extent changed.
        """
        token = secrets.token_hex(8)

        def begin(doc: dict | None) -> dict | None:
            if doc is None or not needed(doc):
                return None
            docs.begin_shrink(doc, token, self.clock())
            return doc

        if not self.cas(collection_key, begin, expect=("Collection",)).changed:
            return False
        started = time.monotonic()
        try:
            items = walk()
        except BaseException:
            # no half-done shrink left behind when the walk fails (a crash
            # that skips this is covered by the marker's expiry)
            try:
                self.cas(
                    collection_key,
                    lambda d: d if d is not None and docs.drop_shrink(d, token) else None,
                    expect=("Collection",),
                )
            except Exception as exc:
                log.warning(
                    "could not remove the shrink marker from %s after a failed walk (%s): "
                    "it expires on its own, or the next reconcile(fix=True) clears it",
                    collection_key,
                    type(exc).__name__,
                )
            raise
        result = {"changed": False}

        def finish(doc: dict | None) -> dict | None:
            result["changed"] = False
            if doc is None:
                return None
            if time.monotonic() - started > give_up_after:
                log.warning(
                    "shrinking the extent of %s: the walk took longer than %.0f s, so the extent "
                    "stays as it is (a valid superset); only the marker is removed",
                    collection_key,
                    give_up_after,
                )
                return doc if docs.drop_shrink(doc, token) else None
            before = doc.get("extent")
            if not docs.finish_shrink(doc, token, items):
                return None
            result["changed"] = doc.get("extent") != before
            return doc

        self.cas(collection_key, finish, expect=("Collection",))
        return result["changed"]
