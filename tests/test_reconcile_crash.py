"""A crash after any single storage write of ``reconcile --fix`` leaves a state
that re-running ``reconcile --fix`` turns into a valid and complete catalog.

The crash is injected by a Store wrapper that raises a ``BaseException``
subclass (nothing in the producer catches it, like a kill) right after its
N-th write (put or delete) reached storage. The scenario needs every kind of
repair: an orphan item, a dangling link, a stale extent, an item whose asset
is gone (``dead="remove"``: mark, unlink, delete) and a product with no item.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

import producer
from producer.catalog.documents import exact_extent
from producer.store import open_store
from producer.store.base import Store
from tests.crashes import CrashingStore, SimulatedKill
from tests.rasters import write_tile
from tests.s3server import S3Server


def _damaged_catalog(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A local catalog of 4 products that needs every repair, and its data
    folder. Returns (catalog, data, ids expected at the end)."""
    data = tmp_path / "data"
    tiles = [write_tile(data, f"k{i}_2024040{i + 1}.tif", 30.0 + i, 10.0 + i) for i in range(4)]
    catalog = tmp_path / "template"
    results = producer.register(tiles, catalog=str(catalog), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    coll_path = catalog / "c" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [l for l in coll["links"] if tiles[0].stem not in l.get("href", "")]  # orphan
    coll["links"].append(
        {"rel": "item", "href": "./ghost/ghost.json", "type": "application/geo+json"}
    )  # dangling
    coll["extent"]["spatial"]["bbox"][0] = [-20.0, -20.0, 60.0, 60.0]  # stale
    coll_path.write_text(json.dumps(coll, indent=2))
    tiles[3].unlink()  # dead item
    late = write_tile(data, "k9_20240409.tif", 40.0, 20.0)  # missing product
    return catalog, data, sorted([t.stem for t in tiles[:3]] + [late.stem])


def _reconcile(store: Store, data: Path, storage_options: dict | None = None):
    return producer.reconcile(
        store, data=str(data), collection="c", fix=True, dead="remove", storage_options=storage_options
    )


def _assert_valid_and_complete(
    store: Store, expected_ids: list[str], data: Path, where: str, storage_options: dict | None = None
) -> None:
    problems = producer.validate_catalog(store, storage_options=storage_options, check_assets=True)
    assert problems == [], f"{where}: {[str(p) for p in problems]}"
    items = {}
    for key in store.list("c/"):
        if key.endswith((".parquet", ".ndjson")):
            continue  # the stac-geoparquet mirror
        doc = json.loads(store.get(key)[0])
        if doc.get("type") == "Feature":
            items[doc["id"]] = doc
    assert sorted(items) == expected_ids, where
    assert sorted(i["assets"]["data"]["href"] for i in items.values()) == sorted(
        str(p) for p in data.glob("*.tif")
    ), where
    coll = json.loads(store.get("c/collection.json")[0])
    assert coll["extent"] == exact_extent(items.values()), where


def test_reconcile_fix_crash_after_every_write_local(tmp_path):
    template, data, expected = _damaged_catalog(tmp_path)
    counting = CrashingStore(open_store(str(tmp_path / "probe")))
    shutil.copytree(template, tmp_path / "probe")
    _reconcile(counting, data)
    _assert_valid_and_complete(counting, expected, data, "no crash")
    total = len(counting.writes)
    assert total >= 7, counting.writes  # links, mark, unlink, delete, orphan, product, extent

    for n in range(1, total + 1):
        root = tmp_path / f"crash-{n}"
        shutil.copytree(template, root)
        crashing = CrashingStore(open_store(str(root)), crash_after=n)
        with pytest.raises(SimulatedKill):
            _reconcile(crashing, data)
        where = f"crash after write {n} ({crashing.writes[-1]})"
        report = _reconcile(open_store(str(root)), data)
        assert report.remaining == [], f"{where}: {[str(p) for p in report.remaining]}"
        _assert_valid_and_complete(open_store(str(root)), expected, data, where)
        assert not [p for p in root.rglob("*") if ".tmp." in p.name], where  # no temp files left


def _copy_prefix(s3_server: S3Server, bucket: str, src: Path, prefix: str) -> None:
    client = s3_server.client()
    for path in src.rglob("*.json"):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(src).as_posix()}")


def test_reconcile_fix_crash_after_chosen_writes_s3(s3_server, tmp_path):
    """On S3 (conditional writes): a crash right after the removal mark, the
    unlink, the new product's item document, and the last write."""
    template, data, expected = _damaged_catalog(tmp_path)
    opts = s3_server.storage_options
    bucket = s3_server.new_bucket()
    _copy_prefix(s3_server, bucket, template, "probe")
    probe = CrashingStore(open_store(f"s3://{bucket}/probe", opts))
    _reconcile(probe, data, opts)
    writes = probe.writes
    dead_key = next(w[len("delete:") :] for w in writes if w.startswith("delete:"))
    picks = sorted(
        {
            *(n for n, w in enumerate(writes, 1) if w == dead_key),  # marked, still linked
            writes.index(f"delete:{dead_key}"),  # unlinked, not deleted
            writes.index("c/k9_20240409/k9_20240409.json") + 1,  # product item, unlinked
            len(writes),
        }
    )
    for n in picks:
        prefix = f"crash-{n}-{uuid.uuid4().hex[:6]}"
        _copy_prefix(s3_server, bucket, template, prefix)
        url = f"s3://{bucket}/{prefix}"
        with pytest.raises(SimulatedKill):
            _reconcile(CrashingStore(open_store(url, opts), crash_after=n), data, opts)
        where = f"crash after write {n} ({writes[n - 1]})"
        report = _reconcile(open_store(url, opts), data, opts)
        assert report.remaining == [], f"{where}: {[str(p) for p in report.remaining]}"
        _assert_valid_and_complete(open_store(url, opts), expected, data, where, opts)


def test_reconcile_fix_crash_after_every_write_partitioned_local(tmp_path):
    """year/month partitions: an orphaned year (with its month and items), a
    dangling link in a month, a stale extent, and a missing product that
    needs a new year and month."""
    data = tmp_path / "data"
    tiles = [
        write_tile(data, name, lon, 45.0)
        for name, lon in (("m_20230105.tif", 1.0), ("m_20240310.tif", 2.0), ("m_20240311.tif", 3.0))
    ]
    template = tmp_path / "template"
    results = producer.register(tiles, catalog=str(template), collection="c", partition="year/month")
    assert all(r.ok for r in results), [r.error for r in results]
    coll_path = template / "c" / "collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [l for l in coll["links"] if l["href"] != "./2024/catalog.json"]
    coll["extent"]["spatial"]["bbox"][0] = [-50.0, -50.0, 50.0, 50.0]
    coll_path.write_text(json.dumps(coll, indent=2))
    month_path = template / "c" / "2023" / "01" / "catalog.json"
    month = json.loads(month_path.read_text())
    month["links"].append({"rel": "item", "href": "./gone/gone.json", "type": "application/geo+json"})
    month_path.write_text(json.dumps(month, indent=2))
    late = write_tile(data, "m_20250101.tif", 4.0, 46.0)
    expected = sorted([t.stem for t in tiles] + [late.stem])

    def run(store: Store):
        return producer.reconcile(
            store, data=str(data), collection="c", fix=True, register_options={"partition": "year/month"}
        )

    shutil.copytree(template, tmp_path / "probe")
    probe = CrashingStore(open_store(str(tmp_path / "probe")))
    run(probe)
    _assert_valid_and_complete(probe, expected, data, "no crash")
    for n in range(1, len(probe.writes) + 1):
        root = tmp_path / f"crash-{n}"
        shutil.copytree(template, root)
        crashing = CrashingStore(open_store(str(root)), crash_after=n)
        with pytest.raises(SimulatedKill):
            run(crashing)
        where = f"crash after write {n} ({crashing.writes[-1]})"
        report = run(open_store(str(root)))
        assert report.remaining == [], f"{where}: {[str(p) for p in report.remaining]}"
        _assert_valid_and_complete(open_store(str(root)), expected, data, where)
