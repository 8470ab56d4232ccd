"""Offline schema validation: producer.validate.

Documents are built by hand here (no extraction code involved), the network is
blocked wherever validation runs, and stac-valid is used as an independent
check that the documents and producer.validate.schema_map() work offline.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import pytest
from stac_validator.validate import StacValidate

from producer import validate
from producer.errors import ProducerError, ValidationError
from producer.validate import CORE_SCHEMAS, Validator, default_validator, schema_map

PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
EO = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
UNKNOWN = "https://stac-extensions.github.io/sar/v1.0.0/schema.json"
METASCHEMA = "http://json-schema.org/draft-07/schema"


# --------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------


def make_item() -> dict[str, Any]:
    """A small valid item using projection/raster/file/eo where each schema allows."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [PROJ, RASTER, FILE, EO],
        "id": "scene-1",
        "collection": "ndvi",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[10.0, 50.0], [11.0, 50.0], [11.0, 51.0], [10.0, 51.0], [10.0, 50.0]]],
        },
        "bbox": [10.0, 50.0, 11.0, 51.0],
        "properties": {
            "datetime": "2024-05-01T10:00:00Z",
            "created": "2024-05-02T08:00:00Z",
            "proj:code": "EPSG:32632",
            "proj:bbox": [500000.0, 5539000.0, 570000.0, 5650000.0],
            "proj:shape": [11100, 7000],
            "proj:transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 5650000.0],
            "eo:cloud_cover": 12.5,
        },
        "links": [
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        ],
        "assets": {
            "data": {
                "href": "s3://bucket/products/scene-1.tif",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "file:size": 123456,
                "file:checksum": "1220" + "ab" * 32,
                "bands": [
                    {
                        "name": "red",
                        "data_type": "uint16",
                        "nodata": 0,
                        "raster:bits_per_sample": 12,
                        "raster:spatial_resolution": 10.0,
                        "eo:common_name": "red",
                        "eo:center_wavelength": 0.665,
                    }
                ],
            }
        },
    }


def make_collection(n_items: int = 2) -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [PROJ, FILE],
        "id": "ndvi",
        "description": "NDVI products",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[10.0, 50.0, 11.0, 51.0]]},
            "temporal": {"interval": [["2024-05-01T10:00:00Z", None]]},
        },
        "summaries": {"proj:code": ["EPSG:32632"], "gsd": {"minimum": 10, "maximum": 10}},
        "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"}]
        + [
            {"rel": "item", "href": f"./scene-{i}/scene-{i}.json", "type": "application/geo+json"}
            for i in range(n_items)
        ],
    }


def make_catalog() -> dict[str, Any]:
    return {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "root",
        "description": "Root catalog",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            {"rel": "child", "href": "./ndvi/collection.json", "type": "application/json"},
        ],
    }


VALID = {"item": make_item, "collection": make_collection, "catalog": make_catalog}


def broken(kind: str) -> dict[str, Any]:
    """Documents with exactly one (kind of) problem, by name."""
    doc = make_item()
    if kind == "missing-id":
        del doc["id"]
    elif kind == "bbox-type":
        doc["bbox"] = "10,50,11,51"
    elif kind == "proj-code-type":
        doc["properties"]["proj:code"] = 32632
    elif kind == "unknown-extension":
        doc["stac_extensions"].append(UNKNOWN)
    elif kind == "stac-version":
        doc["stac_version"] = "1.0.0"
    elif kind == "unknown-type":
        doc["type"] = "FeatureCollection"
    else:  # pragma: no cover - test bug
        raise AssertionError(kind)
    return doc


# (kind, the message must start with, and contain)
BROKEN = [
    ("missing-id", "id: ", "'id' is a required property"),
    ("bbox-type", "bbox: ", "is not of type 'array'"),
    ("proj-code-type", "properties.proj:code: ", PROJ),
    (
        "unknown-extension",
        "stac_extensions[4]: ",
        f"extension schema {UNKNOWN} is not bundled; stac-producer validates offline only: ",
    ),
    ("stac-version", "stac_version: ", "STAC 1.1.0 only"),
    ("unknown-type", "type: ", "'FeatureCollection' is not a STAC document type"),
]


# --------------------------------------------------------------------------
# Network blocked
# --------------------------------------------------------------------------


# The suite's one network block (tests/netguard.py, loaded by conftest) is on
# for every test here: a schema fetch beyond 127.0.0.1 fails at once, and
# tests/test_netguard.py proves it.


# --------------------------------------------------------------------------
# Valid and broken documents
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_documents_pass(name: str) -> None:
    doc = VALID[name]()
    before = copy.deepcopy(doc)
    validator = Validator()
    assert validator.errors(doc) == []
    validator.check(doc, f"{name}.json")
    assert doc == before  # nothing mutated


@pytest.mark.parametrize(("kind", "prefix", "text"), BROKEN)
def test_broken_documents_report_the_path(kind: str, prefix: str, text: str) -> None:
    problems = Validator().errors(broken(kind))
    assert problems, kind
    assert any(p.startswith(prefix) and text in p for p in problems), problems


def test_schema_problems_name_their_schema() -> None:
    (problem,) = Validator().errors(broken("proj-code-type"))
    assert problem == (f"properties.proj:code: 32632 is not of type 'string', 'null' (schema {PROJ})")


@pytest.mark.parametrize(
    ("field", "value", "prefix", "schema"),
    [
        ("raster:bits_per_sample", "12", "assets.data.bands[0].raster:bits_per_sample: ", RASTER),
        ("eo:center_wavelength", "red", "assets.data.bands[0].eo:center_wavelength: ", EO),
    ],
)
def test_band_fields_are_checked(field: str, value: Any, prefix: str, schema: str) -> None:
    doc = make_item()
    doc["assets"]["data"]["bands"][0][field] = value
    problems = Validator().errors(doc)
    assert len(problems) == 1 and problems[0].startswith(prefix) and schema in problems[0], problems


def test_file_and_projection_asset_fields_are_checked() -> None:
    doc = make_item()
    doc["assets"]["data"]["file:size"] = -1
    doc["assets"]["data"]["proj:unknown"] = 1
    problems = Validator().errors(doc)
    assert any(p.startswith("assets.data.file:size: ") and FILE in p for p in problems), problems
    assert any(p.startswith("assets.data: ") and "proj:unknown" in p and PROJ in p for p in problems), (
        problems
    )


def test_bad_geometry_points_at_the_ring() -> None:
    doc = make_item()
    doc["geometry"]["coordinates"] = [[[10.0, 50.0], [11.0, 50.0]]]
    problems = Validator().errors(doc)
    assert problems == [
        f"geometry.coordinates[0]: [[10.0, 50.0], [11.0, 50.0]] is too short (schema {CORE_SCHEMAS['Feature']})"
    ]


def test_version_and_type_are_checked_before_schemas() -> None:
    doc = make_item()
    doc["stac_version"] = "1.0.0"
    doc["type"] = "Item"
    problems = Validator().errors(doc)
    assert [p.split(":")[0] for p in problems] == ["stac_version", "type"]


def test_not_an_object() -> None:
    assert Validator().errors([1, 2]) == ["(root): a STAC document is a JSON object, not list"]  # type: ignore[arg-type]


def test_check_raises_validation_error() -> None:
    doc = make_item()
    del doc["id"]
    doc["bbox"] = "x"
    doc["properties"]["proj:code"] = 1
    doc["properties"]["proj:shape"] = "x"
    with pytest.raises(ValidationError) as info:
        Validator().check(doc, "ndvi/scene-1/scene-1.json")
    err = info.value
    assert isinstance(err, ProducerError) and isinstance(err, ValueError)
    assert str(err).startswith("ndvi/scene-1/scene-1.json is not valid STAC 1.1.0 (4 problems)")
    assert err.errors[0] in str(err) and "and 1 more (see .errors)" in str(err)
    assert len(err.errors) == 4 and all(": " in e for e in err.errors)


def test_extension_with_unbundled_ref_is_reported_not_fetched() -> None:
    # projection v1.1.0 $refs PROJJSON v0.5, which is not bundled.
    doc = make_item()
    doc["stac_extensions"] = ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
    doc["properties"] = {"datetime": "2024-05-01T10:00:00Z", "proj:projjson": {"type": "GeographicCRS"}}
    doc["assets"]["data"] = {"href": "s3://bucket/x.tif"}
    (problem,) = Validator().errors(doc)
    assert "https://proj.org/schemas/v0.5/projjson.schema.json" in problem
    assert "not bundled; stac-producer validates offline only" in problem


# --------------------------------------------------------------------------
# Offline: our validator and stac-valid with schema_map()
# --------------------------------------------------------------------------


def _stac_valid(path: Path) -> tuple[bool, list[dict[str, Any]]]:
    checker = StacValidate(str(path), schema_map=schema_map())
    valid = checker.run()
    return valid, checker.message


@pytest.mark.parametrize("name", sorted(VALID))
def test_stac_valid_offline_accepts_valid_documents(name: str, tmp_path: Path) -> None:
    doc = VALID[name]()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    valid, message = _stac_valid(path)
    assert valid, message
    # the validator under test agrees, under the same network block
    assert Validator().errors(doc) == []


def test_stac_valid_offline_rejects_broken_documents(tmp_path: Path) -> None:
    for kind in ("proj-code-type", "missing-id", "bbox-type"):
        doc = broken(kind)
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(doc))
        valid, message = _stac_valid(path)
        assert not valid, (kind, message)
        assert message[0]["error_type"] == "JSONSchemaValidationError", message
        assert Validator().errors(doc)
    # stac-valid tries to fetch an unbundled extension: the block stops it
    path = tmp_path / "unknown-extension.json"
    path.write_text(json.dumps(broken("unknown-extension")))
    valid, message = _stac_valid(path)
    assert not valid and "tests may only connect to 127.0.0.1" in message[0]["error_message"], message


def test_stac_valid_offline_collection_with_schema_summary(tmp_path: Path) -> None:
    """collection.json $refs the draft-07 meta-schema for JSON-schema summaries."""
    doc = make_collection()
    doc["summaries"]["platform"] = {"type": "string", "enum": ["sentinel-2a", "sentinel-2b"]}
    path = tmp_path / "collection.json"
    path.write_text(json.dumps(doc))
    assert _stac_valid(path)[0]
    assert Validator().errors(doc) == []


def test_schema_map_is_fresh_and_absolute() -> None:
    first = schema_map()
    first.clear()  # stac-valid mutates the map it is given
    again = schema_map()
    assert again and all(Path(p).is_absolute() and Path(p).is_file() for p in again.values())


# --------------------------------------------------------------------------
# Caching and laziness
# --------------------------------------------------------------------------


def test_validators_are_compiled_once() -> None:
    validator = Validator()
    url = CORE_SCHEMAS["Feature"]
    first = validator.compiled(url)
    validator.errors(make_item())
    assert validator.compiled(url) is first
    assert validator.compiled(url + "#") is first
    assert validator.accelerated(PROJ) is validator.accelerated(PROJ)
    assert default_validator() is default_validator()


def test_unknown_schema_cannot_be_compiled() -> None:
    with pytest.raises(ValidationError, match="is not bundled; stac-producer validates offline only"):
        Validator().compiled(UNKNOWN)


def test_construction_does_no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("schemas read at construction")

    monkeypatch.setattr(validate, "_schema_files", fail)
    Validator()


# --------------------------------------------------------------------------
# Acceleration agrees with the reference
# --------------------------------------------------------------------------


def _variants() -> Iterator[dict[str, Any]]:
    yield from (make() for make in VALID.values())
    for kind, _, _ in BROKEN:
        if kind not in ("unknown-extension", "stac-version", "unknown-type"):
            yield broken(kind)
    edits = [
        lambda d: d.update(geometry=None),
        lambda d: (d.update(geometry=None), d.pop("bbox")),
        lambda d: d["properties"].update(datetime=None),
        lambda d: d["properties"].update(gsd=True),
        lambda d: d["properties"].update({"proj:shape": [1.0, 2.0]}),
        lambda d: d["properties"].update({"proj:shape": [1.5, 2.0]}),
        lambda d: d["properties"].update({"proj:projjson": {"type": "GeographicCRS"}}),
        lambda d: d["links"][0].update(method="get"),
        lambda d: d.pop("collection"),
        lambda d: d["assets"]["data"]["bands"][0].update(nodata="nan"),
        lambda d: d["assets"]["data"]["bands"][0].update(data_type="uint7"),
    ]
    for edit in edits:
        doc = make_item()
        edit(doc)
        yield doc
    doc = make_collection()
    doc["extent"]["temporal"]["interval"] = [["2024-01-01T00:00:00+01:00", None]]
    yield doc
    doc = make_collection()
    doc["summaries"]["x"] = {"type": 5}
    yield doc


def test_accelerated_path_agrees_with_jsonschema() -> None:
    validator = Validator()
    for doc in _variants():
        for url in [CORE_SCHEMAS[doc["type"]], *doc.get("stac_extensions", [])]:
            fast = validator.accelerated(url)
            assert fast is not None, url
            reference_ok = not list(validator.compiled(url).iter_errors(doc))
            before = copy.deepcopy(doc)
            try:
                fast(doc)
                fast_ok = True
            except Exception:
                fast_ok = False
            assert doc == before, "fastjsonschema wrote defaults into the document"
            assert fast_ok == reference_ok, (url, doc)


def _reference_errors(validator: Validator, doc: dict[str, Any]) -> list[str]:
    """What jsonschema alone reports for ``doc`` (the compiled check bypassed)."""
    urls = [CORE_SCHEMAS[doc["type"]], *doc.get("stac_extensions", [])]
    return list(dict.fromkeys(m for url in urls for m in validator._schema_errors_reference(url, doc)))


def test_large_collection_messages_are_the_reference_ones() -> None:
    validator = Validator()
    doc = make_collection(1_500)
    assert validator.errors(doc) == []
    doc["links"][700]["href"] = ""
    problems = validator.errors(doc)
    assert problems == _reference_errors(validator, doc)
    assert problems[0].startswith("links[700].href: ")


# --------------------------------------------------------------------------
# Packaging: found through importlib.resources
# --------------------------------------------------------------------------


def test_schemas_are_package_resources() -> None:
    bundle = resources.files("producer").joinpath("schemas")
    assert bundle.joinpath("README.md").is_file()
    assert bundle.joinpath("LICENSE-stac-extensions.txt").is_file()
    mapping = schema_map()
    pystac_root = Path(str(resources.files("pystac.validation.jsonschemas"))).resolve()
    bundle_root = Path(str(bundle)).resolve()
    for url, path in mapping.items():
        p = Path(path)
        assert bundle_root in p.parents or pystac_root in p.parents, (url, path)
        schema = json.loads(p.read_text(encoding="utf-8"))
        if bundle_root in p.parents:  # layout = URL
            assert url == "https://" + p.relative_to(bundle_root).as_posix()
            assert urldefrag(schema["$id"]).url == url
    for url in [*CORE_SCHEMAS.values(), PROJ, RASTER, FILE, EO, "https://geojson.org/schema/Geometry.json"]:
        assert url in mapping


KNOWN_MISSING = {
    # projection v1.1.0's proj:projjson; only v0.4 and v0.7 are bundled.
    (
        "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        "https://proj.org/schemas/v0.5/projjson.schema.json",
    ),
}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_ref_resolves_locally() -> None:
    mapping = schema_map()
    missing = set()
    for url, path in mapping.items():
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
        base = schema.get("$id", url)
        for ref in _refs(schema):
            target = urldefrag(urljoin(base, ref)).url
            if target not in mapping and target != METASCHEMA:
                missing.add((url, target))
    assert missing == KNOWN_MISSING


def test_the_first_document_is_checked_by_compiled_code_and_problems_keep_their_words() -> None:
    """No warm-up: the first document already goes through fastjsonschema's
    compiled check (jsonschema ran for the first 50 uses of a schema before);
    a broken one still gets jsonschema's messages."""
    validator = Validator()
    calls: list[str] = []
    reference = validator._schema_errors_reference

    def counting(url: str, instance: Any) -> list[str]:
        calls.append(url)
        return reference(url, instance)

    validator._schema_errors_reference = counting  # type: ignore[method-assign]
    assert validator.errors(make_item()) == []
    assert calls == [], "jsonschema ran on a valid document"
    broken = make_item()
    broken["properties"]["proj:code"] = 32633
    broken["bbox"] = "not a bbox"
    messages = validator.errors(broken)
    assert any(m.startswith("properties.proj:code:") for m in messages)
    assert any(m.startswith("bbox:") for m in messages)
    assert messages == _reference_errors(Validator(), broken)


# --------------------------------------------------------------------------
# The on-disk cache of compiled checks
# --------------------------------------------------------------------------

CATALOG = CORE_SCHEMAS["Catalog"]


def _forget_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "_FAST", {})


def test_a_compiled_check_is_read_back_from_the_cache_without_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(validate.CACHE_ENV, str(tmp_path))
    _forget_compiled(monkeypatch)
    assert Validator().accelerated(CATALOG) is not None
    assert len(list(tmp_path.glob("*.marshal"))) == 1

    _forget_compiled(monkeypatch)  # a new process, as far as the check goes

    def no_compiling(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("compiled again although the cache holds the check")

    monkeypatch.setattr(validate.fastjsonschema, "compile_to_code", no_compiling)
    validator = Validator()
    assert validator.errors(make_catalog()) == []
    bad = make_catalog()
    bad["links"][0]["href"] = 5
    assert validator.errors(bad)[0].startswith("links[0].href: ")


def test_an_unwritable_cache_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(validate.CACHE_ENV, str(blocker / "cache"))
    _forget_compiled(monkeypatch)
    assert Validator().errors(make_catalog()) == []


def test_an_empty_cache_variable_disables_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(validate.CACHE_ENV, "")
    assert validate.cache_dir() is None
    _forget_compiled(monkeypatch)
    assert Validator().errors(make_catalog()) == []


def test_precompile_covers_every_schema_a_document_can_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an image build runs: every core and bundled extension schema, the
    one that cannot be compiled (projection v1.1.0) left to jsonschema."""
    monkeypatch.setenv(validate.CACHE_ENV, str(tmp_path))
    compiled = validate.precompile()
    assert set(CORE_SCHEMAS.values()) <= set(compiled)
    assert PROJ in compiled and RASTER in compiled and FILE in compiled and EO in compiled
    assert "https://stac-extensions.github.io/projection/v1.1.0/schema.json" not in compiled
