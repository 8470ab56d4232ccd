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
    <collection>/_intents/<token>.intent (group commit: a pending change of the collection)

This module is the only owner of document keys: every other module asks it
where a document lives rather than building a key itself. The layout of a
collection is recorded in its document (:data:`LAYOUT_FIELD`), so a verb
that is not told the partition scheme reads it there (:func:`recorded_layout`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from producer.errors import CatalogError, InputError

ROOT_KEY = "catalog.json"
PARTITIONS = (None, "year", "year/month")
#: folder (inside a collection) of the id index of partitioned collections
INDEX_DIR = ".ids"
COLLECTION_FILE = "collection.json"
#: folder (inside a collection) of the pending changes of its document (group
#: commit, :mod:`producer.catalog.intents`); not STAC, never a document key
INTENT_DIR = "_intents"
INTENT_SUFFIX = ".intent"
CATALOG_FILE = "catalog.json"
#: field of a collection document recording its layout:
#: ``{"partition": "year/month"}``, or ``null`` for the flat layout
LAYOUT_FIELD = "stac_producer:layout"


@dataclass(frozen=True)
class Layout:
    """How keys are derived from (collection, item id, item time)."""

    partition: str | None = None

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise InputError(
                f"unknown partition scheme {self.partition!r}: use one of 'year', 'year/month' or none"
            )

    @property
    def root_key(self) -> str:
        return ROOT_KEY

    def collection_key(self, collection_id: str) -> str:
        return collection_key(collection_id)

    def record(self) -> dict[str, str] | None:
        """The value of :data:`LAYOUT_FIELD` that describes this layout."""
        return None if self.partition is None else {"partition": self.partition}

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


def collection_key(collection_id: str) -> str:
    """Key of the collection document (the same in every layout)."""
    return f"{collection_id}/{COLLECTION_FILE}"


def collection_prefix(collection_id: str) -> str:
    """The prefix every key of the collection starts with (for a listing)."""
    return f"{collection_id}/"


def index_key(collection_id: str, item_id: str) -> str:
    """Key of the id index entry of ``item_id`` (partitioned collections)."""
    return f"{collection_id}/{INDEX_DIR}/{item_id}"


def intent_key(collection_id: str, token: str | None = None) -> str:
    """Key of the intent ``token`` of a collection (group commit), or with
    no token the folder holding them (the prefix to list)."""
    folder = f"{collection_id}/{INTENT_DIR}"
    return folder if token is None else f"{folder}/{token}{INTENT_SUFFIX}"


def is_intent_key(key: str) -> bool:
    """True for ``<collection>/_intents/<token>.intent`` (never a document key)."""
    parts = key.split("/")
    return len(parts) == 3 and parts[1] == INTENT_DIR and parts[2].endswith(INTENT_SUFFIX)


def collection_of(key: str) -> str:
    """The collection id a key below the root belongs to (its first folder).

    >>> collection_of("c/2024/03/x/x.json")
    'c'
    """
    return key.split("/", 1)[0]


def is_document_key(key: str) -> bool:
    """True for the key of a STAC document (not an id index entry, a lock, ...)."""
    return key.endswith(".json")


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
    if isinstance(record, dict) and set(record) == {"partition"} and record["partition"] in PARTITIONS[1:]:
        return None
    return (
        f'its {LAYOUT_FIELD!r} is {record!r}, not null or {{"partition": P}} with P one of '
        f"{list(PARTITIONS[1:])}: set it to the layout its items sit in, or delete it and let a "
        "reconcile with fixing record it"
    )


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
    return Layout(None if record is None else record["partition"])


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
    (``<coll>/[YYYY/[MM/]]<id>/<id>.json``).

    >>> layout_of_item("c/2024/03/x/x.json").partition
    'year/month'
    """
    depth = item_key.count("/") - 2
    return Layout({1: "year", 2: "year/month"}.get(depth))


def relative_href(from_key: str, to_key: str) -> str:
    """Href of ``to_key`` as seen from the document at ``from_key``.

    >>> relative_href("a/b/b.json", "a/collection.json")
    '../collection.json'
    >>> relative_href("a/collection.json", "a/b/b.json")
    './b/b.json'
    """
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
