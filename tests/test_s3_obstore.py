"""The obstore S3 client (``STAC_S3_CLIENT=obstore``): picked by the
environment, the same versions and errors as the default client, faults
through a proxy on 127.0.0.1, a whole register / remove / reconcile.

The store contract itself (get/put/CAS/list/delete, races between threads)
runs for this client in ``tests/test_store.py`` (backend ``s3-obstore``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import producer
from producer.errors import InputError, NotFound, PreconditionFailed, StoreError
from producer.store import S3Store, open_store
from producer.store.s3_obstore import CLIENT_ENV, ObstoreS3Store
from tests.faultproxy import FaultProxy
from tests.rasters import write_tile
from tests.s3server import S3Server

REPO = Path(__file__).resolve().parent.parent
SECRET = "obstore-secret-5f1d0c"


def _url(s3_server: S3Server, name: str) -> str:
    return s3_server.url(f"{name}-{uuid.uuid4().hex[:8]}")


def test_the_environment_picks_the_client(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _url(s3_server, "pick")
    monkeypatch.delenv(CLIENT_ENV, raising=False)
    assert type(open_store(url, s3_server.storage_options)) is S3Store
    monkeypatch.setenv(CLIENT_ENV, "s3fs")
    assert type(open_store(url, s3_server.storage_options)) is S3Store
    monkeypatch.setenv(CLIENT_ENV, "obstore")
    store = open_store(url, s3_server.storage_options)
    assert type(store) is ObstoreS3Store and store.concurrent_safe and store.url == url
    monkeypatch.setenv(CLIENT_ENV, "boto")
    with pytest.raises(InputError, match=f"{CLIENT_ENV}='boto' names no S3 client.*s3fs, obstore"):
        open_store(url, s3_server.storage_options)


def test_options_it_does_not_take_are_refused_before_any_request(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    options = {**s3_server.storage_options, "config_kwargs": {"retries": {"max_attempts": 1}}}
    with pytest.raises(InputError) as info:
        ObstoreS3Store(f"s3://{bucket}/stac", options)
    message = str(info.value)
    assert "config_kwargs" in message and f"unset {CLIENT_ENV}" in message
    with pytest.raises(InputError, match="client_kwargs.verify"):
        ObstoreS3Store(
            f"s3://{bucket}/stac", {**s3_server.storage_options, "client_kwargs": {"verify": False}}
        )
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_versions_are_the_default_clients_etags(s3_server: S3Server) -> None:
    url = _url(s3_server, "etag")
    fast, default = ObstoreS3Store(url, s3_server.storage_options), S3Store(url, s3_server.storage_options)
    v1 = fast.put("c/collection.json", b"1", create_only=True)
    assert default.get("c/collection.json") == (b"1", v1)
    v2 = default.put("c/collection.json", b"2", if_version=v1)  # a version of one is good for the other
    assert fast.get("c/collection.json") == (b"2", v2)
    for stale in (fast, default):
        with pytest.raises(PreconditionFailed):
            stale.put("c/collection.json", b"3", if_version=v1)
    v3 = fast.put("c/collection.json", b"3", if_version=v2)
    assert dict(fast.list_versions("c/")) == dict(default.list_versions("c/")) == {"c/collection.json": v3}
    # conditional delete (through the default client): a stale version deletes nothing
    with pytest.raises(PreconditionFailed):
        fast.delete("c/collection.json", if_version=v2)
    fast.delete("c/collection.json", if_version=v3)
    assert not default.exists("c/collection.json")
    with pytest.raises(NotFound):
        fast.delete("c/collection.json")


def test_the_two_clients_never_lose_an_update_to_each_other(s3_server: S3Server) -> None:
    url = _url(s3_server, "mixed")
    stores = [ObstoreS3Store(url, s3_server.storage_options), S3Store(url, s3_server.storage_options)] * 2
    stores[0].put("counter", b"0", create_only=True)
    times, start = 15, threading.Barrier(len(stores))
    conflicts: list[int] = []

    def work(store: S3Store) -> None:
        start.wait()
        seen = 0
        for _ in range(times):
            while True:
                data, version = store.get("counter")
                try:
                    store.put("counter", str(int(data) + 1).encode(), if_version=version)
                    break
                except PreconditionFailed:
                    seen += 1
        conflicts.append(seen)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert int(stores[1].get("counter")[0]) == len(stores) * times
    assert len(conflicts) == len(stores)


@pytest.fixture(scope="module")
def proxy(s3_server: S3Server):
    with FaultProxy(s3_server.endpoint_url) as fp:
        yield fp


@pytest.mark.parametrize(
    ("method", "fault", "words"),
    [
        ("PUT", "503", "SlowDown|503|Service"),
        ("HEAD", "503", "503|Service|failed for"),
        ("GET", "403", "access denied"),
        ("GET", "reset", "failed for"),
    ],
)
def test_faults_are_store_errors_in_bounded_time_without_the_secret(
    s3_server: S3Server, proxy: FaultProxy, method: str, fault: str, words: str
) -> None:
    proxy.clear()
    bucket = s3_server.new_bucket()
    good = ObstoreS3Store(f"s3://{bucket}/stac", s3_server.storage_options)
    good.put("c/collection.json", b"{}")
    options = {
        "key": "testing",
        "secret": SECRET,
        "client_kwargs": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
    }
    store = ObstoreS3Store(f"s3://{bucket}/stac", options)
    proxy.add(method, r"/c/collection\.json$", fault)
    started = time.monotonic()
    with pytest.raises(StoreError, match=words) as info:
        if method == "PUT":
            store.put("c/collection.json", b"[]")
        elif method == "HEAD":  # no body: no error code to read, only the status
            store.exists("c/collection.json")
        else:
            store.get("c/collection.json")
    proxy.clear()
    assert type(info.value) is StoreError  # not NotFound, not PreconditionFailed: retry later
    if fault == "503":  # the fix, as the default client says it
        assert str(info.value).endswith("; retry later"), info.value
    assert time.monotonic() - started < 30
    assert SECRET not in str(info.value) and SECRET not in repr(store)
    assert good.get("c/collection.json")[0] == b"{}"  # the failed put wrote nothing


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
def test_a_bad_signature_answer_puts_no_session_token_in_the_error_or_its_traceback(
    s3_server: S3Server, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """S3 answers SignatureDoesNotMatch (a wrong secret) echoing the request
    it signed, a session token's ``x-amz-security-token`` header included.
    obstore's error holds that body: the StoreError was chained to it, so a
    traceback (a Prefect task's failure log, a Lambda's) printed the token."""
    import traceback

    monkeypatch.setenv(CLIENT_ENV, client)
    proxy.clear()
    bucket = s3_server.new_bucket()
    token = "FwoGZXIvYXdzSESSIONTOKEN0001"
    options = {
        "key": "ASIAKEYID0001",
        "secret": SECRET,
        "token": token,
        "client_kwargs": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
    }
    open_store(f"s3://{bucket}/stac", s3_server.storage_options).put("catalog.json", b"{}")
    proxy.add("GET", r"/stac/catalog\.json$", "badsig")
    with pytest.raises(StoreError, match="access denied") as info:
        producer.validate_catalog(f"s3://{bucket}/stac", storage_options=options)
    proxy.clear()
    shown = "".join(traceback.format_exception(info.value))
    assert "SignatureDoesNotMatch" in shown
    assert token not in shown and SECRET not in shown, shown


def test_register_remove_reconcile_through_obstore(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLIENT_ENV, "obstore")
    catalog = _url(s3_server, "e2e")
    tiles = [write_tile(tmp_path, f"t{i}_2024010{i + 1}.tif", 10 + i, 50) for i in range(3)]
    results = producer.register(
        [str(t) for t in tiles], catalog=catalog, collection="c", storage_options=s3_server.storage_options
    )
    assert [r.action for r in results] == ["created"] * 3, [r.error for r in results]
    (again,) = producer.register(
        [str(tiles[0])], catalog=catalog, collection="c", storage_options=s3_server.storage_options
    )
    assert again.action == "unchanged"
    removed = producer.remove(
        results[1].id, catalog=catalog, collection="c", storage_options=s3_server.storage_options
    )
    assert removed.action == "removed"
    report = producer.reconcile(catalog, storage_options=s3_server.storage_options)
    assert not report.problems, report.problems
    assert not [
        p for p in producer.validate_catalog(catalog, storage_options=s3_server.storage_options) if p.is_error
    ]
    default = S3Store(catalog, s3_server.storage_options)
    collection = json.loads(default.get("c/collection.json")[0])
    linked = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
    assert linked == sorted(f"./{r.id}/{r.id}.json" for r in (results[0], results[2]))
    found = producer.search(catalog, storage_options=s3_server.storage_options)["features"]
    assert {f["id"] for f in found} == {
        results[0].id,
        results[2].id,
    }


def test_a_register_through_obstore_never_loads_the_default_client(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """The point of the client: the catalog's requests cost no s3fs /
    aiobotocore (~3 ms of CPU per request, and their imports). A local
    product into an S3 catalog, in a fresh process. (botocore itself is
    imported by rasterio, which imports boto3 when it is installed.)"""
    tile = write_tile(tmp_path, "t_20240101.tif", 10, 50)
    script = (
        "import sys, producer\n"
        f"(r,) = producer.register([{str(tile)!r}], catalog={_url(s3_server, 'lean')!r}, collection='c')\n"
        "assert r.action == 'created', r.error\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('s3fs', 'aiobotocore', 'aiohttp')))\n"
    )
    env = {**__import__("os").environ, CLIENT_ENV: "obstore", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_no_credentials_anywhere_is_an_input_error_before_any_request(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default client says "no AWS credentials found" (an input error,
    not retried); object_store would go on to the instance metadata service
    although ``AWS_EC2_METADATA_DISABLED=true`` (the server fixture sets it):
    refused up front the same way, naming the catalog and the fix."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    assert __import__("os").environ.get("AWS_EC2_METADATA_DISABLED") == "true"
    url = _url(s3_server, "nocreds")
    with pytest.raises(InputError, match="no AWS credentials found") as info:
        ObstoreS3Store(url, {"client_kwargs": {"endpoint_url": s3_server.endpoint_url}})
    assert url in str(info.value) and info.value.hints
    # anonymous access needs none
    ObstoreS3Store(url, {"anon": True, "client_kwargs": {"endpoint_url": s3_server.endpoint_url}})


def test_a_credential_chain_ending_at_the_instance_metadata_is_the_no_credentials_error(
    s3_server: S3Server,
) -> None:
    """What obstore raises when its chain reached the instance metadata
    service and got no answer (the text of a real failure, the request not
    repeated here: tests stay on 127.0.0.1) -> the same input error."""
    store = ObstoreS3Store(_url(s3_server, "imds"), s3_server.storage_options)
    seen = RuntimeError(
        "Generic S3 error: Error performing PUT http://169.254.169.254/latest/api/token in 1.1ms - "
        "Server returned non-2xx status code: 403 Forbidden\n\nDebug source:\nGeneric { ... }"
    )
    err = store._translate_ob(seen, "get_object", "catalog.json")
    assert (
        isinstance(err, InputError)
        and "no AWS credentials found" in str(err)
        and "Debug source" not in str(err)
    )


def test_a_key_that_is_no_clean_path_does_not_stop_a_listing(s3_server: S3Server) -> None:
    """object_store refuses a whole listing page over one key such as
    ``c//notes.txt`` (another tool's upload); such a listing goes through the
    default client, which skips that key, so reconcile and the commit's
    listings see the same keys through both clients."""
    url = _url(s3_server, "stray")
    fast, default = ObstoreS3Store(url, s3_server.storage_options), S3Store(url, s3_server.storage_options)
    fast.put("c/collection.json", b"{}")
    fast.put("c/i/i.json", b"{}")
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=f"{fast.prefix}/c//notes.txt", Body=b"x")
    assert sorted(fast.list()) == sorted(default.list()) == ["c/collection.json", "c/i/i.json"]
    assert sorted(fast.list("c/")) == sorted(default.list("c/"))
    assert dict(fast.list_versions("c/")) == dict(default.list_versions("c/"))


def _child_reads(url: str, options: dict, out: Any) -> None:
    try:
        out.put(ObstoreS3Store(url, options).get("k")[0])
    except BaseException as exc:  # report, do not hang the parent
        out.put(repr(exc))


def test_a_process_forked_after_using_obstore_reads_through_the_default_client(s3_server: S3Server) -> None:
    """obstore's runtime does not survive a fork: a child's request never
    returned. A fork of a process that used it goes through the default client."""
    import multiprocessing

    url = _url(s3_server, "fork")
    ObstoreS3Store(url, s3_server.storage_options).put("k", b"hello")
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(url, s3_server.storage_options, out))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child's request never returned")
    assert child.exitcode == 0 and out.get(timeout=5) == b"hello"


def test_keys_in_the_environment_win_over_a_profile_it_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """As botocore: ``AWS_ACCESS_KEY_ID`` before ``AWS_PROFILE`` (the two
    clients, and the conditional-delete fallback, must be one principal);
    a profile given as a storage option wins."""
    from producer.store.s3_obstore import _config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    monkeypatch.setenv("AWS_PROFILE", "elsewhere")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    config, provider = _config({}, "s3://b/stac")
    assert provider is None and "access_key_id" not in config  # object_store reads the environment's keys


def test_throttling_is_ridden_out_like_the_default_client(s3_server: S3Server, proxy: FaultProxy) -> None:
    """Four 503 SlowDown answers in a row: the default client rides them out;
    obstore's retries (3 from 100 ms) gave up after ~0.5 s."""
    proxy.clear()
    options = {
        **s3_server.storage_options,
        "client_kwargs": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
    }
    store = ObstoreS3Store(_url(s3_server, "slow"), options)
    proxy.add("PUT", r"/c/collection\.json$", "503", limit=4)
    try:
        store.put("c/collection.json", b"{}")
    finally:
        proxy.clear()
    assert store.get("c/collection.json")[0] == b"{}"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"endpoint_url": "localhost:9000"}, "endpoint_url 'localhost:9000' is no endpoint URL"),
        ({"client_kwargs": {"region_name": "eu-west-1\n"}}, "is no AWS region"),
    ],
)
def test_values_obstore_would_panic_on_are_input_errors(
    s3_server: S3Server, options: dict, words: str
) -> None:
    """A Rust panic is no ``Exception``: it went past every handler."""
    with pytest.raises(InputError, match=words):
        ObstoreS3Store(_url(s3_server, "panic"), {"key": "testing", "secret": "testing", **options})


def test_the_s3_endpoint_variable_is_followed_as_the_default_client_follows_it(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore reads an S3 endpoint from ``AWS_ENDPOINT_URL_S3`` before
    ``AWS_ENDPOINT_URL`` (MinIO & co. set the first); obstore's plain-http
    switch looked at the second only, so an http endpoint set as the first
    failed every request ("builder error") where the default client worked,
    and with both set the one object_store took was not botocore's."""
    url = _url(s3_server, "endpoint-s3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    for elsewhere in (None, "http://127.0.0.1:9"):  # nothing listens on port 9
        if elsewhere is None:
            monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        else:
            monkeypatch.setenv("AWS_ENDPOINT_URL", elsewhere)
        for store in (S3Store(url), ObstoreS3Store(url)):
            version = store.put(f"k-{elsewhere is None}-{type(store).__name__}.json", b"{}")
            assert store.get(f"k-{elsewhere is None}-{type(store).__name__}.json") == (b"{}", version)


def test_options_meant_for_the_products_are_refused_naming_the_products_own_options(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore retries for the products (the README's advice for a Lambda)
    given as the shared storage options: the obstore client refused them
    saying "drop them, or unset STAC_S3_CLIENT", as if the products could
    not have them; they can, as the products' own options, and the
    refusal says so."""
    monkeypatch.setenv(CLIENT_ENV, "obstore")
    tile = write_tile(tmp_path, "t_20240101.tif", 10, 50)
    retries = {"config_kwargs": {"retries": {"max_attempts": 3}}}
    with pytest.raises(InputError, match="products' own storage options"):
        producer.register(
            [str(tile)], catalog=_url(s3_server, "retries"), collection="c",
            storage_options={**s3_server.storage_options, **retries},
        )  # fmt: skip
    (result,) = producer.register(
        [str(tile)], catalog=_url(s3_server, "retries"), collection="c",
        catalog_storage_options=s3_server.storage_options,
        data_storage_options={**s3_server.storage_options, **retries},
    )  # fmt: skip
    assert result.action == "created", result
