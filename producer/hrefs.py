"""Asset hrefs as stored (relative to the item) and as used (absolute).

An item document on storage names a product that lies under the catalog
root by an href relative to the item document (``../../data/a.tif``), so a
catalog copied elsewhere or served over HTTP still finds its data. Every
other product keeps its absolute href (``s3://other-bucket/a.tif``,
``https://host/data/a.tif`` after an href rewrite).

Inside the producer an item is always handled with ABSOLUTE asset hrefs:
:func:`absolute_assets` runs on every item document read from storage, and
:func:`relative_assets` only on the bytes about to be written. Identity
checks, removal by product path, reconcile, the sinks (pgSTAC, change
events) and the mirror therefore all see one spelling per product, whatever
form the stored document uses. Pure: no I/O.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import quote, unquote

from producer.catalog.layout import THUMBNAIL_ASSET, resolve_href, thumbnail_key
from producer.urls import is_local, local_path

__all__ = [
    "absolute_assets",
    "absolute_collection_assets",
    "absolute_href",
    "document_url",
    "relative_assets",
    "relative_to_item",
]

#: characters left as they are when a relative href is written (RFC 3986
#: path characters); everything else (space, ``#``, ``?``, ``%``) is escaped
_SAFE = "/!$&'()*+,;=:@~-._"


def document_url(root_url: str, key: str) -> str:
    """Location of the document at ``key`` in the catalog at ``root_url``."""
    return f"{root_url.rstrip('/')}/{key}"


def _is_relative(href: str) -> bool:
    return "://" not in href and not href.startswith("/")


def _split(location: str) -> tuple[str, str]:
    """``(origin, path)``: ``("", "/abs/path")`` for a local location,
    ``("s3://bucket", "/key")`` for a remote one (``s3a``/``s3n`` → ``s3``)."""
    if is_local(location):
        return "", posixpath.normpath(local_path(location))
    scheme, _, rest = location.partition("://")
    scheme = scheme.lower()
    if scheme in ("s3a", "s3n"):
        scheme = "s3"
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", slash + path


def _join(base_dir: str, href: str) -> str:
    """``href`` (relative, ``/``-separated, percent-escaped) applied to the
    absolute path ``base_dir``."""
    parts = [p for p in base_dir.split("/") if p]
    for segment in unquote(href).split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def absolute_href(item_location: str, href: str) -> str:
    """``href`` of an asset of the item document at ``item_location``,
    resolved to an absolute one. Absolute hrefs come back unchanged.

    >>> absolute_href("/cat/c/x/x.json", "../../data/a.tif")
    '/cat/data/a.tif'
    >>> absolute_href("s3://b/cat/c/x/x.json", "./x.png")
    's3://b/cat/c/x/x.png'
    """
    if not href or not _is_relative(href):
        return href
    if is_local(item_location):
        return _join(posixpath.dirname(posixpath.abspath(local_path(item_location))), href)
    origin, path = _split(item_location)
    return origin + _join(posixpath.dirname(path), href)


def relative_to_item(item_location: str, root_url: str, href: str) -> str:
    """``href`` as written in the item document at ``item_location``:
    relative to the document when it names an object under the catalog root
    ``root_url`` (same file system, same bucket, below the root prefix),
    else unchanged. An http(s) URL with a query or fragment stays absolute.

    >>> relative_to_item("/cat/c/x/x.json", "/cat", "/cat/data/a.tif")
    '../../data/a.tif'
    >>> relative_to_item("/cat/c/x/x.json", "/cat", "/elsewhere/a.tif")
    '/elsewhere/a.tif'
    """
    if not href or _is_relative(href):
        return href
    if href[0] == "/" and root_url[:1] == "/" and "://" not in href and "://" not in root_url:
        # plain absolute paths (the usual local catalog): what the general
        # way below gives, with one normalisation each (a normalised
        # absolute path is its own abspath) and the item's only when needed
        path, root_path = posixpath.normpath(href), posixpath.normpath(root_url)
        if not _under(path, root_path):
            return href  # outside the catalog: whatever the item's location
        if item_location[:1] == "/" and "://" not in item_location:
            return _relative(path, posixpath.normpath(item_location))
    return _relative_to_item(item_location, root_url, href)


def _relative(path: str, item_path: str) -> str:
    """The href of ``path`` in the document at ``item_path`` (both normalised)."""
    rel = posixpath.relpath(path, posixpath.dirname(item_path))
    rel = rel if rel.startswith("../") else f"./{rel}"
    return quote(rel, safe=_SAFE)


def _relative_to_item(item_location: str, root_url: str, href: str) -> str:
    """:func:`relative_to_item` for every kind of location."""
    if not href or _is_relative(href):
        return href
    if href.lower().startswith(("http://", "https://")) and ("?" in href or "#" in href):
        return href  # a query or fragment of a URL is not part of a path
    if is_local(href) != is_local(root_url):
        return href
    try:
        origin, path = _split(href)
        root_origin, root_path = _split(root_url)
        item_origin, item_path = _split(item_location)
    except Exception:  # a file:// URL on another host: never relative
        return href
    if is_local(href):
        path, root_path = posixpath.abspath(path), posixpath.abspath(root_path)
        item_path = posixpath.abspath(item_path)
    if origin != root_origin or origin != item_origin:
        return href
    if not _under(path, root_path):
        return href
    return _relative(path, item_path)


def _under(path: str, root_path: str) -> bool:
    """Whether ``path`` lies below the folder ``root_path`` (with no empty
    component that would make a relative href of it wrong)."""
    return path.startswith(root_path.rstrip("/") + "/") and "//" not in path


def _map_assets(
    doc: dict[str, Any], change: Callable[[str], str], keys: Collection[str] | None = None
) -> dict[str, Any]:
    assets = doc.get("assets")
    if not isinstance(assets, dict):
        return doc
    new_assets: dict[str, Any] = {}
    changed = False
    for name, asset in assets.items():
        href = asset.get("href") if isinstance(asset, dict) else None
        if isinstance(href, str) and (keys is None or name in keys):
            new = change(href)
            if new != href:
                asset = {**asset, "href": new}
                changed = True
        new_assets[name] = asset
    return {**doc, "assets": new_assets} if changed else doc


def absolute_assets(doc: dict[str, Any], item_location: str) -> dict[str, Any]:
    """``doc`` (an item document at ``item_location``) with every relative
    asset href resolved. Returns ``doc`` itself when nothing is relative,
    else a shallow copy: ``doc`` is never mutated."""
    if doc.get("type") != "Feature":
        return doc
    return _map_assets(doc, lambda href: absolute_href(item_location, href))


def absolute_collection_assets(doc: dict[str, Any], location: str) -> dict[str, Any]:
    """``doc`` (a collection document at ``location``) with every relative
    asset href resolved (its stac-geoparquet mirror files, ``./items.parquet``),
    for a copy published away from the static tree. Returns ``doc`` itself
    when nothing is relative, else a shallow copy: ``doc`` is never mutated."""
    if doc.get("type") != "Collection":
        return doc
    return _map_assets(doc, lambda href: absolute_href(location, href))


def relative_assets(
    doc: dict[str, Any], item_location: str, root_url: str, keys: Collection[str] | None = None
) -> dict[str, Any]:
    """``doc`` as written at ``item_location``: the asset hrefs of objects
    under ``root_url`` made relative to it (:func:`relative_to_item`); only
    the assets named in ``keys`` when given. Returns ``doc`` itself when
    nothing changes, else a shallow copy: ``doc`` is never mutated."""
    if doc.get("type") != "Feature":
        return doc
    return _map_assets(doc, lambda href: relative_to_item(item_location, root_url, href), keys)


def rendered_thumbnail(item_key: str, doc: dict[str, Any] | None, root_url: str | None = None) -> str | None:
    """The key ``doc``'s ``thumbnail`` asset links, if it is one of the PNG
    keys :mod:`producer.thumbnail` renders beside ``item_key``
    (``<stem>.png`` or ``<stem>.<8 hex>.png``); None otherwise (no asset, or
    a user's file). ``root_url``: the catalog's location, to read an href a
    reader made absolute (:func:`absolute_assets`) back as a key. Here, not
    in :mod:`producer.thumbnail`, so that the committer, which that module
    imports, can tell such a preview apart too."""
    asset = ((doc or {}).get("assets") or {}).get(THUMBNAIL_ASSET)
    href = asset.get("href") if isinstance(asset, dict) else None
    if isinstance(href, str) and root_url is not None:
        href = relative_to_item(document_url(root_url, item_key), root_url, href)
    target = resolve_href(item_key, href) if isinstance(href, str) else None
    if target is None:
        return None
    stem = thumbnail_key(item_key)[: -len(".png")]
    return target if re.fullmatch(rf"{re.escape(stem)}(\.[0-9a-f]{{8}})?\.png", target) else None
