"""Every writer keeps the stac-geoparquet mirror current: ``producer.search``
answers right after ``register`` and ``remove`` with no explicit rebuild, and
``reconcile`` finds (``mirror-stale``) and repairs a mirror that fell behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import producer
from producer import mirror
from producer.audit import ERRORS
from producer.store import open_store
from tests import rasters


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three tiny tiles: two in Europe (January and March 2024), one in Africa."""
    folder = tmp_path_factory.mktemp("tiles")
    return {
        "jan": rasters.write_tile(folder, "eu_20240110.tif", 10.0, 50.0),
        "mar": rasters.write_tile(folder, "eu_20240305.tif", 11.0, 51.0),
        "af": rasters.write_tile(folder, "af_20240115.tif", 20.0, 0.0),
    }


def _ids(result: dict) -> list[str]:
    return sorted(f["id"] for f in result["features"])


def _register_all(tiles: dict[str, Path], catalog: Path, **options: object) -> None:
    results = producer.register(list(tiles.values()), catalog=str(catalog), collection="c", **options)
    assert [r.action for r in results] == ["created"] * 3, results


@pytest.mark.parametrize("partition", [None, "year/month"])
def test_search_sees_register_and_remove_without_a_rebuild(
    tiles: dict[str, Path], tmp_path: Path, partition: str | None
) -> None:
    catalog = tmp_path / "cat"
    _register_all(tiles, catalog, partition=partition)
    europe = producer.search(str(catalog), bbox=(9, 49, 12, 52))
    assert _ids(europe) == ["eu_20240110", "eu_20240305"]
    january = producer.search(
        str(catalog), bbox=(9, 49, 12, 52), datetime="2024-01-01T00:00:00Z/2024-01-31T23:59:59Z"
    )
    assert _ids(january) == ["eu_20240110"]
    assert _ids(producer.search(str(catalog))) == ["af_20240115", "eu_20240110", "eu_20240305"]

    removed = producer.remove("eu_20240110", catalog=str(catalog), collection="c")
    assert removed.action == "removed"
    assert _ids(producer.search(str(catalog), bbox=(9, 49, 12, 52))) == ["eu_20240305"]
    assert producer.search(str(catalog), ids="eu_20240110")["numberMatched"] == 0


def test_search_is_exported_with_the_verbs() -> None:
    assert "search" in producer.__all__
    assert producer.search is producer.api.search


def _fragments(catalog: Path) -> list[Path]:
    return sorted(p for p in catalog.glob("c/**/items-fragments/*") if p.suffix in (".ndjson", ".parquet"))


def test_reconcile_finds_a_deleted_fragment_and_fix_rebuilds_it(
    tiles: dict[str, Path], tmp_path: Path
) -> None:
    catalog = tmp_path / "cat"
    _register_all(tiles, catalog)
    (fragment,) = _fragments(catalog)  # one batch: one fragment of the flat collection
    fragment.unlink()
    assert producer.search(str(catalog))["numberMatched"] == 0

    found = producer.reconcile(str(catalog))
    assert found.found.get("mirror-stale") == 1
    (problem,) = [p for p in found.remaining if p.kind == "mirror-stale"]
    assert problem.key == "c/collection.json" and "missing: af_20240115, eu_20240110" in problem.message
    assert "mirror-stale" not in ERRORS  # a warning: the catalog itself is right

    fixed = producer.reconcile(str(catalog), fix=True)
    assert fixed.fixed.get("mirror-stale") == 1
    assert not [p for p in fixed.remaining if p.kind == "mirror-stale"]
    assert _ids(producer.search(str(catalog), bbox=(9, 49, 12, 52))) == ["eu_20240110", "eu_20240305"]
    again = producer.reconcile(str(catalog))
    assert "mirror-stale" not in again.found


def test_reconcile_finds_a_corrupt_row_and_fix_rewrites_it(tiles: dict[str, Path], tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    _register_all(tiles, catalog)
    store = open_store(str(catalog))
    mirror.rebuild(store, "c", only_stale=False)  # one base file, no fragments
    assert not _fragments(catalog)
    base = "c/items.parquet"
    items = mirror.decode_items(store.get(base)[0], base)
    moved = next(i for i in items if i["id"] == "af_20240115")
    moved["bbox"] = [10.5, 50.5, 10.6, 50.6]  # the row now claims to be in Europe
    moved["geometry"] = {
        "type": "Polygon",
        "coordinates": [[[10.5, 50.5], [10.6, 50.5], [10.6, 50.6], [10.5, 50.6], [10.5, 50.5]]],
    }
    store.put(base, mirror.encode_items(items, base))
    assert "af_20240115" in _ids(producer.search(str(catalog), bbox=(9, 49, 12, 52)))

    found = producer.reconcile(str(catalog))
    (problem,) = [p for p in found.problems if p.kind == "mirror-stale"]
    assert "differing: af_20240115" in problem.message
    producer.reconcile(str(catalog), fix=True)
    assert _ids(producer.search(str(catalog), bbox=(9, 49, 12, 52))) == ["eu_20240110", "eu_20240305"]


def _linked_mirror_files(catalog: Path) -> list[str]:
    doc = json.loads((catalog / "c/collection.json").read_text())
    return sorted(mirror.linked_mirror_keys("c/collection.json", doc))


def test_collection_links_each_mirror_file_and_none_dangles_after_register_and_remove(
    tiles: dict[str, Path], tmp_path: Path
) -> None:
    catalog = tmp_path / "cat"
    _register_all(tiles, catalog, partition="year/month")
    linked = _linked_mirror_files(catalog)
    assert linked == ["c/2024/01/items.parquet", "c/2024/03/items.parquet"]
    doc = json.loads((catalog / "c/collection.json").read_text())
    assert doc["assets"]["mirror-2024-03"] == {
        "href": "./2024/03/items.parquet",
        "type": "application/vnd.apache.parquet",
        "title": "stac-geoparquet mirror of the items of 2024/03",
        "roles": ["collection-mirror"],
    }
    assert all((catalog / key).is_file() for key in linked)
    assert producer.validate_catalog(str(catalog), check_assets=True) == []

    # March's only item goes: its mirror file stays (empty after a compaction), the link resolves
    assert producer.remove("eu_20240305", catalog=str(catalog), collection="c").action == "removed"
    mirror.compact(open_store(str(catalog)), "c/2024/03/items.parquet")
    assert _linked_mirror_files(catalog) == linked
    assert all((catalog / key).is_file() for key in linked)
    assert [(p.kind, p.key) for p in producer.validate_catalog(str(catalog), check_assets=True)] == [
        ("empty-partition", "c/2024/03/catalog.json")  # a warning: March stays linked
    ]
    assert producer.search(str(catalog), datetime="2024-03-01/2024-03-31")["numberMatched"] == 0
    assert "mirror-stale" not in producer.reconcile(str(catalog)).found


def test_a_linked_mirror_file_lost_is_stale_and_fix_writes_it(tiles: dict[str, Path], tmp_path: Path) -> None:
    """A crash after the collection's commit but before the mirror write leaves
    the asset dangling: reconcile reports it and its fix writes the file."""
    catalog = tmp_path / "cat"
    _register_all(tiles, catalog)
    (catalog / "c/items.parquet").unlink()
    for fragment in _fragments(catalog):
        fragment.unlink()
    (problem,) = [p for p in producer.reconcile(str(catalog)).problems if p.kind == "mirror-stale"]
    assert "linked files absent: c/items.parquet" in problem.message
    producer.reconcile(str(catalog), fix=True)
    assert (catalog / "c/items.parquet").is_file()
    assert producer.search(str(catalog))["numberMatched"] == 3
