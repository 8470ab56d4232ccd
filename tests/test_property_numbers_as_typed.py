"""``--property processing:version=1.10`` read the value as the JSON number
1.1: the processing extension refused it (a version is text) with the fix
``--property 'processing:version="1.1"'``, another version; and
``--property my:version=1.10`` published 1.1 silently. A number whose text
JSON does not keep (a trailing zero, an exponent) is now refused naming
both ways out, as a float software version is; numbers JSON keeps as typed
(``12.5``, ``3``, ``2.0``) are read as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.errors import InputError
from producer.events import HandlerConfig
from producer.options import RegisterOptions
from tests import rasters


@pytest.mark.parametrize("text", ["1.10", "12.50", "1e3", "1.0000000000000001"])
def test_a_number_json_would_change_is_refused_with_both_ways_out(text: str) -> None:
    with pytest.raises(InputError) as refused:
        RegisterOptions(properties=[f"my:version={text}"])
    message = str(refused.value)
    assert repr(text) in message and json.dumps(float(text)) in message, message
    assert f"""properties={{'my:version': '{text}'}}""" in message, message


@pytest.mark.parametrize(
    ("text", "value"), [("12.5", 12.5), ("3", 3), ("2.0", 2.0), ("-0.5", -0.5), ("abc", "abc")]
)
def test_numbers_json_keeps_are_read_as_before(text: str, value: object) -> None:
    assert RegisterOptions(properties=[f"x={text}"]).properties == {"x": value}


@pytest.mark.parametrize(("text", "value"), [("12.50", 12.5), ("1e3", 1000.0), ("0.10", 0.1)])
def test_other_keys_take_the_number_a_text_means(text: str, value: float) -> None:
    # a cloud cover of 12.50 is the number 12.5: only a version is text in disguise
    assert RegisterOptions(properties=[f"eo:cloud_cover={text}"]).properties == {"eo:cloud_cover": value}


def test_the_cli_and_the_handler_keep_the_text_when_quoted(tmp_path: Path) -> None:
    utm = rasters.write_utm(tmp_path / "r")
    catalog = tmp_path / "stac"
    args = ["register", str(utm), "-c", str(catalog), "--collection", "c"]
    res = CliRunner().invoke(main, [*args, "--property", "processing:version=1.10"])
    assert res.exit_code == 2 and """--property 'processing:version="1.10"'""" in res.output, res.output
    assert not catalog.exists()
    res = CliRunner().invoke(main, [*args, "--property", 'processing:version="1.10"'])
    assert res.exit_code == 0, res.output
    item = json.loads((catalog / "c" / "utm_20240513" / "utm_20240513.json").read_text())
    assert item["properties"]["processing:version"] == "1.10"
    env = {"STAC_CATALOG": str(catalog), "STAC_COLLECTION": "c", "STAC_PROPERTIES": "my:version=1.10"}
    with pytest.raises(InputError, match="STAC_PROPERTIES="):
        HandlerConfig.from_env(env)


def test_a_version_in_the_handlers_json_object_is_refused_as_in_pairs() -> None:
    """``STAC_PROPERTIES='{"my:version": 1.10}'`` (the JSON object form the
    handler takes for values holding commas) published 1.1 without a word,
    where ``STAC_PROPERTIES=my:version=1.10`` was refused: refused the same,
    with both ways out as variables; other keys keep the number."""
    env = {"STAC_CATALOG": "s3://b/stac", "STAC_COLLECTION": "ndvi"}
    with pytest.raises(InputError) as refused:
        HandlerConfig.from_env({**env, "STAC_PROPERTIES": '{"my:version": 1.10, "tags": ["a", "b"]}'})
    assert """STAC_PROPERTIES='{"my:version": "1.10"}'""" in str(refused.value), refused.value
    config = HandlerConfig.from_env(
        {**env, "STAC_PROPERTIES": '{"eo:cloud_cover": 12.50, "my:version": "1.10"}'}
    )
    assert config.options.properties == {"eo:cloud_cover": 12.5, "my:version": "1.10"}
    assert type(config.options.properties["eo:cloud_cover"]) is float


@pytest.mark.parametrize("key", ["my:conversion_factor", "my:inversion_rmse", "sar:subversion_level"])
def test_a_name_that_only_contains_version_takes_the_number(key: str) -> None:
    # "conversion" holds the letters of "version" but names no version
    assert RegisterOptions(properties=[f"{key}=2.50"]).properties == {key: 2.5}


@pytest.mark.parametrize("key", ["my:model_version", "my:modelVersion", "processing:version", "my:Version"])
def test_a_name_with_the_word_version_is_still_checked(key: str) -> None:
    with pytest.raises(InputError):
        RegisterOptions(properties=[f"{key}=1.10"])
