"""An unsafe id made from a product's names offers an id template that
gives that product a safe id, never the template in use nor one that fails
again. Was: always "Fix it with id_template='{parent}_{stem}' (give the
products different ids)", also when that was the template in use (a folder
'.hidden' with '{parent}_{stem}') or gave an unsafe id too ('a..b.tif')."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import UnsafeIdError
from producer.extract.ids import make_item_id
from producer.extract.options import ExtractOptions
from tests.rasters import write_tile


@pytest.mark.parametrize(
    ("source", "template", "offered", "safe"),
    [
        ("s3://b/.hidden/x_20240101.tif", "{parent}_{stem}", "{stem}_{parent}", "x_20240101_.hidden"),
        ("/data/-neg/x_20240101.tif", "{parent}_{stem}", "{stem}_{parent}", "x_20240101_-neg"),
        ("/data/-x_20240101.tif", "{stem}", "{parent}_{stem}", "data_-x_20240101"),
        ("/x_20240101.tif", "{parent}", "{parent}_{stem}", "_x_20240101"),
        ("/data/.x_20240101.tif", "{stem}_{parent}", "{parent}_{stem}", "data_.x_20240101"),
    ],
)
def test_the_template_offered_gives_a_safe_id(source, template, offered, safe) -> None:
    with pytest.raises(UnsafeIdError) as refused:
        make_item_id(source, ExtractOptions(id_template=template))
    [hint] = refused.value.hints
    assert (hint.option, hint.example) == ("id_template", offered)
    assert safe in hint.does
    assert make_item_id(source, ExtractOptions(id_template=offered)) == safe


def test_no_template_is_offered_when_none_helps() -> None:
    """'..' in the file's own name: every template holding {stem} keeps it."""
    with pytest.raises(UnsafeIdError) as refused:
        make_item_id("/data/a..b.tif")
    assert refused.value.hints == () and "Rename the file" in str(refused.value)


def test_register_and_the_cli_offer_it_in_their_spelling(tmp_path) -> None:
    band = write_tile(tmp_path / ".staging", "x_20240101.tif", 10, 50)
    catalog = tmp_path / "cat"
    [result] = producer.register([band], catalog=str(catalog), collection="c", id_template="{parent}_{stem}")
    assert result.action == "error"
    assert "id_template='{stem}_{parent}'" in (result.error or "")
    assert "id_template='{parent}_{stem}'" not in (result.error or "")
    out = CliRunner().invoke(
        main,
        ["register", str(band), "-c", str(catalog), "--collection", "c", "--id-template", "{parent}_{stem}"],
        terminal_width=400,
    )
    assert out.exit_code == 1 and "--id-template '{stem}_{parent}'" in out.output, out.output
    assert not catalog.exists()


@pytest.mark.parametrize("template", ["{stem}", "{parent}_{stem}"])
def test_a_file_name_longer_than_an_id_is_told_to_rename_the_file_only(template) -> None:
    """A file whose name alone is longer than an id may be was still told
    "or choose another id template", though every template that tells the
    products apart holds its name and only grows it: the fix is a shorter
    name, and it says how long the name alone makes the id."""
    source = f"/data/scenes/S2A_{'x' * 230}_20240101.tif"
    with pytest.raises(UnsafeIdError) as refused:
        make_item_id(source, ExtractOptions(id_template=template))
    message = str(refused.value)
    assert "Rename the file to a shorter name" in message and "makes an id of 243 characters" in message, (
        message
    )
    assert "choose another id template" not in message and refused.value.hints == (), message


def test_a_long_folder_name_is_still_offered_the_template_without_it() -> None:
    """The id is too long because of the folder: a template without it helps."""
    source = f"/data/{'f' * 230}/x_20240101.tif"
    with pytest.raises(UnsafeIdError) as refused:
        make_item_id(source, ExtractOptions(id_template="{parent}_{stem}"))
    [hint] = refused.value.hints
    assert hint.example == "{stem}" and "choose another id template" in str(refused.value)
