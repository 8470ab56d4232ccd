"""The pure catalog layer: layout keys, relative hrefs, extents across the antimeridian."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from producer.catalog import documents as docs
from producer.catalog.extent import (
    bbox_contains,
    format_time,
    interval_contains,
    parse_time,
    union_bbox,
    union_interval,
)
from producer.catalog.layout import Layout, relative_href, resolve_href
from producer.errors import CatalogError, InputError, ValidationError


def item(bbox, start, end=None, id_="x"):
    props = (
        {"datetime": start}
        if end is None
        else {"datetime": None, "start_datetime": start, "end_datetime": end}
    )
    return {"type": "Feature", "id": id_, "bbox": bbox, "properties": props, "links": []}


# --- layout -------------------------------------------------------------------


def test_default_layout_keys_and_chain():
    lay = Layout()
    assert lay.item_key("ndvi", "s1") == "ndvi/s1/s1.json"
    assert lay.parent_key("ndvi") == "ndvi/collection.json"
    assert lay.chain("ndvi") == ["ndvi/collection.json", "catalog.json"]


def test_partitioned_layout_uses_item_start_time():
    lay = Layout("year/month")
    when = datetime(2024, 3, 9, tzinfo=UTC)
    assert lay.item_key("ndvi", "s1", when) == "ndvi/2024/03/s1/s1.json"
    assert lay.chain("ndvi", when) == [
        "ndvi/2024/03/catalog.json",
        "ndvi/2024/catalog.json",
        "ndvi/collection.json",
        "catalog.json",
    ]
    assert Layout("year").parent_key("ndvi", when) == "ndvi/2024/catalog.json"


def test_unknown_partition_is_an_input_error():
    with pytest.raises(InputError, match="partition"):
        Layout("week")


@pytest.mark.parametrize(
    "src,dst,href",
    [
        ("ndvi/s1/s1.json", "ndvi/collection.json", "../collection.json"),
        ("ndvi/s1/s1.json", "catalog.json", "../../catalog.json"),
        ("ndvi/collection.json", "ndvi/s1/s1.json", "./s1/s1.json"),
        ("catalog.json", "ndvi/collection.json", "./ndvi/collection.json"),
        ("ndvi/2024/03/catalog.json", "ndvi/2024/03/a/a.json", "./a/a.json"),
    ],
)
def test_relative_href_round_trips(src, dst, href):
    assert relative_href(src, dst) == href
    assert resolve_href(src, href) == dst


def test_resolve_href_refuses_escapes_and_absolute_urls():
    assert resolve_href("catalog.json", "../outside.json") is None
    assert resolve_href("a/b.json", "s3://bucket/x.json") is None
    assert resolve_href("a/b.json", "/etc/passwd") is None


# --- extents -------------------------------------------------------------------


def test_union_of_plain_boxes():
    assert union_bbox([[0, 0, 10, 1], [20, -5, 30, 2]]) == [0, -5, 30, 2]


def test_union_across_antimeridian_takes_the_short_way():
    # 175..179E and 179W..175W: 10 degrees wide across 180, not 350 degrees around
    assert union_bbox([[175, 0, 179, 1], [-179, 0, -175, 2]]) == [175, 0, -175, 2]
    # a crossing box grows to the east
    assert union_bbox([[170, 0, -170, 1], [-175, 0, -160, 2]]) == [170, 0, -160, 2]


def test_union_with_world_or_gapless_arcs_is_the_world():
    assert union_bbox([[-180, -1, 180, 1], [20, 0, 30, 2]]) == [-180, -1, 180, 2]
    arcs = [[-180, 0, -60, 1], [-60, 0, 60, 1], [60, 0, 180, 1]]
    assert union_bbox(arcs)[0::2] == [-180, 180]


def test_union_is_order_independent():
    boxes = [[170, 0, 175, 1], [-170, 0, -160, 1], [100, 0, 110, 1], [-20, 0, -10, 1]]
    expected = union_bbox(boxes)
    assert union_bbox(list(reversed(boxes))) == expected
    assert union_bbox(boxes[1:] + boxes[:1]) == expected


def test_bbox_contains_handles_crossing_boxes():
    assert bbox_contains([170, -10, -170, 10], [175, 0, 179, 1])
    assert bbox_contains([170, -10, -170, 10], [178, 0, -178, 1])
    assert not bbox_contains([170, -10, -170, 10], [160, 0, 179, 1])
    assert not bbox_contains([0, 0, 10, 10], [1, 1, 2, 11])


def test_intervals():
    assert union_interval(
        [
            ("2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z"),
            ("2023-12-31T23:00:00+00:00", "2024-02-01T00:00:00Z"),
        ]
    ) == ["2023-12-31T23:00:00Z", "2024-02-01T00:00:00Z"]
    assert interval_contains(["2024-01-01T00:00:00Z", None], ("2030-01-01T00:00:00Z",) * 2)
    assert not interval_contains(
        ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"], ("2023-01-01T00:00:00Z", "2024-01-05T00:00:00Z")
    )
    # one spelling with the items (pystac.utils.datetime_to_str): six fraction digits
    assert format_time(parse_time("2024-05-01T12:00:00.250+02:00")) == "2024-05-01T10:00:00.250000Z"


def test_merge_extent_replaces_placeholder_then_grows():
    coll = docs.new_collection("c", None, Layout())
    assert coll["extent"]["spatial"]["bbox"] == [[-180.0, -90.0, 180.0, 90.0]]
    assert docs.merge_extent(coll, [item([1, 2, 3, 4], "2024-01-01T00:00:00Z")], was_empty=True)
    assert coll["extent"]["spatial"]["bbox"][0] == [1, 2, 3, 4]
    assert coll["extent"]["temporal"]["interval"][0] == ["2024-01-01T00:00:00Z"] * 2
    # contained: no change
    assert not docs.merge_extent(coll, [item([1.5, 2.5, 2, 3], "2024-01-01T00:00:00Z")], was_empty=False)
    # grows
    assert docs.merge_extent(
        coll, [item([0, 2, 3, 4], "2023-01-01T00:00:00Z", "2024-06-01T00:00:00Z")], was_empty=False
    )
    assert coll["extent"]["spatial"]["bbox"][0] == [0, 2, 3, 4]
    assert coll["extent"]["temporal"]["interval"][0] == ["2023-01-01T00:00:00Z", "2024-06-01T00:00:00Z"]


def test_touches_boundary_only_for_edge_items():
    items = [
        item([0, 0, 10, 10], "2024-01-01T00:00:00Z"),
        item([2, 2, 3, 3], "2024-01-05T00:00:00Z"),
        item([5, 5, 20, 6], "2024-01-09T00:00:00Z"),
    ]
    extent = docs.exact_extent(items)
    assert extent["spatial"]["bbox"][0] == [0, 0, 20, 10]
    assert docs.touches_boundary(extent, items[0])
    assert not docs.touches_boundary(extent, items[1])  # strictly inside in space and time
    assert docs.touches_boundary(extent, items[2])


def test_add_links_is_idempotent_and_updates_titles():
    doc = {"links": []}
    link = {"rel": "item", "href": "./a/a.json", "type": docs.GEOJSON, "title": "a"}
    assert docs.add_links(doc, [link])
    assert not docs.add_links(doc, [link])
    assert docs.add_links(doc, [{**link, "title": "A"}])
    assert doc["links"] == [{**link, "title": "A"}]
    assert docs.remove_links(doc, "item", "./a/a.json") == 1 and doc["links"] == []


@pytest.mark.parametrize(
    "data,match",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "FeatureCollection", "id": "x", "links": []}', "expected Collection"),
        (b'{"type": "Collection", "links": []}', "lacks a string 'id'"),
        (b'{"type": "Collection", "id": "c", "links": [{"rel": "item"}]}', "without an 'href'"),
    ],
)
def test_loads_rejects_malformed_documents_with_the_key(data, match):
    with pytest.raises(CatalogError, match=match) as info:
        docs.loads(data, "ndvi/collection.json", expect=("Collection",))
    assert "ndvi/collection.json" in str(info.value)


def test_dumps_fast_path_is_byte_identical_to_json_dumps():
    """Parents with many links take the C-encoder path of ``dumps``; its bytes
    must equal plain ``json.dumps(indent=2)`` whatever the links hold: escapes,
    newlines, the separator text itself inside strings, non-ASCII, numbers,
    NaN (refused, as json.dumps with allow_nan=False), nested values (slow path), an empty link, the placeholder text."""
    rng = random.Random(20261201)
    alphabet = ["a", "é", '"', "\\", "\n", "},\n      {", "\x00", "\u2028", "/", " ", "{", "}", ","]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))

    def value():
        if rng.random() < 0.0005:  # some documents (a few of them fast) hold one
            return float("nan")
        return rng.choice([text(), rng.randint(-5, 5), rng.random() * 1e10, True, False, None])

    fast = 0
    for _ in range(600):
        links = [
            {text() or "k": value() for _ in range(rng.randint(1, 5))} for _ in range(rng.randint(0, 150))
        ]
        if links and rng.random() < 0.1:
            links[rng.randrange(len(links))] = {"headers": {"nested": [1, 2]}}
        if links and rng.random() < 0.05:
            links[0] = {}
        doc = {
            "type": "Collection",
            "id": text(),
            "links": links,
            "extent": {"a": [1, 2]},
            "description": "\x00links\x00" if rng.random() < 0.05 else text(),
        }
        try:
            expected = (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        except ValueError:  # a NaN: not JSON, refused on every path (tests/test_json_finite.py)
            with pytest.raises(ValidationError):
                docs.dumps(doc)
            continue
        assert docs.dumps(doc) == expected
        fast += len(links) > 64
    assert fast > 100  # the fast path was exercised, not only the fallback


def test_copy_doc_is_independent_where_mutations_reach():
    doc = {
        "type": "Collection",
        "id": "c",
        "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}},
        "links": [{"rel": "item", "href": "./a/a.json", "title": "a"}],
    }
    copied = docs.copy_doc(doc)
    assert copied == doc
    copied["links"][0]["title"] = "changed"
    copied["links"].append({"rel": "item", "href": "./b/b.json"})
    copied["extent"]["spatial"]["bbox"][0][0] = -5
    assert doc["links"] == [{"rel": "item", "href": "./a/a.json", "title": "a"}]
    assert doc["extent"]["spatial"]["bbox"] == [[0, 0, 1, 1]]


def test_new_or_changed_links_are_the_ones_to_validate():
    old = [{"rel": "root", "href": "../catalog.json"}] + [
        {"rel": "item", "href": f"./{i}/{i}.json", "title": str(i)} for i in range(5)
    ]
    new = [dict(link) for link in old] + [{"rel": "item", "href": "./9/9.json"}]
    new[3]["title"] = "retitled"
    got = docs.new_or_changed_links(old, new)
    assert got == [new[0], new[3], new[-1]]  # structural always, changed, appended
    shifted = [old[0]] + old[2:]  # a removal: what moved is validated again, never less
    assert docs.new_or_changed_links(old, shifted) == shifted


def test_copy_doc_copies_every_nested_member_like_deepcopy():
    # the fast copy of the members beside the links (extent, summaries,
    # item_assets, assets, foreign fields) must be as deep as copy.deepcopy:
    # the mutations merge into them in place
    nested = {"a": [1, 2.5, {"b": [None, True, "x", [3, [4]]]}], "t": (1, [2])}
    doc = {"type": "Collection", "id": "c", "summaries": nested, "extra": [[0.5, {"k": "v"}]], "links": []}
    copied = docs.copy_doc(doc)
    assert copied == doc
    copied["summaries"]["a"][2]["b"][3][1].append(5)
    copied["summaries"]["a"][2]["b"].append("y")
    copied["summaries"]["t"][1].append(9)
    copied["extra"][0][1]["k"] = "w"
    assert doc["summaries"] == {"a": [1, 2.5, {"b": [None, True, "x", [3, [4]]]}], "t": (1, [2])}
    assert doc["extra"] == [[0.5, {"k": "v"}]]


def test_parent_problems_name_the_placeholder_extent_in_their_fixes():
    # the placeholder's text is made only for these messages (not on every read)
    placeholder = json.dumps(docs.empty_extent())
    base = {"type": "Collection", "stac_version": "1.1.0", "id": "c", "links": []}
    assert docs.parent_problems({**base, "extent": docs.empty_extent()}) == []
    (missing,) = docs.parent_problems(base)
    assert f'add "extent": {placeholder}' in missing
    (malformed,) = docs.parent_problems({**base, "extent": {"spatial": {}}})
    assert f"replace it with {placeholder}" in malformed
