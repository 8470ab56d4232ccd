"""``--collection-meta`` together with the shortcut flags (``--collection-title``,
``--collection-description``, ``--license``, ``--keyword``, ``--provider``):
a shortcut silently replaced the field the JSON object gave (``{"license":
"MIT"}`` with ``--license CC-BY-4.0`` made a CC-BY-4.0 collection, with no
word). Two different values of one field are a usage error naming both
flags, before anything is written; the same value given twice is fine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from tests import rasters


@pytest.fixture(scope="module")
def utm(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("rasters"))


def _register(utm: Path, catalog: Path, *args: str):
    return CliRunner().invoke(main, ["register", str(utm), "-c", str(catalog), "--collection", "c", *args])


@pytest.mark.parametrize(
    ("meta", "flags", "flag"),
    [
        ({"license": "MIT"}, ["--license", "CC-BY-4.0"], "--license"),
        ({"title": "NDVI"}, ["--collection-title", "EVI"], "--collection-title"),
        ({"description": "a"}, ["--collection-description", "b"], "--collection-description"),
        ({"keywords": ["ndvi"]}, ["--keyword", "evi"], "--keyword"),
        ({"providers": [{"name": "ESA"}]}, ["--provider", "ACME"], "--provider"),
    ],
)
def test_a_field_given_twice_with_two_values_is_a_usage_error(utm, tmp_path, meta, flags, flag) -> None:
    catalog = tmp_path / "stac"
    res = _register(utm, catalog, "--collection-meta", json.dumps(meta), *flags)
    assert res.exit_code == 2, res.output
    field = next(iter(meta))
    assert f"'{field}'" in res.output and "--collection-meta" in res.output and flag in res.output
    assert not catalog.exists()


def test_the_same_value_given_twice_is_taken(utm, tmp_path) -> None:
    catalog = tmp_path / "stac"
    res = _register(
        utm,
        catalog,
        "--collection-meta",
        json.dumps({"license": "MIT", "title": "NDVI", "keywords": ["ndvi"]}),
        "--license",
        "MIT",
        "--collection-title",
        "NDVI",
        "--keyword",
        "ndvi",
    )
    assert res.exit_code == 0, res.output
    collection = json.loads((catalog / "c" / "collection.json").read_text())
    assert (collection["license"], collection["title"], collection["keywords"]) == ("MIT", "NDVI", ["ndvi"])


@pytest.mark.parametrize(
    ("given", "provider"),
    [
        ('{"name": "ESA", "roles": ["host"]}', {"name": "ESA", "roles": ["host"]}),
        ("ESA: producer, licensor", {"name": "ESA", "roles": ["producer", "licensor"]}),
        ("ESA:s3://bucket/x", {"name": "ESA", "url": "s3://bucket/x"}),
        ("ESA:host:https://esa.example", {"name": "ESA", "roles": ["host"], "url": "https://esa.example"}),
    ],
)
def test_provider_is_read_as_item_provider_is(utm, tmp_path, given, provider) -> None:
    """--provider split a JSON object at its colons (roles '"ESA"}'), kept the
    space of 'ESA: producer' in the role, and took 's3' of 'ESA:s3://...' for
    a role; each was a usage error whose fix was no provider at all."""
    catalog = tmp_path / "stac"
    res = _register(utm, catalog, "--provider", given)
    assert res.exit_code == 0, res.output
    assert json.loads((catalog / "c" / "collection.json").read_text())["providers"] == [provider]


def test_a_provider_role_the_schema_refuses_gets_the_roles_it_takes(utm, tmp_path) -> None:
    catalog = tmp_path / "stac"
    res = _register(utm, catalog, "--provider", "ESA:Producer")
    assert res.exit_code == 2 and "'Producer'" in res.output, res.output
    assert '"roles": ["producer"]' in res.output and "--item-provider" not in res.output, res.output
    assert not catalog.exists()


def test_the_provider_help_says_it_takes_a_json_object_too() -> None:
    """``--provider`` reads a JSON object as ``--item-provider`` does, but its
    help named only ``NAME[:ROLES[:URL]]``: a provider with a description or
    a role holding a colon could not be found from ``--help``."""
    res = CliRunner().invoke(main, ["register", "--help"])
    text = " ".join(res.output.split())
    start = text.index("--provider NAME[:ROLES[:URL]] ")
    assert "JSON object" in text[start : text.index("--progress", start)]
