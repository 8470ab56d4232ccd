"""Partitioned layout and reconcile, on a local catalog and on the S3 endpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pystac
import pytest
from click.testing import CliRunner

import producer
from producer.catalog.documents import exact_extent
from producer.catalog.layout import is_intent_key
from producer.cli import main
from producer.store import CountingStore, open_store
from tests.rasters import write_tile
from tests.trees import assert_stac_valid_tree, tree_hash


@pytest.fixture
def tiles(tmp_path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [
        write_tile(folder, "t_20230105.tif", 10.0, 50.0),
        write_tile(folder, "t_20230220.tif", 11.0, 51.0),
        write_tile(folder, "t_20240310.tif", 12.0, 52.0),
        write_tile(folder, "t_20240311.tif", 13.0, 53.0),
    ]


def load(root: Path, key: str) -> dict:
    return json.loads((root / key).read_text())


# --- partitioned layout ------------------------------------------------------------


def test_partitioned_layout_structure_and_validity(tiles, catalog_dir):
    results = producer.register(tiles, catalog=str(catalog_dir), collection="c", partition="year/month")
    assert all(r.action == "created" for r in results), [r.error for r in results]
    assert (catalog_dir / "c/2023/01/t_20230105/t_20230105.json").exists()
    assert (catalog_dir / "c/2024/03/t_20240311/t_20240311.json").exists()
    coll = load(catalog_dir, "c/collection.json")
    assert sorted(l["href"] for l in coll["links"] if l["rel"] == "child") == [
        "./2023/catalog.json",
        "./2024/catalog.json",
    ]
    assert not [l for l in coll["links"] if l["rel"] == "item"]
    year = load(catalog_dir, "c/2024/catalog.json")
    assert [l["href"] for l in year["links"] if l["rel"] == "child"] == ["./03/catalog.json"]
    month = load(catalog_dir, "c/2024/03/catalog.json")
    assert sorted(l["href"] for l in month["links"] if l["rel"] == "item") == [
        "./t_20240310/t_20240310.json",
        "./t_20240311/t_20240311.json",
    ]
    item = load(catalog_dir, "c/2024/03/t_20240310/t_20240310.json")
    rels = {l["rel"]: l["href"] for l in item["links"]}
    assert rels == {
        "root": "../../../../catalog.json",
        "parent": "../catalog.json",
        "collection": "../../../collection.json",
    }
    # the collection extent covers every partition's items
    items = [load(catalog_dir, str(p.relative_to(catalog_dir))) for p in catalog_dir.rglob("t_*.json")]
    assert coll["extent"] == exact_extent(items)
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert_stac_valid_tree(catalog_dir)
    cat = pystac.Catalog.from_file(str(catalog_dir / "catalog.json"))
    assert sorted(i.id for i in cat.get_items(recursive=True)) == sorted(r.id for r in results)


def _json_puts(store: CountingStore) -> set[str]:
    """The keys ``store`` wrote, but the mirror's (fragments and base files)
    and the group commit's intents (one per commit, deleted once applied)."""
    return {
        k
        for k in store.puts
        if "/items-fragments/" not in k and not k.endswith("/items.parquet") and not is_intent_key(k)
    }


def test_partitioned_upsert_touches_a_constant_set_of_documents(tiles, catalog_dir):
    producer.register(tiles[:3], catalog=str(catalog_dir), collection="c", partition="year/month")
    store = CountingStore(open_store(str(catalog_dir)))
    (res,) = producer.register([tiles[3]], catalog=store, collection="c", partition="year/month")
    assert res.action == "created"
    # written: the item, its month catalog, the collection (whose extent grows)
    # and the id's index entry; the year catalog and the root are read once
    # (their links are checked, crash recovery) but not written
    # (and the mirror: one fragment of the month, see _json_puts)
    assert _json_puts(store) == {
        "c/2024/03/t_20240311/t_20240311.json",
        "c/2024/03/catalog.json",
        "c/collection.json",
        "c/.ids/t_20240311",
    }
    # + the mirror fragment; a lone writer commits the collection with a
    # plain compare-and-swap: no group commit intent (issue 12, commitscale)
    assert len(store.puts) == 5
    assert len([k for k in store.puts if is_intent_key(k)]) == 0
    assert set(store.gets) == _json_puts(store) | {"c/2024/catalog.json", "catalog.json"}
    # a new month: the year catalog gets its child link, the root still untouched
    late = write_tile(tiles[0].parent, "t_20241224.tif", 14.0, 54.0)
    store = CountingStore(open_store(str(catalog_dir)))
    producer.register([late], catalog=store, collection="c", partition="year/month")
    # the new month's mirror: its base file (created empty) and one fragment
    mirror_puts = {k for k in set(store.puts) - _json_puts(store) if not is_intent_key(k)}
    assert "c/2024/12/items.parquet" in mirror_puts and len(mirror_puts) == 2
    assert _json_puts(store) == {
        "c/2024/12/t_20241224/t_20241224.json",
        "c/2024/12/catalog.json",
        "c/2024/catalog.json",
        "c/collection.json",
        "c/.ids/t_20241224",
    }
    assert "catalog.json" not in store.puts
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_remove_in_a_partitioned_collection(tiles, catalog_dir):
    producer.register(tiles, catalog=str(catalog_dir), collection="c", partition="year/month")
    res = producer.remove("t_20240311", catalog=str(catalog_dir), collection="c")
    assert res.action == "removed" and res.extent_recomputed
    month = load(catalog_dir, "c/2024/03/catalog.json")
    assert [l["href"] for l in month["links"] if l["rel"] == "item"] == ["./t_20240310/t_20240310.json"]
    coll = load(catalog_dir, "c/collection.json")
    assert coll["extent"]["temporal"]["interval"][0][1] == "2024-03-10T00:00:00Z"
    assert producer.validate_catalog(str(catalog_dir)) == []


# --- reconcile ------------------------------------------------------------------


def damage(catalog_dir: Path) -> None:
    """Make an orphan, a dangling link, a duplicate link and a stale extent."""
    coll_path = catalog_dir / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    links = coll["links"]
    orphan = next(l for l in links if l["href"] == "./t_20230105/t_20230105.json")
    links.remove(orphan)  # orphan item
    dup = next(l for l in links if l["href"] == "./t_20230220/t_20230220.json")
    links.append(dict(dup))  # duplicate link
    links.append({"rel": "item", "href": "./ghost/ghost.json", "type": "application/geo+json"})
    coll["extent"]["spatial"]["bbox"][0] = [-10.0, -10.0, 40.0, 60.0]  # stale: too big
    coll_path.write_text(json.dumps(coll, indent=2))


def test_reconcile_reports_without_writing_then_fixes(tiles, catalog_dir):
    producer.register(tiles, catalog=str(catalog_dir), collection="c")
    damage(catalog_dir)
    before = tree_hash(catalog_dir)
    report = producer.reconcile(str(catalog_dir))
    assert tree_hash(catalog_dir) == before
    # the mirror still holds the item damage() deleted by hand
    expected = {"orphan": 1, "duplicate-link": 1, "dangling-link": 1, "stale-extent": 1, "mirror-stale": 1}
    assert report.found == expected
    assert report.remaining == report.problems

    fixed = producer.reconcile(str(catalog_dir), fix=True)
    assert fixed.remaining == []
    assert_stac_valid_tree(catalog_dir)
    # the mirror is told the repairs (orphan linked, dangling link gone) like
    # any sink, so it is in line before its own comparison: nothing to rebuild
    assert fixed.fixed == {k: v for k, v in expected.items() if k != "mirror-stale"}
    assert producer.validate_catalog(str(catalog_dir)) == []
    coll = load(catalog_dir, "c/collection.json")
    hrefs = [l["href"] for l in coll["links"] if l["rel"] == "item"]
    assert sorted(hrefs) == sorted(set(hrefs)) and len(hrefs) == 4
    items = [load(catalog_dir, f"c/{p.stem}/{p.stem}.json") for p in tiles]
    assert coll["extent"] == exact_extent(items)


def test_reconcile_shrinks_a_stale_extent_after_a_manual_removal(tiles, catalog_dir):
    producer.register(tiles, catalog=str(catalog_dir), collection="c")
    coll_path = catalog_dir / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [l for l in coll["links"] if "t_20240311" not in l["href"]]
    coll_path.write_text(json.dumps(coll))
    for f in (catalog_dir / "c/t_20240311").iterdir():
        f.unlink()
    (catalog_dir / "c/t_20240311").rmdir()
    report = producer.reconcile(str(catalog_dir))
    # the mirror still holds the item removed by hand
    assert [p.kind for p in report.problems] == ["stale-extent", "mirror-stale"]
    producer.reconcile(str(catalog_dir), fix=True)
    coll = load(catalog_dir, "c/collection.json")
    assert coll["extent"]["temporal"]["interval"][0][1] == "2024-03-10T00:00:00Z"
    assert coll["extent"]["spatial"]["bbox"][0][3] == pytest.approx(52.0)


def test_reconcile_dead_items_and_missing_products(tmp_path, catalog_dir):
    data = tmp_path / "data"
    a = write_tile(data, "a_20240101.tif", 1, 1)
    b = write_tile(data, "b_20240102.tif", 2, 2)
    producer.register([a, b], catalog=str(catalog_dir), collection="c")
    write_tile(data, "c_20240103.tif", 3, 3)  # never registered
    b.unlink()  # b's asset is gone
    report = producer.reconcile(str(catalog_dir), data=str(data), collection="c")
    assert report.found.get("missing-asset") == 1 and report.found.get("missing-product") == 1
    # flag (default): b stays, marked deprecated; c gets registered
    fixed = producer.reconcile(str(catalog_dir), data=str(data), collection="c", fix=True)
    assert [r.id for r in fixed.registered] == ["c_20240103"]
    assert load(catalog_dir, "c/b_20240102/b_20240102.json")["properties"]["deprecated"] is True
    assert (catalog_dir / "c/c_20240103/c_20240103.json").exists()
    # remove: b disappears and the extent shrinks to a and c
    producer.reconcile(str(catalog_dir), data=str(data), collection="c", fix=True, dead="remove")
    assert not (catalog_dir / "c/b_20240102").exists()
    coll = load(catalog_dir, "c/collection.json")
    assert sorted(l["href"] for l in coll["links"] if l["rel"] == "item") == [
        "./a_20240101/a_20240101.json",
        "./c_20240103/c_20240103.json",
    ]
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert os.path.exists(a)


def test_reconcile_cli(tiles, catalog_dir):
    producer.register(tiles, catalog=str(catalog_dir), collection="c")
    damage(catalog_dir)
    runner = CliRunner()
    res = runner.invoke(main, ["reconcile", str(catalog_dir)])
    assert res.exit_code == 1
    assert "orphan" in res.stdout and "nothing written" in res.stdout
    res = runner.invoke(main, ["reconcile", str(catalog_dir), "--fix"])
    assert res.exit_code == 0, res.output
    assert "valid after repair" in res.stdout
    res = runner.invoke(main, ["validate", str(catalog_dir)])
    assert res.exit_code == 0


def test_partitioned_and_reconcile_on_s3(s3_server, tiles):
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/stac"
    opts = s3_server.storage_options
    results = producer.register(tiles, catalog=url, collection="c", partition="year", storage_options=opts)
    assert all(r.action == "created" for r in results), [r.error for r in results]
    assert results[0].href == f"{url}/c/2023/t_20230105/t_20230105.json"
    assert producer.validate_catalog(url, storage_options=opts) == []
    # orphan on S3: drop the month link to one item, then reconcile --fix
    client = s3_server.client()
    key = "stac/c/2023/catalog.json"
    doc = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    doc["links"] = [l for l in doc["links"] if "t_20230105" not in l["href"]]
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(doc).encode())
    assert sorted(p.kind for p in producer.validate_catalog(url, storage_options=opts)) == [
        "orphan",
        "stale-extent",
    ]
    report = producer.reconcile(url, storage_options=opts, fix=True)
    assert report.fixed.get("orphan") == 1 and report.remaining == []


def test_reconcile_relinks_an_orphaned_partition(tiles, catalog_dir):
    producer.register(tiles, catalog=str(catalog_dir), collection="c", partition="year/month")
    coll_path = catalog_dir / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [l for l in coll["links"] if l["href"] != "./2024/catalog.json"]
    coll_path.write_text(json.dumps(coll, indent=2))
    report = producer.reconcile(str(catalog_dir))
    orphans = sorted(p.key for p in report.problems if p.kind == "orphan")
    assert orphans == [
        "c/2024/03/catalog.json",
        "c/2024/03/t_20240310/t_20240310.json",
        "c/2024/03/t_20240311/t_20240311.json",
        "c/2024/catalog.json",
    ]
    fixed = producer.reconcile(str(catalog_dir), fix=True)
    assert fixed.remaining == []
    coll = load(catalog_dir, "c/collection.json")
    assert "./2024/catalog.json" in [l["href"] for l in coll["links"] if l["rel"] == "child"]
    month = load(catalog_dir, "c/2024/03/catalog.json")
    assert len([l for l in month["links"] if l["rel"] == "item"]) == 2


def test_reconcile_creates_the_missing_year_above_an_orphaned_month(tiles, catalog_dir):
    """A register killed after creating a month catalog but before its year
    catalog existed leaves the month (and its items) orphan, with no parent to
    link it from: reconcile --fix creates the year catalog and links it."""
    producer.register(tiles, catalog=str(catalog_dir), collection="c", partition="year/month")
    year = catalog_dir / "c/2024/catalog.json"
    year.unlink()
    coll_path = catalog_dir / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    coll["links"] = [l for l in coll["links"] if l["href"] != "./2024/catalog.json"]
    coll_path.write_text(json.dumps(coll, indent=2))
    assert "orphan" in {p.kind for p in producer.validate_catalog(str(catalog_dir))}

    fixed = producer.reconcile(str(catalog_dir), fix=True)
    assert fixed.remaining == []
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert [l["href"] for l in load(catalog_dir, "c/2024/catalog.json")["links"] if l["rel"] == "child"] == [
        "./03/catalog.json"
    ]
    coll = load(catalog_dir, "c/collection.json")
    assert sorted(l["href"] for l in coll["links"] if l["rel"] == "child") == [
        "./2023/catalog.json",
        "./2024/catalog.json",
    ]
    cat = pystac.Catalog.from_file(str(catalog_dir / "catalog.json"))
    assert sorted(i.id for i in cat.get_items(recursive=True)) == sorted(t.stem for t in tiles)
    assert_stac_valid_tree(catalog_dir)


def test_partitions_emptied_by_a_removal_and_a_move_are_reported_as_warnings_and_reused(tmp_path):
    """Before: the emptied partitions stayed linked and nothing said so.
    Now ``validate`` and ``reconcile`` warn (valid STAC, not an error), one
    finding per emptied subtree, and the period's next item reuses it."""
    data = tmp_path / "data"
    a = write_tile(data, "a_20230615.tif", 10.0, 50.0)
    b = write_tile(data, "b_20240201.tif", 11.0, 51.0)
    c = write_tile(data, "c_20220301.tif", 12.0, 52.0)
    root = tmp_path / "cat"
    cat = str(root)
    assert all(
        r.ok for r in producer.register([a, b, c], catalog=cat, collection="c", partition="year/month")
    )
    assert producer.remove("a_20230615", catalog=cat, collection="c").action == "removed"
    (moved,) = producer.register([c], catalog=cat, collection="c", datetime="2024-02-10T00:00:00Z")
    assert moved.action.value == "updated"

    problems = producer.validate_catalog(cat)
    assert [(p.kind, p.key, p.is_error) for p in problems] == [
        ("empty-partition", "c/2022/catalog.json", False),
        ("empty-partition", "c/2023/catalog.json", False),
    ]
    assert "links no item" in problems[0].message and "reconcile(fix=True) leaves it" in problems[0].message
    result = CliRunner().invoke(main, ["validate", cat])
    assert result.exit_code == 0, result.output
    assert "warning c/2022/catalog.json: [empty-partition]" in result.output
    assert "reconcile --fix leaves it" in result.output

    report = producer.reconcile(cat, fix=True)
    assert [(p.kind, p.key) for p in report.remaining] == [
        ("empty-partition", "c/2022/catalog.json"),
        ("empty-partition", "c/2023/catalog.json"),
    ]
    assert (root / "c/2023/06/catalog.json").is_file()  # kept, still linked
    assert_stac_valid_tree(root)

    (back,) = producer.register([a], catalog=cat, collection="c")
    assert back.href == str(root / "c/2023/06/a_20230615/a_20230615.json")
    assert [p.key for p in producer.validate_catalog(cat)] == ["c/2022/catalog.json"]


def test_reconcile_data_with_a_partition_the_collection_contradicts_is_refused(tiles, catalog_dir):
    """``reconcile C --data D --collection c --partition year`` on a
    ``year/month`` collection exited 0 (with nothing missing, and without
    ``--fix`` whatever was missing): the contradiction register refuses,
    naming the collection's layout, went unsaid until a fix had products to
    register. Refused now with or without --fix, before anything is read
    or written."""
    assert all(
        r.ok
        for r in producer.register(tiles, catalog=str(catalog_dir), collection="c", partition="year/month")
    )
    before = tree_hash(catalog_dir)
    folder = str(tiles[0].parent)
    for extra in ([], ["--fix"]):
        out = CliRunner().invoke(
            main,
            [
                "reconcile",
                str(catalog_dir),
                "--data",
                folder,
                "--collection",
                "c",
                "--partition",
                "year",
                *extra,
            ],
        )
        assert out.exit_code == 2, out.output
        assert "partitioned by year/month" in out.output and "collection.json" in out.output, out.output
        assert "missing-product" not in out.output
    assert tree_hash(catalog_dir) == before
    # the collection's own layout, or none, is no contradiction
    for partition in (["--partition", "year/month"], []):
        out = CliRunner().invoke(
            main, ["reconcile", str(catalog_dir), "--data", folder, "--collection", "c", *partition]
        )
        assert out.exit_code == 0, out.output
