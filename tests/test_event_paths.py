"""The event path's filters and removals, against a local S3: console folder
markers, a bucket-only URL prefix, removals a group pattern never matched,
S3 Lifecycle expirations, and the deletion of a whole Zarr store."""

from __future__ import annotations

from pathlib import Path

import pytest

from producer.events import HandlerConfig, ObjectEvent, _skip_reason, handle, parse_event
from tests.s3server import S3Server
from tests.test_events import _s3_notification, _sqs, config, item_links, keys, load, put, read_json, retarget


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """A fresh bucket per test on the session's local S3 server."""
    return s3_server._replace(bucket=s3_server.new_bucket())


@pytest.fixture
def raster_bytes(tmp_path: Path) -> bytes:
    """A small real GeoTIFF (EPSG:32633)."""
    from tests.rasters import write_utm

    return write_utm(tmp_path / "src").read_bytes()


# ---------------------------------------------------------------------------
# folder markers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ObjectCreated:Put", "ObjectRemoved:Delete"])
def test_console_folder_marker_is_skipped_not_registered_as_a_prefix(
    s3: S3Server, raster_bytes: bytes, name: str
) -> None:
    """With every file ending accepted, the zero-byte ``products/`` key that
    the S3 console's "Create folder" writes used to be registered as the
    prefix it names: every product under it, then the message failed and
    the scan repeated on each redelivery."""
    put(s3, "products/old/a_20240601.tif", raster_bytes)
    put(s3, "products/", b"")
    out = handle(retarget(_sqs(_s3_notification("products/", name)), s3.bucket), config(s3, suffixes=()))
    assert out["registered"] == [] and out["removed"] == []
    assert out["failed"] == [] and out["batchItemFailures"] == []
    assert [s["url"] for s in out["skipped"]] == [f"s3://{s3.bucket}/products/"]
    assert out["skipped"][0]["reason"].startswith("folder marker")
    assert keys(s3, "stac/") == []


# ---------------------------------------------------------------------------
# a URL prefix pins its bucket
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["s3://data", "s3://data/"])
def test_bucket_only_url_prefix_accepts_that_bucket_only(prefix: str) -> None:
    cfg = HandlerConfig(catalog="s3://cat/stac", collection="c", prefixes=(prefix,))
    accepted = [
        bucket
        for bucket in ("data", "data-archive", "data2-private", "dat")
        if _skip_reason(ObjectEvent("created", bucket, "x/a_20240601.tif"), cfg) is None
    ]
    assert accepted == ["data"]
    # a URL prefix with a key part still matches the key's own prefix, any depth
    deep = HandlerConfig(catalog="s3://cat/stac", collection="c", prefixes=("s3://data/x/a",))
    assert _skip_reason(ObjectEvent("created", "data", "x/a_20240601.tif"), deep) is None
    assert _skip_reason(ObjectEvent("created", "data", "x/b_20240601.tif"), deep) is not None


def test_bucket_only_url_prefix_end_to_end(s3: S3Server, raster_bytes: bytes) -> None:
    key = "products/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    payload = retarget(_s3_notification(key), s3.bucket)
    out = handle(payload, config(s3, prefixes=(f"s3://{s3.bucket}",)))
    assert [r["id"] for r in out["registered"]] == ["S2_20240601_T31UFQ"]
    # the same object seen through a bucket whose name merely starts alike
    longer = config(s3, prefixes=(f"s3://{s3.bucket[:-1]}",))
    out = handle(payload, longer)
    assert out["registered"] == [] and out["skipped"][0]["reason"].startswith("key does not start")
    assert item_links(s3) == ["./S2_20240601_T31UFQ/S2_20240601_T31UFQ.json"]
    assert read_json(s3, "stac/catalog.json") is not None


# ---------------------------------------------------------------------------
# removals a group pattern never matched
# ---------------------------------------------------------------------------

GROUP = r"(?P<id>LE07_\d{8})/(?P<asset>[^/]+)\.(tif|png|xml)$"


def test_removal_of_a_file_the_group_pattern_does_not_match_is_skipped(s3: S3Server) -> None:
    """Such a file was never registered (its creation was refused); its
    removal failed with the registration's "widen the pattern" message and
    was redelivered until the dead-letter queue."""
    payload = retarget(
        _sqs(
            _s3_notification("products/misc/other_20240601.tif", "ObjectRemoved:Delete"),
            _s3_notification("products/LE07_20240601/B1.tif", "ObjectRemoved:Delete"),
        ),
        s3.bucket,
    )
    out = handle(payload, config(s3, group=GROUP))
    assert out["failed"] == [] and out["batchItemFailures"] == []
    assert out["skipped"] == [
        {
            "url": f"s3://{s3.bucket}/products/misc/other_20240601.tif",
            "reason": "not matched by the group pattern; never registered",
        }
    ]
    # a file the pattern matches still goes to the removal (its item was never written: absent)
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("LE07_20240601", "absent")]
    assert keys(s3, "stac/") == []


# ---------------------------------------------------------------------------
# S3 Lifecycle expirations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "LifecycleExpiration:Delete",
        "LifecycleExpiration:DeleteMarkerCreated",
        "s3:LifecycleExpiration:Delete",
    ],
)
def test_lifecycle_expiration_is_a_removal(name: str) -> None:
    events, failures = parse_event(_s3_notification("p/a.tif", name))
    assert failures == [] and [(e.kind, e.key) for e in events] == [("removed", "p/a.tif")]


def test_eventbridge_lifecycle_expiration_is_a_removal() -> None:
    doc = load("eventbridge_deleted.json")
    doc["detail"] |= {"reason": "Lifecycle Expiration", "deletion-type": "Delete Marker Created"}
    events, failures = parse_event(doc)
    assert failures == [] and [e.kind for e in events] == ["removed"]


@pytest.mark.parametrize("name", ["LifecycleExpiration:Delete", "LifecycleExpiration:DeleteMarkerCreated"])
def test_product_expired_by_a_lifecycle_rule_loses_its_item(
    s3: S3Server, raster_bytes: bytes, name: str
) -> None:
    """S3 notifies a Lifecycle rule's deletions as LifecycleExpiration:*, not
    ObjectRemoved:*; the handler ignored them and the item stayed, pointing
    at a deleted object."""
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    assert (
        handle(retarget(_s3_notification(key), s3.bucket), config(s3))["registered"][0]["action"] == "created"
    )
    s3.client().delete_object(Bucket=s3.bucket, Key=key)  # what the rule does
    out = handle(retarget(_sqs(_s3_notification(key, name)), s3.bucket), config(s3))
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601_T31UFQ", "removed")]
    assert out["failed"] == [] and out["skipped"] == []
    assert read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json") is None
    assert item_links(s3) == []


def test_lifecycle_expiration_of_an_older_version_keeps_the_item(s3: S3Server, raster_bytes: bytes) -> None:
    """LifecycleExpiration:Delete also reports a noncurrent version deleted
    for good: the object itself is still there, so its item stays."""
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    handle(retarget(_s3_notification(key), s3.bucket), config(s3))
    out = handle(retarget(_s3_notification(key, "LifecycleExpiration:Delete"), s3.bucket), config(s3))
    assert out["removed"] == [] and out["failed"] == []
    assert "exists again" in out["skipped"][0]["reason"]
    assert item_links(s3) == ["./S2_20240601_T31UFQ/S2_20240601_T31UFQ.json"]
