"""Storage faults while reading products, and products cut short or broken.

Faults are injected by a real HTTP proxy on 127.0.0.1 (tests/faultproxy.py)
in front of the moto server: only the product GETs fail, HEAD and LIST go
through, as with an SSE-KMS object the reader may list but not decrypt, or
S3 throttling. The CLI runs in a subprocess so that a process abort (the
old failure: SIGABRT, exit 134) shows up as an exit code, not a dead suite.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError, StoreError
from tests import rasters
from tests.faultproxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def proxy(s3_server):
    with FaultProxy(s3_server.endpoint_url) as fp:
        yield fp


@pytest.fixture
def faults(proxy):
    proxy.clear()
    yield proxy
    proxy.clear()


def _proxied_options(proxy: FaultProxy, **config) -> dict:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, **config},
    }


def _upload(s3_server, bucket: str, path: Path, key: str) -> str:
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return f"s3://{bucket}/{key}"


def _two_products(s3_server, tmp_path) -> tuple[str, str, str]:
    bucket = s3_server.new_bucket()
    bad = _upload(s3_server, bucket, rasters.write_utm(tmp_path), "data/utm_20240513.tif")
    good = _upload(s3_server, bucket, rasters.write_wgs84(tmp_path), "data/wgs84_20240301.tif")
    return bucket, bad, good


def _cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard")
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _json_lines(stdout: str) -> dict[str, dict]:
    return {d["id"]: d for d in (json.loads(l) for l in stdout.splitlines() if l.startswith("{"))}


def _write_large(path: Path, side: int = 1024) -> Path:
    """An uncompressed tiled GeoTIFF of side x side x 4 bytes (4 MiB at 1024)."""
    rows, cols = np.indices((side, side))
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=side,
        height=side,
        count=1,
        dtype="float32",
        crs="EPSG:32633",
        tiled=True,
        blockxsize=256,
        blockysize=256,
        transform=Affine(10, 0, 500_000, 0, -10, 5_000_000),
    ) as dst:
        dst.write(((rows + cols) % 97).astype("float32")[None])
    return path


# --- point 2: a product GET that fails never kills the process ------------------------


@pytest.mark.parametrize("fault", ["503", "403", "reset"])
def test_product_get_fault_is_a_storage_error_others_registered_cli_exits_1(
    fault, faults, s3_server, tmp_path
):
    bucket, bad, good = _two_products(s3_server, tmp_path)
    faults.add("GET", r"/data/utm_20240513\.tif$", fault)
    catalog = tmp_path / "catalog"
    res = _cli(
        [
            "register",
            f"s3://{bucket}/data/",
            "--json",
            "-c",
            str(catalog),
            "--collection",
            "c",
            "-o",
            f"endpoint_url={faults.endpoint_url}",
        ]
    )
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])  # not 134 / -6 (SIGABRT)
    out = _json_lines(res.stdout)
    assert out["utm_20240513"]["action"] == "error"
    assert out["utm_20240513"]["error_type"] == "storage"
    assert bad in out["utm_20240513"]["error"] and "retry" in out["utm_20240513"]["error"]
    assert "corrupt" not in out["utm_20240513"]["error"]
    assert out["wgs84_20240301"]["action"] == "created"
    assert "Traceback" not in res.stderr
    assert not (catalog / "c" / "utm_20240513").exists()
    assert producer.validate_catalog(str(catalog)) == []


def test_product_get_fault_in_the_middle_of_a_read_is_a_storage_error(faults, s3_server, tmp_path):
    """The first ranged GET works, a later one (pixels for --stats) fails:
    the failure is caught inside the opener, not only by the probe."""
    bucket = s3_server.new_bucket()
    url = _upload(s3_server, bucket, _write_large(tmp_path / "large_20240101.tif"), "data/large_20240101.tif")
    rule = faults.add("GET", r"/data/large_20240101\.tif$", "503", skip=1)
    res = _cli(
        [
            "register",
            url,
            "--stats",
            "--json",
            "-c",
            str(tmp_path / "catalog"),
            "--collection",
            "c",
            "-o",
            f"endpoint_url={faults.endpoint_url}",
        ]
    )
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    assert rule.hits >= 1
    (out,) = _json_lines(res.stdout).values()
    assert out["error_type"] == "storage" and "retry" in out["error"], out


def test_stalled_product_get_is_a_storage_error_not_a_hang(faults, s3_server, tmp_path):
    """Ended by the read timeout, after botocore's attempts only. Was: s3fs
    tried each range 5 times, each of them 5 times, each of those botocore's
    attempts: 125 read timeouts (31 minutes at s3fs's default 15 s)."""
    bucket, bad, good = _two_products(s3_server, tmp_path)
    faults.add("GET", r"/data/utm_20240513\.tif$", "stall")
    options = _proxied_options(faults, read_timeout=0.3, connect_timeout=1)
    options["config_kwargs"].pop("retries")  # botocore's own (5 attempts in legacy mode)
    started = time.monotonic()
    results = producer.register(
        [bad, good], catalog=str(tmp_path / "catalog"), collection="c", storage_options=options
    )
    assert time.monotonic() - started < 30  # 5 read timeouts and botocore's backoff (< 15 s)
    assert [(r.id, r.action, r.error_type) for r in results] == [
        ("utm_20240513", "error", "storage"),
        ("wgs84_20240301", "created", None),
    ]


def test_a_product_body_that_stalls_is_a_storage_error_naming_the_read_timeout(faults, s3_server, tmp_path):
    """Headers sent, then the body stops: the product fails after the read
    timeout with a storage error naming it and the storage option that waits
    longer; the process is not aborted, the others are registered. Was:
    "storage failed while reading the product (IndexError: tuple index out
    of range)" (s3fs's handler of the timeout failing on its empty message)."""
    bucket, bad, good = _two_products(s3_server, tmp_path)
    faults.add("GET", r"/data/utm_20240513\.tif$", "slowbody")
    options = _proxied_options(faults, read_timeout=1, connect_timeout=1)
    started = time.monotonic()
    results = producer.register(
        [bad, good], catalog=str(tmp_path / "catalog"), collection="c", storage_options=options
    )
    assert time.monotonic() - started < 60
    assert [(r.id, r.action, r.error_type) for r in results] == [
        ("utm_20240513", "error", "storage"),
        ("wgs84_20240301", "created", None),
    ]
    error = results[0].error or ""
    assert bad in error and "read_timeout" in error and "IndexError" not in error, error


def test_the_cli_spells_the_longer_timeout_as_its_own_storage_option_flag(faults, s3_server, tmp_path):
    """Through the CLI, a product whose body stalls ends with the fix spelled
    as the flag the CLI takes (``-o 'config_kwargs={"read_timeout": 60}'``),
    pasteable as it is. Was: "the storage option config_kwargs={...: SECONDS}",
    the library's spelling, in the CLI's output."""
    bucket, bad, _ = _two_products(s3_server, tmp_path)
    faults.add("GET", r"/data/utm_20240513\.tif$", "slowbody")
    proxied = _proxied_options(faults, read_timeout=1, connect_timeout=1)
    pairs = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in proxied.items()]
    res = _cli(
        ["register", bad, "-c", str(tmp_path / "catalog"), "--collection", "c"]
        + [arg for pair in pairs for arg in ("-o", pair)]
    )
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert """-o 'config_kwargs={"read_timeout": 60}'""" in out, out
    assert "storage_options=" not in out and "SECONDS" not in out and "testing" not in out, out


def test_missing_object_or_bucket_is_not_found_not_corrupt(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    results = producer.register(
        [f"s3://{bucket}/data/missing_20240101.tif", "s3://no-such-bucket-8a1f/data/x_20240101.tif"],
        catalog=str(tmp_path / "catalog"),
        collection="c",
        storage_options=s3_server.storage_options,
    )
    for r in results:
        assert r.action == "error" and "not found" in r.error, r.error
        assert "corrupt" not in r.error and "truncated" not in r.error
    assert not (tmp_path / "catalog").exists()


def test_header_only_extraction_reads_a_bounded_range_of_a_large_product(faults, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    path = _write_large(tmp_path / "large_20240101.tif")
    url = _upload(s3_server, bucket, path, "data/large_20240101.tif")
    (res,) = producer.register(
        [url], catalog=str(tmp_path / "catalog"), collection="c", storage_options=_proxied_options(faults)
    )
    assert res.action == "created", res.error
    fetched = 0
    for key, header in faults.get_ranges:
        if key.endswith("/data/large_20240101.tif"):
            assert header and header.startswith("bytes="), header
            start, end = (int(v) for v in header[len("bytes=") :].split("-"))
            fetched += end - start + 1
    size = path.stat().st_size
    assert size > 4_000_000
    assert 0 < fetched <= 2 * 256 * 1024, (fetched, size)  # headers, not the 4 MiB of pixels


# --- point 2: listing ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_while_listing_is_a_storage_error_cli_exit_1(tmp_path):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 0.5},
    }
    with pytest.raises(StoreError, match="cannot list products"):
        producer.register(
            ["s3://bucket/data/"], catalog=str(tmp_path / "catalog"), collection="c", storage_options=options
        )
    res = _cli(
        [
            "register",
            "s3://bucket/data/",
            "-c",
            str(tmp_path / "catalog"),
            "--collection",
            "c",
            "-o",
            f"endpoint_url={endpoint}",
        ]
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "cannot list products" in res.stderr
    assert not (tmp_path / "catalog").exists()


# --- point 13: products cut short or broken -----------------------------------------------


def test_truncated_netcdf_half_the_file_is_refused_cli_exit_1(tmp_path):
    whole = rasters.write_netcdf(tmp_path / "src").read_bytes()
    half = tmp_path / "half_20240115.nc"
    half.write_bytes(whole[: len(whole) // 2])
    catalog = tmp_path / "catalog"
    res = CliRunner().invoke(main, ["register", str(half), "-c", str(catalog), "--collection", "c"])
    assert res.exit_code == 1, res.stdout
    assert "truncated" in res.stdout and "half_20240115.nc" in res.stdout
    assert not catalog.exists()
    # the whole file still registers
    (ok,) = producer.register([str(rasters.write_netcdf(tmp_path))], catalog=str(catalog), collection="c")
    assert ok.action == "created", ok.error


def test_zero_pixel_size_says_zero_pixel_size_not_gcps(tmp_path):
    path = tmp_path / "zeropx_20240101.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=Affine(0, 0, 500_000, 0, -10, 5_000_000),
    ) as dst:
        dst.write(np.zeros((1, 8, 8), "uint8"))
    (res,) = producer.register([str(path)], catalog=str(tmp_path / "catalog"), collection="c")
    assert res.action == "error" and res.error_type == "input"
    assert "zero (or missing) pixel size" in res.error and str(path) in res.error
    assert "ground control points" not in res.error
    assert not (tmp_path / "catalog").exists()


def test_symlink_loop_says_symlink_loop_not_file_not_found(tmp_path):
    loop = tmp_path / "loop_20240101.tif"
    other = tmp_path / "other_20240101.tif"
    loop.symlink_to(other)
    other.symlink_to(loop)
    dangling = tmp_path / "dangling_20240101.tif"
    dangling.symlink_to(tmp_path / "gone.tif")
    results = producer.register([str(loop), str(dangling)], catalog=str(tmp_path / "catalog"), collection="c")
    assert "symlink loop" in results[0].error, results[0].error
    assert "broken symlink" in results[1].error and "gone.tif" in results[1].error
    assert not (tmp_path / "catalog").exists()


def test_unusable_storage_options_are_an_input_error_not_a_retried_storage_error(s3_server, tmp_path):
    """Options the S3 client cannot be built with fail the same way every
    time: an input error that says so, never a storage error the Prefect
    task retries. A ``client_kwargs`` key botocore does not take is refused
    before any product is read (it was a per-product `input` result, each
    product failing alike), naming the key meant."""
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="data/x_20240101.tif", Body=b"II*\x00")
    opts = {**s3_server.storage_options, "client_kwargs": {"verify": False, "region": "x"}}
    with pytest.raises(InputError, match="client_kwargs has no key 'region' \\(did you mean 'region_name'"):
        producer.register(
            [f"s3://{bucket}/data/x_20240101.tif"],
            catalog=str(tmp_path / "c"),
            collection="c",
            storage_options=opts,
        )
    assert not (tmp_path / "c").exists()
    # a key botocore's config does not take is refused before any product
    opts = {**s3_server.storage_options, "config_kwargs": {"no_such_botocore_option": 1}}
    with pytest.raises(InputError, match="config_kwargs has no key 'no_such_botocore_option'"):
        producer.register(
            [f"s3://{bucket}/data/x_20240101.tif"],
            catalog=str(tmp_path / "c"),
            collection="c",
            storage_options=opts,
        )
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
@pytest.mark.parametrize(
    "verb, method, pattern, fault",
    [
        ("register", "GET", r"/c/collection\.json$", "slowbody"),
        ("remove", "PUT", r"/c/collection\.json$", "stall"),
    ],
    ids=["register-body-stalls", "remove-put-stalls"],
)
def test_a_stalled_catalog_request_gives_up_in_bounded_time_naming_the_object_and_the_timeout(
    faults, s3_server, tmp_path, monkeypatch, client, verb, method, pattern, fault
):
    """A catalog request whose answer stalls (headers sent, the body never
    finishes; or no answer at all) ends after the read timeout, with both
    clients: a storage error naming the object and the storage option that
    waits longer; the catalog stays valid and a rerun finishes. Before: the
    default client made 25 attempts (5 of botocore's in each of 5 of s3fs's),
    so a stall held the verb 25 read timeouts (over 6 minutes by default),
    and said "failed for ...: ; check the endpoint and network"; obstore said
    "HTTP error: request or response body error" and took no timeout option."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)  # the clients' own retries
    catalog = s3_server.url(f"stall-{client}-{verb}")
    good = s3_server.storage_options
    (tile,) = producer.register(
        [rasters.write_utm(tmp_path)], catalog=catalog, collection="c", storage_options=good
    )
    assert tile.ok, tile.error
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": faults.endpoint_url, "region_name": "us-east-1"},
        "config_kwargs": {"read_timeout": 1, "connect_timeout": 1},
    }
    product = rasters.write_wgs84(tmp_path)
    faults.add(method, pattern, fault)
    started = time.monotonic()
    if verb == "register":
        (res,) = producer.register([product], catalog=catalog, collection="c", storage_options=options)
        assert res.error_type == "storage", res
        message = res.error
    else:
        with pytest.raises(StoreError) as info:
            producer.remove(tile.id, catalog=catalog, collection="c", storage_options=options)
        message = str(info.value)
    elapsed = time.monotonic() - started
    faults.clear()
    # obstore retries within its 30 s deadline, then the last try's timeout;
    # the default client's 5 botocore attempts take 5 read timeouts
    assert elapsed < 45, elapsed
    assert "c/collection.json" in message and "read_timeout" in message, message
    assert "testing" not in message.replace(catalog, "")
    # valid (an interrupted removal is a warning, finished by the rerun)
    assert [p for p in producer.validate_catalog(catalog, storage_options=good) if p.is_error] == []
    if verb == "register":
        (again,) = producer.register([product], catalog=catalog, collection="c", storage_options=good)
        assert again.action == "created", again.error
    else:
        assert producer.remove(tile.id, catalog=catalog, collection="c", storage_options=good).action in (
            "removed",
            "absent",
        )
        assert producer.validate_catalog(catalog, storage_options=good) == []


@pytest.mark.parametrize(
    "method, pattern",
    [("DELETE", r"/stac/c/gone_20240301/gone_20240301\.json$"), ("PUT", r"/stac/c/collection\.json$")],
    ids=["item-delete", "collection-put"],
)
def test_a_removal_event_whose_catalog_write_fails_names_the_object_and_logs_no_traceback(
    method, pattern, faults, s3_server, tmp_path, caplog
):
    """An S3 delete event whose removal hits a 503 on a catalog write: the
    failure is a storage error like any other. Before, the handler logged it
    with a full traceback (``log.exception``, as for a bug; the CLI printed
    it on stderr) and its error text was only ``StoreError: ...`` naming the
    catalog document, so the Lambda's error for a direct invocation did not
    say which object's removal failed. The object is named, no traceback is
    logged, and the rerun once storage is back removes the item."""
    import logging

    from producer.events import HandlerConfig, handle
    from tests.test_events import _s3_notification

    bucket = s3_server.new_bucket()
    gone = _upload(s3_server, bucket, rasters.write_wgs84(tmp_path), "data/gone_20240301.tif")
    opts = {**_proxied_options(faults), "config_kwargs": {"retries": {"max_attempts": 1}}}
    catalog = f"s3://{bucket}/stac"
    (first,) = producer.register([gone], catalog=catalog, collection="c", storage_options=opts)
    assert first.ok, first.error
    s3_server.client().delete_object(Bucket=bucket, Key="data/gone_20240301.tif")
    payload = _s3_notification("data/gone_20240301.tif", "ObjectRemoved:Delete")
    payload["Records"][0]["s3"]["bucket"]["name"] = bucket
    config = HandlerConfig(catalog=catalog, collection="c", storage_options=opts)

    faults.add(method, pattern, "503")
    with caplog.at_level(logging.WARNING, logger="producer"):
        out = handle(payload, config)
    faults.clear()
    (failure,) = out["failed"]
    assert failure["url"] == gone and failure["error"].startswith(f"{gone}: "), failure
    assert "retry" in failure["error"], failure
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    assert [r for r in caplog.records if gone in r.getMessage() and "SlowDown" in r.getMessage()]

    again = handle(payload, config)
    assert again["failed"] == [] and [r["id"] for r in again["removed"]] == ["gone_20240301"], again
    assert producer.validate_catalog(catalog, storage_options=opts) == []


def test_cli_remove_whose_collection_write_fails_names_the_item_and_the_rerun(faults, s3_server, tmp_path):
    """``remove`` hitting a 503 on the collection's write (the item is
    marked by then): before, stderr said only "Error: S3 put_object failed
    for .../collection.json ...", naming neither the item nor how to finish
    it, and ``--json`` printed nothing on stdout. Now the error names the
    item and the rerun, ``--json`` prints an error object, exit 1; the
    rerun removes the item."""
    bucket = s3_server.new_bucket()
    product = _upload(s3_server, bucket, rasters.write_wgs84(tmp_path), "data/x_20240301.tif")
    catalog = f"s3://{bucket}/stac"
    opts = _proxied_options(faults)
    (first,) = producer.register([product], catalog=catalog, collection="c", storage_options=opts)
    assert first.ok, first.error
    args = ["remove", "x_20240301", "-c", catalog, "--collection", "c", "--json"]
    args += ["-o", f"endpoint_url={faults.endpoint_url}", "-o", "key=testing", "-o", "secret=testing"]

    faults.add("PUT", r"/stac/c/collection\.json$", "503")
    res = _cli(args)
    faults.clear()
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    (line,) = [line for line in res.stdout.splitlines() if line.startswith("{")]
    out = json.loads(line)
    assert out["id"] == "x_20240301" and out["action"] == "error" and out["error_type"] == "storage", out
    for text in (out["error"], res.stderr):
        assert "x_20240301: not removed" in text and "collection.json" in text, text
        assert "remove again" in text and "reconcile --fix" in text, text

    again = _cli(args)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["action"] == "removed"
    assert producer.validate_catalog(catalog, storage_options=opts) == []


def _in_thread(call, limit: float):
    """``call()`` in a daemon thread; its result, or None if it has not
    returned after ``limit`` s (a hang: the thread is left behind)."""
    import threading

    out: list = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    thread.join(limit)
    return out[0] if out else None


def test_a_product_body_that_trickles_ends_at_the_read_deadline(faults, s3_server, tmp_path, monkeypatch):
    """The server sends the body a byte every 0.2 s: never silent for the
    read timeout (1 s), so the register waited for ever. Each read request
    now has a total deadline (here 2 s): a storage error naming the
    product, the deadline and to retry; the other product registers."""
    bucket, bad, good = _two_products(s3_server, tmp_path)
    faults.add("GET", r"/data/utm_20240513\.tif$", "trickle")
    monkeypatch.setenv("STAC_PRODUCER_READ_DEADLINE", "2")
    options = _proxied_options(faults, read_timeout=1, connect_timeout=1)
    started = time.monotonic()
    results = _in_thread(
        lambda: producer.register(
            [bad, good], catalog=str(tmp_path / "catalog"), collection="c", storage_options=options
        ),
        60,
    )
    assert results is not None, "register still reading a trickling product after 60 s"
    assert time.monotonic() - started < 60
    assert [(r.id, r.action, r.error_type) for r in results] == [
        ("utm_20240513", "error", "storage"),
        ("wgs84_20240301", "created", None),
    ]
    error = results[0].error or ""
    assert bad in error and "2 s" in error and "STAC_PRODUCER_READ_DEADLINE" in error and "retry" in error, (
        error
    )
