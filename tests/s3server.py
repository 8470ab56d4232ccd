"""A local S3 for the test suite: moto's threaded server on 127.0.0.1 only.

Use the session fixture ``s3_server`` (this module is a pytest plugin that
``tests/conftest.py`` loads, so every test module sees it without an import)::

    def test_something(s3_server):
        endpoint_url, bucket, storage_options = s3_server
        store = open_store(f"s3://{bucket}/stac", storage_options)

or the context manager directly (``with moto_s3() as srv: ...``).

While the server runs, the process environment points every AWS client at it
(``AWS_ENDPOINT_URL``), with dummy credentials (``testing``), no shared
config/credential files, no instance-metadata lookups and no proxy for
127.0.0.1, so nothing can reach a real AWS account or the network. The
previous environment is restored on exit.

Why not plain :class:`moto.server.ThreadedMotoServer`: moto checks
``If-Match`` / ``If-None-Match`` and then stores the object as two separate
steps, and its server handles requests on several threads, so two racing
conditional PUTs can both pass the check (a lost update real S3 never
produces). :class:`SerializedMotoServer` runs the same moto applications but
lets one request at a time into them, which makes each conditional request
atomic, like S3. It also keeps connections open (HTTP/1.1 keep-alive, as S3
does; werkzeug's server closed every one) and sends S3 requests straight to
moto's S3 application (other services, e.g. SNS/SQS, still go through
moto's dispatcher).

Caveat: the server shares moto's in-process backend state, so a test that
enters ``moto.mock_aws()`` resets it (buckets vanish). Tests that need
isolation call :meth:`S3Server.new_bucket`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import pytest

__all__ = ["S3Server", "SerializedMotoServer", "moto_s3", "s3_server"]

_HOST = "127.0.0.1"
_REGION = "us-east-1"


class S3Server(NamedTuple):
    """A running local S3: unpack as ``(endpoint_url, bucket, storage_options)``.

    ``storage_options`` are keyword arguments for :class:`s3fs.S3FileSystem`
    (and so for :func:`producer.store.open_store`).
    """

    endpoint_url: str
    bucket: str
    storage_options: dict[str, Any]

    @property
    def keyless_options(self) -> dict[str, Any]:
        """``storage_options`` without the keys: what a Prefect flow is given
        (the flows refuse credentials in their stored parameters; s3fs finds
        moto's dummy keys in the environment :func:`moto_s3` sets)."""
        return {k: v for k, v in self.storage_options.items() if k not in ("key", "secret")}

    def url(self, prefix: str = "") -> str:
        """``s3://<bucket>/<prefix>`` (no trailing slash)."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def client(self) -> Any:
        """A new boto3 S3 client for this server (for test setup/inspection)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self, name: str | None = None) -> str:
        """Create a fresh bucket (unique name unless given) and return its name."""
        bucket = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket


class _OneAtATime:
    """WSGI middleware: one request inside the wrapped app at a time.

    Requests signed for S3 (the credential scope of their ``Authorization``)
    go straight to moto's S3 application; everything else (SNS, SQS, ...)
    through moto's host/signature dispatcher, which costs about 2 ms of CPU
    per request more (it re-derives the service of every request)."""

    def __init__(self, s3_app: Callable[..., Iterable[bytes]], other: Callable[..., Iterable[bytes]]) -> None:
        self._s3 = s3_app
        self._other = other
        self._lock = threading.Lock()

    def _app_for(self, environ: dict[str, Any]) -> Callable[..., Iterable[bytes]]:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in auth else ""
        parts = scope.split("/")
        path = environ.get("PATH_INFO", "")
        if len(parts) == 5 and parts[3] == "s3" and not path.startswith("/v20180820/"):
            return self._s3
        return self._other

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        app = self._app_for(environ)
        with self._lock:
            # Drain the response inside the lock: the whole request is atomic.
            result = app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def _handler_class(app: Callable[..., Iterable[bytes]]) -> type:
    """An HTTP/1.1 request handler that keeps connections open (werkzeug's
    development server closes every one, so each request paid a new TCP
    connection) and calls the WSGI ``app`` with the whole body read."""
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import unquote

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out as two writes: with Nagle's algorithm the
        # body waited for the client's delayed ACK (~40 ms per GET on a
        # kept-alive connection)
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log on stderr

        def _body(self) -> bytes:
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            if (self.headers.get("Expect") or "").lower() == "100-continue":
                self.send_response_only(100)
                self.end_headers()
            body = self._body()
            path, _, query = self.path.partition("?")
            environ: dict[str, Any] = {
                "REQUEST_METHOD": self.command,
                "SCRIPT_NAME": "",
                "PATH_INFO": unquote(path, "latin-1"),
                "QUERY_STRING": query,
                "RAW_URI": self.path,
                "REQUEST_URI": self.path,
                "SERVER_NAME": self.server.server_address[0],
                "SERVER_PORT": str(self.server.server_address[1]),
                "SERVER_PROTOCOL": self.request_version,
                "REMOTE_ADDR": self.client_address[0],
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
            for name, value in self.headers.items():
                key = name.upper().replace("-", "_")
                if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                    continue
                if key == "CONTENT_TYPE":
                    environ[key] = value
                else:
                    environ.setdefault(f"HTTP_{key}", value)
            got: dict[str, Any] = {}

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                got["status"], got["headers"] = status, headers
                return lambda data: None

            out = b"".join(app(environ, start_response))
            code, _, reason = got["status"].partition(" ")
            self.send_response_only(int(code), reason)
            length = None
            for name, value in got["headers"]:
                lower = name.lower()
                if lower in ("connection", "transfer-encoding", "keep-alive"):
                    continue
                if lower == "content-length":
                    length = value
                    continue
                self.send_header(name, value)
            if self.command == "HEAD":
                if length is not None:
                    self.send_header("Content-Length", length)
            else:
                self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD" and out:
                self.wfile.write(out)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle

    return _Handler


class SerializedMotoServer:
    """moto on 127.0.0.1 with serialized requests (see the module docstring)
    and HTTP/1.1 keep-alive connections, one thread per connection.

    Same surface as :class:`moto.server.ThreadedMotoServer` as used here:
    ``start()``, ``get_host_and_port()``, ``stop()``. ``port=0`` picks a free
    port; read it back with ``get_host_and_port()`` after ``start()``."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # moto is a dev dependency: imported when a server is started, not at
        # import of this module.
        from http.server import ThreadingHTTPServer

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        app = _OneAtATime(create_backend_app("s3"), DomainDispatcherApplication(create_backend_app))
        self._server = ThreadingHTTPServer((_HOST, self._port), _handler_class(app))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-s3", daemon=True)
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


@contextlib.contextmanager
def _sandboxed_aws_env(endpoint_url: str) -> Iterator[None]:
    """Point every AWS client in this process at ``endpoint_url``, with dummy
    credentials; restore the previous environment afterwards."""
    with tempfile.TemporaryDirectory(prefix="stac-producer-aws-") as empty:
        missing = os.path.join(empty, "none")
        no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY", ""), _HOST, "localhost") if p)
        new = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": _REGION,
            "AWS_REGION": _REGION,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": missing,
            "AWS_SHARED_CREDENTIALS_FILE": missing,
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }
        removed = (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        )
        saved = {k: os.environ.get(k) for k in (*new, *removed)}
        os.environ.update(new)
        for k in removed:
            os.environ.pop(k, None)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@contextlib.contextmanager
def moto_s3(bucket: str | None = None) -> Iterator[S3Server]:
    """Start a serialized moto server on 127.0.0.1 (free port), create one
    bucket, and yield an :class:`S3Server`. Stops the server on exit.

    Writes: the process environment (see the module docstring), restored on
    exit; the bucket lives in moto's in-memory backend only.
    """
    server = SerializedMotoServer(port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        with _sandboxed_aws_env(endpoint_url):
            options: dict[str, Any] = {
                "key": "testing",
                "secret": "testing",
                "client_kwargs": {"endpoint_url": endpoint_url, "region_name": _REGION},
            }
            srv = S3Server(endpoint_url, "", options)
            srv = srv._replace(bucket=srv.new_bucket(bucket))
            yield srv
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Session-wide local S3 (see :func:`moto_s3`)."""
    with moto_s3() as srv:
        yield srv
