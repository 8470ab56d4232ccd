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
produces). :class:`SerializedMotoServer` runs the same moto application but
lets one request at a time into it, which makes each conditional request
atomic, like S3.

Caveat: the server shares moto's in-process backend state, so a test that
enters ``moto.mock_aws()`` resets it (buckets vanish). Tests that need
isolation call :meth:`S3Server.new_bucket`.
"""

from __future__ import annotations

import contextlib
import os
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
    """WSGI middleware: one request inside the wrapped app at a time."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            # Drain the response inside the lock: the whole request is atomic.
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


def _make_server_class() -> type:
    # moto is a dev dependency: imported when a server is started, not at
    # import of this module.
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class _QuietHandler(MotoRequestHandler):  # type: ignore[misc]
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass  # no access log on stderr

    class _Serialized(ThreadedMotoServer):  # type: ignore[misc]
        def _server_entry(self) -> None:
            app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(
                self._ip_address,
                self._port,
                app,
                True,
                request_handler=_QuietHandler,
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return _Serialized


def SerializedMotoServer(port: int = 0) -> Any:
    """A :class:`moto.server.ThreadedMotoServer` on 127.0.0.1 whose requests
    are serialized (see the module docstring). ``port=0`` picks a free port;
    read it back with ``get_host_and_port()`` after ``start()``."""
    return _make_server_class()(ip_address=_HOST, port=port, verbose=False)


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
