"""A warm process (a Lambda container, a long-running worker) registering
products as they arrive in one folder, on the local moto server.

The other S3 tests use a fresh bucket each, so a folder is listed once and
never written to again; here files arrive one at a time in the same folder
(and one is overwritten), each registered by its own call in the same
process, as the event handler does. fsspec keeps one file system per set of
options for the life of the process: a listing of the folder made by an
earlier call (GDAL's look for sidecar files, a prefix expansion) must never
answer a later call's stat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from producer import api
from producer.events import HandlerConfig, handle
from tests import cubes
from tests.faultproxy import FaultProxy
from tests.rasters import write_utm, write_wgs84
from tests.s3server import S3Server


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """A fresh bucket per test on the session's local S3 server."""
    return s3_server._replace(bucket=s3_server.new_bucket())


def _config(s3: S3Server, **kw: Any) -> HandlerConfig:
    return HandlerConfig(catalog=s3.url("stac"), collection="ndvi", storage_options=s3.storage_options, **kw)


def _put(s3: S3Server, key: str, body: bytes) -> None:
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=body)


def _created(bucket: str, key: str, message_id: str) -> dict[str, Any]:
    """An SQS batch of one message carrying one S3 ObjectCreated record."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
    }
    body = json.dumps({"Records": [record]})
    return {"Records": [{"messageId": message_id, "eventSource": "aws:sqs", "body": body}]}


def _item(s3: S3Server, item_id: str) -> dict[str, Any]:
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"stac/ndvi/{item_id}/{item_id}.json")["Body"]
    return json.loads(body.read())


def test_files_arriving_one_by_one_in_a_folder_all_register(s3: S3Server, tmp_path: Path) -> None:
    raster = write_utm(tmp_path).read_bytes()
    names = ["S2_20240601_T31UFQ", "S2_20240602_T31UFQ", "S2_20240603_T31UFQ"]
    for i, name in enumerate(names):
        key = f"products/ndvi/{name}.tif"
        _put(s3, key, raster)  # uploaded after the previous one was registered (and its folder listed)
        out = handle(_created(s3.bucket, key, f"m{i}"), _config(s3))
        assert out["failed"] == [] and out["batchItemFailures"] == [], out
        assert [(r["id"], r["action"]) for r in out["registered"]] == [(name, "created")]
    again = handle(_created(s3.bucket, f"products/ndvi/{names[1]}.tif", "m1"), _config(s3))
    assert [(r["id"], r["action"]) for r in again["registered"]] == [(names[1], "unchanged")]


def test_overwritten_product_is_read_anew(s3: S3Server, tmp_path: Path) -> None:
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    _put(s3, key, write_utm(tmp_path / "utm").read_bytes())
    handle(_created(s3.bucket, key, "m0"), _config(s3))
    assert _item(s3, "S2_20240601_T31UFQ")["properties"]["proj:code"] == "EPSG:32633"

    _put(s3, key, write_wgs84(tmp_path / "wgs84").read_bytes())  # re-processed, same key
    out = handle(_created(s3.bucket, key, "m1"), _config(s3))
    assert out["failed"] == [] and out["batchItemFailures"] == [], out
    assert [(r["id"], r["action"]) for r in out["registered"]] == [("S2_20240601_T31UFQ", "updated")]
    assert _item(s3, "S2_20240601_T31UFQ")["properties"]["proj:code"] == "EPSG:4326"


def test_bands_of_a_scene_arriving_one_by_one_all_join_the_item(s3: S3Server, tmp_path: Path) -> None:
    raster = write_utm(tmp_path).read_bytes()
    config = _config(s3, group=r"(?P<id>LE07_\d{8})/(?P<asset>[^/]+)\.tif$")
    for i, band in enumerate(["B02", "B03", "B04"]):
        key = f"products/LE07_20240513/{band}.tif"
        _put(s3, key, raster)
        out = handle(_created(s3.bucket, key, f"m{i}"), config)
        assert out["failed"] == [], out
    assert sorted(_item(s3, "LE07_20240513")["assets"]) == ["B02", "B03", "B04"]


def test_netcdf_added_to_a_listed_prefix_registers(s3: S3Server, tmp_path: Path) -> None:
    """The prefix expansion's listing (another file system than GDAL's) must
    not answer the datacube reader's stat of a file added since."""
    cube = cubes.write_two_variables(tmp_path).read_bytes()
    _put(s3, "cubes/a_20240601.nc", cube)
    catalog = s3.url("stac")
    first = api.register(
        s3.url("cubes/"), catalog=catalog, collection="c", storage_options=s3.storage_options
    )
    assert [r.error for r in first] == [None]
    _put(s3, "cubes/b_20240602.nc", cube)
    second = api.register(
        s3.url("cubes/b_20240602.nc"), catalog=catalog, collection="c", storage_options=s3.storage_options
    )
    assert [(r.error, r.action.value) for r in second] == [(None, "created")]


def test_products_of_one_folder_cost_one_listing_per_call(s3_server: S3Server, tmp_path: Path) -> None:
    """What the listing cache saved is kept within a call: GDAL's look for
    sidecar files lists a folder once for all its products, not per product."""
    bucket = s3_server.new_bucket()
    raster = write_utm(tmp_path).read_bytes()
    for day in (1, 2, 3):
        s3_server.client().put_object(Bucket=bucket, Key=f"q/a_2024060{day}.tif", Body=raster)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
        }
        for _ in range(2):  # each call lists anew (a later call must see new files)
            proxy.clear()
            results = api.register(
                f"s3://{bucket}/q/", catalog=str(tmp_path / "cat"), collection="c", storage_options=options
            )
            assert [r.error for r in results] == [None, None, None]
            listings = [q for method, _, q in proxy.trace if method == "GET" and "list-type=2" in q]
            # is it a folder, its products, and GDAL's look for sidecar files: once, not per product
            assert len(listings) == 3, listings
            assert sum("delimiter=/&" in q for q in listings) == 2, listings
