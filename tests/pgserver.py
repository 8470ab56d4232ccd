"""A real PostgreSQL + PostGIS + pgSTAC for the test suite, on 127.0.0.1 only.

Use the fixtures (import them into the test module, or into conftest.py)::

    from tests.pgserver import pg_server, pgstac_dsn  # noqa: F401  (re-exported fixtures)

    def test_something(pgstac_dsn):
        sink = PgstacSink(pgstac_dsn)   # a fresh, empty pgSTAC database

``pg_server`` (session scope) starts PostgreSQL 15 from the Debian packages
(``postgresql-15``, ``postgresql-15-postgis-3``) in a temporary data
directory, listening on 127.0.0.1 on a free port (one server per pytest-xdist
worker, no fixed port), installs the pgSTAC schema with pypgstac's migration
into a template database, and at the end stops the server and deletes the
directory. ``pgstac_dsn`` (function scope) is a new database cloned from that
template (a few hundred milliseconds), so tests never see each other's rows.

PostgreSQL refuses to run as root: as root, the server programs run as the
``postgres`` user (created by the Debian package) through ``runuser``, in a
directory handed over to that user; as any other user they run directly.
Missing packages FAIL the fixture with the install command (never a skip).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PG_BINDIR", "PgServer", "pg_server", "pgstac_dsn", "postgres_server"]

PG_BINDIR = Path(os.environ.get("STAC_PRODUCER_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
_POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
_INSTALL_HINT = (
    "apt-get install -y --no-install-recommends postgresql-15 postgresql-15-postgis-3 "
    "(or run scripts/system-packages.sh, the first step of the README's set-up command)"
)
_HOST = "127.0.0.1"
_TEMPLATE_DB = "pgstac_template"
_SERVER_USER = "postgres"


@dataclass(frozen=True)
class PgServer:
    """A running server: superuser ``postgres``, trust authentication on 127.0.0.1."""

    host: str
    port: int
    datadir: Path

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{_SERVER_USER}@{self.host}:{self.port}/{dbname}"

    def new_database(self, template: str = _TEMPLATE_DB) -> str:
        """Create an empty database cloned from ``template``; returns its DSN."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.dsn(name)


def _check_installed() -> None:
    missing = [p for p in ("initdb", "pg_ctl", "postgres") if not (PG_BINDIR / p).exists()]
    if missing:
        pytest.fail(
            f"PostgreSQL 15 server programs not found in {PG_BINDIR} ({', '.join(missing)}): "
            f"install them with {_INSTALL_HINT}",
            pytrace=False,
        )
    if not _POSTGIS_CONTROL.exists():
        pytest.fail(
            f"PostGIS for PostgreSQL 15 is not installed ({_POSTGIS_CONTROL} missing): "
            f"install it with {_INSTALL_HINT}",
            pytrace=False,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str]:
    """The command prefix that runs a server program as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.fail("running as root needs `runuser` (util-linux) to start PostgreSQL as postgres")
    try:
        pwd.getpwnam(_SERVER_USER)
    except KeyError:
        pytest.fail(
            f"running as root needs the {_SERVER_USER!r} user to start PostgreSQL; "
            f"it is created by the Debian package: {_INSTALL_HINT}",
            pytrace=False,
        )
    return ["runuser", "-u", _SERVER_USER, "--"]


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """Start a throw-away PostgreSQL on 127.0.0.1 with the pgSTAC schema in
    the ``pgstac_template`` database; stop it and delete its files on exit."""
    _check_installed()
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="stac-producer-pg-"))
    if prefix:
        # mkdtemp makes a 0700 directory owned by root: hand it to the server user
        pw = pwd.getpwnam(_SERVER_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    datadir = root / "data"
    log = root / "server.log"
    started = False
    try:
        _run(
            [
                *prefix,
                str(PG_BINDIR / "initdb"),
                "-D",
                str(datadir),
                "-U",
                _SERVER_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            root,
            "initdb",
        )
        # a free port can be taken between the probe and the bind: try a few
        for attempt in range(3):
            port = _free_port()
            options = (
                f"-c listen_addresses={_HOST} -p {port} -k {root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            proc = subprocess.run(
                [*prefix, str(PG_BINDIR / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "30"]
                + ["-o", options, "start"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if proc.returncode == 0:
                started = True
                break
            if attempt == 2:
                raise RuntimeError(
                    f"PostgreSQL did not start: {proc.stdout}{proc.stderr}\n"
                    + (log.read_text() if log.exists() else "")
                )
        server = PgServer(_HOST, port, datadir)
        _install_pgstac(server)
        yield server
    finally:
        if started:
            subprocess.run(
                [*prefix, str(PG_BINDIR / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
                cwd=root,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


def _install_pgstac(server: PgServer) -> None:
    """Create the template database and run pypgstac's migration into it."""
    import psycopg
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    class _OneConnection(PgstacDB):
        """PgstacDB on the one connection it is given (no pool left behind)."""

        def connect(self) -> psycopg.Connection:
            assert self.connection is not None
            return self.connection

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{_TEMPLATE_DB}"')
    with psycopg.connect(server.dsn(_TEMPLATE_DB), autocommit=True) as conn:
        Migrate(_OneConnection(connection=conn)).run_migration()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL + pgSTAC server for this test process (xdist worker)."""
    t0 = time.perf_counter()
    with postgres_server() as server:
        print(f"PostgreSQL + pgSTAC ready on port {server.port} in {time.perf_counter() - t0:.1f} s")
        yield server


@pytest.fixture
def pgstac_dsn(pg_server: PgServer) -> str:
    """The DSN of a fresh pgSTAC database (schema installed, no collection)."""
    return pg_server.new_database()


def stac_api_search(server: PgServer, dsn: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to ``/search`` of stac-fastapi-pgstac serving the database
    of ``dsn`` on ``server``, in process (an ASGI client, no port); the JSON
    answer. Imported here: stac-fastapi loads only in the tests that use it."""
    import httpx
    from stac_fastapi.pgstac.app import instantiate_api
    from stac_fastapi.pgstac.config import PostgresSettings, Settings
    from stac_fastapi.pgstac.db import close_db_connection, connect_to_db

    @contextlib.asynccontextmanager
    async def no_lifespan(app: Any) -> Any:
        yield

    async def post() -> dict[str, Any]:
        api = instantiate_api(lifespan=no_lifespan, settings=Settings())
        db = PostgresSettings(
            pguser="postgres",
            pgpassword="",
            pghost=server.host,
            pgport=server.port,
            pgdatabase=dsn.rsplit("/", 1)[1],
            db_min_conn_size=1,
            db_max_conn_size=2,
        )
        await connect_to_db(api.app, postgres_settings=db)
        try:
            transport = httpx.ASGITransport(app=api.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.post("/search", json=body)
                assert response.status_code == 200, response.text
                return dict(response.json())
        finally:
            await close_db_connection(api.app)

    return asyncio.run(post())
