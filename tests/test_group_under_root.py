"""Products kept under the catalog root: a JSON sidecar there is a product
(only the catalog's own document keys are not), and a catalog file the
caller names is never dropped silently: it fails, named. Real GeoTIFFs from
:mod:`tests.rasters` in ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import producer
from producer.cli import main
from tests import rasters

GROUP = r"(?P<id>scene_\d{8})/(?P<asset>[^/]+)\.(tif|json)$"


def _scene(catalog: Path) -> tuple[str, str]:
    folder = catalog / "data" / "scene_20240501"
    tif = rasters.write_utm(folder)
    meta = folder / "meta.json"
    meta.write_text('{"a": 1}')
    return str(tif), str(meta)


def _errors(catalog: Path) -> list[str]:
    return [str(p) for p in producer.validate_catalog(str(catalog)) if p.is_error]


def test_sidecar_under_the_catalog_root_is_registered_with_its_item(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    tif, meta = _scene(catalog)
    results = producer.register_item(
        item_id="scene_20240501", assets={"B02": tif, "meta": meta}, catalog=str(catalog), collection="h"
    )
    assert [(r.source, r.action) for r in results] == [(tif, "created"), (meta, "created")]
    item = json.loads((catalog / "h" / "scene_20240501" / "scene_20240501.json").read_text())
    assert sorted(item["assets"]) == ["B02", "meta"] and "metadata" in item["assets"]["meta"]["roles"]
    assert _errors(catalog) == []  # the sidecar is no orphan document

    # the same through the CLI with a group pattern, the sidecar named first
    out = CliRunner().invoke(
        main, ["register", meta, tif, "-c", str(catalog), "--collection", "g", "--group", GROUP, "--json"]
    )
    assert out.exit_code == 0, out.output
    assert [json.loads(line)["action"] for line in out.output.splitlines()] == ["created", "created"]
    assert _errors(catalog) == []


def test_a_named_catalog_document_fails_named_and_a_walked_one_is_skipped(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    tif, _ = _scene(catalog)
    assert producer.register([tif], catalog=str(catalog), collection="c")[0].ok
    item_doc = str(catalog / "c" / "utm_20240513" / "utm_20240513.json")

    good, bad = producer.register_item(
        item_id="scene_20240501", assets={"B02": tif, "stac": item_doc}, catalog=str(catalog), collection="h"
    )
    assert good.action == "created", good.error
    assert bad.action == "error" and bad.source == item_doc
    assert "not registered" in bad.error and "catalog document" in bad.error and item_doc in bad.error

    out = CliRunner().invoke(
        main,
        [
            "register",
            tif,
            str(catalog / "catalog.json"),
            "-c",
            str(catalog),
            "--collection",
            "g",
            "--group",
            r"(?P<id>[a-z]+)_\d+/.*(?P<asset>utm|catalog)",
            "--json",
        ],
    )
    assert out.exit_code == 1, out.output
    rows = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and rows[1]["action"] == "error" and "catalog.json" in rows[1]["error"]

    # the whole folder: the catalog's own documents found by walking it are skipped
    walked = producer.register([str(catalog)], catalog=str(catalog), collection="w", group=GROUP)
    assert sorted(Path(r.source).name for r in walked) == ["meta.json", "utm_20240513.tif"]
    assert all(r.ok for r in walked), [r.error for r in walked]
    assert _errors(catalog) == []


def test_without_a_group_a_named_catalog_file_or_json_fails_named_and_writes_nothing(tmp_path: Path) -> None:
    """Was: GDAL's STACIT driver opened the catalog's own item document as a
    raster, and a new item whose data asset was that document was created
    (exit 0); catalog.json failed as 'not a readable raster (corrupt...)'."""
    catalog = tmp_path / "catalog"
    src = rasters.write_utm(tmp_path / "src")  # outside the catalog: an absolute href in the item
    assert producer.register([str(src)], catalog=str(catalog), collection="c")[0].ok
    item_doc = catalog / "c" / "utm_20240513" / "utm_20240513.json"
    before = sorted(str(p.relative_to(catalog)) for p in catalog.rglob("*"))
    for named in (item_doc, catalog / "catalog.json", catalog / "c" / "collection.json"):
        out = CliRunner().invoke(
            main, ["register", str(named), "-c", str(catalog), "--collection", "c", "--json"]
        )
        assert out.exit_code == 1, out.output
        (row,) = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
        assert row["action"] == "error" and row["error_type"] == "input", row
        assert str(named) in row["error"] and "which the catalog writes itself" in row["error"], row
    # any other JSON file, inside the catalog root or not: no product, the fix is a group pattern
    other = tmp_path / "elsewhere" / "scene.json"
    other.parent.mkdir()
    other.write_text(item_doc.read_text())
    out = CliRunner().invoke(main, ["register", str(other), "-c", str(catalog), "--collection", "c"])
    assert out.exit_code == 1, out.output
    assert "a JSON file is no raster or NetCDF product" in out.output and "--group" in out.output
    (result,) = producer.register([str(other)], catalog=str(catalog), collection="c")
    assert result.action == "error" and "group=" in result.error and "--" not in result.error
    assert sorted(str(p.relative_to(catalog)) for p in catalog.rglob("*")) == before
    assert _errors(catalog) == []
