"""orjson writes documents and mirror lines only where its bytes are json's
(producer/jsontext.py): every case here is compared byte for byte with
``json``, and the cases orjson writes otherwise must take the json road."""

from __future__ import annotations

import json
import math
import random
import struct

import orjson
import pytest

from producer import jsontext
from producer.catalog import documents
from producer.changes import item_line
from producer.errors import ValidationError


class _Str(str):
    pass


class _Dict(dict):
    pass


def _item(**properties: object) -> dict:
    ring = [[7.6045217 + i / 1e3, 50.0039239 - i / 7e3] for i in range(200)] + [[7.6045217, 50.0039239]]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "a",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [7.6, 49.9, 7.8, 50.1],
        "properties": {"datetime": "2022-05-26T00:00:00Z", **properties},
        "links": [{"rel": "self", "href": "./a.json", "type": "application/json"}],
        "assets": {},
    }


CASES = [
    {},
    _item(),
    _item(tiny=1e-05),  # orjson: 0.00001
    _item(tiny=-1.2345678901234568e-05),
    _item(tiny=1e-07),  # orjson: 1e-7
    _item(tiny=9.999999999999999e-09),
    _item(tiny=1e-10, huge=1e300, big=1e16, small=0.0001, zero=-0.0),
    _item(note="1e-5 0.00001 null"),  # number-like text: the json road, same bytes
    _item(title='Zürich \u2603 \U0001f600 \x7f \x00 \x1f \u2028 \t\n"\\'),
    _item(nodata=None, flags=[True, False, None]),
    _item(count=2**63 - 1, low=-(2**63), beyond=2**64, far=10**30),
    _item(sub=_Str("x"), nested=_Dict(a=1)),
    _item(pair=(1.5, 2.5)),
    _item(**{"\u00e9": {"deep": [[[[]]], {}]}}),
]


@pytest.mark.parametrize("doc", CASES)
def test_a_document_is_written_as_json_writes_it(doc: dict) -> None:
    assert documents.dumps(doc) == (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize("doc", CASES)
def test_a_mirror_line_is_written_as_json_writes_it(doc: dict) -> None:
    assert item_line(doc) == json.dumps(doc, separators=(",", ":"))


@pytest.mark.parametrize(
    "doc", [*CASES, {"id": "x", "layout": None, "n": 1}, {"id": "x", "v": math.nan}, {"id": "x", "w": [None]}]
)
def test_a_document_and_its_line_made_together_are_what_each_is_alone(doc: dict) -> None:
    """``dumps_with_line`` (an item's document and its mirror line from one
    set of checks) gives ``dumps``' bytes and, where it gives a line,
    ``json``'s compact text; where orjson's text could differ, no line
    (and the document as ``dumps`` writes it, or its error)."""
    both = jsontext.pretty_and_compact(doc)
    if both is not None:
        assert both[0] == documents.dumps(doc)
        assert both[1] == json.dumps(doc, separators=(",", ":"), allow_nan=False)
    else:
        assert jsontext.pretty(doc) is None or jsontext.compact(doc) is None
    try:
        expected = documents.dumps(doc)
    except ValidationError:
        with pytest.raises(ValidationError):
            documents.dumps_with_line(doc)
        return
    data, line = documents.dumps_with_line(doc)
    assert data == expected
    assert line is None or line == item_line(doc)


def test_floats_of_every_magnitude_are_written_as_json_writes_them() -> None:
    rng = random.Random(12)
    floats = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    floats = [f for f in floats if math.isfinite(f)]
    floats += [m * 10.0**e for e in range(-12, 20) for m in (1.0, 1.5, 9.999999999999999)]
    for chunk in range(0, len(floats), 50):
        doc = {"values": floats[chunk : chunk + 50]}
        assert documents.dumps(doc) == (json.dumps(doc, indent=2) + "\n").encode()
        assert item_line(doc) == json.dumps(doc, separators=(",", ":"))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_not_written_as_null(bad: float) -> None:
    """orjson writes NaN as null: the output's null sends it to the check."""
    doc = _item(value=bad, nodata=None)
    assert jsontext.pretty(doc) is None and jsontext.compact(doc) is None
    with pytest.raises(ValidationError, match="properties.value"):
        documents.dumps(doc)
    with pytest.raises(ValueError):
        item_line(doc)


def test_an_ordinary_item_takes_the_orjson_road() -> None:
    """The point of it: a plain item (no tiny float, no null) is orjson's."""
    item = _item(title="Zürich")
    assert jsontext.pretty(item) == documents.dumps(item)
    assert jsontext.compact(item) == item_line(item)
    assert jsontext.pretty(_item(tiny=1e-05)) is None
    assert jsontext.compact(_item(tiny=1e-07)) is None
    assert jsontext.pretty(_item(sub=_Str("x"))) is None


def _parent(links: int, **extra: object) -> dict:
    return {
        "type": "Collection",
        "id": "c",
        "extent": {
            "spatial": {"bbox": [[-10.5, 40.25, 3.125, 50.0]]},
            "temporal": {"interval": [["2020", None]]},
        },
        "stac_producer:layout": None,
        **extra,
        "links": [
            {"rel": "item", "href": f"./i{i}/i{i}.json", "type": "application/geo+json"} for i in range(links)
        ],
    }


@pytest.mark.parametrize("links", [3, 500])
def test_a_large_parent_is_written_as_json_writes_it(links: int) -> None:
    doc = _parent(links)
    assert jsontext.pretty(doc) == (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize("links", [3, 500])
@pytest.mark.parametrize("where", ["extent", "link"])
def test_a_nan_in_a_large_parent_is_found_in_its_links_too(links: int, where: str) -> None:
    """A parent's plain links are left out of the NaN check (a C-speed pass
    shows they hold no float); one holding a float is looked at."""
    doc = _parent(links)
    if where == "extent":
        doc["extent"]["spatial"]["bbox"][0][1] = math.nan
    else:
        doc["links"][-1]["weight"] = math.inf
    assert jsontext.pretty(doc) is None
    with pytest.raises(ValidationError):
        documents.dumps(doc)


def _parsed(data: bytes | str) -> tuple[str, str]:
    """What json.loads gives for ``data`` (its repr, types included) or the error it raises."""
    try:
        return "ok", repr(json.loads(data))
    except (ValueError, RecursionError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def _parsed_fast(data: bytes | str) -> tuple[str, str]:
    try:
        return "ok", repr(jsontext.loads(data))
    except (ValueError, RecursionError) as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def test_loads_is_jsons_parse_value_for_value():
    # documents.loads reads every stored document through jsontext.loads:
    # the same values and types as json.loads, and json's own errors
    texts: list[bytes | str] = [
        b"18446744073709551615",
        b"18446744073709551616",  # beyond 64 bits: orjson gives a float
        b"-9223372036854775809",
        b'{"n": 123456789012345678901234, "s": "x"}',
        b'{"bbox": [1e400, -1e400], "x": NaN, "y": -Infinity}',
        b'"\\ud800"',
        b'"\xed\xa0\x80"',
        b"\xef\xbb\xbf{}",
        '{"a": 1}'.encode("utf-16"),
        b'{"a": 1, "a": 2}',
        b"-0",
        b"-0.0",
        b"1e-400",
        b'"\\u0000\\/"',
        b"[" * 2000 + b"]" * 2000,
        b"[1,]",
        b'"\t"',
        b"",
        b'{"id": "x"} trailing',
        '{"a": "é"}',
        '{"a": "é"}'.encode(),
    ]
    rng = random.Random(5)
    for _ in range(5000):
        x = struct.unpack("d", rng.randbytes(8))[0]
        if math.isfinite(x):
            texts.append(
                json.dumps(
                    {"v": [x, float(f"{x:.6e}")], "i": rng.getrandbits(rng.choice((8, 63, 64, 70)))}
                ).encode()
            )
    for data in texts:
        assert _parsed_fast(data) == _parsed(data), data[:80]


def test_documents_loads_keeps_an_integer_beyond_64_bits():
    data = json.dumps({"type": "Catalog", "id": "r", "links": [], "n": 2**64 + 1}).encode()
    assert documents.loads(data, "catalog.json")["n"] == 2**64 + 1


def test_the_number_checks_find_what_their_patterns_find():
    # jsontext searches the literal part of each pattern and looks at the
    # byte before: the verdict must be the patterns' (lookbehind included)
    import re

    tiny, exponent = re.compile(rb"(?<!\d)0\.0000"), re.compile(rb"\de-\d(?!\d)")
    rng = random.Random(11)
    pieces = [b"0", b".", b"e", b"-", b"5", b"1", b"a", b" ", b'"', b"0.0000", b"e-5", b"1e-", b"null", b":"]
    texts = [
        b"0.00001",
        b"10.00001",
        b"-0.00001",
        b"1e-5",
        b"1e-55",
        b"ae-5",
        b"e-5",
        b"0.00000.0000",
        b"x0.0000",
    ]
    texts += [b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))) for _ in range(20000)]
    nan = {"x": math.nan}  # a "null" in the text sends the document to the NaN check
    for out in texts:
        expected = not tiny.search(out) and not exponent.search(out)
        assert jsontext._as_json_writes(out, {}) == expected, out
        assert jsontext._as_json_writes(out, nan) == (expected and b"null" not in out), out


def test_pretty_text_with_top_level_nones_checks_every_other_null():
    # a "null" in the indented text is taken for a None without the NaN
    # check only as the value of a top-level member that is None; every
    # other one (nested, a NaN or an infinity anywhere, "null" in a string
    # or a key) leaves the verdict to the full check: pretty() must be
    # json's text where json writes one, None where json refuses
    def reference(doc: dict) -> bytes | None:
        try:
            return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()
        except ValueError:
            return None

    rng = random.Random(13)
    keys = ["a", "k", "stac_producer:layout", "null", ': null", "x', "é", "tab\tkey", 'q"', "b\\s", "", "nul"]
    values = [None, math.nan, math.inf, -math.inf, 1.5, "null", ": null", [None], [math.nan], {"k": None}]
    values += [{"k": math.nan}, [1, None], {"null": None}, 'x\n  "a": null']
    docs: list[dict] = [
        {"type": "Collection", "stac_producer:layout": None, "links": []},
        {"type": "Collection", "stac_producer:layout": math.nan},
        {"type": "Collection", "stac_producer:layout": None, "extent": {"x": [math.inf]}},
    ]
    for _ in range(5000):
        docs.append({rng.choice(keys): rng.choice(values) for _ in range(rng.randrange(1, 5))})
    for doc in docs:
        assert jsontext.pretty(doc) in (reference(doc), None), doc
        if reference(doc) is None:
            assert jsontext.pretty(doc) is None, doc
    # the usual case takes the short road: a flat collection's layout record
    coll = {
        "type": "Collection",
        "id": "c",
        "stac_producer:layout": None,
        "links": [],
        "extent": {"b": [1.0]},
    }
    out = orjson.dumps(coll, option=orjson.OPT_INDENT_2)
    assert jsontext._top_level_nones(out, coll)
    assert not jsontext._top_level_nones(out, {**coll, "stac_producer:layout": math.nan})
