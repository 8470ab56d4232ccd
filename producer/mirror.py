"""A stac-geoparquet mirror of each collection: per-writer fragments, compacted later.

The static catalog is the source of truth; the mirror is derived from it and
may lag, never lead. Each folder that directly links items (a partition) has
a base file, and beside it the fragments writers added since the last
compaction::

    <collection>/items.parquet                    flat layout
    <collection>/<YYYY>/items.parquet             partition="year"
    <collection>/<YYYY>/<MM>/items.parquet        partition="year/month"
    <folder>/items-fragments/<UTC stamp>-<random>.ndjson
    <folder>/items-fragments/<UTC stamp>-<random>.parquet   (earlier versions)

Writers: :class:`MirrorSink` (a :class:`~producer.changes.Sink`) writes ONE
create-only NDJSON fragment per partition a batch touches (the created and
updated items as committed, tombstones of the removed ones) and reads
nothing, so a write costs the batch, whatever the size of the partition or
collection, writers never conflict, and the write path imports no Arrow
(pyarrow, stac-geoparquet, shapely and numpy are bound to lazily imported
modules: only readers, compaction and rebuild load them). Readers (:func:`read_mirror`, ``diff``,
:mod:`producer.query`) merge the base and its fragments, keeping per id the
row with the newest stamp (the item's ``updated``; a tombstone hides the
item). :func:`compact` folds fragments into the base by compare-and-swap on
the base and then deletes exactly the fragments it read; ``MirrorSink``
runs it when a partition has more than :data:`COMPACT_AFTER` fragments (it
counts them after 1 write in :data:`CHECK_EVERY`) and :func:`rebuild` folds
every fragment. Base files are written with the stac-geoparquet library
from the committed item dicts and stored through the
:class:`~producer.store.base.Store` (local, S3, any fsspec backend). See
``docs/mirror.md`` for why fragments and what is guaranteed.

What stac-geoparquet cannot take as it is, and how the mirror (only the
mirror: JSON items are never changed) stores it, undone on read by
:func:`read_mirror`:

* ``nodata: "nan"`` (or ``"inf"``, ``"-inf"``) beside numeric nodata in other
  items: Arrow infers one type per field and rejects the mix, so the strings
  are stored as the IEEE float they name; a non-finite float read back (JSON
  has none) becomes the string again.
* ``proj:projjson`` (item properties, assets, bands): PROJJSON mixes a unit
  given as a string and as an object in one list (every BoundCRS with a
  TOWGS84 transformation does), which Arrow cannot type; it is stored as JSON
  text and parsed back.
* properties whose values are of different JSON kinds across the items of one
  file (a number in one item, a string or an object in another), or nest
  lists and objects more than :data:`MAX_NESTING` levels (Parquet refuses a
  schema deeper than 100): stored as JSON text; their names are recorded in the file's metadata
  (``stac_producer:json_properties``) and parsed back.
* Arrow gives every item every field of the file (``null`` where absent), and
  timestamps come back as ``...T00:00:00.000000Z``: on read, ``null`` members
  are dropped (``datetime`` stays, as STAC requires) and ``.000000`` trimmed.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import logging
import math
import os
import posixpath
import random
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from producer.catalog.documents import CHILD_RELS
from producer.catalog.layout import resolve_href
from producer.catalog.mirrorlinks import (  # noqa: F401 (re-exported: where mirror files live)
    EMPTY_BASE,
    MIRROR_MEDIA_TYPE,
    MIRROR_NAME,
    MIRROR_ROLE,
    carried,
    carries,
    link_bases,
    linked_mirror_keys,
    mirror_asset_key,
    mirror_assets,
    mirror_key,
)
from producer.changes import Change, ChangeKind, item_line
from producer.errors import (
    REBUILD_MIRROR_HINT,
    CatalogError,
    ConflictError,
    NotFound,
    PreconditionFailed,
    ProducerError,
)
from producer.hrefs import absolute_assets, document_url
from producer.jsontext import compact as compact_json
from producer.store.base import Store, is_local

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    import stac_geoparquet.arrow as sga


class _LazyModule:
    """A module imported on first attribute access. The write path
    (:class:`MirrorSink`: NDJSON fragments) never touches Arrow, so that
    ``import producer.mirror`` and a register do not pay pyarrow, pandas,
    stac-geoparquet and shapely (0.65-0.9 s measured); readers, compaction
    and rebuild import them when they first use them."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            try:
                self._module = importlib.import_module(self._name)
            except ImportError as exc:  # pragma: no cover - depends on the installed extras
                raise ImportError(
                    f"the stac-geoparquet mirror needs {exc.name}, a dependency of stac-producer: reinstall it"
                ) from exc
        return getattr(self._module, attr)


if not TYPE_CHECKING:
    np = _LazyModule("numpy")
    pa = _LazyModule("pyarrow")
    pq = _LazyModule("pyarrow.parquet")
    shapely = _LazyModule("shapely")
    sga = _LazyModule("stac_geoparquet.arrow")


@functools.cache
def _stac_arrow_batch() -> Any:
    """stac-geoparquet's column-to-JSON step (None without it: then its public row loop)."""
    try:
        from stac_geoparquet.arrow._batch import StacArrowBatch  # noqa: PLC0415
    except ImportError:  # pragma: no cover - another stac-geoparquet version
        return None
    return StacArrowBatch


@functools.cache
def _stac_items_to_arrow() -> Any:
    """The conversion parse_stac_items_to_arrow wraps, without its memory log:
    that builds its message eagerly from psutil (/proc/self/smaps_rollup),
    tens of ms per call in a large process: more than a one-item fragment.
    None with another stac-geoparquet version."""
    try:
        from stac_geoparquet.arrow._api import stac_items_to_arrow  # noqa: PLC0415
    except ImportError:  # pragma: no cover - another stac-geoparquet version
        return None
    return stac_items_to_arrow


log = logging.getLogger(__name__)

#: parquet metadata key listing the properties stored as JSON text
JSON_PROPERTIES_KEY = b"stac_producer:json_properties"
#: keys whose object values are always stored as JSON text (PROJJSON mixes types;
#: datacube fields are keyed by the file's own dimension and variable names, and
#: their reference_system, values and nodata change JSON kind from file to file)
JSON_TEXT_KEYS = frozenset({"proj:projjson", "cube:dimensions", "cube:variables"})
#: item properties stac-geoparquet stores as timestamps
TIMESTAMP_PROPERTIES = frozenset(
    {
        "datetime",
        "start_datetime",
        "end_datetime",
        "created",
        "updated",
        "expires",
        "published",
        "unpublished",
    }
)
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_ZERO_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.0+Z$")


class MirrorError(ProducerError, ValueError):
    """Items could not be converted to (or read from) a mirror file."""


# --- encoding items for stac-geoparquet and back ---------------------------------------


#: stands for a value Arrow cannot hold in a typed column (an integer beyond
#: int64, an empty object: parquet has no struct without fields)
_ODD = "odd"
_INT64 = (-(2**63), 2**63 - 1)
#: integers beyond this are not all doubles: Arrow will not put them in a float column
_EXACT_INT = 2**53
#: the timestamp texts stac-geoparquet's conversion (pyarrow) parses: RFC 3339
#: date-times with at most microseconds (not lower-case ``t``/``z``, not a
#: leap second: :func:`_is_timestamp` also checks the date is real)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")
#: prefix of the column holding, as JSON text, a timestamp property
#: (:data:`TIMESTAMP_PROPERTIES`) whose values are not all timestamps:
#: stac-geoparquet parses a column of that very name as timestamps
TEXT_COLUMN_PREFIX = "stac_producer:text:"


class _Mixed(Exception):
    """Values that Arrow cannot type in one column."""


def _is_timestamp(value: Any) -> bool:
    if type(value) is not str or not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


#: lists and objects within each other a property's column may nest: Parquet
#: refuses a schema deeper than 100 levels (a list takes 3, an object 1), so
#: one deeper value made the whole file unreadable; deeper ones are JSON text
MAX_NESTING = 16


def _shape(value: Any, key: str | None = None, depth: int = 0) -> Any:
    """The Arrow-relevant shape of a non-null JSON value: its kind, with the
    shapes of list elements and object fields merged (:func:`_merge`);
    raises :class:`_Mixed` where they cannot be merged, or nest deeper than
    :data:`MAX_NESTING`. Numbers are one kind (Arrow widens ints to
    floats). Pure."""
    kind = type(value)
    if depth > MAX_NESTING and (kind is list or kind is dict):
        raise _Mixed
    if key in JSON_TEXT_KEYS and (kind is dict or kind is list):
        return "str"  # stored as JSON text (_encode)
    if kind is str:
        if key == "nodata" and value.lower() in _NON_FINITE:
            return "number"  # stored as a float (_encode)
        return "str"
    if kind is bool:
        return "bool"
    if kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise _Mixed
        return "number"
    if kind is float:
        return "number"
    if kind is list:
        kinds = {type(v) for v in value}
        if kinds == {float} or kinds == {str} or kinds == {bool}:  # the common cases, cheaply
            return ("list", _shape(value[0]))
        elem: Any = None
        for v in value:
            if v is not None:
                elem = _merge(elem, _shape(v, None, depth + 1))
        return ("list", elem)
    if kind is dict:
        if not value:
            raise _Mixed
        return ("dict", {k: _shape(v, k, depth + 1) for k, v in value.items() if v is not None})
    raise _Mixed


def _merge(a: Any, b: Any) -> Any:
    """One shape for values of shapes ``a`` and ``b`` (None: no value yet);
    raises :class:`_Mixed` when there is none."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if type(a) is tuple and type(b) is tuple and a[0] == b[0]:
        if a[0] == "list":
            return ("list", _merge(a[1], b[1]))
        fields = dict(a[1])
        for k, v in b[1].items():
            fields[k] = _merge(fields.get(k), v)
        return ("dict", fields)
    raise _Mixed


def _json_properties(items: Sequence[dict[str, Any]]) -> list[str]:
    """Property names whose non-null values Arrow cannot hold in one typed
    column across ``items``: stored as JSON text. Their values differ in
    kind at any depth (a number in one item and text in another, a list
    mixing both, an object field that does), hold an integer beyond int64
    or an empty object, or (a name of :data:`TIMESTAMP_PROPERTIES`) are not
    all timestamps stac-geoparquet parses."""
    shapes: dict[str, Any] = {}
    mixed: set[str] = set()
    for item in items:
        for name, value in (item.get("properties") or {}).items():
            if value is None or name in mixed:
                continue
            if name in TIMESTAMP_PROPERTIES:
                if not _is_timestamp(value):
                    mixed.add(name)
                continue
            try:
                shapes[name] = _merge(shapes.get(name), _shape(value, name))
            except _Mixed:
                mixed.add(name)
    return sorted(mixed)


def _encode(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` with the mirror's normalisations applied (see module
    doc). Geometries and lists of scalars are shared, not copied: nothing here
    or in stac-geoparquet (which copies every item) mutates them."""
    if key == "geometry":
        return value
    if key in JSON_TEXT_KEYS and isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if key == "nodata" and isinstance(value, str) and value.lower() in _NON_FINITE:
        return _NON_FINITE[value.lower()]
    if isinstance(value, dict):
        return {k: _encode(v, k) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [_encode(v) for v in value]
    if type(value) is int and not -_EXACT_INT <= value <= _EXACT_INT:
        # outside the properties (there such a value is stored as JSON text):
        # beyond int64 (a uint64 band's nodata 2**64 - 1) Arrow cannot hold it
        # as an integer, and beyond 2**53 (an int64 band's -2**63) it refuses to
        # widen it to a double beside another item's float: the nearest double
        return float(value)
    return value


def to_mirror_item(item: dict[str, Any], json_properties: Iterable[str] = ()) -> dict[str, Any]:
    """The dict stac-geoparquet is given for ``item`` (a new dict; ``item`` is untouched)."""
    out = _encode(item)
    props = out.get("properties") or {}
    given = item.get("properties") or {}
    for name in json_properties:
        value = given.get(name)
        if value is None:
            continue
        if not (name in JSON_TEXT_KEYS and isinstance(value, str)):
            props[name] = json.dumps(value, separators=(",", ":"))  # the value as given, not _encode's
        if name in TIMESTAMP_PROPERTIES:
            props[TEXT_COLUMN_PREFIX + name] = props.pop(name)
    return out


def _decode(value: Any, key: str | None = None) -> Any:
    # the hot loop of every search answer (every value of every returned
    # item): exact type tests, no generator, the common cases first
    kind = type(value)
    if kind is dict:
        if key == "geometry":
            return value
        return {k: _decode(v, k) for k, v in value.items() if v is not None}
    if kind is str:
        if key in JSON_TEXT_KEYS:
            return json.loads(value)
        if value.endswith(".000000Z"):
            return _ZERO_FRACTION.sub(r"\1Z", value)
        return value
    if kind is list:
        for v in value:
            inner = type(v)
            if inner is dict or inner is list or (inner is float and not math.isfinite(v)):
                return [_decode(v) for v in value]
        return value
    if kind is float and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if kind is not bool and kind is not int and kind is not float and value is not None:
        return _decode_other(value, key)
    return value


def _decode_other(value: Any, key: str | None) -> Any:
    """:func:`_decode` for subclasses of dict/list/str/float (never produced
    by Arrow's ``to_pylist``, kept exact for other callers)."""
    if isinstance(value, dict):
        return value if key == "geometry" else {k: _decode(v, k) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, float):
        return _decode(float(value), key)
    if isinstance(value, str):
        return _decode(str(value), key)
    return value


def from_mirror_item(row: dict[str, Any], json_properties: Iterable[str] = ()) -> dict[str, Any]:
    """The STAC item of a row read back with stac-geoparquet (undoes :func:`to_mirror_item`)."""
    item = _decode(row)
    props = item.setdefault("properties", {})
    for name in json_properties:
        if name in TIMESTAMP_PROPERTIES:
            text = props.pop(TEXT_COLUMN_PREFIX + name, None)
            if isinstance(text, str):
                props[name] = json.loads(text)
        elif isinstance(props.get(name), str):
            props[name] = json.loads(props[name])
    props.setdefault("datetime", None)
    return item


def _items_table(items: Sequence[dict[str, Any]], json_properties: Sequence[str], where: str) -> pa.Table:
    """stac-geoparquet's Arrow table of ``items`` (at least one)."""
    rows = [to_mirror_item(item, json_properties) for item in items]
    try:
        to_arrow = _stac_items_to_arrow()
        if to_arrow is not None:
            return pa.Table.from_batches([to_arrow(rows)])
        return sga.parse_stac_items_to_arrow(rows).read_all()  # pragma: no cover
    except (
        ValueError,
        TypeError,
        NotImplementedError,
        OverflowError,
        KeyError,  # stac-geoparquet's, for a dict that is not an item (no geometry): a damaged fragment
        AttributeError,
    ) as exc:  # pyarrow's errors subclass these
        ids = ", ".join(str(i.get("id")) for i in items[:5])
        raise MirrorError(
            f"items ({ids}{', ...' if len(items) > 5 else ''}) could not be converted to "
            f"stac-geoparquet for {where}: {exc}; the JSON items are unaffected: report this "
            "with one of the items"
        ) from exc


#: rows per parquet row group in mirror files: readers skip a group whose
#: statistics rule out the query and decode only the groups holding matches
#: (64: a month partition of ~850 rows has ~14 groups, each a compact area
#: once rows are in :func:`spatial_order`, for a footer of ~60 KB)
ROW_GROUP_ROWS = 64
#: columns whose min/max statistics mirror files carry (readers prune row
#: groups on them; statistics of every other column would triple the footer
#: every search parses, ~120 KB instead of ~40 KB for a 14-group file)
STATISTICS_COLUMNS = (
    "id",
    "collection",
    "bbox.xmin",
    "bbox.ymin",
    "bbox.xmax",
    "bbox.ymax",
    "datetime",
    "start_datetime",
    "end_datetime",
    "created",
    "updated",
)
_HILBERT_BITS = 16


def spatial_order(table: pa.Table) -> pa.Array:
    """Row numbers of ``table`` ordered along a Hilbert curve over the
    centres of the rows' ``bbox`` (the covering column), so that each row
    group of consecutive rows covers a compact area and its ``bbox``
    statistics let readers skip it. Rows without a bbox go last; an item
    crossing the antimeridian is placed by its west edge. Pure."""
    n = table.num_rows
    if "bbox" not in table.column_names or n < 2:
        return pa.array(range(n), pa.int64())
    bbox = table.column("bbox").combine_chunks()
    xmin, ymin, xmax, ymax = (
        np.asarray(bbox.field(name).fill_null(math.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
        for name in ("xmin", "ymin", "xmax", "ymax")
    )
    x = np.where(xmin <= xmax, (xmin + xmax) / 2, xmin)
    y = (ymin + ymax) / 2
    side = 1 << _HILBERT_BITS
    missing = ~(np.isfinite(x) & np.isfinite(y))
    xi = np.clip(np.nan_to_num((x + 180) / 360 * side), 0, side - 1).astype(np.int64)
    yi = np.clip(np.nan_to_num((y + 90) / 180 * side), 0, side - 1).astype(np.int64)
    d = np.zeros(n, dtype=np.int64)
    s = side // 2
    while s > 0:  # the classic xy -> d walk, vectorised over the rows
        rx = (xi & s) > 0
        ry = (yi & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry
        swap_x = np.where(flip & rx, side - 1 - xi, xi)
        swap_y = np.where(flip & rx, side - 1 - yi, yi)
        xi, yi = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s //= 2
    d = np.where(missing, np.iinfo(np.int64).max, d)
    return pa.array(np.argsort(d, kind="stable"), pa.int64())


def _table_bytes(
    table: pa.Table,
    json_properties: Sequence[str],
    extra: Mapping[bytes, bytes] | None = None,
    *,
    sort: bool = True,
) -> bytes:
    """The parquet bytes of a mirror table (GeoParquet and stac-geoparquet
    metadata from the library, plus ours and ``extra``), in row groups of
    :data:`ROW_GROUP_ROWS` with statistics, rows in :func:`spatial_order`
    when ``sort`` (a fragment keeps its order: its metadata lists its rows).
    Writes only a temporary file."""
    if sort:
        table = table.take(spatial_order(table))
    with tempfile.TemporaryDirectory(prefix="stac-mirror-") as tmp:
        path = Path(tmp) / MIRROR_NAME
        sga.to_parquet(
            pa.Table.from_batches(table.to_batches(max_chunksize=ROW_GROUP_ROWS), table.schema),
            path,
            write_statistics=list(STATISTICS_COLUMNS),
        )
        if json_properties or extra:  # to_parquet writes its own schema metadata: add ours
            written = pq.read_table(path)
            meta = dict(written.schema.metadata or {})
            if json_properties:
                meta[JSON_PROPERTIES_KEY] = json.dumps(list(json_properties)).encode()
            meta.update(extra or {})
            pq.write_table(
                written.replace_schema_metadata(meta),
                path,
                row_group_size=ROW_GROUP_ROWS,
                write_statistics=list(STATISTICS_COLUMNS),
            )
        return path.read_bytes()


def encode_items(items: Sequence[dict[str, Any]], where: str) -> bytes:
    """A stac-geoparquet file (bytes) holding ``items`` (at least one). ``where``
    names the file in errors. Writes only a temporary file."""
    json_properties = _json_properties(items)
    return _table_bytes(_items_table(items, json_properties, where), json_properties)


def unreadable(where: str, exc: Exception, *, fragment: bool = False) -> MirrorError:
    """The error for a mirror file (or ``fragment``) at ``where`` that is not
    readable parquet (truncated, overwritten, a failed copy), naming it and
    the fix: a rebuild rewrites its partition from the items."""
    what = "mirror fragment" if fragment else "mirror file"
    return MirrorError(f"{what} {where} is not readable parquet ({exc})", hints=(REBUILD_MIRROR_HINT,))


def read_table(data: bytes, where: str, *, fragment: bool = False) -> pa.Table:
    """The Arrow table of a mirror file's bytes (MirrorError if unreadable)."""
    try:
        return pq.read_table(pa.BufferReader(data))
    except (OSError, ValueError) as exc:
        raise unreadable(where, exc, fragment=fragment) from exc


def decode_items(data: bytes, where: str) -> list[dict[str, Any]]:
    """The STAC items of a mirror file's bytes, in file order."""
    return table_items(read_table(data, where))


def _file_json_properties(table: pa.Table) -> list[str]:
    raw = (table.schema.metadata or {}).get(JSON_PROPERTIES_KEY)
    return list(json.loads(raw)) if raw else []


def table_items(table: pa.Table) -> list[dict[str, Any]]:
    """The STAC items of an Arrow table read from a mirror file (all columns).

    stac-geoparquet turns the columns back into STAC's JSON shape
    (``StacArrowBatch.to_json_batch``); the rows are then converted in one
    ``to_pylist``, and the geometries from GEOS coordinate arrays
    (:func:`geojson_geometries`: no GeoJSON text parsed per row), instead
    of the library's row-by-row loop (several times slower for hundreds of
    densified footprints)."""
    json_properties = _file_json_properties(table)
    batch_type = _stac_arrow_batch()
    if batch_type is None:  # pragma: no cover
        return [from_mirror_item(row, json_properties) for row in sga.stac_table_to_items(table)]
    items: list[dict[str, Any]] = []
    for batch in table.to_batches():
        if not batch.num_rows:
            continue
        geometries = geojson_geometries(batch.column("geometry").to_pylist())
        rows = batch_type(batch.drop_columns(["geometry"])).to_json_batch().inner.to_pylist()
        for row, geometry in zip(rows, geometries):
            if not row.get("assets"):
                row["assets"] = {}
            item = from_mirror_item(row, json_properties)
            item["geometry"] = geometry
            items.append(item)
    return items


#: GEOS type ids of the geometries :func:`geojson_geometries` builds from coordinate arrays
_POLYGON, _MULTIPOLYGON = 3, 6


def geojson_geometries(wkb: Sequence[bytes | None]) -> list[dict[str, Any] | None]:
    """GeoJSON geometry dicts of WKB values (None stays None), in order.

    Polygons and multipolygons (every footprint this tool writes) are built
    from one vectorised ``shapely.to_ragged_array`` per type: one
    ``tolist`` of the coordinates, then slices per ring, so no JSON text is
    written and parsed per row. Other types, and geometries with heights,
    go through ``shapely.to_geojson``. Pure."""
    shapes = shapely.from_wkb(list(wkb))
    types = shapely.get_type_id(shapes)
    out: list[dict[str, Any] | None] = [None] * len(shapes)
    for type_id in (_POLYGON, _MULTIPOLYGON):
        picked = [i for i, t in enumerate(types.tolist()) if t == type_id]
        if not picked:
            continue
        group = shapes[picked]
        if bool(shapely.has_z(group).any()):
            continue  # heights: the text path keeps them exactly as GEOS writes them
        _, coords, offsets = shapely.to_ragged_array(group, include_z=False)
        points = coords.tolist()
        rings_at = offsets[0].tolist()
        rings = [points[a:b] for a, b in zip(rings_at, rings_at[1:])]
        polygons_at = offsets[1].tolist()
        polygons = [rings[a:b] for a, b in zip(polygons_at, polygons_at[1:])]
        if type_id == _POLYGON:
            for i, coordinates in zip(picked, polygons):
                out[i] = {"type": "Polygon", "coordinates": coordinates}
        else:
            parts_at = offsets[2].tolist()
            for i, a, b in zip(picked, parts_at, parts_at[1:]):
                out[i] = {"type": "MultiPolygon", "coordinates": polygons[a:b]}
    rest = [i for i, (shape, done) in enumerate(zip(shapes, out)) if done is None and shape is not None]
    if rest:
        for i, text in zip(rest, shapely.to_geojson(shapes[rest])):
            out[i] = None if text is None else json.loads(text)
    return out


def canonical(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` as the mirror gives it back: what :func:`diff` compares. Pure."""
    out = from_mirror_item(to_mirror_item(item, [n for n in _json_properties([item])]))
    props = out.get("properties") or {}
    for name in TIMESTAMP_PROPERTIES:
        value = props.get(name)
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
            except ValueError:
                continue
            props[name] = when.isoformat().replace("+00:00", "Z")
    return json.loads(json.dumps(out, sort_keys=True, default=str))


# --- fragments: what a writer adds, what a reader merges ----------------------------------
#
# A partition's mirror is its base file (``items.parquet``, written only by
# compaction and rebuild) plus the fragment files writers add beside it
# (``items-fragments/<stamp>.ndjson``, create-only, never rewritten; catalogs
# written before hold ``<stamp>.parquet`` fragments, still read). Every row
# has a stamp: the item's ``updated`` (set under compare-and-swap by the
# commit of the item document, so later commits of one item have later
# stamps), ranked below a tombstone of the same version; ties go to the later
# source (base first, then fragments by name, i.e. by write time). A reader
# keeps, per id, the row or tombstone with the highest ``(stamp, rank, source)``.
#
# An NDJSON fragment is UTF-8 text, one JSON document per line: first a header
# ``{"stac_producer:fragment": 1, "rows": [[id, stamp], ...], "removed": {id:
# stamp}}``, then one line per row of ``rows``, in that order: the committed
# item as it is (asset hrefs absolute). Writing one costs a ``json.dumps`` per
# item, no Arrow; readers convert its items to Arrow when they need to.

#: folder, beside a base mirror file, that holds its fragments
FRAGMENTS_DIR = "items-fragments"
#: parquet metadata key of a parquet fragment (written before NDJSON
#: fragments), and the header key of an NDJSON fragment:
#: ``{"rows": [[id, stamp], ...], "removed": {id: stamp}}``
FRAGMENT_KEY = b"stac_producer:fragment"
#: suffix of the fragments writers add
FRAGMENT_SUFFIX = ".ndjson"
#: suffix of the fragments of earlier versions (read, folded, never written)
PARQUET_FRAGMENT_SUFFIX = ".parquet"
#: every fragment suffix readers accept
FRAGMENT_SUFFIXES = (FRAGMENT_SUFFIX, PARQUET_FRAGMENT_SUFFIX)
#: fragments a partition may collect before ``MirrorSink.apply`` folds them
#: into the base (see docs/mirror.md: reader cost vs amortised rewrite cost)
COMPACT_AFTER = 32
#: ``MirrorSink.apply`` lists a partition's fragments (to see whether it is
#: due for compaction) after 1 in this many writes, drawn at random: the
#: other writes cost one PUT (see docs/mirror.md for the bound)
CHECK_EVERY = 8
_ROW, _TOMBSTONE = 0, 1
_HEADER = FRAGMENT_KEY.decode()
#: a str as ``json.dumps`` writes it (``ensure_ascii``), quotes included
_json_string = json.encoder.encode_basestring_ascii


def fragments_prefix(key: str) -> str:
    """Folder of the fragments of base mirror file ``key``.

    >>> fragments_prefix("c/2024/03/items.parquet")
    'c/2024/03/items-fragments'
    """
    return f"{posixpath.dirname(key)}/{FRAGMENTS_DIR}"


def list_fragments(store: Store, key: str) -> list[str]:
    """Keys of the fragments of base mirror file ``key`` (NDJSON and parquet),
    oldest first: names begin with their UTC write time (one LIST)."""
    prefix = fragments_prefix(key)
    depth = prefix.count("/") + 1
    return sorted(
        (k for k in store.list(prefix) if k.endswith(FRAGMENT_SUFFIXES) and k.count("/") == depth),
        key=posixpath.basename,
    )


#: fragments read at once (threads) on a store with round trips (S3): a
#: compaction of 32+ fragments is then a few round trips, not one per fragment
READ_THREADS = 8


def _read_fragments(store: Store, keys: Sequence[str]) -> Iterable[bytes | None]:
    """The bytes of each fragment in ``keys``, in order (None: folded and
    deleted by a compaction since the listing). On a store with round trips
    up to :data:`READ_THREADS` at once; a local one reads each as it is
    consumed (one fragment's bytes in memory at a time). Reads only."""

    def one(key: str) -> bytes | None:
        try:
            return store.get(key)[0]
        except NotFound:
            return None

    if len(keys) <= 1 or is_local(store):
        return (one(key) for key in keys)
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(keys))) as pool:
        return list(pool.map(one, keys))


#: the 48-bit tail of fragment names: drawn at random on this process's
#: first fragment (again in a forked child, :func:`_fresh_tail`), then one
#: more per name (``next`` is atomic under the GIL); one ``getrandom`` per
#: process, not per write
_TAIL: list[Iterator[int] | None] = [None]
#: ``(second, "YYYYmmddTHHMMSS")`` of the last name: the second's text is
#: made once per second (``datetime.now(UTC).strftime`` per name was ~2/3 of
#: the name's cost)
_SECOND: list[tuple[int, str]] = [(-1, "")]


def _fresh_tail() -> None:
    """Forget the name tail (a forked child draws its own: two processes
    counting from the same draw could name two fragments alike)."""
    _TAIL[0] = None


os.register_at_fork(after_in_child=_fresh_tail)


def _fragment_name() -> str:
    """A unique fragment file name that sorts by write time (UTC,
    microseconds, as ``datetime.now(UTC)`` gives it): the time, then 12 hex
    digits (48 bits) that no other name of this process repeats and that
    another process shares only by a 1-in-2**48 draw (as when each name drew
    them); the fragment's create-only PUT refuses a name taken anyway.

    >>> a, b = _fragment_name(), _fragment_name()
    >>> a != b and len(a) == len("20241202T101741123456Z-3f9a0c1b2d4e.ndjson")
    True
    """
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    last, text = _SECOND[0]
    if second != last:
        text = time.strftime("%Y%m%dT%H%M%S", time.gmtime(second))
        _SECOND[0] = (second, text)
    tail = _TAIL[0]
    if tail is None:
        tail = _TAIL[0] = itertools.count(int.from_bytes(secrets.token_bytes(6), "big"))
    return f"{text}{fraction:06d}Z-{next(tail) & 0xFFFFFFFFFFFF:012x}{FRAGMENT_SUFFIX}"


#: 1970-01-01 UTC, made once (a datetime per :func:`stamp_of` was half its cost)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp_of(item: dict[str, Any]) -> int:
    """An item's stamp: its ``updated`` in microseconds since 1970 (-1 without one)."""
    value = (item.get("properties") or {}).get("updated")
    if not isinstance(value, str):
        return -1
    try:
        when = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return -1
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def stamp_text(stamp: int) -> str | None:
    """The ``updated`` text whose :func:`stamp_of` is ``stamp`` (None for -1: no ``updated``).

    >>> stamp_text(stamp_of({"properties": {"updated": "2024-05-10T12:00:00.000123Z"}}))
    '2024-05-10T12:00:00.000123Z'
    """
    if stamp < 0:
        return None
    when = _EPOCH + timedelta(microseconds=stamp)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def table_stamps(table: pa.Table) -> list[int]:
    """The stamps of a base file's rows (its ``updated`` column), in row order."""
    if "updated" not in table.column_names or pa.types.is_null(table.column("updated").type):
        return [-1] * table.num_rows
    column = table.column("updated")
    if not pa.types.is_timestamp(column.type):  # e.g. text: parse each value
        return [stamp_of({"properties": {"updated": v}}) for v in column.to_pylist()]
    micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return [-1 if v is None else int(v) for v in micros.to_pylist()]


@dataclass
class FragmentInfo:
    """What a fragment says, from its metadata (parquet) or header line (NDJSON) alone."""

    key: str
    #: ``(id, stamp)`` of each row, in row order
    rows: list[tuple[str, int]]
    #: ``{id: stamp}`` of the tombstones (ids removed)
    removed: dict[str, int]


def _info(key: str, doc: Any, where: str) -> FragmentInfo:
    try:
        return FragmentInfo(
            key,
            [(str(i), int(s)) for i, s in doc["rows"]],
            {str(i): int(s) for i, s in doc["removed"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MirrorError(
            f"mirror fragment {where} has a malformed header ({exc})", hints=(REBUILD_MIRROR_HINT,)
        ) from exc


def fragment_info(key: str, metadata: Mapping[bytes, bytes] | None, where: str) -> FragmentInfo:
    """The :class:`FragmentInfo` of a parquet fragment's schema metadata."""
    raw = (metadata or {}).get(FRAGMENT_KEY)
    if raw is None:
        raise MirrorError(
            f"mirror fragment {where} has no {FRAGMENT_KEY.decode()} metadata", hints=(REBUILD_MIRROR_HINT,)
        )
    return _info(key, json.loads(raw), where)


def is_ndjson_fragment(key: str) -> bool:
    """True for a fragment written as NDJSON (else: a parquet fragment)."""
    return key.endswith(FRAGMENT_SUFFIX)


def ndjson_info(key: str, data: bytes, where: str) -> FragmentInfo:
    """The :class:`FragmentInfo` of an NDJSON fragment's bytes (its header line only)."""
    header, _, _ = data.partition(b"\n")
    try:
        doc = json.loads(header)
    except ValueError as exc:
        raise MirrorError(
            f"mirror fragment {where} is not NDJSON ({exc})", hints=(REBUILD_MIRROR_HINT,)
        ) from exc
    if not isinstance(doc, dict) or doc.get(_HEADER) != 1:
        raise MirrorError(
            f"mirror fragment {where} has no {_HEADER} header line", hints=(REBUILD_MIRROR_HINT,)
        )
    return _info(key, doc, where)


def ndjson_fragment(key: str, data: bytes, where: str) -> tuple[FragmentInfo, list[dict[str, Any]]]:
    """The :class:`FragmentInfo` and the items (in row order) of an NDJSON fragment's bytes."""
    info = ndjson_info(key, data, where)
    lines = [line for line in data.split(b"\n")[1:] if line.strip()]
    try:
        items = [json.loads(line) for line in lines]
    except ValueError as exc:
        raise MirrorError(
            f"mirror fragment {where} is not NDJSON ({exc})", hints=(REBUILD_MIRROR_HINT,)
        ) from exc
    if [str(i.get("id")) if isinstance(i, dict) else None for i in items] != [i for i, _ in info.rows]:
        raise MirrorError(
            f"mirror fragment {where}: its items do not match its header", hints=(REBUILD_MIRROR_HINT,)
        )
    return info, items


def encode_fragment(
    upserts: Mapping[str, dict[str, Any]],
    removed: Mapping[str, int],
    where: str,
    encoded: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of an NDJSON fragment: a header line listing each row's id
    and stamp and the tombstones ``removed`` (``{id: stamp}``), then one line
    per item of ``upserts`` (may be none), as given: ``encoded[id]`` where
    the caller has it (:func:`producer.changes.item_line` of that very
    item, made earlier), else encoded here. Pure (``where`` names the file
    in errors: an item that is not JSON)."""
    ready = encoded or {}
    try:
        if not removed and all(type(i) is str for i in upserts):
            # the upsert's header (text ids, int stamps, no tombstone) as json
            # writes it, without a dict, an orjson pass and its checks
            rows = ",".join(f"[{_json_string(i)},{stamp_of(it)}]" for i, it in upserts.items())
            lines = [f'{{"{_HEADER}":1,"rows":[{rows}],"removed":{{}}}}']
        else:
            header = {
                _HEADER: 1,
                "rows": [[i, stamp_of(it)] for i, it in upserts.items()],
                "removed": dict(removed),
            }
            # orjson's text where it is json's (producer/jsontext.py), else json's
            lines = [compact_json(header) or json.dumps(header, separators=(",", ":"))]
        lines += [ready.get(i) or item_line(item) for i, item in upserts.items()]
    except (TypeError, ValueError) as exc:
        raise MirrorError(f"items for mirror fragment {where} are not JSON ({exc}): report this") from exc
    return ("\n".join(lines) + "\n").encode()


def encode_parquet_fragment(
    upserts: Mapping[str, dict[str, Any]], removed: Mapping[str, int], where: str
) -> bytes:
    """The bytes of a fragment as earlier versions wrote it (readers still
    read them): a stac-geoparquet file of ``upserts`` (may be none) whose
    metadata lists each row's stamp and the tombstones ``removed``. Writes
    only a temporary file."""
    meta = json.dumps(
        {"rows": [[i, stamp_of(it)] for i, it in upserts.items()], "removed": dict(removed)},
        separators=(",", ":"),
    ).encode()
    if not upserts:  # tombstones only: an empty table carrying the metadata
        sink = pa.BufferOutputStream()
        empty = pa.table({"id": pa.array([], pa.string())}).replace_schema_metadata({FRAGMENT_KEY: meta})
        pq.write_table(empty, sink)
        return bytes(sink.getvalue())
    items = list(upserts.values())
    json_properties = _json_properties(items)
    return _table_bytes(
        _items_table(items, json_properties, where), json_properties, {FRAGMENT_KEY: meta}, sort=False
    )


def items_arrow(items: Sequence[dict[str, Any]], where: str) -> pa.Table:
    """The Arrow table readers see for ``items`` (from NDJSON fragments), as
    a mirror file would give it: converted like :func:`encode_items` (the
    properties stored as JSON text listed in the table's metadata); an ``id``
    column only when there is no item."""
    if not items:
        return pa.table({"id": pa.array([], pa.string())})
    json_properties = _json_properties(items)
    table = _items_table(items, json_properties, where)
    if json_properties:
        meta = dict(table.schema.metadata or {})
        meta[JSON_PROPERTIES_KEY] = json.dumps(list(json_properties)).encode()
        table = table.replace_schema_metadata(meta)
    return table


def resolve(
    base_rows: Sequence[tuple[str, int]] | None, fragments: Sequence[FragmentInfo]
) -> tuple[list[int] | None, list[list[int]]]:
    """Which rows readers keep: ``(base row numbers or None for all, [row
    numbers of each fragment])``. ``base_rows`` gives ``(id, stamp)`` per base
    row; None when the base is not read (absent, or ruled out by the caller):
    then the fragments are resolved among themselves. ``fragments`` oldest
    first. Pure."""
    best: dict[str, tuple[int, int, int, int]] = {}  # id -> (stamp, rank, source, row)

    def offer(item_id: str, candidate: tuple[int, int, int, int]) -> None:
        if item_id not in best or candidate[:3] > best[item_id][:3]:
            best[item_id] = candidate

    for source, frag in enumerate(fragments, start=1):
        for row, (item_id, stamp) in enumerate(frag.rows):
            offer(item_id, (stamp, _ROW, source, row))
        for item_id, stamp in frag.removed.items():
            offer(item_id, (stamp, _TOMBSTONE, source, -1))
    keep_base: list[int] | None = None
    if best and base_rows is not None:
        keep_base = []
        for row, (item_id, stamp) in enumerate(base_rows):
            if item_id in best:
                offer(item_id, (stamp, _ROW, 0, row))
                if best[item_id][2] != 0:
                    continue
            keep_base.append(row)
    kept: list[list[int]] = [[] for _ in fragments]
    for _, rank, source, row in best.values():
        if rank == _ROW and source > 0:
            kept[source - 1].append(row)
    for rows in kept:
        rows.sort()
    return keep_base, kept


@dataclass
class Partition:
    """A base mirror file and its fragments as read at one moment."""

    key: str
    base: pa.Table | None
    version: str | None
    #: fragments read (oldest first) with their tables (an NDJSON fragment's
    #: items converted to Arrow, see :func:`items_arrow`)
    fragments: list[tuple[FragmentInfo, pa.Table]]

    def tables(self) -> list[pa.Table]:
        """The rows readers see, one table per source (base first), each
        holding only its winning rows (a tombstone hides an item)."""
        base_rows = None
        if self.base is not None and self.fragments:
            base_rows = list(zip(self.base.column("id").to_pylist(), table_stamps(self.base)))
        keep_base, kept = resolve(base_rows, [info for info, _ in self.fragments])
        out = []
        if self.base is not None:
            out.append(self.base if keep_base is None else self.base.take(pa.array(keep_base, pa.int64())))
        for (_, table), rows in zip(self.fragments, kept):
            if rows:
                out.append(table.take(pa.array(rows, pa.int64())))
        return [t for t in out if t.num_rows]

    def items(self) -> dict[str, dict[str, Any]]:
        """``{item id: item}`` readers see."""
        return {item["id"]: item for table in self.tables() for item in table_items(table)}


#: times a reader reads a partition when a compaction keeps folding, under
#: it, fragments it listed (see :func:`read_again`)
READ_ATTEMPTS = 5


def read_again() -> None:
    """Why readers LIST a partition's fragments BEFORE they read its base, and
    read it all again when a fragment listed is gone (documentation only).

    A compaction writes the merged base, then deletes the fragments it
    folded. A reader that read the base first and listed after could read
    the base from before a compaction and list after its deletes: the rows
    of the folded fragments were in neither (an item missing from a search,
    with no error). Listed first, a fragment deleted before the LIST was
    folded into a base written before it, so into the base read after; a
    fragment listed but gone when read may have been folded into a base
    newer than the one read, so the partition is read again (at most
    :data:`READ_ATTEMPTS` times, then :func:`kept_changing`). Costs nothing
    when no compaction runs: the same LIST and GETs, in another order."""


def kept_changing(store: Store, key: str) -> ConflictError:
    """The error of a reader that found fragments of ``key`` folded under it
    :data:`READ_ATTEMPTS` times in a row."""
    return ConflictError(
        f"the mirror file {store.url}/{key} was compacted {READ_ATTEMPTS} times while it was read; "
        "read again when writers are quieter"
    )


def read_partition(store: Store, key: str) -> Partition:
    """Read the fragments' LIST of base mirror file ``key``, then the base
    (with its version), then each fragment (one GET each, up to
    :data:`READ_THREADS` at once on S3); read all again when a compaction
    folded a fragment listed meanwhile (:func:`read_again`). The items of
    the NDJSON fragments are converted to Arrow in one call (one table,
    sliced per fragment). Reads only."""
    for _ in range(READ_ATTEMPTS):
        part = _read_partition_once(store, key)
        if part is not None:
            return part
    raise kept_changing(store, key)


def _read_partition_once(store: Store, key: str) -> Partition | None:
    """One attempt of :func:`read_partition`: None when a fragment listed was gone."""
    where = f"{store.url}/{key}"
    frag_keys = list_fragments(store, key)  # first: see read_again
    try:
        data, version = store.get(key)
        base: pa.Table | None = read_table(data, where)
    except NotFound:
        base, version = None, None
    read: list[tuple[FragmentInfo, pa.Table | list[dict[str, Any]]]] = []
    for frag_key, frag in zip(frag_keys, _read_fragments(store, frag_keys)):
        if frag is None:
            return None  # folded and deleted by a compaction since the LIST
        frag_where = f"{store.url}/{frag_key}"
        if is_ndjson_fragment(frag_key):
            read.append(ndjson_fragment(frag_key, frag, frag_where))
        else:
            table = read_table(frag, frag_where, fragment=True)
            read.append((fragment_info(frag_key, table.schema.metadata, frag_where), table))
    pending = [item for _, got in read if isinstance(got, list) for item in got]
    converted = items_arrow(pending, f"{where} (its NDJSON fragments)") if pending else None
    fragments: list[tuple[FragmentInfo, pa.Table]] = []
    offset = 0
    for info, got in read:
        if not isinstance(got, list):
            fragments.append((info, got))
        elif converted is None or not got:
            fragments.append((info, pa.table({"id": pa.array([], pa.string())})))
        else:
            fragments.append((info, converted.slice(offset, len(got))))
            offset += len(got)
    return Partition(key, base, version, fragments)


def _visible(store: Store, key: str) -> tuple[dict[str, int], bool]:
    """:func:`visible_stamps`, and whether the base file exists."""
    where = f"{store.url}/{key}"
    best: dict[str, tuple[int, int, int]] = {}  # id -> (stamp, rank, source)
    try:
        data, _ = store.get(key)
        exists = True
    except NotFound:
        data, exists = b"", False
    if data and data != EMPTY_BASE:  # the empty base needs no parquet reader
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            names = [n for n in ("id", "updated") if n in parquet.schema_arrow.names]
            table = parquet.read(columns=names) if "id" in names else None
        except (OSError, ValueError) as exc:
            raise unreadable(where, exc) from exc
        if table is not None:
            for item_id, stamp in zip(table.column("id").to_pylist(), table_stamps(table)):
                best[str(item_id)] = max(best.get(str(item_id), (stamp, _ROW, 0)), (stamp, _ROW, 0))
    frag_keys = list_fragments(store, key)
    for source, (frag_key, frag) in enumerate(zip(frag_keys, _read_fragments(store, frag_keys)), start=1):
        if frag is None:
            continue  # folded by a compaction since the LIST: its rows are in the base now
        frag_where = f"{store.url}/{frag_key}"
        if is_ndjson_fragment(frag_key):
            info = ndjson_info(frag_key, frag, frag_where)
        else:
            try:
                metadata = pq.ParquetFile(pa.BufferReader(frag)).schema_arrow.metadata
            except (OSError, ValueError) as exc:
                raise unreadable(frag_where, exc, fragment=True) from exc
            info = fragment_info(frag_key, metadata, frag_where)
        for item_id, stamp in info.rows:
            best[item_id] = max(best.get(item_id, (stamp, _ROW, source)), (stamp, _ROW, source))
        for item_id, stamp in info.removed.items():
            best[item_id] = max(best.get(item_id, (stamp, _TOMBSTONE, source)), (stamp, _TOMBSTONE, source))
    return {item_id: stamp for item_id, (stamp, rank, _) in best.items() if rank == _ROW}, exists


def visible_stamps(store: Store, key: str) -> dict[str, int]:
    """``{item id: stamp}`` of the rows readers of the partition whose base
    mirror file is ``key`` see (tombstones applied), from the base's ``id``
    and ``updated`` columns and the fragments' headers/metadata: no item is
    decoded (no Arrow import when the base is empty and every fragment is
    NDJSON). Reads the base (one GET) and each fragment (one LIST, one GET each)."""
    return _visible(store, key)[0]


def read_mirror(store: Store, key: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``({item id: item}, base version)`` of the partition whose base mirror
    file is ``key``: base plus fragments, newest row per id, tombstones
    applied; ``({}, None)`` if neither exists."""
    part = read_partition(store, key)
    return part.items(), part.version


def _merged_bytes(part: Partition, where: str) -> bytes:
    """The bytes of a base file holding what readers of ``part`` see (``b""``
    when nothing is left). Rows are carried over as Arrow data when every
    source stores the same properties as JSON text and their schemas merge;
    else everything is decoded and re-encoded from dicts."""
    tables = part.tables()
    if not tables:
        return b""
    kinds = {tuple(_file_json_properties(t)) for t in tables}
    if len(kinds) == 1:
        (json_properties,) = kinds
        try:
            merged = pa.concat_tables(
                [t.replace_schema_metadata(None) for t in tables], promote_options="permissive"
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass  # e.g. a property that was a number is now a string: re-encode all
        else:
            return _table_bytes(merged, list(json_properties))
    return encode_items([item for t in tables for item in table_items(t)], where)


def empty_base() -> bytes:
    """The bytes of a base file holding no item (an ``id`` column, no rows):
    what a partition whose items are all gone keeps, so that the collection's
    asset linking it still resolves (:data:`EMPTY_BASE`)."""
    return EMPTY_BASE


def _put_base(store: Store, key: str, data: bytes, version: str | None, *, keep: bool = True) -> None:
    """Write base file ``key`` if it is still at ``version`` (None: if absent).
    ``data == b""`` (no item left): an :func:`empty_base` when ``keep`` (the
    collection links the file) and the file exists, else the file is deleted.
    Raises PreconditionFailed or NotFound."""
    if data == b"":
        if version is None:
            return
        if not keep:
            store.delete(key, if_version=version)
            return
        data = empty_base()
    if version is None:
        store.put(key, data, create_only=True)
    else:
        store.put(key, data, if_version=version)


def _drop_fragments(store: Store, keys: Iterable[str]) -> None:
    """Delete folded fragments, oldest first (a crash leaves only newer ones,
    which hold nothing older than the base). On a store with ``delete_many``
    (S3: DeleteObjects) all go in one request instead of a HEAD and a DELETE
    each; the order is then the server's, which readers do not need: every
    row of a folded fragment is in the base with the same stamp (a
    compaction) or superseded there by a newer version (a rebuild, from the
    JSON items), so readers that weigh the base's stamps against a leftover
    fragment (all of them, search included even where the base's
    statistics rule it out) see what the base holds, and the next
    compaction folds it again."""
    keys = sorted(keys)
    many = getattr(type(store), "delete_many", None)
    if callable(many) and len(keys) > 1:
        failed = store.delete_many(keys)  # type: ignore[attr-defined]
        for frag_key, why in sorted(failed.items()):
            log.warning("could not delete the folded fragment %s/%s (%s)", store.url, frag_key, why)
        return
    for frag_key in keys:
        try:
            store.delete(frag_key)
        except NotFound:
            pass  # another compaction got there first


def compact(store: Store, key: str, *, keep_folder: bool = True) -> bool:
    """Fold the fragments of base mirror file ``key`` into it: read the base
    (with its version) and the fragments present, write the merged base by
    compare-and-swap on that version (``create_only`` when absent; deleted
    when nothing is left), then delete exactly the fragments read. A fragment
    written meanwhile is not read, so it stays. Returns False when there was
    nothing to fold; raises PreconditionFailed/NotFound when another writer
    changed the base meanwhile (its compaction then did the work).

    On a local store (``keep_folder``) the fragments folder outlives its
    last fragment: before the deletes, a released lease
    (:data:`RELEASED_LEASE`) is created in it if no lease is there, so the
    store's delete, which prunes the folders it empties, leaves the folder
    and the next write into the partition makes no folder (see
    docs/mirror.md). :func:`compact_leased` passes False: the lease it
    holds is there, and its release leaves it released."""
    part = read_partition(store, key)
    if not part.fragments:
        return False
    data = _merged_bytes(part, f"{store.url}/{key}")
    _put_base(store, key, data, part.version)
    if keep_folder and (data or part.version is not None) and is_local(store):
        _keep_folder(store, key)
    _drop_fragments(store, [info.key for info, _ in part.fragments])
    return True


def _keep_folder(store: Store, key: str) -> None:
    """Create a released lease in the fragments folder of base file ``key``
    (create-only: a lease there, held or released, stays as it is), so the
    folder stays when its last fragment goes. Never raises: the folder is
    an optimisation (the next write makes it again)."""
    try:
        store.put(lease_key(key), RELEASED_LEASE, create_only=True)
    except PreconditionFailed:
        pass  # a lease is there
    except Exception as exc:
        log.debug("keeping the fragments folder of %s/%s failed (%s)", store.url, key, exc)


# --- the compaction lease ---------------------------------------------------------------
#
# Compaction reads every fragment and rewrites the base: when several writers
# see the same partition due at once, they all read the same fragments and all
# but one lose the base's compare-and-swap (measured with 8 writers on S3: 3-4
# GETs of fragments per item, and conflicts on items.parquet). A lease object
# beside the fragments lets one writer compact while the others skip: it is
# created create-only, holds its expiry time, and an expired lease (its
# holder died) is taken over by compare-and-swap on its version. Readers,
# validate and reconcile ignore it (not a fragment suffix, not a document).

#: name of the lease object in a partition's fragments folder
LEASE_NAME = "compacting.lease"
#: seconds a lease is valid (a compaction takes well under a second)
LEASE_SECONDS = 60.0
#: the body of a released lease on a local store (expired since 1970): a
#: released lease stays in the fragments folder, which then outlives its
#: last fragment (:func:`compact`, :func:`release_lease`)
RELEASED_LEASE = b'{"expires": 0.0}'


def lease_key(key: str) -> str:
    """Key of the compaction lease of base mirror file ``key``.

    >>> lease_key("c/2024/03/items.parquet")
    'c/2024/03/items-fragments/compacting.lease'
    """
    return f"{fragments_prefix(key)}/{LEASE_NAME}"


def take_lease(store: Store, key: str, now: float | None = None) -> str | None:
    """Take the compaction lease of base mirror file ``key``: its version
    when taken, None when another writer holds a lease that has not expired
    (or won the race for it). One GET (a small body: the expiry); then a
    create-only PUT when there is none, a compare-and-swap PUT to take over
    an expired one, nothing when it is held.
    Writes only the lease object."""
    lk = lease_key(key)
    now = time.time() if now is None else now
    body = json.dumps({"expires": now + LEASE_SECONDS}).encode()
    try:
        data, version = store.get(lk)
    except NotFound:
        try:
            return store.put(lk, body, create_only=True)
        except PreconditionFailed:
            return None  # another writer took it first
    try:
        expires = float(json.loads(data)["expires"])
    except (ValueError, KeyError, TypeError):
        expires = 0.0  # unreadable: treat as expired
    if expires > now:
        return None
    try:
        return store.put(lk, body, if_version=version)
    except PreconditionFailed:
        return None  # another writer took it over first


def release_lease(store: Store, key: str, version: str) -> None:
    """Give back the lease taken with ``version``, conditional on that
    version (a lease taken over meanwhile stays with its new holder): on a
    local store rewritten as :data:`RELEASED_LEASE` (expired: the next
    writer takes it over as it would a dead holder's), so that the
    fragments folder it keeps is not pruned; elsewhere (S3: no folders)
    deleted. Never raises for a lease already gone or taken over."""
    try:
        if is_local(store):
            store.put(lease_key(key), RELEASED_LEASE, if_version=version)
        else:
            store.delete(lease_key(key), if_version=version)
    except (PreconditionFailed, NotFound):
        pass
    except Exception as exc:  # an expired lease is taken over: never fail the writer
        log.warning(
            "releasing the mirror lease %s/%s failed (%s); it expires", store.url, lease_key(key), exc
        )


def compact_leased(store: Store, key: str) -> bool:
    """:func:`compact` ``key`` under its lease: False without compacting
    when another writer holds it. Writes the lease, the base, deletes the
    fragments folded, then releases the lease (:func:`release_lease`)."""
    version = take_lease(store, key)
    if version is None:
        return False
    try:
        return compact(store, key, keep_folder=False)
    finally:
        release_lease(store, key, version)


# --- the sink ----------------------------------------------------------------------


def _carries(collection: dict[str, Any], key: str) -> bool:
    """Whether ``collection`` (as committed) carries the asset of base file
    ``key``: then the file exists (the commit writes it before the
    compare-and-swap that adds the asset, :meth:`Committer.link_items`)."""
    cid = collection.get("id")
    return isinstance(cid, str) and carries(collection, cid, key)


def _tombstones_first(changes: Sequence[Change]) -> list[tuple[str, list[Change]]]:
    """``changes`` grouped by base mirror file, in the order :meth:`MirrorSink.apply`
    writes their fragments: every group but the new rows of items that moved
    partition in this batch (REMOVED under one file, created under another),
    then those new rows. So a crash between two fragment writes never leaves
    a moved item's new row written and its old row not yet tombstoned (search
    would return it twice, and the rerun, finding the new partition holding
    it, would not look for the old row); it may leave the new row unwritten,
    which the rerun's :meth:`MirrorSink.lacking` finds and adds. A partition
    both losing items and gaining moved ones gets two fragments."""
    if len(changes) == 1:  # one change (a warm upsert): its own group, nothing moved
        return [(mirror_key(changes[0].key), [changes[0]])]
    removed_from: dict[str, set[str]] = {}  # item id -> the files it is removed from
    for change in changes:
        if change.kind is ChangeKind.REMOVED:
            removed_from.setdefault(change.item_id, set()).add(mirror_key(change.key))
    first: dict[str, list[Change]] = {}
    then: dict[str, list[Change]] = {}
    for change in changes:
        key = mirror_key(change.key)
        moved_in = change.kind is not ChangeKind.REMOVED and bool(
            removed_from.get(change.item_id, set()) - {key}
        )
        (then if moved_in else first).setdefault(key, []).append(change)
    return [*first.items(), *then.items()]


@dataclass
class MirrorSink:
    """Keeps the mirror files of a catalog in line with committed changes.

    ``apply`` groups the changes by partition (the folder of each item's key)
    and writes ONE new NDJSON fragment per partition (create-only): the
    created and updated items, tombstones for the removed ones. It imports
    no Arrow, reads nothing and overwrites nothing, so its cost is that of
    the batch and writers never conflict. Besides that PUT:

    * the base file: the commit writes it (create-only, :data:`EMPTY_BASE`)
      before the compare-and-swap that adds its asset to the collection, so
      a collection handed to ``apply`` that carries the asset needs nothing
      here (no request). A batch creating or updating items in a partition
      whose asset the collection does NOT carry (a collection not committed
      by :class:`Committer`), or whose base :meth:`lacking` found absent
      (deleted by hand, or left dangling by an earlier version), makes sure
      the base exists (one HEAD, then a create-only PUT of
      :data:`EMPTY_BASE` if absent; once per partition per sink). So does a
      batch that UPDATES items in the partition: a rerun after an earlier
      version crashed between its commit and its mirror write finds its
      products changed, and only this check then writes the missing base
      (a create, the warm upsert, makes no HEAD);
    * 1 in ``check_every`` writes (at random) lists the partition's
      fragments and, when there are more than ``compact_after``, compacts it
      (:func:`compact`, which imports pyarrow); a failed compaction is
      logged and left to the next writer or to ``rebuild``.

    An item that moved partition must come as REMOVED (old key) + CREATED (new key).
    """

    store: Store
    compact_after: int = COMPACT_AFTER
    #: list the fragments (for compaction) after 1 in this many writes (1: every write)
    check_every: int = CHECK_EVERY
    #: also handed the items a run found unchanged, filtered by :meth:`lacking`
    wants_unchanged = True
    #: a removal that found no item is no repair here (see :meth:`lacking`):
    #: a remove whose write here failed is repaired by reconcile, not by removing again
    rerun_removal_repairs = False
    #: base files this sink saw or made exist (no HEAD for them again)
    _bases: set[str] = field(default_factory=set, repr=False)
    #: base files :meth:`lacking` found absent (``apply`` creates them)
    _absent: set[str] = field(default_factory=set, repr=False)
    #: ``{base file: {item id: stamp}}`` of the partitions :meth:`lacking`
    #: read for the old rows of moved items (each read once per sink)
    _others: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # as messages name it (producer.sinks.describe), like the other sinks
        return f"MirrorSink({self.store.url})"

    def lacking(self, collection: dict[str, Any], unchanged: Sequence[Change]) -> list[Change]:
        """The unchanged items the mirror does not reflect (it lacks them or
        holds them with another stamp), so that a rerun of the same register
        repairs a mirror write that a crash or a failure after the commit
        skipped. Removals that found nothing are skipped (reconcile repairs
        a mirror that still shows such an item). Reads, per partition of
        ``unchanged``, the base's id/stamp columns and the fragments'
        headers (:func:`visible_stamps`): bounded by the partition, paid
        only by runs with unchanged items. Writes nothing; remembers the
        partitions whose base file is absent, for ``apply`` to create.

        An item its partition lacks altogether may have moved there from
        another partition (its datetime changed) in a run whose mirror write
        failed: the old partition still shows it. Then the other partitions
        the collection links are read too (:func:`visible_stamps`, each once
        per sink), and a tombstone is returned for each older row of such an
        item found there, so the rerun leaves the item in one partition
        only. Runs whose mirror holds every unchanged item read nothing more."""
        by_file: dict[str, list[Change]] = {}
        for change in unchanged:
            if change.kind is ChangeKind.REMOVED:
                # a removal that found no item (e.g. the delete event of a file never
                # registered): its key is a guess, and reading the mirror for every
                # such event would cost each one a partition read; reconcile repairs it
                continue
            by_file.setdefault(mirror_key(change.key), []).append(change)
        out: list[Change] = []
        gone: dict[str, Change] = {}  # items their partition lacks altogether
        for key, group in by_file.items():
            seen, exists = _visible(self.store, key)
            self._others[key] = seen
            if exists:
                self._bases.add(key)
            else:
                self._absent.add(key)
            for c in group:
                if seen.get(c.item_id) != stamp_of(c.item):
                    out.append(c)
                    if c.item_id not in seen:
                        gone[c.item_id] = c
        if gone:
            out += self._moved_from(collection, gone)
        return out

    def _moved_from(self, collection: dict[str, Any], gone: Mapping[str, Change]) -> list[Change]:
        """Tombstones (REMOVED changes) for the rows of ``gone`` items that
        other partitions of ``collection`` still show with an older (or the
        same) stamp: the old rows of items that moved partition while the
        mirror write failed. Reads each partition the collection links once
        per sink (:func:`visible_stamps`)."""
        cid = collection.get("id")
        if not isinstance(cid, str):
            return []
        out: list[Change] = []
        for key in sorted(set(linked_mirror_keys(f"{cid}/collection.json", collection)) | set(self._others)):
            if key not in self._others:
                try:
                    self._others[key] = _visible(self.store, key)[0]
                except NotFound:
                    self._others[key] = {}
            seen = self._others[key]
            for item_id, change in gone.items():
                stamp = seen.get(item_id)
                if stamp is None or mirror_key(change.key) == key or stamp > stamp_of(change.item):
                    continue
                updated = stamp_text(stamp)
                old_key = posixpath.join(posixpath.dirname(key), item_id, f"{item_id}.json")
                old_item = {
                    "type": "Feature",
                    "id": item_id,
                    "properties": {} if updated is None else {"updated": updated},
                }
                out.append(Change(ChangeKind.REMOVED, cid, item_id, old_key, old_item))
                del seen[item_id]  # tombstoned: not again for a later batch of this sink
        return out

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Write one NDJSON fragment per affected partition (create-only),
        create the base files of partitions gaining items if absent, and
        compact a partition with too many fragments when the 1-in-``check_every``
        draw says to look."""
        for key, group in _tombstones_first(changes):
            latest: dict[str, Change] = {}  # the last create/update of each id
            removed: dict[str, int] = {}
            creates = updates = False
            for c in group:  # in commit order: the last change of an id wins
                if c.kind is ChangeKind.REMOVED:
                    latest.pop(c.item_id, None)
                    removed[c.item_id] = stamp_of(c.item)
                else:
                    creates = True  # created or updated: see the class doc
                    updates |= c.kind is ChangeKind.UPDATED
                    removed.pop(c.item_id, None)
                    latest[c.item_id] = c
            upserts = {i: c.item for i, c in latest.items()}
            encoded = {i: c.line for i, c in latest.items() if c.line is not None}  # the writer's lines
            if key not in self._bases and (
                key in self._absent or updates or (creates and not _carries(collection, key))
            ):
                self._ensure_base(key)
            frag_key = f"{fragments_prefix(key)}/{_fragment_name()}"
            self.store.put(
                frag_key,
                encode_fragment(upserts, removed, f"{self.store.url}/{frag_key}", encoded),
                create_only=True,
            )
            if self.compact_after >= 0 and (self.check_every <= 1 or random.random() * self.check_every < 1):
                self._maybe_compact(key)

    def _ensure_base(self, key: str) -> None:
        """Create base file ``key`` empty (create-only; another writer may
        win) unless it exists. One HEAD (+ one PUT the first time). Needed
        only where the collection handed to :meth:`apply` does not carry the
        asset (the commit writes the base before adding it) or
        :meth:`lacking` found the file gone (deleted by hand, or left
        dangling by an earlier version).
        A failure is logged, never raised: ``reconcile`` finds the dangling
        asset (``mirror-stale``) and its fix writes the file."""
        try:
            if not self.store.exists(key):
                self.store.put(key, EMPTY_BASE, create_only=True)
        except PreconditionFailed:
            pass  # another writer created it
        except Exception as exc:  # the fragment still carries the rows: never fail the writer for this
            log.warning(
                "creating the mirror file %s/%s failed (%s); reconcile --fix writes it",
                self.store.url,
                key,
                exc,
            )
            return
        self._bases.add(key)
        self._absent.discard(key)

    def _maybe_compact(self, key: str) -> None:
        try:
            if len(list_fragments(self.store, key)) > self.compact_after:
                compact_leased(self.store, key)
        except (PreconditionFailed, NotFound):
            pass  # another writer compacted meanwhile
        except Exception as exc:  # the fragment is written: never fail the writer for this
            log.warning(
                "compacting the mirror file %s/%s failed (%s); its fragments stay (readers merge them) "
                "and the next write to it retries",
                self.store.url,
                key,
                exc,
            )

    def touched(self, changes: Sequence[Change]) -> list[str]:
        """Base mirror files of the partitions ``apply`` writes to (for the collection's assets)."""
        return sorted({mirror_key(c.key) for c in changes})


# --- whole-collection operations (reconcile) --------------------------------------------
#
# Streamed partition by partition: the walk reads one catalog, then the items
# it links (one document at a time), compares them with that folder's mirror
# file (and rewrites it, for a rebuild), and drops them before the next
# catalog. Memory: one partition's items and mirror rows, plus the findings.


def _read_json(store: Store, key: str) -> dict[str, Any] | None:
    """The document at ``key`` (items with absolute asset hrefs, as the mirror
    stores them); None if it is not a JSON object. Raises NotFound if it is
    gone (the walks skip a dangling link) and CatalogError if it is not JSON."""
    data, _ = store.get(key)
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CatalogError(f"{store.url}/{key} is not JSON ({exc}): repair it with reconcile") from exc
    if not isinstance(doc, dict):
        return None
    return absolute_assets(doc, document_url(store.url, key))


def _child_targets(key: str, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """``(rel, key)`` of the child/item links of the document at ``key``."""
    out = []
    for link in doc.get("links", []):
        if isinstance(link, dict) and link.get("rel") in CHILD_RELS:
            target = resolve_href(key, str(link.get("href", "")))
            if target is not None:
                out.append((str(link.get("rel")), target))
    return out


def walk_collection(store: Store, collection_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(key, document)`` for the collection and every catalog and item
    linked below it (child/item links), depth first (one catalog, then the
    items it links); items with absolute asset hrefs
    (:func:`producer.hrefs.absolute_assets`). Catalogs are remembered (to
    visit each once), items not: an item linked twice is yielded twice."""
    start = f"{collection_id}/collection.json"
    stack, seen = [start], {start}
    while stack:
        key = stack.pop()
        try:
            doc = _read_json(store, key)
        except NotFound:
            if key == start:
                raise
            continue
        if doc is None:
            continue
        yield key, doc
        if doc.get("type") == "Feature":
            continue
        below = []
        for rel, target in _child_targets(key, doc):
            if rel == "item":
                below.append(target)
            elif target not in seen:
                seen.add(target)
                below.append(target)
        stack.extend(reversed(below))


#: item id -> (key, item): the JSON items of one mirror file
_Tree = dict[str, tuple[str, dict[str, Any]]]


@dataclass
class MirrorDiff:
    """What differs between a collection's mirror and its JSON tree (ids sorted)."""

    #: in the JSON tree, in no mirror file (or in another partition's file only)
    missing: list[str] = field(default_factory=list)
    #: in a mirror file, not in the JSON tree (or in the wrong partition's file)
    extra: list[str] = field(default_factory=list)
    #: in both, with different content
    differing: list[str] = field(default_factory=list)
    #: base files the collection links as assets that do not exist (dangling assets)
    absent_files: list[str] = field(default_factory=list)
    #: mirror files that must be rewritten (or deleted) to remove the differences
    stale_files: list[str] = field(default_factory=list)
    #: base files of partitions holding linked items that the collection does
    #: not link as assets, though it links others (``search`` reads only the
    #: linked files, so it misses their items; :func:`rebuild` links them)
    unlinked_files: list[str] = field(default_factory=list)
    #: base files whose partition (the base or a fragment) does not read:
    #: :func:`rebuild` rewrites them from the items and drops their fragments
    unreadable_files: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.missing
            or self.extra
            or self.differing
            or self.absent_files
            or self.unlinked_files
            or self.unreadable_files
        )


@dataclass
class _FileDiff:
    """The differences of one mirror file (only kept when there are some)."""

    missing: list[str]
    extra: list[str]
    differing: list[str]
    absent: bool
    #: the partition's files do not read (their rows are unknown)
    unreadable: bool = False


def _file_diff(
    tree: _Tree, rows: Mapping[str, dict[str, Any]], version: str | None, linked: bool
) -> _FileDiff:
    """Compare the JSON items that belong in one mirror file with its rows. Pure."""
    missing, differing = [], []
    for item_id, (_, item) in tree.items():
        row = rows.get(item_id)
        if row is None:
            missing.append(item_id)
        elif canonical(row) != canonical(item):
            differing.append(item_id)
    extra = [item_id for item_id in rows if item_id not in tree]
    return _FileDiff(missing, extra, differing, linked and version is None)


def _rewrite(store: Store, key: str, tree: _Tree, version: str | None, linked: bool) -> None:
    """Write base mirror file ``key`` from ``tree`` if it is still at
    ``version`` (see :func:`_put_base`); a linked file that was never
    written gets an empty base. Raises PreconditionFailed or NotFound."""
    items = [item for _, item in tree.values()]
    data = encode_items(items, f"{store.url}/{key}") if items else b""
    _put_base(store, key, data, version, keep=linked)
    if not data and linked and version is None:
        store.put(key, empty_base(), create_only=True)  # a linked file never written


class _MirrorPass:
    """One walk of a collection comparing (and, with ``rewrite``, rewriting)
    its mirror files partition by partition.

    Each catalog's folder file is compared once the catalog's items are read.
    An item whose key puts it in another folder's file than the catalog that
    links it (a stray: only in a damaged tree) is kept aside for that file;
    a file that receives a stray after it was compared is compared again at
    the end from a second walk (rare, and O(items) reads)."""

    def __init__(
        self,
        store: Store,
        collection_id: str,
        rewrite: Callable[[str, _Tree, str | None, bool, Callable[[], _Tree]], bool] | None = None,
    ) -> None:
        self.store = store
        self.collection_id = collection_id
        self.rewrite = rewrite
        self.linked: set[str] = set()
        self.done: set[str] = set()
        self.strays: dict[str, _Tree] = {}
        self.recheck: set[str] = set()
        self.found: dict[str, _FileDiff] = {}
        self.written: list[str] = []
        self.holding: set[str] = set()  # files whose partition holds linked items

    def run(self) -> MirrorDiff:
        start = f"{self.collection_id}/collection.json"
        stack, seen = [start], {start}
        while stack:
            key = stack.pop()
            try:
                doc = _read_json(self.store, key)
            except NotFound:
                if key == start:
                    raise
                continue
            if doc is None or doc.get("type") == "Feature":
                continue  # an item linked as a child: the audit reports it
            if key == start:
                self.linked.update(linked_mirror_keys(key, doc))
            tree, children = self._items_of(key, doc)
            stack.extend(reversed([c for c in children if c not in seen]))
            seen.update(children)
            own = posixpath.join(posixpath.dirname(key), MIRROR_NAME)
            self._compare(own, tree, self._later(self._reread, key, own))
        for file_key in sorted((self.linked | set(self.strays)) - self.done):
            self._compare(file_key, {}, dict)
        for file_key in sorted(self.recheck):
            tree = {
                str(doc.get("id")): (k, doc)
                for k, doc in walk_collection(self.store, self.collection_id)
                if doc.get("type") == "Feature" and mirror_key(k) == file_key
            }
            self.done.discard(file_key)
            self._compare(file_key, tree, self._later(self._rewalk, file_key))
        return self._result()

    @staticmethod
    def _later(read: Callable[..., _Tree], *args: str) -> Callable[[], _Tree]:
        """``read(*args)``, to be called later (a rebuild's retry reads again)."""
        return lambda: read(*args)

    def _items_of(self, key: str, doc: dict[str, Any]) -> tuple[_Tree, list[str]]:
        """The items the catalog at ``key`` links that belong in its folder's
        file (read now), and the catalogs it links; strays are put aside."""
        own = posixpath.join(posixpath.dirname(key), MIRROR_NAME)
        tree: _Tree = {}
        children = []
        for rel, target in _child_targets(key, doc):
            if rel != "item":
                children.append(target)
                continue
            try:
                item = _read_json(self.store, target)
            except NotFound:
                continue
            if item is None:
                continue
            if item.get("type") != "Feature":
                children.append(target)
                continue
            file_key = mirror_key(target)
            if file_key == own:
                tree[str(item.get("id"))] = (target, item)
            else:
                self.strays.setdefault(file_key, {})[str(item.get("id"))] = (target, item)
                if file_key in self.done:
                    self.recheck.add(file_key)
        return tree, children

    def _reread(self, doc_key: str, own: str) -> _Tree:
        """The items of the catalog at ``doc_key`` for its folder's file
        ``own``, read again (with the strays put aside for it)."""
        try:
            doc = _read_json(self.store, doc_key)
        except NotFound:
            doc = None
        if doc is None:
            return {}
        strays, self.strays = self.strays, {}
        try:
            tree, _ = self._items_of(doc_key, doc)
        finally:
            self.strays = strays
        return {**tree, **self.strays.get(own, {})}

    def _rewalk(self, file_key: str) -> _Tree:
        return {
            str(doc.get("id")): (k, doc)
            for k, doc in walk_collection(self.store, self.collection_id)
            if doc.get("type") == "Feature" and mirror_key(k) == file_key
        }

    def _compare(self, file_key: str, tree: _Tree, reread: Callable[[], _Tree]) -> None:
        """Compare (and with ``rewrite`` rewrite) one mirror file; its
        differences kept in ``found``."""
        if file_key in self.done:
            self.recheck.add(file_key)
            return
        self.done.add(file_key)
        tree = {**tree, **self.strays.get(file_key, {})}
        if tree:
            self.holding.add(file_key)
        else:
            self.holding.discard(file_key)
        unreadable = False
        try:
            rows, version = read_mirror(self.store, file_key)
        except MirrorError:  # a file that does not read: its partition is rewritten from the items
            rows, version, unreadable = {}, _version(self.store, file_key), True
        linked = file_key in self.linked
        found = _file_diff(tree, rows, version, linked)
        found.unreadable = unreadable
        del rows
        stale = bool(found.missing or found.extra or found.differing or found.absent or unreadable)
        self.found.pop(file_key, None)
        if stale:
            self.found[file_key] = found
        if self.rewrite is not None and self.rewrite(file_key, tree, version, stale, reread):
            self.written.append(file_key)

    def _result(self) -> MirrorDiff:
        out = MirrorDiff()
        for file_key, found in sorted(self.found.items()):
            out.missing += found.missing
            out.extra += found.extra
            out.differing += found.differing
            if found.absent:
                out.absent_files.append(file_key)
            if found.unreadable:
                out.unreadable_files.append(file_key)
        out.missing.sort()
        out.extra.sort()
        out.differing.sort()
        out.stale_files = sorted(self.found)
        if self.linked:  # linking none: written before the mirror, search finds the files by place
            inside = f"{self.collection_id}/"
            out.unlinked_files = sorted(k for k in self.holding - self.linked if k.startswith(inside))
        return out


def _version(store: Store, key: str) -> str | None:
    """The version of base mirror file ``key`` (None: absent), however its bytes read."""
    try:
        return store.get(key)[1]
    except NotFound:
        return None


def diff(store: Store, collection_id: str) -> MirrorDiff:
    """Compare the mirror of ``collection_id`` with its JSON items (walks the
    tree: O(items) reads, one partition's items in memory). Reads only."""
    return _MirrorPass(store, collection_id).run()


def _listed_fragments(store: Store, collection_id: str) -> dict[str, list[str]]:
    """``{base mirror key: [fragment keys]}`` of every fragment in the collection (one LIST)."""
    out: dict[str, list[str]] = {}
    for key in store.list(collection_id):
        folder, _, name = key.rpartition("/")
        if name.endswith(FRAGMENT_SUFFIXES) and posixpath.basename(folder) == FRAGMENTS_DIR:
            out.setdefault(posixpath.join(posixpath.dirname(folder), MIRROR_NAME), []).append(key)
    return out


def rebuild(store: Store, collection_id: str, *, only_stale: bool = True, max_retries: int = 5) -> list[str]:
    """Rewrite the base mirror files of ``collection_id`` from its JSON items,
    fold every fragment, and return the base keys written or deleted.
    ``only_stale``: rewrite from the tree only the partitions that differ
    (the others are compacted when they have fragments).

    One walk, partition by partition (one partition's items in memory). The
    fragments are listed BEFORE the tree is walked, so each one listed holds
    commits the walk sees (or newer ones); a partition's base is written
    conditional on the version read after its items were read (on a conflict
    its fragments are listed and its items read again, ConflictError after
    ``max_retries``), then exactly those fragments are deleted. A fragment
    written after the listing stays and is merged by stamp. Deletes of
    fragments never lose a row: a crash between the write and the deletes
    leaves fragments whose rows resolve against the base by stamp (a
    leftover row older than the base's version of its item is hidden by it,
    so readers must read the base's stamps whenever fragments exist, even
    where a query's statistics rule the base out: :mod:`producer.query` does)."""
    listed = _listed_fragments(store, collection_id)

    def rewrite(key: str, tree: _Tree, version: str | None, stale: bool, reread: Callable[[], _Tree]) -> bool:
        if only_stale and not stale:
            return False
        linked = key in walk.linked
        for attempt in range(max_retries + 1):
            try:
                _rewrite(store, key, tree, version, linked)
                break
            except (PreconditionFailed, NotFound):
                if attempt == max_retries:
                    raise ConflictError(
                        f"mirror file {store.url}/{key} kept changing while it was rebuilt; "
                        "run again when writers are quieter"
                    ) from None
                listed[key] = list_fragments(store, key)
                tree = reread()
                version = read_mirror(store, key)[1]
        _drop_fragments(store, listed.get(key, []))
        return True

    walk = _MirrorPass(store, collection_id, rewrite)
    found = walk.run()
    done = sorted(walk.written)
    for key in sorted(set(listed) - set(done)):
        try:
            if compact(store, key):
                done.append(key)
        except (PreconditionFailed, NotFound):
            continue  # a concurrent compaction folded them
    if found.unlinked_files:
        link_bases(store, collection_id, found.unlinked_files, max_retries=max_retries)
    return done
