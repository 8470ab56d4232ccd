"""An extra property whose value an extension schema refuses is the
caller's error: it names the property and the fix in the caller's spelling,
not "fix the document or the code that built it"."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from tests import rasters


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
