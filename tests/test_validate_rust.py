"""jsonschema-rs accepts exactly the documents the reference accepts.

producer.validate trusts jsonschema-rs only to accept a whole document
(:func:`producer.validate._accepted_by_rust`); anything it does not accept
goes through the checks that ran before (fastjsonschema, jsonschema for the
verdict and the words, :func:`producer.finite.non_finite`). Here its verdict
is compared with the reference's (jsonschema, Draft 7, formats as
annotations; the NaN check; the version, type and bundled-extension checks)
over the documents of tests/test_validate.py, a real item and collection the
tool writes, and thousands of edits of them.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import producer
from producer import validate
from producer.finite import non_finite
from producer.validate import CORE_SCHEMAS, STAC_VERSION, Validator
from tests import rasters
from tests.test_validate import make_catalog, make_collection, make_item

PROJ_V11 = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
NAN, INF = float("nan"), float("inf")

#: what any member may be replaced by: wrong JSON types, empty values, and
#: what is not JSON (NaN, infinities; nested too)
REPLACEMENTS: tuple[Any, ...] = (
    "x",
    "",
    0,
    -1,
    1.5,
    None,
    True,
    [],
    {},
    "nan",
    NAN,
    INF,
    -INF,
    [1, "a"],
    {"a": NAN},
)
DATETIMES = (
    "2024-13-01T00:00:00Z",
    "2024-05-01",
    "2024-05-01T10:00:00",
    "2024-05-01T10:00:00+01:00",
    "2024-05-01 10:00:00Z",
    "2024-05-01t10:00:00z",
    "2024-05-01T10:00:00.123456Z",
    "2024-05-01T10:00:00Z\n",
    "yesterday",
)
DATETIME_KEYS = frozenset(("datetime", "created", "updated", "start_datetime", "end_datetime"))
BBOXES: tuple[Any, ...] = (
    [1.0, 2.0, 3.0],
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    [1.0, 2.0, 3.0, "4"],
    [1.0, 2.0, 3.0, NAN],
    [[1.0, 2.0, 3.0, 4.0]],
    [],
    [1, 2, 3, 4],
    [True, 2.0, 3.0, 4.0],
)
NODATA = ("nan", "inf", "-inf", "NaN", "nan ", NAN, INF, None, "0", 0.5)
#: extension fields with a wrong value, added where the extension applies
EXTENSION_FIELDS: tuple[tuple[str, Any], ...] = (
    ("proj:code", 32632),
    ("proj:code", None),
    ("proj:shape", [1.5, 2.0]),
    ("proj:shape", [1]),
    ("proj:transform", [1.0, 2.0]),
    ("proj:bbox", [1.0, "2"]),
    ("proj:epsg", 4326),
    ("proj:projjson", {"type": "GeographicCRS"}),
    ("raster:scale", "1"),
    ("raster:bits_per_sample", 1.5),
    ("file:size", -1),
    ("file:size", "12"),
    ("file:checksum", 12),
    ("eo:cloud_cover", 101),
    ("eo:cloud_cover", "5"),
    ("gsd", 0),
    ("gsd", True),
    ("data_type", "uint7"),
    ("nodata", "nan"),
    ("statistics", {"minimum": "0"}),
)


# --------------------------------------------------------------------------
# The reference verdict
# --------------------------------------------------------------------------

_REFERENCE = Validator()


def reference_accepts(doc: Any) -> bool:
    """What :meth:`Validator.errors` decides without jsonschema-rs nor
    fastjsonschema: jsonschema for every schema, the NaN check, and the
    checks before the schemas."""
    if not isinstance(doc, dict) or non_finite(doc):
        return False
    if doc.get("stac_version") != STAC_VERSION:
        return False
    doc_type = doc.get("type")
    core = CORE_SCHEMAS.get(doc_type) if isinstance(doc_type, str) else None
    if core is None:
        return False
    urls = [core]
    extensions = doc.get("stac_extensions", [])
    if isinstance(extensions, list):
        for extension in extensions:
            if isinstance(extension, str):
                if not _REFERENCE.bundled(extension):
                    return False
                urls.append(extension)
    return all(not list(_REFERENCE.compiled(url).iter_errors(doc)) for url in dict.fromkeys(urls))


def accepted_by_rust(doc: dict[str, Any]) -> bool:
    before = copy.deepcopy(doc)
    verdict = validate._accepted_by_rust(doc)
    assert _same(doc, before), "jsonschema-rs changed the document"
    return verdict


def _same(a: Any, b: Any) -> bool:
    """Equality with NaN equal to NaN (and key order kept)."""
    return repr(a) == repr(b)


# --------------------------------------------------------------------------
# Documents and their edits
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """An item and its collection as the tool writes them (a real COG)."""
    tmp = tmp_path_factory.mktemp("written")
    source = rasters.write_cog(tmp / "data")
    (result,) = producer.register([str(source)], catalog=str(tmp / "cat"), collection="c")
    assert result.action == "created", result.error
    item_file = next((tmp / "cat").rglob(f"{result.item['id']}.json"))
    return {
        "item": json.loads(item_file.read_text()),
        "collection": json.loads((tmp / "cat" / "c" / "collection.json").read_text()),
    }


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every member path below ``node``; of a geometry's coordinates only
    the first position and its first number (the rest repeat them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        coordinates = "coordinates" in path
        for i, value in enumerate(node):
            if coordinates and i > 0:
                break
            yield (*path, i)
            yield from _paths(value, (*path, i))


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def _drop(doc: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


def edits(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``doc`` and many edits of it, valid and subtly invalid."""
    yield doc
    for path in _paths(doc):
        for value in REPLACEMENTS:
            yield _set(doc, path, value)
        yield _drop(doc, path)
        key = path[-1]
        if key in DATETIME_KEYS or "interval" in path:
            for text in DATETIMES:
                yield _set(doc, path, text)
        if key == "bbox":
            for bbox in BBOXES:
                yield _set(doc, path, bbox)
        if key == "nodata":
            for nodata in NODATA:
                yield _set(doc, path, nodata)
    for where in _field_holders(doc):
        for name, value in EXTENSION_FIELDS:
            yield _set(doc, (*where, name), value)
    for extension in ("https://example.com/not-bundled/schema.json", 5, PROJ_V11):
        yield _set(doc, ("stac_extensions",), [*doc.get("stac_extensions", []), extension])
    yield _set(doc, ("stac_extensions",), "not a list")
    yield _set(doc, ("stac_version",), "1.0.0")
    yield _set(doc, ("type",), "FeatureCollection")
    yield _set(doc, ("type",), ["Feature"])


def _field_holders(doc: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Where extension fields live: properties, the collection, assets, bands."""
    if "properties" in doc:
        yield ("properties",)
    else:
        yield ()
    for name, asset in doc.get("assets", {}).items():
        yield ("assets", name)
        for i in range(len(asset.get("bands", []))):
            yield ("assets", name, "bands", i)


def _disagreements(docs: Iterator[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(documents, accepted by the reference, the disagreements).

    jsonschema-rs may refuse what the reference accepts: its regular
    expressions are not Python's (``$`` does not match before a final
    newline, so a datetime ending in ``\\n`` fails STAC's pattern there).
    That costs the slow path, not a verdict: :meth:`Validator.errors` then
    decides as before, which is checked here. It must never accept what
    the reference refuses."""
    count = accepted = 0
    wrong = []
    for doc in docs:
        count += 1
        reference = reference_accepts(doc)
        accepted += reference
        rust = accepted_by_rust(doc)
        if rust and not reference:
            wrong.append("accepted: " + json.dumps(doc, default=repr)[:600])
        elif reference and not rust and Validator().errors(doc) != []:
            wrong.append("refused in the end: " + json.dumps(doc, default=repr)[:600])
    return count, accepted, wrong


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["item", "collection"])
def test_rust_verdict_is_the_reference_verdict_on_written_documents(
    written: dict[str, dict[str, Any]], name: str
) -> None:
    count, accepted, wrong = _disagreements(edits(written[name]))
    assert count > 500 and 0 < accepted < count, (count, accepted)
    assert wrong == [], f"{len(wrong)} of {count} verdicts differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize("make", [make_item, make_collection, make_catalog])
def test_rust_verdict_is_the_reference_verdict_on_hand_made_documents(
    make: Callable[[], dict[str, Any]],
) -> None:
    count, accepted, wrong = _disagreements(edits(make()))
    assert count > 200 and 0 < accepted < count, (count, accepted)
    assert wrong == [], f"{len(wrong)} of {count} verdicts differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize(
    "path",
    [
        ("properties", "custom"),
        ("assets", "data", "extra"),
        ("links", 0, "extra"),
        ("properties", "custom_list"),
    ],
)
@pytest.mark.parametrize("value", [NAN, INF, -INF, [1.0, NAN], {"deep": [{"x": -INF}]}])
def test_a_nan_where_no_schema_types_the_value_is_still_rejected(path: tuple[Any, ...], value: Any) -> None:
    """The schemas accept any value in a free member; the NaN check folded
    into jsonschema-rs (``_FINITE_SCHEMA``) must refuse it there, and the
    message is the one :func:`producer.finite.non_finite` words."""
    doc = _set(make_item(), path, value)
    assert not accepted_by_rust(doc)
    problems = Validator().errors(doc)
    assert problems and problems == non_finite(doc)
    assert all("is not JSON" in p for p in problems), problems


def test_documents_that_need_no_fallback_are_accepted_by_rust(written: dict[str, dict[str, Any]]) -> None:
    for doc in (*written.values(), make_item(), make_collection(), make_catalog()):
        assert accepted_by_rust(doc)


def test_a_schema_with_a_ref_that_is_not_bundled_falls_back_offline() -> None:
    """projection v1.1.0 ``$ref``s PROJJSON v0.5, which is not bundled:
    jsonschema-rs cannot build it (the retriever refuses, nothing is
    fetched: the suite blocks the network), and the reference path decides."""
    assert validate._rust_validator((PROJ_V11,)) is None
    assert validate._rust_validator((CORE_SCHEMAS["Feature"], PROJ_V11)) is None
    with pytest.raises(ValueError, match="is not bundled"):
        validate._retrieve_bundled("https://proj.org/schemas/v0.5/projjson.schema.json")
    doc = make_item()
    doc["stac_extensions"] = [PROJ_V11]
    doc["properties"] = {"datetime": "2024-05-01T10:00:00Z", "proj:epsg": 32632}
    assert not accepted_by_rust(doc)
    assert Validator().errors(doc) == [], "projection v1.1.0 documents are checked by jsonschema as before"


def test_values_that_are_not_json_go_to_the_reference_path() -> None:
    doc = make_item()
    doc["properties"][5] = "a key that is not a string"  # type: ignore[index]
    assert not accepted_by_rust(doc)


def test_after_the_first_documents_a_valid_one_is_accepted_by_rust_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From document ``RUST_AFTER`` of a process on, jsonschema-rs accepts
    a valid document without the compiled checks; a broken one still gets
    the reference's messages."""
    monkeypatch.setattr(validate, "_DOCUMENTS", itertools.count(validate.RUST_AFTER))

    def no_compiled_check(url: str) -> None:
        raise AssertionError(f"compiled check of {url} used for a valid document")

    validator = Validator()
    monkeypatch.setattr(validator, "accelerated", no_compiled_check)
    for doc in (make_item(), make_collection(), make_catalog()):
        assert validator.errors(doc) == []
    monkeypatch.undo()
    broken = make_item()
    broken["properties"]["proj:code"] = 32633
    assert validator.errors(broken)[0].startswith("properties.proj:code: ")


def test_the_first_documents_of_a_process_do_not_load_jsonschema_rs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-shot process (``register one.tif``: ~5 documents) keeps the
    compiled checks its cache holds and never pays jsonschema-rs's import
    and builds (cold start, issue 12 point 6)."""
    monkeypatch.setattr(validate, "_DOCUMENTS", itertools.count())
    built: list[str] = []
    monkeypatch.setattr(validate, "_rust_validator", built.append)
    validator = Validator()
    for _ in range(validate.RUST_AFTER):
        assert validator.errors(make_item()) == []
    assert built == []
    assert validator.errors(make_item()) == []
    assert built, "jsonschema-rs never used"
