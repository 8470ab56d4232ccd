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
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime

from producer.errors import InputError

ROOT_KEY = "catalog.json"
PARTITIONS = (None, "year", "year/month")
#: folder (inside a collection) of the id index of partitioned collections
INDEX_DIR = ".ids"


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
        return f"{collection_id}/collection.json"

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
            keys.append(f"{prefix}/catalog.json")
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
        return f"{collection_id}/{INDEX_DIR}/{item_id}"

    def chain(self, collection_id: str, when: datetime | None = None) -> list[str]:
        """Ancestors of an item, nearest first: partitions..., collection, root."""
        return [
            *reversed(self.partition_keys(collection_id, when)),
            self.collection_key(collection_id),
            self.root_key,
        ]


def item_parent_key(item_key: str, collection_id: str) -> str:
    """The document that links the item at ``item_key`` (whatever the layout).

    >>> item_parent_key("c/2024/03/x/x.json", "c")
    'c/2024/03/catalog.json'
    >>> item_parent_key("c/x/x.json", "c")
    'c/collection.json'
    """
    folder = posixpath.dirname(posixpath.dirname(item_key))
    return f"{folder}/collection.json" if folder == collection_id else f"{folder}/catalog.json"


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
