"""The pipeline's own metadata on items: properties, derived_from, via, the
processing extension, item license and providers (Python, CLI, environment)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.options import RegisterOptions
from producer.provenance import PROCESSING_EXT
from tests import rasters
from tests.trees import assert_stac_valid_tree, tree_hash

ITEM = "c/utm_20240513/utm_20240513.json"


@pytest.fixture(scope="module")
def utm(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("rasters"))


def read(root: Path, key: str = ITEM) -> dict:
    return json.loads((root / key).read_text())


PIPELINE = dict(
    properties={"processing:level": "L2", "eo:cloud_cover": 12.5, "platform": "sentinel-2a"},
    derived_from=["s3://inputs/S2A_20240513.SAFE/B04.jp2", "https://stac.example/items/S2A_20240513.json"],
    via=["https://ci.example/runs/42"],
    software={"ndvi-pipeline": "1.4.2"},
    lineage="NDVI = (B08 - B04) / (B08 + B04) from the L2A scene",
    item_license="CC-BY-4.0",
    item_providers=["ESA:producer,licensor:https://www.esa.int", {"name": "ACME", "roles": ["processor"]}],
)


def test_pipeline_metadata_lands_on_the_item_and_validates(utm, catalog_dir):
    [result] = producer.register([utm], catalog=str(catalog_dir), collection="c", **PIPELINE)
    assert result.action == "created", result.error
    item = read(catalog_dir)
    props = item["properties"]
    assert props["processing:level"] == "L2" and props["eo:cloud_cover"] == 12.5
    assert props["platform"] == "sentinel-2a"
    assert props["processing:software"] == {"stac-producer": producer.__version__, "ndvi-pipeline": "1.4.2"}
    assert props["processing:lineage"].startswith("NDVI")
    assert props["processing:datetime"].endswith("Z")
    assert props["license"] == "CC-BY-4.0"
    assert props["providers"] == [
        {"name": "ESA", "roles": ["producer", "licensor"], "url": "https://www.esa.int"},
        {"name": "ACME", "roles": ["processor"]},
    ]
    derived = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert [link["href"] for link in derived] == PIPELINE["derived_from"]
    assert derived[1]["type"] == "application/geo+json"
    assert [link["href"] for link in item["links"] if link["rel"] == "via"] == ["https://ci.example/runs/42"]
    assert PROCESSING_EXT in item["stac_extensions"]
    assert_stac_valid_tree(catalog_dir)


def test_credentials_in_provider_and_input_urls_are_not_published(utm, catalog_dir):
    """A provider URL with userinfo or a key parameter, inputs with password
    or Azure Functions code parameters: what lands in the item has none."""
    [result] = producer.register(
        [utm],
        catalog=str(catalog_dir),
        collection="c",
        item_providers=[
            "ESA:producer:https://user:PWSECRET@esa.example/about?lang=en",
            {"name": "ACME", "url": "https://acme.example/?key=KEYSECRET"},
        ],
        derived_from=[
            "https://h.example/in.tif?password=PWSECRET",
            "https://fn.example/api/in.tif?code=FNSECRET",
        ],
    )
    assert result.action == "created", result.error
    item = read(catalog_dir)
    assert "SECRET" not in json.dumps(item)
    assert [p.get("url") for p in item["properties"]["providers"]] == [
        "https://esa.example/about?lang=en",
        "https://acme.example/",
    ]
    derived = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
    assert derived == ["https://h.example/in.tif", "https://fn.example/api/in.tif"]
    with pytest.raises(InputError) as bad:
        RegisterOptions(item_providers=[":producer:https://user:PWSECRET@esa.example"])
    assert "has no name" in str(bad.value) and "PWSECRET" not in str(bad.value)


def test_credentials_in_lineage_properties_software_and_provider_texts_are_not_published(utm, catalog_dir):
    """A lineage, a property (at any depth), a software version or a
    provider's description naming an input by a URL with userinfo or a
    presigned query, or a DSN with its password: the secret was written into
    the item and the mirror. Each URL is now published as a link's href is;
    the rest of the text, and URLs without credentials, are unchanged."""
    [result] = producer.register(
        [utm],
        catalog=str(catalog_dir),
        collection="c",
        lineage="from https://alice:PWSECRET@data.example/x.tif?X-Amz-Signature=SIGSECRET&v=2, then NDVI.",
        properties={
            "my:source": "https://h.example/x.tif?X-Amz-Credential=AKIA&X-Amz-Signature=SIGSECRET",
            "my:inputs": {"db": ["postgresql://bob:PGSECRET@db.example/scenes", "s3://b/k@2x.tif"]},
            "my:by_url": {"https://u:KEYSECRET@h.example/a.tif": 1},
        },
        software={"ndvi-pipeline": "git+https://ci:TOKSECRET@git.example/ndvi.git@1.4.2"},
        item_providers=[{"name": "ACME", "description": "mirror at s3://AKIA:PW/SECRET@bucket/acme"}],
    )
    assert result.action == "created", result.error
    item = read(catalog_dir)
    props = item["properties"]
    assert props["processing:lineage"] == "from https://data.example/x.tif?v=2, then NDVI."
    assert props["my:source"] == "https://h.example/x.tif"
    assert props["my:inputs"] == {"db": ["postgresql://db.example/scenes", "s3://b/k@2x.tif"]}
    assert props["my:by_url"] == {"https://h.example/a.tif": 1}
    assert props["processing:software"]["ndvi-pipeline"] == "git+https://git.example/ndvi.git@1.4.2"
    assert props["providers"] == [{"name": "ACME", "description": "mirror at s3://bucket/acme"}]
    published = [p for p in catalog_dir.rglob("*") if p.is_file()]
    assert published and not any(b"SECRET" in p.read_bytes() for p in published)
    assert_stac_valid_tree(catalog_dir)
    # a refusal whose hint repeats the caller's lineage: neither the fact nor the hint echo it
    with pytest.raises(InputError) as twice:
        RegisterOptions(lineage="https://u:PWSECRET@h.example/x", properties={"processing:lineage": "y"})
    assert "PWSECRET" not in str(twice.value) and "lineage='https://***@h.example/x'" in str(twice.value)
    assert "PWSECRET" not in json.dumps([h.to_dict() for h in twice.value.hints])


def test_credentials_in_new_collection_and_root_metadata_are_not_published(utm, catalog_dir, tmp_path):
    """The collection's and the root's metadata kept what the item texts
    lose: a --provider URL with userinfo or a token, a presigned asset href
    or a DSN in --collection-meta / --root-meta, a token in a keyword or the
    title (which every item's collection link repeats) were published as
    given, while --item-provider and --property dropped the same secrets."""
    args = [
        "register",
        str(utm),
        "-c",
        str(catalog_dir),
        "--collection",
        "c",
        "--provider",
        "ESA:producer:https://u:PWSECRET@esa.example/?token=TOKSECRET",
        "--keyword",
        "https://h.example/?sig=SIGSECRET",
        "--collection-title",
        "from https://h.example/x?api_key=KEYSECRET",
        "--collection-meta",
        json.dumps(
            {
                "description": "mirror of s3://AKIA:PW/SECRET@bucket/acme",
                "assets": {"a": {"href": "https://h.example/a.tif?X-Amz-Signature=SIGSECRET&v=2"}},
            }
        ),
        "--root-meta",
        json.dumps({"description": "loaded into postgresql://bob:PGSECRET@db.example/stac"}),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    collection = json.loads((catalog_dir / "c" / "collection.json").read_text())
    assert collection["providers"] == [{"name": "ESA", "roles": ["producer"], "url": "https://esa.example/"}]
    assert collection["assets"]["a"]["href"] == "https://h.example/a.tif?v=2"
    assert collection["description"] == "mirror of s3://bucket/acme"
    assert collection["title"] == "from https://h.example/x"
    root = json.loads((catalog_dir / "catalog.json").read_text())
    assert root["description"] == "loaded into postgresql://db.example/stac"
    published = [p for p in catalog_dir.rglob("*") if p.is_file()]
    assert published and not any(b"SECRET" in p.read_bytes() for p in published)
    assert_stac_valid_tree(catalog_dir)
    # the Python spelling, and the options the caller passed are not mutated
    meta = {"title": "T", "providers": [{"name": "P", "url": "https://u:PWSECRET@p.example/"}]}
    producer.register([utm], catalog=str(tmp_path / "py"), collection="c", collection_meta=meta)
    assert b"SECRET" not in (tmp_path / "py" / "c" / "collection.json").read_bytes()
    assert meta["providers"][0]["url"] == "https://u:PWSECRET@p.example/"


def test_rerun_whose_only_change_is_the_run_is_unchanged(utm, catalog_dir):
    first = producer.register([utm], catalog=str(catalog_dir), collection="c", **PIPELINE)
    stamp = read(catalog_dir)["properties"]["processing:datetime"]
    before = tree_hash(catalog_dir)
    again = producer.register([utm], catalog=str(catalog_dir), collection="c", **PIPELINE)
    assert [r.action for r in first + again] == ["created", "unchanged"]
    assert tree_hash(catalog_dir) == before  # nothing written
    assert read(catalog_dir)["properties"]["processing:datetime"] == stamp

    other_run = producer.register(
        [utm], catalog=str(catalog_dir), collection="c", **{**PIPELINE, "via": ["https://ci.example/runs/43"]}
    )
    assert other_run[0].action == "unchanged"  # another run, same content: the item names the first
    assert tree_hash(catalog_dir) == before

    changed = producer.register(
        [utm], catalog=str(catalog_dir), collection="c", **{**PIPELINE, "lineage": "another recipe"}
    )
    assert changed[0].action == "updated"
    item = read(catalog_dir)
    props = item["properties"]
    assert props["processing:lineage"] == "another recipe" and props["processing:datetime"] > stamp
    assert [link["href"] for link in item["links"] if link["rel"] == "via"] == ["https://ci.example/runs/42"]


@pytest.mark.parametrize(
    "key", ["datetime", "created", "updated", "processing:datetime", "processing:software"]
)
def test_reserved_property_is_refused_before_anything_is_written(utm, catalog_dir, key):
    with pytest.raises(InputError, match=f"property '{key}' is set by the producer"):
        producer.register([utm], catalog=str(catalog_dir), collection="c", properties={key: "x"})
    assert not catalog_dir.exists()


def test_property_contradicting_the_product_fails_that_product_only(utm, catalog_dir):
    [result] = producer.register(
        [utm], catalog=str(catalog_dir), collection="c", properties={"proj:code": "EPSG:4326"}
    )
    assert result.action == "error"
    assert "'proj:code' is read from the product ('EPSG:32633')" in (result.error or "")
    assert result.hints == () and "Fix it with" not in (result.error or "")  # leaving it out is the fix
    assert not (catalog_dir / ITEM).exists()


def test_cli_property_contradicting_the_product_says_leave_it_out(utm, catalog_dir):
    """The fix is to give less: no hint to set another property, no Python spelling."""
    res = CliRunner().invoke(
        main,
        [
            "register",
            str(utm),
            "-c",
            str(catalog_dir),
            "--collection",
            "c",
            "--property",
            "proj:code=EPSG:4326",
        ],
    )
    assert res.exit_code == 1
    message = " ".join(res.output.split())
    assert "'proj:code' is read from the product ('EPSG:32633')" in message
    assert "leave 'proj:code' out" in message
    assert "Fix it with" not in message and "{'" not in message and "properties=" not in message
    assert not (catalog_dir / ITEM).exists()


def test_cli_property_values_are_json_when_json(utm, catalog_dir):
    res = CliRunner().invoke(
        main,
        [
            "register",
            str(utm),
            "-c",
            str(catalog_dir),
            "--collection",
            "c",
            "--property",
            "eo:cloud_cover=3",
            "--property",
            "processing:level=L2",
            "--property",
            'tags=["a", "b"]',
            "--property",
            "flag=true",
            "--derived-from",
            "s3://inputs/scene.tif",
            "--software",
            "ndvi=2.0",
            "--item-license",
            "CC0-1.0",
            "--item-provider",
            "ESA:producer",
        ],
    )
    assert res.exit_code == 0, res.output
    props = read(catalog_dir)["properties"]
    assert props["eo:cloud_cover"] == 3 and props["processing:level"] == "L2"
    assert props["tags"] == ["a", "b"] and props["flag"] is True
    assert props["processing:software"]["ndvi"] == "2.0"
    assert props["license"] == "CC0-1.0" and props["providers"] == [{"name": "ESA", "roles": ["producer"]}]
    assert_stac_valid_tree(catalog_dir)


def test_cli_reserved_property_names_the_flag_and_exits_non_zero(utm, catalog_dir):
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(catalog_dir), "--collection", "c", "--property", "datetime=2024"],
    )
    assert res.exit_code == 2
    message = " ".join(res.output.split())
    # the fix is the datetime option, spelled as its flag (was: a Python dict for --property)
    assert (
        "'datetime' is set by the producer" in message
        and "Fix it with --datetime 2024-05-13T10:00:00Z " in message
    )
    assert "--datetime-pattern '(?P<year>" in message and "{'" not in message and "datetime=" not in message
    assert not catalog_dir.exists()


def test_item_license_the_schema_refuses_is_a_usage_error_naming_the_option(utm, catalog_dir):
    with pytest.raises(InputError) as bad:
        RegisterOptions(item_license="CC BY 4.0")
    assert "'CC BY 4.0'" in str(bad.value) and "item_license='CC-BY-4.0'" in str(bad.value)
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(catalog_dir), "--collection", "c", "--item-license", "CC BY 4.0"],
    )
    assert res.exit_code == 2, res.output
    assert "--item-license CC-BY-4.0" in " ".join(res.output.split()) and "the code" not in res.output
    assert not catalog_dir.exists()
    assert RegisterOptions(item_license="CC-BY-4.0+").item_license == "CC-BY-4.0+"


@pytest.mark.parametrize("expression", ["Apache-2.0 OR MIT", "GPL-2.0-or-later WITH Classpath-exception-2.0"])
def test_an_spdx_expression_as_item_license_is_offered_other_not_a_made_up_id(expression):
    # was: "Fix it with item_license='Apache-2.0-OR-MIT'", an SPDX id that does not exist
    with pytest.raises(InputError) as bad:
        RegisterOptions(item_license=expression)
    message = str(bad.value)
    assert "item_license='other'" in message and "expression" in message
    assert "-OR-" not in message and "-WITH-" not in message


@pytest.mark.parametrize("key, value", [("gsd", -1), ("platform", 5), ("instruments", "msi")])
def test_property_the_schema_refuses_is_a_usage_error_naming_the_option(utm, catalog_dir, key, value):
    with pytest.raises(InputError) as bad:
        RegisterOptions(properties={key: value})
    assert f"property {key!r} given as {value!r} is not valid STAC" in str(bad.value)
    assert f"properties={{{key!r}: " in str(bad.value)
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(catalog_dir), "--collection", "c", "--property", f"{key}={value}"],
    )
    assert res.exit_code == 2, res.output
    message = " ".join(res.output.split())
    assert f"--property '{key}=" in message and "fix the document or the code" not in message
    assert not catalog_dir.exists()
    with pytest.raises(InputError, match="item providers are not valid STAC"):
        RegisterOptions(item_providers=[{"name": "X", "url": 5}])


def test_environment_gives_properties_as_pairs_or_json():
    pairs = RegisterOptions.from_env({"STAC_PROPERTIES": "a=1,b=text", "STAC_ITEM_LICENSE": "MIT"})
    assert pairs.properties == {"a": 1, "b": "text"} and pairs.item_license == "MIT"
    obj = RegisterOptions.from_env(
        {"STAC_PROPERTIES": '{"c": [1, 2]}', "STAC_ITEM_PROVIDERS": '[{"name": "X", "roles": ["host"]}]'}
    )
    assert obj.properties == {"c": [1, 2]} and obj.item_providers == ({"name": "X", "roles": ["host"]},)


def test_unknown_provider_role_is_an_input_error():
    with pytest.raises(InputError, match="unknown role"):
        RegisterOptions(item_providers=["ESA:owner"])


def test_caller_properties_are_not_mutated_nor_shared(utm, catalog_dir):
    given = {"nested": {"k": [1]}}
    options = RegisterOptions(properties=given)
    given["nested"]["k"].append(2)
    assert options.properties == {"nested": {"k": [1]}}


def test_a_datetime_property_that_is_no_time_is_not_offered_back_as_the_fix() -> None:
    """``--property datetime=foo`` offered "Fix it with --datetime foo",
    which fails in turn; a value that is a time is offered back."""
    from producer.options import flag_spelling

    with pytest.raises(InputError) as bad:
        RegisterOptions(properties={"datetime": "foo"})
    assert "--datetime foo" not in bad.value.phrased(flag_spelling)
    with pytest.raises(InputError) as good:
        RegisterOptions(properties={"datetime": "2024-05-01T10:00:00Z"})
    assert "--datetime 2024-05-01T10:00:00Z" in good.value.phrased(flag_spelling)


@pytest.mark.parametrize(
    "key, value, fixed",
    [
        ("published", "2024-01-01", "2024-01-01T00:00:00Z"),
        ("expires", 5, "2024-01-01T00:00:00Z"),
        ("unpublished", "2024-01-01T00:00:00", "2024-01-01T00:00:00Z"),
    ],
)
def test_timestamps_extension_field_that_is_no_date_time_is_a_usage_error(
    utm, catalog_dir, key, value, fixed
):
    """published/expires/unpublished are RFC 3339 date-times (the STAC
    timestamps extension; the mirror stores them as timestamps): anything
    else is refused before anything is written, naming the property and the fix."""
    with pytest.raises(InputError) as bad:
        RegisterOptions(properties={key: value})
    assert f"property {key!r} given as {value!r} is not an RFC 3339 date-time" in str(bad.value)
    assert f"properties={{{key!r}: {fixed!r}}}" in str(bad.value)
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(catalog_dir), "--collection", "c", "--property", f"{key}={value}"],
    )
    assert res.exit_code == 2, res.output
    message = " ".join(res.output.split())
    assert f"--property {key}={fixed}" in message, message
    assert not catalog_dir.exists()
    for good in ("2024-01-01T00:00:00Z", "2024-01-01t10:30:00.123456789+02:00", "2016-12-31T23:59:60Z"):
        assert RegisterOptions(properties={key: good}).properties == {key: good}


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        (np.float32(12.5), "12.5"),  # numpy scalars: what a pipeline computes
        (datetime(2024, 5, 13, 10, 0, tzinfo=UTC), "'2024-05-13T10:00:00Z'"),
        (float("nan"), "null"),
    ],
)
def test_a_property_that_is_no_json_is_named_with_the_value_to_give(value, fix) -> None:
    """The error said "Object of type float32 is not JSON serializable" without
    naming the property among the others, or what to give instead."""
    with pytest.raises(InputError) as info:
        RegisterOptions(properties={"my:first": 1, "eo:cloud_cover": value})
    message = str(info.value)
    assert "'eo:cloud_cover'" in message and "'my:first'" not in message
    assert fix in message


TIMESTAMPS = "https://stac-extensions.github.io/timestamps/v1.1.0/schema.json"


def test_timestamps_are_published_in_utc_and_declare_their_extension(utm, catalog_dir):
    """published/expires/unpublished are the timestamps extension's fields:
    an item carrying them declares it, and its v1.1.0 accepts only UTC (``Z``
    or ``+00:00``). Before, the extension was never declared (so no validator
    checked them) and ``+02:00`` or a lower-case ``z`` was published as given,
    which that schema refuses. The same instant is now written in UTC."""
    import jsonschema

    given = {
        "published": "2024-05-01T12:00:00+02:00",
        "expires": "2030-01-01t00:00:00.5z",
        "unpublished": "2016-12-31T23:59:60Z",  # a leap second stays one
    }
    [result] = producer.register([utm], catalog=str(catalog_dir), collection="c", properties=given)
    assert result.action == "created", result.error
    item = read(catalog_dir)
    props = item["properties"]
    assert props["published"] == "2024-05-01T10:00:00Z"
    assert props["expires"] == "2030-01-01T00:00:00.500000Z"
    assert props["unpublished"] == "2016-12-31T23:59:60Z"
    assert item["stac_extensions"].count(TIMESTAMPS) == 1
    # the extension's own schema (bundled, as a validator would fetch it) accepts the item
    bundled = (
        Path(producer.__file__).parent / "schemas/stac-extensions.github.io/timestamps/v1.1.0/schema.json"
    )
    jsonschema.Draft7Validator(json.loads(bundled.read_text())).validate(item)
    assert_stac_valid_tree(catalog_dir)


def test_the_timestamps_schema_checks_a_declared_field(utm, catalog_dir):
    """The bundled timestamps schema is the one validation uses: an item that
    declares the extension with a non-UTC ``published`` (written by another
    tool) is an error of ``validate``, not passed unchecked."""
    [result] = producer.register(
        [utm], catalog=str(catalog_dir), collection="c", properties={"published": "2024-05-01T10:00:00Z"}
    )
    assert result.ok, result.error
    path = catalog_dir / ITEM
    doc = json.loads(path.read_text())
    doc["properties"]["published"] = "2024-05-01T12:00:00+02:00"
    path.write_text(json.dumps(doc))
    errors = [p for p in producer.validate_catalog(str(catalog_dir)) if p.is_error]
    assert errors and "published" in str(errors[0]) + str(getattr(errors[0], "detail", "")), errors


@pytest.mark.parametrize(
    "given", ["9999-12-31T23:30:00-05:00", "0001-01-01T00:30:00+01:00"], ids=["after-9999", "before-1"]
)
def test_a_timestamp_whose_utc_instant_leaves_the_calendar_is_refused_by_name(utm, catalog_dir, given):
    """``expires`` at the end of time written with a local offset: in UTC it
    lies past 9999-12-31 (or before year 1), which no date-time can hold.
    Before, the conversion to UTC ended in a raw OverflowError traceback."""
    with pytest.raises(producer.InputError) as info:
        producer.register([utm], catalog=str(catalog_dir), collection="c", properties={"expires": given})
    message = str(info.value)
    assert "'expires'" in message and given in message and "UTC" in message
    assert not catalog_dir.exists() or not any(catalog_dir.iterdir())
