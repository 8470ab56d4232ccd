"""A provider object whose ``roles`` is no list of texts: ``"roles":
"producer"`` was iterated letter by letter ("unknown role(s) 'p', 'r', 'o',
..."), ``"roles": 1`` raised a bare ``TypeError: 'int' object is not
iterable`` naming nothing (the CLI printed just that). Both name the provider
and give the roles as a list, for item providers and the new collection's."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.errors import InputError
from producer.options import RegisterOptions
from tests import rasters


@pytest.mark.parametrize(
    ("roles", "example"),
    [("producer", "['producer']"), ("producer, host", "['producer', 'host']"), (1, "['producer']")],
)
def test_roles_that_are_no_list_name_the_provider_and_a_list(roles, example) -> None:
    with pytest.raises(InputError) as refused:
        RegisterOptions(item_providers=[{"name": "ESA", "roles": roles}])
    text = str(refused.value)
    assert "'ESA'" in text and "roles" in text and example in text, text
    assert "'p', 'r'" not in text


def test_the_cli_says_which_flag(tmp_path: Path) -> None:
    utm = rasters.write_utm(tmp_path / "r")
    catalog = tmp_path / "stac"
    for flag in ("--item-provider", "--provider"):
        res = CliRunner().invoke(
            main,
            [
                "register",
                str(utm),
                "-c",
                str(catalog),
                "--collection",
                "c",
                flag,
                '{"name": "ESA", "roles": 1}',
            ],
        )
        assert res.exit_code == 2 and "'ESA'" in res.output and "not iterable" not in res.output, res.output
    assert not catalog.exists()


@pytest.mark.parametrize("name", ["", "  "])
def test_software_without_a_name_is_refused(name: str, tmp_path: Path) -> None:
    """``--software =1.4.2`` published ``processing:software: {"": "1.4.2"}``:
    a version of nothing (a property with an empty name was refused)."""
    with pytest.raises(InputError, match="no name") as refused:
        RegisterOptions(software={name: "1.4.2"})
    assert "software=" in str(refused.value)
    utm = rasters.write_utm(tmp_path / "r")
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(tmp_path / "stac"), "--collection", "c", "--software", "=1.4.2"],
    )
    assert res.exit_code == 2 and "--software" in res.output, res.output
    assert not (tmp_path / "stac").exists()
