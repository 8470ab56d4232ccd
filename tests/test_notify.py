"""Change notifications (producer.sinks.notify) with real parts.

The changes are built from items really registered into a local catalog.
SNS: moto's server on 127.0.0.1 (``s3_server`` serves every AWS service)
delivering to SQS queues, read back with boto3. Prefect: events emitted
inside real flow runs on the test server, read back through its events API.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producer import api
from producer.changes import Change, ChangeKind
from producer.errors import InputError
from producer.sinks.notify import (
    SNS_MAX_BYTES,
    CallbackSink,
    NotificationTooLarge,
    SnsError,
    SnsSink,
    change_event,
    notification_sinks,
    sns_message,
)
from tests.rasters import write_dateline, write_utm
from tests.s3server import S3Server

REGION = "us-east-1"


# ---------------------------------------------------------------------------
# real committed items
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Two items registered into a local catalog (collection ``c1``), by id:
    ``utm_20240513`` and ``dateline_20240601`` (its bbox crosses 180°)."""
    root = tmp_path_factory.mktemp("notify")
    catalog = root / "catalog"
    results = api.register(
        [write_utm(root / "data"), write_dateline(root / "data")], catalog=str(catalog), collection="c1"
    )
    out = {}
    for r in results:
        assert r.to_dict()["action"] == "created", r
        href = Path(r.to_dict()["href"])
        doc = json.loads(href.read_text())
        doc["_key"] = href.relative_to(catalog).as_posix()
        out[doc["id"]] = doc
    return out


def _change(kind: ChangeKind | str, doc: dict[str, Any]) -> Change:
    item = {k: v for k, v in doc.items() if k != "_key"}
    return Change(kind, item["collection"], item["id"], doc["_key"], item)  # type: ignore[arg-type]


def _ranged(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as an item with a start/end range and no single datetime."""
    props = {**doc["properties"], "datetime": None}
    props["start_datetime"], props["end_datetime"] = "2024-05-01T00:00:00Z", "2024-05-31T23:59:59Z"
    return {**doc, "id": "ranged", "properties": props, "_key": "c1/ranged/ranged.json"}


@pytest.fixture
def changes(items: dict[str, dict[str, Any]]) -> list[Change]:
    """created utm, updated dateline, removed ranged (start/end only)."""
    return [
        _change(ChangeKind.CREATED, items["utm_20240513"]),
        _change(ChangeKind.UPDATED, items["dateline_20240601"]),
        _change(ChangeKind.REMOVED, _ranged(items["utm_20240513"])),
    ]


COLLECTION_DOC = {"type": "Collection", "id": "c1"}


# ---------------------------------------------------------------------------
# the callback
# ---------------------------------------------------------------------------


def test_import_notify_does_not_load_prefect() -> None:
    import subprocess
    import sys

    code = (
        "import sys, producer.sinks.notify; "
        "print([m for m in sys.modules if m.partition('.')[0] == 'prefect'])"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_callback_gets_every_change_in_commit_order(changes: list[Change]) -> None:
    seen: list[Change] = []
    CallbackSink(seen.append, outbox_id="seen").apply(COLLECTION_DOC, changes)
    assert seen == changes


def test_callback_skips_a_kind_it_does_not_know(changes: list[Change], items: dict[str, Any]) -> None:
    seen: list[Change] = []
    unchanged = _change("unchanged", items["utm_20240513"])
    CallbackSink(seen.append, outbox_id="seen").apply(COLLECTION_DOC, [unchanged, changes[0]])
    assert seen == [changes[0]]


def test_callback_errors_propagate_to_the_caller(changes: list[Change]) -> None:
    def fail(change: Change) -> None:
        raise RuntimeError(f"downstream down for {change.item_id}")

    with pytest.raises(RuntimeError, match="downstream down for utm_20240513"):
        CallbackSink(fail, outbox_id="fail").apply(COLLECTION_DOC, changes)


def test_callback_that_is_not_callable_is_refused() -> None:
    with pytest.raises(InputError, match="on_change must be a function"):
        CallbackSink("print")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# what is sent (pure)
# ---------------------------------------------------------------------------


def test_change_event_names_the_item_and_relates_the_collection(changes: list[Change]) -> None:
    ev = change_event(changes[1], "s3://bucket/stac/")
    assert ev["event"] == "stac.item.updated"
    assert ev["resource"]["prefect.resource.id"] == "stac.item.c1.dateline_20240601"
    assert ev["related"] == [
        {
            "prefect.resource.id": "stac.collection.c1",
            "prefect.resource.role": "collection",
            "prefect.resource.name": "c1",
        }
    ]
    item = changes[1].item
    assert ev["payload"] == {
        "href": f"s3://bucket/stac/{changes[1].key}",
        "collection": "c1",
        "id": "dateline_20240601",
        "datetime": item["properties"]["datetime"],
        "bbox": item["bbox"],
    }
    ranged = change_event(changes[2])
    assert ranged["payload"]["href"] == "c1/ranged/ranged.json"
    assert ranged["payload"]["start_datetime"] == "2024-05-01T00:00:00Z"
    assert ranged["payload"]["end_datetime"] == "2024-05-31T23:59:59Z"
    assert "datetime" not in ranged["payload"]


def test_published_href_never_carries_catalog_credentials(changes: list[Change]) -> None:
    url = "s3://AKIAEXAMPLE:wJalr-SECRET@bucket/stac"
    body, attrs = sns_message(changes[0], url)
    event = change_event(changes[0], url)
    for text in (body, json.dumps(attrs), json.dumps(event)):
        assert "SECRET" not in text and "AKIAEXAMPLE" not in text
    assert event["payload"]["href"] == f"s3://bucket/stac/{changes[0].key}"


def test_sns_message_sets_an_absolute_self_link_without_mutating_the_item(changes: list[Change]) -> None:
    before = json.dumps(changes[0].item, sort_keys=True)
    body, attrs = sns_message(changes[0], "s3://bucket/stac")
    assert json.dumps(changes[0].item, sort_keys=True) == before
    doc = json.loads(body)
    selfs = [link for link in doc["links"] if link["rel"] == "self"]
    assert selfs == [
        {"rel": "self", "href": f"s3://bucket/stac/{changes[0].key}", "type": "application/json"}
    ]
    assert {k: v for k, v in doc.items() if k != "links"} == {
        k: v for k, v in changes[0].item.items() if k != "links"
    }
    assert len(attrs) <= 10  # what raw delivery to SQS accepts


# ---------------------------------------------------------------------------
# SNS -> SQS on the local moto server
# ---------------------------------------------------------------------------


def _clients(srv: S3Server) -> tuple[Any, Any]:
    import boto3

    kw = {
        "endpoint_url": srv.endpoint_url,
        "region_name": REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    return boto3.client("sns", **kw), boto3.client("sqs", **kw)


class Topic:
    """A topic with two subscribed queues: ``raw`` (raw message delivery)
    and ``wrapped`` (the SNS JSON envelope)."""

    def __init__(self, srv: S3Server, fifo: bool = False) -> None:
        self.sns, self.sqs = _clients(srv)
        name = f"stac-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        attrs = {"FifoTopic": "true"} if fifo else {}
        self.arn = self.sns.create_topic(Name=name, Attributes=attrs)["TopicArn"]
        self.queues: dict[str, str] = {}
        for mode in ("raw", "wrapped"):
            qattrs = {"FifoQueue": "true"} if fifo else {}
            url = self.sqs.create_queue(
                QueueName=f"{name.removesuffix('.fifo')}-{mode}" + (".fifo" if fifo else ""),
                Attributes=qattrs,
            )["QueueUrl"]
            qarn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            self.sns.subscribe(
                TopicArn=self.arn,
                Protocol="sqs",
                Endpoint=qarn,
                Attributes={"RawMessageDelivery": "true" if mode == "raw" else "false"},
            )
            self.queues[mode] = url

    def receive(self, mode: str, expected: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Up to ``expected`` messages of one queue, as (body, attributes) dicts
        normalised across raw and wrapped delivery."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            got = self.sqs.receive_message(
                QueueUrl=self.queues[mode],
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            for m in got:
                self.sqs.delete_message(QueueUrl=self.queues[mode], ReceiptHandle=m["ReceiptHandle"])
                if mode == "raw":
                    attrs = {
                        k: (v["DataType"], v["StringValue"])
                        for k, v in m.get("MessageAttributes", {}).items()
                    }
                    out.append({"body": m["Body"], "attrs": attrs, "sqs": m.get("Attributes", {})})
                else:
                    envelope = json.loads(m["Body"])
                    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == self.arn
                    attrs = {
                        k: (v["Type"], v["Value"]) for k, v in envelope.get("MessageAttributes", {}).items()
                    }
                    out.append({"body": envelope["Message"], "attrs": attrs, "sqs": m.get("Attributes", {})})
            if not got:
                time.sleep(0.05)
        return out


@pytest.fixture
def topic(s3_server: S3Server) -> Iterator[Topic]:
    yield Topic(s3_server)


@pytest.mark.parametrize("mode", ["raw", "wrapped"])
def test_sns_one_message_per_change_with_item_body_and_attributes(
    topic: Topic, changes: list[Change], items: dict[str, Any], mode: str
) -> None:
    unchanged = _change("unchanged", items["utm_20240513"])
    SnsSink(topic.arn, catalog_url="s3://bucket/stac").apply(
        COLLECTION_DOC, [changes[0], unchanged, *changes[1:]]
    )
    got = topic.receive(mode, 3)
    assert len(got) == 3, got
    assert topic.receive(mode, 1, timeout=0.5) == []  # nothing for the kind the sink does not know
    by_id = {json.loads(m["body"])["id"]: m for m in got}
    assert set(by_id) == {"utm_20240513", "dateline_20240601", "ranged"}

    utm = by_id["utm_20240513"]
    body = json.loads(utm["body"])
    assert body["properties"] == changes[0].item["properties"]
    assert body["assets"] == changes[0].item["assets"]
    w, s, e, n = changes[0].item["bbox"]
    assert {k: v for k, v in utm["attrs"].items() if not k.startswith("bbox.")} == {
        "event": ("String", "created"),
        "collection": ("String", "c1"),
        "id": ("String", "utm_20240513"),
        "datetime": ("String", changes[0].item["properties"]["datetime"]),
        "bbox": ("String", json.dumps(changes[0].item["bbox"])),
    }
    assert {k: v[0] for k, v in utm["attrs"].items() if k.startswith("bbox.")} == {
        f"bbox.{c}": "Number" for c in ("west", "south", "east", "north")
    }
    corners = [float(utm["attrs"][f"bbox.{c}"][1]) for c in ("west", "south", "east", "north")]
    assert corners == pytest.approx([w, s, e, n], abs=1e-5)
    assert json.loads(utm["attrs"]["bbox"][1]) == [w, s, e, n]

    dateline = by_id["dateline_20240601"]
    assert dateline["attrs"]["event"] == ("String", "updated")
    west, east = float(dateline["attrs"]["bbox.west"][1]), float(dateline["attrs"]["bbox.east"][1])
    assert west > east  # crosses 180°, as the item's bbox says

    ranged = by_id["ranged"]
    assert ranged["attrs"]["event"] == ("String", "removed")
    assert ranged["attrs"]["start_datetime"] == ("String", "2024-05-01T00:00:00Z")
    assert ranged["attrs"]["end_datetime"] == ("String", "2024-05-31T23:59:59Z")
    assert "datetime" not in ranged["attrs"]
    assert json.loads(ranged["body"])["properties"]["start_datetime"] == "2024-05-01T00:00:00Z"


def test_sns_publishes_more_than_ten_changes_in_batches(topic: Topic, items: dict[str, Any]) -> None:
    base = items["utm_20240513"]
    many = [
        _change(
            ChangeKind.CREATED, {**base, "id": f"item{i:02d}", "_key": f"c1/item{i:02d}/item{i:02d}.json"}
        )
        for i in range(23)
    ]
    SnsSink(topic.arn).apply(COLLECTION_DOC, many)
    got = topic.receive("raw", 23)
    assert sorted(json.loads(m["body"])["id"] for m in got) == [f"item{i:02d}" for i in range(23)]


def test_sns_batches_stay_under_the_request_size(items: dict[str, Any], s3_server: S3Server) -> None:
    base = items["utm_20240513"]
    big = {**base, "properties": {**base["properties"], "note": "x" * 60_000}}
    many = [
        _change(ChangeKind.CREATED, {**big, "id": f"big{i}", "_key": f"c1/big{i}/big{i}.json"})
        for i in range(9)
    ]
    sink = SnsSink("arn:aws:sns:us-east-1:123456789012:unused")
    batches = list(sink._batches(many))
    assert [len(b) for b in batches] == [4, 4, 1]
    for b in batches:
        assert sum(len(e["Message"].encode()) for _, e in b) < SNS_MAX_BYTES


def test_sns_item_too_large_for_a_message_is_announced_by_a_stub_with_its_href(
    topic: Topic, items: dict[str, Any], changes: list[Change]
) -> None:
    base = items["utm_20240513"]
    huge = _change(
        ChangeKind.CREATED,
        {
            **base,
            "id": "huge",
            "properties": {**base["properties"], "note": "x" * SNS_MAX_BYTES},
            "_key": "c1/huge/huge.json",
        },
    )
    SnsSink(topic.arn, catalog_url="s3://bucket/stac").apply(COLLECTION_DOC, [huge, changes[0]])
    got = {m["attrs"]["id"][1]: m for m in topic.receive("raw", 2)}
    assert set(got) == {"huge", "utm_20240513"}
    assert json.loads(got["huge"]["body"]) == {
        "stub": True,
        "event": "created",
        "collection": "c1",
        "id": "huge",
        "href": "s3://bucket/stac/c1/huge/huge.json",
    }
    assert got["huge"]["attrs"]["event"] == ("String", "created")  # filter policies still match
    assert got["huge"]["attrs"]["bbox"] == ("String", json.dumps(base["bbox"]))
    assert json.loads(got["utm_20240513"]["body"])["properties"] == changes[0].item["properties"]


def test_sns_message_too_large_even_as_a_stub_is_reported_and_not_kept_for_a_retry(
    topic: Topic, items: dict[str, Any], changes: list[Change]
) -> None:
    base = items["utm_20240513"]
    name = "n" * SNS_MAX_BYTES  # the id alone (body and attribute) is over the limit
    huge = _change(ChangeKind.CREATED, {**base, "id": name, "_key": f"c1/{name}/{name}.json"})
    with pytest.raises(NotificationTooLarge, match=r"exceeds SNS's 262144 bytes even as a stub") as caught:
        SnsSink(topic.arn).apply(COLLECTION_DOC, [huge, changes[0]])
    assert caught.value.undelivered == []  # permanent: nothing for the outbox to resend
    got = topic.receive("raw", 1) + topic.receive("raw", 1, timeout=0.3)
    assert [json.loads(m["body"])["id"] for m in got] == ["utm_20240513"]


def test_sns_fifo_topic_groups_messages_per_item(s3_server: S3Server, changes: list[Change]) -> None:
    fifo = Topic(s3_server, fifo=True)
    SnsSink(fifo.arn).apply(COLLECTION_DOC, changes)
    got = fifo.receive("raw", 3)
    groups = {json.loads(m["body"])["id"]: m["sqs"].get("MessageGroupId") for m in got}
    assert groups == {
        "utm_20240513": "c1/utm_20240513",
        "dateline_20240601": "c1/dateline_20240601",
        "ranged": "c1/ranged",
    }


def test_sns_missing_topic_is_a_storage_error_naming_it(s3_server: S3Server, changes: list[Change]) -> None:
    arn = f"arn:aws:sns:{REGION}:123456789012:no-such-topic-{uuid.uuid4().hex[:6]}"
    with pytest.raises(SnsError, match=f"to {arn}: NotFound") as info:
        SnsSink(arn).apply(COLLECTION_DOC, changes)
    assert isinstance(info.value, OSError)  # retried like a storage error
    assert "c1" in str(info.value)


def test_sns_topic_that_is_not_an_arn_is_refused() -> None:
    with pytest.raises(InputError, match=r"'my-topic' is not a topic ARN: give it as arn:aws:sns:"):
        SnsSink("my-topic")


def test_notification_sinks_from_options(topic: Topic, changes: list[Change]) -> None:
    assert notification_sinks() == [] and notification_sinks(sns_topic="") == []
    seen: list[str] = []
    sinks = notification_sinks(
        sns_topic=topic.arn, on_change=CallbackSink(lambda c: seen.append(c.item_id), outbox_id="seen")
    )
    assert [type(s) for s in sinks] == [SnsSink, CallbackSink]
    for sink in sinks:
        sink.apply(COLLECTION_DOC, changes[:1])
    assert seen == ["utm_20240513"]
    assert [json.loads(m["body"])["id"] for m in topic.receive("raw", 1)] == ["utm_20240513"]
    with pytest.raises(InputError, match="not a topic ARN"):
        notification_sinks(sns_topic="stac-changes")


def test_sns_credentials_are_never_shown() -> None:
    secret = "wJalrXUtnFEMI-SECRET-VALUE"
    sink = SnsSink(
        "arn:aws:sns:eu-west-1:123456789012:t",
        session_kwargs={"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": secret},
    )
    assert secret not in repr(sink) and "AKIAEXAMPLE" not in repr(sink)
    with pytest.raises(InputError) as info:
        SnsSink("arn:aws:sns:eu-west-1:123456789012:t", session_kwargs={"aws_secret_key": secret})
    assert secret not in str(info.value)
    assert "aws_secret_key" in str(info.value)


# ---------------------------------------------------------------------------
# Prefect events, from a real flow run to the test server's events API
# ---------------------------------------------------------------------------


def _read_events(resource_prefix: str, expected: int, timeout: float = 45.0) -> list[Any]:
    """Events whose resource id starts with ``resource_prefix``, oldest first,
    once ``expected`` of them are stored (the server persists in the background)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventResourceFilter

    query = EventFilter(resource=EventResourceFilter(id_prefix=[resource_prefix]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = list(client.read_events(filter=query, limit=50).events)
            if len(events) >= expected or time.monotonic() > deadline:
                return sorted(events, key=lambda e: e.occurred)
            time.sleep(0.25)


def test_prefect_event_sink_is_none_outside_a_run() -> None:
    from producer.prefect import prefect_event_sink

    assert prefect_event_sink("s3://bucket/stac") is None


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_prefect_events_arrive_from_a_flow_run(changes: list[Change], items: dict[str, Any]) -> None:
    from prefect import flow

    from producer.prefect import prefect_event_sink
    from tests.prefect_harness import flow_run_id

    cid = f"c{uuid.uuid4().hex[:8]}"
    mine = [Change(c.kind, cid, c.item_id, c.key.replace("c1/", f"{cid}/", 1), c.item) for c in changes]
    unchanged = Change("unchanged", cid, "utm_20240513", mine[0].key, mine[0].item)  # type: ignore[arg-type]

    @flow(name="notify-changes")
    def notify() -> None:
        sink = prefect_event_sink("s3://bucket/stac")
        assert sink is not None
        sink.apply({"type": "Collection", "id": cid}, [mine[0], unchanged, *mine[1:]])

    state = notify(return_state=True)
    assert state.is_completed(), state
    run = flow_run_id(state)

    # the unchanged one (emitted before the last two, if it were) never shows
    events = _read_events(f"stac.item.{cid}.", 3)
    assert [(e.event, e.resource.id) for e in events] == [
        ("stac.item.created", f"stac.item.{cid}.utm_20240513"),
        ("stac.item.updated", f"stac.item.{cid}.dateline_20240601"),
        ("stac.item.removed", f"stac.item.{cid}.ranged"),
    ]
    for event, change in zip(events, mine):
        related = {r.id: r.role for r in event.related}
        assert related[f"stac.collection.{cid}"] == "collection"
        assert related[f"prefect.flow-run.{run}"] == "flow-run"  # Prefect relates it to the run
        assert event.resource["stac.collection"] == cid
        assert event.payload["href"] == f"s3://bucket/stac/{change.key}"
        assert event.payload["bbox"] == change.item["bbox"]
    assert events[0].payload["datetime"] == mine[0].item["properties"]["datetime"]
    assert events[2].payload["start_datetime"] == "2024-05-01T00:00:00Z"
    assert events[2].payload["end_datetime"] == "2024-05-31T23:59:59Z"


# ---------------------------------------------------------------------------
# deploy/template.yaml: the optional topic (cfn-lint runs in test_deploy)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    import yaml

    from tests.test_deploy import TEMPLATE, _CfnLoader

    doc = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    assert isinstance(doc, dict)
    return doc


_STACK = {"DataBucket": "data", "CatalogBucket": "cat", "CollectionId": "ndvi"}
_TOPIC = "arn:aws:sns:us-east-1:123456789012:stac-changes"


def _deployed(
    template: dict[str, Any], **params: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """(function environment, role statements, created resources) for ``params``."""
    from tests.test_deploy import _function, _policy, _resolve

    values = {**_STACK, **params}
    env = _resolve(template, _function(template)["Properties"]["Environment"]["Variables"], values)
    conditions = template["Conditions"]
    created = [
        name
        for name, res in template["Resources"].items()
        if "Condition" not in res or _resolve(template, conditions[res["Condition"]], values)
    ]
    return env, _policy(template, **values), created


def test_template_notifications_are_off_by_default(template: dict[str, Any]) -> None:
    from tests.test_deploy import _allowed

    env, policy, created = _deployed(template)
    assert "STAC_SNS_TOPIC" not in env
    assert not any(str(s["Action"]).startswith("sns:") for s in policy)
    assert not _allowed(policy, "sns:Publish", _TOPIC)
    assert "NotificationTopic" not in created


def test_template_existing_topic_gets_the_env_var_and_publish_on_it_only(template: dict[str, Any]) -> None:
    from tests.test_deploy import _allowed

    env, policy, created = _deployed(template, NotificationTopicArn=_TOPIC)
    assert env["STAC_SNS_TOPIC"] == _TOPIC
    assert _allowed(policy, "sns:Publish", _TOPIC)
    assert not _allowed(policy, "sns:Publish", _TOPIC + "-other")
    assert not _allowed(policy, "sns:Subscribe", _TOPIC)
    assert "NotificationTopic" not in created


def test_template_can_create_the_topic(template: dict[str, Any]) -> None:
    from tests.test_deploy import _allowed

    env, policy, created = _deployed(template, NotificationTopicArn="create")
    assert env["STAC_SNS_TOPIC"] == "<NotificationTopic>"  # the created topic's ARN
    assert _allowed(policy, "sns:Publish", "<NotificationTopic>")
    assert "NotificationTopic" in created
    assert template["Outputs"]["NotificationTopicArn"]["Condition"] == "CreateNotificationTopic"
    pattern = re.compile(template["Parameters"]["NotificationTopicArn"]["AllowedPattern"])
    for good in ("", "create", _TOPIC, _TOPIC + ".fifo"):
        assert pattern.fullmatch(good), good
    for bad in ("*", "arn:aws:sns:us-east-1:123456789012:*", "stac-changes"):
        assert not pattern.fullmatch(bad), bad
