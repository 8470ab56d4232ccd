"""Building catalog documents and merging links and extents into them.

Pure functions on plain ``dict`` documents. Functions named ``with_*`` /
``add_*`` mutate the document passed in and return whether anything changed;
callers pass a fresh copy of what they read, never a caller's object.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable, Sequence

from producer.catalog.extent import (
    WORLD,
    bbox_contains,
    interval_contains,
    item_interval,
    parse_time,
    union_bbox,
    union_interval,
)
from producer.catalog.layout import Layout, relative_href
from producer.errors import CatalogError

STAC_VERSION = "1.1.0"
JSON = "application/json"
GEOJSON = "application/geo+json"
#: link relations that point down the tree
CHILD_RELS = ("child", "item")
#: link relations a writer maintains itself on every document
STRUCTURAL_RELS = ("root", "parent", "collection", "self")
#: item property set by ``remove`` before it unlinks and deletes the item (a
#: UTC ISO timestamp): an item carrying it is being removed, and ``reconcile
#: --fix`` finishes the removal instead of linking it again
REMOVING = "producer:removing"


#: a parent with more links than this is serialised through the fast path
_FAST_LINKS = 64
_SCALARS = frozenset((str, int, float, bool, type(None)))
#: the C encoder, compact, with separators that hold the newline and indent of
#: the keys of a link object (depth 3: doc → "links" → link). A newline never
#: occurs inside an encoded string (it is escaped), so the separators can be
#: told from the content.
_LINK_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",\n      ", ": "))
_PLACEHOLDER = "\x00links\x00"


def _flat(link: Any) -> bool:
    return type(link) is dict and bool(link) and _SCALARS.issuperset(map(type, link.values()))


def dumps(doc: dict) -> bytes:
    """Canonical bytes of a document: stable key order as built, 2-space indent.

    Always the bytes of ``json.dumps(doc, indent=2, ensure_ascii=False)`` plus
    a newline. CPython's C encoder does not indent, so a parent with many
    links would go through the pure-Python one (about 1 s for 100,000 links).
    When every link is a flat object (scalar values), the links are encoded
    in one call of the C encoder whose separators carry the indentation, and
    spliced into the rest.
    """
    slow = lambda: (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")  # noqa: E731
    links = doc.get("links")
    if not isinstance(links, list) or len(links) <= _FAST_LINKS or not all(map(_flat, links)):
        return slow()
    head = json.dumps({**doc, "links": _PLACEHOLDER}, indent=2, ensure_ascii=False)
    marker = json.dumps(_PLACEHOLDER, ensure_ascii=False)
    if head.count(marker) != 1:  # the marker's text occurs elsewhere: take the slow road
        return slow()
    # "[{k: v,\n      k: v},\n      {k: v}]" → one link object per indented block
    compact = _LINK_ENCODER.encode(links)
    body = compact[2:-2].replace("},\n      {", "\n    },\n    {\n      ")
    text = head.replace(marker, "[\n    {\n      " + body + "\n    }\n  ]", 1)
    return (text + "\n").encode("utf-8")


def copy_doc(doc: dict) -> dict:
    """A copy of a document that the mutations of this module may change.

    Like ``copy.deepcopy``, but each link object is copied with ``dict()``
    (ten times faster for a parent with 100,000 links): the mutations here
    replace or add links and set a link's ``title``, never change a value
    nested inside a link.
    """
    return {key: ([dict(link) if type(link) is dict else copy.deepcopy(link) for link in value]
                  if key == "links" and isinstance(value, list) else copy.deepcopy(value))
            for key, value in doc.items()}


def loads(data: bytes, key: str, *, expect: Sequence[str] | None = None) -> dict:
    """Parse a stored document and check it is the STAC type we expect.

    Raises :class:`CatalogError` naming ``key`` for invalid JSON, a non-object,
    a missing ``id``/``links``, or an unexpected ``type``.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(
            f"{key}: existing document is not valid JSON ({exc}); repair or remove it "
            "(stac-producer validate / reconcile show the catalog's state)"
        ) from exc
    if not isinstance(doc, dict):
        raise CatalogError(f"{key}: existing document is not a JSON object; repair or remove it")
    kind = doc.get("type")
    if expect is not None and kind not in expect:
        raise CatalogError(
            f"{key}: existing document has type {kind!r}, expected {' or '.join(expect)}; "
            "it is not a STAC document this catalog can update — move it away or fix it"
        )
    if not isinstance(doc.get("id"), str) or not isinstance(doc.get("links", None), list):
        raise CatalogError(
            f"{key}: existing STAC document lacks a string 'id' or a 'links' list; repair it"
        )
    if any(not isinstance(link, dict) or not isinstance(link.get("href"), str) for link in doc["links"]):
        raise CatalogError(f"{key}: existing document has a link without an 'href'; repair it")
    return doc


# --- links -----------------------------------------------------------------

def add_link(doc: dict, rel: str, href: str, *, title: str | None = None,
             media_type: str = JSON) -> bool:
    """Add a link unless one with the same rel and href exists. Mutates ``doc``."""
    for link in doc["links"]:
        if link.get("rel") == rel and link.get("href") == href:
            if title is not None and link.get("title") != title:
                link["title"] = title
                return True
            return False
    link = {"rel": rel, "href": href, "type": media_type}
    if title is not None:
        link["title"] = title
    doc["links"].append(link)
    return True


def add_links(doc: dict, links: Iterable[dict]) -> bool:
    """Add each link whose (rel, href) is not present yet. Mutates ``doc``.

    One pass over the existing links whatever the number added, so a batch of
    a thousand items into a parent of a hundred thousand links stays linear.
    """
    index = {(link.get("rel"), link.get("href")): link for link in doc["links"]}
    changed = False
    for link in links:
        old = index.get((link["rel"], link["href"]))
        if old is None:
            new = dict(link)
            doc["links"].append(new)
            index[(link["rel"], link["href"])] = new
            changed = True
        elif link.get("title") is not None and old.get("title") != link["title"]:
            old["title"] = link["title"]
            changed = True
    return changed


def remove_links(doc: dict, rel: str, href: str) -> int:
    """Remove every link with that rel and href; return how many. Mutates ``doc``."""
    before = len(doc["links"])
    doc["links"] = [
        link for link in doc["links"] if not (link.get("rel") == rel and link.get("href") == href)
    ]
    return before - len(doc["links"])


def new_or_changed_links(old: list[dict], new: list[dict]) -> list[dict]:
    """The links of ``new`` to validate when ``old`` was valid.

    Structural links (root, parent, self, ...) always; a child or item link
    unless the link at the same position in ``old`` is equal. Appends and
    title changes keep positions, so only the new and changed links come
    back, without hashing 100,000 links; after a removal the links behind it
    shift and are validated again, which costs time, never correctness.
    """
    return [link for i, link in enumerate(new)
            if link.get("rel") not in CHILD_RELS or i >= len(old) or link != old[i]]


def child_links(doc: dict) -> list[dict]:
    return [link for link in doc.get("links", []) if link.get("rel") in CHILD_RELS]


def structural_links(key: str, layout: Layout, collection_id: str | None,
                     parent_key: str | None, *, parent_title: str | None = None,
                     root_title: str | None = None) -> list[dict]:
    """root / parent / collection links for the document at ``key``."""
    links = [{"rel": "root", "href": relative_href(key, layout.root_key), "type": JSON}]
    if root_title:
        links[0]["title"] = root_title
    if parent_key is not None:
        link = {"rel": "parent", "href": relative_href(key, parent_key), "type": JSON}
        if parent_title:
            link["title"] = parent_title
        links.append(link)
    return links


# --- builders --------------------------------------------------------------

def new_root(meta: dict | None = None) -> dict:
    """A root catalog document (no children yet)."""
    meta = dict(meta or {})
    doc: dict[str, Any] = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": meta.pop("id", "catalog"),
        "title": meta.pop("title", "STAC catalog"),
        "description": meta.pop("description", "Static STAC catalog maintained by stac-producer."),
        "links": [{"rel": "root", "href": "./catalog.json", "type": JSON}],
    }
    doc["links"][0]["title"] = doc["title"]
    doc.update(meta)
    return doc


def new_collection(collection_id: str, meta: dict | None, layout: Layout,
                   root_title: str | None = None) -> dict:
    """A collection document with an empty extent (no items yet).

    ``meta`` may hold title, description, license, providers, keywords and any
    other top-level collection field; it is copied, never mutated.
    """
    meta = dict(meta or {})
    key = layout.collection_key(collection_id)
    doc: dict[str, Any] = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": collection_id,
        "title": meta.pop("title", collection_id),
        "description": meta.pop("description", f"Products registered as '{collection_id}'."),
        "license": meta.pop("license", "other"),
    }
    for field in ("keywords", "providers"):
        if meta.get(field):
            doc[field] = meta.pop(field)
        else:
            meta.pop(field, None)
    doc["extent"] = empty_extent()
    doc.update(meta)
    doc["links"] = structural_links(key, layout, collection_id, layout.root_key,
                                    parent_title=root_title, root_title=root_title)
    return doc


def new_partition(key: str, parent_key: str, layout: Layout, collection_id: str,
                  label: str, collection_title: str | None = None) -> dict:
    """A sub-catalog holding one period of a partitioned collection."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "stac_extensions": [],
        "id": f"{collection_id}-{label.replace('/', '-')}",
        "title": f"{collection_title or collection_id} {label}",
        "description": f"Items of collection '{collection_id}' for {label}.",
        "links": structural_links(key, layout, collection_id, parent_key),
    }


def set_item_links(item: dict, key: str, layout: Layout, collection_id: str,
                   parent_key: str, *, collection_title: str | None = None) -> None:
    """Replace an item's structural links with relative root/parent/collection ones.

    Mutates ``item``; non-structural links the producer set (e.g. ``license``,
    ``via``) are kept after them.
    """
    others = [link for link in item.get("links", []) if link.get("rel") not in STRUCTURAL_RELS]
    links = structural_links(key, layout, collection_id, parent_key)
    coll = {"rel": "collection", "href": relative_href(key, layout.collection_key(collection_id)),
            "type": JSON}
    if collection_title:
        coll["title"] = collection_title
    links.append(coll)
    item["links"] = links + others
    item["collection"] = collection_id


# --- extents ---------------------------------------------------------------

def empty_extent() -> dict:
    """Extent of a collection with no items: the spec requires one bbox and
    one interval, so this is the whole world and an open interval; it is
    replaced (not unioned) by the first item merged."""
    return {"spatial": {"bbox": [list(WORLD)]}, "temporal": {"interval": [[None, None]]}}


def is_empty(doc: dict) -> bool:
    """True if a collection or catalog links no children or items."""
    return not child_links(doc)


def merge_extent(collection: dict, items: Iterable[dict], *, was_empty: bool) -> bool:
    """Grow ``collection['extent']`` to cover ``items``. Mutates ``collection``.

    ``was_empty``: the collection linked nothing before this change, so its
    extent is a placeholder to replace rather than to union with.
    """
    items = list(items)
    if not items:
        return False
    boxes = [item["bbox"][:2] + item["bbox"][-2:] if len(item["bbox"]) == 6 else item["bbox"]
             for item in items]
    intervals = [item_interval(item) for item in items]
    extent = collection.setdefault("extent", empty_extent())
    try:
        old_bbox = extent["spatial"]["bbox"][0]
        old_interval = extent["temporal"]["interval"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise CatalogError(
            f"collection {collection.get('id')!r} has a malformed extent; repair it "
            "(stac-producer reconcile --fix recomputes it)"
        ) from exc
    if was_empty:
        new_bbox = union_bbox(boxes)
        new_interval = union_interval(intervals)
    else:
        if all(bbox_contains(old_bbox, b) for b in boxes) and all(
            interval_contains(old_interval, iv) for iv in intervals
        ):
            return False
        new_bbox = union_bbox([old_bbox, *boxes])
        new_interval = union_interval([tuple(old_interval), *intervals])
    changed = new_bbox != old_bbox or new_interval != old_interval
    extent["spatial"]["bbox"][0] = new_bbox
    extent["temporal"]["interval"][0] = new_interval
    return changed


def exact_extent(items: Iterable[dict]) -> dict:
    """The extent that is exactly the union of ``items`` (empty if none)."""
    items = list(items)
    if not items:
        return empty_extent()
    boxes = [item["bbox"][:2] + item["bbox"][-2:] if len(item["bbox"]) == 6 else item["bbox"]
             for item in items]
    return {
        "spatial": {"bbox": [union_bbox(boxes)]},
        "temporal": {"interval": [union_interval(item_interval(i) for i in items)]},
    }


def touches_boundary(extent: dict, item: dict) -> bool:
    """True if removing ``item`` could shrink ``extent`` (it attains an edge).

    If an item lies strictly inside every edge of the extent, some other item
    defines each edge, so the union of the others is unchanged.
    """
    try:
        bbox = extent["spatial"]["bbox"][0]
        interval = extent["temporal"]["interval"][0]
    except (KeyError, IndexError, TypeError):
        return True
    ib = item["bbox"][:2] + item["bbox"][-2:] if len(item["bbox"]) == 6 else item["bbox"]
    eps = 1e-9
    if bbox[0] <= -180.0 + eps and bbox[2] >= 180.0 - eps:
        return True  # a whole-world span can open a gap anywhere
    if any(abs(ib[i] - bbox[i]) <= eps for i in range(4)):
        return True
    start, end = item_interval(item)
    if interval[0] is not None and parse_time(start) <= parse_time(interval[0]):
        return True
    if interval[1] is not None and parse_time(end) >= parse_time(interval[1]):
        return True
    return False
