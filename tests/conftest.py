"""Suite-wide set-up: the network is closed beyond 127.0.0.1, Prefect state
lives in a temp dir, and the shared fixtures (rasters, S3 server) load here."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="stac-producer-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault(
    "PREFECT_API_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{_PREFECT_HOME}/prefect.db"
)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_var, None)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["GDAL_HTTP_MAX_RETRY"] = "0"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost",):
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise OSError(f"tests may only connect to 127.0.0.1, not {address!r}")


def _guarded_connect(self, address):
    _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _loopback_only(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def catalog_dir(tmp_path):
    """A fresh local catalog root (not created yet)."""
    return tmp_path / "catalog"


from tests.prefect_harness import prefect_harness  # noqa: E402,F401  (session fixture: one Prefect server)
from tests.s3server import s3_server  # noqa: E402,F401  (session fixture: moto on 127.0.0.1)
from tests.pgserver import pg_server, pgstac_dsn  # noqa: E402,F401  (PostgreSQL + pgSTAC on 127.0.0.1)
