"""The stac-geoparquet mirror: real rasters registered into real catalogs
(local and S3 through moto), mirrored with ``rebuild`` / ``MirrorSink.apply``,
read back with stac-geoparquet and compared with the JSON items."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
from rasterio.transform import from_origin

from producer import ingest, mirror
from producer.changes import Change, ChangeKind
from producer.errors import PreconditionFailed, StoreError
from producer.mirror import MirrorSink, canonical, diff, mirror_assets, read_mirror, rebuild
from producer.options import resolve_options
from producer.query import search
from producer.store import CountingStore, open_store
from producer.store.base import Store
from tests import rasters
from tests.crashes import CrashingStore, SimulatedKill
from tests.pausing import PauseAfterGet

TOWGS84_CRS = "+proj=utm +zone=33 +ellps=intl +towgs84=-87,-98,-121,0,0,0,0 +units=m +no_defs"


def write_towgs84(folder: Path) -> Path:
    """``towgs84_20240315.tif``: a UTM grid on the International ellipsoid with a
    TOWGS84 shift, whose CRS is a BoundCRS in PROJJSON."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "towgs84_20240315.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs=TOWGS84_CRS,
        transform=from_origin(500_000, 5_000_000, 10, 10),
    ) as dst:
        dst.write(np.arange(64, dtype="uint8").reshape(1, 8, 8))
    return path


def json_items(store: Store, collection: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{id: (key, item)}`` of every item document linked in the collection."""
    return {
        doc["id"]: (key, doc)
        for key, doc in mirror.walk_collection(store, collection)
        if doc.get("type") == "Feature"
    }


def created(store: Store, collection: str, ids: list[str] | None = None) -> list[Change]:
    """CREATED changes for the committed items (all, or ``ids``)."""
    items = json_items(store, collection)
    return [
        Change(ChangeKind.CREATED, collection, item_id, key, item)
        for item_id, (key, item) in sorted(items.items())
        if ids is None or item_id in ids
    ]


def read_bytes_table(store: Store, key: str) -> pa.Table:
    """The Arrow table of the parquet file at ``key``."""
    return pq.read_table(pa.BufferReader(store.get(key)[0]))


def tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.json"))
    }


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mirror-rasters")
    out = {
        key: writer(folder)
        for key, writer in rasters.WRITERS.items()
        if key in ("utm", "wgs84", "dateline", "nodata", "nan_nodata", "range", "custom_crs", "netcdf")
    }
    out["towgs84"] = write_towgs84(folder)
    return out


def register(products: dict[str, Path], catalog: str | Path, partition: str | None, **kw: Any) -> Store:
    """Register ``products`` into the JSON tree only, without the mirror sink
    ``producer.register`` always hands its batches to (as a catalog written
    before the mirror existed): the tests here write the mirror themselves."""
    store = open_store(str(catalog), kw.get("storage_options"))
    kw = dict(kw)
    results = ingest.register_products(
        [str(p) for p in products.values()],
        catalog=store,
        collection="c",
        options=resolve_options(None, kw.pop("storage_options", None), partition=partition, **kw),
        sinks=(),
    )
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    return store


@pytest.fixture(scope="module")
def partitioned(products, tmp_path_factory) -> tuple[Store, Path]:
    root = tmp_path_factory.mktemp("partitioned") / "catalog"
    return register(products, root, "year/month"), root


# --- layout and conversion ---------------------------------------------------------------


def test_rebuild_writes_one_file_per_partition_beside_its_catalog(partitioned):
    store, root = partitioned
    before = tree_hash(root)
    written = rebuild(store, "c")
    items = json_items(store, "c")
    expected = {mirror.mirror_key(key) for key, _ in items.values()}
    assert set(written) == expected
    assert all(
        k.count("/") == 3 and k.endswith("/items.parquet") for k in expected
    )  # c/YYYY/MM/items.parquet
    for key in expected:
        assert (root / key).with_name("catalog.json").exists()
        rows, version = read_mirror(store, key)
        assert version is not None
        assert {i: canonical(it) for i, it in rows.items()} == {
            i: canonical(it) for i, (k, it) in items.items() if mirror.mirror_key(k) == key
        }
    assert tree_hash(root) == before  # the JSON items are never changed
    assert diff(store, "c").clean
    assert rebuild(store, "c") == []  # nothing stale: nothing written


def test_flat_collection_has_one_mirror_file(products, tmp_path):
    store = register({k: products[k] for k in ("utm", "range", "dateline")}, tmp_path / "catalog", None)
    assert rebuild(store, "c") == ["c/items.parquet"]
    rows, _ = read_mirror(store, "c/items.parquet")
    assert sorted(rows) == sorted(json_items(store, "c"))


def test_mirror_file_rows_go_in_compact_row_groups_that_plain_readers_still_read(products, tmp_path):
    """Base files hold the rows along a space-filling curve in row groups of
    ROW_GROUP_ROWS with bbox statistics (so readers skip groups), and stay
    plain stac-geoparquet: DuckDB's read_parquet and the library read every row."""
    import duckdb
    import stac_geoparquet.arrow as sga

    store = register({"wgs84": products["wgs84"]}, tmp_path / "catalog", None)
    (template,) = [item for _, item in json_items(store, "c").values()]
    rng = np.random.default_rng(5)
    items = []
    for n in range(3 * mirror.ROW_GROUP_ROWS + 5):  # 1° footprints anywhere, in no order
        item = json.loads(json.dumps(template))
        item["id"] = f"cell_{n:03d}"
        w, s = float(rng.uniform(-179, 178)), float(rng.uniform(-89, 88))
        item["bbox"] = [w, s, w + 1, s + 1]
        item["geometry"] = {
            "type": "Polygon",
            "coordinates": [[[w, s], [w + 1, s], [w + 1, s + 1], [w, s + 1], [w, s]]],
        }
        items.append(item)
    path = tmp_path / "items.parquet"
    path.write_bytes(mirror.encode_items(items, "test"))

    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 4
    assert [metadata.row_group(g).num_rows for g in range(4)] == [64, 64, 64, 5]
    columns = pq.ParquetFile(path).schema.names  # leaf names, in column order
    areas = []
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        stats = {
            group.column(c).path_in_schema: group.column(c).statistics
            for c in range(len(columns))
            if group.column(c).path_in_schema in ("bbox.xmin", "bbox.xmax", "bbox.ymin", "bbox.ymax")
        }
        assert all(s is not None and s.has_min_max for s in stats.values()), g
        width = stats["bbox.xmax"].max - stats["bbox.xmin"].min
        areas.append(width * (stats["bbox.ymax"].max - stats["bbox.ymin"].min))
    # 64 footprints taken in input order would span nearly the whole world;
    # along the curve each group covers a block of it
    assert max(areas[:3]) < 0.6 * 360 * 180, areas

    relation = duckdb.sql(f"SELECT id, bbox.xmin AS x FROM read_parquet('{path}') ORDER BY id")
    assert relation is not None
    rows = relation.fetchall()
    assert [r[0] for r in rows] == [i["id"] for i in items]
    back = {i["id"]: i for i in sga.stac_table_to_items(pq.read_table(path))}
    assert sorted(back) == [i["id"] for i in items]
    decoded = {i["id"]: i for i in mirror.decode_items(path.read_bytes(), "test")}
    assert {k: canonical(v) for k, v in decoded.items()} == {i["id"]: canonical(i) for i in items}


def test_nan_nodata_beside_numeric_nodata_converts_and_reads_back(products, tmp_path):
    """stac-geoparquet (Arrow) rejects "nan" beside numbers in one field."""
    store = register({k: products[k] for k in ("nodata", "nan_nodata")}, tmp_path / "catalog", None)
    MirrorSink(store).apply({}, created(store, "c"))
    (fragment,) = mirror.list_fragments(store, "c/items.parquet")
    # the fragment is NDJSON (the committed items as they are); readers convert it to Arrow
    ((_, fragment_table),) = mirror.read_partition(store, "c/items.parquet").fragments
    assert mirror.compact(store, "c/items.parquet")
    rows, _ = read_mirror(store, "c/items.parquet")
    nodata = {i: it["assets"]["data"]["bands"][0]["nodata"] for i, it in rows.items()}
    assert nodata == {"nan_nodata_20240902": "nan", "nodata_20240901": rasters.NODATA_VALUE}
    # the fragment as read and the compacted base hold the float NaN, so other readers see a number column
    for table in (pq.read_table(tmp_path / "catalog" / "c" / "items.parquet"), fragment_table):
        band_type = table.schema.field("assets").type.field("data").type.field("bands").type.value_type
        assert band_type.field("nodata").type == pa.float64()


def test_64_bit_nodata_beyond_doubles_converts_and_reads_back(products, tmp_path):
    """A uint64 band's nodata 2**64 - 1 is a JSON integer Arrow cannot hold as
    int64 ("Python int too large to convert to C long"), an int64 band's -2**63
    one it refuses to widen to a double beside the float NaN of another item's
    nodata ("outside the range exactly representable"): the compaction failed,
    and the mirror never caught up with the catalog again."""
    import stac_geoparquet.arrow as sga

    uint64 = rasters.write_64bit_nodata(tmp_path / "data", "uint64", 2**64 - 1)
    int64 = rasters.write_64bit_nodata(tmp_path / "data", "int64", -(2**63))
    given = {"uint64": uint64, "int64": int64, "nodata": products["nodata"], "nan": products["nan_nodata"]}
    store = register(given, tmp_path / "catalog", None)
    MirrorSink(store).apply({}, created(store, "c"))
    assert mirror.compact(store, "c/items.parquet")
    rows, _ = read_mirror(store, "c/items.parquet")
    nodata = {i: it["assets"]["data"]["bands"][0]["nodata"] for i, it in rows.items()}
    assert nodata == {
        "uint64_nodata_20240101": float(2**64 - 1),
        "int64_nodata_20240101": float(-(2**63)),
        "nodata_20240901": rasters.NODATA_VALUE,
        "nan_nodata_20240902": "nan",
    }
    back = {
        i["id"] for i in sga.stac_table_to_items(pq.read_table(tmp_path / "catalog" / "c" / "items.parquet"))
    }
    assert back == set(nodata)
    assert diff(store, "c").clean


def test_boundcrs_projjson_converts(products, tmp_path):
    """A BoundCRS (TOWGS84) PROJJSON mixes string and object units in one list.

    Items no longer carry one (they describe the source CRS: see
    tests/test_consumers_proj.py), but items written before do: the mirror
    still converts them."""
    store = register({k: products[k] for k in ("towgs84", "utm", "custom_crs")}, tmp_path / "catalog", None)
    with rasterio.open(products["towgs84"]) as src:
        bound = src.crs.to_dict(projjson=True)
    assert bound["type"] == "BoundCRS"
    old = [
        Change(c.kind, c.collection, c.item_id, c.key, json.loads(json.dumps(c.item)))
        for c in created(store, "c")
    ]
    next(c for c in old if c.item_id == "towgs84_20240315").item["properties"]["proj:projjson"] = bound
    MirrorSink(store).apply({}, old)
    rows, _ = read_mirror(store, "c/items.parquet")
    assert rows["towgs84_20240315"]["properties"]["proj:projjson"] == bound
    for change in old:
        assert canonical(rows[change.item_id]) == canonical(change.item)


def test_heterogeneous_properties_convert(products, tmp_path):
    """Properties present in some items only, and one whose kind differs per item."""
    store = register({k: products[k] for k in ("utm", "wgs84", "netcdf")}, tmp_path / "catalog", None)
    changes = created(store, "c")
    odd = [Change(c.kind, c.collection, c.item_id, c.key, json.loads(json.dumps(c.item))) for c in changes]
    odd[0].item["properties"]["platform"] = "sentinel-2a"
    odd[0].item["properties"]["quality"] = 3
    odd[1].item["properties"]["quality"] = {"cloud": 0.1, "flags": ["ok"]}
    odd[2].item["properties"]["quality"] = "good"
    MirrorSink(store).apply({}, odd)
    rows, _ = read_mirror(store, "c/items.parquet")
    for change in odd:
        assert canonical(rows[change.item_id]) == canonical(change.item)
    assert rows[odd[1].item_id]["properties"]["quality"] == {"cloud": 0.1, "flags": ["ok"]}
    assert "platform" not in rows[odd[1].item_id]["properties"]


def test_property_changing_kind_in_an_existing_file_converts(products, tmp_path):
    """The Arrow fast path (carry old rows over) cannot merge a number column
    with an object: the file is re-encoded with the property as JSON text."""
    store = register({k: products[k] for k in ("utm", "wgs84")}, tmp_path / "catalog", None)
    changes = [
        Change(c.kind, c.collection, c.item_id, c.key, json.loads(json.dumps(c.item)))
        for c in created(store, "c")
    ]
    for n, change in enumerate(changes):
        change.item["properties"]["quality"] = n + 1
    MirrorSink(store).apply({}, changes)
    assert mirror.compact(store, "c/items.parquet")
    changes[0].item["properties"]["quality"] = {"cloud": 0.5}
    MirrorSink(store).apply(
        {}, [Change(ChangeKind.UPDATED, "c", changes[0].item_id, changes[0].key, changes[0].item)]
    )
    rows, _ = read_mirror(store, "c/items.parquet")
    assert [rows[c.item_id]["properties"]["quality"] for c in changes] == [{"cloud": 0.5}, 2]
    assert mirror.compact(store, "c/items.parquet")  # base (number) + fragment (object) fold
    rows, _ = read_mirror(store, "c/items.parquet")
    assert [rows[c.item_id]["properties"]["quality"] for c in changes] == [{"cloud": 0.5}, 2]
    assert mirror.list_fragments(store, "c/items.parquet") == []


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("my:quality", {"flag": 0}, {"flag": "bad"}),  # an object field: a number, then text
        ("my:tags", [1, "a"], None),  # a list mixing numbers and text
        ("my:id", 2**64 - 1, None),  # an integer beyond int64
        ("my:big", [2**63], [1]),  # one beyond int64 inside a list
        ("my:empty", {}, {"a": 1}),  # an empty object: parquet has no struct without fields
        ("published", "2024-01-01", "2024-01-01T00:00:00Z"),  # not a date-time, then one
        ("expires", 5, None),  # a timestamp property holding a number
        ("unpublished", "2024-01-01t00:00:00z", None),  # RFC 3339, but pyarrow refuses lower case
        # nested deeper than Parquet's schema limit (100 levels, a list takes 3): the
        # compacted file was unreadable, search failed for the whole collection
        ("my:deep", functools.reduce(lambda v, _: [v], range(60), [1]), None),
        ("my:deep_objects", functools.reduce(lambda v, _: {"a": v}, range(120), 1), None),
    ],
)
def test_property_values_arrow_cannot_type_round_trip_through_every_mirror_operation(
    products, tmp_path, name, first, second
):
    """Values a valid item can hold whose Arrow column has no one type (at
    any depth), or a timestamp property that is not a timestamp: stored as
    JSON text, so compaction, rebuild, read_mirror and search give them back
    as given, and nothing crashes."""
    catalog = tmp_path / "catalog"
    store = register({k: products[k] for k in ("utm", "wgs84")}, catalog, None)
    changes = [
        Change(c.kind, c.collection, c.item_id, c.key, json.loads(json.dumps(c.item)))
        for c in created(store, "c")
    ]
    for change, value in zip(changes, (first, second)):
        if value is not None:
            change.item["properties"][name] = value
        store.put(change.key, json.dumps(change.item).encode())  # the JSON items rebuild reads
    expected = {c.item_id: c.item["properties"].get(name) for c in changes}

    def found() -> dict[str, Any]:
        rows, _ = read_mirror(store, "c/items.parquet")
        assert {i: r["properties"].get(name) for i, r in rows.items()} == expected
        for change in changes:
            assert canonical(rows[change.item_id]) == canonical(change.item)
        return {f["id"]: f["properties"].get(name) for f in search(str(catalog))["features"]}

    for change in changes:  # one fragment each: the first compaction merges them
        MirrorSink(store).apply({}, [change])
    assert found() == expected
    assert mirror.compact(store, "c/items.parquet")
    assert mirror.list_fragments(store, "c/items.parquet") == []
    assert found() == expected
    rebuild(store, "c", only_stale=False)
    assert found() == expected
    assert diff(store, "c").clean


# --- the sink -----------------------------------------------------------------------


def test_sink_upserts_and_removes_rows_and_keeps_an_emptied_file_empty(products, tmp_path):
    store = register({k: products[k] for k in ("utm", "wgs84")}, tmp_path / "catalog", None)
    sink = MirrorSink(store)
    sink.apply({}, created(store, "c", ["utm_20240513"]))
    sink.apply({}, created(store, "c", ["wgs84_20240301"]))
    rows, _ = read_mirror(store, "c/items.parquet")
    assert sorted(rows) == ["utm_20240513", "wgs84_20240301"]

    (change,) = created(store, "c", ["utm_20240513"])
    item = json.loads(json.dumps(change.item))
    item["properties"]["title"] = "updated title"
    sink.apply({}, [Change(ChangeKind.UPDATED, "c", change.item_id, change.key, item)])
    rows, _ = read_mirror(store, "c/items.parquet")
    assert rows["utm_20240513"]["properties"]["title"] == "updated title"
    assert mirror.compact(store, "c/items.parquet")
    rows, _ = read_mirror(store, "c/items.parquet")
    assert rows["utm_20240513"]["properties"]["title"] == "updated title"

    for c in created(store, "c"):
        sink.apply({}, [Change(ChangeKind.REMOVED, "c", c.item_id, c.key, c.item)])
    assert read_mirror(store, "c/items.parquet")[0] == {}  # the tombstones hide the base rows
    assert store.exists("c/items.parquet")
    assert mirror.compact(store, "c/items.parquet")
    # kept, empty: the collection's asset linking it still resolves
    assert store.exists("c/items.parquet") and read_mirror(store, "c/items.parquet")[0] == {}
    assert mirror.list_fragments(store, "c/items.parquet") == []


def test_sink_writes_only_the_partitions_of_its_changes(partitioned):
    store, _ = partitioned
    rebuild(store, "c")
    counting = CountingStore(store)
    (change,) = created(store, "c", ["utm_20240513"])
    item = json.loads(json.dumps(change.item))
    item["properties"]["title"] = "touched"
    MirrorSink(counting).apply({}, [Change(ChangeKind.UPDATED, "c", change.item_id, change.key, item)])
    (written,) = counting.puts
    assert written.startswith("c/2024/05/items-fragments/") and counting.puts[written] == 1
    assert not counting.gets  # a writer reads nothing: its cost is the batch, not the partition
    assert not counting.deletes
    assert sorted(diff(store, "c").differing) == ["utm_20240513"]
    rebuild(store, "c")


def test_reapplying_a_committed_item_changes_nothing_readers_see(partitioned):
    """The commit path sends nothing for unchanged items; a repeated change is
    one more fragment (a writer reads nothing to find out) that readers
    resolve to the same row, and an empty batch writes nothing."""
    store, _ = partitioned
    rebuild(store, "c")
    before = read_mirror(store, "c/2024/06/items.parquet")[0]
    counting = CountingStore(store)
    MirrorSink(counting).apply({}, [])
    assert not counting.puts
    MirrorSink(counting).apply({}, created(store, "c", ["dateline_20240601"]))
    assert len(counting.puts) == 1 and not counting.gets
    assert read_mirror(store, "c/2024/06/items.parquet")[0] == before
    assert rebuild(store, "c") == ["c/2024/06/items.parquet"]  # nothing stale: only folded
    assert mirror.list_fragments(store, "c/2024/06/items.parquet") == []


class PauseBeforePut:
    """A real store that holds the caller right before its first ``put`` of a
    key under ``prefix`` (the write has not happened yet)."""

    def __init__(self, inner: Store, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe
        self.reached, self.resume = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kw: Any) -> Any:
        if key.startswith(self.prefix) and not self.reached.is_set():
            self.reached.set()
            assert self.resume.wait(30), "the test never resumed the paused side"
        return self.inner.put(key, data, **kw)


def in_thread(work: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``work()`` in a thread; exceptions are collected, not lost."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def race(store: Store, key: str, first: list[Change], second: list[Change]) -> None:
    """Writer 1 applies ``first`` and is held right before it writes its
    fragment of the partition of ``key``; writer 2 applies ``second`` to
    completion; writer 1 then goes on. Neither may fail."""
    paused = PauseBeforePut(store, mirror.fragments_prefix(key))
    thread, errors = in_thread(lambda: MirrorSink(paused).apply({}, first))
    assert paused.reached.wait(30)
    MirrorSink(store).apply({}, second)
    paused.resume.set()
    thread.join(30)
    assert not errors, errors


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_two_writers_on_one_partition_never_conflict_and_both_rows_end_up_present(
    products, tmp_path, existing
):
    store = register({k: products[k] for k in ("utm", "wgs84", "nodata")}, tmp_path / "catalog", None)
    if existing:
        MirrorSink(store).apply({}, created(store, "c", ["nodata_20240901"]))
        assert mirror.compact(store, "c/items.parquet")
    race(
        store,
        "c/items.parquet",
        created(store, "c", ["utm_20240513"]),
        created(store, "c", ["wgs84_20240301"]),
    )
    rows, _ = read_mirror(store, "c/items.parquet")
    assert sorted(rows) == sorted(
        ["utm_20240513", "wgs84_20240301"] + (["nodata_20240901"] if existing else [])
    )


def test_two_writers_on_s3_never_conflict_and_both_rows_end_up_present(products, s3_server):
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/stac"
    store = register(
        {k: products[k] for k in ("utm", "wgs84")}, url, "year", storage_options=s3_server.storage_options
    )
    assert store.concurrent_safe
    race(
        store,
        "c/2024/items.parquet",
        created(store, "c", ["utm_20240513"]),
        created(store, "c", ["wgs84_20240301"]),
    )
    rows, _ = read_mirror(store, "c/2024/items.parquet")
    assert sorted(rows) == ["utm_20240513", "wgs84_20240301"]
    assert diff(store, "c").clean
    assert mirror.compact(store, "c/2024/items.parquet")
    assert diff(store, "c").clean


def copies(change: Change, n: int) -> list[Change]:
    """``n`` CREATED changes of distinct items in the partition of ``change``."""
    out = []
    folder = change.key.rsplit("/", 2)[0]
    for i in range(n):
        item = json.loads(json.dumps(change.item))
        item["id"] = f"copy{i:02d}"
        out.append(
            Change(ChangeKind.CREATED, "c", item["id"], f"{folder}/{item['id']}/{item['id']}.json", item)
        )
    return out


def test_many_writers_in_parallel_with_compactions_lose_nothing(products, tmp_path):
    """Eight writers at once on one partition, each compacting once the
    partition has more than 2 fragments: every row ends up present."""
    store = register({k: products[k] for k in ("utm",)}, tmp_path / "catalog", None)
    changes = copies(created(store, "c")[0], 8)
    start = threading.Barrier(len(changes))

    def writer(change: Change) -> None:
        start.wait(30)
        MirrorSink(store, compact_after=2, check_every=1).apply({}, [change])

    threads = [in_thread(lambda c=c: writer(c)) for c in changes]
    for thread, _ in threads:
        thread.join(60)
    assert not [e for _, errors in threads for e in errors]
    assert sorted(read_mirror(store, "c/items.parquet")[0]) == [c.item_id for c in changes]
    mirror.compact(store, "c/items.parquet")
    assert sorted(read_mirror(store, "c/items.parquet")[0]) == [c.item_id for c in changes]


@pytest.mark.parametrize("paused", ["compaction", "writer", "other-compaction"])
def test_compaction_racing_a_writer_loses_nothing(products, tmp_path, paused):
    """One side is held at its critical point while the other runs to the end:
    the compaction after reading the fragments it will fold (a writer then adds
    one it must not delete; or another compaction folds them first), or the
    writer right before it writes its fragment."""
    store = register({k: products[k] for k in ("utm",)}, tmp_path / "catalog", None)
    first, second, late = [[c] for c in copies(created(store, "c")[0], 3)]
    base = "c/items.parquet"
    MirrorSink(store).apply({}, first)
    MirrorSink(store).apply({}, second)
    folded = mirror.list_fragments(store, base)
    held: PauseBeforePut | PauseAfterGet
    if paused == "writer":
        held = PauseBeforePut(store, mirror.fragments_prefix(base))
        thread, errors = in_thread(lambda: MirrorSink(held).apply({}, late))
        assert held.reached.wait(30)
        assert mirror.compact(store, base)
    else:
        held = PauseAfterGet(store, folded[-1])
        thread, errors = in_thread(lambda: mirror.compact(held, base))
        assert held.reached.wait(30)
        if paused == "compaction":
            MirrorSink(store).apply({}, late)
        else:
            assert mirror.compact(store, base)
            MirrorSink(store).apply({}, late)
    held.resume.set()
    thread.join(30)
    if paused == "other-compaction":  # its base changed meanwhile: it must write nothing
        assert len(errors) == 1 and isinstance(errors[0], PreconditionFailed), errors
    else:
        assert not errors, errors
    remaining = mirror.list_fragments(store, base)
    assert not set(remaining) & set(folded)
    assert len(remaining) == 1  # the late writer's fragment, never folded unread
    assert sorted(read_mirror(store, base)[0]) == ["copy00", "copy01", "copy02"]


def test_newest_stamp_wins_and_a_tombstone_hides_only_the_version_it_removes():
    """The rules readers apply, on the stamps alone: the newest ``updated``
    wins whatever the order the fragments were written in; a tombstone beats
    the row of the version it removes (same stamp) but not a re-created item
    (newer stamp); equal stamps go to the later source."""
    frag = mirror.FragmentInfo
    base = [("a", 10), ("b", 10), ("c", 10), ("d", 10)]
    fragments = [
        frag("f1", rows=[("a", 30), ("c", 10)], removed={"b": 10}),  # c: same stamp as the base
        frag("f2", rows=[("a", 20), ("b", 20)], removed={"d": 10}),  # a: older, written later
        frag("f3", rows=[], removed={"a": 20, "b": 10}),  # old tombstones
    ]
    keep_base, kept = mirror.resolve(base, fragments)
    assert keep_base == []  # a, b, c, d are all decided by fragments
    assert kept == [[0, 1], [1], []]  # a@30 and c from f1; b (re-created @20) from f2; d removed
    assert mirror.resolve(None, fragments) == (None, [[0, 1], [1], []])
    assert mirror.resolve(base, []) == (None, [])


class FailingBaseWrites:
    """A real store whose writes of base mirror files fail (a full disk, a
    denied PUT); fragments are written as usual."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kw: Any) -> Any:
        if key.endswith("/" + mirror.MIRROR_NAME):
            raise StoreError(f"cannot write {key}: no space left on device")
        return self.inner.put(key, data, **kw)


def test_failed_compaction_never_fails_the_writer(products, tmp_path, caplog):
    store = register({k: products[k] for k in ("utm",)}, tmp_path / "catalog", None)
    failing = FailingBaseWrites(store)
    sink = MirrorSink(failing, compact_after=1, check_every=1)
    changes = copies(created(store, "c")[0], 3)
    with caplog.at_level(logging.WARNING, logger="producer.mirror"):
        for change in changes:
            sink.apply({}, [change])  # the 2nd and 3rd try to compact and fail
    assert "no space left on device" in caplog.text and "the next write to it retries" in caplog.text
    assert len(mirror.list_fragments(store, "c/items.parquet")) == 3
    assert sorted(read_mirror(store, "c/items.parquet")[0]) == [c.item_id for c in changes]


def test_crash_after_each_write_of_compaction_leaves_search_correct(products, tmp_path):
    """Kill the compaction right after its 1st, 2nd, ... storage write (the
    base, then each fragment delete): search still answers exactly the items
    the fragments describe, and the next compaction finishes the job."""
    origin = tmp_path / "origin"
    store = register({k: products[k] for k in ("utm", "wgs84", "nodata")}, origin, None)
    rebuild(store, "c")
    changes = {c.item_id: c for c in created(store, "c")}
    edited = json.loads(json.dumps(changes["utm_20240513"].item))
    edited["properties"]["title"] = "edited after the base"
    ghost = json.loads(json.dumps(edited))
    ghost["id"] = "ghost"
    sink = MirrorSink(store)
    sink.apply({}, [Change(ChangeKind.UPDATED, "c", "utm_20240513", changes["utm_20240513"].key, edited)])
    sink.apply(
        {},
        [
            Change(
                ChangeKind.REMOVED,
                "c",
                "wgs84_20240301",
                changes["wgs84_20240301"].key,
                changes["wgs84_20240301"].item,
            ),
            Change(ChangeKind.CREATED, "c", "ghost", "c/ghost/ghost.json", ghost),
        ],
    )
    expected = {
        "utm_20240513": "edited after the base",
        "ghost": "edited after the base",
        "nodata_20240901": None,
    }

    def answer(root: Path) -> dict[str, Any]:
        features = search(str(root))["features"]
        return {f["id"]: f["properties"].get("title") for f in features}

    assert answer(origin) == expected
    for n in range(1, 10):
        root = tmp_path / f"crash{n}"
        shutil.copytree(origin, root)
        crashing = CrashingStore(open_store(str(root)), crash_after=n)
        try:
            mirror.compact(crashing, "c/items.parquet")
        except SimulatedKill:
            assert answer(root) == expected, crashing.writes
            mirror.compact(open_store(str(root)), "c/items.parquet")  # False if only the last delete was left
            assert answer(root) == expected
            assert mirror.list_fragments(open_store(str(root)), "c/items.parquet") == []
            continue
        # the base, the released lease that keeps the fragments folder (a local
        # store, mr37), then the two fragment deletes
        assert crashing.writes[:2] == ["c/items.parquet", "c/items-fragments/compacting.lease"]
        assert len(crashing.writes) == n - 1 == 4
        assert answer(root) == expected
        break
    else:
        pytest.fail("the compaction never completed")


# --- diff, rebuild, assets -----------------------------------------------------------------


def test_diff_finds_missing_extra_and_differing_items_and_rebuild_repairs_them(products, tmp_path):
    store = register({k: products[k] for k in ("utm", "wgs84", "nodata")}, tmp_path / "catalog", "year/month")
    changes = {c.item_id: c for c in created(store, "c")}
    sink = MirrorSink(store)
    sink.apply({}, [changes["utm_20240513"], changes["wgs84_20240301"]])  # nodata missing
    ghost = json.loads(json.dumps(changes["utm_20240513"].item))
    ghost["id"] = "ghost"
    sink.apply({}, [Change(ChangeKind.CREATED, "c", "ghost", "c/2024/05/ghost/ghost.json", ghost)])
    edited = json.loads(json.dumps(changes["wgs84_20240301"].item))
    edited["properties"]["title"] = "edited in the tree"
    store.put(changes["wgs84_20240301"].key, json.dumps(edited).encode())

    found = diff(store, "c")
    assert (found.missing, found.extra, found.differing) == (
        ["nodata_20240901"],
        ["ghost"],
        ["wgs84_20240301"],
    )
    assert found.stale_files == [
        "c/2024/03/items.parquet",
        "c/2024/05/items.parquet",
        "c/2024/09/items.parquet",
    ]
    assert rebuild(store, "c") == found.stale_files
    assert diff(store, "c").clean
    rows, _ = read_mirror(store, "c/2024/03/items.parquet")
    assert rows["wgs84_20240301"]["properties"]["title"] == "edited in the tree"


def test_mirror_assets_are_relative_parquet_links_with_the_mirror_role():
    flat = mirror_assets("c", ["c/items.parquet"])
    assert flat == {
        "mirror": {
            "href": "./items.parquet",
            "type": "application/vnd.apache.parquet",
            "title": "stac-geoparquet mirror of the items",
            "roles": ["collection-mirror"],
        }
    }
    parts = mirror_assets("c", ["c/2024/03/items.parquet", "c/2023/12/items.parquet"])
    assert {k: v["href"] for k, v in parts.items()} == {
        "mirror-2023-12": "./2023/12/items.parquet",
        "mirror-2024-03": "./2024/03/items.parquet",
    }
    assert mirror.linked_mirror_keys("c/collection.json", {"assets": parts}) == [
        "c/2023/12/items.parquet",
        "c/2024/03/items.parquet",
    ]


def test_mirror_assets_are_fresh_documents_each_call():
    """The asset texts are made once per partition and process; the dicts
    handed out are new each time, so a caller changing one (a collection
    document being edited) changes no later answer."""
    first = mirror_assets("c", ["c/2024/03/items.parquet"])
    first["mirror-2024-03"]["roles"].append("edited")
    first["mirror-2024-03"]["href"] = "elsewhere"
    again = mirror_assets("c", ["c/2024/03/items.parquet"])
    assert again["mirror-2024-03"] == {
        "href": "./2024/03/items.parquet",
        "type": "application/vnd.apache.parquet",
        "title": "stac-geoparquet mirror of the items of 2024/03",
        "roles": ["collection-mirror"],
    }
    assert again["mirror-2024-03"] is not first["mirror-2024-03"]
    with pytest.raises(ValueError, match="not inside"):
        mirror_assets("c", ["d/items.parquet"])


def test_unreadable_mirror_file_is_named_in_the_error(tmp_path):
    store = open_store(str(tmp_path / "catalog"))
    store.put("c/items.parquet", b"not parquet")
    with pytest.raises(mirror.MirrorError, match=r"c/items\.parquet.*rebuild"):
        read_mirror(store, "c/items.parquet")
