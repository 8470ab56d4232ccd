"""Change events wired into every write, end to end: the verbs, the CLI, the
event handler and the Prefect task publish what they commit (not the sinks
called by hand, which tests/test_notify.py covers).

SNS: moto's server on 127.0.0.1 delivering to SQS (the ``Topic`` of
tests/test_notify.py). Prefect: a real task run on the test server, its
events read back through the events API.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer import api
from producer.changes import Change
from producer.cli import main
from producer.events import HandlerConfig, handle
from producer.sinks.notify import CallbackSink
from tests.crashes import write_tile
from tests.s3server import S3Server
from tests.test_events import load, put
from tests.test_notify import REGION, Topic, _read_events


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [write_tile(folder, "a_20240110.tif", 6.0, 46.0), write_tile(folder, "b_20240215.tif", 7.0, 46.5)]


def _seen(changes: list[Change]) -> list[tuple[str, str]]:
    return [(str(c.kind), c.item_id) for c in changes]


def test_on_change_sees_created_then_nothing_for_an_unchanged_rerun_then_removed(
    tmp_path: Path, tiles: list[Path]
) -> None:
    catalog = str(tmp_path / "cat")
    seen: list[Change] = []
    tell = CallbackSink(seen.append, outbox_id="seen")  # a bound method needs a named outbox
    first = api.register(tiles[:1], catalog=catalog, collection="c", on_change=tell)
    assert [r.action for r in first] == ["created"]
    assert _seen(seen) == [("created", "a_20240110")]
    assert seen[0].item["id"] == "a_20240110" and seen[0].collection == "c"

    again = api.register(tiles[:1], catalog=catalog, collection="c", on_change=tell)
    assert [r.action for r in again] == ["unchanged"]
    assert len(seen) == 1  # unchanged is not a change

    gone = api.remove("a_20240110", catalog=catalog, collection="c", on_change=tell)
    assert gone.action == "removed"
    assert _seen(seen) == [("created", "a_20240110"), ("removed", "a_20240110")]
    assert seen[1].item["id"] == "a_20240110"  # the last committed document

    absent = api.remove("a_20240110", catalog=catalog, collection="c", on_change=tell)
    assert absent.action == "absent" and len(seen) == 2  # nothing removed: nothing told


def test_reconcile_fix_tells_on_change_of_the_products_it_registers(
    tmp_path: Path, tiles: list[Path]
) -> None:
    catalog = str(tmp_path / "cat")
    api.register(tiles[:1], catalog=catalog, collection="c")
    seen: list[Change] = []
    tell = CallbackSink(seen.append, outbox_id="seen")
    api.reconcile(catalog, data=str(tiles[0].parent), fix=True, collection="c", on_change=tell)
    assert _seen(seen) == [("created", "b_20240215")]


def test_on_change_that_is_not_callable_is_refused_before_anything_is_written(
    tmp_path: Path, tiles: list[Path]
) -> None:
    from producer.errors import InputError

    with pytest.raises(InputError, match="on_change must be a function"):
        api.register(tiles, catalog=str(tmp_path / "cat"), collection="c", on_change="print")  # type: ignore[arg-type]
    assert not (tmp_path / "cat").exists()


def test_cli_register_with_sns_topic_publishes_one_message_per_created_item(
    s3_server: S3Server, tmp_path: Path, tiles: list[Path]
) -> None:
    topic = Topic(s3_server)
    args = ["register", *map(str, tiles), "--catalog", str(tmp_path / "cat"), "--collection", "c"]
    done = CliRunner().invoke(main, [*args, "--sns-topic", topic.arn])
    assert done.exit_code == 0, done.output
    got = topic.receive("raw", 2) + topic.receive("raw", 1, timeout=0.3)
    assert sorted(json.loads(m["body"])["id"] for m in got) == ["a_20240110", "b_20240215"]
    assert {m["attrs"]["event"] for m in got} == {("String", "created")}
    self_links = [
        next(link["href"] for link in json.loads(m["body"])["links"] if link["rel"] == "self") for m in got
    ]
    assert all(href.startswith(str(tmp_path / "cat")) for href in self_links)

    rerun = CliRunner().invoke(main, [*args, "--sns-topic", topic.arn])  # unchanged: nothing published
    assert rerun.exit_code == 0, rerun.output
    assert topic.receive("raw", 1, timeout=0.3) == []


def test_cli_remove_with_sns_topic_publishes_the_removal(
    s3_server: S3Server, tmp_path: Path, tiles: list[Path]
) -> None:
    shown = CliRunner().invoke(main, ["register", "--help"]).output
    assert "--sns-topic ARN" in shown and "Amazon SNS topic" in shown  # generated from the field
    assert "--sns-topic ARN" in CliRunner().invoke(main, ["remove", "--help"]).output
    topic = Topic(s3_server)
    where = ["--catalog", str(tmp_path / "cat"), "--collection", "c", "--sns-topic", topic.arn]
    assert CliRunner().invoke(main, ["register", str(tiles[0]), *where]).exit_code == 0
    removed = CliRunner().invoke(main, ["remove", "a_20240110", *where])
    assert removed.exit_code == 0, removed.output
    got = topic.receive("raw", 2) + topic.receive("raw", 1, timeout=0.3)
    assert [m["attrs"]["event"][1] for m in got] == ["created", "removed"]


def test_event_handler_with_stac_sns_topic_publishes_a_created_and_a_removed_object(
    s3_server: S3Server, tmp_path: Path
) -> None:
    from tests.rasters import write_utm

    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    topic = Topic(s3_server)
    config = HandlerConfig.from_env(
        {
            "STAC_CATALOG": s3.url("stac"),
            "STAC_COLLECTION": "ndvi",
            "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
            "STAC_SNS_TOPIC": topic.arn,
        }
    )
    assert config.options.sns_topic == topic.arn
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, write_utm(tmp_path / "src").read_bytes())
    created = handle(load("s3_put.json", s3.bucket), config)
    assert [r["action"] for r in created["registered"]] == ["created"]
    s3.client().delete_object(Bucket=s3.bucket, Key=key)
    deleted = handle(load("s3_delete.json", s3.bucket), config)
    # the fixture's second record names an object that never had an item: absent, not published
    assert [(r["id"], r["action"]) for r in deleted["removed"]][0] == ("S2_20240601_T31UFQ", "removed")
    assert all(r["action"] == "absent" for r in deleted["removed"][1:])

    got = topic.receive("raw", 2) + topic.receive("raw", 1, timeout=0.3)
    assert [(m["attrs"]["event"][1], json.loads(m["body"])["id"]) for m in got] == [
        ("created", "S2_20240601_T31UFQ"),
        ("removed", "S2_20240601_T31UFQ"),
    ]
    body = json.loads(got[0]["body"])
    self_href = next(link["href"] for link in body["links"] if link["rel"] == "self")
    assert self_href == f"s3://{s3.bucket}/stac/ndvi/S2_20240601_T31UFQ/S2_20240601_T31UFQ.json"


def test_a_failed_publish_leaves_the_catalog_committed_and_is_a_storage_error_saying_so(
    s3_server: S3Server, tmp_path: Path, tiles: list[Path]
) -> None:
    missing = f"arn:aws:sns:{REGION}:123456789012:no-such-topic-{uuid.uuid4().hex[:6]}"
    catalog = tmp_path / "cat"
    results = api.register(tiles[:1], catalog=str(catalog), collection="c", sns_topic=missing)
    (result,) = results
    assert not result.ok and result.error_type == "storage"
    assert "committed to the catalog" in str(result.error) and missing in str(result.error)
    assert (catalog / "c" / "a_20240110" / "a_20240110.json").exists()

    gone = api.remove("a_20240110", catalog=str(catalog), collection="c", sns_topic=missing)
    assert not gone.ok and gone.error_type == "storage"
    assert "removed from the catalog" in str(gone.error) and missing in str(gone.error)
    assert not (catalog / "c" / "a_20240110" / "a_20240110.json").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_prefect_task_run_registering_a_product_and_the_reconcile_flow_emit_stac_item_created(
    tmp_path: Path, tiles: list[Path]
) -> None:
    from prefect import flow

    from producer.prefect import register_in_stac

    cid = f"c{uuid.uuid4().hex[:8]}"
    catalog = str(tmp_path / "cat")

    @flow(name="register-and-notify")
    def pipeline() -> list[dict[str, Any]]:
        return register_in_stac([str(t) for t in tiles[:1]], catalog=catalog, collection=cid)

    state = pipeline(return_state=True)
    assert state.is_completed(), state
    events = _read_events(f"stac.item.{cid}.", 1)
    assert [(e.event, e.resource.id) for e in events] == [
        ("stac.item.created", f"stac.item.{cid}.a_20240110")
    ]
    assert events[0].payload["href"] == f"{catalog}/{cid}/a_20240110/a_20240110.json"

    # the reconcile flow registers the product no item describes: its event too
    from flows.reconcile import reconcile_catalog

    fixed = reconcile_catalog(catalog, data=str(tiles[0].parent), fix=True, collection=cid)
    assert [r["id"] for r in fixed["registered"]] == ["b_20240215"]
    events = _read_events(f"stac.item.{cid}.", 2)
    assert [(e.event, e.resource.id) for e in events][1:] == [
        ("stac.item.created", f"stac.item.{cid}.b_20240215")
    ]


def test_a_removal_event_whose_publish_failed_fails_its_message_and_its_redelivery_sends_it(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """The removal is committed, then the topic refuses it (not there yet):
    ``remove`` says so as a ``storage`` error ("remove it again"). The
    handler listed that result under ``removed`` and acknowledged the
    message, so nothing ran the removal again and the subscribers never
    heard of it until another write of the collection. Now the message fails
    (``batchItemFailures``), and its redelivery, once the topic is there,
    publishes the removal."""
    from tests.rasters import write_utm
    from tests.test_notify import _clients

    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    put(s3, key, write_utm(tmp_path / "src").read_bytes())
    env = {
        "STAC_CATALOG": s3.url("stac"),
        "STAC_COLLECTION": "ndvi",
        "STAC_STORAGE_OPTIONS": json.dumps(s3.storage_options),
    }
    assert (
        handle(load("s3_put.json", s3.bucket), HandlerConfig.from_env(env))["registered"][0]["action"]
        == "created"
    )
    s3.client().delete_object(Bucket=s3.bucket, Key=key)
    removal = load("sqs_s3.json", s3.bucket)
    removal["Records"] = removal["Records"][:1]
    body = json.loads(removal["Records"][0]["body"])
    body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    removal["Records"][0]["body"] = json.dumps(body)
    message_id = removal["Records"][0]["messageId"]
    name = f"stac-later-{uuid.uuid4().hex[:6]}"
    config = HandlerConfig.from_env({**env, "STAC_SNS_TOPIC": f"arn:aws:sns:{REGION}:123456789012:{name}"})

    out = handle(removal, config)
    assert out["batchItemFailures"] == [{"itemIdentifier": message_id}]
    assert [f["url"] for f in out["failed"]] == [f"s3://{s3.bucket}/{key}"]
    assert "removed from the catalog" in out["failed"][0]["error"] and out["removed"] == []

    sns, sqs = _clients(s3_server)  # the topic comes (back): the redelivery publishes the removal
    arn = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    again = handle(removal, config)
    assert again["failed"] == [] and again["batchItemFailures"] == []
    got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert [json.loads(m["Body"])["id"] for m in got] == ["S2_20240601_T31UFQ"]
