"""Cold start (issue 12 point 6): what a fresh process imports.

Each case runs a tiny wrapper script in a fresh interpreter and lists the
heavy third-party modules left in ``sys.modules``; no timing is asserted
(bench/coldstart.py measures the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import rasters
from tests.trees import assert_stac_valid_tree

REPO = Path(__file__).resolve().parents[1]

#: the write path's heavy imports: none of them is needed to list the commands
#: or to import the package
HEAVY = ("pystac", "rasterio", "numpy", "fsspec", "pyarrow", "pandas")

#: run ``body`` (which may set ``sys.argv`` and run code), then print the heavy
#: modules loaded, as JSON, on the last line of stdout; printed by an atexit
#: handler, because the CLI run as the program ends the process itself
#: (producer.process.quick_exit runs atexit handlers, then os._exit)
WRAPPER = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules))))
{body}
"""


def loaded_after(
    body: str, *args: str, cwd: Path = REPO, modules: tuple[str, ...] = HEAVY, aws: bool = False
) -> list[str]:
    """The ``modules`` (default: HEAVY) loaded once ``body`` has run in a fresh
    process; ``aws``: keep the ``AWS_*`` environment (the local S3 server's)."""
    # no AWS credentials unless asked: with them, rasterio's default session
    # imports boto3 (and urllib3) for any file, local or not; that cost is rasterio's
    env = {k: v for k, v in os.environ.items() if aws or not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER.format(body=body, heavy=modules), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cli_help_imports_no_write_path_module() -> None:
    body = (
        "import runpy\n"
        "sys.argv = ['stac-producer', '--help']\n"
        "try:\n"
        "    runpy.run_module('producer.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
    )
    assert loaded_after(body) == []


def test_console_script_help_imports_no_write_path_module() -> None:
    """The console script's entry point (``producer.cli:main``), as installed.
    Nor ``logging``: ~6 ms to import, a tenth of ``--help``'s budget (the
    modules on the listing's path log through a lazy import)."""
    body = (
        "from producer.cli import main\n"
        "try:\n"
        "    main(['--help'], prog_name='stac-producer')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
    )
    assert loaded_after(body, modules=(*HEAVY, "logging")) == []


def test_import_producer_imports_no_write_path_module() -> None:
    assert loaded_after("import producer") == []


def test_command_help_shows_the_generated_register_flags() -> None:
    """The RegisterOptions flags, generated on first use, still show in a
    command's own help, in field order, next to its hand-written ones."""
    from click.testing import CliRunner

    from producer.cli import main

    out = CliRunner().invoke(main, ["register", "--help"])
    assert out.exit_code == 0, out.output
    assert "--collection-meta" in out.output and "--partition" in out.output
    assert out.output.index("--collection-meta") < out.output.index("--partition")
    assert out.output.index("--catalog") < out.output.index("--collection-meta")
    assert out.output.index("--partition") < out.output.index("--collection-title")
    for command in ("reconcile", "handle-event"):
        out = CliRunner().invoke(main, [command, "--help"])
        assert out.exit_code == 0 and "--partition" in out.output, out.output


def test_public_names_are_all_reachable() -> None:
    import producer

    for name in producer.__all__:
        assert getattr(producer, name) is not None, name
    assert set(producer.__all__) <= set(dir(producer))
    from producer import ProducerError, register
    from producer.api import register as api_register
    from producer.errors import ProducerError as errors_ProducerError

    assert register is api_register and ProducerError is errors_ProducerError


def test_unknown_name_is_an_attribute_error() -> None:
    import producer

    try:
        producer.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("producer.no_such_name resolved")


def test_register_from_a_fresh_import_still_works(tmp_path: Path) -> None:
    """``from producer import register`` in a fresh process resolves the
    lazy name and registers a product."""
    data = tmp_path / "data"
    data.mkdir()
    product = rasters.WRITERS["utm"](data)
    catalog = tmp_path / "cat"
    body = (
        "from producer import register, RegisterOptions\n"
        "r = register([sys.argv[1]], catalog=sys.argv[2], collection='c', options=RegisterOptions())\n"
        "assert [x.action for x in r] == ['created'], r\n"
    )
    loaded_after(body, str(product), str(catalog))
    assert_stac_valid_tree(catalog)


def test_cli_register_into_a_local_catalog_imports_neither_fsspec_nor_urllib3(tmp_path: Path) -> None:
    """A local product into a local catalog: fsspec (remote locations only)
    and urllib3 (pystac's http reads, which the producer never makes) stay
    unloaded, urllib3 stays importable, and the catalog is written and valid."""
    data = tmp_path / "data"
    data.mkdir()
    product = rasters.WRITERS["utm"](data)
    catalog = tmp_path / "cat"
    body = (
        "import runpy\n"
        "sys.argv = ['stac-producer', 'register', sys.argv[1], '-c', sys.argv[2], '--collection', 'c']\n"
        "try:\n"
        "    runpy.run_module('producer.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
    )
    # the CLI ends the process itself: check from an atexit handler, which
    # runs before the wrapper's (registered later), and fail by exit status
    body = (
        "import atexit, os\n"
        "def check():\n"
        "    loaded = [m for m in ('fsspec', 'urllib3') if m in sys.modules]\n"
        "    import urllib3  # botocore needs it on S3\n"
        "    if loaded:\n"
        "        print('loaded:', loaded, file=sys.stderr, flush=True)\n"
        "        os._exit(3)\n"
        "atexit.register(check)\n" + body
    )
    assert loaded_after(body, str(product), str(catalog), modules=()) == []
    assert (catalog / "c" / "collection.json").exists()
    assert_stac_valid_tree(catalog)


#: modules a local ``register one.tif`` into a local catalog never needs:
#: remote storage (fsspec, s3fs, aiobotocore), the mirror's columnar stack
#: (pyarrow, pandas, stac-geoparquet), the datacube reader (xarray and the
#: producer's own module, which a GeoTIFF never reaches), jsonschema (only
#: for the messages of a document the compiled checks refuse), jsonschema-rs
#: (from a process's 17th document on: validate.RUST_AFTER), and the
#: other verbs' and sinks' modules (notify: no topic, no callback; audit:
#: validate and reconcile, and a removal's extent walk); each one costs
#: the cold start it is loaded in (issue 12 point 6)
NOT_ON_LOCAL_REGISTER = (
    "fsspec",
    "s3fs",
    "aiobotocore",
    "pyarrow",
    "pandas",
    "stac_geoparquet",
    "xarray",
    "shapely",
    "jsonschema",
    "referencing",
    "jsonschema_rs",
    "prefect",
    "duckdb",
    "producer.extract.datacube",
    "producer.sinks.pgstac",
    "producer.sinks.notify",
    "producer.audit",
    "producer.query",
    "producer.events",
    "producer.demo",
    "producer.prefect",
    "producer.removal",
    "producer.repair",
)


def test_cli_register_of_a_geotiff_loads_no_module_it_does_not_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GeoTIFF into a local catalog, through the CLI as the program, with
    the compiled schema checks cached (a first process, into another
    catalog, compiles them: that one needs jsonschema's meta-schemas): none
    of :data:`NOT_ON_LOCAL_REGISTER` is loaded when the process ends, and
    the catalog is written and valid."""
    monkeypatch.setenv("STAC_PRODUCER_CACHE_DIR", str(tmp_path / "checks"))
    data = tmp_path / "data"
    data.mkdir()
    product = rasters.WRITERS["utm"](data)
    catalog = tmp_path / "cat"
    body = (
        "import runpy\n"
        "sys.argv = ['stac-producer', 'register', sys.argv[1], '--catalog', sys.argv[2], '--collection', 'c']\n"
        "runpy.run_module('producer.cli', run_name='__main__')\n"
    )
    loaded_after(body, str(product), str(tmp_path / "first"), modules=())
    assert loaded_after(body, str(product), str(catalog), modules=NOT_ON_LOCAL_REGISTER) == []
    assert (catalog / "c" / "collection.json").exists()
    assert_stac_valid_tree(catalog)


def test_a_datacube_name_is_told_without_the_datacube_reader() -> None:
    """The dispatch test moved to producer.extract.source: same verdicts,
    and producer.extract.datacube still exports it."""
    from producer.extract import datacube, source

    assert datacube.is_datacube is source.is_datacube
    for name in ("a.nc", "A.NC4", "b.cdf", "c.netcdf", "s3://b/d.zarr/", "https://h/e.nc?x=1"):
        assert source.is_datacube(name), name
    for name in ("a.tif", "a.nc.tif", "https://h/e.tif?x=.nc", object()):
        assert not source.is_datacube(name), name


#: the Lambda shape: an S3 product into an S3 catalog through ``register``,
#: then the S3 client sessions (aiobotocore) alive in the process, counted
S3_REGISTER = """
from producer import register, RegisterOptions
r = register([sys.argv[1]], catalog=sys.argv[2], collection='c', options=RegisterOptions())
assert [x.action for x in r] == ['created'], r
import gc
from aiobotocore.session import AioSession
sessions = {id(o) for o in gc.get_objects() if isinstance(o, AioSession)}
print('sessions', len(sessions))
"""


def _s3_product(s3_server: Any, tmp_path: Path, prefix: str) -> tuple[str, str]:
    """A GeoTIFF put on the local S3, and a fresh catalog URL beside it."""
    product = rasters.WRITERS["utm"](tmp_path)
    key = f"{prefix}/data/{product.name}"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=product.read_bytes())
    return s3_server.url(key), s3_server.url(f"{prefix}/stac")


def test_s3_register_never_builds_a_boto3_session(s3_server: Any, tmp_path: Path) -> None:
    """An ``s3://`` product is read through fsspec, never by GDAL's ``/vsis3/``:
    the extraction runs in a rasterio environment without an AWS session, so
    rasterio does not import boto3 and build a boto3 session from the AWS
    credentials in the environment (~50-80 ms of a Lambda cold start)."""
    product, catalog = _s3_product(s3_server, tmp_path, "noboto3")
    assert loaded_after(S3_REGISTER, product, catalog, modules=("boto3.session",), aws=True) == []


def test_s3_register_shares_one_client_session(s3_server: Any, tmp_path: Path) -> None:
    """The catalog store and the product reader are separate S3 file systems
    (the store's is private), but they share one aiobotocore session: each
    session loads botocore's service models again (~90 ms of CPU per client
    on this machine), paid twice by every Lambda cold start before."""
    product, catalog = _s3_product(s3_server, tmp_path, "onesession")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys\n" + S3_REGISTER, product, catalog],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sessions 1" in proc.stdout.splitlines(), proc.stdout


def test_the_shared_session_is_left_out_where_the_options_configure_one() -> None:
    """Shared only for ``s3://`` (and ``s3a://``) URLs whose options leave
    the session to s3fs; a profile or the caller's own session is kept, and
    the caller's mapping is never changed."""
    from producer.awssession import with_shared_session

    plain = with_shared_session("s3://bucket/key.tif", {"anon": False})
    again = with_shared_session("S3A://other/prefix", {})
    assert plain["session"] is again["session"] and plain["anon"] is False
    mine = object()
    for options in ({"profile": "ops"}, {"session": mine}, {"session_vars": {}}):
        assert with_shared_session("s3://bucket/key.tif", options) == options
    given = {"key": "k"}
    assert with_shared_session("gs://bucket/key.tif", given) == {"key": "k"}
    with_shared_session("s3://bucket/key.tif", given)
    assert given == {"key": "k"}


def test_an_s3_product_is_read_with_rasterios_default_options(s3_server: Any, tmp_path: Path) -> None:
    """The environment without an AWS session still carries rasterio's own
    defaults (``Env.from_defaults``: e.g. ``GTIFF_IMPLICIT_JPEG_OVR`` off), as
    the default environment it replaces did, and no AWS credentials although
    the environment has some (the local S3 server's)."""
    from contextlib import ExitStack

    import rasterio

    from producer.extract.options import ExtractOptions
    from producer.extract.source import open_source

    product, _ = _s3_product(s3_server, tmp_path, "defaults")
    expected = rasterio.Env.default_options()
    with ExitStack() as stack:
        open_source(product, ExtractOptions(storage_options=s3_server.storage_options), stack)
        env = rasterio.env.getenv()
        assert {k: env.get(k) for k in expected} == expected
        assert "AWS_ACCESS_KEY_ID" not in env  # no AWS session handed GDAL credentials
    assert not rasterio.env.hasenv()
