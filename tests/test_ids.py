"""Item ids: template fields and the path-segment safety check."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.errors import InputError, UnsafeIdError
from producer.extract import ExtractOptions
from producer.extract.ids import MAX_ID_LENGTH, check_id, make_item_id, stem_of


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("scene.tif", "scene"),
        ("scene.TIFF", "scene"),
        ("scene.nc", "scene"),
        ("scene.nc.gz", "scene"),
        ("S2A.L2A.tif", "S2A.L2A"),
        ("scene.dat", "scene.dat"),
        (".tif", ".tif"),
        ("noext", "noext"),
    ],
)
def test_stem(name: str, stem: str) -> None:
    assert stem_of(name) == stem


def test_template_fields() -> None:
    path = "/data/ndvi/2024/scene_20240513.tif"
    assert make_item_id(path) == "scene_20240513"
    assert make_item_id(Path(path)) == "scene_20240513"
    assert make_item_id(path, ExtractOptions(id_template="{parent}_{stem}")) == "2024_scene_20240513"
    assert make_item_id(path, ExtractOptions(id_template="{name}")) == "scene_20240513.tif"
    options = ExtractOptions(id_template="{collection}-{stem}", collection="ndvi")
    assert make_item_id(path, options) == "ndvi-scene_20240513"
    assert make_item_id("s3://bucket/prefix/x_1.tif?versionId=3", ExtractOptions(id_template="{parent}.{stem}")) == (
        "prefix.x_1"
    )


def test_parent_of_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert make_item_id("a.tif", ExtractOptions(id_template="{parent}-{stem}")) == f"{tmp_path.name}-a"


@pytest.mark.parametrize("template", ["{date}", "{stem.upper}", "{stem!r}", "{stem:>30}", "{}", "{0}", "{stem"])
def test_bad_templates(template: str) -> None:
    with pytest.raises(InputError, match="id-template") as info:
        make_item_id("/d/x.tif", ExtractOptions(id_template=template))
    assert not isinstance(info.value, UnsafeIdError)


def test_collection_field_needs_a_collection() -> None:
    with pytest.raises(InputError, match="collection"):
        make_item_id("/d/x.tif", ExtractOptions(id_template="{collection}_{stem}"))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        (".", "relative path"),
        ("..", "relative path"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("a..b", r"'\.\.'"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        (".hidden", "starts with"),
        ("-rf", "starts with"),
        ("my scene", "outside"),
        ("scène", "outside"),
        ("a:b", "outside"),
        ("x" * (MAX_ID_LENGTH + 1), "longer than 200"),
    ],
)
def test_unsafe_ids(value: str, reason: str) -> None:
    with pytest.raises(UnsafeIdError, match=reason) as info:
        check_id(value, source="/data/my file.tif")
    message = str(info.value)
    assert "/data/my file.tif" in message and "--id-template" in message
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["a", "scene_20240513", "S2A.L2A-v1", "x" * MAX_ID_LENGTH, "A1.b_2-c"])
def test_safe_ids(value: str) -> None:
    assert check_id(value) == value


def test_what_is_named_and_the_fix_fits_it() -> None:
    """A typed id (collection, item to remove) gets the allowed characters as
    its fix, not the --id-template hint meant for ids made from file names."""
    with pytest.raises(UnsafeIdError, match="unsafe collection id") as info:
        check_id("../c", "collection id")
    assert "A-Z a-z 0-9 . _ -" in str(info.value) and "--id-template" not in str(info.value)


def test_unsafe_file_name_names_the_file() -> None:
    with pytest.raises(UnsafeIdError, match="my scene") as info:
        make_item_id("/data/my scene.tif")
    assert "/data/my scene.tif" in str(info.value)
    with pytest.raises(UnsafeIdError):
        make_item_id("/data/x.tif", ExtractOptions(id_template="../{stem}"))
