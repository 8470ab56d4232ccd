"""Search a static catalog by place, time, collection and id, from its
stac-geoparquet mirror, with DuckDB in process (no server, no extension).

:func:`search` reads the mirror files of the chosen collections through the
catalog's :class:`~producer.store.base.Store` (local, ``s3://``, any fsspec
backend), hands the few columns a filter needs (``id``, ``bbox``,
``datetime``, ``start_datetime``, ``end_datetime``) to DuckDB as Arrow tables,
and turns only the matching rows back into STAC items. The answer is shaped
like a STAC API ``/search`` response.

Semantics:

* ``bbox`` ``[west, south, east, north]`` (or 6 numbers with heights, which
  are ignored); ``west > east`` is a box crossing the antimeridian, and an
  item whose bbox has ``west > east`` crosses it too. An item matches when
  its geometry meets the box (the STAC API's meaning, pgSTAC's too): its
  bbox first, then, for the rows whose bbox the box does not contain, its
  footprint (a rotated or projected scene does not fill its bbox). Touching
  on an edge or a corner counts.
* ``intersects`` (instead of ``bbox``): a GeoJSON geometry in lon/lat (a
  polygon crossing 180° split in two there, as RFC 7946 says); an item
  matches when its geometry meets it (its bounds narrow the rows first).
* ``datetime``: an instant, or ``start/end`` with ``..`` (or nothing) for an
  open end. A date without a time covers that whole day. An item matches when
  its ``[start_datetime, end_datetime]`` (or its ``datetime``) meets the
  interval, ends included.
* results are ordered newest first (item start), then by collection and id.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import numbers
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from producer.catalog.documents import CHILD_RELS
from producer.catalog.layout import resolve_href
from producer.errors import (
    REBUILD_MIRROR_HINT,
    CatalogError,
    Hint,
    InputError,
    MissingBucket,
    NotFound,
    no_catalog_in,
)
from producer.mirror import (
    MIRROR_NAME,
    READ_ATTEMPTS,
    FragmentInfo,
    MirrorError,
    fragment_info,
    is_ndjson_fragment,
    kept_changing,
    linked_mirror_keys,
    list_fragments,
    ndjson_info,
    resolve,
    table_items,
    table_stamps,
    unreadable,
)
from producer.store import open_store
from producer.store.base import Store, catalog_argument

try:
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import shapely
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f"search needs {_exc.name}, a dependency of stac-producer: reinstall it") from _exc

#: what ``datetime=`` takes: text, a datetime or date, or a (start, end) pair
DatetimeQuery = str | date | Sequence[str | date | None]
#: a document the catalog links is gone: reconcile's fix relinks its items (or drops the link)
REPAIR_LINKS_HINT = Hint("fix", True, "repair the catalog's links", verb="reconcile")
_FILTER_COLUMNS = ("id", "bbox", "datetime", "start_datetime", "end_datetime")
_TIMESTAMP = pa.timestamp("us", tz="UTC")
_BBOX = pa.struct([(n, pa.float64()) for n in ("xmin", "ymin", "xmax", "ymax")])


# --- parsing the query ---------------------------------------------------------------


def parse_bbox(bbox: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """``"W,S,E,N"`` or a sequence of 4 (or 6) numbers -> (W, S, E, N)."""
    if bbox is None:
        return None
    if isinstance(bbox, str):
        try:
            values = [float(v) for v in bbox.split(",")]
        except ValueError as exc:
            raise InputError(f"bbox {bbox!r}: expected four numbers west,south,east,north") from exc
    else:
        try:
            values = [_number(v) for v in bbox]
        except (TypeError, ValueError) as exc:
            raise InputError(f"bbox {bbox!r}: expected four numbers west,south,east,north") from exc
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4:
        raise InputError(f"bbox {bbox!r}: expected four numbers west,south,east,north")
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise InputError(
            f"bbox {bbox!r}: longitudes must lie in [-180, 180] and latitudes in [-90, 90] with "
            "south <= north (a box crossing the antimeridian has west > east)"
        )
    return west, south, east, north


#: the geometry types of GeoJSON (RFC 7946)
_GEOJSON_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection"}
)
_INTERSECTS_EXAMPLE = '{"type": "Polygon", "coordinates": [[[6, 46], [8, 46], [8, 47], [6, 46]]]}'


def parse_intersects(value: Any, shown: str | None = None) -> Any:
    """A GeoJSON geometry, Feature or FeatureCollection (a dict, its JSON
    text, or an object with ``__geo_interface__`` such as a shapely geometry)
    -> a shapely geometry in lon/lat, valid and not empty. ``shown`` names
    the value in messages (the file it was read from) instead of quoting it."""
    if value is None:
        return None
    given = value
    label = shown if shown is not None else _short(given)
    if hasattr(value, "__geo_interface__") and not isinstance(value, dict | str):
        value = value.__geo_interface__
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InputError(
                f"intersects {label} is not GeoJSON: give a geometry as JSON, e.g. {_INTERSECTS_EXAMPLE}"
            ) from None
    if not isinstance(value, dict):
        raise InputError(
            f"intersects {label} is not GeoJSON: give a geometry as JSON, e.g. {_INTERSECTS_EXAMPLE}"
        )
    _check_crs(value, label)
    value = _geometry_of(value)
    kind = value.get("type")
    if kind not in _GEOJSON_TYPES:
        raise InputError(
            f"intersects {label} is not a GeoJSON geometry (type {kind!r}): give one of "
            f"{', '.join(sorted(_GEOJSON_TYPES))}, e.g. {_INTERSECTS_EXAMPLE}"
        )
    try:
        geometry = shapely.from_geojson(json.dumps(value))
    except (shapely.errors.GEOSException, ValueError, TypeError) as exc:
        raise InputError(
            f"intersects {label} is not a GeoJSON geometry ({exc}): e.g. {_INTERSECTS_EXAMPLE}"
        ) from None
    if geometry.is_empty:
        raise InputError(f"intersects {label} is empty: give a geometry with coordinates")
    west, south, east, north = geometry.bounds
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise InputError(
            f"intersects {label}: longitudes must lie in [-180, 180] and latitudes in [-90, 90] "
            "(split a geometry crossing the antimeridian in two at 180, as RFC 7946 says)"
        )
    if not geometry.is_valid:
        geometry = _valid_parts(geometry, label)
    return geometry


#: geometry types made of parts (an item meets one when it meets a part)
_MULTI_TYPES = frozenset({"MultiPoint", "MultiLineString", "MultiPolygon", "GeometryCollection"})


def _valid_parts(geometry: Any, label: str) -> Any:
    """An invalid ``geometry`` as the collection of its simple parts, when
    each part is valid: a MultiPolygon whose polygons overlap (areas of
    interest merged by hand, buffers of nearby points) is invalid as a
    whole, yet an item meets it exactly when it meets one of its polygons.
    A part that is itself invalid (a ring crossing itself) is an
    InputError naming the cause."""
    parts = [geometry]
    while any(part.geom_type in _MULTI_TYPES for part in parts):
        parts = [p for part in parts for p in shapely.get_parts(part)]
    for number, part in enumerate(parts, 1):
        if part.is_valid:
            continue
        if len(parts) == 1:  # a lone polygon: a bow-tie is two polygons meeting at a point
            raise InputError(
                f"intersects {label} is not a valid geometry ({shapely.is_valid_reason(part)}): "
                "repair it (a ring must not cross itself), or give its parts as a Multi geometry"
            )
        raise InputError(
            f"intersects {label} is not a valid geometry: its part {number} of {len(parts)} (a "
            f"{part.geom_type}) is invalid ({shapely.is_valid_reason(part)}); repair that part (a ring "
            "must not cross itself; a bow-tie is two polygons)"
        )
    return shapely.GeometryCollection(parts)


#: a GeoJSON ``crs`` member's name for longitude/latitude on WGS 84 (what
#: QGIS and ogr2ogr write for EPSG:4326 data): the coordinates RFC 7946 wants
_LONLAT_CRS = re.compile(r"CRS:?84$|EPSG:+4326$", re.IGNORECASE)


def _check_crs(value: dict[str, Any], label: str) -> None:
    """Refuse GeoJSON whose (pre-RFC 7946) ``crs`` member names another
    system than lon/lat, e.g. an older QGIS export in EPSG:3857: its
    coordinates are metres, so it would meet nothing or be refused as out
    of [-180, 180] with no word of the cause."""
    crs = value.get("crs")
    props = crs.get("properties") if isinstance(crs, dict) else None
    name = props.get("name") if isinstance(props, dict) else None
    if isinstance(name, str) and not _LONLAT_CRS.search(name.strip()):
        raise InputError(
            f"intersects {label} is in the coordinate reference system {name!r}: GeoJSON coordinates are "
            "longitude/latitude on WGS 84 (RFC 7946); export it in EPSG:4326 (e.g. ogr2ogr -t_srs EPSG:4326)"
        )


def _geometry_of(value: dict[str, Any]) -> dict[str, Any]:
    """The geometry a GeoJSON object stands for: a Feature's geometry, a
    FeatureCollection's geometries as one GeometryCollection (an area of
    interest drawn in geojson.io or exported from QGIS is one; an item meets
    the collection when it meets any of them), a geometry itself."""
    kind = value.get("type")
    if kind == "Feature":
        geometry = value.get("geometry")
        if not isinstance(geometry, dict):
            raise InputError("intersects is a Feature with no geometry: give one that has a geometry")
        return geometry
    if kind == "FeatureCollection":
        features = value.get("features")
        geometries: list[dict[str, Any]] = []
        for feature in features if isinstance(features, list) else ():
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            if not isinstance(geometry, dict):
                geometries.clear()
                break
            geometries.append(geometry)
        if not geometries:
            raise InputError(
                "intersects is a FeatureCollection whose features do not all have a geometry: "
                "give one whose every feature has one"
            )
        if len(geometries) == 1:
            return dict(geometries[0])
        return {"type": "GeometryCollection", "geometries": geometries}
    return value


def _short(value: Any, most: int = 120) -> str:
    """``value`` for a message, cut to ``most`` characters (a geometry can be long)."""
    text = repr(value)
    return text if len(text) <= most else f"{text[: most - 3]}..."


def _number(value: Any) -> float:
    """``value`` as a float; a bool (``True`` would be 1.0) or text is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's too
        raise TypeError(f"{value!r} is not a number")
    return float(value)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: the forms a Python caller may give ``datetime`` in, for messages
_DATETIME_FORMS = (
    "give RFC 3339 text ('2024-01-01T00:00:00Z', '2024-01-01', 'START/END' with '..' for an open "
    "end), a timezone-aware datetime, a date, or a (start, end) pair of those with None for an open end"
)


def _instant(text: object, *, end: bool) -> datetime:
    if isinstance(text, datetime):  # a Python caller's own datetime (a date's subclass)
        if text.tzinfo is None or text.utcoffset() is None:
            raise InputError(f"datetime {text.isoformat()!r} has no time zone: give it one, e.g. tzinfo=UTC")
        try:
            return text.astimezone(UTC)
        except OverflowError:
            raise InputError(
                f"datetime {text.isoformat()!r} in UTC falls outside the years 1-9999: use a later or "
                "earlier time"
            ) from None
    if isinstance(text, date):  # a whole day
        when = datetime.combine(text, time(0), tzinfo=UTC)
        return when + timedelta(days=1, microseconds=-1) if end else when
    if not isinstance(text, str):
        raise InputError(f"datetime {text!r}: {_DATETIME_FORMS}")
    text = text.strip()
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:  # the right shape, no such day: 2024-02-30, 2024-13-01
            raise InputError(
                f"datetime {text!r} is not a calendar day ({exc}): use e.g. 2024-01-01 or "
                "2024-01-01T00:00:00Z"
            ) from None
        when = datetime.combine(day, time(0), tzinfo=UTC)
        return when + timedelta(days=1, microseconds=-1) if end else when
    try:
        when = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(
            f"datetime {text!r} is not RFC 3339: use e.g. 2024-01-01T00:00:00Z or 2024-01-01"
        ) from exc
    if not any(sep in text for sep in "Tt "):
        # a day in another ISO 8601 form (20240101, 2024-W01, 2024W011): no time
        # to give a zone to; say what is taken instead
        raise InputError(
            f"datetime {text!r} is not a form search takes: give a day as 2024-01-01 (the whole day), "
            "an instant as 2024-01-01T00:00:00Z (Z or an offset such as +02:00), or START/END of those "
            "('..' for an open end)"
        )
    if when.tzinfo is None:
        raise InputError(f"datetime {text!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first instant a datetime holds
        raise InputError(
            f"datetime {text!r} in UTC falls outside the years 1-9999: use a later or earlier time"
        ) from None


def _open_end(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", ".."))


def parse_datetime(value: DatetimeQuery | None) -> tuple[datetime | None, datetime | None] | None:
    """``"A"``, ``"A/B"``, ``"../B"``, ``"A/.."`` -> (start or None, end or None).
    From Python also a datetime (timezone-aware), a date (the whole day), or
    a ``(start, end)`` pair of those or of text, None for an open end."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise InputError(f"datetime {value!r}: {_DATETIME_FORMS}")
        first, second = value
    elif isinstance(value, str) and "/" in value:
        first, _, second = value.partition("/")
    else:
        return _instant(value, end=False), _instant(value, end=True)
    start = None if _open_end(first) else _instant(first, end=False)
    end = None if _open_end(second) else _instant(second, end=True)
    if start is None and end is None:
        raise InputError(f"datetime {value!r} is open at both ends: give a start, an end or both")
    if start is not None and end is not None and start > end:
        raise InputError(f"datetime {value!r}: the start is after the end")
    return start, end


def _names(value: str | Iterable[str] | None, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",")]
    else:
        names = list(value) if isinstance(value, Iterable) else []
        if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in names):
            raise InputError(f"{what} {value!r}: give a comma-separated text or a list of texts")
    names = [n for n in names if n]
    if not names:
        raise InputError(f"{what} is empty: give at least one, or leave it out")
    return names


# --- finding the mirror files ----------------------------------------------------------------


def _read_json(store: Store, key: str) -> dict[str, Any]:
    data, _ = store.get(key)
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CatalogError(f"{store.url}/{key} is not JSON ({exc}): repair it with reconcile") from exc
    if not isinstance(doc, dict):
        raise CatalogError(f"{store.url}/{key} is not a STAC document: repair it with reconcile")
    return doc


def catalog_collections(store: Store) -> dict[str, str]:
    """``{collection id: collection key}`` of the collections the root links."""
    try:
        root = _read_json(store, "catalog.json")
    except NotFound as exc:
        raise InputError(f"no catalog at {store.url} (catalog.json is missing): check the URL") from exc
    except MissingBucket as exc:
        raise no_catalog_in(exc, store.url) from exc
    out = {}
    for link in root.get("links", []):
        if isinstance(link, dict) and link.get("rel") == "child":
            key = resolve_href("catalog.json", str(link.get("href", "")))
            if key and key.endswith("/collection.json") and key.count("/") == 1:
                out[key.split("/", 1)[0]] = key
    return out


def mirror_files(store: Store, collection_key: str) -> list[str]:
    """Keys of a collection's mirror files: the ``collection-mirror`` assets of
    the collection (checked until one exists), else (mirror not linked yet)
    ``items.parquet`` beside the collection and each catalog below it (items
    are not read)."""
    return _mirror_files(store, collection_key)[0]


def _mirror_files(store: Store, collection_key: str) -> tuple[list[str], bool]:
    """:func:`mirror_files`, and whether the collection links them (then
    every one has a base file: a writer keeps a linked base, empty when no
    item is left, so an absent one is a damaged mirror)."""
    try:
        collection = _read_json(store, collection_key)
    except NotFound:
        raise CatalogError(
            f"collection {collection_key.split('/', 1)[0]!r} that the root of {store.url} links is "
            f"missing ({collection_key})",
            hints=(REPAIR_LINKS_HINT,),
        ) from None
    linked = linked_mirror_keys(collection_key, collection)
    if linked:
        if not any(store.exists(k) or list_fragments(store, k) for k in linked):
            collection_id = collection_key.split("/", 1)[0]
            raise InputError(
                f"collection {collection_id!r} of {store.url} links no stac-geoparquet mirror file that "
                "exists",
                hints=(REBUILD_MIRROR_HINT,),
            )
        return linked, True
    keys, queue = [], [(collection_key, collection)]
    has_items = False
    while queue:
        key, doc = queue.pop()
        keys.append(f"{key.rsplit('/', 1)[0]}/{MIRROR_NAME}")
        for link in doc.get("links", []):
            if not isinstance(link, dict) or link.get("rel") not in CHILD_RELS:
                continue
            has_items = has_items or link.get("rel") == "item"
            target = resolve_href(key, str(link.get("href", "")))
            if link.get("rel") == "child" and target and target.endswith("/catalog.json"):
                try:
                    queue.append((target, _read_json(store, target)))
                except NotFound:
                    continue
    found = [k for k in keys if store.exists(k) or list_fragments(store, k)]
    if has_items and not found:
        collection_id = collection_key.split("/", 1)[0]
        raise InputError(
            f"collection {collection_id!r} of {store.url} has no stac-geoparquet mirror yet",
            hints=(REBUILD_MIRROR_HINT,),
        )
    return found, False


# --- the query -----------------------------------------------------------------------


_PERIOD = re.compile(r"^(\d{4})(?:/(\d{2}))?$")


def _starts_after(collection_id: str, key: str, end: Any) -> bool:
    """True when ``key`` is the mirror file of a year or month partition that
    begins after ``end`` (None: open end): none of its items can match."""
    if end is None:
        return False
    folder = key.rsplit("/", 1)[0][len(collection_id) + 1 :]
    found = _PERIOD.match(folder)
    if not found:
        return False
    begins = datetime(int(found.group(1)), int(found.group(2) or 1), 1, tzinfo=UTC)
    return bool(begins > end)


_STAT_COLUMNS = frozenset(
    {"bbox.xmin", "bbox.ymin", "bbox.xmax", "bbox.ymax", "datetime", "start_datetime", "end_datetime"}
)


_MISSING = ()


class _GroupStats:
    """``(min, max)`` of one row group's columns, read from the parquet
    statistics on first use (a query ruled out by its datetime window never
    touches the bbox columns): ``None`` for a column whose statistics are
    unusable (it cannot rule anything out), ``()`` for a column absent or
    all null."""

    def __init__(self, group: Any, index: dict[str, int]) -> None:
        self.group = group
        self.index = index
        self.cache: dict[str, tuple[Any, ...] | None] = {}

    def get(self, path: str) -> tuple[Any, ...] | None:
        if path in self.cache:
            return self.cache[path]
        found: tuple[Any, ...] | None = _MISSING
        if path in self.index:
            column = self.group.column(self.index[path])
            stats = column.statistics
            if stats is None or (not stats.has_min_max and stats.null_count != column.num_values):
                found = None
            elif stats.has_min_max:
                found = (stats.min, stats.max)
        self.cache[path] = found
        return found


def _may_match(
    ranges: _GroupStats,
    box: tuple[float, float, float, float] | None,
    window: tuple[Any, Any] | None,
) -> bool:
    """False when the statistics ``ranges`` of a row group prove none of its
    rows meets the datetime window or the bbox."""
    if window is not None:
        start, end = window
        starts = [ranges.get(c) for c in ("start_datetime", "datetime")]
        ends = [ranges.get(c) for c in ("end_datetime", "datetime")]
        if all(r is not None for r in starts + ends):
            earliest = [r[0] for r in starts if r]
            latest = [r[1] for r in ends if r]
            if end is not None and earliest and min(earliest) > end:
                return False
            if start is not None and latest and max(latest) < start:
                return False
    if box is not None:
        west, south, east, north = box
        ymin, ymax = ranges.get("bbox.ymin"), ranges.get("bbox.ymax")
        if ymin and ymax and (ymin[0] > north or ymax[1] < south):
            return False
        # a query box that does not cross the antimeridian misses every row
        # whose west edge lies east of it and whose east edge lies west of it,
        # whether the row crosses the antimeridian or not (see _bbox_sql)
        if west <= east:
            xmin, xmax = ranges.get("bbox.xmin"), ranges.get("bbox.xmax")
            if xmin and xmax and xmin[0] > east and xmax[1] < west:
                return False
    return True


def _matching_groups(
    metadata: Any, box: tuple[float, float, float, float] | None, window: tuple[Any, Any] | None
) -> list[int]:
    """Row groups of a file whose statistics do not rule out the query."""
    if metadata.num_row_groups == 0:
        return []
    first = metadata.row_group(0)
    index = {
        path: c for c in range(first.num_columns) if (path := first.column(c).path_in_schema) in _STAT_COLUMNS
    }
    return [
        g
        for g in range(metadata.num_row_groups)
        if _may_match(_GroupStats(metadata.row_group(g), index), box, window)
    ]


def _open_parquet(store: Store, key: str, *, fragment: bool = False) -> tuple[pq.ParquetFile, Any]:
    """A mirror file opened for partial reads, and what to close after.
    A store with ``open_read`` (the local one) hands an open file: only the
    footer and the column chunks read are touched, and nothing is hashed;
    any other store is read whole with ``get``. Raises NotFound, and
    MirrorError (:func:`unreadable`) for a file that is not parquet."""
    opener = getattr(store, "open_read", None)
    if opener is not None:
        handle = opener(key)
        try:
            return pq.ParquetFile(handle), handle
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            handle.close()
            raise unreadable(f"{store.url}/{key}", exc, fragment=fragment) from exc
        except BaseException:
            handle.close()
            raise
    data, _ = store.get(key)
    try:
        return pq.ParquetFile(pa.BufferReader(data)), None
    except (OSError, ValueError) as exc:
        raise unreadable(f"{store.url}/{key}", exc, fragment=fragment) from exc


class _Source:
    """One parquet mirror file a search reads: the file, the rows readers
    keep (None: all), the row groups that may hold matches and the first row
    number of each row group."""

    def __init__(
        self,
        parquet: pq.ParquetFile,
        rows: list[int] | None,
        groups: list[int],
        where: str = "",
        fragment: bool = False,
    ) -> None:
        self.parquet = parquet
        self.rows = rows
        self.groups = groups
        self.where = where
        self.fragment = fragment
        starts = [0]
        for g in range(parquet.metadata.num_row_groups):
            starts.append(starts[-1] + parquet.metadata.row_group(g).num_rows)
        self.starts = starts

    def read(self, groups: list[int], columns: list[str] | None) -> tuple[pa.Table, pa.Array]:
        """``columns`` (None: all) of row groups ``groups`` and the file row
        number of each row read."""
        try:
            table = self.parquet.read_row_groups(groups, columns=columns)
        except (OSError, ValueError) as exc:  # a footer that reads, column chunks that do not
            raise unreadable(self.where, exc, fragment=self.fragment) from exc
        numbers = np.concatenate(
            [np.arange(self.starts[g], self.starts[g + 1], dtype=np.int64) for g in groups]
            or [np.zeros(0, dtype=np.int64)]
        )
        return table, pa.array(numbers, pa.int64())

    def filters(self, file_no: int, collection: str) -> pa.Table:
        """The filter columns (:func:`_filter_table`) of the rows readers keep."""
        names = set(self.parquet.schema_arrow.names)
        columns = [c for c in _FILTER_COLUMNS if c in names]
        table, numbers = self.read(self.groups, columns)
        table = _filter_table(table, numbers, file_no, collection)
        if self.rows is not None:  # only the rows readers keep
            table = table.filter(pc.is_in(numbers, pa.array(self.rows, pa.int64())))
        return table

    def footprints(self, rows: list[int]) -> Any:
        """The geometries of file rows ``rows`` (a shapely array, None where a
        row has none), in that order: the ``geometry`` column of only the row
        groups holding them."""
        groups = sorted({bisect.bisect_right(self.starts, r) - 1 for r in rows})
        table, numbers = self.read(groups, ["geometry"])
        position = {n: i for i, n in enumerate(numbers.to_pylist())}
        wkb = table.column("geometry").take(pa.array([position[r] for r in rows], pa.int64()))
        return shapely.from_wkb(wkb.to_pylist(), on_invalid="ignore")

    def items(self, rows: list[int]) -> list[dict[str, Any]]:
        """The items of file rows ``rows``, in that order: all the columns of
        only the row groups holding them, then only those rows."""
        groups = sorted({bisect.bisect_right(self.starts, r) - 1 for r in rows})
        table, numbers = self.read(groups, None)
        position = {n: i for i, n in enumerate(numbers.to_pylist())}
        picked = table.take(pa.array([position[r] for r in rows], pa.int64())).combine_chunks()
        return table_items(picked)


def _utc(value: Any) -> datetime | None:
    """An item property's RFC 3339 text as a UTC datetime (None: absent or not a time)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _shape(geometry: Any) -> Any:
    """A GeoJSON geometry as shapely's, None for one that is absent or not GeoJSON."""
    if not isinstance(geometry, dict):
        return None
    try:
        return shapely.from_geojson(json.dumps(geometry), on_invalid="ignore")
    except (shapely.errors.GEOSException, ValueError, TypeError):
        return None


class _ItemsSource:
    """The items of one NDJSON fragment a search reads (kept in memory: a
    fragment holds one writer's batch), with the rows readers keep. Its
    filter columns are computed from the item dicts, and a match is the
    committed item itself: no Arrow conversion."""

    def __init__(self, lines: list[bytes], rows: list[int], where: str) -> None:
        try:  # only the rows readers keep are parsed
            self.items_ = {r: json.loads(lines[r]) for r in rows}
        except (ValueError, IndexError) as exc:
            raise MirrorError(
                f"mirror fragment {where} is not NDJSON ({exc})", hints=(REBUILD_MIRROR_HINT,)
            ) from exc
        self.rows = rows

    def filters(self, file_no: int, collection: str) -> pa.Table:
        """The filter columns (as :func:`_filter_table` types them) of the rows readers keep."""
        corners: list[list[float | None]] = [[], [], [], []]
        times: dict[str, list[datetime | None]] = {
            n: [] for n in ("datetime", "start_datetime", "end_datetime")
        }
        for r in self.rows:
            item = self.items_[r]
            box = item.get("bbox")
            if (
                isinstance(box, list)
                and len(box) in (4, 6)
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
            ):
                at = (0, 1, 2, 3) if len(box) == 4 else (0, 1, 3, 4)
                for corner, i in zip(corners, at):
                    corner.append(float(box[i]))
            else:
                for corner in corners:
                    corner.append(None)
            props = item.get("properties") or {}
            for name, column in times.items():
                column.append(_utc(props.get(name)))
        n = len(self.rows)
        cols: dict[str, pa.Array] = {
            "file_no": pa.array(np.full(n, file_no, dtype=np.int32), pa.int32()),
            "row_no": pa.array(self.rows, pa.int64()),
            "collection": pa.array([collection] * n, pa.string()),
            "id": pa.array([str(self.items_[r].get("id")) for r in self.rows], pa.string()),
        }
        for name, corner in zip(("xmin", "ymin", "xmax", "ymax"), corners):
            cols[name] = pa.array(corner, pa.float64())
        for name, column in times.items():
            cols[name] = pa.array(column, _TIMESTAMP)
        return pa.table(cols)

    def footprints(self, rows: list[int]) -> Any:
        """The geometries of rows ``rows`` (a shapely array, None where a row
        has none or one that is not GeoJSON), in that order."""
        return np.array([_shape(self.items_[r].get("geometry")) for r in rows], dtype=object)

    def items(self, rows: list[int]) -> list[dict[str, Any]]:
        """Copies of the items of rows ``rows``, in that order."""
        return [json.loads(json.dumps(self.items_[r])) for r in rows]


def _partition_sources(
    store: Store,
    key: str,
    box: tuple[float, float, float, float] | None,
    window: tuple[Any, Any] | None,
    handles: contextlib.ExitStack,
    *,
    linked: bool = False,
) -> list[_Source | _ItemsSource]:
    """The files of the partition whose base mirror file is ``key`` that may
    hold matches: the base, then its fragments (oldest first), each with the
    row numbers readers keep (None: all), so that per item id only the newest
    row counts and a tombstone hides the item. A file whose statistics rule
    out the query is left out, after its rows and tombstones have had their
    say over the others: the base's ``id``/``updated`` columns are read
    whenever fragments exist, even for a base the query rules out, since a
    leftover fragment (a compaction or rebuild killed before its deletes)
    may hold an older version of an item the base holds newer. One LIST,
    then the base and each fragment (the footers of parquet ones, NDJSON
    ones read whole); a partition a
    compaction folded meanwhile is read again
    (:func:`~producer.mirror.read_again`). ``handles`` closes what was opened.
    A base the collection links (``linked``) that is absent is an
    :class:`~producer.errors.InputError` naming it and the fix: its items
    would be missing from the answer."""
    for _ in range(READ_ATTEMPTS):
        with contextlib.ExitStack() as opened:
            sources = _read_sources(store, key, box, window, opened, linked=linked)
            if sources is not None:
                handles.enter_context(opened.pop_all())
                return sources
    raise kept_changing(store, key)


def _read_sources(
    store: Store,
    key: str,
    box: tuple[float, float, float, float] | None,
    window: tuple[Any, Any] | None,
    opened: contextlib.ExitStack,
    *,
    linked: bool = False,
) -> list[_Source | _ItemsSource] | None:
    """One attempt of :func:`_partition_sources`: None when a fragment the
    LIST named was gone when read (a compaction folded it, maybe into a base
    newer than the one read)."""
    frag_keys = list_fragments(store, key)  # first: see read_again
    base_where = f"{store.url}/{key}"
    try:
        base: pq.ParquetFile | None
        base, handle = _open_parquet(store, key)
        if handle is not None:
            opened.enter_context(handle)
    except NotFound:
        if linked:
            raise InputError(
                f"the stac-geoparquet mirror file {base_where} that its collection links is missing: "
                "search would miss the items it held",
                hints=(REBUILD_MIRROR_HINT,),
            ) from None
        base = None  # not linked: only fragments so far
    if base is not None and base.metadata.num_rows == 0:
        base = None  # created empty by the first write, or every item removed: nothing to read
    fragments: list[tuple[FragmentInfo, pq.ParquetFile | tuple[list[bytes], str]]] = []
    for frag_key in frag_keys:
        where = f"{store.url}/{frag_key}"
        if is_ndjson_fragment(frag_key):
            try:
                data, _ = store.get(frag_key)
            except NotFound:
                return None  # folded by a compaction since the LIST
            info = ndjson_info(frag_key, data, where)
            fragments.append((info, (data.split(b"\n")[1 : 1 + len(info.rows)], where)))
            continue
        try:
            parquet, handle = _open_parquet(store, frag_key, fragment=True)
        except NotFound:
            return None  # folded by a compaction since the LIST
        if handle is not None:
            opened.enter_context(handle)
        fragments.append((fragment_info(frag_key, parquet.schema_arrow.metadata, where), parquet))
    base_groups = [] if base is None else _matching_groups(base.metadata, box, window)
    base_rows = None
    if base is not None and fragments:  # even when ruled out: see the doc
        columns = [c for c in ("id", "updated") if c in base.schema_arrow.names]
        try:
            ids_stamps = base.read(columns=columns)
        except (OSError, ValueError) as exc:
            raise unreadable(base_where, exc) from exc
        base_rows = list(zip(ids_stamps.column("id").to_pylist(), table_stamps(ids_stamps)))
    keep_base, kept = resolve(base_rows, [info for info, _ in fragments])
    out: list[_Source | _ItemsSource] = []
    if base is not None and base_groups:
        out.append(_Source(base, keep_base, base_groups, base_where))
    for (info, got), rows in zip(fragments, kept):
        if isinstance(got, tuple):
            if rows:
                out.append(_ItemsSource(got[0], rows, got[1]))
            continue
        groups = _matching_groups(got.metadata, box, window) if rows else []
        if groups:
            out.append(_Source(got, rows, groups, f"{store.url}/{info.key}", fragment=True))
    return out


def _filter_table(table: pa.Table, row_numbers: pa.Array, file_no: int, collection: str) -> pa.Table:
    """The filter columns of rows of one mirror file (``row_numbers``: their
    row numbers in the file), typed the same in every file."""
    n = table.num_rows
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "file_no": pa.array(np.full(n, file_no, dtype=np.int32), pa.int32()),
        "row_no": row_numbers,
        "collection": pa.array([collection] * n, pa.string()),
        "id": table.column("id").cast(pa.string()),
    }
    bbox = table.column("bbox")
    for name in ("xmin", "ymin", "xmax", "ymax"):
        cols[name] = pa.chunked_array([chunk.field(name) for chunk in bbox.chunks], pa.float64())
    for name in ("datetime", "start_datetime", "end_datetime"):
        if name in table.column_names and not pa.types.is_null(table.column(name).type):
            cols[name] = table.column(name).cast(_TIMESTAMP)
        else:
            cols[name] = pa.nulls(n, _TIMESTAMP)
    return pa.table(cols)


def _bbox_sql(bbox: tuple[float, float, float, float]) -> tuple[str, list[Any]]:
    west, south, east, north = bbox
    lat = "ymin <= ? AND ymax >= ?"
    params: list[Any] = [north, south]
    if west <= east:  # query box does not cross the antimeridian
        lon = "CASE WHEN xmin <= xmax THEN xmin <= ? AND xmax >= ? ELSE xmin <= ? OR xmax >= ? END"
        params += [east, west, east, west]
    else:  # it does: it meets every item that crosses too
        lon = "CASE WHEN xmin <= xmax THEN xmax >= ? OR xmin <= ? ELSE TRUE END"
        params += [west, east]
    return f"({lat}) AND ({lon})", params


def search(
    catalog: str | Store,
    *,
    bbox: str | Sequence[float] | None = None,
    datetime: DatetimeQuery | None = None,
    collections: str | Iterable[str] | None = None,
    ids: str | Iterable[str] | None = None,
    limit: int | None = None,
    storage_options: dict[str, Any] | None = None,
    intersects: Any = None,
) -> dict[str, Any]:
    """Items of ``catalog`` matching every filter given, as a STAC API
    ``/search``-like FeatureCollection (``numberMatched`` counts all matches,
    ``features`` holds at most ``limit``). Reads the root, the collection
    documents and the mirror files; writes nothing. Links in the features are
    absolute (resolved against the catalog URL), plus a ``self`` link.
    ``intersects``: see :func:`parse_intersects` (not with ``bbox``).
    Raises :class:`~producer.errors.InputError` for a bad filter, an unknown
    collection or a collection without a mirror."""
    box = parse_bbox(bbox)
    geometry = parse_intersects(intersects)
    if box is not None and geometry is not None:
        raise InputError("bbox and intersects were both given: give bbox or intersects, not both")
    window = parse_datetime(datetime)
    wanted_collections = _names(collections, "collections")
    wanted_ids = _names(ids, "ids")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral)):
        raise InputError(f"limit {limit!r} is not a whole number: give 0 or more, or leave it out")
    if limit is not None and limit < 0:
        raise InputError(f"limit {limit} is negative: give 0 or more, or leave it out")
    store = _open(catalog, storage_options)

    known = catalog_collections(store)
    if wanted_collections is not None:
        unknown = [c for c in wanted_collections if c not in known]
        if unknown:
            raise InputError(
                f"collection(s) {', '.join(unknown)} not in the catalog at {store.url}: "
                f"it has {', '.join(sorted(known)) or 'none'}"
            )
        chosen = {c: known[c] for c in wanted_collections}
    else:
        chosen = known

    # what rules out row groups by their statistics: the box, or the geometry's bounds
    near = box
    if geometry is not None:
        west, south, east, north = (float(v) for v in geometry.bounds)
        near = (west, south, east, north)
    files: list[_Source | _ItemsSource] = []
    where: list[tuple[str, str]] = []  # file_no -> (collection, mirror key)
    filters: list[pa.Table] = []
    with contextlib.ExitStack() as handles:
        for collection_id, collection_key in sorted(chosen.items()):
            keys, linked = _mirror_files(store, collection_key)
            for key in keys:
                if window is not None and _starts_after(collection_id, key, window[1]):
                    continue  # a partition's items all start in its period
                for source in _partition_sources(store, key, near, window, handles, linked=linked):
                    filters.append(source.filters(len(files), collection_id))
                    files.append(source)
                    where.append((collection_id, key))

        if geometry is not None:  # its bounds narrow the rows, its shape decides
            found = _query(filters, near, window, wanted_ids, inside=False)
            matches = _meeting_footprints(files, found, [geometry])
        elif box is not None:
            found = _query(filters, box, window, wanted_ids)
            matches = _meeting_footprints(files, found, _query_shapes(box))
        else:
            matches = [(f, r) for f, r, _ in _query(filters, None, window, wanted_ids)]
        total = len(matches)
        if limit is not None:
            matches = matches[:limit]
        features = _features(store, files, where, matches)
    return {
        "type": "FeatureCollection",
        "numberMatched": total,
        "numberReturned": len(features),
        "features": features,
        "links": [],
    }


def _query(
    filters: list[pa.Table],
    box: tuple[float, float, float, float] | None,
    window: tuple[Any, Any] | None,
    ids: list[str] | None,
    *,
    inside: bool = True,
) -> list[tuple[int, int, bool]]:
    """``(file_no, row_no, inside)`` of the rows whose bbox matches, in result
    order; ``inside``: the row's bbox lies within ``box`` (so does its
    footprint: it meets the box without looking at it); always False when
    ``inside`` is (``box`` only bounds the shape asked for)."""
    if not filters:
        return []
    rows = pa.concat_tables(filters)
    conditions, params = ["TRUE"], []
    if box is not None:
        sql, values = _bbox_sql(box)
        conditions.append(sql)
        params += values
    if window is not None:
        start, end = window
        if end is not None:
            conditions.append("COALESCE(start_datetime, datetime) <= ?")
            params.append(end)
        if start is not None:
            conditions.append("COALESCE(end_datetime, datetime) >= ?")
            params.append(start)
    if ids is not None:
        conditions.append("list_contains(?, id)")
        params.append(ids)
    within, within_params = _inside_sql(box) if box is not None and inside else ("FALSE", [])
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.register("items", rows)
        found = con.execute(
            f"SELECT file_no, row_no, COALESCE({within}, FALSE) FROM items WHERE "
            + " AND ".join(conditions)
            + " ORDER BY COALESCE(start_datetime, datetime) DESC NULLS LAST, collection, id",
            within_params + params,
        ).fetchall()
    finally:
        con.close()
    return [(int(f), int(r), bool(i)) for f, r, i in found]


def _inside_sql(bbox: tuple[float, float, float, float]) -> tuple[str, list[Any]]:
    """SQL true for a row whose bbox lies within ``bbox`` (either side of 180°)."""
    west, south, east, north = bbox
    lat = "ymin >= ? AND ymax <= ?"
    params: list[Any] = [south, north]
    if west <= east:  # an item crossing 180° is never within a box that does not
        lon = "xmin <= xmax AND xmin >= ? AND xmax <= ?"
        params += [west, east]
    else:  # within [west, 180], within [-180, east], or crossing with the box
        lon = "CASE WHEN xmin <= xmax THEN xmin >= ? OR xmax <= ? ELSE xmin >= ? AND xmax <= ? END"
        params += [west, east, west, east]
    return f"({lat} AND ({lon}))", params


def _query_shapes(bbox: tuple[float, float, float, float]) -> list[Any]:
    """The query box as shapely geometries, one per side of 180°: a point or
    a line where the box has no width or height (GEOS takes a box of no
    area for an empty polygon)."""
    west, south, east, north = bbox
    spans = [(west, east)] if west <= east else [(west, 180.0), (-180.0, east)]
    out = []
    for w, e in spans:
        if w == e and south == north:
            out.append(shapely.Point(w, south))
        elif w == e or south == north:
            out.append(shapely.LineString([(w, south), (e, north)]))
        else:
            out.append(shapely.box(w, south, e, north))
    return out


def _meeting_footprints(
    files: list[_Source | _ItemsSource],
    matches: list[tuple[int, int, bool]],
    shapes: list[Any],
) -> list[tuple[int, int]]:
    """``matches`` whose item geometry meets one of ``shapes`` (for a bbox,
    the STAC API meaning, pgSTAC's too), in order: a row whose bbox only
    overlaps may have a footprint that misses (a rotated or projected scene,
    a polar one). Only the geometries of rows not ``inside`` are read; a
    row without a geometry keeps its bbox's answer."""
    by_file: dict[int, list[int]] = {}
    for file_no, row_no, inside in matches:
        if not inside:
            by_file.setdefault(file_no, []).append(row_no)
    missed: set[tuple[int, int]] = set()
    for shape in shapes:
        shapely.prepare(shape)  # each is tested against many footprints
    for file_no, rows in by_file.items():
        footprints = files[file_no].footprints(rows)
        meets = np.zeros(len(rows), dtype=bool)
        for query in shapes:
            meets |= shapely.intersects(footprints, query)
        missed.update(
            (file_no, row)
            for row, footprint, hit in zip(rows, footprints, meets.tolist())
            if not hit and footprint is not None
        )
    return [(f, r) for f, r, _ in matches if (f, r) not in missed]


def _features(
    store: Store,
    files: list[_Source | _ItemsSource],
    where: list[tuple[str, str]],
    matches: list[tuple[int, int]],
) -> list[dict[str, Any]]:
    """The items of the matching rows, in match order (read per file)."""
    by_file: dict[int, list[int]] = {}
    for file_no, row_no in matches:
        by_file.setdefault(file_no, []).append(row_no)
    items: dict[tuple[int, int], dict[str, Any]] = {}
    for file_no, rows in by_file.items():
        for row_no, item in zip(rows, files[file_no].items(rows)):
            items[(file_no, row_no)] = _absolute_links(store, where[file_no][1], item)
    return [items[m] for m in matches]


def _absolute_links(store: Store, mirror_key: str, item: dict[str, Any]) -> dict[str, Any]:
    """Resolve the item's relative links against the catalog URL and add ``self``
    (the item's key follows from its mirror file: ``<folder>/<id>/<id>.json``)."""
    folder = mirror_key.rsplit("/", 1)[0]
    item_key = f"{folder}/{item['id']}/{item['id']}.json"
    links = []
    for link in item.get("links", []):
        key = resolve_href(item_key, str(link.get("href", "")))
        links.append(dict(link, href=f"{store.url}/{key}") if key is not None else link)
    if not any(link.get("rel") == "self" for link in links):
        links.append({"rel": "self", "href": f"{store.url}/{item_key}", "type": "application/geo+json"})
    item["links"] = links
    return item


def _open(catalog: str | Store, storage_options: dict[str, Any] | None) -> Store:
    catalog = catalog_argument(catalog)
    if not isinstance(catalog, str):
        if storage_options:
            raise InputError(
                "storage_options were given with an open store: open the store with them instead"
            )
        return catalog
    is_remote = "://" in catalog and not catalog.startswith("file://")
    return open_store(catalog, storage_options if is_remote else None)
