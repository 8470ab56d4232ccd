"""Events for one object handled at the same time as the object changes.

A handler checks the object before it acts (see ``test_events.py``), but the
object can change while it registers or removes: deleted while its creation
is being registered, uploaded again while its removal runs, overwritten while
an older version is being read. Each race is forced at its critical point
(``tests/crashes.py``'s :class:`PausingStore`, or the other side run just
before the real call) against a local S3 with real rasters; at the end the
catalog must describe the object as it is, with every message acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from producer import api
from producer.events import handle
from producer.store import open_store
from tests.crashes import PausingStore, run_paused
from tests.s3server import S3Server
from tests.test_events import _s3_notification, _sqs, config, item_links, put, read_json

KEY = "products/ndvi/S2_20240601_T31UFQ.tif"
ITEM = "S2_20240601_T31UFQ"


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """A fresh bucket per test on the session's local S3 server."""
    return s3_server._replace(bucket=s3_server.new_bucket())


@pytest.fixture
def rasters(tmp_path: Path) -> tuple[bytes, bytes]:
    """Two real GeoTIFFs with different footprints (EPSG:32633, EPSG:4326)."""
    from tests.rasters import write_utm, write_wgs84

    return write_utm(tmp_path / "a").read_bytes(), write_wgs84(tmp_path / "b").read_bytes()


def event(s3: S3Server, name: str, etag: str | None = None) -> dict[str, Any]:
    """An SQS batch of one S3 record for ``KEY`` (with the object's real
    ``etag`` when given, as S3 sends it)."""
    body = _s3_notification(KEY, name)
    record = body["Records"][0]
    record["s3"]["bucket"]["name"] = s3.bucket
    if etag is not None:
        record["s3"]["object"]["eTag"] = etag
    return _sqs(body)


def etag_of(s3: S3Server) -> str:
    return str(s3.client().head_object(Bucket=s3.bucket, Key=KEY)["ETag"]).strip('"')


def first_registration_paused(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> PausingStore:
    """Route the handler's first ``api.register`` through a store that pauses
    before it writes the item document; later calls (the other side) run
    on the catalog as given."""
    paused = PausingStore(open_store(s3.url("stac"), s3.storage_options), f"ndvi/{ITEM}/{ITEM}.json")
    real = api.register
    calls: list[object] = []

    def register(paths: Any, *, catalog: Any, **kw: Any) -> Any:
        calls.append(paths)
        return real(paths, catalog=paused if len(calls) == 1 else catalog, **kw)

    monkeypatch.setattr(api, "register", register)
    return paused


def acknowledged(out: dict[str, Any]) -> bool:
    return out["failed"] == [] and out["batchItemFailures"] == []


def test_an_object_deleted_while_its_creation_is_registered_leaves_no_item(
    monkeypatch: pytest.MonkeyPatch, s3: S3Server, rasters: tuple[bytes, bytes]
) -> None:
    """The deletion's event is handled while the creation's registration has
    read the object and not yet written its item: the removal finds no item.
    Before: the registration then wrote it, and the catalog kept an item of a
    deleted object, both messages acknowledged."""
    put(s3, KEY, rasters[0])
    paused = first_registration_paused(monkeypatch, s3)
    removal: dict[str, Any] = {}

    def delete_meanwhile() -> None:
        s3.client().delete_object(Bucket=s3.bucket, Key=KEY)
        removal.update(handle(event(s3, "ObjectRemoved:Delete"), config(s3)))

    out: Any = run_paused(
        paused, lambda: handle(event(s3, "ObjectCreated:Put"), config(s3)), delete_meanwhile
    )
    assert acknowledged(out) and acknowledged(removal)
    assert read_json(s3, f"stac/ndvi/{ITEM}/{ITEM}.json") is None
    assert item_links(s3) == []
    assert [s["url"] for s in out["skipped"]] == [f"s3://{s3.bucket}/{KEY}"]
    assert "deleted while" in out["skipped"][0]["reason"]


def test_an_object_uploaded_again_while_its_removal_runs_keeps_its_item(
    monkeypatch: pytest.MonkeyPatch, s3: S3Server, rasters: tuple[bytes, bytes]
) -> None:
    """The removal found the object gone; before it removes the item, the
    object is uploaded again and that creation's event handled whole (its
    item is ``unchanged``). Before: the removal then deleted the item, and
    the object stayed in the bucket with no item, both messages acknowledged."""
    put(s3, KEY, rasters[0])
    assert handle(event(s3, "ObjectCreated:Put"), config(s3))["registered"][0]["action"] == "created"
    s3.client().delete_object(Bucket=s3.bucket, Key=KEY)
    real: Callable[..., Any] = api.remove
    creation: dict[str, Any] = {}

    def remove(*args: Any, **kw: Any) -> Any:
        put(s3, KEY, rasters[0])
        creation.update(handle(event(s3, "ObjectCreated:Put"), config(s3)))
        return real(*args, **kw)

    monkeypatch.setattr(api, "remove", remove)
    out = handle(event(s3, "ObjectRemoved:Delete"), config(s3))
    assert acknowledged(out) and acknowledged(creation)
    item = read_json(s3, f"stac/ndvi/{ITEM}/{ITEM}.json")
    assert item is not None and item["assets"]["data"]["href"] == f"s3://{s3.bucket}/{KEY}"
    assert item_links(s3) == [f"./{ITEM}/{ITEM}.json"]
    assert [r["action"] for r in out["registered"]] == ["created"]


def test_an_object_overwritten_while_its_older_version_is_registered_ends_described_as_it_is(
    monkeypatch: pytest.MonkeyPatch, s3: S3Server, rasters: tuple[bytes, bytes]
) -> None:
    """The first version's event has read it and waits to write its item;
    the object is overwritten with another raster and that event handled
    whole. Before: the first handler then wrote the first version's footprint
    over the second's, and the item described content the bucket no longer
    held, both messages acknowledged."""
    first, second = rasters
    put(s3, KEY, first)
    first_etag = etag_of(s3)
    paused = first_registration_paused(monkeypatch, s3)
    newer: dict[str, Any] = {}

    def overwrite_meanwhile() -> None:
        put(s3, KEY, second)
        newer.update(handle(event(s3, "ObjectCreated:Put", etag_of(s3)), config(s3)))

    out: Any = run_paused(
        paused, lambda: handle(event(s3, "ObjectCreated:Put", first_etag), config(s3)), overwrite_meanwhile
    )
    assert acknowledged(out) and acknowledged(newer)
    item = read_json(s3, f"stac/ndvi/{ITEM}/{ITEM}.json")
    assert item is not None
    alone = handle(event(s3, "ObjectCreated:Put", etag_of(s3)), config(s3))  # the second version again
    assert [r["action"] for r in alone["registered"]] == ["unchanged"], "the item described the first version"


def test_deleting_the_current_version_brings_the_item_back_to_the_version_now_current(
    s3: S3Server, rasters: tuple[bytes, bytes]
) -> None:
    """In a versioned bucket, deleting the current version by its id makes
    the previous one current again, and S3 sends only the removal. Before:
    the removal found the object there and kept the item as it was, which
    went on describing the deleted version (another footprint) for good."""
    first, second = rasters
    client = s3.client()
    client.put_bucket_versioning(Bucket=s3.bucket, VersioningConfiguration={"Status": "Enabled"})
    put(s3, KEY, first)
    newest = client.put_object(Bucket=s3.bucket, Key=KEY, Body=second)
    assert (
        handle(event(s3, "ObjectCreated:Put", etag_of(s3)), config(s3))["registered"][0]["action"]
        == "created"
    )
    client.delete_object(Bucket=s3.bucket, Key=KEY, VersionId=newest["VersionId"])
    out = handle(event(s3, "ObjectRemoved:Delete"), config(s3))
    assert acknowledged(out) and out["removed"] == []
    assert [r["action"] for r in out["registered"]] == ["updated"]
    alone = handle(event(s3, "ObjectCreated:Put", etag_of(s3)), config(s3))  # the version now current
    assert [r["action"] for r in alone["registered"]] == ["unchanged"]
    assert item_links(s3) == [f"./{ITEM}/{ITEM}.json"]


def test_undeleting_an_object_by_removing_its_delete_marker_brings_its_item_back(
    s3: S3Server, rasters: tuple[bytes, bytes]
) -> None:
    """In a versioned bucket, a delete leaves a delete marker (its event
    removes the item); deleting the marker restores the object, and S3
    sends only an ``ObjectRemoved:Delete`` for the marker. Before: that
    removal found the object there and was skipped, and the restored object
    stayed without an item."""
    client = s3.client()
    client.put_bucket_versioning(Bucket=s3.bucket, VersioningConfiguration={"Status": "Enabled"})
    put(s3, KEY, rasters[0])
    assert (
        handle(event(s3, "ObjectCreated:Put", etag_of(s3)), config(s3))["registered"][0]["action"]
        == "created"
    )
    marker = client.delete_object(Bucket=s3.bucket, Key=KEY)["VersionId"]
    gone = handle(event(s3, "ObjectRemoved:DeleteMarkerCreated"), config(s3))
    assert [r["action"] for r in gone["removed"]] == ["removed"] and item_links(s3) == []
    client.delete_object(Bucket=s3.bucket, Key=KEY, VersionId=marker)  # the undelete
    out = handle(event(s3, "ObjectRemoved:Delete"), config(s3))
    assert acknowledged(out) and [r["action"] for r in out["registered"]] == ["created"]
    assert item_links(s3) == [f"./{ITEM}/{ITEM}.json"]


def test_the_recheck_reads_the_object_through_the_file_system_that_registered_it(
    monkeypatch: pytest.MonkeyPatch, s3: S3Server, rasters: tuple[bytes, bytes]
) -> None:
    """The re-check after a registration HEADs the object through the file
    system (and S3 client) that read it, not a new one. Before: a file system
    of its own, whose S3 client a fresh process (a Lambda cold start) built
    for that one HEAD: ~90 ms, 1.24x the handler's cold start."""
    import fsspec

    put(s3, KEY, rasters[0])
    real = fsspec.core.url_to_fs
    made: list[tuple[str, int]] = []

    def url_to_fs(url: str, **kw: Any) -> Any:
        fs, path = real(url, **kw)
        made.append((url, id(fs)))
        return fs, path

    monkeypatch.setattr(fsspec.core, "url_to_fs", url_to_fs)
    out = handle(event(s3, "ObjectCreated:Put", etag_of(s3)), config(s3))
    assert acknowledged(out) and out["registered"][0]["action"] == "created"
    product = [fs for url, fs in made if url == f"s3://{s3.bucket}/{KEY}"]
    assert len(product) >= 2 and len(set(product)) == 1, made  # the read and the re-check's HEAD
