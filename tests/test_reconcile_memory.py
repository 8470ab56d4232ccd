"""Reconcile of a partitioned collection in bounded memory (issue 12, point 7):
the audit and the mirror comparison go partition by partition and keep no
record of a clean item."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

import producer
from producer import audit as audit_module
from producer import mirror
from producer.audit import ExtentTally, audit
from producer.catalog.documents import exact_extent
from producer.catalog.extent import box2d
from producer.catalog.layout import item_parent_key
from producer.store import CountingStore, open_store
from producer.validate import default_validator
from tests.rasters import write_tile
from tests.trees import assert_stac_valid_tree

# three months, two items each: the walk must finish a month before the next
DATES = ["20230105", "20230117", "20230220", "20230221", "20240310", "20240311"]


@pytest.fixture
def partitioned(tmp_path: Path, catalog_dir: Path) -> Path:
    tiles = [write_tile(tmp_path / "tiles", f"t_{d}.tif", 10.0 + i, 50.0) for i, d in enumerate(DATES)]
    results = producer.register(tiles, catalog=str(catalog_dir), collection="c", partition="year/month")
    assert all(r.ok for r in results), [r.error for r in results]
    return catalog_dir


def _partition_order(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(read key, the partition catalog read last before it) for every item read."""
    out, current = [], ""
    for kind, key in calls:
        if kind != "get":
            continue
        if key.endswith("/catalog.json") and key.count("/") == 3:  # c/YYYY/MM/catalog.json
            current = key
        elif key.count("/") == 4 and key.endswith(".json"):  # c/YYYY/MM/<id>/<id>.json
            out.append((key, current))
    return out


def test_audit_reads_items_partition_by_partition_and_keeps_no_clean_item(partitioned: Path) -> None:
    store = CountingStore(open_store(str(partitioned)))
    report = audit(store, default_validator(), keep_items=False)
    assert report.problems == []
    order = _partition_order(store.calls)
    assert len(order) == len(DATES)
    # every item is read while its own month is the partition being walked:
    # a breadth-first walk reads every month catalog before the first item
    assert all(item_parent_key(key, "c") == month for key, month in order), order
    # nothing per clean item is kept; the tallies still cover every item
    assert report.items == {}
    assert report.item_count == len(DATES)
    assert report.exact_extent("c/collection.json") == exact_extent(
        [doc for _, doc in audit_module.collection_items(store, "c/collection.json")]
    )
    assert_stac_valid_tree(partitioned)


def test_audit_keeps_every_item_when_asked(partitioned: Path) -> None:
    report = audit(open_store(str(partitioned)), default_validator())
    assert sorted(i.id for i in report.items.values()) == sorted(f"t_{d}" for d in DATES)


def test_mirror_diff_compares_each_partition_before_walking_the_next(partitioned: Path) -> None:
    store = CountingStore(open_store(str(partitioned)))
    assert mirror.diff(store, "c").clean
    gets = [key for kind, key in store.calls if kind == "get"]
    months = [k for k in gets if k.endswith("/catalog.json") and k.count("/") == 3]
    assert len(months) == 3
    # a month's mirror file is read before the next month's catalog: the
    # items of one partition are compared and dropped before the next is read
    for this, following in zip(months, months[1:]):
        between = gets[gets.index(this) : gets.index(following)]
        assert this.replace("catalog.json", "items.parquet") in between, between


def test_mirror_rebuild_rewrites_a_stale_partition_from_its_own_items(partitioned: Path) -> None:
    store = open_store(str(partitioned))
    (partitioned / "c/2023/02/items.parquet").unlink()
    for frag in (partitioned / "c/2023/02").glob("items-fragments/*"):
        frag.unlink()
    found = mirror.diff(store, "c")
    assert sorted(found.missing) == ["t_20230220", "t_20230221"]
    assert "c/2023/02/items.parquet" in mirror.rebuild(store, "c")
    assert mirror.diff(store, "c").clean
    assert_stac_valid_tree(partitioned)


def test_extent_tally_folded_in_batches_equals_exact_extent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_module, "_FOLD_EVERY", 7)  # fold many times over
    rng = random.Random(12)
    items: list[dict[str, Any]] = []
    for i in range(300):
        west = rng.uniform(-180, 179)
        east = west + rng.uniform(0.1, 30)
        if east > 180:
            east -= 360  # crosses the antimeridian
        south = rng.uniform(-80, 70)
        day = 1 + i % 28
        items.append(
            {
                "id": f"i{i}",
                "bbox": [west, south, east, south + rng.uniform(0.1, 10)],
                "properties": {"datetime": f"2020-{1 + i % 12:02d}-{day:02d}T00:00:00Z"},
            }
        )
    tally = ExtentTally()
    for item in items:
        tally.add(box2d(item["bbox"]), (item["properties"]["datetime"],) * 2)
    assert tally.extent() == exact_extent(items)
    assert exact_extent(tally.stand_ins()) == exact_extent(items)
    assert ExtentTally().extent() == exact_extent([])
