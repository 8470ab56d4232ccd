"""Building catalog documents and merging links and extents into them.

Pure functions on plain ``dict`` documents. Functions named ``with_*`` /
``add_*`` mutate the document passed in and return whether anything changed;
callers pass a fresh copy of what they read, never a caller's object.
"""

from __future__ import annotations

import copy
import itertools
import json
import posixpath
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pystac import MediaType

from producer.catalog.extent import (
    WORLD,
    bbox_contains,
    box2d,
    clusters,
    extent_bboxes,
    format_time,
    interval_contains,
    item_interval,
    parse_time,
    stored_clusters,
    union_interval,
)
from producer.catalog.layout import LAYOUT_FIELD, ROOT_KEY, Layout, layout_record_problem, relative_href
from producer.errors import CatalogError, ValidationError
from producer.finite import non_finite
from producer.jsontext import loads as json_loads
from producer.jsontext import pretty, pretty_and_compact
from producer.ringtext import compact_rows
from producer.urls import local_path

STAC_VERSION = "1.1.0"
# plain ``str`` values: the fast serialisation path takes exact scalar types only
JSON: str = MediaType.JSON.value
GEOJSON: str = MediaType.GEOJSON.value
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
_LINK_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",\n      ", ": "))
_PLACEHOLDER = "\x00links\x00"


def _flat(link: Any) -> bool:
    return type(link) is dict and bool(link) and _SCALARS.issuperset(map(type, link.values()))


#: Every encoder here refuses NaN and Infinity (``allow_nan=False``): JSON has
#: neither; :func:`dumps` names the document and the place instead.
#: C encoders whose item separator carries the newline and indent of one
#: nesting level (key: the level of the members), built on first use
_LEVEL_ENCODERS: dict[int, Callable[[Any], str]] = {}
_SCALAR = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


class _Irregular(Exception):
    """A value :func:`_pretty` does not encode (a subclass of dict, a non-string key, ...)."""


def _level_encoder(level: int) -> Callable[[Any], str]:
    encode = _LEVEL_ENCODERS.get(level)
    if encode is None:
        sep = ",\n" + "  " * level
        encode = _LEVEL_ENCODERS.setdefault(
            level, json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(sep, ": ")).encode
        )
    return encode


def _pretty(value: Any, level: int, out: list[str]) -> None:
    """Append ``value`` as ``json.dumps(..., indent=2, ensure_ascii=False)``
    writes it at nesting ``level``. A container of scalars is one call of a
    C encoder whose separators hold the indentation (a newline never occurs
    inside an encoded value: it is escaped); the rest recurses. Raises
    :class:`_Irregular` for anything but exact JSON types and string keys."""
    kind = type(value)
    if kind is dict or kind is list or kind is tuple:
        if not value:
            out.append("{}" if kind is dict else "[]")
            return
        inner = "\n" + "  " * (level + 1)
        close = "\n" + "  " * level + ("}" if kind is dict else "]")
        values = value.values() if kind is dict else value
        if kind is dict and not all(type(key) is str for key in value):
            raise _Irregular
        if _SCALARS.issuperset(map(type, values)):
            out.append(
                ("{" if kind is dict else "[") + inner + _level_encoder(level + 1)(value)[1:-1] + close
            )
            return
        if kind is not dict and _number_rows(value):
            out.append(_rows(value, level))
            return
        sep = "{" + inner if kind is dict else "[" + inner
        if kind is dict:
            for key, item in value.items():
                out.append(sep + _SCALAR(key) + ": ")
                _pretty(item, level + 1, out)
                sep = "," + inner
        else:
            for item in value:
                out.append(sep)
                _pretty(item, level + 1, out)
                sep = "," + inner
        out.append(close)
    elif kind in _SCALARS:
        out.append(_SCALAR(value))
    else:
        raise _Irregular


_NUMBERS = frozenset((int, float))


_ROW_TYPES = frozenset((list, tuple))


def _number_rows(value: list | tuple) -> bool:
    """Whether ``value`` is a list of non-empty lists of numbers (a ring of
    positions); in C-speed passes over the rows and their numbers, not a
    Python step per row (a densified footprint has hundreds)."""
    return (
        _ROW_TYPES.issuperset(map(type, value))
        and all(map(len, value))
        and _NUMBERS.issuperset(map(type, itertools.chain.from_iterable(value)))
    )


def _rows(value: list | tuple, level: int) -> str:
    """A list of non-empty number lists at ``level``, as :func:`_pretty` writes
    it, from one compact C encoding: a number's text holds no comma, bracket
    or NUL, so the separators can be rewritten by plain replacement."""
    outer = "\n" + "  " * (level + 1)
    inner = outer + "  "
    text = compact_rows(value)[1:-1].replace("],[", "\x00").replace(",", "," + inner)
    text = text.replace("\x00", outer[:0] + "\n" + "  " * (level + 1) + "]," + outer + "[" + inner)
    return "[" + outer + "[" + inner + text[1:-1] + outer + "]" + "\n" + "  " * level + "]"


def dumps(doc: dict) -> bytes:
    """Canonical bytes of a document: stable key order as built, 2-space indent.

    Always the bytes of ``json.dumps(doc, indent=2, ensure_ascii=False)`` plus
    a newline. A NaN or Infinity anywhere in ``doc`` (not JSON) raises
    :class:`ValidationError` naming the document and the place; nothing is
    returned to write.
    """
    try:
        return _encode(doc)
    except ValueError:
        problems = non_finite(doc)
        if not problems:
            raise
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}.get(
        str(doc.get("type")), "document"
    )
    raise ValidationError(
        f"{kind} {doc.get('id')!r} is not written: {'; '.join(problems[:3])}", errors=problems
    )


def dumps_with_line(doc: dict) -> tuple[bytes, str | None]:
    """:func:`dumps` of ``doc`` and, where orjson wrote it, the compact line
    ``json.dumps(doc, separators=(",", ":"), allow_nan=False)`` (the mirror
    fragment's line of an item, :func:`producer.changes.item_line`) from the
    same checks; None for the line otherwise (the caller makes it its own
    way). Raises as :func:`dumps` does."""
    both = pretty_and_compact(doc)
    if both is not None:
        return both
    return dumps(doc), None


def _encode(doc: dict) -> bytes:
    """:func:`dumps` without its error message (ValueError at a NaN).

    orjson writes it where its bytes are json's (:mod:`producer.jsontext`);
    otherwise (a tiny float, a NaN, a value of another type) the following.
    CPython's C encoder does not indent, so the pure-Python one
    would write every document (3 ms for an item with a densified footprint,
    about 1 s for a parent with 100,000 links). Instead, containers of
    scalars (a coordinate pair, a bbox, a link) are encoded by the C encoder
    with separators that carry the indentation (:func:`_pretty`); when every
    link of a large parent is a flat object, the links are encoded in one
    such call and spliced into the rest. Anything unusual (a subclass of
    dict, a non-string key) takes ``json.dumps`` itself.
    """
    fast = pretty(doc)  # orjson's bytes where they are json's (producer/jsontext.py)
    if fast is not None:
        return fast
    slow = lambda: (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")  # noqa: E731
    links = doc.get("links")
    if not isinstance(links, list) or len(links) <= _FAST_LINKS or not all(map(_flat, links)):
        out: list[str] = []
        try:
            _pretty(doc, 0, out)
        except _Irregular:
            return slow()
        out.append("\n")
        return "".join(out).encode("utf-8")
    head = json.dumps({**doc, "links": _PLACEHOLDER}, indent=2, ensure_ascii=False, allow_nan=False)
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
    nested inside a link. The other members are copied by :func:`_copy_json`.
    """
    return {
        key: (
            [dict(link) if type(link) is dict else _copy_json(link) for link in value]
            if key == "links" and isinstance(value, list)
            else _copy_json(value)
        )
        for key, value in doc.items()
    }


#: the immutable types of a parsed JSON document, shared by a copy as deepcopy shares them
_JSON_ATOMS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """``copy.deepcopy(value)`` for the plain dicts and lists of a parsed
    document, without deepcopy's memo and dispatch (3x faster on a small
    collection: its compare-and-swap copies it once or twice per commit);
    any other type (a tuple, a subclass) goes to ``copy.deepcopy``. JSON
    text has no shared or cyclic members, so the memo has nothing to keep."""
    kind = type(value)
    if kind in _JSON_ATOMS:
        return value
    if kind is dict:
        return {k: v if type(v) in _JSON_ATOMS else _copy_json(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _JSON_ATOMS else _copy_json(v) for v in value]
    return copy.deepcopy(value)


def loads(data: bytes, key: str, *, expect: Sequence[str] | None = None) -> dict:
    """Parse a stored document and check it is the STAC type we expect.

    Raises :class:`CatalogError` naming ``key`` for invalid JSON, a non-object,
    a missing ``id``/``links``, or an unexpected ``type``.
    """
    try:
        doc = json_loads(data)  # json.loads, by orjson where the result is the same
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
        raise CatalogError(f"{key}: existing STAC document lacks a string 'id' or a 'links' list; repair it")
    if any(not isinstance(link, dict) or not isinstance(link.get("href"), str) for link in doc["links"]):
        raise CatalogError(f"{key}: existing document has a link without an 'href'; repair it")
    return doc


# --- links -----------------------------------------------------------------


def add_link(doc: dict, rel: str, href: str, *, title: str | None = None, media_type: str = JSON) -> bool:
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
    return [
        link
        for i, link in enumerate(new)
        if link.get("rel") not in CHILD_RELS or i >= len(old) or link != old[i]
    ]


def child_links(doc: dict) -> list[dict]:
    return [link for link in doc.get("links", []) if link.get("rel") in CHILD_RELS]


def structural_links(
    key: str,
    layout: Layout,
    collection_id: str | None,
    parent_key: str | None,
    *,
    parent_title: str | None = None,
    root_title: str | None = None,
) -> list[dict]:
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
        "links": [{"rel": "root", "href": relative_href(ROOT_KEY, ROOT_KEY), "type": JSON}],
    }
    doc["links"][0]["title"] = doc["title"]
    doc.update(meta)
    return doc


def new_collection(
    collection_id: str,
    meta: dict | None,
    layout: Layout,
    root_title: str | None = None,
    *,
    recorded: bool = True,
) -> dict:
    """A collection document with an empty extent (no items yet), recording
    ``layout`` in :data:`~producer.catalog.layout.LAYOUT_FIELD` (unless
    ``recorded`` is false: a repair that cannot know it yet).

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
    if recorded:
        doc[LAYOUT_FIELD] = layout.record()
    doc["links"] = structural_links(
        key, layout, collection_id, layout.root_key, parent_title=root_title, root_title=root_title
    )
    return doc


def record_layout(collection: dict, layout: Layout) -> bool:
    """Record ``layout`` in a collection document (mutates it); True if it changed."""
    if LAYOUT_FIELD in collection and collection[LAYOUT_FIELD] == layout.record():
        return False
    collection[LAYOUT_FIELD] = layout.record()
    return True


def new_partition(
    key: str,
    parent_key: str,
    layout: Layout,
    collection_id: str,
    label: str,
    collection_title: str | None = None,
) -> dict:
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


def set_item_links(
    item: dict,
    key: str,
    layout: Layout,
    collection_id: str,
    parent_key: str,
    *,
    collection_title: str | None = None,
) -> None:
    """Replace an item's structural links with relative root/parent/collection ones.

    Mutates ``item``; non-structural links the producer set (e.g. ``license``,
    ``via``) are kept after them.
    """
    others = [link for link in item.get("links", []) if link.get("rel") not in STRUCTURAL_RELS]
    links = structural_links(key, layout, collection_id, parent_key)
    coll = {
        "rel": "collection",
        "href": relative_href(key, layout.collection_key(collection_id)),
        "type": JSON,
    }
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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _time_ok(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


def extent_problem(extent: Any) -> str | None:
    """What is wrong with a stored collection extent, or ``None`` if usable."""
    if not isinstance(extent, dict):
        return "'extent' is not an object"
    spatial, temporal = extent.get("spatial"), extent.get("temporal")
    if not isinstance(spatial, dict) or not isinstance(spatial.get("bbox"), list) or not spatial["bbox"]:
        return "'extent.spatial.bbox' is missing or empty"
    for box in spatial["bbox"]:
        if not isinstance(box, list) or len(box) not in (4, 6) or not all(map(_number, box)):
            return f"'extent.spatial.bbox' holds {json.dumps(box)[:80]}, not a list of 4 or 6 numbers"
    if (
        not isinstance(temporal, dict)
        or not isinstance(temporal.get("interval"), list)
        or not temporal["interval"]
    ):
        return "'extent.temporal.interval' is missing or empty"
    for interval in temporal["interval"]:
        if not isinstance(interval, list) or len(interval) != 2 or not all(map(_time_ok, interval)):
            return (
                f"'extent.temporal.interval' holds {json.dumps(interval)[:80]}, "
                "not [start, end] RFC 3339 times or null"
            )
    return None


def parent_problems(doc: dict, *, collection_id: str | None = None) -> list[str]:
    """What stops this tool from updating an existing catalog or collection
    document safely, each phrased with the fix; empty if nothing.

    ``collection_id``: the id the collection at this place must have (its
    folder name in the layout).
    """
    out: list[str] = []
    if not isinstance(doc.get("stac_version"), str) or not doc.get("stac_version"):
        out.append(f'it lacks "stac_version": add "stac_version": "{STAC_VERSION}"')
    if doc.get("type") == "Collection":
        if "extent" not in doc:
            placeholder = json.dumps(empty_extent())  # only for the message: not on every read
            out.append(
                f'it lacks "extent": add "extent": {placeholder} and let a reconcile '
                "with fixing recompute it from the items"
            )
        else:
            problem = extent_problem(doc["extent"])
            if problem is not None:
                out.append(
                    f"its extent is malformed ({problem}): replace it with {json.dumps(empty_extent())} "
                    "and let a reconcile with fixing recompute it from the items"
                )
        layout_problem = layout_record_problem(doc)
        if layout_problem is not None:
            out.append(layout_problem)
        if collection_id is not None and doc.get("id") != collection_id:
            out.append(
                f"its id is {doc.get('id')!r}, so it is another collection's document, not "
                f'the one of {collection_id!r}: set its "id" to {collection_id!r} '
                "(or move it away and register into the collection it belongs to)"
            )
    return out


def check_parent(doc: dict, where: str, *, collection_id: str | None = None) -> None:
    """Raise :class:`CatalogError` naming ``where`` if :func:`parent_problems`
    finds anything; called on what is read before any write."""
    problems = parent_problems(doc, collection_id=collection_id)
    if problems:
        raise CatalogError(
            f"{where}: existing {doc.get('type')} document cannot be updated: "
            + "; ".join(problems)
            + " (nothing was written)"
        )


def _extent_of(boxes: list[list[float]], intervals: Sequence[tuple[str | None, str | None]]) -> dict:
    if not boxes:
        return empty_extent()
    return {"spatial": {"bbox": extent_bboxes(boxes)}, "temporal": {"interval": [union_interval(intervals)]}}


def _footprints(items: Iterable[dict]) -> tuple[list[list[float]], list[tuple[str, str]]]:
    boxes: list[list[float]] = []
    intervals: list[tuple[str, str]] = []
    for item in items:
        boxes.append(box2d(item["bbox"]))
        intervals.append(item_interval(item))
    return boxes, intervals


def merge_extent(collection: dict, items: Iterable[dict], *, was_empty: bool) -> bool:
    """Grow ``collection['extent']`` to cover ``items``. Mutates ``collection``.

    ``was_empty``: the collection linked nothing before this change, so its
    extent is a placeholder to replace rather than to union with. The
    spatial extent is ``[overall, *clusters]`` (see
    :func:`~producer.catalog.extent.extent_bboxes`); an item inside one of
    the clusters and inside the interval changes nothing (no write).
    """
    items = list(items)
    if not items:
        return False
    boxes, intervals = _footprints(items)
    extent = collection.setdefault("extent", empty_extent())
    problem = extent_problem(extent)
    if problem is not None:
        raise CatalogError(
            f"collection {collection.get('id')!r} has a malformed extent ({problem}); replace it "
            f"with {json.dumps(empty_extent())} and let a reconcile with fixing recompute it"
        )
    old_bboxes = extent["spatial"]["bbox"]
    old_interval = extent["temporal"]["interval"][0]
    if was_empty:
        new_bboxes = extent_bboxes(boxes)
        if len(intervals) == 1 and intervals[0][0] == intervals[0][1]:
            # one item with one datetime: its start and end are the same
            # text, so the same value (parsed and written once, not twice)
            (when,) = union_interval([(intervals[0][0], None)])[:1]
            new_interval = [when, when]
        else:
            new_interval = union_interval(intervals)
    else:
        parts = stored_clusters(old_bboxes)
        if all(any(bbox_contains(part, b) for part in parts) for b in boxes) and all(
            interval_contains(old_interval, iv) for iv in intervals
        ):
            return False
        new_bboxes = extent_bboxes(parts + boxes)
        new_interval = union_interval([tuple(old_interval), *intervals])
    changed = new_bboxes != old_bboxes or new_interval != old_interval
    extent["spatial"]["bbox"] = new_bboxes
    extent["temporal"]["interval"][0] = new_interval
    return changed


def exact_extent(items: Iterable[dict]) -> dict:
    """The extent that is exactly the union of ``items`` (empty if none):
    the same, value for value, as merging them in any order and batches."""
    return _extent_of(*_footprints(items))


# --- shrinking an extent safely ------------------------------------------------
#
# Growing an extent is a pure merge under compare-and-swap. Shrinking it needs
# the union of every item, which only a walk of the tree gives, and a walk is
# not atomic: a register that links an item after the walk read its parent,
# and whose item lies inside the old extent, does not write the collection,
# so a shrink written from the walk would leave that item outside. So a shrink
# is two-phase: a compare-and-swap puts a marker into the collection; every
# register whose collection compare-and-swap sees a live marker records its
# items' boxes and intervals in it (a write even when the extent did not
# grow); after the walk, a compare-and-swap writes walk ∪ recorded, and only
# if the marker is still the one it put.

#: collection field holding a shrink in progress (valid STAC: a foreign field)
SHRINK_FIELD = "stac_producer:shrink"
#: a marker older than this is ignored by registers (a crashed shrink stops
#: costing writes) and dropped by the next write; a shrink that takes more
#: than half of it gives up instead of writing (clock skew margin)
SHRINK_TTL = 3600.0


def live_shrink(doc: dict, now: datetime) -> dict | None:
    """The shrink marker of ``doc`` if there is one younger than SHRINK_TTL."""
    marker = doc.get(SHRINK_FIELD)
    if not isinstance(marker, dict) or not isinstance(marker.get("token"), str):
        return None
    try:
        started = parse_time(marker["started"])
    except (KeyError, TypeError, ValueError):
        return None
    if (now - started).total_seconds() > SHRINK_TTL:
        return None
    return marker


def begin_shrink(doc: dict, token: str, now: datetime) -> None:
    """Put a fresh shrink marker into ``doc`` (replacing any other: the walk
    that follows sees every item linked before this write). Mutates ``doc``."""
    doc[SHRINK_FIELD] = {"token": token, "started": format_time(now), "bbox": [], "interval": None}


def record_in_shrink(doc: dict, items: Iterable[dict], now: datetime) -> bool:
    """Record ``items``' boxes and intervals in ``doc``'s live shrink marker;
    drop an expired marker. Mutates ``doc``; True if anything changed."""
    if SHRINK_FIELD not in doc:
        return False
    marker = live_shrink(doc, now)
    if marker is None:
        del doc[SHRINK_FIELD]
        return True
    items = list(items)
    if not items:
        return False
    boxes, intervals = _footprints(items)
    try:
        old_boxes = [box2d(b) for b in marker.get("bbox") or []]
        old_interval = marker.get("interval")
        new_boxes = clusters(old_boxes + boxes)
        new_interval = union_interval(([tuple(old_interval)] if old_interval else []) + intervals)
    except (TypeError, ValueError):  # a damaged marker: make it unusable, the shrink gives up
        doc[SHRINK_FIELD] = {"token": "", "started": marker.get("started")}
        return True
    if new_boxes == old_boxes and new_interval == old_interval:
        return False
    marker["bbox"], marker["interval"] = new_boxes, new_interval
    return True


def finish_shrink(doc: dict, token: str, items: Iterable[dict]) -> bool:
    """If ``doc`` still holds the marker ``token``, set its extent to the
    exact union of ``items`` (the walk) and what registers recorded meanwhile,
    and remove the marker. Mutates ``doc``; False (no change) otherwise."""
    marker = doc.get(SHRINK_FIELD)
    if not isinstance(marker, dict) or marker.get("token") != token:
        return False
    del doc[SHRINK_FIELD]
    boxes, intervals = _footprints(items)
    try:
        boxes += [box2d(b) for b in marker.get("bbox") or []]
        if marker.get("interval"):
            intervals.append(tuple(marker["interval"]))
        extent = _extent_of(boxes, intervals)
    except (TypeError, ValueError):
        return True  # damaged records: give up the shrink, keep the (covering) extent
    doc["extent"] = extent
    return True


def drop_shrink(doc: dict, token: str) -> bool:
    """Remove the marker ``token`` from ``doc`` (a shrink that gave up). Mutates ``doc``."""
    marker = doc.get(SHRINK_FIELD)
    if isinstance(marker, dict) and marker.get("token") == token:
        del doc[SHRINK_FIELD]
        return True
    return False


def touches_boundary(extent: dict, item: dict) -> bool:
    """True if removing ``item`` could shrink ``extent`` (it attains an edge
    of the overall box, of the cluster holding it, or of the interval).

    If an item lies strictly inside every edge, some other item defines each
    edge, so the union of the others has the same edges. (An item strictly
    inside a cluster can still be the only bridge between two halves of it:
    the cluster then stays one box, larger than its items; it still covers
    them all, and validate reports it as a stale extent that reconcile fixes.)
    """
    if extent_problem(extent) is not None:
        return True
    bboxes = [box2d(b) for b in extent["spatial"]["bbox"]]
    bbox = bboxes[0]
    interval = extent["temporal"]["interval"][0]
    try:
        ib = box2d(item["bbox"])
        start, end = item_interval(item)
    except (KeyError, TypeError, ValueError):
        return True
    eps = 1e-9
    if bbox[0] <= -180.0 + eps and bbox[2] >= 180.0 - eps:
        return True  # a whole-world span can open a gap anywhere
    if any(abs(ib[i] - bbox[i]) <= eps for i in range(4)):
        return True
    if len(bboxes) > 1:
        for part in bboxes[1:]:
            if bbox_contains(part, ib) and any(abs(ib[i] - part[i]) <= eps for i in range(4)):
                return True
    if interval[0] is not None and parse_time(start) <= parse_time(interval[0]):
        return True
    if interval[1] is not None and parse_time(end) >= parse_time(interval[1]):
        return True
    return False


def is_other_root(key: str, doc: object, url: str) -> bool:
    """True when ``doc``, the document at ``key`` (a ``.../catalog.json``
    below the root) of the catalog at ``url``, is the root of another
    catalog: a Catalog whose ``rel=root`` link names itself (a partition
    catalog's names this catalog's root, relative or absolute). A URL root
    link ending as ``key`` names itself unless it is this catalog's own root
    (a folder named as the catalog's own: ``.../data/data/catalog.json``)."""
    if key == ROOT_KEY or not key.endswith("/" + ROOT_KEY) or not isinstance(doc, dict):
        return False
    if doc.get("type") != "Catalog":
        return False
    own_root = f"{url.rstrip('/')}/{ROOT_KEY}"
    links = doc.get("links")
    for link in links if isinstance(links, list) else ():
        href = link.get("href") if isinstance(link, dict) else None
        if not isinstance(href, str) or not href or link.get("rel") != "root":
            continue
        if "://" in href or href.startswith("/"):
            spelled = local_path(href) if href.lower().startswith("file:") else href
            if href.endswith("/" + key) and spelled != own_root:
                return True
        elif posixpath.normpath(posixpath.join(posixpath.dirname(key), href)) == key:
            return True
    return False
