"""Where the stac-geoparquet mirror files live and how a collection links them.

Key arithmetic (pure) and the linking of base files (:func:`link_bases`),
without pyarrow, so that the commit path (which links the mirror files as
collection assets) and ``reconcile`` stay cheap to import; the files
themselves are written by :mod:`producer.mirror`.
"""

from __future__ import annotations

import base64
import functools
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any

from producer.catalog import documents as docs
from producer.catalog.layout import relative_href, resolve_href
from producer.errors import ConflictError, PreconditionFailed
from producer.store.base import Store

#: file name of a mirror file, in the folder of the document linking its items
MIRROR_NAME = "items.parquet"
MIRROR_MEDIA_TYPE = "application/vnd.apache.parquet"
MIRROR_ROLE = "collection-mirror"

#: the bytes of a base file holding no item: a parquet file with an ``id``
#: column and no row (written by pyarrow 26; kept as bytes so that the write
#: path creates a partition's base without importing pyarrow)
EMPTY_BASE = base64.b64decode(
    "UEFSMRUEFQAVAkwVABUAEgAAABUEGSw1ABgGc2NoZW1hFQIAFQwlAhgCaWQlAEwcAAAAFgAZHBkcJgAcFQwZJQAGGRgCaWQV"
    "AhYAFhwWHiYAJggpHBUEFQAVAgAAABYcFgAmCBYeABkcGAxBUlJPVzpzY2hlbWEYoAEvLy8vLzNBQUFBQVFBQUFBQUFBS0FB"
    "d0FCZ0FGQUFnQUNnQUFBQUFCQkFBTUFBQUFDQUFJQUFBQUJBQUlBQUFBQkFBQUFBRUFBQUFVQUFBQUVBQVVBQWdBQmdBSEFB"
    "d0FBQUFRQUJBQUFBQUFBQUVGRUFBQUFCZ0FBQUFFQUFBQUFBQUFBQUlBQUFCcFpBQUFCQUFFQUFRQUFBQUFBQUFBABggcGFy"
    "cXVldC1jcHAtYXJyb3cgdmVyc2lvbiAyNi4wLjEZHBwAAAAwAQAAUEFSMQ=="
)


def mirror_key(item_key: str) -> str:
    """Key of the mirror file holding the item stored at ``item_key``.

    >>> mirror_key("c/2024/03/x/x.json")
    'c/2024/03/items.parquet'
    >>> mirror_key("c/x/x.json")
    'c/items.parquet'

    Items below a split partition share their month's file, so the
    collection's mirror assets stay one per month however far it splits:

    >>> mirror_key("c/2024/03/05/x/x.json")
    'c/2024/03/items.parquet'
    """
    folder = "/".join(posixpath.dirname(posixpath.dirname(item_key)).split("/")[:3])
    return f"{folder}/{MIRROR_NAME}"


def mirror_asset_key(collection_id: str, key: str) -> str:
    """Asset key of mirror file ``key`` in the collection: ``mirror`` for the
    collection's own file, ``mirror-2024-03`` for a partition's."""
    folder = posixpath.dirname(key)
    rest = folder[len(collection_id) :].strip("/")
    return "mirror" if not rest else "mirror-" + rest.replace("/", "-")


def mirror_assets(collection_id: str, mirror_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Collection assets linking the mirror files ``mirror_keys`` (keys from
    :func:`mirror_key`, all inside ``collection_id``): ``{asset key: asset}``,
    hrefs relative to ``<collection_id>/collection.json``. Pure."""
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(mirror_keys)):
        if not key.startswith(f"{collection_id}/"):
            raise ValueError(f"mirror file {key!r} is not inside collection {collection_id!r}")
        name, asset = _asset(collection_id, key)
        out[name] = asset
    return out


def _asset(collection_id: str, key: str) -> tuple[str, dict[str, Any]]:
    """The asset key of mirror file ``key`` and a fresh asset linking it."""
    name, href, title = _asset_text(collection_id, key)
    return name, {"href": href, "type": MIRROR_MEDIA_TYPE, "title": title, "roles": [MIRROR_ROLE]}


@functools.lru_cache(maxsize=1024)
def _asset_text(collection_id: str, key: str) -> tuple[str, str, str]:
    """The asset key, href and title of mirror file ``key`` in the
    collection: the same for every batch into one partition, so made once
    per process (a warm upsert asked for them three times, ~25 us with the
    caches cold); :func:`mirror_assets` builds fresh dicts from them."""
    folder = posixpath.dirname(key)[len(collection_id) + 1 :]
    return (
        mirror_asset_key(collection_id, key),
        _dot_relative(f"{collection_id}/collection.json", key),
        f"stac-geoparquet mirror of {'the items of ' + folder if folder else 'the items'}",
    )


def _dot_relative(from_key: str, to_key: str) -> str:
    """``"./" + posixpath.relpath(to_key, posixpath.dirname(from_key))``
    without its two ``os.getcwd()`` (:func:`relative_href` is that relpath)."""
    rel = relative_href(from_key, to_key)
    return rel if rel.startswith("./") else "./" + rel


def carried(collection: dict[str, Any] | None, assets: dict[str, dict[str, Any]]) -> set[str]:
    """Asset keys of ``assets`` (from :func:`mirror_assets`) that
    ``collection`` already holds exactly so. The commit writes a base file
    before the compare-and-swap that first links it, so a committed
    collection carrying its asset says the file exists (unless deleted by
    hand: ``reconcile`` reports that as ``mirror-stale``)."""
    current = (collection or {}).get("assets")
    if not isinstance(current, dict):
        return set()
    return {k for k, v in assets.items() if current.get(k) == v}


def carries(collection: dict[str, Any], collection_id: str, key: str) -> bool:
    """Whether ``collection`` holds the asset of mirror file ``key`` exactly
    so: ``bool(carried(collection, mirror_assets(collection_id, [key])))``
    without the sorting, the outer dict and the set (one mirror file: the
    sink's check per partition written). False for a file outside the
    collection (no asset links it)."""
    current = collection.get("assets")
    if not isinstance(current, dict) or not key.startswith(f"{collection_id}/"):
        return False
    name, asset = _asset(collection_id, key)
    return current.get(name) == asset


def linked_mirror_keys(collection_key: str, collection: dict[str, Any]) -> list[str]:
    """Keys of the mirror files a collection document links as assets."""
    keys = []
    for asset in (collection.get("assets") or {}).values():
        if isinstance(asset, dict) and MIRROR_ROLE in (asset.get("roles") or []):
            key = resolve_href(collection_key, str(asset.get("href", "")))
            if key is not None:
                keys.append(key)
    return keys


def link_bases(store: Store, collection_id: str, keys: Sequence[str], *, max_retries: int = 5) -> bool:
    """Add the assets of base files ``keys`` to the collection (those it
    does not carry), as the commit does: each base first (create-only, the
    empty one, kept if there), then the assets by compare-and-swap on the
    collection document (``ConflictError`` after ``max_retries`` lost
    races). So a crash in between leaves an unlinked base, never a dangling
    asset. Returns whether the collection was written."""
    for key in keys:
        try:
            store.put(key, EMPTY_BASE, create_only=True)
        except PreconditionFailed:
            pass  # there already
    wanted = mirror_assets(collection_id, keys)
    coll_key = f"{collection_id}/collection.json"
    for _ in range(max_retries + 1):
        data, version = store.get(coll_key)
        doc = docs.loads(data, coll_key, expect=("Collection",))
        have = carried(doc, wanted)
        if len(have) == len(wanted):
            return False
        doc.setdefault("assets", {}).update({k: v for k, v in wanted.items() if k not in have})
        try:
            store.put(coll_key, docs.dumps(doc), if_version=version)
            return True
        except PreconditionFailed:
            continue
    raise ConflictError(
        f"collection {store.url}/{coll_key} kept changing while its mirror files were linked; "
        "run again when writers are quieter"
    )
