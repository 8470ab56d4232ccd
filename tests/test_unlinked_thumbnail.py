"""A rendered thumbnail no item links (a register killed between its PNG and
its item, or the old product's preview after a ``replace``): ``reconcile``
reports it as ``unlinked-thumbnail``, a warning, and ``reconcile(fix=True)``
deletes it once it is older than a register under way; a young one, and
every linked one, stays."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import producer
from producer.catalog.layout import resolve_href
from producer.repair import UNDER_WAY_FOR
from producer.store import CountingStore, open_store
from tests import rasters
from tests.crashes import CrashingStore, SimulatedKill
from tests.test_thumbnail import _scene

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

ITEM = "c/scene_20240101/scene_20240101.json"


def _linked_png(catalog: Path, item_key: str) -> str:
    item = json.loads((catalog / item_key).read_text())
    key = resolve_href(item_key, item["assets"]["thumbnail"]["href"])
    assert key is not None
    return key


def _age(path: Path, seconds: float) -> None:
    """Make the file at ``path`` look written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _pngs(catalog: Path) -> list[str]:
    return sorted(p.relative_to(catalog).as_posix() for p in catalog.rglob("*.png"))


def test_the_replaced_products_thumbnail_is_reported_and_deleted_once_old(tmp_path, catalog_dir):
    a = _scene(tmp_path / "a", flip=False)
    b = _scene(tmp_path / "b", flip=True)
    producer.register([a], catalog=str(catalog_dir), collection="c", thumbnail=True)
    old = _linked_png(catalog_dir, ITEM)
    [replaced] = producer.register(
        [b], catalog=str(catalog_dir), collection="c", thumbnail=True, replace=True
    )
    assert replaced.action == "updated", replaced.error
    new = _linked_png(catalog_dir, ITEM)
    assert _pngs(catalog_dir) == sorted([old, new])

    report = producer.reconcile(str(catalog_dir))
    assert report.found == {"unlinked-thumbnail": 1}
    [problem] = report.problems
    assert problem.key == old and not problem.is_error
    assert "no item links" in problem.message and "reconcile(fix=True) deletes it" in problem.message

    # a young PNG may be a register's at work: a fix leaves it, still reported
    young = producer.reconcile(str(catalog_dir), fix=True)
    assert young.fixed.get("unlinked-thumbnail") is None
    assert [p.key for p in young.remaining] == [old]
    assert _pngs(catalog_dir) == sorted([old, new])

    _age(catalog_dir / old, UNDER_WAY_FOR + 60)
    _age(catalog_dir / new, UNDER_WAY_FOR + 60)  # old, but linked: stays
    dry = producer.reconcile(str(catalog_dir), fix=True, dry_run=True)
    assert dry.would_fix.get("unlinked-thumbnail") == 1 and _pngs(catalog_dir) == sorted([old, new])
    fixed = producer.reconcile(str(catalog_dir), fix=True)
    assert fixed.fixed["unlinked-thumbnail"] == 1 and fixed.remaining == []
    assert _pngs(catalog_dir) == [new]
    assert producer.reconcile(str(catalog_dir)).problems == []


def test_a_register_killed_after_writing_its_png_leaves_one_reported(tmp_path, catalog_dir):
    producer.register([rasters.write_utm(tmp_path / "data")], catalog=str(catalog_dir), collection="c")
    product = rasters.write_multiband(tmp_path / "data")
    crashing = CrashingStore(open_store(str(catalog_dir)), crash_after=1)
    with pytest.raises(SimulatedKill):
        producer.register([product], catalog=crashing, collection="c", thumbnail=True)
    [png] = crashing.writes
    assert png.endswith(".png") and _pngs(catalog_dir) == [png]
    [problem] = producer.validate_catalog(str(catalog_dir))
    assert (problem.kind, problem.key) == ("unlinked-thumbnail", png)
    _age(catalog_dir / png, UNDER_WAY_FOR + 60)
    assert producer.reconcile(str(catalog_dir), fix=True).fixed == {"unlinked-thumbnail": 1}
    assert _pngs(catalog_dir) == []
    # the rerun of the register makes the PNG again, linked this time
    [again] = producer.register([product], catalog=str(catalog_dir), collection="c", thumbnail=True)
    assert again.action == "created", again.error
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_an_old_png_its_item_links_by_now_is_not_deleted(tmp_path, catalog_dir, monkeypatch):
    """The audit saw the PNG unlinked; by the time the fix deletes, the item
    beside it links it (its register finished): it stays."""
    from producer import repair

    a = _scene(tmp_path / "a", flip=False)
    producer.register([a], catalog=str(catalog_dir), collection="c", thumbnail=True)
    png = _linked_png(catalog_dir, ITEM)
    _age(catalog_dir / png, UNDER_WAY_FOR + 60)
    real_audit = repair.audit

    def audit_missing_the_link(*args, **kwargs):
        report = real_audit(*args, **kwargs)
        report.unlinked_thumbnails = [png]
        return report

    monkeypatch.setattr(repair, "audit", audit_missing_the_link)
    report = producer.reconcile(str(catalog_dir), fix=True)
    assert report.fixed.get("unlinked-thumbnail") is None
    assert _pngs(catalog_dir) == [png]


def test_an_orphan_items_png_is_not_reported(tmp_path, catalog_dir):
    a = _scene(tmp_path / "a", flip=False)
    producer.register([a], catalog=str(catalog_dir), collection="c", thumbnail=True)
    collection = catalog_dir / "c" / "collection.json"
    doc = json.loads(collection.read_text())
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    collection.write_text(json.dumps(doc))
    kinds = sorted(p.kind for p in producer.validate_catalog(str(catalog_dir)))
    assert "unlinked-thumbnail" not in kinds and "orphan" in kinds


def test_a_png_outside_the_collections_or_not_named_as_a_thumbnail_is_left(tmp_path, catalog_dir):
    producer.register([rasters.write_utm(tmp_path / "data")], catalog=str(catalog_dir), collection="c")
    for key in (
        "data/scene/scene.0f7af015.png",
        "c/utm_20240513/quicklook.png",
        "c/utm_20240513/utm_20240513.png",
    ):
        (catalog_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (catalog_dir / key).write_bytes(b"\x89PNG")
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_a_clean_walk_lists_once_with_or_without_thumbnails(tmp_path, catalog_dir):
    for name, flip in (("a", False), ("b", True)):
        producer.register(
            [_scene(tmp_path / name, flip=flip)],
            catalog=str(catalog_dir),
            collection=f"c{name}",
            thumbnail=name == "a",
        )
    store = CountingStore(open_store(str(catalog_dir)))
    assert producer.validate_catalog(store) == []
    assert store.totals()["list"] == 1
    assert not any(key.endswith(".png") for key in store.gets)


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
def test_an_unlinked_thumbnail_on_s3_is_reported_and_deleted_by_its_age(
    s3_server, tmp_path, monkeypatch, client
):
    from producer import repair
    from producer.store.s3_obstore import CLIENT_ENV

    if client == "obstore":
        monkeypatch.setenv(CLIENT_ENV, "obstore")
    bucket = s3_server.new_bucket()
    options = {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}}
    catalog = f"s3://{bucket}/stac"
    a = _scene(tmp_path / "a", flip=False)
    b = _scene(tmp_path / "b", flip=True)
    producer.register([a], catalog=catalog, collection="c", thumbnail=True, storage_options=options)
    producer.register(
        [b], catalog=catalog, collection="c", thumbnail=True, replace=True, storage_options=options
    )
    client_ = s3_server.client()

    def pngs() -> list[str]:
        listed = client_.list_objects_v2(Bucket=bucket, Prefix="stac/c/").get("Contents", [])
        return sorted(o["Key"] for o in listed if o["Key"].endswith(".png"))

    assert len(pngs()) == 2
    young = producer.reconcile(catalog, fix=True, storage_options=options)
    [left] = [p.key for p in young.remaining]
    assert young.found == {"unlinked-thumbnail": 1} and len(pngs()) == 2
    monkeypatch.setattr(repair, "UNDER_WAY_FOR", 0)  # every PNG counts as old now
    fixed = producer.reconcile(catalog, fix=True, storage_options=options)
    assert fixed.fixed == {"unlinked-thumbnail": 1} and fixed.remaining == []
    assert f"stac/{left}" not in pngs() and len(pngs()) == 1
