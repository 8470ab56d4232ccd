"""Where each document lives, and the relative hrefs between them.

Pure: no I/O. Keys are ``/``-separated paths relative to the catalog root.

Default layout::

    catalog.json
    <collection>/collection.json
    <collection>/<item_id>/<item_id>.json

With ``partition="year"`` or ``"year/month"`` items go under sub-catalogs
named after the item's start time, so no document links more than the items
of one period::

    <collection>/<YYYY>/catalog.json
    <collection>/<YYYY>/<MM>/catalog.json
    <collection>/<YYYY>/<MM>/<item_id>/<item_id>.json
    <collection>/.ids/<item_id>          (id index: the key of the item)
    <collection>/.outbox/<sink>/<entry>  (changes a sink has not taken yet)
    <collection>/_intents/<token>.intent (group commit: a pending change of the collection)
    <collection>/_intents/leader.lease   (group commit with ack "durable": who applies them now)

No partition catalog grows without bound: once one links
:attr:`Layout.max_links` items it is marked split (:data:`SPLIT_FIELD`), and
new items of its period go to a finer period below it (month → day → hour,
then 16 shards by a hash of the id, level after level)::

    <collection>/<YYYY>/<MM>/catalog.json            (full: "stac_producer:split": "day")
    <collection>/<YYYY>/<MM>/<DD>/catalog.json
    <collection>/<YYYY>/<MM>/<DD>/<item_id>/<item_id>.json

Items already linked stay where they are (the id index says where). A
writer learns of a split from the partition document it reads anyway, so
finding an item's parent stays O(1) in the size of the collection.

This module is the only owner of document keys: every other module asks it
where a document lives rather than building a key itself. The layout of a
collection is recorded in its document (:data:`LAYOUT_FIELD`), so a verb
that is not told the partition scheme reads it there (:func:`recorded_layout`).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from producer.errors import CatalogError, InputError

ROOT_KEY = "catalog.json"
PARTITIONS = (None, "year", "year/month")
#: folder (inside a collection) of the id index of partitioned collections
INDEX_DIR = ".ids"
#: folder (inside a collection) of the sinks' outbox: changes a sink has not
#: taken yet (:mod:`producer.sinks.outbox`); not STAC documents
OUTBOX_DIR = ".outbox"
COLLECTION_FILE = "collection.json"
#: asset key of the thumbnail the producer renders (:mod:`producer.thumbnail`)
#: and stores in the catalog beside its item
THUMBNAIL_ASSET = "thumbnail"
#: folder (inside a collection) of the pending changes of its document (group
#: commit, :mod:`producer.catalog.intents`); not STAC, never a document key
INTENT_DIR = "_intents"
INTENT_SUFFIX = ".intent"
#: name of the leader's lease in a collection's intent folder (group commit
#: with ``ack="durable"``); not an intent (another suffix), so listings of
#: intents skip it
LEASE_NAME = "leader.lease"
CATALOG_FILE = "catalog.json"
#: field of a collection document recording its layout:
#: ``{"partition": "year/month"}``, or ``null`` for the flat layout
LAYOUT_FIELD = "stac_producer:layout"
#: field of a partition catalog that is full: new items of its period go to
#: the finer period it names (``"month"``, ``"day"``, ``"hour"``, ``"shard"``)
SPLIT_FIELD = "stac_producer:split"
#: item links a partition catalog holds before it is split (see :attr:`Layout.max_links`)
DEFAULT_MAX_LINKS = 2000
#: the finer period below a partition of depth 1, 2, 3 (year, month, day);
#: deeper ones split into hash shards
_FINER = {1: "month", 2: "day", 3: "hour"}
#: prefix of a hash shard's folder name (``x`` + one hex digit of the id's SHA-1)
SHARD_PREFIX = "x"


@dataclass(frozen=True)
class Layout:
    """How keys are derived from (collection, item id, item time).

    ``max_links``: the item links a partition catalog holds before it is
    split (recorded in the collection when not the default; not part of
    equality: two layouts with the same scheme place items alike).
    """

    partition: str | None = None
    max_links: int = field(default=DEFAULT_MAX_LINKS, compare=False)

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise InputError(
                f"unknown partition scheme {self.partition!r}: use one of 'year', 'year/month' or none"
            )
        if isinstance(self.max_links, bool) or not isinstance(self.max_links, int) or self.max_links < 1:
            raise InputError(f"max_links must be a whole number of at least 1, not {self.max_links!r}")

    @property
    def root_key(self) -> str:
        return ROOT_KEY

    def collection_key(self, collection_id: str) -> str:
        return collection_key(collection_id)

    def record(self) -> dict[str, str | int] | None:
        """The value of :data:`LAYOUT_FIELD` that describes this layout
        (``max_links`` only when it is not the default)."""
        if self.partition is None:
            return None
        out: dict[str, str | int] = {"partition": self.partition}
        if self.max_links != DEFAULT_MAX_LINKS:
            out["max_links"] = self.max_links
        return out

    def describe(self) -> str:
        """This layout in words, for messages."""
        return "flat (no partitions)" if self.partition is None else f"partitioned by {self.partition}"

    def partition_dirs(self, when: datetime | None) -> list[str]:
        """Partition path segments for an item starting at ``when``."""
        if self.partition is None:
            return []
        if when is None:
            raise InputError("a partitioned layout needs the item's datetime")
        parts = [f"{when.year:04d}"]
        if self.partition == "year/month":
            parts.append(f"{when.month:02d}")
        return parts

    def partition_keys(self, collection_id: str, when: datetime | None) -> list[str]:
        """Keys of the partition catalogs, outermost first (empty if unpartitioned)."""
        keys = []
        prefix = collection_id
        for part in self.partition_dirs(when):
            prefix = f"{prefix}/{part}"
            keys.append(f"{prefix}/{CATALOG_FILE}")
        return keys

    def item_key(self, collection_id: str, item_id: str, when: datetime | None = None) -> str:
        base = "/".join([collection_id, *self.partition_dirs(when)])
        return f"{base}/{item_id}/{item_id}.json"

    def parent_key(self, collection_id: str, when: datetime | None = None) -> str:
        """The document that links the item directly."""
        parts = self.partition_keys(collection_id, when)
        return parts[-1] if parts else self.collection_key(collection_id)

    def index_key(self, collection_id: str, item_id: str) -> str:
        """Key of the id index entry of ``item_id`` in a partitioned collection.

        ``<collection>/.ids/<item_id>`` holds the key of the item's document,
        so the item of an id is found in O(1) whatever its period (no listing).
        Not a ``.json`` document: walkers and validators ignore it.
        """
        return index_key(collection_id, item_id)

    def chain(self, collection_id: str, when: datetime | None = None) -> list[str]:
        """Ancestors of an item, nearest first: partitions..., collection, root."""
        return [
            *reversed(self.partition_keys(collection_id, when)),
            self.collection_key(collection_id),
            self.root_key,
        ]

    def item_chain(self, collection_id: str, item_key: str) -> list[str]:
        """Ancestors of the item at ``item_key``, nearest first, from its key
        (so also below split partitions): partitions..., collection, root.

        >>> Layout("year/month").item_chain("c", "c/2024/03/15/x/x.json")[:3]
        ['c/2024/03/15/catalog.json', 'c/2024/03/catalog.json', 'c/2024/catalog.json']
        """
        return [
            *reversed(item_partition_keys(collection_id, item_key)),
            collection_key(collection_id),
            ROOT_KEY,
        ]

    def placed_partition_keys(
        self, collection_id: str, when: datetime | None, item_id: str, lookup: Callable[[str], dict | None]
    ) -> list[str]:
        """Partition keys (outermost first) a NEW item starting at ``when``
        goes under: the period's partition, then, while the deepest one read
        through ``lookup(key)`` (a document or None) is marked split, the
        finer period below it, unless the catalog already links the item
        (linked before the split; its id index entry may not be written yet),
        or it links nothing at all (emptied by removals and moves since its
        split: a mark left on an empty partition sends no item one level
        deeper, so an item moved out and back lands where it was). Empty
        when unpartitioned. ``lookup`` is called once per key returned from
        the base period down (the caller does the I/O).
        """
        keys = self.partition_keys(collection_id, when)
        if not keys:
            return keys
        assert when is not None
        while True:
            doc = lookup(keys[-1])
            if (
                not (isinstance(doc, dict) and doc.get(SPLIT_FIELD))
                or links_item(doc, item_id)
                or not links_below(doc)
            ):
                return keys
            keys.append(finer_partition_key(collection_id, keys[-1], when, item_id))

    def placed_item_key(self, collection_id: str, item_id: str, partition_keys: list[str]) -> str:
        """Key of item ``item_id`` directly below the last of ``partition_keys``."""
        if not partition_keys:
            return self.item_key(collection_id, item_id)
        return f"{posixpath.dirname(partition_keys[-1])}/{item_id}/{item_id}.json"


def item_partition_keys(collection_id: str, item_key: str) -> list[str]:
    """Partition catalog keys above the item at ``item_key``, outermost first
    (empty for an item directly in the collection).

    >>> item_partition_keys("c", "c/2024/03/x/x.json")
    ['c/2024/catalog.json', 'c/2024/03/catalog.json']
    """
    folder = posixpath.dirname(posixpath.dirname(item_key))
    parts = folder.split("/")[1:] if folder.startswith(f"{collection_id}/") else []
    return [f"{collection_id}/{'/'.join(parts[: i + 1])}/{CATALOG_FILE}" for i in range(len(parts))]


def partition_depth(collection_id: str, partition_key: str) -> int:
    """How many folders below the collection a partition catalog sits (year: 1)."""
    return partition_label(collection_id, partition_key).count("/") + 1


def finer_level(collection_id: str, partition_key: str) -> str:
    """What a full partition is split by: ``month``, ``day``, ``hour`` or ``shard``."""
    return _FINER.get(partition_depth(collection_id, partition_key), "shard")


def finer_partition_key(collection_id: str, partition_key: str, when: datetime, item_id: str) -> str:
    """The partition below the full ``partition_key`` that an item starting at
    ``when`` with id ``item_id`` goes to.

    >>> from datetime import datetime
    >>> finer_partition_key("c", "c/2024/03/catalog.json", datetime(2024, 3, 5, 7), "x")
    'c/2024/03/05/catalog.json'
    >>> finer_partition_key("c", "c/2024/03/05/07/catalog.json", datetime(2024, 3, 5, 7), "x")
    'c/2024/03/05/07/x1/catalog.json'
    """
    depth = partition_depth(collection_id, partition_key)
    level = _FINER.get(depth)
    if level == "month":
        segment = f"{when.month:02d}"
    elif level == "day":
        segment = f"{when.day:02d}"
    elif level == "hour":
        segment = f"{when.hour:02d}"
    else:  # hash shards: one more hex digit of the id's digest per level
        digest = hashlib.sha1(item_id.encode("utf-8")).hexdigest()
        segment = SHARD_PREFIX + digest[(depth - 4) % len(digest)]
    return f"{posixpath.dirname(partition_key)}/{segment}/{CATALOG_FILE}"


def links_item(doc: dict, item_id: str) -> bool:
    """True if the catalog ``doc`` links item ``item_id`` directly below it."""
    href = f"./{item_id}/{item_id}.json"
    return any(
        isinstance(link, dict) and link.get("rel") == "item" and link.get("href") == href
        for link in doc.get("links", [])
    )


def links_below(doc: dict) -> bool:
    """True if the catalog ``doc`` links an item or a child catalog."""
    return any(
        isinstance(link, dict) and link.get("rel") in ("item", "child") for link in doc.get("links", [])
    )


def item_link_count(doc: dict) -> int:
    """How many items a catalog document links."""
    return sum(1 for link in doc.get("links", []) if isinstance(link, dict) and link.get("rel") == "item")


def mark_if_full(doc: dict, key: str, collection_id: str, max_links: int) -> bool:
    """Mark the partition catalog ``doc`` (at ``key``) split once it links
    ``max_links`` items or more; True if it was marked now. Mutates ``doc``.

    Called inside the compare-and-swap that adds the links, so the mark and
    the link that fills the catalog are one write: a writer that read the
    catalog before may still link the item it placed there (the bound is
    ``max_links`` plus the items of the batches in flight), every later one
    places new items below it.
    """
    if doc.get(SPLIT_FIELD) or item_link_count(doc) < max_links:
        return False
    doc[SPLIT_FIELD] = finer_level(collection_id, key)
    return True


def placed_within(old_key: str, new_key: str) -> bool:
    """True if the item at ``old_key`` sits in a partition that contains the
    one ``new_key`` (same id) was placed in: the item stays where it is
    rather than moving below its full partition.

    >>> placed_within("c/2024/03/x/x.json", "c/2024/03/05/x/x.json")
    True
    >>> placed_within("c/2024/04/x/x.json", "c/2024/03/05/x/x.json")
    False
    """
    old_folder = posixpath.dirname(posixpath.dirname(old_key))
    new_folder = posixpath.dirname(posixpath.dirname(new_key))
    return posixpath.basename(old_key) == posixpath.basename(new_key) and (
        new_folder == old_folder or new_folder.startswith(f"{old_folder}/")
    )


def collection_key(collection_id: str) -> str:
    """Key of the collection document (the same in every layout)."""
    return f"{collection_id}/{COLLECTION_FILE}"


def thumbnail_key(item_key: str, product: str | None = None) -> str:
    """Key of an item's thumbnail PNG (``--thumbnail``), beside its document.

    With ``product`` (the normalised data href of the product the PNG shows):
    ``c/x/x.json`` → ``c/x/x.<8 hex of its SHA-256>.png``, so a registration
    of another product under the same id (refused, or a ``replace``) can never
    overwrite the PNG the stored item links. Without: ``c/x/x.png`` (items
    registered before the key named the product). Not a ``.json`` key:
    walkers ignore it."""
    stem = item_key[: -len(".json")] if item_key.endswith(".json") else item_key
    if product is None:
        return f"{stem}.png"
    return f"{stem}.{hashlib.sha256(product.encode('utf-8')).hexdigest()[:8]}.png"


def is_thumbnail_key(key: str) -> bool:
    """True for a key :func:`thumbnail_key` gives with a product: a PNG
    named after the folder it is in, plus 8 hex digits
    (``c/x/x.0f7af015.png``; ``c/x/y.0f7af015.png`` and ``c/x/x.png`` are not).

    >>> is_thumbnail_key("c/2024/x.y/x.y.0f7af015.png")
    True
    >>> is_thumbnail_key("c/x/x.png")
    False
    """
    folder, _, name = key.rpartition("/")
    stem = folder.rpartition("/")[2]
    return (
        bool(stem)
        and len(name) == len(stem) + 13
        and name.startswith(stem + ".")
        and name.endswith(".png")
        and all(c in "0123456789abcdef" for c in name[len(stem) + 1 : -4])
    )


def collection_prefix(collection_id: str) -> str:
    """The prefix every key of the collection starts with (for a listing)."""
    return f"{collection_id}/"


def index_key(collection_id: str, item_id: str) -> str:
    """Key of the id index entry of ``item_id`` (partitioned collections)."""
    return f"{collection_id}/{INDEX_DIR}/{item_id}"


def outbox_prefix(collection_id: str, sink_id: str) -> str:
    """Folder of the outbox entries of sink ``sink_id`` in a collection
    (entries have no ``.json`` suffix: never taken for documents).

    >>> outbox_prefix("c", "sns-alerts")
    'c/.outbox/sns-alerts'
    """
    return f"{collection_id}/{OUTBOX_DIR}/{sink_id}"


def intent_key(collection_id: str, token: str | None = None) -> str:
    """Key of the intent ``token`` of a collection (group commit), or with
    no token the folder holding them (the prefix to list)."""
    folder = f"{collection_id}/{INTENT_DIR}"
    return folder if token is None else f"{folder}/{token}{INTENT_SUFFIX}"


def is_intent_key(key: str) -> bool:
    """True for ``<collection>/_intents/<token>.intent`` (never a document key)."""
    parts = key.split("/")
    return len(parts) == 3 and parts[1] == INTENT_DIR and parts[2].endswith(INTENT_SUFFIX)


def lease_key(collection_id: str) -> str:
    """Key of the group-commit leader's lease of a collection (``ack="durable"``).

    >>> lease_key("c")
    'c/_intents/leader.lease'
    """
    return f"{intent_key(collection_id)}/{LEASE_NAME}"


def is_lease_key(key: str) -> bool:
    """True for ``<collection>/_intents/leader.lease`` (never a document or an intent key)."""
    parts = key.split("/")
    return len(parts) == 3 and parts[1] == INTENT_DIR and parts[2] == LEASE_NAME


def collection_of(key: str) -> str:
    """The collection id a key below the root belongs to (its first folder).

    >>> collection_of("c/2024/03/x/x.json")
    'c'
    """
    return key.split("/", 1)[0]


def is_document_key(key: str) -> bool:
    """True for the key of a STAC document (not an id index entry, a lock, ...)."""
    return key.endswith(".json")


def is_catalog_document_key(key: str) -> bool:
    """True for a key where a layout puts a STAC document: the root
    ``catalog.json``, a ``<c>/collection.json``, a partition catalog
    ``<c>/.../catalog.json`` or an item ``<c>/.../<id>/<id>.json``. Other
    ``.json`` files under the root (a product's sidecar kept there) are not
    the catalog's.

    >>> [is_catalog_document_key(k) for k in ("c/x/x.json", "c/2024/catalog.json", "data/s/meta.json")]
    [True, True, False]
    """
    if key == ROOT_KEY or is_collection_key(key):
        return True
    parts = key.split("/")
    return len(parts) >= 3 and parts[-1] in (CATALOG_FILE, f"{parts[-2]}.json")


def below_collection(key: str) -> bool:
    """True for a key inside a collection's folder below its document
    (where items and partitions sit): ``<coll>/.../<name>``, not ``<coll>/collection.json``
    nor a top-level document.

    >>> below_collection("c/x/x.json"), below_collection("c/collection.json")
    (True, False)
    """
    return key.count("/") >= 2


def is_collection_key(key: str) -> bool:
    """True for ``<id>/collection.json``."""
    return folder_collection_id(key) is not None


def folder_collection_id(key: str) -> str | None:
    """The collection id the layout implies for ``<id>/collection.json``, else None."""
    parts = key.split("/")
    return parts[0] if len(parts) == 2 and parts[1] == COLLECTION_FILE else None


def is_partitioned_item_key(item_key: str) -> bool:
    """True if the item at ``item_key`` sits in a partition (so it has an id index entry)."""
    return layout_of_item(item_key).partition is not None


def partition_label(collection_id: str, partition_key: str) -> str:
    """The period of a partition catalog key: ``c/2024/03/catalog.json`` → ``2024/03``.

    >>> partition_label("c", "c/2024/03/catalog.json")
    '2024/03'
    """
    return partition_key[len(collection_id) + 1 : -len(CATALOG_FILE) - 1]


def expected_type(key: str) -> tuple[str, ...]:
    """The STAC types a parent document at ``key`` may have."""
    if key == ROOT_KEY:
        return ("Catalog", "Collection")
    return ("Collection",) if is_collection_key(key) else ("Catalog",)


def parent_of_folder_document(key: str, exists: Callable[[str], bool]) -> str:
    """The document that should link the catalog or collection at ``key``:
    the root for a top-level folder, else the collection or catalog of the
    folder above, an existing one (``exists(key)``) first, else a collection
    for a top-level folder and a partition catalog below it.

    >>> parent_of_folder_document("c/2024/catalog.json", lambda k: False)
    'c/collection.json'
    >>> parent_of_folder_document("c/2024/03/catalog.json", lambda k: False)
    'c/2024/catalog.json'
    """
    folder = posixpath.dirname(posixpath.dirname(key))
    if not folder:
        return ROOT_KEY
    for name in (COLLECTION_FILE, CATALOG_FILE):
        if exists(f"{folder}/{name}"):
            return f"{folder}/{name}"
    return f"{folder}/{COLLECTION_FILE if '/' not in folder else CATALOG_FILE}"


def item_key_in_listing(keys: Iterable[str], collection_id: str, item_id: str) -> str | None:
    """The key of item ``item_id`` among listed ``keys`` of the collection, in
    any layout (the fallback for a collection whose layout is not recorded)."""
    suffix = f"/{item_id}/{item_id}.json"
    prefix = collection_prefix(collection_id)
    for key in keys:
        if key.startswith(prefix) and key.endswith(suffix):
            return key
    return None


def layout_record_problem(collection: dict) -> str | None:
    """What is wrong with the layout record of a collection document, phrased
    with the fix; None if it is usable or absent."""
    if LAYOUT_FIELD not in collection:
        return None
    record = collection[LAYOUT_FIELD]
    if record is None:
        return None
    if (
        isinstance(record, dict)
        and set(record) in ({"partition"}, {"partition", "max_links"})
        and record["partition"] in PARTITIONS[1:]
        and _valid_max_links(record.get("max_links", DEFAULT_MAX_LINKS))
    ):
        return None
    return (
        f'its {LAYOUT_FIELD!r} is {record!r}, not null or {{"partition": P}} with P one of '
        f'{list(PARTITIONS[1:])} (and optionally "max_links": a whole number of at least 1): '
        "set it to the layout its items sit in, or delete it and let a reconcile with fixing record it"
    )


def _valid_max_links(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def recorded_layout(collection: dict, where: str) -> Layout | None:
    """The layout recorded in a collection document, or None for a
    collection written before layouts were recorded. Raises
    :class:`CatalogError` naming ``where`` for a record this tool did not write."""
    problem = layout_record_problem(collection)
    if problem is not None:
        raise CatalogError(f"{where}: {problem}")
    if LAYOUT_FIELD not in collection:
        return None
    record = collection[LAYOUT_FIELD]
    if record is None:
        return Layout(None)
    return Layout(record["partition"], record.get("max_links", DEFAULT_MAX_LINKS))


def linked_layout(
    collection: dict,
    collection_id: str,
    lookup: Callable[[str], dict | None],
    max_links: int = DEFAULT_MAX_LINKS,
) -> Layout | None:
    """The layout a collection that records none (written before layouts
    were recorded) is laid out in, from its links: items linked by the
    collection itself, flat; year catalogs (child links), partitioned, by
    year if the first one (read through ``lookup(key)``: a document or None)
    links items or was split into months (:data:`SPLIT_FIELD`), else by
    year/month. None when nothing says (no links, both kinds, an unreadable
    year catalog): a reconcile that walks the items tells then.

    >>> linked_layout({"links": [{"rel": "item", "href": "./x/x.json"}]}, "c", lambda key: None).partition
    >>> year = {"links": [{"rel": "child", "href": "./03/catalog.json"}]}
    >>> linked_layout({"links": [{"rel": "child", "href": "./2024/catalog.json"}]}, "c", {"c/2024/catalog.json": year}.get)
    Layout(partition='year/month', max_links=2000)
    """

    def rels(doc: dict, rel: str) -> list[str]:
        links = doc.get("links")
        return [
            link["href"]
            for link in (links if isinstance(links, list) else [])
            if isinstance(link, dict) and link.get("rel") == rel and isinstance(link.get("href"), str)
        ]

    items, children = rels(collection, "item"), rels(collection, "child")
    if items and not children:
        return Layout(None, max_links)
    if children and not items:
        child = resolve_href(collection_key(collection_id), children[0])
        if child is None or not child.startswith(f"{collection_id}/"):
            return None
        year = lookup(child)
        if not isinstance(year, dict):
            return None
        if rels(year, "item") or year.get(SPLIT_FIELD):
            return Layout("year", max_links)
        if rels(year, "child"):
            return Layout("year/month", max_links)
    return None


def item_parent_key(item_key: str, collection_id: str) -> str:
    """The document that links the item at ``item_key`` (whatever the layout).

    >>> item_parent_key("c/2024/03/x/x.json", "c")
    'c/2024/03/catalog.json'
    >>> item_parent_key("c/x/x.json", "c")
    'c/collection.json'
    """
    folder = posixpath.dirname(posixpath.dirname(item_key))
    return collection_key(collection_id) if folder == collection_id else f"{folder}/{CATALOG_FILE}"


def layout_of_item(item_key: str) -> Layout:
    """The partition scheme an item document's key was made with
    (``<coll>/[YYYY/[MM/[...]]]<id>/<id>.json``; deeper than a month: a
    month split into finer periods).

    >>> layout_of_item("c/2024/03/x/x.json").partition
    'year/month'
    >>> layout_of_item("c/2024/03/05/x/x.json").partition
    'year/month'
    """
    depth = item_key.count("/") - 2
    return Layout(None if depth <= 0 else "year" if depth == 1 else "year/month")


#: what a partition folder at each depth below the collection may be named:
#: the year, then the month (a year/month partition or a split year), the
#: day and the hour of the splits, then hash shards (:func:`finer_partition_key`)
_FOLDER_RANGES = {1: (1, 9999), 2: (1, 12), 3: (1, 31), 4: (0, 23)}


def _is_partition_folder(depth: int, name: str) -> bool:
    """True if ``name`` is what the layout names a partition folder at
    ``depth`` (1: the year) below the collection, base period or split."""
    bounds = _FOLDER_RANGES.get(depth)
    if bounds is None:
        return len(name) == 2 and name[0] == SHARD_PREFIX and name[1] in "0123456789abcdef"
    width = 4 if depth == 1 else 2
    return len(name) == width and name.isascii() and name.isdigit() and bounds[0] <= int(name) <= bounds[1]


def item_follows(layout: Layout, item_key: str) -> bool:
    """True if the item at ``item_key`` sits where ``layout`` may put an
    item: directly in the collection (flat), or in the partition folders of
    its scheme (``<YYYY>`` or ``<YYYY>/<MM>``) and below them only the
    folders of split partitions (day, hour, hash shards: the finer periods
    a full partition sends new items to).

    >>> item_follows(Layout("year"), "c/2024/03/x/x.json")  # a split year
    True
    >>> item_follows(Layout("year/month"), "c/2024/x/x.json"), item_follows(Layout(), "c/2024/x/x.json")
    (False, False)
    >>> item_follows(Layout("year/month"), "c/2024/03/05/07/x1/x/x.json")
    True
    """
    folders = item_key.split("/")[1:-2]
    base = len(layout.partition_dirs(datetime(2000, 1, 1))) if layout.partition else 0
    if len(folders) < base or (base == 0 and folders):
        return False
    return all(_is_partition_folder(depth, name) for depth, name in enumerate(folders, 1))


def layouts_of_item(item_key: str) -> frozenset[Layout]:
    """Every layout the key of an item document may have been made with
    (an item in ``<YYYY>/<MM>/`` follows both ``year/month`` and a split
    ``year``; none for folders no layout makes).

    >>> sorted(str(layout.partition) for layout in layouts_of_item("c/2024/03/x/x.json"))
    ['year', 'year/month']
    """
    return frozenset(layout for layout in map(Layout, PARTITIONS) if item_follows(layout, item_key))


def relative_href(from_key: str, to_key: str) -> str:
    """Href of ``to_key`` as seen from the document at ``from_key``.

    >>> relative_href("a/b/b.json", "a/collection.json")
    '../collection.json'
    >>> relative_href("a/collection.json", "a/b/b.json")
    './b/b.json'
    """
    src, dst = from_key.split("/")[:-1], to_key.split("/")
    if all(src) and all(dst) and not {".", ".."} & {*src, *dst}:
        # plain keys (no empty, "." or ".." part): the parts themselves, no
        # os.getcwd() of posixpath.relpath (two per call)
        common = 0
        while common < min(len(src), len(dst)) and src[common] == dst[common]:
            common += 1
        rel = "/".join([".."] * (len(src) - common) + dst[common:]) or "."
    else:
        rel = posixpath.relpath(to_key, posixpath.dirname(from_key) or ".")
    return rel if rel.startswith("../") else f"./{rel}"


def resolve_href(from_key: str, href: str) -> str | None:
    """Key that a relative ``href`` in ``from_key`` points at.

    ``None`` for absolute URLs and for hrefs that leave the catalog root.
    """
    if "://" in href or href.startswith("/"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(from_key), href))
    if joined == ".." or joined.startswith("../"):
        return None
    return joined
