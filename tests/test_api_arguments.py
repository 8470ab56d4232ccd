"""The library verbs' arguments as a pipeline author passes them: a
``pathlib.Path`` catalog, one path or many in any form Python offers, and
values of the wrong type. Each wrong one is a clear error naming the
argument and the fix, raised before anything is written."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

import producer
from producer.errors import InputError
from tests.rasters import write_utm, write_wgs84


@pytest.fixture
def product(tmp_path: Path) -> Path:
    return write_utm(tmp_path / "data")


def test_every_verb_takes_the_catalog_as_a_pathlib_path(product: Path, catalog_dir: Path) -> None:
    (result,) = producer.register([product], catalog=catalog_dir, collection="c")
    assert result.action == "created" and (catalog_dir / "catalog.json").is_file()
    assert producer.register_item(
        assets={"data": str(product)}, item_id="one", catalog=catalog_dir, collection="c"
    )[0].ok
    assert producer.validate_catalog(catalog_dir) == []
    assert producer.search(catalog_dir)["numberMatched"] == 2
    assert producer.reconcile(catalog_dir).remaining == []
    assert producer.remove("one", catalog=catalog_dir, collection="c").action == "removed"


@pytest.mark.parametrize("catalog", [None, 12, b"/tmp/stac"])
def test_a_catalog_of_another_type_is_a_type_error_naming_catalog(
    product: Path, catalog: Any, tmp_path: Path
) -> None:
    for verb in (
        lambda: producer.register([product], catalog=catalog, collection="c"),
        lambda: producer.validate_catalog(catalog),
        lambda: producer.search(catalog),
        lambda: producer.remove("x", catalog=catalog, collection="c"),
    ):
        with pytest.raises(TypeError, match=r"catalog must be a URL or path \(str or pathlib.Path\)"):
            verb()


@pytest.mark.parametrize(
    ("paths", "what"),
    [
        (None, "None"),
        (12, "int"),
        ({"scene": "scene.tif"}, "dict"),
        (["scene.tif", None], "None, the 2nd"),
        (["scene.tif", 3.5], "float, the 2nd"),
    ],
)
def test_paths_of_another_type_are_a_type_error_naming_paths(
    paths: Any, what: str, catalog_dir: Path
) -> None:
    with pytest.raises(TypeError, match=r"paths must (be|hold)") as caught:
        producer.register(paths, catalog=str(catalog_dir), collection="c")
    assert what in str(caught.value)
    assert not catalog_dir.exists()


def test_one_bytes_path_is_one_product(product: Path, catalog_dir: Path) -> None:
    (result,) = producer.register(bytes(product), catalog=str(catalog_dir), collection="c")
    assert result.action == "created" and result.source == str(product)


@pytest.mark.parametrize("url", ["s3://bucket/ndvi/scene.tif", "https://host/ndvi/scene.tif"])
def test_a_pathlib_path_holding_a_url_says_to_pass_the_url_as_text(url: str, catalog_dir: Path) -> None:
    """``Path("s3://b/x.tif")`` is ``s3:/b/x.tif``: pathlib merges the two
    slashes, and the product was reported as a missing local file under the
    working folder."""
    with pytest.raises(InputError, match="pass the URL as a str") as caught:
        producer.register([PurePosixPath(url)], catalog=str(catalog_dir), collection="c")
    assert repr(url) in str(caught.value)
    assert not catalog_dir.exists()


def test_a_pathlib_path_holding_a_catalog_url_says_to_pass_the_url_as_text(
    product: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was taken as the relative local folder ``s3:/bucket/stac``, and a
    catalog was written there."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"pass the URL as a str, e.g. catalog='s3://bucket/stac'"):
        producer.register([product], catalog=PurePosixPath("s3://bucket/stac"), collection="c")
    assert not (tmp_path / "s3:").exists()
    url = f"file://{tmp_path}/stac"
    with pytest.raises(InputError, match=rf"e.g. catalog='{url}'"):
        producer.register([product], catalog=PurePosixPath(url), collection="c")
    assert not (tmp_path / "file:").exists()


@pytest.mark.parametrize("collection", [12, ["c"]])
def test_a_collection_id_of_another_type_is_not_called_empty(
    product: Path, collection: Any, catalog_dir: Path
) -> None:
    with pytest.raises(InputError, match="it is not text") as caught:
        producer.register([product], catalog=str(catalog_dir), collection=collection)
    assert "empty" not in str(caught.value)
    assert not catalog_dir.exists()


def test_reconcile_takes_data_as_a_pathlib_path(product: Path, catalog_dir: Path) -> None:
    """``data=Path(...)`` failed with "'PosixPath' object is not iterable"."""
    report = producer.reconcile(catalog_dir, data=product.parent, collection="c", fix=True)
    assert [r.action for r in report.registered] == ["created"]
    assert producer.validate_catalog(catalog_dir) == []


def test_register_item_takes_pathlib_paths_and_refuses_a_list_by_name(
    product: Path, catalog_dir: Path
) -> None:
    """A ``Path`` asset was "asset 'data' has no URL (PosixPath(...))"; a
    list of URLs an AttributeError ("'list' object has no attribute 'items'")."""
    (result,) = producer.register_item(
        assets={"data": product}, item_id="one", catalog=catalog_dir, collection="c"
    )
    assert result.action == "created" and result.source == str(product)
    with pytest.raises(TypeError, match=r"assets must be a mapping of asset keys to URLs.*assets=\{"):
        producer.register_item(assets=[str(product)], item_id="two", catalog=catalog_dir, collection="c")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verb", "name"),
    [
        (lambda cat, p: producer.reconcile(cat, fix="no"), "fix"),
        (lambda cat, p: producer.reconcile(cat, fix=True, dry_run="yes"), "dry_run"),
        (lambda cat, p: producer.validate_catalog(cat, check_assets="no"), "check_assets"),
        (lambda cat, p: producer.register([p], catalog=cat, collection="c", expand="no"), "expand"),
        (lambda cat, p: producer.register([p], catalog=cat, collection="c", progress=5), "progress"),
    ],
)
def test_a_verb_argument_of_the_wrong_type_is_refused_before_anything_is_written(
    verb: Any, name: str, product: Path, catalog_dir: Path
) -> None:
    """``fix="no"`` is true: reconcile repaired (wrote) what it was told not
    to; ``progress=5`` failed with "'int' object is not callable" after the
    first product was written."""
    (registered,) = producer.register([product], catalog=str(catalog_dir), collection="c")
    Path(registered.href).unlink()  # a dangling link: something a fix would write
    before = _tree(catalog_dir)
    with pytest.raises(TypeError, match=rf"^(RegisterOptions\.)?{name} must be"):
        verb(str(catalog_dir), write_wgs84(product.parent))
    assert _tree(catalog_dir) == before


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_folder_holding_no_product_is_a_warning_naming_what_it_holds(
    tmp_path: Path, catalog_dir: Path
) -> None:
    """``register("out/")`` over a folder of ``.jp2`` files returned ``[]``
    and logged only "registered 0 product(s)": the Prefect task and the
    decorator completed as if the products were registered."""
    from producer.prefect import register_and_report

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "scene_20240101.jp2").write_bytes(b"not read")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("producer").addHandler(
        handler
    )  # Prefect's logging set-up keeps caplog from seeing them
    try:
        assert producer.register(folder, catalog=str(catalog_dir), collection="c") == []
        assert register_and_report(str(folder), catalog=str(catalog_dir), collection="c") == []
    finally:
        logging.getLogger("producer").removeHandler(handler)
    warned = [r.getMessage() for r in records]
    assert len([w for w in warned if f"no products found in {folder}" in w and ".jp2 (1)" in w]) == 2, warned
    assert any(f"{folder}/**/*.jp2" in w for w in warned), warned
    assert not catalog_dir.exists()


def test_results_of_a_group_are_in_input_order(tmp_path: Path, catalog_dir: Path) -> None:
    """With ``group`` the results came item by item (the batches gather an
    item's products), not in the order given: ``zip(paths, results)``
    paired a product with another's outcome."""
    scene = write_utm(tmp_path / "src")
    given = []
    for item in ("s1_20240101", "s2_20240102"):
        for band in ("B04", "B08"):
            path = tmp_path / item / f"{band}.tif"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(scene.read_bytes())
            given.append(path)
    given = [given[0], given[2], given[1], given[3]]  # s1/B04, s2/B04, s1/B08, s2/B08
    results = producer.register(
        given,
        catalog=catalog_dir,
        collection="c",
        group=r"(?P<id>[^/]+)/(?P<asset>[^/]+)\.tif$",
        batch_size=1,
    )
    assert [r.source for r in results] == [str(p) for p in given]
    assert [r.id for r in results] == ["s1_20240101", "s2_20240102", "s1_20240101", "s2_20240102"]


async def _notify_async(change: Any) -> None:  # an async consumer's callback
    raise AssertionError("never awaited, never run")


def test_an_async_on_change_or_a_function_as_a_sink_is_refused_before_anything_is_written(
    product: Path, catalog_dir: Path
) -> None:
    """``on_change=async_fn`` was called and never awaited: the result said
    ``created`` and the change was lost (a RuntimeWarning only).
    ``sinks=[print]`` committed the item, then failed it as a ``storage``
    error ("'builtin_function_or_method' object has no attribute 'apply'")."""
    with pytest.raises(InputError, match="is an async function"):
        producer.register([product], catalog=str(catalog_dir), collection="c", on_change=_notify_async)
    with pytest.raises(
        TypeError, match=r"sinks must hold sinks .* not builtin_function_or_method.*on_change="
    ):
        producer.register([product], catalog=str(catalog_dir), collection="c", sinks=[print])
    assert not catalog_dir.exists()
