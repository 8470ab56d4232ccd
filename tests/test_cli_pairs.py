"""``NAME=VALUE`` options (kind "pairs"): only the storage options read VALUE
as JSON; every other one (``--software NAME=VERSION``) keeps VALUE as text."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main, register_overrides
from producer.options import RegisterOptions, option_spec
from tests import rasters

GIVEN = ("v=3.10", "n=null", "b=1000", "f=false")
AS_JSON = {"v": 3.1, "n": None, "b": 1000, "f": False}
AS_TEXT = {"v": "3.10", "n": "null", "b": "1000", "f": "false"}
#: every pairs option, and how it reads VALUE (a new one must be classified here)
EXPECTED = {
    "data_storage_options": AS_JSON,
    "catalog_storage_options": AS_JSON,
    "software": AS_TEXT,
}
PAIRS = [f.name for f in fields(RegisterOptions) if option_spec(f).kind == "pairs"]


def test_every_pairs_option_is_classified():
    assert sorted(PAIRS) == sorted(EXPECTED)


@pytest.mark.parametrize("name", PAIRS)
def test_pairs_option_value(name):
    assert register_overrides({name: GIVEN}) == {name: EXPECTED[name]}


def test_software_endpoint_url_is_a_name_not_a_storage_option():
    assert register_overrides({"software": ("endpoint_url=1.0",)}) == {"software": {"endpoint_url": "1.0"}}


def test_cli_software_versions_are_text(tmp_path: Path):
    product = rasters.write_utm(tmp_path / "data")
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(
        main,
        ["register", str(product), "-c", str(catalog), "--collection", "c"]
        + [a for v in ("gdal=3.10", "build=1000", "tag=null", "lib=2.10.0") for a in ("--software", v)],
    )
    assert res.exit_code == 0, res.output
    (item,) = [p for p in catalog.rglob("*.json") if p.parent.parent.name == "c"]
    software = json.loads(item.read_text())["properties"]["processing:software"]
    assert {k: software[k] for k in ("gdal", "build", "tag", "lib")} == {
        "gdal": "3.10",
        "build": "1000",
        "tag": "null",
        "lib": "2.10.0",
    }
