"""A stac-geoparquet mirror of each collection, kept current by compare-and-swap.

The static catalog is the source of truth; the mirror is derived from it and
may lag, never lead. One parquet file per folder that directly links items::

    <collection>/items.parquet                    flat layout
    <collection>/<YYYY>/items.parquet             partition="year"
    <collection>/<YYYY>/<MM>/items.parquet        partition="year/month"

i.e. beside the document that links the item (``collection.json`` or the
partition ``catalog.json``), so rewriting a mirror file costs the size of one
partition, never of the collection. Files are written with the
stac-geoparquet library from the committed item dicts and stored through the
:class:`~producer.store.base.Store` (local, S3, any fsspec backend).

Writers: :class:`MirrorSink` (a :class:`~producer.changes.Sink`) reads each
affected file with its version, upserts/deletes rows by item id and writes it
back with ``put(if_version=...)`` (``create_only`` for a new file); on
:class:`~producer.errors.PreconditionFailed` it re-reads and re-applies. See
``docs/mirror.md`` for why compare-and-swap rather than per-writer fragments.

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
  file (a number in one item, a string or an object in another): stored as
  JSON text; their names are recorded in the file's metadata
  (``stac_producer:json_properties``) and parsed back.
* Arrow gives every item every field of the file (``null`` where absent), and
  timestamps come back as ``...T00:00:00.000000Z``: on read, ``null`` members
  are dropped (``datetime`` stays, as STAC requires) and ``.000000`` trimmed.
"""

from __future__ import annotations

import json
import math
import posixpath
import random
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producer.catalog.documents import CHILD_RELS
from producer.catalog.layout import resolve_href
from producer.changes import Change, ChangeKind
from producer.errors import CatalogError, ConflictError, NotFound, PreconditionFailed, ProducerError
from producer.store.base import Store

try:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import shapely
    import stac_geoparquet.arrow as sga
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the stac-geoparquet mirror needs {_exc.name}: install stac-producer[mirror]"
    ) from _exc

_StacArrowBatch: Any
try:  # the library's column-to-JSON step; without it, its public row loop
    from stac_geoparquet.arrow._batch import StacArrowBatch as _StacArrowBatch
except ImportError:  # pragma: no cover - another stac-geoparquet version
    _StacArrowBatch = None


#: file name of a mirror file, in the folder of the document linking its items
MIRROR_NAME = "items.parquet"
MIRROR_MEDIA_TYPE = "application/vnd.apache.parquet"
MIRROR_ROLE = "collection-mirror"
#: parquet metadata key listing the properties stored as JSON text
JSON_PROPERTIES_KEY = b"stac_producer:json_properties"
#: keys whose object values are always stored as JSON text (PROJJSON mixes types)
JSON_TEXT_KEYS = frozenset({"proj:projjson"})
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


# --- where mirror files live -----------------------------------------------------


def mirror_key(item_key: str) -> str:
    """Key of the mirror file holding the item stored at ``item_key``.

    >>> mirror_key("c/2024/03/x/x.json")
    'c/2024/03/items.parquet'
    >>> mirror_key("c/x/x.json")
    'c/items.parquet'
    """
    folder = posixpath.dirname(posixpath.dirname(item_key))
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
    collection_key = f"{collection_id}/collection.json"
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(mirror_keys)):
        if not key.startswith(f"{collection_id}/"):
            raise ValueError(f"mirror file {key!r} is not inside collection {collection_id!r}")
        folder = posixpath.dirname(key)[len(collection_id) + 1 :]
        out[mirror_asset_key(collection_id, key)] = {
            "href": "./" + posixpath.relpath(key, posixpath.dirname(collection_key)),
            "type": MIRROR_MEDIA_TYPE,
            "title": f"stac-geoparquet mirror of {'the items of ' + folder if folder else 'the items'}",
            "roles": [MIRROR_ROLE],
        }
    return out


def linked_mirror_keys(collection_key: str, collection: dict[str, Any]) -> list[str]:
    """Keys of the mirror files a collection document links as assets."""
    keys = []
    for asset in (collection.get("assets") or {}).values():
        if isinstance(asset, dict) and MIRROR_ROLE in (asset.get("roles") or []):
            key = resolve_href(collection_key, str(asset.get("href", "")))
            if key is not None:
                keys.append(key)
    return keys


# --- encoding items for stac-geoparquet and back ---------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _json_properties(items: Sequence[dict[str, Any]]) -> list[str]:
    """Property names whose non-null values differ in JSON kind across ``items``."""
    kinds: dict[str, set[str]] = {}
    for item in items:
        for name, value in (item.get("properties") or {}).items():
            if value is not None:
                kinds.setdefault(name, set()).add(_kind(value))
    return sorted(name for name, found in kinds.items() if len(found) > 1)


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
    return value


def to_mirror_item(item: dict[str, Any], json_properties: Iterable[str] = ()) -> dict[str, Any]:
    """The dict stac-geoparquet is given for ``item`` (a new dict; ``item`` is untouched)."""
    out = _encode(item)
    props = out.get("properties") or {}
    for name in json_properties:
        if props.get(name) is not None and not (name in JSON_TEXT_KEYS and isinstance(props[name], str)):
            props[name] = json.dumps(props[name], separators=(",", ":"))
    return out


def _decode(value: Any, key: str | None = None) -> Any:
    if key == "geometry":
        return value
    if isinstance(value, dict):
        return {k: _decode(v, k) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if any(isinstance(v, dict | list) or (isinstance(v, float) and not math.isfinite(v)) for v in value):
            return [_decode(v) for v in value]
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if key in JSON_TEXT_KEYS and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, str) and value.endswith(".000000Z"):
        return _ZERO_FRACTION.sub(r"\1Z", value)
    return value


def from_mirror_item(row: dict[str, Any], json_properties: Iterable[str] = ()) -> dict[str, Any]:
    """The STAC item of a row read back with stac-geoparquet (undoes :func:`to_mirror_item`)."""
    item = _decode(row)
    props = item.setdefault("properties", {})
    for name in json_properties:
        if isinstance(props.get(name), str):
            props[name] = json.loads(props[name])
    props.setdefault("datetime", None)
    return item


def _items_table(items: Sequence[dict[str, Any]], json_properties: Sequence[str], where: str) -> pa.Table:
    """stac-geoparquet's Arrow table of ``items`` (at least one)."""
    rows = [to_mirror_item(item, json_properties) for item in items]
    try:
        return sga.parse_stac_items_to_arrow(rows).read_all()
    except (ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's errors subclass these
        ids = ", ".join(str(i.get("id")) for i in items[:5])
        raise MirrorError(
            f"items ({ids}{', ...' if len(items) > 5 else ''}) could not be converted to "
            f"stac-geoparquet for {where}: {exc}; the JSON items are unaffected: report this "
            "with one of the items"
        ) from exc


def _table_bytes(table: pa.Table, json_properties: Sequence[str]) -> bytes:
    """The parquet bytes of a mirror table (GeoParquet and stac-geoparquet
    metadata from the library, plus ours). Writes only a temporary file."""
    with tempfile.TemporaryDirectory(prefix="stac-mirror-") as tmp:
        path = Path(tmp) / MIRROR_NAME
        sga.to_parquet(table, path)
        if json_properties:  # to_parquet writes its own schema metadata: add ours
            written = pq.read_table(path)
            meta = dict(written.schema.metadata or {})
            meta[JSON_PROPERTIES_KEY] = json.dumps(list(json_properties)).encode()
            pq.write_table(written.replace_schema_metadata(meta), path)
        return path.read_bytes()


def encode_items(items: Sequence[dict[str, Any]], where: str) -> bytes:
    """A stac-geoparquet file (bytes) holding ``items`` (at least one). ``where``
    names the file in errors. Writes only a temporary file."""
    json_properties = _json_properties(items)
    return _table_bytes(_items_table(items, json_properties, where), json_properties)


def read_table(data: bytes, where: str) -> pa.Table:
    """The Arrow table of a mirror file's bytes (MirrorError if unreadable)."""
    try:
        return pq.read_table(pa.BufferReader(data))
    except (OSError, ValueError) as exc:
        raise MirrorError(f"mirror file {where} is not readable parquet ({exc}): rebuild the mirror") from exc


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
    ``to_pylist`` and the geometries by GEOS in one vectorised call, instead
    of the library's row-by-row loop (several times slower for hundreds of
    densified footprints)."""
    json_properties = _file_json_properties(table)
    if _StacArrowBatch is None:  # pragma: no cover
        return [from_mirror_item(row, json_properties) for row in sga.stac_table_to_items(table)]
    items: list[dict[str, Any]] = []
    for batch in table.to_batches():
        if not batch.num_rows:
            continue
        shapes = shapely.from_wkb(batch.column("geometry").to_pylist())
        geometries = [None if text is None else json.loads(text) for text in shapely.to_geojson(shapes)]
        rows = _StacArrowBatch(batch.drop_columns(["geometry"])).to_json_batch().inner.to_pylist()
        for row, geometry in zip(rows, geometries):
            row["geometry"] = geometry
            if not row.get("assets"):
                row["assets"] = {}
            items.append(from_mirror_item(row, json_properties))
    return items


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


# --- reading and writing one mirror file -----------------------------------------------


def read_mirror(store: Store, key: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``({item id: item}, version)`` of mirror file ``key``; ``({}, None)`` if absent."""
    try:
        data, version = store.get(key)
    except NotFound:
        return {}, None
    return {item["id"]: item for item in decode_items(data, f"{store.url}/{key}")}, version


def _write(store: Store, key: str, rows: dict[str, dict[str, Any]], version: str | None) -> None:
    """Write ``rows`` at ``key`` if it is still at ``version`` (None: if absent);
    delete the file when no rows are left. Raises PreconditionFailed."""
    if rows:
        data = encode_items(list(rows.values()), f"{store.url}/{key}")
        if version is None:
            store.put(key, data, create_only=True)
        else:
            store.put(key, data, if_version=version)
    elif version is not None:
        try:
            store.delete(key, if_version=version)
        except NotFound:
            pass


def merge_rows(
    data: bytes | None,
    upserts: Mapping[str, dict[str, Any]],
    removals: Iterable[str],
    where: str,
) -> bytes | None:
    """The new bytes of a mirror file (``data``, None if absent) after
    upserting ``upserts`` (``{id: item}``) and dropping ``removals``; ``b""``
    when no row is left, None when nothing changes (an upsert equal to its row
    after :func:`canonical` is no change). Pure.

    Works on Arrow: only the changed rows are converted to and from dicts,
    the others are carried over as they are (a schema conflict between old and
    new rows falls back to re-encoding the whole file from dicts)."""
    if data is None:
        return encode_items(list(upserts.values()), where) if upserts else None
    table = read_table(data, where)
    present = set(table.column("id").to_pylist())
    gone = [i for i in removals if i in present and i not in upserts]
    touched = [i for i in upserts if i in present]
    current = {}
    if touched:
        rows = table.filter(pc.is_in(table.column("id"), value_set=pa.array(touched, pa.string())))
        current = {item["id"]: item for item in table_items(rows)}
    changed = {
        i: it for i, it in upserts.items() if i not in current or canonical(current[i]) != canonical(it)
    }
    if not changed and not gone:
        return None
    drop = pa.array([*changed, *gone], pa.string())
    keep = table.filter(pc.invert(pc.is_in(table.column("id"), value_set=drop)))
    if not changed:
        return _table_bytes(keep, _file_json_properties(table)) if keep.num_rows else b""
    json_properties = _file_json_properties(table)
    if set(_json_properties(list(changed.values()))) <= set(json_properties):
        new = _items_table(list(changed.values()), json_properties, where)
        try:
            merged = pa.concat_tables([keep, new], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass  # e.g. a property that was a number is now a string: re-encode all
        else:
            return _table_bytes(merged, json_properties)
    items = {item["id"]: item for item in table_items(keep)}
    items.update(changed)
    return encode_items(list(items.values()), where)


def update_mirror(
    store: Store,
    key: str,
    upserts: Mapping[str, dict[str, Any]],
    removals: Iterable[str] = (),
    *,
    max_retries: int = 25,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Compare-and-swap on mirror file ``key``: read it with its version,
    upsert/drop rows (:func:`merge_rows`), write back only if nobody wrote in
    between (``create_only`` for a new file; an emptied file is deleted);
    else re-read and retry with jittered backoff, at most ``max_retries``
    times (then ConflictError). Returns True if the file was written."""
    removals = list(removals)
    where = f"{store.url}/{key}"
    for attempt in range(max_retries + 1):
        try:
            data, version = store.get(key)
        except NotFound:
            data, version = None, None
        new = merge_rows(data, upserts, removals, where)
        if new is None:
            return False
        try:
            if new == b"":
                assert version is not None
                store.delete(key, if_version=version)
            elif version is None:
                store.put(key, new, create_only=True)
            else:
                store.put(key, new, if_version=version)
            return True
        except NotFound:
            continue  # deleted meanwhile: start again from nothing
        except PreconditionFailed:
            if attempt == max_retries:
                break
            sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
    raise ConflictError(
        f"mirror file {where} kept changing under {max_retries} retries; "
        "try again (or rebuild the mirror) when writers are quieter"
    )


# --- the sink ----------------------------------------------------------------------


@dataclass
class MirrorSink:
    """Keeps the mirror files of a catalog in line with committed changes.

    ``apply`` groups the changes by mirror file (the folder of each item's
    key) and updates each file by compare-and-swap: only the files of the
    partitions the changes touch are read and written. An item that moved
    partition must come as REMOVED (old key) + CREATED (new key).
    """

    store: Store
    max_retries: int = 25
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def apply(self, collection: dict[str, Any], changes: Sequence[Change]) -> None:
        """Upsert created/updated items and drop removed ones in their mirror
        files (writes each affected file once per successful attempt)."""
        by_file: dict[str, list[Change]] = {}
        for change in changes:
            by_file.setdefault(mirror_key(change.key), []).append(change)
        for key, group in by_file.items():
            upserts: dict[str, dict[str, Any]] = {}
            removals: list[str] = []
            for c in group:  # in commit order: the last change of an id wins
                if c.kind is ChangeKind.REMOVED:
                    upserts.pop(c.item_id, None)
                    removals.append(c.item_id)
                else:
                    upserts[c.item_id] = c.item
            update_mirror(self.store, key, upserts, removals, max_retries=self.max_retries, sleep=self.sleep)

    def touched(self, changes: Sequence[Change]) -> list[str]:
        """Mirror files ``apply`` writes for ``changes`` (for the collection's assets)."""
        return sorted({mirror_key(c.key) for c in changes})


# --- whole-collection operations (reconcile) --------------------------------------------


def walk_collection(store: Store, collection_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(key, document)`` for the collection and every catalog and item
    linked below it (child/item links), breadth first."""
    start = f"{collection_id}/collection.json"
    queue, seen = deque([start]), {start}
    while queue:
        key = queue.popleft()
        try:
            data, _ = store.get(key)
        except NotFound:
            if key == start:
                raise
            continue
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise CatalogError(f"{store.url}/{key} is not JSON ({exc}): repair it with reconcile") from exc
        yield key, doc
        if doc.get("type") == "Feature":
            continue
        for link in doc.get("links", []):
            if isinstance(link, dict) and link.get("rel") in CHILD_RELS:
                target = resolve_href(key, str(link.get("href", "")))
                if target is not None and target not in seen:
                    seen.add(target)
                    queue.append(target)


@dataclass
class MirrorState:
    """The JSON tree and the mirror of one collection, side by side."""

    #: item id -> (key, item) in the JSON tree
    tree: dict[str, tuple[str, dict[str, Any]]]
    #: mirror file key -> {item id: item} (every file that exists or should)
    files: dict[str, dict[str, dict[str, Any]]]
    #: mirror file key -> version (None: absent)
    versions: dict[str, str | None]


def _state(store: Store, collection_id: str) -> MirrorState:
    tree: dict[str, tuple[str, dict[str, Any]]] = {}
    candidates: set[str] = set()
    for key, doc in walk_collection(store, collection_id):
        if doc.get("type") == "Feature":
            tree[str(doc.get("id"))] = (key, doc)
            candidates.add(mirror_key(key))
        else:
            candidates.add(posixpath.join(posixpath.dirname(key), MIRROR_NAME))
            if doc.get("type") == "Collection":
                candidates.update(linked_mirror_keys(key, doc))
    files, versions = {}, {}
    for key in sorted(candidates):
        files[key], versions[key] = read_mirror(store, key)
    return MirrorState(tree, files, versions)


@dataclass
class MirrorDiff:
    """What differs between a collection's mirror and its JSON tree (ids sorted)."""

    #: in the JSON tree, in no mirror file (or in another partition's file only)
    missing: list[str] = field(default_factory=list)
    #: in a mirror file, not in the JSON tree (or in the wrong partition's file)
    extra: list[str] = field(default_factory=list)
    #: in both, with different content
    differing: list[str] = field(default_factory=list)
    #: mirror files that must be rewritten (or deleted) to remove the differences
    stale_files: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.differing)


def diff(store: Store, collection_id: str) -> MirrorDiff:
    """Compare the mirror of ``collection_id`` with its JSON items (walks the
    tree: O(items) reads). Reads only."""
    return _diff(_state(store, collection_id))


def _diff(state: MirrorState) -> MirrorDiff:
    out = MirrorDiff()
    stale: set[str] = set()
    for item_id, (key, item) in state.tree.items():
        row = state.files.get(mirror_key(key), {}).get(item_id)
        if row is None:
            out.missing.append(item_id)
            stale.add(mirror_key(key))
        elif canonical(row) != canonical(item):
            out.differing.append(item_id)
            stale.add(mirror_key(key))
    for file_key, rows in state.files.items():
        for item_id in rows:
            entry = state.tree.get(item_id)
            if entry is None or mirror_key(entry[0]) != file_key:
                out.extra.append(item_id)
                stale.add(file_key)
    out.missing.sort()
    out.extra.sort()
    out.differing.sort()
    out.stale_files = sorted(stale)
    return out


def rebuild(store: Store, collection_id: str, *, only_stale: bool = True, max_retries: int = 5) -> list[str]:
    """Rewrite the mirror files of ``collection_id`` from its JSON items and
    return the keys written or deleted. ``only_stale``: only the files
    :func:`diff` finds different. Each write is conditional on the version of
    the file read after the walk; when a writer changed the file meanwhile the
    tree is walked again and the file rebuilt from it (ConflictError after
    ``max_retries``). A register that commits after the walk and applies its
    change before the rebuild's write is overwritten only if its item is not
    in the tree yet, which the next diff reports."""
    state = _state(store, collection_id)
    targets = _diff(state).stale_files if only_stale else sorted(state.files)
    done = []
    for key in targets:
        for attempt in range(max_retries + 1):
            rows = {i: item for i, (k, item) in state.tree.items() if mirror_key(k) == key}
            try:
                _write(store, key, rows, state.versions.get(key))
                break
            except (PreconditionFailed, NotFound):
                if attempt == max_retries:
                    raise ConflictError(
                        f"mirror file {store.url}/{key} kept changing while it was rebuilt; "
                        "run again when writers are quieter"
                    ) from None
                state = _state(store, collection_id)
        done.append(key)
    return done
