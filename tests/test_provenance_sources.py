"""Caller options never silently overwrite provenance: the producer's own
version in processing:software, or a processing:lineage property together
with the lineage option."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.options import RegisterOptions
from tests import rasters


@pytest.fixture(scope="module")
def utm(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("rasters"))


@pytest.mark.parametrize("name", ["stac-producer", "STAC-Producer "])
def test_software_naming_the_producer_is_refused(utm, tmp_path, name):
    with pytest.raises(InputError, match="stac-producer records its own version") as info:
        producer.register([utm], catalog=str(tmp_path / "cat"), collection="c", software={name: "99.0"})
    assert info.value.hints and info.value.hints[0].option == "software"
    assert not (tmp_path / "cat").exists()


def test_lineage_given_twice_is_refused(utm, tmp_path):
    with pytest.raises(InputError, match="the lineage is given twice") as info:
        producer.register(
            [utm],
            catalog=str(tmp_path / "cat"),
            collection="c",
            properties={"processing:lineage": "from L1B"},
            lineage="from L2A",
        )
    assert "'processing:lineage' ('from L1B')" in str(info.value) and "'from L2A'" in str(info.value)
    assert "Fix it with lineage='from L2A'" in str(info.value)
    assert not (tmp_path / "cat").exists()


@pytest.mark.parametrize(
    ("properties", "option", "fix"),
    [
        ({"license": "MIT"}, {"item_license": "CC-BY-4.0"}, "item_license='CC-BY-4.0'"),
        (
            {"providers": [{"name": "X"}]},
            {"item_providers": ["ESA"]},
            """item_providers=['{"name": "ESA"}']""",
        ),
    ],
)
def test_license_or_providers_given_twice_is_refused(utm, tmp_path, properties, option, fix):
    """A ``license`` (``providers``) property with the item licence (providers)
    option: the option silently replaced the property."""
    with pytest.raises(InputError, match="given twice") as info:
        producer.register(
            [utm], catalog=str(tmp_path / "cat"), collection="c", properties=properties, **option
        )
    assert f"Fix it with {fix}" in str(info.value)
    assert not (tmp_path / "cat").exists()


def test_lineage_as_a_property_alone_is_kept(utm, tmp_path):
    (result,) = producer.register(
        [utm], catalog=str(tmp_path / "cat"), collection="c", properties={"processing:lineage": "from L1B"}
    )
    assert result.action == "created"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--software", "stac-producer=99.0"], "Fix it with --software ndvi-pipeline=1.4.2"),
        (
            ["--property", "processing:lineage=from L1B", "--lineage", "from L2A"],
            "Fix it with --lineage 'from L2A'",
        ),
        (
            ["--property", "license=MIT", "--item-license", "CC-BY-4.0"],
            "Fix it with --item-license CC-BY-4.0",
        ),
    ],
)
def test_cli_refuses_with_the_flags(utm, tmp_path, args, expected):
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(main, ["register", str(utm), "-c", str(catalog), "--collection", "c", *args])
    assert res.exit_code == 2, res.output
    assert expected in " ".join(res.output.split())
    assert not catalog.exists()


@pytest.mark.parametrize(
    "option",
    [
        {"lineage": "caf\udce9 latin-1"},
        {"properties": {"note": ["ok", {"deep": "caf\udce9"}]}},
        {"properties": {"caf\udce9": 1}},
        {"software": {"tool": "1.0-caf\udce9"}},
        {"item_providers": ["caf\udce9"]},
        {"derived_from": ["/data/caf\udce9.tif"]},
        {"lineage": "lone \ud800 surrogate"},
    ],
)
def test_text_that_is_not_utf8_is_refused_before_anything_is_written(utm, tmp_path, option):
    """A Latin-1 command-line argument reaches Python as a lone surrogate
    (``\\udce9`` for the byte 0xe9): the register crashed with an encoder's
    traceback at its first item write, after creating the catalog root."""
    with pytest.raises(InputError, match="cannot be written as UTF-8 JSON") as info:
        producer.register([utm], catalog=str(tmp_path / "cat"), collection="c", **option)
    assert "0xe9" in str(info.value) or "U+D800" in str(info.value)
    assert not (tmp_path / "cat").exists()


def test_cli_latin1_lineage_is_a_usage_error_not_a_traceback(utm, tmp_path):
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(
        main, ["register", str(utm), "-c", str(catalog), "--collection", "c", "--lineage", "caf\udce9"]
    )
    assert res.exit_code == 2 and "byte 0xe9 after 'caf' is not UTF-8" in res.output, res.output
    assert "Traceback" not in res.output and not catalog.exists()


def test_a_property_nested_past_the_limit_is_refused_and_one_at_it_is_searchable(utm, tmp_path):
    """A property of lists within lists: 50 levels made the compacted mirror
    unreadable (Parquet's schema depth), 700 crashed the register with a
    RecursionError, and on the command line a JSON value that deep printed
    a traceback. The limit (64) is refused up front, named; one at the
    limit registers and is searched back as given."""
    import functools

    from producer import mirror
    from producer.store import open_store

    def nested(depth: int) -> object:
        return functools.reduce(lambda v, _: [v], range(depth), 1)

    with pytest.raises(InputError, match="more than 64 levels deep") as info:
        RegisterOptions(properties={"deep": nested(700)})
    assert "'deep'" in str(info.value)
    res = CliRunner().invoke(
        main,
        ["register", str(utm), "-c", str(tmp_path / "cat"), "--collection", "c"]
        + ["--property", "deep=" + "[" * 3000 + "]" * 3000],
    )
    assert res.exit_code == 2 and "more than 64 levels deep" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "cat").exists()
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [utm], catalog=str(catalog), collection="c", properties={"deep": nested(64)}
    )
    assert result.action == "created", result.error
    mirror.rebuild(open_store(str(catalog)), "c", only_stale=False)
    (found,) = producer.search(str(catalog))["features"]
    assert found["properties"]["deep"] == nested(64)


@pytest.mark.parametrize(
    ("version", "says"), [(1.10, "the float 1.1"), (None, "has no version"), ("", "has no version")]
)
def test_a_software_version_that_is_no_text_is_refused(utm, tmp_path, version, says):
    """``software={"ndvi": 1.10}`` was published as ``"1.1"`` (a float
    cannot hold the version), ``None`` as ``"None"``, and ``--software
    ndvi=`` as an empty version."""
    with pytest.raises(InputError, match="software 'ndvi'") as info:
        producer.register([utm], catalog=str(tmp_path / "cat"), collection="c", software={"ndvi": version})
    assert says in str(info.value) and "software={'ndvi': '1.4.2'}" in str(info.value)
    assert not (tmp_path / "cat").exists()
    (ok,) = producer.register([utm], catalog=str(tmp_path / "ok"), collection="c", software={"ndvi": 2})
    assert ok.item["properties"]["processing:software"]["ndvi"] == "2"
