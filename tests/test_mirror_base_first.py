"""The mirror's empty base file is written before the collection's
compare-and-swap that first links it (issue 12, point 5, fourth pass).

Like items before links: a committed collection carrying a mirror asset
implies the base file exists, so a crash between the two leaves no dangling
asset, and a batch whose collection already carries the asset neither looks
for the base (the sink's HEAD) nor writes it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import producer
from producer.catalog.mirrorlinks import linked_mirror_keys
from producer.errors import NotFound
from producer.store.base import Store
from producer.store.local import LocalStore
from tests.crashes import CrashingStore, crash_runs, write_tile


def _dangling(store: Store) -> list[str]:
    """Mirror files the stored collection ``c`` links that do not exist."""
    try:
        data, _ = store.get("c/collection.json")
    except NotFound:  # not written yet: nothing links anything
        return []
    keys = linked_mirror_keys("c/collection.json", json.loads(data))
    return [key for key in keys if not store.exists(key)]


@pytest.mark.parametrize("partition", [None, "year/month"], ids=["flat", "year-month"])
def test_a_crash_after_any_write_of_a_first_register_leaves_no_dangling_mirror_asset(
    tmp_path: Path, partition: str | None
) -> None:
    """Before: the collection's compare-and-swap added the asset and the
    sink created the base afterwards, so a kill after the collection write
    left the asset pointing at no file (until a rerun or reconcile --fix)."""
    tile = write_tile(tmp_path, "a_20240310.tif", 12.0, 52.0)

    def run(store: Store) -> None:
        (result,) = producer.register([tile], catalog=store, collection="c", partition=partition)
        assert result.ok, result.error

    points = 0
    for n, real, writes in crash_runs(lambda: LocalStore(str(tmp_path / f"cat-{uuid.uuid4().hex[:8]}")), run):
        points += 1
        assert _dangling(real) == [], f"crash after write {n} {writes}"
    assert points >= 4


class _CountingStore(CrashingStore):
    """Counts ``exists`` calls per key as well as the writes."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.looked: list[str] = []

    def exists(self, key: str) -> bool:
        self.looked.append(key)
        return self.inner.exists(key)


@pytest.mark.parametrize("partition", [None, "year/month"], ids=["flat", "year-month"])
def test_an_upsert_into_a_collection_carrying_the_asset_neither_looks_for_nor_writes_the_base(
    tmp_path: Path, partition: str | None
) -> None:
    """The committed collection carrying the asset says the base exists: no
    HEAD (the sink made one per register before) and no base write. The
    first register writes the base before the collection."""
    catalog = LocalStore(str(tmp_path / "cat"))
    first = _CountingStore(catalog)
    (result,) = producer.register(
        [write_tile(tmp_path, "a_20240310.tif", 12.0, 52.0)],
        catalog=first,
        collection="c",
        partition=partition,
    )
    assert result.ok, result.error
    base = "c/items.parquet" if partition is None else "c/2024/03/items.parquet"
    assert first.writes.index(base) < first.writes.index("c/collection.json"), first.writes

    again = _CountingStore(catalog)
    (result,) = producer.register(
        [write_tile(tmp_path, "b_20240311.tif", 12.5, 52.0)],
        catalog=again,
        collection="c",
        partition=partition,
    )
    assert result.ok, result.error
    assert [k for k in again.looked if k.endswith("items.parquet")] == []
    assert base not in again.writes
    assert any(k.startswith(base.replace("items.parquet", "items-fragments/")) for k in again.writes)
    assert _dangling(catalog) == []
