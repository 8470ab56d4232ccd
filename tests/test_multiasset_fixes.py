"""Multi-asset items after review: pipeline metadata and ``thumbnail`` on
group items, links kept across merges, and a sidecar that comes before the
data files of its item (a retryable error). Real GeoTIFFs and PNGs from the
fixtures of :mod:`tests.test_multiasset`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from producer.events import HandlerConfig, handle
from producer.results import ErrorKind
from tests.s3server import S3Server
from tests.test_multiasset import GROUP, ITEM_KEY, SCENE, _item, _register, scene  # noqa: F401 (fixture)
from tests.trees import assert_stac_valid_tree

PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


def test_group_item_gets_properties_derived_from_and_processing(scene: Path, catalog_dir: Path) -> None:  # noqa: F811
    results = _register(
        [scene / "B02.tif", scene / "B03.tif"],
        catalog_dir,
        properties={"platform": "x"},
        derived_from=["https://example.test/l1/LE07.json"],
        lineage="L1 to L2",
    )
    assert all(r.ok for r in results), [r.error for r in results]
    item = _item(catalog_dir)
    assert item["properties"]["platform"] == "x"
    assert item["properties"]["processing:lineage"] == "L1 to L2"
    assert PROCESSING in item["stac_extensions"]
    assert [ln["href"] for ln in item["links"] if ln["rel"] == "derived_from"] == [
        "https://example.test/l1/LE07.json"
    ]
    assert_stac_valid_tree(catalog_dir)


def test_asset_registered_later_without_derived_from_keeps_earlier_links(
    scene: Path,  # noqa: F811
    catalog_dir: Path,
) -> None:
    _register(scene / "B02.tif", catalog_dir, derived_from=["https://example.test/a.json"], lineage="x")
    _register(scene / "B03.tif", catalog_dir, derived_from=["https://example.test/b.json"])
    (last,) = _register(scene / "B04.tif", catalog_dir)
    assert last.ok, last.error
    item = _item(catalog_dir)
    assert sorted(item["assets"]) == ["B02", "B03", "B04"]
    derived = sorted(ln["href"] for ln in item["links"] if ln["rel"] == "derived_from")
    assert derived == ["https://example.test/a.json", "https://example.test/b.json"]
    assert item["properties"]["processing:lineage"] == "x" and PROCESSING in item["stac_extensions"]
    assert [ln["rel"] for ln in item["links"]].count("self") <= 1
    assert_stac_valid_tree(catalog_dir)


def test_group_thumbnail_renders_from_the_first_data_asset(scene: Path, catalog_dir: Path) -> None:  # noqa: F811
    results = _register([scene / "B03.tif", scene / "B02.tif"], catalog_dir, thumbnail=True)
    assert all(r.ok for r in results), [r.error for r in results]
    item = _item(catalog_dir)
    thumb = item["assets"]["thumbnail"]
    assert thumb["roles"] == ["thumbnail"] and thumb["type"] == "image/png"
    png = (catalog_dir / ITEM_KEY).parent / thumb["href"]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert_stac_valid_tree(catalog_dir)


def test_group_thumbnail_refused_when_the_group_has_a_thumbnail_file(
    scene: Path,  # noqa: F811
    catalog_dir: Path,
) -> None:
    results = _register([scene / "B02.tif", scene / "thumbnail.png"], catalog_dir, thumbnail=True)
    assert all(r.action == "error" for r in results)
    assert "thumbnail=False" in (results[0].error or "")
    assert not (catalog_dir / ITEM_KEY).exists()


def test_sidecar_before_data_is_a_retryable_error_then_registers(
    scene: Path,  # noqa: F811
    catalog_dir: Path,
) -> None:
    (early,) = _register(scene / "thumbnail.png", catalog_dir)
    assert early.action == "error" and early.error_type == ErrorKind.STORAGE
    assert "retry after the data assets" in (early.error or "")
    (data,) = _register(scene / "B02.tif", catalog_dir)
    assert data.ok, data.error
    (retried,) = _register(scene / "thumbnail.png", catalog_dir)  # the retry Prefect / SQS makes
    assert retried.ok, retried.error
    assert sorted(_item(catalog_dir)["assets"]) == ["B02", "thumbnail"]
    assert_stac_valid_tree(catalog_dir)


def test_sqs_sidecar_before_data_is_redelivered_and_lands_after_the_data(
    s3_server: S3Server,
    scene: Path,  # noqa: F811
) -> None:
    """S3 events in any order: the preview's SQS message comes back as a
    batch item failure (redelivered), and lands once B02 is in."""
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    client = s3.client()
    for name in ("B02.tif", "thumbnail.png"):
        client.put_object(Bucket=s3.bucket, Key=f"data/{SCENE}/{name}", Body=(scene / name).read_bytes())

    def message(mid: str, name: str) -> dict[str, Any]:
        record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": s3.bucket}, "object": {"key": f"data/{SCENE}/{name}"}},
        }
        body = json.dumps({"Records": [record]})
        return {"Records": [{"eventSource": "aws:sqs", "messageId": mid, "body": body}]}

    config = HandlerConfig.from_env(
        {
            "STAC_CATALOG": s3.url("stac"),
            "STAC_COLLECTION": "scene",
            "STAC_GROUP": GROUP,
            "STAC_SUFFIXES": ".tif,.png",
            "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
        }
    )
    early = handle(message("m-png", "thumbnail.png"), config)
    assert early["batchItemFailures"] == [{"itemIdentifier": "m-png"}], early
    assert "retry after the data assets" in early["failed"][0]["error"]
    assert handle(message("m-b02", "B02.tif"), config)["failed"] == []
    again = handle(message("m-png", "thumbnail.png"), config)  # SQS redelivers it
    assert again["failed"] == [], again
    body = client.get_object(Bucket=s3.bucket, Key=f"stac/scene/{SCENE}/{SCENE}.json")["Body"].read()
    assert sorted(json.loads(body)["assets"]) == ["B02", "thumbnail"]


def test_later_run_via_link_replaces_the_older_one(scene: Path, catalog_dir: Path) -> None:  # noqa: F811
    """``via`` names the run that last wrote the item, as ``processing:datetime`` does."""
    _register(scene / "B02.tif", catalog_dir, via=["https://runs.example.test/1"])
    (no_via,) = _register(scene / "B03.tif", catalog_dir)
    assert no_via.ok, no_via.error
    vias = [ln["href"] for ln in _item(catalog_dir)["links"] if ln["rel"] == "via"]
    assert vias == ["https://runs.example.test/1"]  # a run without via keeps the earlier one
    _register(scene / "B04.tif", catalog_dir, via=["https://runs.example.test/2"])
    vias = [ln["href"] for ln in _item(catalog_dir)["links"] if ln["rel"] == "via"]
    assert vias == ["https://runs.example.test/2"]
    assert_stac_valid_tree(catalog_dir)


def test_a_text_metadata_file_is_a_metadata_asset_not_a_raster(scene: Path, catalog_dir: Path) -> None:  # noqa: F811
    """Landsat's ``_MTL.txt``/``_ANG.txt`` beside its bands: named in an
    item's assets, it failed as "not a readable raster"; it is now a
    ``text/plain`` metadata asset, like an XML or JSON sidecar."""
    import producer

    mtl = scene / "LE07_20240513_MTL.txt"
    mtl.write_text("GROUP = LANDSAT_METADATA_FILE\nEND\n")
    results = producer.register_item(
        item_id=SCENE,
        assets={"B02": str(scene / "B02.tif"), "MTL": str(mtl)},
        catalog=str(catalog_dir),
        collection="scene",
    )
    assert [r.error for r in results] == [None, None]
    asset = _item(catalog_dir)["assets"]["MTL"]
    assert asset["type"] == "text/plain" and asset["roles"] == ["metadata"] and asset["file:size"] == 34
    assert_stac_valid_tree(catalog_dir)


def test_reruns_of_a_group_never_repeat_a_derived_from_link(
    scene: Path,  # noqa: F811
    catalog_dir: Path,
) -> None:
    """Each rerun of a group's assets with the same inputs (one asset at a
    time, the same input given twice, the whole group again) keeps one link
    per rel and href; an input given once more by another asset is added once."""
    first = ["https://example.test/a.json", "https://example.test/a.json"]
    for _ in range(2):
        for band in ("B02.tif", "B03.tif"):
            (result,) = _register(scene / band, catalog_dir, derived_from=first)
            assert result.ok, result.error
    results = _register(
        [scene / "B02.tif", scene / "B03.tif"],
        catalog_dir,
        derived_from=["https://example.test/a.json", "https://example.test/b.json"],
    )
    assert all(r.ok for r in results), [r.error for r in results]
    pairs = [(ln["rel"], ln["href"]) for ln in _item(catalog_dir)["links"]]
    assert len(pairs) == len(set(pairs)), pairs
    derived = sorted(href for rel, href in pairs if rel == "derived_from")
    assert derived == ["https://example.test/a.json", "https://example.test/b.json"]
    assert_stac_valid_tree(catalog_dir)
