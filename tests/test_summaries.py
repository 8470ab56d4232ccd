"""Informative collections: summaries and item_assets merged on every commit,
bounded, order-independent, recomputed exactly by reconcile."""

from __future__ import annotations

import itertools
import json
import re
import threading
from pathlib import Path

import pytest

import producer
from producer.catalog import summaries
from producer.store import CountingStore, open_store
from tests import rasters
from tests.pausing import PauseAfterGet
from tests.trees import assert_stac_valid_tree


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return rasters.write_all(tmp_path_factory.mktemp("rasters"))


def collection(root: Path, cid: str = "c") -> dict:
    return json.loads((root / cid / "collection.json").read_text())


def item(i: int, *, code: str = "EPSG:32633", dtype: str = "uint8", title: str | None = None) -> dict:
    return {
        "id": f"i{i}",
        "properties": {"proj:code": code, "platform": f"sat-{i % 2}", "gsd": 10 + i, "instruments": ["msi"]},
        "assets": {
            "data": {
                "href": f"/d/i{i}.tif",
                "type": "image/tiff",
                "roles": ["data"],
                "title": title or f"i{i}.tif",
                "bands": [{"name": "b1", "data_type": dtype}],
            }
        },
    }


def test_register_writes_summaries_and_item_assets(data, catalog_dir):
    results = producer.register(
        [data["utm"], data["wgs84"], data["multiband"]], catalog=str(catalog_dir), collection="c"
    )
    assert all(r.ok for r in results), [r.error for r in results]
    coll = collection(catalog_dir)
    assert coll["summaries"]["proj:code"] == ["EPSG:32633", "EPSG:4326"]
    assert coll["summaries"]["data_type"] == ["float32", "uint8"]  # sorted
    assert {"name": "b1"} in coll["summaries"]["bands"]
    # the data asset's title is each file's name: the items disagree, so it is left out
    assert coll["item_assets"] == {"data": {"type": "image/tiff; application=geotiff", "roles": ["data"]}}
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert_stac_valid_tree(catalog_dir)


def test_unchanged_rerun_does_not_write_the_collection(data, catalog_dir):
    producer.register([data["utm"], data["wgs84"]], catalog=str(catalog_dir), collection="c")
    store = CountingStore(open_store(str(catalog_dir)))
    results = producer.register([data["utm"], data["wgs84"]], catalog=store, collection="c")
    assert [r.action for r in results] == ["unchanged", "unchanged"]
    assert store.puts["c/collection.json"] == 0


def test_merge_in_any_order_and_split_equals_the_exact_recompute():
    items = [item(i, code=f"EPSG:{32630 + i % 3}", dtype=("uint8", "int16")[i % 2]) for i in range(6)]
    exact: dict = {"type": "Collection"}
    summaries.recompute(exact, items)
    for order in itertools.islice(itertools.permutations(items), 0, 720, 97):
        for split in (1, 2, 5):
            doc: dict = {"type": "Collection"}
            for start in range(0, len(order), split):
                summaries.merge(doc, order[start : start + split])
            assert doc == exact
    assert exact["summaries"]["gsd"] == {"minimum": 10, "maximum": 15}
    assert exact["summaries"]["platform"] == ["sat-0", "sat-1"]
    assert exact["summaries"]["instruments"] == ["msi"]
    assert exact["item_assets"]["data"] == {"type": "image/tiff", "roles": ["data"]}


def test_too_many_distinct_values_drop_that_summary_for_good():
    doc: dict = {"type": "Collection"}
    many = [item(i, code=f"EPSG:{32600 + i}") for i in range(summaries.MAX_VALUES + 1)]
    summaries.merge(doc, many)
    assert "proj:code" not in doc["summaries"]
    assert doc[summaries.STATE_FIELD]["capped"] == ["proj:code"]
    assert not summaries.merge(doc, [item(0)])  # a known value does not bring it back
    assert "proj:code" not in doc["summaries"]
    size = len(json.dumps(doc))
    summaries.merge(doc, [item(i, code=f"EPSG:{i}") for i in range(1000)])
    assert len(json.dumps(doc)) <= size + 100  # bounded however many items come


def test_removal_keeps_summary_values_until_reconcile_fix_recomputes_them(data, catalog_dir):
    producer.register([data["utm"], data["wgs84"]], catalog=str(catalog_dir), collection="c")
    producer.remove("wgs84_20240301", catalog=str(catalog_dir), collection="c")
    assert collection(catalog_dir)["summaries"]["proj:code"] == ["EPSG:32633", "EPSG:4326"]
    assert producer.validate_catalog(str(catalog_dir)) == []  # a superset is expected after a removal

    producer.reconcile(str(catalog_dir), fix=True)
    coll = collection(catalog_dir)
    assert coll["summaries"]["proj:code"] == ["EPSG:32633"]
    assert coll["item_assets"]["data"]["title"] == "utm_20240513.tif"  # one item left: it agrees
    assert producer.validate_catalog(str(catalog_dir)) == []
    assert_stac_valid_tree(catalog_dir)


def test_reconcile_fills_summaries_of_a_collection_written_before_them(data, catalog_dir):
    producer.register([data["utm"], data["multiband"]], catalog=str(catalog_dir), collection="c")
    path = catalog_dir / "c" / "collection.json"
    old = collection(catalog_dir)
    for key in ("summaries", "item_assets", summaries.STATE_FIELD):
        old.pop(key, None)
    path.write_text(json.dumps(old))
    found = producer.validate_catalog(str(catalog_dir))
    assert [(p.kind, p.key) for p in found] == [("stale-summary", "c/collection.json")]
    assert "summaries.proj:code" in found[0].message
    report = producer.reconcile(str(catalog_dir), fix=True)
    assert report.fixed.get("stale-summary") == 1
    assert collection(catalog_dir)["summaries"]["proj:code"] == ["EPSG:32633"]
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_register_racing_the_summaries_repair_keeps_its_values(data, catalog_dir):
    """reconcile --fix walks the items, then writes the exact summaries: an
    item registered between the two is merged back by its second walk."""
    producer.register([data["utm"]], catalog=str(catalog_dir), collection="c")
    path = catalog_dir / "c" / "collection.json"
    old = collection(catalog_dir)
    for key in ("summaries", "item_assets", summaries.STATE_FIELD):
        old.pop(key, None)
    path.write_text(json.dumps(old))  # stale: reconcile --fix will recompute
    item_key = "c/utm_20240513/utm_20240513.json"
    # reads of the item: validate's audit, the audit of what is linked, then the first walk
    paused = PauseAfterGet(open_store(str(catalog_dir)), item_key, nth=3)
    outcome: dict = {}
    worker = threading.Thread(target=lambda: outcome.update(report=producer.reconcile(paused, fix=True)))
    worker.start()
    assert paused.reached.wait(60)
    [racer] = producer.register([data["wgs84"]], catalog=str(catalog_dir), collection="c")
    assert racer.action == "created"
    paused.resume.set()
    worker.join(60)
    assert outcome["report"].fixed.get("stale-summary") == 1
    assert collection(catalog_dir)["summaries"]["proj:code"] == ["EPSG:32633", "EPSG:4326"]
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_merge_says_whether_the_document_changed():
    # merge compares the summaries, item_assets and state as they were with
    # what it writes: each kind of change is seen, a known item is not one
    doc: dict = {"type": "Collection", "summaries": {"other": ["kept"]}}
    assert summaries.merge(doc, [item(0)])
    assert not summaries.merge(doc, [item(0)])
    assert summaries.merge(doc, [item(1)])  # a new platform and gsd
    assert summaries.merge(doc, [item(0, code="EPSG:4326")])  # one more value in a list
    assert summaries.merge(doc, [item(0, dtype="int16")])  # a band summary
    png = {"id": "p", "properties": {}, "assets": {"preview": {"type": "image/png", "roles": ["overview"]}}}
    assert summaries.merge(doc, [png])  # item_assets: one more asset key
    before = json.dumps(doc, sort_keys=True)
    assert not summaries.merge(doc, [item(0), item(1, code="EPSG:4326", dtype="int16"), png])
    assert json.dumps(doc, sort_keys=True) == before
    assert doc["summaries"]["other"] == ["kept"]


def test_canonical_text_is_jsons():
    # the order of a summary's values follows this text: it must stay json's
    # (sort_keys, compact, ensure_ascii) for every value, plain or not
    import random

    rng = random.Random(3)
    alphabet = [chr(c) for c in range(0, 0x80)] + ["é", "\u2028", "\U0001f600", "\ud800"]
    values: list = ["", "EPSG:32633", "float32", 'a"b', "a\\b", "tab\t", "\x7f", "~", " ", "[", "]"]
    for _ in range(3000):
        values.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8))))
    values += [{"name": v} for v in values[:500]]
    values += [
        {"name": "b1", "a": "x"},
        {"b": "1", "a": "2"},
        {"name": 3},
        {1: "x"},
        7,
        2.5,
        True,
        None,
        [1, "a"],
    ]
    values += [{v: "x", "name": "n"} for v in values[:200] if isinstance(v, str)]
    for value in values:
        assert summaries._canon(value) == json.dumps(value, sort_keys=True, separators=(",", ":")), value


def _random_item(rng, index: int) -> dict:
    """An item document with the fields summaries read, drawn from small
    pools (so a collection often summarises them already), odd values too."""

    def pick(*choices):
        return rng.choice(choices)

    props: dict = {}
    for name, pool in (
        ("proj:code", ("EPSG:32632", "EPSG:4326", 4326, 4326.0, True, None, ["EPSG:32632", "EPSG:4326"])),
        ("platform", ("s2a", "s2b", ["s2a"], ["s2a", "s2b"], False, 0.0, -0.0)),
        ("instruments", (["msi"], ["msi", "oli"], "msi", [], [None, "msi"])),
        ("constellation", ("sentinel-2", 1, 1.0)),
        ("gsd", (10, 10.0, 20, 30.5, 5, True, None, float("nan"), "10")),
    ):
        if rng.random() < 0.6:
            props[name] = pick(*pool)
    assets: dict = {}
    for key in rng.sample(["data", "thumbnail", "meta", "b1"], rng.randrange(0, 3)):
        asset: dict = {"href": f"/x/{index}/{key}"}
        for field, pool in (
            ("type", ("image/tiff", "image/png", None)),
            ("roles", (["data"], ["overview"], ["data", "x"])),
            ("title", ("a", f"t{index}", None)),
        ):
            if rng.random() < 0.8:
                asset[field] = pick(*pool)
        if rng.random() < 0.5:
            asset["proj:code"] = pick("EPSG:32632", "EPSG:4326", 3857)
        if rng.random() < 0.6:
            asset["bands"] = [
                {"name": pick("b1", "b2", "ndvi", None), "data_type": pick("float32", "uint8", 8)}
                for _ in range(rng.randrange(0, 3))
            ] + ([pick("not a band", None)] if rng.random() < 0.1 else [])
        assets[key] = asset if rng.random() < 0.95 else "not an asset"
    return {"type": "Feature", "id": f"i{index}", "properties": props, "assets": assets}


def _at_the_bound(rng, value):
    """A list summary ``value`` (in its written order) filled up to the
    bound or one past it: a merge bringing one of its values caps it."""
    if not isinstance(value, list):
        return value
    fill = [f"v{i:02d}" for i in range(summaries.MAX_VALUES + rng.randrange(0, 2) - len(value))]
    return sorted([*value, *fill], key=summaries._canon)


def _perturbed(rng, doc: dict) -> dict:
    """``doc`` (a collection) with one of the hand edits a merge must see through."""
    summ = doc.get("summaries")
    edits = [
        lambda: None,
        lambda: None,
        lambda: doc.__setitem__("summaries", dict(reversed(list((summ or {"x": 1}).items())))),
        lambda: doc.__setitem__("summaries", {**(summ or {}), "custom": ["kept"]}),
        lambda: doc.__setitem__("summaries", {"custom": ["kept"], **(summ or {})}),
        lambda: doc.__setitem__("summaries", {}),
        lambda: doc.__setitem__("summaries", None),
        lambda: doc.__setitem__("item_assets", None),
        lambda: doc.__setitem__("item_assets", {}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, None),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {"mixed": {"data": []}}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {"mixed": {"data": ["type", "title"]}}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {"mixed": {"meta": ["roles"], "data": ["title"]}}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {"mixed": {"data": ["title"]}, "other": 1}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {"capped": ["platform"]}),
        lambda: doc.__setitem__(summaries.STATE_FIELD, {"mixed": {"data": ["title", "zz"]}}),
    ]
    if summ:
        name = rng.choice(list(summ))
        value = summ[name]
        edits += [
            lambda: summ.__setitem__(name, list(reversed(value)) if isinstance(value, list) else value),
            lambda: summ.__setitem__(name, [*value, value[0]] if isinstance(value, list) else value),
            lambda: summ.__setitem__(name, []),
            lambda: summ.__setitem__(name, "not a list"),
            lambda: summ.__setitem__(name, [*value, True, None] if isinstance(value, list) else value),
            lambda: summ.__setitem__(name, _at_the_bound(rng, value)),
            lambda: summ.__setitem__("gsd", {"maximum": 30, "minimum": 10}),
            lambda: summ.__setitem__("gsd", {"minimum": 30, "maximum": 10}),
            lambda: summ.__setitem__("gsd", {"minimum": 10, "maximum": 30, "x": 1}),
            lambda: summ.__setitem__("gsd", {"minimum": True, "maximum": 30}),
            lambda: summ.__setitem__("gsd", {"minimum": 10.0, "maximum": 10}),
        ]
    assets = doc.get("item_assets")
    if assets:
        key = rng.choice(list(assets))
        definition = assets[key]
        edits += [
            lambda: doc.__setitem__("item_assets", dict(reversed(list(assets.items())))),
            lambda: assets.__setitem__(key, dict(reversed(list(definition.items())))),
            lambda: assets.__setitem__(key, {**definition, "description": "d"}),
            lambda: assets.__setitem__(key, {"type": definition.get("type")}),
            lambda: assets.__setitem__(key, {**definition, "title": None}),
            lambda: assets.__setitem__(key, "not a definition"),
            lambda: assets.update(
                {f"k{i:02d}": {"type": "t", "roles": ["r"]} for i in range(summaries.MAX_ASSET_KEYS)}
            ),
        ]
    rng.choice(edits)()
    return doc


def test_merge_fast_path_gives_what_the_full_merge_gives():
    # merge answers "nothing new" without rebuilding the state when it can:
    # over many generated collections (merged, recomputed, hand-edited:
    # unsorted, duplicated, capped, mixed, partial, odd ranges, bools and
    # None) and items, the document (key order included) and the answer
    # must be exactly the full merge's, and the fast path must be taken
    import copy
    import random

    rng = random.Random(37)
    fast = 0
    for case in range(4000):
        doc: dict = {"type": "Collection", "id": "c"}
        history = [_random_item(rng, i) for i in range(rng.randrange(0, 4))]
        if rng.random() < 0.5:
            summaries.recompute(doc, history)
        else:
            for one in history:
                summaries.merge(doc, [one])
        doc = _perturbed(rng, doc) if rng.random() < 0.6 else doc
        items = [
            rng.choice(history) if history and rng.random() < 0.85 else _random_item(rng, case)
            for _ in range(rng.randrange(1, 3))
        ]
        want_doc, got_doc = copy.deepcopy(doc), copy.deepcopy(doc)
        try:
            want = summaries._merge_full(want_doc, copy.deepcopy(items))
        except TypeError as error:
            with pytest.raises(TypeError, match=re.escape(str(error))):
                summaries.merge(got_doc, iter(copy.deepcopy(items)))
            continue
        fast += summaries._brings_nothing(copy.deepcopy(doc), copy.deepcopy(items))
        got = summaries.merge(got_doc, iter(copy.deepcopy(items)))
        assert (got, json.dumps(got_doc)) == (want, json.dumps(want_doc)), (doc, items)
    assert fast > 500
