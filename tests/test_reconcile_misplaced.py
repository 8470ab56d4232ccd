"""Orphans in another layout than their collection records are ``misplaced``
(reported, never linked by ``reconcile --fix``), and ``--check-assets`` also
checks the collection's stac-geoparquet mirror files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import producer
from tests.crashes import write_tile
from tests.trees import assert_stac_valid_tree


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [write_tile(folder, "a_20240110.tif", 6.0, 46.0), write_tile(folder, "b_20240315.tif", 7.0, 46.5)]


def test_reconcile_fix_reports_an_orphan_in_another_layout_as_misplaced_and_does_not_link_it(
    tiles: list[Path], tmp_path: Path
) -> None:
    catalog = tmp_path / "cat"
    producer.register(tiles[:1], catalog=str(catalog), collection="c")  # flat: the collection records it
    other = tmp_path / "other"
    producer.register(tiles[1:], catalog=str(other), collection="c", partition="year/month")
    stray = "c/2024/03/b_20240315/b_20240315.json"
    (catalog / stray).parent.mkdir(parents=True)
    shutil.copy(other / stray, catalog / stray)  # an item document of the partitioned layout

    (found,) = [p for p in producer.validate_catalog(str(catalog)) if p.key == stray]
    assert found.kind == "misplaced" and found.is_error
    assert "partitioned by year/month" in found.message and "flat (no partitions)" in found.message

    report = producer.reconcile(str(catalog), fix=True)
    assert "orphan" not in report.fixed
    assert [p.kind for p in report.remaining if p.key == stray] == ["misplaced"]
    collection = json.loads((catalog / "c/collection.json").read_text())
    assert not (catalog / "c/2024/catalog.json").exists()  # no partition chain made for it
    assert [link["href"] for link in collection["links"] if link["rel"] == "item"] == [
        "./a_20240110/a_20240110.json"
    ]
    (catalog / stray).unlink()
    assert_stac_valid_tree(catalog)


def test_check_assets_reports_a_lost_collection_mirror_file_and_reconcile_fix_writes_it(
    tiles: list[Path], tmp_path: Path
) -> None:
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    assert producer.validate_catalog(str(catalog), check_assets=True) == []
    (catalog / "c/items.parquet").unlink()
    shutil.rmtree(catalog / "c/items-fragments")

    (problem,) = producer.validate_catalog(str(catalog), check_assets=True)
    assert (problem.kind, problem.key) == ("missing-asset", "c/collection.json")
    assert "mirror asset 'mirror' at ./items.parquet does not exist" in problem.message

    report = producer.reconcile(str(catalog), fix=True, check_assets=True)
    assert "missing-asset" not in report.fixed  # the collection is not a dead item
    assert (catalog / "c/items.parquet").is_file()
    assert producer.validate_catalog(str(catalog), check_assets=True) == []
    assert producer.search(str(catalog))["numberMatched"] == 2
    assert_stac_valid_tree(catalog)


def test_an_orphan_below_a_split_year_is_an_orphan_reconcile_fix_links_in_its_split_partition(
    tiles: list[Path], tmp_path: Path
) -> None:
    """A ``year`` collection whose year is split puts new items in
    ``<YYYY>/<MM>/``. Before: an orphan there (a register killed before its
    link) was ``misplaced`` (its key guessed ``year/month`` from its depth),
    never linked, and the advice to delete it would have deleted the item a
    registration writes back at that very key."""
    catalog = tmp_path / "cat"
    producer.register(tiles[:1], catalog=str(catalog), collection="c", partition="year", max_links=1)
    (placed,) = producer.register(tiles[1:], catalog=str(catalog), collection="c")
    key = "c/2024/03/b_20240315/b_20240315.json"
    assert placed.href == str(catalog / key)
    month = catalog / "c/2024/03/catalog.json"
    doc = json.loads(month.read_text())
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    month.write_text(json.dumps(doc))  # what a register killed before its link leaves

    (found,) = [p for p in producer.validate_catalog(str(catalog)) if p.key == key]
    assert found.kind == "orphan"

    report = producer.reconcile(str(catalog), fix=True)
    assert report.fixed.get("orphan") == 1 and report.remaining == []
    assert "./b_20240315/b_20240315.json" in [link["href"] for link in json.loads(month.read_text())["links"]]
    assert producer.validate_catalog(str(catalog)) == []
    assert_stac_valid_tree(catalog)
    (again,) = producer.register(tiles[1:], catalog=str(catalog), collection="c")
    assert (again.action.value, again.href) == ("unchanged", str(catalog / key))


def test_a_misplaced_orphan_is_told_apart_from_split_folders(tiles: list[Path], tmp_path: Path) -> None:
    """An orphan in a ``year/month`` collection whose key has only a year
    folder follows no split of that layout: ``misplaced``, as before."""
    catalog = tmp_path / "cat"
    producer.register(tiles[:1], catalog=str(catalog), collection="c", partition="year/month")
    other = tmp_path / "other"
    producer.register(tiles[1:], catalog=str(other), collection="c", partition="year")
    stray = "c/2024/b_20240315/b_20240315.json"
    (catalog / stray).parent.mkdir(parents=True)
    shutil.copy(other / stray, catalog / stray)
    (found,) = [p for p in producer.validate_catalog(str(catalog)) if p.key == stray]
    assert found.kind == "misplaced"
    assert "follows the partitioned by year layout" in found.message


def test_an_orphan_item_whose_key_does_not_name_its_id_is_misplaced_and_never_replaces_the_item(
    tiles: list[Path], tmp_path: Path
) -> None:
    """A copy of an item document under another folder (``c/copy/copy.json``,
    a backup or a hand-made copy) was an ``orphan`` that ``reconcile --fix``
    "links"; when it had the id of a linked item and a later ``updated`` it
    won the duplicate-id choice: the item at ``c/<id>/<id>.json`` was
    deleted and the copy linked in its place, where ``remove`` (which looks
    the id up at its key) then found nothing ("absent") and a register of
    the product wrote a second item of that id."""
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    real = catalog / "c/a_20240110/a_20240110.json"
    doc = json.loads(real.read_text())
    doc["properties"]["updated"] = "2030-01-01T00:00:00Z"
    stray = "c/copy/copy.json"
    (catalog / stray).parent.mkdir()
    (catalog / stray).write_text(json.dumps(doc))
    renamed = "c/old/old.json"  # an item of its own id, under a folder that does not name it
    doc = {**doc, "id": "lone_20240110"}
    (catalog / renamed).parent.mkdir()
    (catalog / renamed).write_text(json.dumps(doc))
    before = real.read_bytes()

    found = {p.key: p for p in producer.validate_catalog(str(catalog))}
    for key, item_id in ((stray, "a_20240110"), (renamed, "lone_20240110")):
        assert found[key].kind == "misplaced" and found[key].is_error
        assert f"{item_id}/{item_id}.json" in found[key].message, found[key].message

    report = producer.reconcile(str(catalog), fix=True)
    assert "orphan" not in report.fixed and "duplicate-id" not in report.fixed, report.fixed
    assert sorted(p.key for p in report.remaining if p.kind == "misplaced") == sorted([renamed, stray])
    assert real.read_bytes() == before
    collection = json.loads((catalog / "c/collection.json").read_text())
    assert sorted(link["href"] for link in collection["links"] if link["rel"] == "item") == [
        "./a_20240110/a_20240110.json",
        "./b_20240315/b_20240315.json",
    ]
    assert producer.remove("a_20240110", catalog=str(catalog), collection="c").action == "removed"
    for key in (stray, renamed):
        (catalog / key).unlink()
    assert_stac_valid_tree(catalog)


def test_a_linked_item_no_verb_can_find_is_a_warning_with_the_way_to_bring_it_in(
    tiles: list[Path], tmp_path: Path
) -> None:
    """An item linked where the verbs do not look its id up (a key that does
    not name its id, as another tool may write; or a key outside the layout
    the collection records) was "valid": yet ``remove`` said ``absent`` while
    it stood linked, and a register of its product wrote a second item of
    that id. It is an ``unfindable-item`` warning naming where the id is
    looked up; registering its product again and ``reconcile --fix`` then
    leave one item, where the verbs find it."""
    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    old, new = catalog / "c/a_20240110", catalog / "c/items/a_20240110.json"
    new.parent.mkdir()
    (old / "a_20240110.json").rename(new)
    old.rmdir()
    coll_path = catalog / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    for link in coll["links"]:
        if link["href"] == "./a_20240110/a_20240110.json":
            link["href"] = "./items/a_20240110.json"
    coll_path.write_text(json.dumps(coll))
    # (the same depth: its own relative links stay right)
    problems = producer.validate_catalog(str(catalog))
    (found,) = [p for p in problems if p.kind == "unfindable-item"]
    assert found.key == "c/items/a_20240110.json" and not found.is_error, found
    assert "c/a_20240110/a_20240110.json" in found.message, found.message
    assert [p for p in problems if p.is_error] == []

    assert producer.remove("a_20240110", catalog=str(catalog), collection="c").action == "absent"
    producer.register(tiles[:1], catalog=str(catalog), collection="c")
    report = producer.reconcile(str(catalog), fix=True)
    assert report.fixed.get("duplicate-id") == 1, report
    assert not new.exists() and (catalog / "c/a_20240110/a_20240110.json").exists()
    assert [p for p in producer.validate_catalog(str(catalog)) if p.kind == "unfindable-item"] == []


def test_a_collection_of_unfindable_items_is_reported_in_twenty_lines_and_a_count(tmp_path: Path) -> None:
    """A catalog another tool wrote in its own layout (pystac with an item
    template: ``c/c/<id>.json``) is valid STAC whose every item the verbs
    cannot find by its id: ``validate`` and every nightly ``reconcile``
    printed one unfindable-item warning per item, thousands of lines for a
    real collection. The first 20 are named, the rest counted in one more."""
    pystac = pytest.importorskip("pystac")
    from datetime import UTC, datetime

    from pystac.layout import TemplateLayoutStrategy

    root = pystac.Catalog("root", "a catalog of another tool")
    extent = pystac.Extent(
        pystac.SpatialExtent([[0.0, 0.0, 1.0, 1.0]]),
        pystac.TemporalExtent([[datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 25, tzinfo=UTC)]]),
    )
    coll = pystac.Collection("c", "its items in c/c/<id>.json", extent, license="CC0-1.0")
    root.add_child(coll)
    for day in range(1, 26):
        item = pystac.Item(
            f"i{day:02d}",
            {"type": "Point", "coordinates": [0.5, 0.5]},
            [0.5, 0.5, 0.5, 0.5],
            datetime(2024, 1, day, tzinfo=UTC),
            {},
        )
        coll.add_item(item)
    root.normalize_hrefs(
        str(tmp_path / "cat"), strategy=TemplateLayoutStrategy(item_template="${collection}")
    )
    root.save(pystac.CatalogType.SELF_CONTAINED)

    found = [p for p in producer.validate_catalog(str(tmp_path / "cat")) if p.kind == "unfindable-item"]
    assert len(found) == 21, [p.key for p in found]
    named, rest = found[:20], found[20]
    assert all(p.key.startswith("c/c/i") for p in named)
    assert rest.key == "c/collection.json" and "5 more" in rest.message, rest
    assert not any(p.is_error for p in found)


def test_an_unfindable_item_removed_as_a_duplicate_counts_as_fixed(tiles: list[Path], tmp_path: Path) -> None:
    """The unfindable item's product registered again: ``reconcile --fix``
    removes the unfindable copy as a duplicate id. Its summary said
    ``unfindable-item`` found 1, fixed 0, though the finding was gone (and
    only ``duplicate-id`` counted it): what the run resolved is counted."""
    from click.testing import CliRunner

    from producer.cli import main

    catalog = tmp_path / "cat"
    producer.register(tiles, catalog=str(catalog), collection="c")
    old, new = catalog / "c/a_20240110", catalog / "c/items/a_20240110.json"
    new.parent.mkdir()
    (old / "a_20240110.json").rename(new)
    old.rmdir()
    coll_path = catalog / "c/collection.json"
    coll = json.loads(coll_path.read_text())
    for link in coll["links"]:
        if link["href"] == "./a_20240110/a_20240110.json":
            link["href"] = "./items/a_20240110.json"
    coll_path.write_text(json.dumps(coll))
    producer.register(tiles[:1], catalog=str(catalog), collection="c")

    preview = producer.reconcile(str(catalog), fix=True, dry_run=True)
    assert preview.would_fix.get("unfindable-item") == 1, preview.would_fix
    report = producer.reconcile(str(catalog), fix=True)
    assert report.found.get("unfindable-item") == 1, report.found
    assert report.fixed.get("unfindable-item") == 1, report.fixed
    assert report.fixed.get("duplicate-id") == 1, report.fixed
    assert not new.exists()

    # and a finding left standing is not counted: a fresh unfindable copy of b
    other = catalog / "c/items/b_20240315.json"
    other.parent.mkdir(exist_ok=True)
    (catalog / "c/b_20240315/b_20240315.json").rename(other)
    (catalog / "c/b_20240315").rmdir()
    coll = json.loads(coll_path.read_text())
    for link in coll["links"]:
        if link["href"] == "./b_20240315/b_20240315.json":
            link["href"] = "./items/b_20240315.json"
    coll_path.write_text(json.dumps(coll))
    out = CliRunner().invoke(main, ["reconcile", str(catalog), "--fix", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["found"].get("unfindable-item") == 1 and "unfindable-item" not in summary["fixed"], summary
