"""End to end: real rasters → register → a catalog on disk that pystac, our
validator and stac-valid all accept; upserts are idempotent and O(1); bad
input changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

import producer
from producer.api import RegisterResult
from producer.catalog.layout import is_intent_key
from producer.store import CountingStore, open_store
from tests import rasters
from tests.trees import assert_stac_valid_tree, tree_hash

GOOD = [
    "utm",
    "polar",
    "wgs84",
    "rotated",
    "dateline",
    "custom_crs",
    "multiband",
    "nodata",
    "cog",
    "gcps",
    "range",
]


def read(root: Path, key: str) -> dict:
    return json.loads((root / key).read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return rasters.write_all(tmp_path_factory.mktemp("rasters"))


def test_register_many_products_builds_a_valid_catalog(data, catalog_dir):
    results = producer.register(
        [data[k] for k in GOOD],
        catalog=str(catalog_dir),
        collection="ndvi",
        collection_meta={
            "title": "NDVI",
            "license": "CC-BY-4.0",
            "keywords": ["ndvi"],
            "providers": [{"name": "ACME", "roles": ["producer"]}],
        },
    )
    assert [r.action for r in results] == ["created"] * len(GOOD), [r.error for r in results]

    # read back with pystac: every item is reachable from the root
    cat = pystac.Catalog.from_file(str(catalog_dir / "catalog.json"))
    coll = cat.get_child("ndvi")
    assert isinstance(coll, pystac.Collection)
    assert coll.license == "CC-BY-4.0" and coll.keywords == ["ndvi"]
    ids = sorted(i.id for i in coll.get_items())
    assert ids == sorted(r.id for r in results)
    # links are relative and titled
    raw = read(catalog_dir, "ndvi/collection.json")
    item_links = [l for l in raw["links"] if l["rel"] == "item"]
    assert len(item_links) == len(GOOD)
    assert all(l["href"].startswith("./") and l["title"] for l in item_links)
    assert read(catalog_dir, "catalog.json")["links"][1] == {
        "rel": "child",
        "href": "./ndvi/collection.json",
        "type": "application/json",
        "title": "NDVI",
    }

    # our validator: the whole tree is clean
    problems = producer.validate_catalog(str(catalog_dir))
    assert [str(p) for p in problems if p.is_error] == []

    # stac-valid with the bundled schema map, offline, every document
    assert_stac_valid_tree(catalog_dir)

    # extent = union of the items, across the antimeridian (dateline.tif is in there)
    items = [read(catalog_dir, f"ndvi/{i}/{i}.json") for i in ids]
    west, south, east, north = raw["extent"]["spatial"]["bbox"][0]
    assert south == pytest.approx(min(i["bbox"][1] for i in items))
    assert north == pytest.approx(max(i["bbox"][3] for i in items))
    starts = sorted(i["properties"].get("start_datetime") or i["properties"]["datetime"] for i in items)
    assert raw["extent"]["temporal"]["interval"][0][0] == starts[0]


def test_second_registration_changes_no_byte(data, catalog_dir):
    paths = [data["utm"], data["cog"], data["dateline"]]
    producer.register(paths, catalog=str(catalog_dir), collection="c")
    before = tree_hash(catalog_dir)
    results = producer.register(paths, catalog=str(catalog_dir), collection="c")
    assert [r.action for r in results] == ["unchanged"] * 3
    assert tree_hash(catalog_dir) == before


def test_update_keeps_created_and_moves_updated(data, catalog_dir):
    (first,) = producer.register([data["utm"]], catalog=str(catalog_dir), collection="c")
    key = f"c/{first.id}/{first.id}.json"
    old = read(catalog_dir, key)["properties"]
    (again,) = producer.register([data["utm"]], catalog=str(catalog_dir), collection="c", stats=True)
    assert again.action == "updated"
    new = read(catalog_dir, key)["properties"]
    assert new["created"] == old["created"]
    assert new["updated"] > old["updated"]
    assert "statistics" in read(catalog_dir, key)["assets"]["data"]["bands"][0]


def test_one_item_touches_only_its_own_documents(data, tmp_path):
    """Registering into a collection of N items reads/writes the same few keys."""
    root = tmp_path / "cat"
    counts = {}
    for n_before in (1, 4):
        cat = root / f"n{n_before}"
        # N items already in the collection (same raster under different ids)
        for i in range(n_before):
            producer.register([data["utm"]], catalog=str(cat), collection="c", id_template=f"old{i}-{{stem}}")
        store = CountingStore(open_store(str(cat)))
        (res,) = producer.register([data["wgs84"]], catalog=store, collection="c")
        assert res.action == "created"
        # the mirror (every writer keeps it current): one new fragment of the
        # collection's partition and one LIST of that partition's fragments
        mirror = {k for k in set(store.gets) | set(store.puts) if k.startswith("c/items-fragments/")}
        assert len([k for k in store.puts if k in mirror]) == 1
        # group commit (issue 12): a lone writer lists the pending intents
        # (none) and commits the collection with one plain compare-and-swap:
        # no intent announced, none deleted
        intents = {k for k in store.puts if is_intent_key(k)}
        assert intents == set() and not store.deletes
        assert {k.rstrip("/") for k in store.lists} <= {"c/items-fragments", "c/_intents"}
        touched = (set(store.gets) | set(store.puts)) - mirror - intents
        # the item and its parent; the root is read once per batch (its link to
        # the collection is checked: crash recovery) but not written
        assert touched == {f"c/{res.id}/{res.id}.json", "c/collection.json", "catalog.json"}
        assert "catalog.json" not in store.puts
        counts[n_before] = (sum(store.gets.values()), sum(store.puts.values()))
    assert counts[1] == counts[4]


def test_memory_catalog(data):
    url = "memory://test-register/cat"
    (res,) = producer.register([data["cog"]], catalog=url, collection="c")
    assert res.action == "created" and res.href.startswith("memory://")
    assert producer.validate_catalog(url) == []


BAD = {
    "nocrs": "CRS",
    "corrupt": "corrupt.tif",
    "truncated": "not completely written",
    "empty": "empty.tif",
    "notraster": "notraster.tif",
    "nodate": "datetime",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_gets_clear_error_and_changes_nothing(data, catalog_dir, name):
    producer.register([data["utm"]], catalog=str(catalog_dir), collection="c")
    before = tree_hash(catalog_dir)
    results = producer.register([data[name], data["utm"]], catalog=str(catalog_dir), collection="c")
    bad, good = results
    assert bad.action == "error" and good.action == "unchanged"
    assert bad.error_type == "input"
    assert Path(data[name]).name in bad.error
    assert BAD[name].lower() in bad.error.lower()
    assert tree_hash(catalog_dir) == before


def test_bad_input_into_a_new_catalog_creates_nothing(data, catalog_dir):
    results = producer.register([data["nocrs"]], catalog=str(catalog_dir), collection="c")
    assert results[0].action == "error"
    assert tree_hash(catalog_dir) == {}


@pytest.mark.parametrize("when", ["9999-12-31T23:00:00-02:00", "0001-01-01T00:30:00+01:00"])
def test_an_explicit_datetime_outside_the_years_1_to_9999_in_utc_is_an_input_error(data, catalog_dir, when):
    """Was error_type internal: "unexpected OverflowError: date value out of range";
    now refused once, when the options are made, before any product is read."""
    with pytest.raises(producer.api.InputError) as info:
        producer.register([data["utm"]], catalog=str(catalog_dir), collection="c", datetime=when)
    assert repr(when) in str(info.value)
    assert "years 1-9999 in UTC" in str(info.value) and "datetime=" in str(info.value)
    assert tree_hash(catalog_dir) == {}


@pytest.mark.parametrize("template", ["../{stem}", "{parent}/{stem}", "x\x07{stem}", ".."])
def test_unsafe_ids_are_refused(data, catalog_dir, template):
    """A template whose own text holds a character no id may hold is refused
    once, before any product; one that makes an unsafe id from safe text
    (``..``) fails the product."""
    if template == "..":
        results = producer.register(
            [data["utm"]], catalog=str(catalog_dir), collection="c", id_template=template
        )
        assert results[0].action == "error"
        assert "id" in results[0].error and "utm" in results[0].error
    else:
        with pytest.raises(producer.api.InputError, match="its own text holds characters"):
            producer.register([data["utm"]], catalog=str(catalog_dir), collection="c", id_template=template)
    assert tree_hash(catalog_dir) == {}


def test_unsafe_collection_id_is_an_input_error(data, catalog_dir):
    with pytest.raises(producer.api.InputError):
        producer.register([data["utm"]], catalog=str(catalog_dir), collection="a/b")


def test_malformed_existing_collection_is_left_alone(data, catalog_dir):
    producer.register([data["utm"]], catalog=str(catalog_dir), collection="c")
    (catalog_dir / "c" / "collection.json").write_text('{"type": "Collection", "id": "c", "links": [')
    before = tree_hash(catalog_dir)
    (res,) = producer.register([data["wgs84"]], catalog=str(catalog_dir), collection="c")
    assert res.action == "error"
    assert "c/collection.json" in res.error and "not valid JSON" in res.error
    assert tree_hash(catalog_dir) == before


def test_invalid_collection_metadata_writes_nothing(data, catalog_dir):
    # refused when the options are made (a usage error), as an item licence is
    with pytest.raises(producer.InputError, match="metadata of a new collection .*license"):
        producer.register(
            [data["utm"]],
            catalog=str(catalog_dir),
            collection="c",
            collection_meta={"license": "not a licence!"},
        )
    assert tree_hash(catalog_dir) == {}


def test_duplicate_ids_in_one_batch(data, tmp_path, catalog_dir):
    other = tmp_path / "other"
    other.mkdir()
    twin = other / Path(data["utm"]).name
    twin.write_bytes(Path(data["utm"]).read_bytes())
    first, second = producer.register([data["utm"], twin], catalog=str(catalog_dir), collection="c")
    assert first.action == "created"
    assert second.action == "error" and "id_template='{parent}_{stem}'" in second.error
    assert second.hint is not None and second.hint.option == "id_template"


def test_dry_run_writes_nothing(data, catalog_dir):
    results = producer.register(
        [data["utm"], data["nodate"]], catalog=str(catalog_dir), collection="c", dry_run=True
    )
    assert [r.action for r in results] == ["created", "error"]
    assert tree_hash(catalog_dir) == {}


def test_remove_unlinks_deletes_and_shrinks_extent(data, catalog_dir):
    results = producer.register(
        [data["utm"], data["wgs84"], data["cog"]], catalog=str(catalog_dir), collection="c"
    )
    ids = {Path(r.source).stem: r.id for r in results}
    full = read(catalog_dir, "c/collection.json")["extent"]
    removed = producer.remove(ids["wgs84_20240301"], catalog=str(catalog_dir), collection="c")
    assert removed.action == "removed"
    assert not (catalog_dir / "c" / ids["wgs84_20240301"]).exists()
    coll = read(catalog_dir, "c/collection.json")
    assert all(ids["wgs84_20240301"] not in l["href"] for l in coll["links"])
    remaining = [read(catalog_dir, f"c/{i}/{i}.json") for k, i in ids.items() if k != "wgs84_20240301"]
    from producer.catalog.documents import exact_extent

    assert coll["extent"] == exact_extent(remaining)
    assert coll["extent"] != full
    assert producer.validate_catalog(str(catalog_dir)) == []
    again = producer.remove(ids["wgs84_20240301"], catalog=str(catalog_dir), collection="c")
    assert again.action == "absent"


def test_result_shape():
    r = RegisterResult(source="a.tif", id="a", href="x", action="created")
    assert r.ok and r.to_dict() == {"source": "a.tif", "id": "a", "href": "x", "action": "created"}
    assert not RegisterResult(source="b.tif", error="boom").ok
