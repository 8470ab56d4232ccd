"""One Prefect test server for the whole session, and helpers to read it back.

This module is a pytest plugin that ``tests/conftest.py`` loads: a test
module asks for the fixture by name, with no import (the server starts once
per session, in each xdist worker that runs such a test)::

    pytestmark = pytest.mark.usefixtures("prefect_harness")

:func:`prefect.testing.utilities.prefect_test_harness` runs a real Prefect
server in a subprocess on 127.0.0.1 with a temporary SQLite database (about
8 s to start); conftest points ``PREFECT_HOME`` at a temp dir.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

__all__ = ["flow_run_id", "prefect_harness", "read_artifacts", "read_task_run", "table_rows"]


_started = False


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A temporary Prefect server + database for the session.

    Registered once through conftest. A test module that still imports this
    function gets a second fixture instance from pytest: that one finds the
    server already running and reuses it; the first one stops it when the
    session ends.
    """
    global _started
    if _started:
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    # generous: on a loaded 2-core machine the server takes about a minute to start
    with prefect_test_harness(server_startup_timeout=150):
        _started = True
        try:
            yield
        finally:
            _started = False


def flow_run_id(state: Any) -> UUID:
    """The flow run id of a flow's final state (``return_state=True``)."""
    return state.state_details.flow_run_id  # type: ignore[no-any-return]


def read_artifacts(
    *, key: str | None = None, flow_run: UUID | None = None, task_run: UUID | None = None
) -> list[Any]:
    """Artifacts from the API, oldest first, filtered by key / flow run / task run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        ArtifactFilterTaskRunId,
    )
    from prefect.client.schemas.objects import Artifact

    criteria: dict[str, Any] = {}
    if key:
        criteria["key"] = ArtifactFilterKey(any_=[key])
    if flow_run:
        criteria["flow_run_id"] = ArtifactFilterFlowRunId(any_=[flow_run])
    if task_run:
        criteria["task_run_id"] = ArtifactFilterTaskRunId(any_=[task_run])
    body = {
        "artifacts": ArtifactFilter(**criteria).model_dump(mode="json", exclude_unset=True),
        "sort": "CREATED_DESC",
        "limit": 200,
        "offset": 0,
    }
    # The POST is built here: Prefect 3.8's client.read_artifacts sends null for
    # the filters and limit it was not given, which this server rejects (422),
    # and an empty task-run filter would drop flow-level artifacts.
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json=body)
    return list(reversed(Artifact.model_validate_list(response.json())))


def table_rows(artifact: Any) -> list[dict[str, Any]]:
    """The rows of a table artifact (stored as JSON text)."""
    assert artifact.type == "table", artifact
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return list(data)


def read_task_run(task_run: UUID, timeout: float = 15.0) -> Any:
    """The task run from the API once its final state is recorded.

    Task run states reach the server as events, processed in the background:
    poll until the run is in a final state (or ``timeout`` seconds pass).
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = client.read_task_run(task_run)
                if run.state is not None and run.state.is_final():
                    return run
            except ObjectNotFound:
                run = None
            if time.monotonic() > deadline:
                raise AssertionError(f"task run {task_run} not final after {timeout} s: {run}")
            time.sleep(0.1)
