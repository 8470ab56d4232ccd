"""One S3 client per process and set of options, not one per register.

The event handler and the Prefect task call ``register(one, catalog="s3://...",
storage_options=...)`` once per product; building an s3fs file system with its
aiobotocore session and client costs ~0.2 s of CPU, more than the commit
itself. Client constructions are counted through aiobotocore's own
``AioSession.create_client`` (the real one runs; the wrapper only counts).
"""

from __future__ import annotations

import json
import os

import pytest
from aiobotocore.session import AioSession

import producer
from producer.store import open_store
from producer.store import s3 as s3_module
from tests import rasters


@pytest.fixture
def client_count(monkeypatch):
    """How many aiobotocore S3 clients were built since the fixture started."""
    built = [0]
    original = AioSession.create_client

    def counting(self, *args, **kwargs):
        built[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AioSession, "create_client", counting)
    return built


def _cogs(tmp_path, n):
    return [str(p) for p in rasters.dated_cogs(tmp_path, n)]


def test_registers_one_by_one_with_storage_options_build_one_client(s3_server, tmp_path, client_count):
    bucket = s3_server.new_bucket()
    catalog = f"s3://{bucket}/stac"
    # options of their own (a fresh dict each call, as an event handler builds
    # them): equal options must still share the client
    options = json.loads(json.dumps({**s3_server.storage_options, "config_kwargs": {"read_timeout": 61}}))
    paths = _cogs(tmp_path, 4)
    for path in paths:
        (res,) = producer.register(
            [path], catalog=catalog, collection="c", storage_options=json.loads(json.dumps(options))
        )
        assert res.action == "created", res.error
    assert client_count[0] <= 1  # none when an earlier test of this process built it
    assert producer.validate_catalog(catalog, storage_options=options) == []


def test_changed_credentials_endpoint_or_environment_give_a_new_client(s3_server, monkeypatch):
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/stac"
    options = s3_server.storage_options
    fs = open_store(url, options).fs
    assert open_store(f"s3://{bucket}/other", dict(options)).fs is fs  # same client, any prefix
    other_key = {**options, "key": "someone-else", "secret": "another-secret-value"}
    assert open_store(url, other_key).fs is not fs
    assert open_store(url, {**options, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}).fs is not fs
    monkeypatch.setenv("AWS_SESSION_TOKEN", "rotated")
    rotated = open_store(url, options).fs
    assert rotated is not fs
    monkeypatch.undo()  # the environment as it was
    assert open_store(url, options).fs is fs
    # asking for a private file system (fsspec's own switch) is honoured
    assert open_store(url, {**options, "skip_instance_cache": True}).fs is not fs
    # the shared table keeps digests only: no secret in a printable form
    assert "another-secret-value" not in repr(s3_module._shared.keys())


def test_changed_credentials_file_gives_a_new_client(s3_server, tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    url = f"s3://{s3_server.new_bucket()}/stac"
    fs = open_store(url, s3_server.storage_options).fs
    assert open_store(url, s3_server.storage_options).fs is fs
    creds.write_text("[default]\naws_access_key_id = rotated\naws_secret_access_key = rotated\n")
    stat = creds.stat()
    os.utime(creds, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert open_store(url, s3_server.storage_options).fs is not fs


def test_the_shared_table_is_bounded(s3_server):
    url = f"s3://{s3_server.new_bucket()}/stac"
    for i in range(s3_module.SHARED_FILESYSTEMS + 3):
        open_store(url, {**s3_server.storage_options, "config_kwargs": {"read_timeout": 100 + i}})
    assert len(s3_module._shared) <= s3_module.SHARED_FILESYSTEMS


def _child_opens(url, options, parent_fs, conn):
    store = open_store(url, options)
    store.put("from-child.json", b"{}")
    conn.send((store.fs is parent_fs, store.get("from-child.json")[0]))
    conn.close()


def test_a_forked_child_builds_its_own_client(s3_server):
    import multiprocessing

    url = f"s3://{s3_server.new_bucket()}/stac"
    store = open_store(url, s3_server.storage_options)
    store.put("from-parent.json", b"{}")  # the parent's client is connected
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_child_opens, args=(url, s3_server.storage_options, store.fs, child_end))
    child.start()
    try:
        # a child given the parent's client hangs on the parent's event loop
        assert parent_end.poll(60), "the child did not answer"
        shared, data = parent_end.recv()
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
    assert (shared, data, child.exitcode) == (False, b"{}", 0)
    assert open_store(url, s3_server.storage_options).fs is store.fs


def test_registers_one_by_one_with_an_sns_topic_build_one_sns_client(s3_server, tmp_path, monkeypatch):
    import boto3

    from tests.test_notify import Topic

    topic = Topic(s3_server)
    built = [0]
    original = boto3.session.Session.client

    def counting(self, service_name, *args, **kwargs):
        built[0] += service_name == "sns"
        return original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting)
    paths = _cogs(tmp_path, 3)
    for path in paths:
        (res,) = producer.register([path], catalog=str(tmp_path / "cat"), collection="c", sns_topic=topic.arn)
        assert res.action == "created", res.error
    assert built[0] <= 1  # none when an earlier test of this process built it
    before = built[0]
    got = topic.receive("raw", 3) + topic.receive("raw", 1, timeout=0.3)
    assert len(got) == 3
    # another session option (another account's profile, say) is another client
    from producer.sinks.notify import SnsSink

    SnsSink(topic.arn, session_kwargs={"aws_access_key_id": "other", "aws_secret_access_key": "other"})
    assert built[0] == before + 1


def _signing_key(store) -> str:
    from fsspec.asyn import sync

    client = sync(store.fs.loop, store.fs.set_session)
    return client._request_signer._credentials.access_key


def test_a_store_opened_after_the_environments_credentials_changed_signs_with_the_new_ones(
    s3_server, monkeypatch
):
    # credentials from the environment (no key in the options): the file
    # system is new when they change, and so must be what it signs with
    options = {k: v for k, v in s3_server.storage_options.items() if k not in ("key", "secret", "token")}
    url = f"s3://{s3_server.new_bucket()}/stac"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA_BEFORE_ROTATION")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "before")
    before = open_store(url, options)
    assert _signing_key(before) == "AKIA_BEFORE_ROTATION"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA_AFTER_ROTATION")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "after")
    after = open_store(url, options)
    assert _signing_key(after) == "AKIA_AFTER_ROTATION"
    after.put("rotated.json", b"{}")  # and it works against the server
