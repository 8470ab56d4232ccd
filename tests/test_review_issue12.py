"""Cases the review of the issue-12 merge found: a reconcile that walks item
links, a linked item without a footprint taken for an orphan, and a rerun
after a crash that left the mirror's base file missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import producer
from producer.audit import audit
from producer.store import open_store
from producer.validate import default_validator
from tests.rasters import write_tile

DATES = ["20230105", "20230117", "20230220"]


def _catalog(tmp_path: Path) -> tuple[Path, list[str]]:
    tiles = [write_tile(tmp_path / "tiles", f"t_{d}.tif", 10.0 + i, 50.0) for i, d in enumerate(DATES)]
    catalog = tmp_path / "catalog"
    results = producer.register(tiles, catalog=str(catalog), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    return catalog, tiles


def _edit(path: Path, change: object) -> None:
    doc = json.loads(path.read_text())
    change(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_audit_of_items_linking_each_other_and_themselves_finishes(tmp_path: Path) -> None:
    catalog, _ = _catalog(tmp_path)
    a = catalog / "c/t_20230105/t_20230105.json"
    b = catalog / "c/t_20230117/t_20230117.json"
    _edit(a, lambda d: d["links"].append({"rel": "item", "href": "../t_20230117/t_20230117.json"}))
    _edit(b, lambda d: d["links"].append({"rel": "item", "href": "../t_20230105/t_20230105.json"}))
    _edit(b, lambda d: d["links"].append({"rel": "item", "href": "./t_20230117.json"}))
    report = audit(open_store(str(catalog)), default_validator(), keep_items=False)
    assert report.item_count == 3
    assert not [p for p in report.problems if p.kind == "orphan"], report.problems


def test_linked_item_without_bbox_is_a_schema_problem_not_an_orphan_and_reconcile_finishes(
    tmp_path: Path,
) -> None:
    catalog, _ = _catalog(tmp_path)
    item = catalog / "c/t_20230117/t_20230117.json"
    _edit(item, lambda d: d.pop("bbox"))
    report = audit(open_store(str(catalog)), default_validator(), keep_items=False)
    kinds = {p.kind for p in report.problems if p.key == "c/t_20230117/t_20230117.json"}
    assert "schema" in kinds and "orphan" not in kinds, report.problems
    fixed = producer.reconcile(str(catalog), fix=True)  # must not raise
    assert "orphan" not in fixed.found, fixed.found


def test_rerun_with_updated_items_recreates_a_missing_mirror_base(tmp_path: Path) -> None:
    catalog, tiles = _catalog(tmp_path)
    # what a crash between the commit and the mirror write leaves after a first
    # run: the collection links c/items.parquet, which was never written
    (catalog / "c/items.parquet").unlink()
    shutil.rmtree(catalog / "c/items-fragments", ignore_errors=True)
    for tile in tiles:  # the same products, changed: the rerun finds them updated
        Path(tile).write_bytes(Path(tile).read_bytes() + b"\0")
    results = producer.register(tiles, catalog=str(catalog), collection="c", checksum=True)
    assert {r.action for r in results} == {"updated"}, [(r.action, r.error) for r in results]
    assert (catalog / "c/items.parquet").exists()
