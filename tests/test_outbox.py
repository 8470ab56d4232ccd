"""The sinks' outbox: a notification that failed after the commit is sent by
the next register, remove or reconcile of the collection (at least once, and
only what was missed), with the real parts: moto SNS -> SQS on 127.0.0.1,
the publish refused by tests/faultproxy.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from producer import api
from producer.catalog.layout import OUTBOX_DIR
from producer.changes import Change, ChangeKind
from producer.sinks.notify import CallbackSink, SnsSink
from producer.sinks.outbox import Outbox
from producer.store.local import LocalStore
from tests import rasters
from tests.crashes import write_tile
from tests.faultproxy import FaultProxy
from tests.s3server import S3Server
from tests.test_notify import REGION, Topic
from tests.trees import assert_stac_valid_tree

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "tiles"
    return [write_tile(folder, "a_20240110.tif", 6.0, 46.0), write_tile(folder, "b_20240215.tif", 7.0, 46.5)]


def _entries(catalog: Path, collection: str = "c") -> list[Path]:
    folder = catalog / collection / OUTBOX_DIR
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _ids(messages: list[dict]) -> list[tuple[str, str]]:
    return sorted((m["attrs"]["event"][1], json.loads(m["body"])["id"]) for m in messages)


def test_sns_publish_refused_after_the_commit_is_sent_once_by_the_rerun_of_the_same_register(
    s3_server: S3Server, tmp_path: Path, tiles: list[Path]
) -> None:
    topic = Topic(s3_server)
    catalog = tmp_path / "cat"
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.add("POST", "^/", "403")  # every SNS call refused (AccessDenied: not retried by botocore)

        def sns() -> SnsSink:
            return SnsSink(topic.arn, endpoint_url=proxy.endpoint_url, session_kwargs=CREDS)

        first = api.register(tiles, catalog=str(catalog), collection="c", sinks=[sns()])
        assert [r.action for r in first] == ["error", "error"]
        assert all(r.error_type == "storage" for r in first)
        message = first[0].error or ""
        assert "committed to the catalog" in message and "kept in the outbox of collection 'c'" in message
        assert "next register, remove or reconcile" in message
        assert "register again" not in message  # a rerun alone would not resend: the outbox does
        assert topic.receive("raw", 1, timeout=0.3) == []
        assert len(_entries(catalog)) == 1  # one entry: the batch, marked failed
        assert_stac_valid_tree(catalog)

        proxy.clear()  # SNS reachable again
        again = api.register(tiles, catalog=str(catalog), collection="c", sinks=[sns()])
        assert [r.action for r in again] == ["unchanged", "unchanged"]
        got = topic.receive("raw", 2) + topic.receive("raw", 1, timeout=0.3)
        assert _ids(got) == [("created", "a_20240110"), ("created", "b_20240215")]  # exactly the missed
        assert _entries(catalog) == []  # delivered, then deleted

        third = api.register(tiles, catalog=str(catalog), collection="c", sinks=[sns()])
        assert [r.action for r in third] == ["unchanged", "unchanged"]
        assert topic.receive("raw", 1, timeout=0.3) == []  # nothing twice
    assert_stac_valid_tree(catalog)


def test_callback_that_raised_is_called_again_by_the_next_remove_before_the_removal(
    tmp_path: Path, tiles: list[Path]
) -> None:
    catalog = tmp_path / "cat"
    seen: list[tuple[str, str]] = []
    failing = [True]

    def downstream(change: Change) -> None:
        if failing[0]:
            raise ConnectionError("downstream is down")
        seen.append((str(change.kind), change.item_id))

    tell = CallbackSink(downstream, outbox_id="downstream")  # a local function needs a named outbox
    first = api.register(tiles[:1], catalog=str(catalog), collection="c", on_change=tell)
    assert first[0].action == "error" and "kept in the outbox" in (first[0].error or "")
    assert len(_entries(catalog)) == 1

    failing[0] = False
    gone = api.remove("a_20240110", catalog=str(catalog), collection="c", on_change=tell)
    assert gone.action == "removed", gone.error
    assert seen == [("created", "a_20240110"), ("removed", "a_20240110")]  # commit order kept
    assert _entries(catalog) == []
    assert_stac_valid_tree(catalog)


def test_reconcile_fix_sends_what_the_outbox_holds(tmp_path: Path, tiles: list[Path]) -> None:
    catalog = tmp_path / "cat"
    seen: list[tuple[str, str]] = []
    failing = [True]

    def downstream(change: Change) -> None:
        if failing[0]:
            raise ConnectionError("downstream is down")
        seen.append((str(change.kind), change.item_id))

    tell = CallbackSink(downstream, outbox_id="downstream")  # a local function needs a named outbox
    api.register(tiles, catalog=str(catalog), collection="c", on_change=tell)
    failing[0] = False
    api.reconcile(str(catalog), fix=True, on_change=tell)
    assert sorted(seen) == [("created", "a_20240110"), ("created", "b_20240215")]
    assert _entries(catalog) == []
    api.reconcile(str(catalog), fix=True, on_change=tell)
    assert len(seen) == 2


def test_outbox_leaves_a_fresh_pending_entry_to_its_writer_and_takes_it_after_the_lease(
    tmp_path: Path,
) -> None:
    store = LocalStore(str(tmp_path / "cat"))
    item = {"type": "Feature", "id": "x", "collection": "c"}
    key = Outbox(store).record("c", "sns-t", [Change(ChangeKind.CREATED, "c", "x", "c/x/x.json", item)])
    assert Outbox(store).due("c", "sns-t") == []  # its writer may still be delivering it
    due = Outbox(store, lease=0).due("c", "sns-t")  # that writer died: taken
    assert [e.key for e in due] == [key] and due[0].changes[0].item == item
    Outbox(store).failed(key, due[0].changes)
    assert [e.key for e in Outbox(store).due("c", "sns-t")] == [key]  # failed: due at once


def test_two_closures_of_one_definition_never_share_an_outbox(tmp_path: Path, tiles: list[Path]) -> None:
    """Two callbacks made by one factory (same module and qualname), and any
    lambda, are refused without an outbox id before anything is written; with
    their own ids, the changes one missed are never sent to, nor deleted by,
    the other."""
    from producer.errors import InputError

    catalog = tmp_path / "cat"
    got: dict[str, list[str]] = {"a": [], "b": []}
    down = {"a": True, "b": False}

    def consumer(name: str) -> Callable[[Change], None]:
        def tell(change: Change) -> None:
            if down[name]:
                raise ConnectionError(f"{name} is down")
            got[name].append(change.item_id)

        return tell

    for anonymous in (consumer("a"), lambda change: None):
        with pytest.raises(InputError, match="outbox_id='my-consumer'"):
            api.register(tiles[:1], catalog=str(catalog), collection="c", on_change=anonymous)
    assert not catalog.exists()  # refused before any write

    to_a = CallbackSink(consumer("a"), outbox_id="consumer-a")
    to_b = CallbackSink(consumer("b"), outbox_id="consumer-b")
    first = api.register(tiles[:1], catalog=str(catalog), collection="c", on_change=to_a)
    assert first[0].action == "error" and len(_entries(catalog)) == 1  # kept for a
    api.register(tiles[1:], catalog=str(catalog), collection="c", on_change=to_b)
    assert got == {"a": [], "b": ["b_20240215"]}  # b never gets a's missed change
    assert len(_entries(catalog)) == 1  # ... nor deletes it
    down["a"] = False
    api.reconcile(str(catalog), fix=True, on_change=to_a)
    assert got["a"] == ["a_20240110"] and _entries(catalog) == []
    assert_stac_valid_tree(catalog)


def test_an_item_too_large_for_an_sns_message_is_sent_as_a_stub_and_never_blocks_the_outbox(
    s3_server: S3Server, tmp_path: Path, tiles: list[Path]
) -> None:
    """A 3400-band raster's item is ~280 KB, over SNS's 256 KiB: it was kept
    in the outbox for good and every later register of the collection failed
    and published everything again."""
    topic = Topic(s3_server)
    catalog = tmp_path / "cat"
    hyper = rasters._write(
        tmp_path / "tiles" / "hyper_20240101.tif",
        np.ones((3400, 4, 4), "uint8"),
        crs="EPSG:4326",
        transform=from_origin(5.0, 45.0, 0.01, 0.01),
    )

    def sns() -> SnsSink:
        return SnsSink(
            topic.arn, endpoint_url=s3_server.endpoint_url, session_kwargs=CREDS, catalog_url=str(catalog)
        )

    first = api.register([hyper, tiles[0]], catalog=str(catalog), collection="c", sinks=[sns()])
    assert [(r.action, r.error) for r in first] == [("created", None), ("created", None)]
    got = {m["attrs"]["id"][1]: m for m in topic.receive("raw", 2)}
    stub = json.loads(got["hyper_20240101"]["body"])
    assert {k: v for k, v in stub.items() if k != "href"} == {
        "stub": True,
        "event": "created",
        "collection": "c",
        "id": "hyper_20240101",
    }
    assert json.loads(Path(stub["href"]).read_text())["id"] == "hyper_20240101"  # fetchable
    assert json.loads(got["a_20240110"]["body"])["id"] == "a_20240110"
    assert _entries(catalog) == []

    second = api.register(tiles[1:], catalog=str(catalog), collection="c", sinks=[sns()])
    assert [(r.action, r.error) for r in second] == [("created", None)]
    assert _ids(topic.receive("raw", 1) + topic.receive("raw", 1, timeout=0.3)) == [("created", "b_20240215")]
    assert _entries(catalog) == []
    assert_stac_valid_tree(catalog)


def test_sns_messages_refused_in_a_call_are_all_the_outbox_keeps(
    s3_server: S3Server, tmp_path: Path, tiles: list[Path]
) -> None:
    """The outbox's old entry and a new batch go out in one call; when SNS
    refuses the call's second PublishBatch, the changes of the first (the
    old entry's among them) are delivered and not kept: the next run sends
    only the refused one."""
    topic = Topic(s3_server)
    catalog = tmp_path / "cat"
    more = [
        write_tile(tmp_path / "tiles", f"m{i}_202403{i + 1:02d}.tif", 8.0 + i * 0.3, 47.0) for i in range(10)
    ]
    with FaultProxy(s3_server.endpoint_url) as proxy:

        def sns() -> SnsSink:
            return SnsSink(topic.arn, endpoint_url=proxy.endpoint_url, session_kwargs=CREDS)

        proxy.add("POST", "^/", "403")
        first = api.register(tiles[:1], catalog=str(catalog), collection="c", sinks=[sns()])
        assert first[0].action == "error" and len(_entries(catalog)) == 1  # a kept

        proxy.clear()
        proxy.add("POST", "^/", "403", skip=1)  # 11 changes: the 10 of the first call go out
        second = api.register(more, catalog=str(catalog), collection="c", sinks=[sns()])
        assert all(r.error_type == "storage" and "kept in the outbox" in (r.error or "") for r in second)
        sent = topic.receive("raw", 10) + topic.receive("raw", 1, timeout=0.3)
        assert len(sent) == 10 and ("created", "a_20240110") in _ids(sent)
        assert len(_entries(catalog)) == 1

        proxy.clear()
        third = api.register(tiles[:1], catalog=str(catalog), collection="c", sinks=[sns()])
        assert [r.action for r in third] == ["unchanged"]
        resent = topic.receive("raw", 1) + topic.receive("raw", 1, timeout=0.3)
        everything = [("created", p.stem) for p in [tiles[0], *more]]
        assert sorted(_ids(sent) + _ids(resent)) == sorted(everything)  # each once
        assert len(resent) == 1 and _entries(catalog) == []
    assert_stac_valid_tree(catalog)


def test_a_callback_that_raised_midway_is_sent_again_from_the_change_it_raised_for(
    tmp_path: Path, tiles: list[Path]
) -> None:
    catalog = tmp_path / "cat"
    seen: list[str] = []
    refuse = {"b_20240215"}

    def downstream(change: Change) -> None:
        if change.item_id in refuse:
            raise ConnectionError("downstream is down")
        seen.append(change.item_id)

    tell = CallbackSink(downstream, outbox_id="downstream")
    first = api.register(tiles, catalog=str(catalog), collection="c", on_change=tell)
    assert all("kept in the outbox" in (r.error or "") for r in first)
    assert seen == ["a_20240110"]
    refuse.clear()
    api.remove("a_20240110", catalog=str(catalog), collection="c", on_change=tell)
    assert seen == ["a_20240110", "b_20240215", "a_20240110"]  # a's creation not sent twice
    assert _entries(catalog) == []
