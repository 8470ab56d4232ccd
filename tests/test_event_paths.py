"""The event path's filters and removals, against a local S3: console folder
markers, a bucket-only URL prefix, removals a group pattern never matched,
S3 Lifecycle expirations, and the deletion of a whole Zarr store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from producer.errors import InputError
from producer.events import HandlerConfig, ObjectEvent, _skip_reason, handle, parse_event
from producer.options import RegisterOptions
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


def test_gdals_aux_xml_event_is_skipped_not_a_metadata_asset(s3: S3Server, raster_bytes: bytes) -> None:
    """With ``STAC_GROUP`` taking ``.xml`` metadata, the creation of GDAL's
    ``B02.tif.aux.xml`` (its statistics cache) was registered as the asset
    ``B02.tif.aux`` of the scene; it is skipped, as a folder leaves it out."""
    group = r"(?P<id>S2A_\d{8})/(?P<asset>[^/]+)\.(tif|xml)$"
    put(s3, "products/S2A_20240513/B02.tif", raster_bytes)
    put(s3, "products/S2A_20240513/B02.tif.aux.xml", b"<PAMDataset/>")
    events = [
        _s3_notification(k)
        for k in ("products/S2A_20240513/B02.tif", "products/S2A_20240513/B02.tif.aux.xml")
    ]
    payload = {"Records": [r for e in events for r in retarget(e, s3.bucket)["Records"]]}
    out = handle(payload, config(s3, suffixes=(".tif", ".xml"), options=RegisterOptions(group=group)))
    assert [r["id"] for r in out["registered"]] == ["S2A_20240513"] and out["failed"] == []
    (skipped,) = out["skipped"]
    assert skipped["url"].endswith("B02.tif.aux.xml") and "GDAL's own side-car" in skipped["reason"]
    item = read_json(s3, "stac/ndvi/S2A_20240513/S2A_20240513.json")
    assert item is not None and sorted(item["assets"]) == ["B02"]


def test_gdals_ovr_and_msk_events_are_skipped_with_every_ending_accepted(
    s3: S3Server, raster_bytes: bytes
) -> None:
    """With ``STAC_SUFFIXES=*``, GDAL's external overviews (``B02.tif.ovr``)
    and mask (``B02.tif.msk``), both TIFFs, were registered as products of
    their own (items ``B02.tif`` ...); only ``.aux.xml`` was skipped."""
    names = ("B02_20240513.tif", "B02_20240513.tif.ovr", "B02_20240513.TIF.MSK")
    for name in names:
        put(s3, f"products/{name}", raster_bytes)
    payload = {
        "Records": [
            r for n in names for r in retarget(_s3_notification(f"products/{n}"), s3.bucket)["Records"]
        ]
    }
    out = handle(payload, config(s3, suffixes=()))
    assert [r["id"] for r in out["registered"]] == ["B02_20240513"] and out["failed"] == [], out
    assert [s["url"].rsplit("/", 1)[1] for s in out["skipped"]] == [
        "B02_20240513.tif.ovr",
        "B02_20240513.TIF.MSK",
    ]
    assert all("GDAL's own side-car" in s["reason"] for s in out["skipped"]), out["skipped"]


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


@pytest.mark.parametrize("name", ["-draft.tif", ".tif", "a" * 201 + ".tif"])
def test_removal_of_a_file_whose_name_gives_no_item_id_is_skipped(s3: S3Server, name: str) -> None:
    """Its creation was refused (unsafe item id): it has no item. Its
    removal failed with the id error, logged a traceback, and was
    redelivered until the dead-letter queue."""
    key = f"products/{name}"
    payload = retarget(
        _sqs(
            _s3_notification(key, "ObjectRemoved:Delete"),
            _s3_notification("products/S2_20240601.tif", "ObjectRemoved:Delete"),
        ),
        s3.bucket,
    )
    out = handle(payload, config(s3))
    assert out["failed"] == [] and out["batchItemFailures"] == []
    assert [s["url"] for s in out["skipped"]] == [f"s3://{s3.bucket}/{key}"]
    assert (
        "unsafe item id" in out["skipped"][0]["reason"] and "never registered" in out["skipped"][0]["reason"]
    )
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601", "absent")]
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


# ---------------------------------------------------------------------------
# a Zarr store deleted object by object
# ---------------------------------------------------------------------------

STORES = [(2, True), (2, False), (3, True), (3, False)]


def _write_store(s3: S3Server, key: str, zarr_format: int, consolidated: bool) -> str:
    """A store at ``key``, registered (by the api: an unconsolidated v2
    store has no root metadata whose creation registers it); its item id."""
    import producer
    from tests.cubes import write_zarr

    url = write_zarr(
        s3.url(key), zarr_format=zarr_format, consolidated=consolidated, storage_options=s3.storage_options
    )
    (result,) = producer.register(
        [url], catalog=s3.url("stac"), collection="ndvi", storage_options=s3.storage_options
    )
    assert result.error is None, result.error
    return str(result.id)


def _delete_one_by_one(s3: S3Server, objects: list[str]) -> list[dict[str, Any]]:
    """Delete ``objects`` in that order, handling each removal event right
    after its deletion, while the others are still there; the outputs."""
    outs = []
    for key in objects:
        s3.client().delete_object(Bucket=s3.bucket, Key=key)
        outs.append(
            handle(retarget(_sqs(_s3_notification(key, "ObjectRemoved:Delete")), s3.bucket), config(s3))
        )
    return outs


@pytest.mark.parametrize("order", ["listing", "reversed"])
@pytest.mark.parametrize(("zarr_format", "consolidated"), STORES)
def test_zarr_store_deleted_object_by_object_loses_its_item(
    s3: S3Server, zarr_format: int, consolidated: bool, order: str
) -> None:
    """``aws s3 rm --recursive`` deletes in listing order: a v2 store's
    ``.zmetadata`` goes before its chunks. Its removal event, handled while
    chunks were left, found the store's prefix still there and kept the
    item; the chunk events were then skipped as part of the store, so the
    item outlived the store. The store is gone once none of its root
    metadata objects is left, whatever the order."""
    store = "products/cube_20240601.zarr"
    item_id = _write_store(s3, store, zarr_format, consolidated)
    objects = keys(s3, store + "/")
    outs = _delete_one_by_one(s3, objects if order == "listing" else objects[::-1])
    assert keys(s3, store + "/") == []
    assert all(out["failed"] == [] and out["batchItemFailures"] == [] for out in outs)
    removed = [(r["id"], r["action"]) for out in outs for r in out["removed"]]
    assert removed[:1] == [(item_id, "removed")] and all(action == "absent" for _, action in removed[1:])
    assert read_json(s3, f"stac/ndvi/{item_id}/{item_id}.json") is None
    assert item_links(s3) == []


def test_zarr_store_rewritten_before_its_removal_events_keeps_its_item(s3: S3Server) -> None:
    """Removal events of a store deleted and written again (``to_zarr(mode="w")``)
    that arrive after the new store is there leave its item alone."""
    from tests.cubes import write_zarr

    store = "products/cube_20240601.zarr"
    item_id = _write_store(s3, store, 2, True)
    objects = keys(s3, store + "/")
    s3.client().delete_objects(Bucket=s3.bucket, Delete={"Objects": [{"Key": k} for k in objects]})
    write_zarr(s3.url(store), zarr_format=2, consolidated=True, storage_options=s3.storage_options)
    payload = _sqs(*(_s3_notification(k, "ObjectRemoved:Delete") for k in objects))
    out = handle(retarget(payload, s3.bucket), config(s3))
    assert out["removed"] == [] and out["failed"] == []
    reasons = [s["reason"] for s in out["skipped"] if s["url"] == s3.url(store)]
    # .zgroup and .zmetadata: one store, checked once (the last record of an object wins)
    assert len(reasons) == 1 and "still has root metadata" in reasons[0]
    assert item_links(s3) == [f"./{item_id}/{item_id}.json"]


# ---------------------------------------------------------------------------
# what a removal reports
# ---------------------------------------------------------------------------


def test_removal_results_name_the_object_they_were_for(s3: S3Server, raster_bytes: bytes) -> None:
    """A removal's result held only the item id and its href (none when the
    item was absent): the output of a batch, and the event flow's table,
    did not say which deleted object each removal was for, as a
    registration's result does (``source``)."""
    put(s3, "products/a/S2_20240601.tif", raster_bytes)
    first = handle(retarget(_sqs(_s3_notification("products/a/S2_20240601.tif")), s3.bucket), config(s3))
    assert first["failed"] == []
    s3.client().delete_object(Bucket=s3.bucket, Key="products/a/S2_20240601.tif")
    payload = _sqs(
        _s3_notification("products/a/S2_20240601.tif", "ObjectRemoved:Delete"),
        _s3_notification("products/b/S2_20240602.tif", "ObjectRemoved:Delete"),  # never registered
    )
    out = handle(retarget(payload, s3.bucket), config(s3))
    assert out["failed"] == []
    assert [(r.get("source"), r["id"], r["action"]) for r in out["removed"]] == [
        (f"s3://{s3.bucket}/products/a/S2_20240601.tif", "S2_20240601", "removed"),
        (f"s3://{s3.bucket}/products/b/S2_20240602.tif", "S2_20240602", "absent"),
    ]


# ---------------------------------------------------------------------------
# products inside the catalog
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catalog", "prefix"),
    [
        ("s3://data/stac", "s3://data/stac/products/"),
        ("s3://data/stac/catalog.json", "s3://data/stac"),
        ("s3://data", "s3://data/products/"),
    ],
)
def test_a_prefix_inside_the_catalog_is_refused_at_start_up(catalog: str, prefix: str) -> None:
    """Objects inside the catalog are never registered (its own writes must not
    loop back): a handler told to take only such objects started, then
    skipped every one of them ("inside the catalog ..."), acknowledging each
    message, so that nothing was ever registered and nothing failed."""
    env = {"STAC_CATALOG": catalog, "STAC_COLLECTION": "ndvi", "STAC_PREFIXES": prefix}
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    message = str(caught.value)
    assert prefix in message and "inside the catalog" in message and "never registered" in message, message
    assert "STAC_CATALOG=" in message, message
    HandlerConfig(
        catalog="s3://data/stac", collection="ndvi", prefixes=["s3://data/products/"]
    )  # beside it: fine


def test_a_product_skipped_inside_the_catalog_says_why_and_is_logged(
    s3: S3Server, raster_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A catalog at the bucket root (``s3://bucket``) with the products in the
    same bucket: each product was skipped as "inside the catalog s3://bucket",
    an INFO-level count in the Lambda's log, saying neither that such objects
    are never registered nor what to change."""
    put(s3, "products/S2_20240601.tif", raster_bytes)
    payload = retarget(_sqs(_s3_notification("products/S2_20240601.tif")), s3.bucket)
    cfg = HandlerConfig(catalog=f"s3://{s3.bucket}", collection="ndvi", storage_options=s3.storage_options)
    with caplog.at_level(logging.WARNING, logger="producer.events"):
        out = handle(payload, cfg)
    assert out["registered"] == [] and out["failed"] == []
    (skipped,) = out["skipped"]
    assert skipped["reason"].startswith(f"inside the catalog s3://{s3.bucket}")
    assert "never registered" in skipped["reason"] and "outside" in skipped["reason"], skipped
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"s3://{s3.bucket}/products/S2_20240601.tif" in w and "never registered" in w for w in warned)


@pytest.mark.parametrize(
    "key", ["stac/catalog.json", "stac/ndvi/x/x.json", "stac/ndvi/x/x.png", "stac/ndvi/items.parquet"]
)
def test_the_catalogs_own_writes_are_skipped_without_a_warning(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Endings configured for a group's side-cars (``.json``, ``.png``) are the
    catalog's documents and thumbnails too: with notifications on the whole
    bucket, each of the catalog's own writes was warned about as a product
    kept inside the catalog, on every normal run."""
    cfg = HandlerConfig(
        catalog="s3://data/stac", collection="ndvi", suffixes=(".tif", ".json", ".png", ".parquet")
    )
    with caplog.at_level(logging.WARNING, logger="producer.events"):
        reason = _skip_reason(ObjectEvent("created", "data", key), cfg)
    assert reason == "inside the catalog s3://data/stac"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("catalog", "prefix", "fix"),
    [
        ("s3://b/stac", "s3://b/stac/x", "STAC_CATALOG=s3://b/stac/stac"),
        ("s3://b/stac/catalog.json", "s3://b/stac", "STAC_CATALOG=s3://b/catalog"),
        ("s3://b/stac", "s3://b/stac/products/", "STAC_CATALOG=s3://b/stac/stac"),
        ("s3://b", "s3://b/products/", "STAC_CATALOG=s3://b/stac"),
    ],
)
def test_a_prefix_inside_the_catalog_is_told_the_catalog_beside_it(
    catalog: str, prefix: str, fix: str
) -> None:
    """A prefix inside the catalog was told to use ``STAC_CATALOG=s3://bucket/stac``,
    a placeholder the catalog already matched: the refusal says the catalog
    holds the products and offers a catalog beside them, outside the prefix."""
    env = {"STAC_CATALOG": catalog, "STAC_COLLECTION": "ndvi", "STAC_PREFIXES": prefix}
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    message = str(caught.value)
    assert "s3://bucket/stac" not in message and fix in message, message
    assert "must not contain the products" in message, message
    meant = fix.split("=", 1)[1]
    HandlerConfig(catalog=meant, collection="ndvi", prefixes=[prefix])  # the fix is taken


@pytest.mark.parametrize(("prefix", "fix"), [("/products/", "write it 'products/'"), ("/", "leave it out")])
def test_a_key_prefix_written_as_a_path_is_refused_at_start_up(prefix: str, fix: str) -> None:
    """``STAC_PREFIXES=/products/``: no S3 key starts with ``/``, so the
    handler started and skipped every record ("key does not start with any
    of the prefixes"), with no hint at start-up. It is refused, naming the
    prefix as it is written."""
    env = {"STAC_CATALOG": "s3://data/stac", "STAC_COLLECTION": "ndvi", "STAC_PREFIXES": f"raw/,{prefix}"}
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    message = str(caught.value)
    assert repr(prefix) in message and fix in message, message
    HandlerConfig(catalog="s3://data/stac", collection="ndvi", prefixes=["products/"])  # as written: fine
