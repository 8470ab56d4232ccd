"""http(s) servers that are unreachable or accept and never answer: a catalog
or product there fails soon, with a storage error that says so, never a hang,
a raw traceback, or "catalog.json is missing"; and a catalog server that
lists no folder, which validate and search are told about instead of reading
every listing as empty.

The servers are real sockets on 127.0.0.1: a closed port (connection
refused), a listener that accepts and reads nothing (a stall), and a static
file server for the "really missing" case (and one without folder listings). Timeouts are made small through
the storage option and the environment variables a user would set.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import producer
from producer.audit import _asset_exists
from producer.errors import InputError, StoreError
from producer.store import fsspec_store, open_store
from tests import cubes, rasters


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: a server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in held:
        conn.close()


@pytest.fixture
def files(tmp_path: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving an empty folder: every document is a 404."""
    (tmp_path / "www").mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("stac-producer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, env=env)


# --- catalogs ------------------------------------------------------------------------


def test_an_unreachable_http_catalog_is_a_storage_error_not_a_missing_catalog() -> None:
    """Was InputError "no catalog at ... (catalog.json is missing): check the
    URL", exit 2: the network failed, not the URL. Now a retryable StoreError."""
    url = f"http://127.0.0.1:{_closed_port()}/stac"
    with pytest.raises(StoreError, match="cannot reach catalog") as info:
        producer.validate_catalog(url)
    assert "catalog.json is missing" not in str(info.value)
    out = _cli("validate", url)
    assert out.returncode == 1, out.stderr
    assert "cannot reach catalog" in out.stderr and "is missing" not in out.stderr, out.stderr


def test_an_http_catalog_that_is_really_missing_is_still_reported_as_missing(files: str) -> None:
    with pytest.raises(InputError, match=r"catalog\.json is missing"):
        producer.validate_catalog(f"{files}/stac")


def test_a_stalled_http_catalog_fails_within_the_timeout_with_a_clear_error(silent: str) -> None:
    """Was a 5-minute wait, then a raw fsspec FSTimeoutError traceback (exit 1)."""
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"did not answer within 1 s") as info:
        producer.validate_catalog(f"{silent}/stac", storage_options={"timeout": 1})
    assert time.monotonic() - started < 30
    assert "storage_options={'timeout': 300}" in str(info.value)  # the way out, spelled for Python
    out = _cli("validate", f"{silent}/stac", "-o", "timeout=1")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "did not answer within 1 s" in out.stderr and "-o timeout=300" in out.stderr, out.stderr


def test_an_http_catalog_read_is_bounded_by_default(silent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a timeout option the catalog's reads still end (by default after
    :data:`HTTP_TIMEOUT` seconds, here made 1)."""
    monkeypatch.setattr(fsspec_store, "HTTP_TIMEOUT", 1.0)
    store = open_store(f"{silent}/stac")
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"did not answer within 1 s \(reading 'catalog.json'\)"):
        store.get("catalog.json")
    assert time.monotonic() - started < 30
    with pytest.raises(InputError, match="timeout='soon'"):
        open_store(f"{silent}/stac", {"timeout": "soon"})


# --- products ------------------------------------------------------------------------


def _register_one(url: str, catalog: Path) -> tuple[producer.Result, float]:
    started = time.monotonic()
    [result] = producer.register([url], catalog=str(catalog), collection="c")
    return result, time.monotonic() - started


@pytest.mark.parametrize("name", ["x.tif", "x.nc", "x.zarr"])
def test_a_stalled_http_product_fails_as_storage_naming_the_setting(
    silent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A product on a server that accepts and never answers: GDAL (a GeoTIFF)
    set no timeout and waited forever; fsspec (NetCDF, Zarr) waited 5 minutes
    and then called it "not found". Now the GDAL_HTTP_TIMEOUT the user set
    bounds every request, and the product fails alone as a retryable storage
    error that names the setting."""
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    result, took = _register_one(f"{silent}/{name}", tmp_path / "cat")
    assert result.action == "error" and result.error_type == "storage", result
    assert "did not answer within 1 s" in str(result.error) and "GDAL_HTTP_TIMEOUT" in str(result.error)
    assert took < 60


def test_http_products_are_bounded_by_default(
    silent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing set by the user: the defaults of producer.httplimits apply
    (here made 1 s, so the test does not wait a minute)."""
    from producer import httplimits

    for name in ("GDAL_HTTP_TIMEOUT", "GDAL_HTTP_CONNECTTIMEOUT", "GDAL_HTTP_MAX_RETRY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(httplimits.GDAL_HTTP_DEFAULTS, "GDAL_HTTP_TIMEOUT", "1")
    for name in ("x.tif", "x.nc"):
        result, took = _register_one(f"{silent}/{name}", tmp_path / "cat")
        assert result.error_type == "storage" and "did not answer within 1 s" in str(result.error), result
        assert took < 60


def test_an_unreachable_http_product_is_a_storage_error(tmp_path: Path) -> None:
    """Was "not a readable raster (corrupt, truncated...)", an input error
    that is never retried: the network failed, not the file."""
    result, _ = _register_one(f"http://127.0.0.1:{_closed_port()}/x.tif", tmp_path / "cat")
    assert result.error_type == "storage" and "cannot reach the server" in str(result.error), result


class _Answers(SimpleHTTPRequestHandler):
    """Serves files; ``/<status>/...`` answers that HTTP status instead (a
    throttling or failing server, an expired or missing presigned object)."""

    def send_head(self):  # type: ignore[no-untyped-def]
        first = self.path.split("/")[1]
        if first.isdigit():
            self.send_error(int(first), "as asked")
            return None
        return super().send_head()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("name", ["scene_20240101.tif", "scene_20240101.nc"])
def test_an_http_product_the_server_fails_to_deliver_is_retryable_not_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A GeoTIFF answered 503/500/429 was "not a readable raster (corrupt,
    truncated...): HTTP response code: 503", an input error that the Prefect
    task and the event handler never retry; a 404 was "corrupt" too."""
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    (tmp_path / "www").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Answers, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for status in (503, 500, 429):
            result, _ = _register_one(f"{base}/{status}/{name}?X-Amz-Signature=SECRET", tmp_path / "cat")
            assert result.error_type == "storage", result
            assert f"HTTP {status}" in str(result.error) and "retry" in str(result.error), result
            assert "SECRET" not in repr(result)
        result, _ = _register_one(f"{base}/404/{name}", tmp_path / "cat")
        assert result.error_type == "input" and "not found" in str(result.error), result
        assert "corrupt" not in str(result.error)
    finally:
        server.shutdown()
        server.server_close()


# --- a server that lists no folder ----------------------------------------------------


class _NoListing(SimpleHTTPRequestHandler):
    """Serves files, and answers a folder's URL with ``status`` (S3 website
    hosting, CloudFront and nginx without autoindex give 404 or 403)."""

    status = 404

    def list_directory(self, path: str | Path) -> None:  # type: ignore[override]
        self.send_error(self.status, "no listing")
        return None

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[404, 403])
def unlisted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT/stac``: a catalog of two items (in the mirror's
    fragments, not yet compacted) on a server that lists no folder."""
    data = tmp_path / "www" / "data"
    paths = [rasters.write_tile(data, f"x_2024010{d}.tif", 1.0 + d, 1.0) for d in (1, 2)]
    producer.register([str(p) for p in paths], catalog=str(tmp_path / "www" / "stac"), collection="c")
    assert producer.search(str(tmp_path / "www" / "stac"))["numberMatched"] == 2
    handler = type("NoListing", (_NoListing,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/stac"
    server.shutdown()
    server.server_close()


def test_a_catalog_server_without_folder_listings_is_named_not_searched_as_empty(unlisted: str) -> None:
    """Was: search over such a server returned 0 items (the mirror's fragments
    are found by listing their folder; a 404 read as "no fragment"), and
    validate reported a bogus missing-root (its listing found no catalog.json
    though the server serves it)."""
    with pytest.raises(InputError, match="lists no folder") as info:
        producer.search(unlisted)
    assert "storage URL" in str(info.value)
    with pytest.raises(InputError, match="lists no folder"):
        producer.validate_catalog(unlisted)
    out = _cli("search", unlisted)
    assert out.returncode == 2 and "lists no folder" in out.stderr and not out.stdout, out
    assert "Traceback" not in out.stderr


def test_a_catalog_server_with_folder_listings_is_searched(tmp_path: Path) -> None:
    data = tmp_path / "www" / "data"
    paths = [rasters.write_tile(data, f"x_2024010{d}.tif", 1.0 + d, 1.0) for d in (1, 2)]
    producer.register([str(p) for p in paths], catalog=str(tmp_path / "www" / "stac"), collection="c")
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stac"
        assert producer.search(url)["numberMatched"] == 2
        assert [p for p in producer.validate_catalog(url) if p.is_error] == []
    finally:
        server.shutdown()
        server.server_close()


def test_writing_to_an_http_catalog_is_refused_as_read_only(tmp_path: Path) -> None:
    """An http(s) catalog is read-only (validate, search). Was: register and
    remove tried to PUT there and failed as a retryable storage error
    ("cannot write ...: 501 Unsupported method"), which the Prefect task and
    the event queue retry in vain; a server that accepts PUT (WebDAV) would
    have been written without compare-and-swap."""
    www = tmp_path / "www"
    path = rasters.write_tile(tmp_path / "data", "x_20240101.tif", 1.0, 1.0)
    producer.register([str(path)], catalog=str(www / "stac"), collection="c")
    before = sorted(str(p.relative_to(www)) for p in www.rglob("*"))
    handler = partial(SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stac"
        other = rasters.write_tile(tmp_path / "data", "y_20240102.tif", 2.0, 1.0)
        (result,) = producer.register([str(other)], catalog=url, collection="c")
        assert result.error_type == "input", result
        assert "read-only" in result.error and "storage URL" in result.error
        with pytest.raises(InputError, match="read-only"):
            producer.remove("x_20240101", catalog=url, collection="c")
        out = _cli("remove", "x_20240101", "-c", url, "--collection", "c")
        assert out.returncode == 2 and "read-only" in out.stderr, out
        assert producer.search(url)["numberMatched"] == 1  # reading still works
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(str(p.relative_to(www)) for p in www.rglob("*")) == before


# --- assets ------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["closed", "silent"])
def test_an_http_asset_whose_server_cannot_be_reached_is_unchecked_never_removed(
    tmp_path: Path, files: str, silent: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsspec answers FileNotFoundError for any failed http(s) HEAD and GET,
    so an asset on a server that refused the connection or never answered
    was "missing": ``validate --check-assets`` called it gone and
    ``reconcile --fix --dead remove`` deleted its item. Only a 404 (or 410)
    is missing now; the rest is ``asset-unchecked``, and the item stays."""
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "2")
    base = f"http://127.0.0.1:{_closed_port()}" if server == "closed" else silent
    tiles = [rasters.write_tile(tmp_path / "tiles", f"t_2024010{i}.tif", 10.0 + i, 50.0) for i in (1, 2)]
    root = tmp_path / "catalog"
    results = producer.register(tiles, catalog=str(root), collection="c")
    assert all(r.ok for r in results), [r.error for r in results]
    # unreachable, and a 404 on another server (checked, though one server failed)
    hrefs = {results[0].href: f"{base}/t.tif", results[1].href: f"{files}/gone.tif"}
    for item_href, asset_href in hrefs.items():
        doc = json.loads(Path(item_href).read_text())
        doc["assets"]["data"]["href"] = asset_href
        Path(item_href).write_text(json.dumps(doc))
    kinds = {p.key.split("/")[1]: p.kind for p in producer.validate_catalog(str(root), check_assets=True)}
    assert kinds == {"t_20240101": "asset-unchecked", "t_20240102": "missing-asset"}, kinds
    report = producer.reconcile(str(root), check_assets=True, fix=True, dead="remove")
    assert Path(results[0].href).exists()  # could not be checked: left alone
    assert not Path(results[1].href).exists()  # really gone (404): removed
    assert report.failed == {"asset-unchecked": 1}


def test_a_zarr_store_over_http_is_checked_by_its_metadata_never_by_its_folder_url(tmp_path: Path) -> None:
    """A Zarr store in a bucket served over https has no folder object: the
    folder's URL answers 404. The asset check HEADed it, so a live store was
    ``missing-asset`` and ``reconcile --fix --dead remove`` deleted its item.
    A Zarr asset is now checked by its metadata object (``zarr.json``,
    ``.zmetadata``, ``.zgroup``/``.zarray``); a store that is really gone is
    still missing, and any other folder URL answered 404 is unchecked."""
    www = tmp_path / "www"
    stores = [cubes.write_zarr(www / f"cube_{v}.zarr", zarr_format=v) for v in (2, 3)]
    stores.append(cubes.write_zarr(www / "gone.zarr", zarr_format=2))
    (www / "folder").mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_NoListing, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        root = str(tmp_path / "catalog")
        results = producer.register([f"{base}/{Path(s).name}" for s in stores], catalog=root, collection="c")
        assert all(r.ok for r in results), [r.error for r in results]
        shutil.rmtree(stores[2])
        kinds = [(p.key.split("/")[1], p.kind) for p in producer.validate_catalog(root, check_assets=True)]
        assert kinds == [("gone", "missing-asset")], kinds
        producer.reconcile(root, check_assets=True, fix=True, dead="remove")
        assert [Path(r.href).exists() for r in results] == [True, True, False]
        assert _asset_exists(f"{base}/folder/", None)[0] is None
        assert _asset_exists(f"{base}/folder/gone.tif", None) == (False, "")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_an_unconsolidated_zarr_store_over_http_without_listings_says_to_consolidate(
    tmp_path: Path, zarr_format: int
) -> None:
    """Over http a server that lists no folder hides the arrays of a store
    whose metadata is not consolidated: xarray opened it empty, and the
    product failed as "no horizontal coordinates (x/y or lat/lon) found",
    sending the user to fix coordinates the store has. It now says what is
    wrong and how to fix it; the consolidated store registers."""
    www = tmp_path / "www"
    cubes.write_zarr(www / "plain.zarr", zarr_format=zarr_format, consolidated=False)
    cubes.write_zarr(www / "whole.zarr", zarr_format=zarr_format, consolidated=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_NoListing, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        plain, whole = producer.register(
            [f"{base}/plain.zarr", f"{base}/whole.zarr"], catalog=str(tmp_path / "catalog"), collection="c"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert whole.ok, whole.error
    assert plain.error_type == "input", plain
    assert "no horizontal coordinates" not in plain.error
    assert "consolidate" in plain.error and "lists no folder" in plain.error, plain.error


# --- a server that trickles ----------------------------------------------------------


class _Trickles(SimpleHTTPRequestHandler):
    """Serves files (with ``Range``), each body one byte every 0.2 s: never
    silent for a read timeout of a second, and never done either."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "no such file")
            return
        data = path.read_bytes()
        first, last, status = 0, len(data) - 1, 200
        asked = self.headers.get("Range", "")
        if asked.startswith("bytes="):
            start, _, end = asked[len("bytes=") :].partition("-")
            first, last, status = int(start), min(int(end or last), last), 206
        self.send_response(status)
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.end_headers()
        try:
            for i in range(first, last + 1):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:  # the client gave up
            pass
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_an_http_datacube_whose_server_trickles_ends_at_the_read_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NetCDF whose server sends a byte every 0.2 s: fsspec's read
    timeout (the silence between two reads, here 1 s) never fired, and the
    register hung for ever. Each read request now ends after the deadline
    (here 2 s) as a retryable storage error naming the product and the
    setting."""
    www = tmp_path / "www"
    www.mkdir()
    cubes.write_two_variables(www)
    (name,) = [p.name for p in www.iterdir()]
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("STAC_PRODUCER_READ_DEADLINE", "2")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Trickles, directory=str(www)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
    done: list[tuple[producer.Result, float]] = []
    try:
        worker = threading.Thread(
            target=lambda: done.append(_register_one(url, tmp_path / "cat")), daemon=True
        )
        worker.start()
        worker.join(90)
        assert done, "register still reading a trickling product after 90 s"
        result, took = done[0]
        assert result.action == "error" and result.error_type == "storage", result
        error = str(result.error)
        assert name in error and "2 s" in error and "STAC_PRODUCER_READ_DEADLINE" in error, error
        assert "retry" in error and took < 90
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_geotiff_whose_server_trickles_is_retryable_not_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GDAL's curl ends each request after GDAL_HTTP_TIMEOUT in all, and
    then reads the header it got cut short: "not a readable raster
    (corrupt, truncated ...): Cannot read TIFF header", an input error no
    caller retries, for a file that is fine on a slow server. A read that
    failed after the request timeout is now the timeout's storage error."""
    www = tmp_path / "www"
    tif = rasters.write_tile(www, "x_20240101.tif", 1.0, 1.0)
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Trickles, directory=str(www)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result, took = _register_one(
            f"http://127.0.0.1:{server.server_address[1]}/{tif.name}", tmp_path / "cat"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.action == "error" and result.error_type == "storage", result
    error = str(result.error)
    assert (
        tif.name in error and "corrupt" not in error and "GDAL_HTTP_TIMEOUT" in error and "retry" in error
    ), error
    assert took < 60


def test_a_remote_netcdf_larger_than_a_part_is_fetched_in_parts_each_under_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server
) -> None:
    """A remote NetCDF is fetched whole: with each request ending at the read
    deadline, one request for a large file would cut a slow but steady
    download. It comes in parts (here 1 KiB) on S3; a server ignoring
    ``Range`` (``python -m http.server``) answers the whole file at once."""
    from producer.extract import datacube

    monkeypatch.setattr(datacube, "WHOLE_PART", 1024)
    www = tmp_path / "www"
    www.mkdir()
    path = cubes.write_two_variables(www)
    assert path.stat().st_size > 3 * 1024
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key=f"data/{path.name}", Body=path.read_bytes())
    (on_s3,) = producer.register(
        [f"s3://{bucket}/data/{path.name}"],
        catalog=str(tmp_path / "cat-s3"),
        collection="c",
        storage_options=s3_server.storage_options,
    )
    assert on_s3.action == "created", on_s3
    handler = partial(SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (on_http,) = producer.register(
            [f"http://127.0.0.1:{server.server_address[1]}/{path.name}"],
            catalog=str(tmp_path / "cat-http"),
            collection="c",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert on_http.action == "created", on_http
    local = producer.register([str(path)], catalog=str(tmp_path / "cat-local"), collection="c")[0]
    assert on_s3.item["properties"]["cube:variables"] == local.item["properties"]["cube:variables"]


def test_a_remote_netcdf_overwritten_while_fetched_in_parts_is_a_storage_failure(
    tmp_path: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fetched in parts, a NetCDF overwritten between its first part and
    the rest (same size, other bytes) gave an item of a mix of two files:
    the object is looked at again once its parts are in, and a change is a
    storage failure (retried), with nothing written."""
    import s3fs

    from producer.extract import datacube

    monkeypatch.setattr(datacube, "WHOLE_PART", 1024)
    path = cubes.write_two_variables(tmp_path)
    body = path.read_bytes()
    assert len(body) > 3 * 1024
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="data/cube.nc", Body=body)
    original = s3fs.S3FileSystem._cat_ranges

    async def overwritten_first(self: Any, *args: Any, **kwargs: Any) -> Any:
        # the writer rewrites the file after the first part was read
        client.put_object(Bucket=bucket, Key="data/cube.nc", Body=body[:-1] + b"\x01")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_ranges", overwritten_first)
    # a cached file system made its sync methods from the method it had then
    s3fs.S3FileSystem.clear_instance_cache()
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [f"s3://{bucket}/data/cube.nc"],
        catalog=str(catalog),
        collection="c",
        storage_options=s3_server.storage_options,
    )
    assert not result.ok and result.error_type == "storage", result
    assert "changed while it was read" in str(result.error) and "cube.nc" in str(result.error)
    assert not (catalog / "c").exists()
