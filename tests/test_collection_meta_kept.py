"""Metadata given for a collection that already exists: it is written only
when the collection is created, so a caller passing a new title or licence
to an existing one is warned that nothing changed (before: silence)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from tests import rasters


@pytest.fixture(scope="module")
def utm(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("rasters"))


def _copy(utm: Path, tmp_path: Path, day: int) -> str:
    target = tmp_path / f"utm_202405{day:02d}.tif"
    shutil.copy(utm, target)
    return str(target)


def _kept(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "keeps its own" in r.getMessage()
    ]


def test_other_metadata_for_an_existing_collection_is_warned_about_once(utm, tmp_path, catalog_dir, caplog):
    meta = {"title": "NDVI", "license": "CC-BY-4.0"}
    [first] = producer.register(
        [_copy(utm, tmp_path, 1)], catalog=str(catalog_dir), collection="c", collection_meta=meta
    )
    assert first.ok, first.error
    caplog.set_level(logging.WARNING, logger="producer")
    # the same metadata again (every run of a pipeline passes it): nothing to say
    [again] = producer.register(
        [_copy(utm, tmp_path, 2)], catalog=str(catalog_dir), collection="c", collection_meta=meta
    )
    assert again.ok and _kept(caplog) == []
    other = {"title": "NDVI v2", "license": "CC-BY-SA-4.0", "keywords": ["ndvi"]}
    results = producer.register(
        [_copy(utm, tmp_path, 3), _copy(utm, tmp_path, 4)],
        catalog=str(catalog_dir),
        collection="c",
        collection_meta=other,
        batch_size=1,  # two batches, one warning per run
    )
    assert all(r.ok for r in results)
    [message] = _kept(caplog)
    assert "'NDVI', not 'NDVI v2'" in message and "'CC-BY-4.0', not 'CC-BY-SA-4.0'" in message
    assert "keywords None, not ['ndvi']" in message and "collection.json" in message
    doc = json.loads((catalog_dir / "c" / "collection.json").read_text())
    assert (doc["title"], doc["license"]) == ("NDVI", "CC-BY-4.0")  # kept, as the warning says


def test_the_cli_prints_the_warning(utm, tmp_path, catalog_dir):
    runner = CliRunner()
    args = ["register", "-c", str(catalog_dir), "--collection", "c"]
    assert runner.invoke(main, [*args, _copy(utm, tmp_path, 1), "--license", "CC-BY-4.0"]).exit_code == 0
    out = runner.invoke(main, [*args, _copy(utm, tmp_path, 2), "--license", "MIT"])
    assert out.exit_code == 0, out.output
    assert "keeps its own metadata (license 'CC-BY-4.0', not 'MIT')" in out.output


def test_other_metadata_for_an_existing_root_is_warned_about(utm, tmp_path, catalog_dir, caplog):
    root = {"id": "ours", "title": "Our catalog"}
    [first] = producer.register(
        [_copy(utm, tmp_path, 1)], catalog=str(catalog_dir), collection="c", root_meta=root
    )
    assert first.ok, first.error
    caplog.set_level(logging.WARNING, logger="producer")
    [same] = producer.register(
        [_copy(utm, tmp_path, 2)], catalog=str(catalog_dir), collection="c", root_meta=root
    )
    assert same.ok and _kept(caplog) == []
    [other] = producer.register(
        [_copy(utm, tmp_path, 3)],
        catalog=str(catalog_dir),
        collection="c",
        root_meta={**root, "title": "New"},
    )
    assert other.ok
    [message] = _kept(caplog)
    assert message.startswith("the root catalog at ") and "title 'Our catalog', not 'New'" in message
    assert json.loads((catalog_dir / "catalog.json").read_text())["title"] == "Our catalog"


def test_summaries_and_item_assets_the_items_extend_are_no_change(utm, tmp_path, catalog_dir, caplog):
    # a pipeline giving summaries (and item_assets) for its new collection: the
    # items add their own values to both on every commit, so an unchanged
    # rerun with the same metadata differs from the stored document only by them
    meta = {
        "title": "S2 NDVI",
        "summaries": {"constellation": ["sentinel-2"], "gsd": {"minimum": 10, "maximum": 10}},
        "item_assets": {"data": {"title": "NDVI", "roles": ["data"]}},
    }
    path = _copy(utm, tmp_path, 1)
    [first] = producer.register([path], catalog=str(catalog_dir), collection="c", collection_meta=meta)
    assert first.ok, first.error
    caplog.set_level(logging.WARNING, logger="producer")
    [again] = producer.register([path], catalog=str(catalog_dir), collection="c", collection_meta=meta)
    assert again.ok and again.action == "unchanged"
    assert _kept(caplog) == []
    # a summary the producer does not keep, given otherwise, is still told
    other = {**meta, "summaries": {**meta["summaries"], "constellation": ["landsat"]}}
    [third] = producer.register([path], catalog=str(catalog_dir), collection="c", collection_meta=other)
    assert third.ok
    [message] = _kept(caplog)
    assert "summaries" in message and "landsat" in message


def _collection_link_title(catalog: Path, item_id: str) -> str | None:
    item = json.loads((catalog / "ndvi" / item_id / f"{item_id}.json").read_text())
    (link,) = [link for link in item["links"] if link["rel"] == "collection"]
    return link.get("title")


@pytest.mark.parametrize("workers", [1, 2], ids=["batch", "pipelined"])
def test_items_name_the_existing_collection_by_its_own_title(utm, tmp_path, catalog_dir, workers):
    """An item's ``collection`` link took its title from the metadata given
    to this call, or the collection id without any: a rerun without
    ``--collection-title`` (or with another one, which the warning says is
    kept) rewrote every item ``updated`` with a link title the collection
    does not have. The link names the collection as it is."""
    first, second = _copy(utm, tmp_path, 13), _copy(utm, tmp_path, 14)
    opts = {"workers": workers}
    (r,) = producer.register(
        [first], catalog=catalog_dir, collection="ndvi", collection_meta={"title": "NDVI"}
    )
    assert r.action == "created", r.error
    before = (catalog_dir / "ndvi" / "utm_20240513" / "utm_20240513.json").read_bytes()
    for meta in (None, {"title": "Other"}):
        results = producer.register(
            [first, second], catalog=catalog_dir, collection="ndvi", collection_meta=meta, **opts
        )
        assert [r.action for r in results][0] == "unchanged", [r.error for r in results]
        assert (catalog_dir / "ndvi" / "utm_20240513" / "utm_20240513.json").read_bytes() == before
        assert _collection_link_title(catalog_dir, "utm_20240514") == "NDVI"


def test_a_new_partition_of_an_existing_collection_is_titled_after_it(utm, tmp_path, catalog_dir):
    """A partition a later call creates was titled after that call's
    metadata (or the collection id), not the collection: ``ndvi 2025`` beside
    ``NDVI 2024``."""
    first = _copy(utm, tmp_path, 13)
    later = tmp_path / "utm_20250513.tif"
    shutil.copy(utm, later)
    producer.register(
        [first], catalog=catalog_dir, collection="ndvi", partition="year", collection_meta={"title": "NDVI"}
    )
    (r,) = producer.register([later], catalog=catalog_dir, collection="ndvi", partition="year")
    assert r.action == "created", r.error
    assert json.loads((catalog_dir / "ndvi" / "2025" / "catalog.json").read_text())["title"] == "NDVI 2025"
    links = json.loads((catalog_dir / "ndvi" / "collection.json").read_text())["links"]
    assert {link["title"] for link in links if link["rel"] == "child"} == {"NDVI 2024", "NDVI 2025"}
    item = json.loads((catalog_dir / "ndvi" / "2025" / "utm_20250513" / "utm_20250513.json").read_text())
    assert [link["title"] for link in item["links"] if link["rel"] == "collection"] == ["NDVI"]
