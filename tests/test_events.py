"""Event payloads → records, and the one handler end to end.

Parsing tests read the real-shaped payloads in ``tests/events/`` and assert
exact values. Handler tests use the real :mod:`producer.api` against a local
moto S3 server on 127.0.0.1 (``tests/s3server.py``): rasters are uploaded to
a fresh bucket, payloads are pointed at it, and the catalog JSON is read back.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from producer.errors import InputError
from producer.events import _INSIDE_CATALOG, DEFAULT_SUFFIXES, HandlerConfig, ObjectEvent, handle, parse_event
from producer.options import RegisterOptions
from tests.s3server import S3Server

EVENTS = Path(__file__).parent / "events"
FIXTURE_BUCKET = "amzn-s3-demo-bucket"  # the bucket name written in every fixture


def load(name: str, bucket: str | None = None) -> dict[str, Any]:
    """A fixture payload, optionally with its bucket renamed (nested bodies too)."""
    text = (EVENTS / name).read_text()
    if bucket is not None:
        text = text.replace(FIXTURE_BUCKET, bucket)
    return json.loads(text)


def ev(
    kind: str,
    key: str,
    message_id: str | None = None,
    *,
    size: int | None = None,
    etag: str | None = None,
    bucket: str = FIXTURE_BUCKET,
) -> ObjectEvent:
    return ObjectEvent(kind=kind, bucket=bucket, key=key, message_id=message_id, size=size, etag=etag)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# parsing: every fixture, exact values
# ---------------------------------------------------------------------------

ETAG = "0123456789abcdef0123456789abcdef"

EXPECTED: dict[str, list[ObjectEvent]] = {
    "s3_put.json": [ev("created", "products/ndvi/S2_20240601_T31UFQ.tif", size=4096, etag=ETAG)],
    "s3_batch.json": [
        ev(
            "created",
            "products/ndvi/S2_20240602_T31UFQ.tif",
            size=5120,
            etag="1b2cf535f27731c974343645a3985328",
        ),
        # "+" is a space, "%2B" a literal plus, "%20" a space, "%3D" "=", "%28" "("
        ev(
            "created",
            "products/ndvi/field plots/NDVI 2024-06-03.tif",
            size=73400320,
            etag="4af981f98d22a0b9979da24b259e5e42-12",
        ),
        ev("created", "products/ndvi/run 42+1.TIF", size=6144, etag="b1946ac92492d2347c6235b4d2611184"),
        ev(
            "created",
            "products/ndvi/date=2024-06-04/tile (00).nc",
            size=2048,
            etag="d8e8fca2dc0f896fd7cb4cb0031ba249",
        ),
        # ObjectRestore:Completed is ignored
        ev("removed", "products/ndvi/S2_20240530_T31UFQ.tif"),
    ],
    "s3_delete.json": [
        ev("removed", "products/ndvi/S2_20240601_T31UFQ.tif"),
        ev("removed", "products/ndvi/S2_20240602_T31UFQ.tif"),  # DeleteMarkerCreated
    ],
    "sqs_s3.json": [
        ev(
            "created",
            "products/ndvi/S2_20240601_T31UFQ.tif",
            "059f36b4-87a3-44ab-83d2-661975830a7d",
            size=4096,
            etag=ETAG,
        ),
        ev("removed", "products/ndvi/S2_20240530_T31UFQ.tif", "2e1424d4-f796-459a-8184-9c92662be6da"),
    ],
    "sqs_sns_s3.json": [
        ev(
            "created",
            "products/ndvi/S2 20240605 T31UFQ.tif",
            "c80e8021-a70a-42c7-a470-796e1186f753",
            size=4096,
            etag=ETAG,
        ),
    ],
    "sns_s3.json": [ev("created", "products/ndvi/S2_20240601_T31UFQ.tif", size=4096, etag=ETAG)],
    "eventbridge_created.json": [ev("created", "products/ndvi/S2_20240601_T31UFQ.tif", size=4096, etag=ETAG)],
    "eventbridge_deleted.json": [
        ev("removed", "products/ndvi/S2_20240601_T31UFQ.tif", etag="d41d8cd98f00b204e9800998ecf8427e"),
    ],
    "sqs_eventbridge.json": [
        ev(
            "created",
            "products/ndvi/S2_20240607_T31UFQ.tif",
            "a9b8c7d6-1111-4e2f-9a3b-5c6d7e8f9a0b",
            size=8192,
            etag="4af981f98d22a0b9979da24b259e5e42-2",
        ),
        ev(
            "removed",
            "products/ndvi/S2_20240530_T31UFQ.tif",
            "b0c1d2e3-2222-4f30-8b4c-6d7e8f9a0b1c",
            etag="d41d8cd98f00b204e9800998ecf8427e",
        ),
    ],
    "s3_test_event.json": [],
    "sqs_s3_test_event.json": [],
    "sqs_malformed.json": [
        ev(
            "created",
            "products/ndvi/S2_20240608_T31UFQ.tif",
            "3a9b5f4e-6c1d-4e7f-8a2b-9c0d1e2f3a4b",
            size=4096,
            etag=ETAG,
        ),
    ],
}


def test_every_fixture_has_expectations() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_fixture(name: str) -> None:
    payload = load(name)
    before = copy.deepcopy(payload)
    events, failures = parse_event(payload)
    assert events == EXPECTED[name]
    if name == "sqs_malformed.json":
        assert len(failures) == 1
        assert failures[0]["message_id"] == "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"
        assert "SQS body is not JSON" in failures[0]["error"]
    else:
        assert failures == []
    assert payload == before  # nothing mutated


def test_object_event_url() -> None:
    event = ev("created", "products/ndvi/field plots/a b.tif")
    assert event.url == "s3://amzn-s3-demo-bucket/products/ndvi/field plots/a b.tif"
    with pytest.raises(AttributeError):
        event.key = "other"  # type: ignore[misc]  # frozen


def _s3_notification(key: str = "p/a.tif", name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """The ``s3_put.json`` notification for another (raw, still encoded) key and event name."""
    record = load("s3_put.json")["Records"][0]
    record["eventName"] = name
    record["s3"]["object"] = {"key": key, "size": 1, "eTag": "e", "sequencer": "01"}
    return {"Records": [record]}


def retarget(payload: dict[str, Any], bucket: str) -> dict[str, Any]:
    """``payload`` with the fixture bucket renamed, nested JSON bodies included."""
    return json.loads(json.dumps(payload).replace(FIXTURE_BUCKET, bucket))


def _sqs(*bodies: Any) -> dict[str, Any]:
    """An SQS batch (``sqs_s3.json``'s record shape), messageIds m0, m1, ..."""
    template = load("sqs_s3.json")["Records"][0]
    return {
        "Records": [
            {**template, "messageId": f"m{i}", "body": body if isinstance(body, str) else json.dumps(body)}
            for i, body in enumerate(bodies)
        ]
    }


def test_missing_key_is_a_failure_and_others_survive() -> None:
    broken = _s3_notification()
    del broken["Records"][0]["s3"]["object"]["key"]
    events, failures = parse_event(_sqs(_s3_notification("p/good.tif"), broken, "plain text, not JSON"))
    assert [e.key for e in events] == ["p/good.tif"]
    assert [e.message_id for e in events] == ["m0"]
    assert failures == [
        {"message_id": "m1", "error": "missing s3.object.key"},
        {"message_id": "m2", "error": failures[1]["error"]},
    ]
    assert failures[1]["error"].startswith("SQS body is not JSON")


def test_eventbridge_missing_key_and_foreign_source() -> None:
    doc = load("eventbridge_created.json")
    del doc["detail"]["object"]["key"]
    assert parse_event(doc) == ([], [{"message_id": None, "error": "missing detail.object.key"}])
    foreign = load("eventbridge_created.json") | {"source": "aws.ec2"}
    events, failures = parse_event(foreign)
    assert events == [] and "aws.ec2" in failures[0]["error"]


def test_other_eventbridge_types_ignored() -> None:
    doc = load("eventbridge_created.json") | {"detail-type": "Object Restore Completed"}
    assert parse_event(doc) == ([], [])


@pytest.mark.parametrize(
    "name",
    [
        "ObjectRestore:Completed",
        "ObjectTagging:Put",
        "LifecycleTransition",
        "ObjectAcl:Put",
        "Replication:OperationFailedReplication",
    ],
)
def test_other_s3_event_names_ignored(name: str) -> None:
    assert parse_event(_s3_notification(name=name)) == ([], [])


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ObjectCreated:Post", "created"),
        ("ObjectCreated:Copy", "created"),
        ("ObjectCreated:CompleteMultipartUpload", "created"),
        ("ObjectRemoved:Delete", "removed"),
        ("ObjectRemoved:DeleteMarkerCreated", "removed"),
        ("s3:ObjectCreated:Put", "created"),
    ],
)
def test_event_names(name: str, kind: str) -> None:
    events, failures = parse_event(_s3_notification(name=name))
    assert failures == [] and [e.kind for e in events] == [kind]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("a+b.tif", "a b.tif"),
        ("a%20b.tif", "a b.tif"),
        ("a%2Bb.tif", "a+b.tif"),
        ("dt%3D2024-01-01/x.tif", "dt=2024-01-01/x.tif"),
        ("caf%C3%A9.tif", "café.tif"),
        ("plain/key.tif", "plain/key.tif"),
    ],
)
def test_key_decoding(raw: str, key: str) -> None:
    events, _ = parse_event(_s3_notification(raw))
    assert events[0].key == key
    doc = load("eventbridge_created.json")
    doc["detail"]["object"]["key"] = raw
    assert parse_event(doc)[0][0].key == key


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "text",
        None,
        {"Records": "nope"},
        {"hello": "world"},
        {"Records": [{"eventSource": "aws:kinesis"}]},
        {"Records": [42]},
    ],
)
def test_unrecognised_payloads_fail_without_raising(payload: Any) -> None:
    events, failures = parse_event(payload)
    assert events == [] and len(failures) == 1 and failures[0]["message_id"] is None


def test_sqs_record_without_message_id() -> None:
    payload = _sqs(_s3_notification())
    del payload["Records"][0]["messageId"]
    payload["Records"][0]["eventSource"] = "aws:sqs"
    events, failures = parse_event(payload)
    assert events == [] and failures == [{"message_id": None, "error": "SQS record without a messageId"}]


def test_body_already_decoded_is_accepted() -> None:
    payload = _sqs(_s3_notification("p/x.tif"))
    payload["Records"][0]["body"] = _s3_notification("p/x.tif")
    events, failures = parse_event(payload)
    assert failures == [] and events[0].key == "p/x.tif" and events[0].message_id == "m0"


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


def test_config_from_env_full() -> None:
    env = {
        "STAC_CATALOG": "s3://cat/stac",
        "STAC_COLLECTION": "ndvi",
        "STAC_PREFIXES": "products/ndvi/, s3://other/p/ ,",
        "STAC_SUFFIXES": ".TIF, .nc",
        "STAC_ID_TEMPLATE": "{parent}-{stem}",
        "STAC_DATETIME_PATTERN": r"(\d{8})",
        "STAC_COLLECTION_META": '{"description": "NDVI", "license": "CC-BY-4.0"}',
        "STAC_STORAGE_OPTIONS": '{"anon": false}',
    }
    cfg = HandlerConfig.from_env(env)
    assert cfg == HandlerConfig(
        catalog="s3://cat/stac",
        collection="ndvi",
        prefixes=("products/ndvi/", "s3://other/p/"),
        suffixes=(".tif", ".nc"),
        id_template="{parent}-{stem}",
        datetime_pattern=r"(\d{8})",
        collection_meta={"description": "NDVI", "license": "CC-BY-4.0"},
        storage_options={"anon": False},
    )


def test_config_from_env_defaults() -> None:
    cfg = HandlerConfig.from_env(
        {"STAC_CATALOG": "s3://cat/stac", "STAC_COLLECTION": "ndvi", "STAC_PREFIXES": ""}
    )
    # one list with folder expansion: NetCDF-4 (.nc4) events were skipped before
    assert cfg.prefixes == () and cfg.suffixes == DEFAULT_SUFFIXES
    assert DEFAULT_SUFFIXES == (".tif", ".tiff", ".nc", ".nc4", ".cdf", ".netcdf")
    assert cfg.options == RegisterOptions()  # every registration option at its default
    star = HandlerConfig.from_env({"STAC_CATALOG": "x", "STAC_COLLECTION": "y", "STAC_SUFFIXES": "*"})
    assert star.suffixes == ()


@pytest.mark.parametrize("missing", ["STAC_CATALOG", "STAC_COLLECTION"])
def test_config_missing_variable_is_named(missing: str) -> None:
    env = {"STAC_CATALOG": "s3://cat/stac", "STAC_COLLECTION": "ndvi"}
    env[missing] = "  "
    with pytest.raises(InputError, match=missing):
        HandlerConfig.from_env(env)
    del env[missing]
    with pytest.raises(InputError, match=missing):
        HandlerConfig.from_env(env)


@pytest.mark.parametrize(("value", "match"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_config_bad_json_variable(value: str, match: str) -> None:
    env = {"STAC_CATALOG": "s3://c/s", "STAC_COLLECTION": "n", "STAC_COLLECTION_META": value}
    with pytest.raises(InputError, match=f"STAC_COLLECTION_META.*{match}"):
        HandlerConfig.from_env(env)


def test_config_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAC_CATALOG", "s3://cat/stac")
    monkeypatch.setenv("STAC_COLLECTION", "ndvi")
    monkeypatch.delenv("STAC_PREFIXES", raising=False)
    assert HandlerConfig.from_env().catalog == "s3://cat/stac"


def test_config_coerces_lists() -> None:
    cfg = HandlerConfig(catalog="c", collection="n", prefixes=["a/", "b/"], suffixes=[".TIF"])  # type: ignore[arg-type]
    assert cfg.prefixes == ("a/", "b/") and cfg.suffixes == (".tif",)
    assert HandlerConfig(catalog="c", collection="n", prefixes="a/").prefixes == ("a/",)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        HandlerConfig(catalog="", collection="n")


# ---------------------------------------------------------------------------
# the handler, end to end against a local S3 (real api, real catalog)
# ---------------------------------------------------------------------------


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """A fresh bucket per test on the session's local S3 server."""
    return s3_server._replace(bucket=s3_server.new_bucket())


@pytest.fixture
def raster_bytes(tmp_path: Path) -> bytes:
    """A small real GeoTIFF (EPSG:32633)."""
    from tests.rasters import write_utm

    return write_utm(tmp_path / "src").read_bytes()


def config(s3: S3Server, **kw: Any) -> HandlerConfig:
    """Catalog in the same bucket as the data, under ``stac/``."""
    return HandlerConfig(catalog=s3.url("stac"), collection="ndvi", storage_options=s3.storage_options, **kw)


def put(s3: S3Server, key: str, body: bytes) -> None:
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=body)


def read_json(s3: S3Server, key: str) -> dict[str, Any] | None:
    client = s3.client()
    try:
        return json.loads(client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    except client.exceptions.NoSuchKey:
        return None


def keys(s3: S3Server, prefix: str = "") -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def item_links(s3: S3Server) -> list[str]:
    collection = read_json(s3, "stac/ndvi/collection.json")
    assert collection is not None
    return sorted(link["href"] for link in collection["links"] if link["rel"] == "item")


def assert_item(s3: S3Server, item_id: str, source_key: str) -> dict[str, Any]:
    item = read_json(s3, f"stac/ndvi/{item_id}/{item_id}.json")
    assert item is not None, keys(s3)
    assert item["id"] == item_id and item["collection"] == "ndvi"
    assert any(a["href"] == f"s3://{s3.bucket}/{source_key}" for a in item["assets"].values())
    assert f"./{item_id}/{item_id}.json" in item_links(s3)
    return item


@pytest.mark.parametrize(
    "fixture",
    ["s3_put.json", "sns_s3.json", "eventbridge_created.json", "sqs_s3.json"],
)
def test_created_object_is_registered(s3: S3Server, raster_bytes: bytes, fixture: str) -> None:
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    out = handle(load(fixture, s3.bucket), config(s3))
    assert [r["id"] for r in out["registered"]] == ["S2_20240601_T31UFQ"]
    assert out["registered"][0]["action"] == "created"
    assert out["registered"][0]["source"] == f"s3://{s3.bucket}/{key}"
    assert out["failed"] == [] and out["batchItemFailures"] == [] and out["skipped"] == []
    item = assert_item(s3, "S2_20240601_T31UFQ", key)
    assert item["properties"]["datetime"].startswith("2024-06-01")
    assert read_json(s3, "stac/catalog.json") is not None
    if fixture == "sqs_s3.json":  # the second message removes an item that was never registered
        assert out["removed"] == [
            {
                "source": f"s3://{s3.bucket}/products/ndvi/S2_20240530_T31UFQ.tif",
                "id": "S2_20240530_T31UFQ",
                "href": None,
                "action": "absent",
                "extent_recomputed": False,
            }
        ]

    again = handle(load(fixture, s3.bucket), config(s3))  # at-least-once delivery: harmless
    assert [r["action"] for r in again["registered"]] == ["unchanged"]
    assert item_links(s3) == ["./S2_20240601_T31UFQ/S2_20240601_T31UFQ.json"]


def test_sqs_eventbridge_created_then_removed(s3: S3Server, raster_bytes: bytes) -> None:
    put(s3, "products/ndvi/S2_20240607_T31UFQ.tif", raster_bytes)
    put(s3, "products/ndvi/S2_20240530_T31UFQ.tif", raster_bytes)
    registered = handle(
        retarget(_s3_notification("products/ndvi/S2_20240530_T31UFQ.tif"), s3.bucket), config(s3)
    )
    assert [r["id"] for r in registered["registered"]] == ["S2_20240530_T31UFQ"]

    s3.client().delete_object(Bucket=s3.bucket, Key="products/ndvi/S2_20240530_T31UFQ.tif")
    out = handle(load("sqs_eventbridge.json", s3.bucket), config(s3))
    assert [r["id"] for r in out["registered"]] == ["S2_20240607_T31UFQ"]
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240530_T31UFQ", "removed")]
    assert out["batchItemFailures"] == []
    assert_item(s3, "S2_20240607_T31UFQ", "products/ndvi/S2_20240607_T31UFQ.tif")
    assert read_json(s3, "stac/ndvi/S2_20240530_T31UFQ/S2_20240530_T31UFQ.json") is None
    assert item_links(s3) == ["./S2_20240607_T31UFQ/S2_20240607_T31UFQ.json"]


@pytest.mark.parametrize("delete_fixture", ["s3_delete.json", "eventbridge_deleted.json"])
def test_deleted_object_removes_item(s3: S3Server, raster_bytes: bytes, delete_fixture: str) -> None:
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    assert handle(load("s3_put.json", s3.bucket), config(s3))["registered"][0]["action"] == "created"
    assert_item(s3, "S2_20240601_T31UFQ", key)
    s3.client().delete_object(Bucket=s3.bucket, Key=key)

    out = handle(load(delete_fixture, s3.bucket), config(s3))
    removed = {r["id"]: r["action"] for r in out["removed"]}
    assert removed["S2_20240601_T31UFQ"] == "removed"
    if delete_fixture == "s3_delete.json":  # second record: never registered
        assert removed["S2_20240602_T31UFQ"] == "absent"
    assert out["failed"] == [] and out["registered"] == []
    assert read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json") is None
    assert item_links(s3) == []


def test_dry_run_removal_event_writes_nothing(s3: S3Server, raster_bytes: bytes) -> None:
    """STAC_DRY_RUN covers removals too: the deleted object's item stays,
    and the handler says what would have happened."""
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    real = handle(load("s3_put.json", s3.bucket), config(s3))
    assert real["registered"][0]["action"] == "created" and "dry_run" not in real
    s3.client().delete_object(Bucket=s3.bucket, Key=key)
    before = read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json")

    out = handle(load("s3_delete.json", s3.bucket), config(s3, options=RegisterOptions(dry_run=True)))
    # the result says it was a dry run (its JSON, printed by the CLI, did not)
    assert out["dry_run"] is True
    assert out["removed"] == [] and out["failed"] == []
    assert any("dry run" in s["reason"] for s in out["skipped"])
    assert read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json") == before
    assert len(item_links(s3)) == 1


def test_batch_with_encoded_keys(s3: S3Server, raster_bytes: bytes) -> None:
    """Decoded keys reach the api: names with spaces get normalised ids and
    register; products without a datetime fail by name."""
    for key in [
        "products/ndvi/S2_20240602_T31UFQ.tif",
        "products/ndvi/field plots/NDVI 2024-06-03.tif",
        "products/ndvi/run 42+1.TIF",
        "products/ndvi/date=2024-06-04/tile (00).nc",
    ]:
        put(s3, key, raster_bytes)
    out = handle(load("s3_batch.json", s3.bucket), config(s3))
    assert [r["id"] for r in out["registered"]] == ["S2_20240602_T31UFQ", "NDVI_2024-06-03"]
    failed_urls = sorted(f["url"] for f in out["failed"])
    assert failed_urls == sorted(
        f"s3://{s3.bucket}/{k}"
        for k in ["products/ndvi/run 42+1.TIF", "products/ndvi/date=2024-06-04/tile (00).nc"]
    )
    assert all(f["message_id"] is None and "no datetime" in f["error"] for f in out["failed"])
    assert out["batchItemFailures"] == []  # not from SQS: nothing to report per message
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240530_T31UFQ", "absent")]
    assert_item(s3, "S2_20240602_T31UFQ", "products/ndvi/S2_20240602_T31UFQ.tif")


def test_key_with_spaces_registers_under_a_normalised_id(s3: S3Server, raster_bytes: bytes) -> None:
    """Spaces are common in S3 keys: the default id replaces them by '_'
    (documented) rather than failing the message on every redelivery."""
    key = "products/ndvi/S2 20240605 T31UFQ.tif"
    put(s3, key, raster_bytes)
    out = handle(load("sqs_sns_s3.json", s3.bucket), config(s3))
    assert out["batchItemFailures"] == [] and out["failed"] == []
    assert [r["id"] for r in out["registered"]] == ["S2_20240605_T31UFQ"]
    assert_item(s3, "S2_20240605_T31UFQ", key)


def test_malformed_record_fails_alone(s3: S3Server, raster_bytes: bytes) -> None:
    put(s3, "products/ndvi/S2_20240608_T31UFQ.tif", raster_bytes)
    out = handle(load("sqs_malformed.json", s3.bucket), config(s3))
    assert [r["id"] for r in out["registered"]] == ["S2_20240608_T31UFQ"]
    assert len(out["failed"]) == 1
    assert out["failed"][0]["message_id"] == "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"
    assert "not JSON" in out["failed"][0]["error"]
    assert out["batchItemFailures"] == [{"itemIdentifier": "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"}]
    assert_item(s3, "S2_20240608_T31UFQ", "products/ndvi/S2_20240608_T31UFQ.tif")


def test_registration_error_fails_only_its_messages(s3: S3Server, raster_bytes: bytes) -> None:
    put(s3, "products/ndvi/good_20240601.tif", raster_bytes)
    put(s3, "products/ndvi/broken_20240601.tif", b"this is not a GeoTIFF")
    bad = _s3_notification("products/ndvi/broken_20240601.tif")
    bad2 = _s3_notification("products/ndvi/broken_20240601.tif")
    bad2["Records"].append(_s3_notification("products/ndvi/missing_20240601.tif")["Records"][0])
    payload = retarget(_sqs(_s3_notification("products/ndvi/good_20240601.tif"), bad, bad2), s3.bucket)
    out = handle(payload, config(s3))
    assert [r["id"] for r in out["registered"]] == ["good_20240601"]
    # broken twice (m1, m2, one register call); missing (m2) is gone, so skipped, not failed
    assert out["batchItemFailures"] == [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]
    assert sorted((f["message_id"], f["url"].rsplit("/", 1)[1]) for f in out["failed"]) == [
        ("m1", "broken_20240601.tif"),
        ("m2", "broken_20240601.tif"),
    ]
    assert [s["url"].rsplit("/", 1)[1] for s in out["skipped"]] == ["missing_20240601.tif"]
    assert item_links(s3) == ["./good_20240601/good_20240601.json"]


def test_suffix_and_prefix_filters(s3: S3Server, raster_bytes: bytes) -> None:
    payload = _sqs(
        _s3_notification("products/ndvi/notes.txt"),
        _s3_notification("other/S2_20240601.tif"),
        _s3_notification("products/ndvi/UPPER_20240601.TIFF"),
    )
    payload = retarget(payload, s3.bucket)
    put(s3, "products/ndvi/UPPER_20240601.TIFF", raster_bytes)
    out = handle(payload, config(s3, prefixes=("products/",)))
    assert [(Path(s["url"]).name, s["reason"].split(" ")[0]) for s in out["skipped"]] == [
        ("notes.txt", "file"),
        ("S2_20240601.tif", "key"),
    ]
    assert [r["id"] for r in out["registered"]] == ["UPPER_20240601"]

    # a prefix given as a URL also pins the bucket
    url_prefix = config(s3, prefixes=("s3://someone-else/products/",))
    out = handle(payload, url_prefix)
    assert out["registered"] == [] and len(out["skipped"]) == 3


def test_nothing_matching_writes_nothing(s3: S3Server) -> None:
    payload = retarget(_s3_notification("products/ndvi/readme.md"), s3.bucket)
    out = handle(payload, config(s3))
    assert out == {
        "registered": [],
        "removed": [],
        "batchItemFailures": [],
        "failed": [],
        "skipped": [
            {
                "url": f"s3://{s3.bucket}/products/ndvi/readme.md",
                "reason": "file ending not one of ['.tif', '.tiff', '.nc', '.nc4', '.cdf', '.netcdf']",
            }
        ],
    }
    assert keys(s3, "stac/") == []


def test_catalog_writes_never_trigger_registration(s3: S3Server, raster_bytes: bytes) -> None:
    """The catalog shares the data bucket: its own documents must be ignored."""
    put(s3, "stac/ndvi/x_20240601.tif", raster_bytes)  # even a raster inside the catalog prefix
    payload = _sqs(
        _s3_notification("stac/ndvi/collection.json"),
        _s3_notification("stac/catalog.json"),
        _s3_notification("stac/ndvi/x_20240601.tif"),
        _s3_notification("stac"),
        _s3_notification("stac-other/y_20240601.tif", name="ObjectRemoved:Delete"),
    )
    payload = retarget(payload, s3.bucket)
    out = handle(payload, config(s3, suffixes=()))  # every file ending accepted
    inside = [s["url"] for s in out["skipped"] if s["reason"].startswith("inside the catalog")]
    assert inside == [
        f"s3://{s3.bucket}/{k}"
        for k in ["stac/ndvi/collection.json", "stac/catalog.json", "stac/ndvi/x_20240601.tif", "stac"]
    ]
    # a sibling prefix that merely starts with the same letters is not the catalog
    assert [r["id"] for r in out["removed"]] == ["y_20240601"]
    assert out["registered"] == [] and keys(s3, "stac/") == ["stac/ndvi/x_20240601.tif"]


@pytest.mark.parametrize("fixture", ["s3_test_event.json", "sqs_s3_test_event.json"])
def test_test_event_is_ignored(s3: S3Server, fixture: str) -> None:
    out = handle(load(fixture, s3.bucket), config(s3))
    assert out == {"registered": [], "removed": [], "skipped": [], "failed": [], "batchItemFailures": []}
    assert keys(s3, "stac/") == []


def test_create_then_delete_in_one_batch_ends_with_no_item(s3: S3Server, raster_bytes: bytes) -> None:
    """Uploaded and deleted before the batch is handled: the later removal
    record stands for the creation (skipped, not failed: a redelivery would
    fail the same way forever), and finds nothing to remove."""
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    s3.client().delete_object(Bucket=s3.bucket, Key=key)
    created = load("sqs_s3.json", s3.bucket)["Records"][0]
    deleted = load("s3_delete.json", s3.bucket)["Records"][0]
    payload = {
        "Records": [created, {**created, "messageId": "del", "body": json.dumps({"Records": [deleted]})}]
    }
    out = handle(payload, config(s3))
    assert out["registered"] == [] and out["failed"] == [] and out["batchItemFailures"] == []
    assert [s["url"] for s in out["skipped"]] == [f"s3://{s3.bucket}/{key}"]
    assert "a later record in this batch removes the same object" in out["skipped"][0]["reason"]
    assert [r["action"] for r in out["removed"]] == ["absent"]
    assert read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json") is None


def test_stale_removal_of_a_recreated_object_keeps_its_item(s3: S3Server, raster_bytes: bytes) -> None:
    """Deleted and uploaded again, the removal delivered last (no ordering
    across messages): the object exists, so its item stays."""
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    assert handle(load("s3_put.json", s3.bucket), config(s3))["registered"][0]["action"] == "created"
    out = handle(load("eventbridge_deleted.json", s3.bucket), config(s3))
    assert out["removed"] == [] and out["failed"] == []
    assert "exists again" in out["skipped"][0]["reason"]
    assert_item(s3, "S2_20240601_T31UFQ", key)
    s3.client().delete_object(Bucket=s3.bucket, Key=key)  # now really gone: the same event removes it
    again = handle(load("eventbridge_deleted.json", s3.bucket), config(s3))
    assert [(r["id"], r["action"]) for r in again["removed"]] == [("S2_20240601_T31UFQ", "removed")]
    assert item_links(s3) == []


def test_unknown_object_state_does_not_hide_a_failure(s3: S3Server, raster_bytes: bytes) -> None:
    """When storage cannot say whether the object exists (here: nothing
    listens at the endpoint), a failed registration stays a failure, to be
    retried, and a removal is still applied."""
    import socket

    with socket.socket() as sock:  # a port on 127.0.0.1 that nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    options = {**s3.storage_options, "endpoint_url": dead, "config_kwargs": {"retries": {"max_attempts": 1}}}
    payload = retarget(_s3_notification("products/ndvi/S2_20240601_T31UFQ.tif"), s3.bucket)
    unreachable = HandlerConfig(catalog=s3.url("stac"), collection="ndvi", storage_options=options)
    out = handle(payload, unreachable)
    assert out["registered"] == [] and out["skipped"] == []
    assert len(out["failed"]) == 1 and out["failed"][0]["url"].endswith("S2_20240601_T31UFQ.tif")


def test_handler_does_not_mutate_config(s3: S3Server, raster_bytes: bytes) -> None:
    put(s3, "products/ndvi/S2_20240601_T31UFQ.tif", raster_bytes)
    meta = {"description": "NDVI products", "license": "CC-BY-4.0"}
    cfg = config(s3, collection_meta=meta)
    options_before = copy.deepcopy(cfg.options)
    handle(load("s3_put.json", s3.bucket), cfg)
    assert cfg.options.collection_meta == {"description": "NDVI products", "license": "CC-BY-4.0"}
    assert cfg.options == options_before
    collection = read_json(s3, "stac/ndvi/collection.json")
    assert collection is not None and collection["description"] == "NDVI products"


@pytest.mark.parametrize(
    ("catalog", "inside"),
    [
        ("s3://amzn-s3-demo-bucket/stac", True),
        ("s3://amzn-s3-demo-bucket/stac/", True),
        ("s3a://amzn-s3-demo-bucket/stac", True),
        ("s3://amzn-s3-demo-bucket/stac/catalog.json", True),
        ("s3://amzn-s3-demo-bucket", True),
        ("s3://amzn-s3-demo-bucket/sta", False),
        ("s3://other-bucket/stac", False),
        ("/local/stac", False),
    ],
)
def test_catalog_prefix_detection(catalog: str, inside: bool) -> None:
    """The catalog check comes first, whatever the catalog URL's spelling.

    The prefix filter stops every record that is not inside, so no api call
    (and no I/O) happens here.
    """
    cfg = HandlerConfig(catalog=catalog, collection="n", prefixes=("elsewhere/",))
    out = handle(_s3_notification("stac/ndvi/item_20240601.tif"), cfg)
    assert out["registered"] == out["removed"] == out["failed"] == []
    (skipped,) = out["skipped"]
    if inside:  # a product there: the reason says it is never registered, and what to change
        assert skipped["reason"] == f"inside the catalog {catalog}: {_INSIDE_CATALOG}"
    else:
        assert skipped["reason"].startswith("key does not start with")


# ---------------------------------------------------------------------------
# identity, loop guard and undecodable records (issue 8, points 4, 11, 12)
# ---------------------------------------------------------------------------


def test_removal_event_for_one_folder_keeps_the_other_folders_item(s3: S3Server, raster_bytes: bytes) -> None:
    """``2024/tile.tif`` and ``2025/tile.tif`` map to one id. The second's
    creation is refused (naming both), and its removal must not delete the
    item of the first, which still exists."""
    first, second = "products/ndvi/2024/S2_20240601_T31UFQ.tif", "products/ndvi/2025/S2_20240601_T31UFQ.tif"
    put(s3, first, raster_bytes)
    put(s3, second, raster_bytes)
    out = handle(retarget(_sqs(_s3_notification(first)), s3.bucket), config(s3))
    assert [r["action"] for r in out["registered"]] == ["created"]

    out = handle(retarget(_sqs(_s3_notification(second)), s3.bucket), config(s3))
    assert out["registered"] == [] and out["batchItemFailures"] == [{"itemIdentifier": "m0"}]
    assert first in out["failed"][0]["error"] and second in out["failed"][0]["error"]
    before = read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json")

    s3.client().delete_object(Bucket=s3.bucket, Key=second)
    out = handle(retarget(_sqs(_s3_notification(second, "ObjectRemoved:Delete")), s3.bucket), config(s3))
    assert out["removed"] == [] and out["failed"] == [] and out["batchItemFailures"] == []
    (skipped,) = out["skipped"]
    assert skipped["url"].endswith(second) and "kept" in skipped["reason"] and first in skipped["reason"]
    assert read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json") == before
    assert_item(s3, "S2_20240601_T31UFQ", first)

    s3.client().delete_object(Bucket=s3.bucket, Key=first)  # the item's own product goes: so does the item
    out = handle(retarget(_sqs(_s3_notification(first, "ObjectRemoved:Delete")), s3.bucket), config(s3))
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601_T31UFQ", "removed")]
    assert item_links(s3) == []


@pytest.mark.parametrize(
    "catalog",
    [
        "s3://amzn-s3-demo-bucket//stac",
        "s3://amzn-s3-demo-bucket//stac//",
        "S3A://amzn-s3-demo-bucket///stac/catalog.json",
    ],
)
def test_catalog_url_with_double_slash_still_guards_its_own_writes(catalog: str) -> None:
    """``s3://b//stac`` writes under ``stac/`` (the store drops empty
    segments); the loop guard must see those writes as the catalog's own."""
    cfg = HandlerConfig(catalog=catalog, collection="n", suffixes=())
    out = handle(_s3_notification("stac/ndvi/collection.json"), cfg)
    assert out["registered"] == out["removed"] == out["failed"] == []
    assert [s["reason"] for s in out["skipped"]] == [f"inside the catalog {catalog}"]


def test_record_with_non_utf8_bytes_fails_alone(s3: S3Server, raster_bytes: bytes) -> None:
    """An SQS body of bytes that are not UTF-8, and a key whose escapes are
    not UTF-8, are each one failed record; the rest of the batch registers."""
    put(s3, "products/ndvi/good_20240601.tif", raster_bytes)
    payload = retarget(
        _sqs(
            _s3_notification("products/ndvi/good_20240601.tif"),
            "placeholder",
            _s3_notification("products/ndvi/bad%FF_20240601.tif"),
            _s3_notification("products/ndvi/bad\udcff_20240601.tif"),
        ),
        s3.bucket,
    )
    payload["Records"][1]["body"] = b'{"Records": [{"s3": "\xff\xfe not utf-8"}]}'
    out = handle(payload, config(s3))
    assert [r["id"] for r in out["registered"]] == ["good_20240601"]
    assert out["batchItemFailures"] == [
        {"itemIdentifier": "m1"},
        {"itemIdentifier": "m2"},
        {"itemIdentifier": "m3"},
    ]
    errors = {f["message_id"]: f["error"] for f in out["failed"]}
    assert (
        "not UTF-8" in errors["m1"]
        and "not valid UTF-8" in errors["m2"]
        and "not valid UTF-8" in errors["m3"]
    )
    assert item_links(s3) == ["./good_20240601/good_20240601.json"]


def test_removal_event_for_a_key_with_hash_keeps_the_item_of_the_key_without(
    s3: S3Server, raster_bytes: bytes
) -> None:
    """``scene#v2.tif`` is its own object, not ``scene.tif`` with a fragment:
    its removal must not delete the item of ``scene.tif``."""
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, raster_bytes)
    assert (
        handle(retarget(_s3_notification(key), s3.bucket), config(s3))["registered"][0]["action"] == "created"
    )
    before = read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json")
    hashed = "products/ndvi/S2_20240601_T31UFQ%23v2.tif"  # '#' arrives URL-encoded
    out = handle(retarget(_s3_notification(hashed, "ObjectRemoved:Delete"), s3.bucket), config(s3))
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601_T31UFQ_v2", "absent")]
    assert read_json(s3, "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json") == before
    assert item_links(s3) == ["./S2_20240601_T31UFQ/S2_20240601_T31UFQ.json"]


def test_an_sns_subscription_confirmation_in_the_queue_says_what_it_is_and_what_to_do() -> None:
    """A topic of another account subscribed to the queue sends its
    confirmation through it. Before: "unrecognised payload (keys: [...])",
    which read as an unsupported event shape; the message's link (its token)
    is not repeated in the error."""
    token_url = (
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2"
    )
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:data-events",
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:data-events.",
        "SubscribeURL": token_url,
        "Timestamp": "2024-06-01T12:00:00.000Z",
    }
    events, failures = parse_event(_sqs(confirmation, _s3_notification("p/a.tif")))
    assert [e.key for e in events] == ["p/a.tif"]
    assert [f["message_id"] for f in failures] == ["m0"]
    error = failures[0]["error"]
    assert "SubscriptionConfirmation" in error and "arn:aws:sns:us-east-1:123456789012:data-events" in error
    assert "confirm-subscription" in error and "2336412f37fb687f5d51e6e2" not in error


def test_stac_producers_own_change_notifications_in_the_queue_say_what_they_are() -> None:
    """The change topic (STAC_SNS_TOPIC) subscribed to the event queue by
    mistake: each committed change came back as "unrecognised payload (keys:
    ['assets', 'bbox', ...])". Now the message names it and the fix; it still
    fails (dead-letter queue), so the subscription is seen."""
    item = {"type": "Feature", "stac_version": "1.1.0", "id": "x", "assets": {}, "links": []}
    stub = {"stub": True, "event": "created", "collection": "ndvi", "id": "x", "href": "s3://b/stac/x.json"}
    envelope = {
        "Type": "Notification",
        "MessageId": "1",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": json.dumps(item),
    }
    events, failures = parse_event(_sqs(item, stub, envelope))
    assert events == [] and [f["message_id"] for f in failures] == ["m0", "m1", "m2"]
    for failure in failures:
        assert "change notification" in failure["error"] and "unsubscribe" in failure["error"], failure


# ---------------------------------------------------------------------------
# several records of one object in one batch: the last one wins, for
# removals as for creations, and the object is handled once
# ---------------------------------------------------------------------------

DEDUP_KEY = "products/ndvi/S2_20240601_T31UFQ.tif"
DEDUP_ITEM = "stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json"


def _dedup_record(s3: S3Server, name: str) -> dict[str, Any]:
    body = _s3_notification(DEDUP_KEY, name)
    return json.loads(json.dumps(body).replace("amzn-s3-demo-bucket", s3.bucket))


def test_two_removal_records_of_one_object_remove_it_once(s3: S3Server, raster_bytes: bytes) -> None:
    put(s3, DEDUP_KEY, raster_bytes)
    assert (
        handle(_sqs(_dedup_record(s3, "ObjectCreated:Put")), config(s3))["registered"][0]["action"]
        == "created"
    )
    s3.client().delete_object(Bucket=s3.bucket, Key=DEDUP_KEY)
    out = handle(
        _sqs(_dedup_record(s3, "ObjectRemoved:Delete"), _dedup_record(s3, "ObjectRemoved:Delete")), config(s3)
    )
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601_T31UFQ", "removed")]
    assert out["failed"] == [] and out["skipped"] == [] and out["registered"] == []
    assert read_json(s3, DEDUP_ITEM) is None and item_links(s3) == []


def test_a_creation_followed_by_its_removal_is_handled_as_the_removal(
    s3: S3Server, raster_bytes: bytes
) -> None:
    put(s3, DEDUP_KEY, raster_bytes)
    handle(_sqs(_dedup_record(s3, "ObjectCreated:Put")), config(s3))
    s3.client().delete_object(Bucket=s3.bucket, Key=DEDUP_KEY)
    out = handle(
        _sqs(_dedup_record(s3, "ObjectCreated:Put"), _dedup_record(s3, "ObjectRemoved:Delete")), config(s3)
    )
    assert out["registered"] == [] and out["failed"] == [] and out["batchItemFailures"] == []
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601_T31UFQ", "removed")]
    [skipped] = out["skipped"]
    assert skipped["url"] == f"s3://{s3.bucket}/{DEDUP_KEY}" and "later record" in skipped["reason"]
    assert read_json(s3, DEDUP_ITEM) is None


def test_a_removal_followed_by_a_creation_registers_the_object_once(
    s3: S3Server, raster_bytes: bytes
) -> None:
    """Deleted and uploaded again: one registration, no removal first."""
    put(s3, DEDUP_KEY, raster_bytes)
    handle(_sqs(_dedup_record(s3, "ObjectCreated:Put")), config(s3))
    out = handle(
        _sqs(_dedup_record(s3, "ObjectRemoved:Delete"), _dedup_record(s3, "ObjectCreated:Put")), config(s3)
    )
    assert out["removed"] == [] and out["failed"] == []
    assert [(r["id"], r["action"]) for r in out["registered"]] == [("S2_20240601_T31UFQ", "unchanged")]
    assert "later record" in out["skipped"][0]["reason"]
    assert_item(s3, "S2_20240601_T31UFQ", DEDUP_KEY)


def test_a_creation_winning_over_a_removal_of_an_object_gone_still_removes_its_item(
    s3: S3Server, raster_bytes: bytes
) -> None:
    """The records of one batch are not in time order: a removal listed first
    may be the last thing that happened. The object is gone, so the creation
    registers nothing and the item goes, as the removal alone would do."""
    put(s3, DEDUP_KEY, raster_bytes)
    handle(_sqs(_dedup_record(s3, "ObjectCreated:Put")), config(s3))
    s3.client().delete_object(Bucket=s3.bucket, Key=DEDUP_KEY)
    out = handle(
        _sqs(_dedup_record(s3, "ObjectRemoved:Delete"), _dedup_record(s3, "ObjectCreated:Put")), config(s3)
    )
    assert out["registered"] == [] and out["failed"] == []
    assert [(r["id"], r["action"]) for r in out["removed"]] == [("S2_20240601_T31UFQ", "removed")]
    assert read_json(s3, DEDUP_ITEM) is None and item_links(s3) == []


def test_a_failed_removal_fails_the_messages_of_every_record_it_stands_for(
    s3: S3Server, raster_bytes: bytes
) -> None:
    put(s3, DEDUP_KEY, raster_bytes)
    handle(_sqs(_dedup_record(s3, "ObjectCreated:Put")), config(s3))
    s3.client().delete_object(Bucket=s3.bucket, Key=DEDUP_KEY)
    broken = config(s3)
    broken = type(broken)(
        catalog=s3.url("stac"),
        collection="ndvi",
        storage_options={**s3.storage_options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}},
        data_storage_options=s3.storage_options,
    )
    out = handle(
        _sqs(_dedup_record(s3, "ObjectCreated:Put"), _dedup_record(s3, "ObjectRemoved:Delete")), broken
    )
    assert sorted(f["itemIdentifier"] for f in out["batchItemFailures"]) == ["m0", "m1"]
