"""An id template given with a group pattern (or to ``register_item``) was
silently ignored: the pattern's ``(?P<id>...)`` group (the ``item_id``)
names the item, so ``--group ... --id-template '{parent}_{stem}'`` made
items the caller did not ask for, exit 0. Refused like an asset key with a
group pattern: a usage error before anything is written, in every spelling."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.events import HandlerConfig
from tests.rasters import write_tile

GROUP = r"(?P<id>S_\d{8})/(?P<asset>[^/]+)\.tif$"


@pytest.fixture
def band(tmp_path: Path) -> Path:
    return write_tile(tmp_path / "data" / "S_20240513", "B02.tif", 10, 50)


def test_python_refuses_it_before_writing(band: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    with pytest.raises(InputError, match="id template") as refused:
        producer.register(
            [band], catalog=str(catalog), collection="g", group=GROUP, id_template="{parent}_{stem}"
        )
    assert "(?P<id>...)" in str(refused.value)
    with pytest.raises(InputError, match="id template"):
        producer.register_item(
            assets={"B02": str(band)},
            item_id="S_20240513",
            catalog=str(catalog),
            collection="g",
            id_template="x_{stem}",
        )
    assert not catalog.exists()


def test_cli_and_event_handler_refuse_it(band: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    out = CliRunner().invoke(
        main,
        [
            "register",
            str(band),
            "-c",
            str(catalog),
            "--collection",
            "g",
            "--group",
            GROUP,
            "--id-template",
            "{parent}_{stem}",
        ],
    )
    assert out.exit_code == 2 and "id template" in out.output, out.output
    assert not catalog.exists()
    env = {
        "STAC_CATALOG": str(catalog),
        "STAC_COLLECTION": "g",
        "STAC_GROUP": GROUP,
        "STAC_ID_TEMPLATE": "{parent}_{stem}",
    }
    with pytest.raises(InputError, match="id template"):
        HandlerConfig.from_env(env)


def test_the_default_template_with_a_group_is_fine(band: Path, tmp_path: Path) -> None:
    [result] = producer.register([band], catalog=str(tmp_path / "cat"), collection="g", group=GROUP)
    assert result.action == "created" and result.id == "S_20240513"


def test_reconcile_with_data_refuses_it_before_any_repair(band: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    producer.register([band], catalog=str(catalog), collection="g", group=GROUP)
    (catalog / "g" / "S_20240513" / "S_20240513.json").unlink()  # a dangling link a fix would repair
    before = sorted(p.relative_to(catalog) for p in catalog.rglob("*"))
    options = producer.RegisterOptions(group=GROUP, id_template="{parent}_{stem}")
    with pytest.raises(InputError, match="id template"):
        producer.reconcile(str(catalog), fix=True, data=str(band.parent), collection="g", options=options)
    with pytest.raises(InputError, match="asset key"):
        producer.reconcile(
            str(catalog),
            fix=True,
            data=str(band.parent),
            collection="g",
            register_options={"group": GROUP, "asset_key": "x"},
        )
    assert sorted(p.relative_to(catalog) for p in catalog.rglob("*")) == before


def test_the_default_template_typed_out_with_a_group_is_refused_too(band: Path, tmp_path: Path) -> None:
    """``--id-template '{stem}'`` (``STAC_ID_TEMPLATE={stem}``) with a group
    pattern was taken without a word, since it equals the default: the caller
    typed a template the pattern ignores, as with any other template."""
    catalog = tmp_path / "cat"
    out = CliRunner().invoke(
        main,
        [
            "register",
            str(band),
            "-c",
            str(catalog),
            "--collection",
            "g",
            "--group",
            GROUP,
            "--id-template",
            "{stem}",
        ],
    )
    assert out.exit_code == 2 and "--id-template" in out.output and "--group" in out.output, out.output
    assert not catalog.exists()
    env = {
        "STAC_CATALOG": str(catalog),
        "STAC_COLLECTION": "g",
        "STAC_GROUP": GROUP,
        "STAC_ID_TEMPLATE": "{stem}",
    }
    with pytest.raises(InputError, match="STAC_ID_TEMPLATE"):
        HandlerConfig.from_env(env)
