"""Suite-wide set-up: the network is closed beyond 127.0.0.1, Prefect and AWS
settings point at temporary, local things, and the shared fixtures load here.

Fixtures every module may use without importing anything:

- ``s3_server`` (session): moto on 127.0.0.1, see :mod:`tests.s3server`;
- ``prefect_harness`` (session): a temporary Prefect server, see
  :mod:`tests.prefect_harness`;
- ``catalog_dir``: a fresh local catalog root.

Under pytest-xdist every worker is its own process: it gets its own
``PREFECT_HOME``, its own moto server and its own Prefect server, each on a
free port, so workers never share state. Work is handed out by module
(``--dist loadscope``), so a module-scoped server or data set is made once.

The ``slow`` marker: ``--skip-slow`` deselects the multi-process and
server-starting tests for a quick inner loop; the default run (README, CI)
runs everything.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.netguard", "tests.s3server", "tests.prefect_harness", "tests.pgserver"]

# Not setdefault: an xdist worker inherits the controller's environment, and a
# Prefect home (with its SQLite database) shared between workers would let
# them see each other's runs.
_PREFECT_HOME = tempfile.mkdtemp(prefix="stac-producer-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{_PREFECT_HOME}/prefect.db"
# compiled schema checks are cached in the session's temp dir, never in ~/.cache
os.environ["STAC_PRODUCER_CACHE_DIR"] = os.path.join(_PREFECT_HOME, "validators")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_var, None)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["GDAL_HTTP_MAX_RETRY"] = "0"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--skip-slow",
        action="store_true",
        default=False,
        help="deselect tests marked slow (multi-process writers, real Prefect server); "
        "the default run includes them",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--skip-slow"):
        return
    kept = [item for item in items if item.get_closest_marker("slow") is None]
    deselected = [item for item in items if item.get_closest_marker("slow") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A fresh local catalog root (not created yet)."""
    return tmp_path / "catalog"


@pytest.fixture(autouse=True)
def _no_rasterio_environment_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves a rasterio environment active in this worker's main
    thread changes what later tests read (``open_source`` keeps a caller's
    environment): such a test fails here, not a test that runs after it."""
    import sys

    env = sys.modules.get("rasterio.env")
    before = env is not None and env.hasenv()
    yield
    env = sys.modules.get("rasterio.env")
    if env is not None and not before and env.hasenv():
        left = env.getenv()
        env.delenv()  # the next test starts clean either way
        pytest.fail(f"{request.node.nodeid} left a rasterio environment active: {left}")
