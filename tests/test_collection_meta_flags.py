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
