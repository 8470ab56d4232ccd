"""Item ids: template fields and the path-segment safety check."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.errors import ID_TEMPLATE_HINT, Hint, InputError, UnsafeIdError
from producer.extract import ExtractOptions
from producer.extract.ids import MAX_ID_LENGTH, check_id, make_item_id, split_location, stem_of


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
    # an http(s) query is not part of the name; an object-store key is taken literally
    assert make_item_id(
        "https://host/prefix/x_1.tif?versionId=3", ExtractOptions(id_template="{parent}.{stem}")
    ) == ("prefix.x_1")


def test_parent_of_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert make_item_id("a.tif", ExtractOptions(id_template="{parent}-{stem}")) == f"{tmp_path.name}-a"


@pytest.mark.parametrize(
    "template", ["{date}", "{stem.upper}", "{stem!r}", "{stem:>30}", "{}", "{0}", "{stem"]
)
def test_bad_templates(template: str) -> None:
    with pytest.raises(InputError, match="id template") as info:
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
    assert "/data/my file.tif" in message and "id_template='{parent}_{stem}'" in message
    assert info.value.hint is not None and info.value.hint.option == "id_template"
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", ["a", "scene_20240513", "S2A.L2A-v1", "x" * MAX_ID_LENGTH, "A1.b_2-c"])
def test_safe_ids(value: str) -> None:
    assert check_id(value) == value


def test_what_is_named_and_the_fix_fits_it() -> None:
    """A typed id (collection, item to remove) gets the allowed characters as
    its fix, not the id_template hint meant for ids made from file names."""
    with pytest.raises(UnsafeIdError, match="unsafe collection id") as info:
        check_id("../c", "collection id")
    assert "A-Z a-z 0-9 . _ -" in str(info.value) and "id_template" not in str(info.value)
    assert info.value.hints == ()


def test_unsafe_file_name_names_the_file() -> None:
    """What normalisation cannot make safe (a leading dot, '..') is still
    refused, naming the file."""
    with pytest.raises(UnsafeIdError, match="starts with a dot") as info:
        make_item_id("/data/.hidden scene.tif")
    assert "/data/.hidden scene.tif" in str(info.value)
    with pytest.raises(UnsafeIdError, match=r"'\.\.'"):
        make_item_id("/data/a..b.tif")
    with pytest.raises(UnsafeIdError):
        make_item_id("/data/x.tif", ExtractOptions(id_template="../{stem}"))


@pytest.mark.parametrize(
    ("source", "item_id"),
    [
        ("/data/my scene.tif", "my_scene"),
        ("s3://b/products/NDVI 2024-06-03.tif", "NDVI_2024-06-03"),
        ("s3://b/products/run 42+1.TIF", "run_42_1"),
        ("s3://b/products/tile (00).nc", "tile_00_"),
        ("s3://b/products/scène.tif", "sc_ne"),
        ("s3://b/products/a  +  b.tif", "a_b"),  # a run becomes one '_'
    ],
)
def test_default_id_from_name_with_spaces_or_plus_is_normalised(source: str, item_id: str) -> None:
    assert make_item_id(source) == item_id


@pytest.mark.parametrize(
    ("source", "item_id"),
    [
        ("s3://b/data/scene?v3.tif", "scene_v3"),
        ("s3://b/data/scene#v2.tif", "scene_v2"),
        ("s3://b/data/scene.tif", "scene"),
        ("gs://b/data/x#1?.tif", "x_1_"),
    ],
)
def test_object_key_with_hash_or_question_mark_is_not_cut(source: str, item_id: str) -> None:
    """'#' and '?' in an object key are part of the name: three different
    objects get three different ids (before: all three were 'scene')."""
    assert make_item_id(source) == item_id
    assert split_location(source)[0] == "data" or source.startswith("gs://")


def test_name_fields_are_normalised_but_literals_stay_strict() -> None:
    path = "s3://b/field plots/NDVI 1.tif"
    assert make_item_id(path, ExtractOptions(id_template="{parent}_{name}")) == "field_plots_NDVI_1.tif"
    with pytest.raises(UnsafeIdError, match="outside"):  # the space is the caller's own text
        make_item_id(path, ExtractOptions(id_template="my {stem}"))
    with pytest.raises(UnsafeIdError, match="outside"):  # a collection id is never rewritten
        make_item_id(path, ExtractOptions(id_template="{collection}_{stem}", collection="my coll"))


def test_http_url_name_is_decoded_and_query_dropped() -> None:
    assert make_item_id("https://host/d/NDVI%202024.tif?X-Amz-Signature=abc#frag") == "NDVI_2024"
    assert make_item_id("file:///data/my%20scene.tif") == "my_scene"


def test_a_bad_character_in_the_templates_own_text_is_blamed_on_the_template() -> None:
    """A space in what the caller typed around the fields: the message names
    the template's literal text (not the clean file name), and the fix is
    that template made safe (not the unrelated 'give the products different
    ids' template)."""
    with pytest.raises(UnsafeIdError) as info:
        make_item_id("/data/cog_20240101.tif", ExtractOptions(id_template="ndvi {stem}"))
    message = str(info.value)
    assert "literal text of the id template 'ndvi {stem}'" in message and "' '" in message
    assert "/data/cog_20240101.tif" in message  # the product is still named
    assert "Rename the file" not in message
    assert info.value.hints == (
        Hint("id_template", "ndvi_{stem}", "use only A-Z a-z 0-9 . _ - in its own text"),
    )
    assert ID_TEMPLATE_HINT not in info.value.hints
    # a path separator typed into the template: the same, with a usable template as the fix
    with pytest.raises(UnsafeIdError, match="literal text") as info:
        make_item_id("/data/x.tif", ExtractOptions(id_template="a/b:{stem}"))
    assert info.value.hints[0].example == "a_b_{stem}"


@pytest.mark.parametrize("partition", [None, "year/month"])
def test_an_item_id_naming_the_mirror_file_is_refused_and_search_still_works(
    tmp_path: Path, partition: str | None
) -> None:
    """An item lives in ``<folder>/<id>/``, beside the partition's mirror base
    file ``<folder>/items.parquet``. Was: ``items.parquet.tif`` registered as
    the item ``items.parquet``, whose folder took the base file's place on a
    local disk, so every later search of the collection failed ("is a
    directory") while validate said valid; registered after the base, it
    failed as a storage error "a parent is a file" with no way out."""
    import producer
    from tests import rasters

    data = tmp_path / "data"
    other = rasters.write_tile(data, "a_20240101.tif", 1.0, 1.0)
    clash = rasters.write_tile(data, "items.parquet.tif", 2.0, 1.0)
    cat = str(tmp_path / "cat")
    options = {"partition": partition, "datetime": "2024-01-01T00:00:00Z"}
    first, second = producer.register([str(clash), str(other)], catalog=cat, collection="c", **options)
    assert first.action == "error" and first.error_type == "input", first
    assert "'items.parquet'" in first.error and "mirror" in first.error
    assert any(h.option == "id_template" for h in first.hints)
    assert second.action == "created", second
    assert [f["id"] for f in producer.search(cat)["features"]] == ["a_20240101"]
    assert producer.register([str(clash)], catalog=cat, collection="c", **options)[0].error_type == "input"
    with pytest.raises(UnsafeIdError, match="mirror"):
        check_id("items.parquet")
    assert check_id("items.parquet", what="asset key") == "items.parquet"
    from producer.catalog.mirrorlinks import MIRROR_NAME
    from producer.extract.ids import RESERVED_ITEM_IDS

    assert MIRROR_NAME in RESERVED_ITEM_IDS  # the two names are one


def test_a_collection_id_naming_the_root_document_is_a_usage_error(tmp_path: Path) -> None:
    """A collection lives in ``<id>/`` beside the root ``catalog.json``. Was:
    ``--collection catalog.json`` wrote the root, then failed each product
    with a storage error "a parent is a file" (exit 1)."""
    import subprocess
    import sys

    from tests import rasters

    with pytest.raises(UnsafeIdError, match="root catalog"):
        check_id("catalog.json", "collection id")
    assert check_id("catalog.json", "item id") == "catalog.json"  # an item folder sits below a collection
    path = rasters.write_tile(tmp_path / "data", "a_20240101.tif", 1.0, 1.0)
    exe = Path(sys.executable).with_name("stac-producer")
    cat = tmp_path / "cat"
    out = subprocess.run(
        [str(exe), "register", str(path), "-c", str(cat), "--collection", "catalog.json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out
    assert "unsafe collection id 'catalog.json'" in out.stderr and "root catalog" in out.stderr
    assert not cat.exists()


def test_a_bad_character_in_the_templates_own_text_is_refused_once_before_any_product(tmp_path: Path) -> None:
    """Was: every product failed alone with the same message (exit 1), as
    if something were wrong with the files. The template's own text is
    the caller's, whatever the products: a usage error (exit 2) naming the
    template and a safe one, before anything is read or written."""
    from click.testing import CliRunner

    import producer
    from producer.cli import main
    from tests import rasters

    tile = rasters.write_utm(tmp_path / "data")
    cat = tmp_path / "cat"
    res = CliRunner().invoke(
        main, ["register", str(tile), "-c", str(cat), "--collection", "c", "--id-template", "a/b{stem}"]
    )
    assert res.exit_code == 2, res.output
    assert "id template 'a/b{stem}'" in res.output and "--id-template 'a_b{stem}'" in res.output, res.output
    assert not cat.exists()
    with pytest.raises(InputError, match=r"own text.*' '") as info:
        producer.register([tile], catalog=str(cat), collection="c", id_template="ndvi {stem}")
    assert info.value.hints[0].example == "ndvi_{stem}"
    assert not cat.exists()


def test_a_name_too_long_for_an_id_is_not_offered_a_template_that_makes_it_longer() -> None:
    """An object key whose file name gives an id over the limit: the
    template ``{parent}_{stem}`` was offered as the fix, which only makes
    the id longer (the caller tried it and got the same error); the fix is
    renaming. Where that template does give a safe id (a leading dot) it is
    still offered."""
    key = f"s3://bucket/{'d' * 20}/{'x' * (MAX_ID_LENGTH + 5)}_20240106.tif"
    with pytest.raises(UnsafeIdError, match="longer than") as info:
        make_item_id(key)
    assert ID_TEMPLATE_HINT not in info.value.hints and "Rename the file" in str(info.value)
    with pytest.raises(UnsafeIdError, match="longer than"):
        make_item_id(key, ExtractOptions(id_template=ID_TEMPLATE_HINT.example))
    with pytest.raises(UnsafeIdError, match="starts with a dot") as info:
        make_item_id("s3://bucket/data/.hidden.tif")
    assert [(h.option, h.example) for h in info.value.hints] == [("id_template", ID_TEMPLATE_HINT.example)]
    assert make_item_id("s3://bucket/data/.hidden.tif", ExtractOptions(id_template="{parent}_{stem}"))


def test_collection_ids_found_safe_are_remembered_bounded_and_unsafe_ones_refused_each_time() -> None:
    from producer import ingest

    for _ in range(2):
        ingest.check_collection_id("ndvi-v2")
        with pytest.raises(UnsafeIdError, match="collection id"):
            ingest.check_collection_id("../ndvi")
        with pytest.raises(UnsafeIdError, match="not text"):
            ingest.check_collection_id(7)  # type: ignore[arg-type]
    assert "ndvi-v2" in ingest._SAFE_COLLECTION_IDS and "../ndvi" not in ingest._SAFE_COLLECTION_IDS
    for n in range(ingest._SAFE_COLLECTION_IDS_KEPT * 2):
        ingest.check_collection_id(f"c{n}")
    assert len(ingest._SAFE_COLLECTION_IDS) <= ingest._SAFE_COLLECTION_IDS_KEPT
