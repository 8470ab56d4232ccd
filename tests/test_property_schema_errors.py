"""An extra property whose value an extension schema refuses is the
caller's error: it names the property and the fix in the caller's spelling,
not "fix the document or the code that built it"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from tests import cubes, rasters
from tests.trees import assert_stac_valid_tree


@pytest.fixture(scope="module")
def utm(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("rasters"))


def test_python_names_the_property_and_the_fix(utm, tmp_path):
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [utm], catalog=str(catalog), collection="c", properties={"processing:level": 5}
    )
    assert result.action == "error" and result.error_type == "input"
    assert "the extra property 'processing:level' = 5 is refused" in result.error
    assert "is not of type 'string'" in result.error and "the code" not in result.error
    assert "Fix it with properties={'processing:level': '5'}" in result.error
    assert [h.option for h in result.hints] == ["properties"]
    assert not list(catalog.rglob("*.json"))  # nothing published


def test_cli_spells_the_fix_as_the_flag(utm, tmp_path):
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(catalog), "--collection", "c", "--property", "processing:level=5"],
    )
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert "the extra property 'processing:level' = 5 is refused" in text and "the code" not in text
    assert "Fix it with --property 'processing:level=\"5\"'" in text
    assert not list(catalog.rglob("*.json"))


EO_EXT = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> Path:
    return cubes.write_two_variables(tmp_path_factory.mktemp("cubes"))


@pytest.mark.parametrize("kind", ["utm", "cube"])
@pytest.mark.parametrize(
    ("value", "reason"), [(150, "greater than the maximum of 100"), ("high", "not of type")]
)
def test_an_extension_property_is_checked_with_its_bundled_schema(request, tmp_path, kind, value, reason):
    product = request.getfixturevalue(kind)
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [product], catalog=str(catalog), collection="c", properties={"eo:cloud_cover": value}
    )
    assert result.action == "error" and result.error_type == "input"
    assert "the extra property 'eo:cloud_cover'" in result.error and reason in result.error
    assert not list(catalog.rglob("*.json"))


@pytest.mark.parametrize("kind", ["utm", "cube"])
def test_an_extension_property_declares_its_extension(request, tmp_path, kind):
    product = request.getfixturevalue(kind)
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [product], catalog=str(catalog), collection="c", properties={"eo:cloud_cover": 12.5}
    )
    assert result.action == "created", result.error
    item = json.loads(Path(result.href).read_text())
    assert item["properties"]["eo:cloud_cover"] == 12.5 and EO_EXT in item["stac_extensions"]
    assert_stac_valid_tree(catalog)


@pytest.mark.parametrize(
    ("key", "meant"),
    [("eo:cloudcover", "eo:cloud_cover"), ("processing:lvl", "processing:level"), ("proj:epsg", None)],
)
def test_a_misspelt_extension_field_is_named_as_the_callers_with_the_field_meant(tmp_path, key, meant):
    """``eo:cloudcover=12`` (for ``eo:cloud_cover``): the eo schema refuses
    eo: fields it does not define, and the product failed as an invalid
    document to "fix the document or the code that built it", quoting the
    whole item. It now names the caller's property, the fields the
    extension defines and the one meant."""
    utm = rasters.write_utm(tmp_path / "data")
    (result,) = producer.register([utm], catalog=str(tmp_path / "cat"), collection="c", properties={key: 12})
    error = result.error or ""
    assert result.error_type == "input" and f"the extra property {key!r} is not a field of the" in error
    assert "the code that built it" not in error and "assets" not in error
    if meant:
        assert f"did you mean {meant!r}" in error and f"properties={{{meant!r}: 12}}" in error
    else:
        assert "proj:code" in error and "did you mean" not in error
    assert not list((tmp_path / "cat").rglob("utm_*.json"))


@pytest.mark.parametrize(
    ("given", "fix"),
    [
        ({"instruments": "msi"}, "--property 'instruments=[\"msi\"]'"),
        ({"constellation": ["sentinel-2"]}, "--property constellation=sentinel-2"),
        ({"gsd": '"10"'}, "--property gsd=10.0"),  # the JSON text "10"
    ],
)
def test_a_common_metadata_value_of_the_wrong_kind_is_given_back_as_the_right_one(utm, tmp_path, given, fix):
    """``--property instruments=msi`` (the schema wants a list): the fix said
    ``instruments=<value>``; it now gives the caller's value as the kind the
    schema takes."""
    ((key, value),) = given.items()
    text = value if isinstance(value, str) else json.dumps(value)
    res = CliRunner().invoke(
        main,
        [
            "register",
            str(utm),
            "-c",
            str(tmp_path / "cat"),
            "--collection",
            "c",
            "--property",
            f"{key}={text}",
        ],
    )
    assert res.exit_code == 2 and f"Fix it with {fix}" in " ".join(res.output.split()), res.output
    assert "<value>" not in res.output and not (tmp_path / "cat").exists()
