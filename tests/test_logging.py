"""Logging: store I/O at DEBUG, one INFO line per product and a summary with
the compare-and-swap conflicts, WARNING when retries are given up, nothing
secret in any record, the CLI's -v/-vv/-q on stderr.

Conflicts are real: a store wrapper lets a second registration commit to the
collection between the first one's read and its conditional write, so the
write fails on the real store and the committer retries.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer import api
from producer.cli import main
from producer.store import open_store
from producer.store.base import Store
from tests import rasters

SECRET = "LogTestSecret0123456789abcdefXYZ"
SIGNATURE = "c0ffee5ignature5ecret0123456789abcdef"


class RaceOnce:
    """A real store on which, just before the first conditional write of
    ``key``, ``race()`` runs: it commits a competing change to the same
    document, so that write really fails its precondition."""

    def __init__(self, inner: Store, key: str, race: Any, times: int = 1) -> None:
        self.inner, self.key, self.race, self.times = inner, key, race, times
        self.url, self.concurrent_safe = inner.url, inner.concurrent_safe

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        return self.inner.get(key)

    def put(self, key: str, data: bytes, *, if_version: str | None = None, create_only: bool = False) -> str:
        if key == self.key and if_version is not None and self.times > 0:
            self.times -= 1
            self.race()
        return self.inner.put(key, data, if_version=if_version, create_only=create_only)


def _copy(src: Path, dst: Path) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    return str(dst)


def _racing_catalog(tmp_path: Path, times: int = 1) -> tuple[RaceOnce, str]:
    """A catalog with collection ``c`` (one item) whose next conditional
    write of ``c/collection.json`` loses ``times`` races; and a new product."""
    src = rasters.write_utm(tmp_path / "src")
    inner = open_store(str(tmp_path / "catalog"))
    (first,) = api.register(
        [_copy(src, tmp_path / "a" / "first_20240513.tif")], catalog=inner, collection="c"
    )
    assert first.action == "created"
    edits = iter(range(times))

    def race() -> None:
        # another tool edits the collection in between (not a register: a
        # register would apply this writer's pending change itself, the group
        # commit, and there would be no conflict to log)
        body, version = inner.get("c/collection.json")
        doc = json.loads(body)
        doc["description"] = f"edited elsewhere {next(edits)}"
        inner.put("c/collection.json", json.dumps(doc).encode(), if_version=version)

    return RaceOnce(inner, "c/collection.json", race, times), _copy(src, tmp_path / "c" / "late_20240513.tif")


def _messages(caplog: pytest.LogCaptureFixture, name: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == level]


def test_store_io_and_cas_retry_are_logged_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, product = _racing_catalog(tmp_path)
    caplog.set_level(logging.DEBUG, logger="producer")
    (res,) = api.register([product], catalog=store, collection="c")
    assert res.action == "created"
    reads = _messages(caplog, "producer.store.local", logging.DEBUG)
    assert any(" get c/collection.json: " in m and " bytes, version " in m for m in reads)
    assert any(" put c/late_20240513/late_20240513.json (create-only): " in m for m in reads)
    assert any(" put c/collection.json (if-version " in m and "new version" in m for m in reads)
    # a lone writer tries one plain compare-and-swap of the collection; losing
    # it (the racing catalog) is logged as a conflict and retried through an intent
    (retry,) = [m for m in _messages(caplog, "producer.commit", logging.DEBUG) if "conflict" in m]
    assert (
        retry == "compare-and-swap conflict on c/collection.json (plain attempt): retrying through an intent"
    )
    listing = open_store(str(tmp_path / "catalog"))
    caplog.clear()
    keys = list(listing.list("c"))
    assert f"list 'c': {len(keys)} key(s)" in caplog.records[-1].getMessage()


def test_register_logs_each_product_and_a_summary_with_conflicts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, product = _racing_catalog(tmp_path)
    bad = rasters.write_nocrs(tmp_path / "bad")
    caplog.set_level(logging.INFO, logger="producer")
    created, failed = api.register([product, bad], catalog=store, collection="c")
    assert created.action == "created" and failed.action == "error"
    lines = _messages(caplog, "producer.ingest", logging.INFO)
    assert f"created late_20240513 -> {created.href}" in lines
    assert any(m.startswith(f"error {bad} (input): ") for m in lines)
    summary = lines[-1]
    assert summary.startswith("registered 2 product(s) into collection 'c' of ")
    assert ": 1 created, 1 error; 1 compare-and-swap conflict(s), " in summary
    assert summary.endswith(" s backoff")
    assert not _messages(caplog, "producer.commit", logging.DEBUG)  # DEBUG is off: not even formatted


def test_committer_counts_conflicts_and_backoff(tmp_path: Path) -> None:
    from producer.commit import Committer
    from producer.validate import default_validator

    store, _ = _racing_catalog(tmp_path)
    committer = Committer(store, default_validator().check, backoff=0.001)

    def rename(doc: dict | None) -> dict | None:
        return None if doc is None else {**doc, "title": "renamed"}

    committer.cas("c/collection.json", rename, expect=("Collection",))
    assert committer.conflicts == 1
    assert 0 <= committer.backoff_seconds <= 0.001


def test_conflict_given_up_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store, product = _racing_catalog(tmp_path)
    caplog.set_level(logging.WARNING, logger="producer")
    (res,) = api.register([product], catalog=store, collection="c", max_retries=0)
    assert res.action == "error" and res.error_type == "storage"
    (warning,) = _messages(caplog, "producer.commit", logging.WARNING)
    assert warning == "gave up on c/collection.json after 1 attempts: other writers kept changing it"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_secret_in_any_record_at_debug_on_s3(
    s3_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Storage options holding a secret, a product read with them and a
    presigned-looking product URL: nothing secret in any record, DEBUG on."""
    bucket = s3_server.new_bucket()
    options = {**s3_server.storage_options, "key": "AKIALOGTESTKEY", "secret": SECRET}
    s3_server.client().put_object(
        Bucket=bucket, Key="data/utm_20240513.tif", Body=rasters.write_utm(tmp_path).read_bytes()
    )
    presigned = (
        f"http://127.0.0.1:{_closed_port()}/{bucket}/gone_20240101.tif"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIALOGTESTKEY%2F20240101&X-Amz-Signature={SIGNATURE}"
    )
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="producer")  # whatever level an earlier test left it at
    good, gone = api.register(
        [f"s3://{bucket}/data/utm_20240513.tif", presigned],
        catalog=f"s3://{bucket}/stac",
        collection="c",
        storage_options=options,
    )
    assert good.action == "created" and gone.action == "error"
    producer_records = [r for r in caplog.records if r.name.startswith("producer.")]
    assert any(r.name == "producer.store.s3" and r.levelno == logging.DEBUG for r in producer_records)
    assert any("registered 2 product(s)" in r.getMessage() for r in producer_records)
    for record in caplog.records:
        text = f"{record.getMessage()} {record.exc_text or ''}"
        assert SECRET not in text and SIGNATURE not in text, record.name
    for record in producer_records:
        assert "AKIALOGTESTKEY" not in record.getMessage(), record.getMessage()


def test_cli_verbosity_flags_send_records_to_stderr(tmp_path: Path) -> None:
    product = str(rasters.write_utm(tmp_path / "data"))
    catalog = str(tmp_path / "catalog")
    args = ["register", product, "-c", catalog, "--collection", "c", "--json"]
    producer_logger = logging.getLogger("producer")
    before = (producer_logger.level, list(producer_logger.handlers))

    quiet_default = CliRunner().invoke(main, args)
    assert quiet_default.exit_code == 0, quiet_default.output
    assert quiet_default.stderr == ""
    assert json.loads(quiet_default.stdout)["action"] == "created"

    info = CliRunner().invoke(main, ["-v", *args])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["action"] == "unchanged"  # stdout stays parseable
    lines = info.stderr.splitlines()
    assert (
        lines[0]
        == f"INFO producer.ingest: unchanged utm_20240513 -> {catalog}/c/utm_20240513/utm_20240513.json"
    )
    assert lines[-1].startswith("INFO producer.ingest: registered 1 product(s) into collection 'c' of ")
    assert "0 compare-and-swap conflict(s)" in lines[-1]
    assert not any(line.startswith("DEBUG ") for line in lines)

    debug = CliRunner().invoke(main, ["-vv", *args])
    assert debug.exit_code == 0, debug.output
    assert "DEBUG producer.store.local: LocalStore(" in debug.stderr
    assert " get c/collection.json: " in debug.stderr
    json.loads(debug.stdout)

    # -q: errors only; the command's own report of a failed product stays
    bad = str(rasters.write_nocrs(tmp_path / "bad"))
    quiet = CliRunner().invoke(main, ["-q", "-v", "register", bad, "-c", catalog, "--collection", "c"])
    assert quiet.exit_code == 1
    assert "INFO " not in quiet.stderr and "WARNING " not in quiet.stderr
    # the setting ends with the command: the package's logger is as before
    assert (producer_logger.level, producer_logger.handlers) == before


def _run_logs(flow_run: Any, needle: str, timeout: float = 20.0) -> list[Any]:
    """The logs of a flow run (its task runs' included) read back through the
    client, once one holds ``needle`` (logs reach the server in batches)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run])))
            if any(needle in log.message for log in logs) or time.monotonic() > deadline:
                return list(logs)
            time.sleep(0.2)


@pytest.mark.usefixtures("prefect_harness")
def test_prefect_run_logs_hold_the_register_summary_with_conflicts_once(tmp_path: Path) -> None:
    from prefect import flow
    from prefect.logging.handlers import APILogHandler

    from producer.prefect import register_in_stac

    @flow(name="logging-summary")
    def registering(store: Any, product: str) -> list[dict[str, Any]]:
        return register_in_stac(product, catalog=store, collection="c")

    summary = "into collection 'c' of "
    producer_logger = logging.getLogger("producer")
    before = (producer_logger.level, list(producer_logger.handlers))
    for extra_loggers in (False, True):
        store, product = _racing_catalog(tmp_path / str(extra_loggers))
        # True: as PREFECT_LOGGING_EXTRA_LOGGERS=producer does, an API handler
        # is already on the logger; records must still arrive once
        added = APILogHandler() if extra_loggers else None
        if added is not None:
            producer_logger.addHandler(added)
        try:
            state = registering(store, product, return_state=True)
        finally:
            if added is not None:
                producer_logger.removeHandler(added)
        assert state.is_completed(), state
        logs = _run_logs(state.state_details.flow_run_id, "1 compare-and-swap conflict(s)")
        late = [
            log for log in logs if summary in log.message and "1 compare-and-swap conflict(s)" in log.message
        ]
        assert len(late) == 1, [log.message for log in logs]
        assert late[0].name == "producer.ingest" and late[0].level == logging.INFO
        assert late[0].task_run_id is not None  # in the task run's logs
        assert sum("created late_20240513 -> " in log.message for log in logs) == 1
    # the forwarding ended with the registration
    assert (producer_logger.level, producer_logger.handlers) == before
