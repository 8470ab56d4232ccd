"""producer.prefect on a real Prefect engine and server (no mocks).

The ``register_in_stac`` task inside real flows against local catalogs and
the local S3 server, the table artifacts read back through the Prefect
client, failure after registering the good products, retries of storage
errors only, and the ``@registers_in_stac`` decorator in both orders.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect import Task, allow_failure, flow, task

from producer.errors import InputError
from producer.prefect import (
    RegistrationFailed,
    artifact_key_for,
    check_artifact_key,
    product_urls,
    register_in_stac,
    registers_in_stac,
    retry_on_storage_errors,
    retry_unless_bad_input,
)
from tests.prefect_harness import (
    flow_run_id,
    read_artifacts,
    read_task_run,
    table_rows,
)
from tests.rasters import write_cog, write_nocrs, write_utm
from tests.s3server import S3Server

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROOT = Path(__file__).resolve().parent.parent


def _item(catalog: Path, collection: str, item_id: str) -> Path:
    return catalog / collection / item_id / f"{item_id}.json"


def _run_task(call: Any) -> tuple[Any, Any, Any]:
    """Run ``call()`` (a task call with ``return_state=True``) in a flow.

    Returns ``(task_run_id, task_state, result_or_exception)`` and the flow's id
    through the flow state.
    """

    @flow(name="run-one-task")
    def one() -> tuple[Any, Any, Any]:
        state = call()
        return state.state_details.task_run_id, state, state.result(raise_on_failure=False)

    return one()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# import hygiene and inputs
# ---------------------------------------------------------------------------


def test_import_producer_does_not_import_prefect() -> None:
    code = (
        "import sys, producer, producer.api, producer.events, producer.cli; "
        "assert 'prefect' not in sys.modules, 'prefect imported'; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_product_urls_flattens_paths_lists_and_skips_none(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", "s3://bucket/b.tif"
    assert product_urls(a) == [str(a)]
    assert product_urls([[a, None], (b,), [[str(a)]]]) == [str(a), b]  # nested, deduplicated
    assert product_urls(None) == []
    for bad in (42, {"href": b}, b"x.tif"):
        with pytest.raises(InputError, match="expected a product URL or path"):
            product_urls(bad)


def test_a_pathlib_path_of_a_url_returned_by_a_task_says_to_return_the_url_as_text(tmp_path: Path) -> None:
    """``Path("s3://bucket/ndvi/x.tif")`` is ``s3:/bucket/ndvi/x.tif``: it was
    registered as a missing local file under the working folder."""
    with pytest.raises(InputError, match=r"pass the URL as a str, e.g. 's3://bucket/ndvi/x.tif'"):
        product_urls([Path("s3://bucket/ndvi/x.tif")])

    @registers_in_stac(catalog=str(tmp_path / "catalog"), collection="x")
    def make() -> Path:
        return Path("s3://bucket/ndvi/x.tif")

    with pytest.raises(InputError, match="make returned .*pass the URL as a str"):
        make()
    assert not (tmp_path / "catalog").exists()


def test_artifact_key_is_valid_for_prefect() -> None:
    assert artifact_key_for("stac", "ndvi-v2") == "stac-ndvi-v2"  # already a key: itself
    key = artifact_key_for("stac", "NDVI_v2.1")
    assert key.startswith("stac-ndvi-v2-1-") and re.fullmatch(r"[a-z0-9-]+", key)


def test_artifact_keys_of_collections_that_differ_only_in_case_or_punctuation_differ() -> None:
    """``NDVI.v2`` and ``ndvi_v2`` (and ``ndvi-v2``) got one key: the second
    collection's runs overwrote the first's table artifact. Distinct now,
    and the same on every run."""
    keys = [artifact_key_for("backfill", c) for c in ("NDVI.v2", "ndvi_v2", "ndvi-v2", "Ndvi-V2")]
    assert len(set(keys)) == len(keys), keys
    assert keys == [artifact_key_for("backfill", c) for c in ("NDVI.v2", "ndvi_v2", "ndvi-v2", "Ndvi-V2")]
    for key in keys:
        check_artifact_key(key)  # Prefect takes each


# ---------------------------------------------------------------------------
# the task
# ---------------------------------------------------------------------------


def test_task_registers_items_and_publishes_a_table(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    products = [write_utm(tmp_path / "data"), write_cog(tmp_path / "data")]

    @flow(name="register-two")
    def register_two() -> list[dict[str, Any]]:
        return register_in_stac(products, catalog=str(catalog), collection="prefect-table")

    first = register_two(return_state=True)
    assert first.is_completed()
    results = first.result()
    assert [r["action"] for r in results] == ["created", "created"]
    for item_id in ("utm_20240513", "cog_20240105"):
        assert _item(catalog, "prefect-table", item_id).is_file()

    (artifact,) = read_artifacts(key="stac-prefect-table", flow_run=flow_run_id(first))
    rows = table_rows(artifact)
    assert [(r["id"], r["action"]) for r in rows] == [
        ("utm_20240513", "created"),
        ("cog_20240105", "created"),
    ]
    assert all(r["href"].endswith(f"{r['id']}.json") and r["error"] == "" for r in rows)
    assert artifact.task_run_id is not None  # attached to the task run

    second = register_two(return_state=True)  # idempotent: nothing changes
    (again,) = read_artifacts(key="stac-prefect-table", flow_run=flow_run_id(second))
    assert [r["action"] for r in table_rows(again)] == ["unchanged", "unchanged"]


def test_task_resolves_upstream_futures(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    data = tmp_path / "data"

    @task
    def produce(kind: str) -> Path:
        return write_utm(data) if kind == "utm" else write_cog(data)

    @flow(name="futures-to-stac")
    def pipeline() -> list[dict[str, Any]]:
        futures = produce.map(["utm", "cog"])
        return register_in_stac([futures], catalog=str(catalog), collection="from-futures")

    assert sorted(r["id"] for r in pipeline()) == ["cog_20240105", "utm_20240513"]
    assert _item(catalog, "from-futures", "cog_20240105").is_file()


def test_failed_upstream_errors_are_redacted_in_logs_results_and_artifact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed upstream (passed with allow_failure) whose error names a
    presigned URL and an s3 URL with keys: its row, the task's failure, the
    table artifact and the ERROR line carry it redacted."""
    catalog = tmp_path / "catalog"
    good = write_utm(tmp_path / "data")
    url = "https://bucket.s3.amazonaws.com/out.tif?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=SIGSECRET"

    @task(retries=0)
    def produce(kind: str) -> Path:
        if kind == "bad":
            raise OSError(f"upload to {url} failed; also tried s3://AKIAEXAMPLE:KEYSECRET@bucket/out.tif")
        return good

    @flow(name="upstream-secret")
    def pipeline() -> Any:
        futures = produce.map(["good", "bad"])
        state = register_in_stac(
            allow_failure(futures), catalog=str(catalog), collection="up", return_state=True
        )
        return state.state_details.task_run_id, state.result(raise_on_failure=False)

    run_logger = logging.getLogger("prefect.task_runs")
    run_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR, logger="prefect.task_runs"):
            task_run_id, exc = pipeline()
    finally:
        run_logger.removeHandler(caplog.handler)

    assert isinstance(exc, RegistrationFailed) and "1 of 2 product(s) failed" in str(exc)
    assert "upstream task failed: OSError" in str(exc) and "X-Amz-Signature=***" in str(exc)
    assert exc.__cause__ is None  # not chained to the unredacted upstream exception
    (artifact,) = read_artifacts(key="stac-up", task_run=task_run_id)
    failed = [r for r in exc.results if r["action"] == "error"]
    logged = [r.getMessage() for r in caplog.records if "upstream task" in r.getMessage()]
    assert len(failed) == 1 and logged
    for text in (str(exc), *map(str, exc.results), *map(str, table_rows(artifact)), *logged):
        assert "SECRET" not in text and "AKIAEXAMPLE" not in text, text


def test_bad_product_fails_the_task_after_registering_the_rest_and_is_not_retried(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    good, bad = write_utm(tmp_path / "data"), write_nocrs(tmp_path / "data")
    attempts: list[int] = []

    def count(task: Any, task_run: Any, state: Any) -> None:
        attempts.append(task_run.run_count)

    counted = register_in_stac.with_options(on_running=[count], retry_delay_seconds=0)
    task_run_id, state, exc = _run_task(
        lambda: counted([good, bad], catalog=str(catalog), collection="mixed", return_state=True)
    )

    assert state.is_failed()
    assert isinstance(exc, RegistrationFailed) and not exc.transient
    assert "1 of 2 product(s) failed" in str(exc) and str(bad) in str(exc) and "no CRS" in str(exc)
    assert _item(catalog, "mixed", "utm_20240513").is_file()  # the good one IS registered
    assert not _item(catalog, "mixed", "nocrs_20240513").exists()
    assert [r["action"] for r in exc.results] == ["created", "error"]

    assert attempts == [1]  # retries=3 configured, bad input not retried
    run = read_task_run(task_run_id)
    assert run.run_count == 1 and run.state.is_failed()
    (artifact,) = read_artifacts(key="stac-mixed", task_run=task_run_id)
    rows = table_rows(artifact)
    assert [(r["id"], r["action"]) for r in rows] == [
        ("utm_20240513", "created"),
        ("nocrs_20240513", "error"),
    ]
    assert "no CRS" in rows[1]["error"] and rows[1]["href"] == ""


def test_a_task_whose_every_product_failed_does_not_speak_of_others(tmp_path: Path) -> None:
    """With its only product failed, the task's error said "1 of 1
    product(s) failed ... (the others were registered)": there were none."""
    bad = write_nocrs(tmp_path / "data")
    _, state, exc = _run_task(
        lambda: register_in_stac(bad, catalog=str(tmp_path / "catalog"), collection="one", return_state=True)
    )
    assert state.is_failed() and isinstance(exc, RegistrationFailed)
    assert "1 of 1 product(s) failed" in str(exc) and "the others" not in str(exc), str(exc)


def test_task_takes_an_open_local_store_in_a_process_pool(tmp_path: Path) -> None:
    """Prefect pickles a task's parameters for its process pool (and Dask):
    an open local catalog (``catalog=open_store(path)``, as the task takes
    it) failed the flow with "TypeError: cannot pickle '_thread.lock'
    object" before anything was registered."""
    from prefect.task_runners import ProcessPoolTaskRunner

    from producer.store import open_store

    product = write_utm(tmp_path / "data")
    store = open_store(str(tmp_path / "catalog"))

    @flow(name="register-in-a-process", task_runner=ProcessPoolTaskRunner(max_workers=1))
    def in_a_process() -> Any:
        return register_in_stac.submit([str(product)], catalog=store, collection="pool").result()

    results = in_a_process()
    assert [(r["id"], r["action"]) for r in results] == [("utm_20240513", "created")]
    assert _item(tmp_path / "catalog", "pool", "utm_20240513").is_file()


def test_storage_error_is_retried_until_the_bucket_exists(tmp_path: Path, s3_server: S3Server) -> None:
    """A catalog bucket that does not exist yet: a real StoreError (NoSuchBucket)
    on the first attempt; the on_running hook of the second attempt creates the
    bucket, and the retry registers the product."""
    bucket = f"retry-{uuid.uuid4().hex[:10]}"
    product = write_utm(tmp_path / "data")
    attempts: list[int] = []

    def create_bucket_on_retry(task: Any, task_run: Any, state: Any) -> None:
        attempts.append(task_run.run_count)
        if len(attempts) == 2:
            s3_server.new_bucket(bucket)

    retried = register_in_stac.with_options(on_running=[create_bucket_on_retry], retry_delay_seconds=0)
    task_run_id, state, results = _run_task(
        lambda: retried(
            product,
            catalog=f"s3://{bucket}/stac",
            collection="retried",
            storage_options=s3_server.storage_options,
            return_state=True,
        )
    )

    assert state.is_completed(), results
    assert [r["action"] for r in results] == ["created"]
    assert len(attempts) == 2
    assert read_task_run(task_run_id).run_count == 2
    body = s3_server.client().get_object(Bucket=bucket, Key="stac/retried/utm_20240513/utm_20240513.json")[
        "Body"
    ]
    assert json.loads(body.read())["id"] == "utm_20240513"

    first, second = read_artifacts(key="stac-retried", task_run=task_run_id)
    (row,) = table_rows(first)
    assert row["action"] == "error" and "does not exist" in row["error"]
    assert [r["action"] for r in table_rows(second)] == ["created"]


def test_unusable_options_are_not_retried(tmp_path: Path) -> None:
    attempts: list[int] = []
    counted = register_in_stac.with_options(
        on_running=[lambda t, r, s: attempts.append(r.run_count)], retry_delay_seconds=0
    )
    _, state, exc = _run_task(
        lambda: counted(
            write_utm(tmp_path), catalog=str(tmp_path / "c"), collection="bad id!", return_state=True
        )
    )
    assert state.is_failed() and isinstance(exc, InputError)
    assert attempts == [1]


# ---------------------------------------------------------------------------
# the decorator
# ---------------------------------------------------------------------------


def test_decorator_under_task_registers_inside_the_task_run(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @task(name="make-product")
    @registers_in_stac(catalog=str(catalog), collection="decorated")
    def make_product(path: Path) -> Path:
        """Pretend to process; return the written product."""
        return path

    @flow(name="decorated-under")
    def pipeline() -> Any:
        return make_product(product, return_state=True)

    state = pipeline()
    value = state.result()
    assert value == product and isinstance(value, Path)  # passed through unchanged
    assert _item(catalog, "decorated", "utm_20240513").is_file()
    (artifact,) = read_artifacts(key="stac-decorated", task_run=state.state_details.task_run_id)
    assert [r["action"] for r in table_rows(artifact)] == ["created"]


def test_decorator_above_task_keeps_a_task(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    products = [str(write_utm(tmp_path / "data")), str(write_cog(tmp_path / "data"))]

    @registers_in_stac(catalog=str(catalog), collection="decorated-above")
    @task(name="make-products", retries=1)
    def make_products(paths: list[str]) -> list[str]:
        return paths

    assert isinstance(make_products, Task)
    assert make_products.name == "make-products" and make_products.retries == 1

    @flow(name="decorated-above")
    def pipeline() -> list[str]:
        return make_products.submit(products).result()

    assert pipeline() == products
    for item_id in ("utm_20240513", "cog_20240105"):
        assert _item(catalog, "decorated-above", item_id).is_file()


def test_a_decorated_tasks_retries_skip_a_bad_product_but_not_its_own_errors(tmp_path: Path) -> None:
    """``@task(retries=2)`` with ``@registers_in_stac``: a product with no CRS
    re-ran the whole producing function 3 times (it can never register).
    Above ``@task`` the decorator adds the condition itself; under it the
    task takes :func:`retry_unless_bad_input`. The function's own errors are
    still retried."""
    catalog = str(tmp_path / "catalog")
    bad = write_nocrs(tmp_path / "data")
    runs: list[str] = []

    @registers_in_stac(catalog=catalog, collection="retry")
    @task(retries=2, retry_delay_seconds=0)
    def above() -> Path:
        runs.append("above")
        return bad

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_bad_input)
    @registers_in_stac(catalog=catalog, collection="retry")
    def under() -> Path:
        runs.append("under")
        return bad

    @registers_in_stac(catalog=catalog, collection="retry")
    @task(retries=2, retry_delay_seconds=0)
    def flaky() -> Path:
        runs.append("flaky")
        if runs.count("flaky") < 3:
            raise RuntimeError("the processing failed this time")
        return write_utm(tmp_path / "data")

    @flow(name="decorated-retries")
    def pipeline() -> list[Any]:
        return [above(return_state=True), under(return_state=True), flaky(return_state=True)]

    first, second, third = pipeline()
    assert first.is_failed() and second.is_failed() and third.is_completed()
    assert runs == ["above", "under", "flaky", "flaky", "flaky"]


def test_an_async_decorated_tasks_retries_skip_a_bad_product_and_keep_the_users_condition(
    tmp_path: Path,
) -> None:
    """In an async task Prefect's ``state.result()`` is a coroutine (its
    async dispatch): the conditions never saw the exception, so a product
    with no CRS re-ran the async producing function 3 times (a RuntimeWarning
    "never awaited" only), and retry_on_storage_errors never retried a
    storage error. The user's own condition still decides the other errors."""
    import asyncio

    catalog = str(tmp_path / "catalog")
    bad = write_nocrs(tmp_path / "data")
    runs: list[str] = []

    def only_runtime_errors(task: Any, task_run: Any, state: Any) -> bool:
        return isinstance(state.result(raise_on_failure=False, _sync=True), RuntimeError)

    @registers_in_stac(catalog=catalog, collection="retry-async")
    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=only_runtime_errors)
    async def above() -> Path:
        runs.append("above")
        return bad

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_unless_bad_input)
    @registers_in_stac(catalog=catalog, collection="retry-async")
    async def under() -> Path:
        runs.append("under")
        return bad

    @registers_in_stac(catalog=catalog, collection="retry-async")
    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=only_runtime_errors)
    async def not_the_users() -> Path:
        runs.append("not-the-users")
        raise ValueError("the user's condition does not retry this")

    @flow(name="decorated-retries-async")
    async def pipeline() -> list[Any]:
        return [
            await above(return_state=True),
            await under(return_state=True),
            await not_the_users(return_state=True),
        ]

    states = asyncio.run(pipeline())
    assert all(state.is_failed() for state in states)
    assert runs == ["above", "under", "not-the-users"]


def test_retry_on_storage_errors_sees_the_failure_of_an_async_task() -> None:
    """An async task's StoreError was never retried by retry_on_storage_errors
    (the condition read a coroutine, no exception, and answered False)."""
    import asyncio

    from producer.errors import StoreError

    runs: list[int] = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_on_storage_errors)
    async def flaky_storage() -> int:
        runs.append(1)
        if len(runs) < 3:
            raise StoreError("s3://bucket/stac/catalog.json: the storage was unreachable; retry later")
        return len(runs)

    @flow(name="async-storage-retries")
    async def pipeline() -> int:
        return await flaky_storage()

    assert asyncio.run(pipeline()) == 3


def test_decorator_on_an_async_task(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = str(write_cog(tmp_path / "data"))

    @task(name="make-async")
    @registers_in_stac(catalog=str(catalog), collection="decorated-async")
    async def make_async() -> str:
        return product

    @flow(name="decorated-async")
    async def pipeline() -> tuple[str, Any]:
        from prefect.runtime import flow_run

        return await make_async(), flow_run.id

    import asyncio

    value, run_id = asyncio.run(pipeline())
    assert value == product
    assert _item(catalog, "decorated-async", "cog_20240105").is_file()
    (artifact,) = read_artifacts(key="stac-decorated-async", flow_run=run_id)
    assert [r["action"] for r in table_rows(artifact)] == ["created"]


def test_decorator_fails_the_task_with_a_clear_message(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    bad = write_nocrs(tmp_path / "data")

    @task(name="make-bad")
    @registers_in_stac(catalog=str(catalog), collection="decorated-bad")
    def make_bad() -> Path:
        return bad

    _, state, exc = _run_task(lambda: make_bad(return_state=True))
    assert state.is_failed()
    assert isinstance(exc, RegistrationFailed)
    message = str(exc)
    assert "make_bad" in message and "registration in STAC failed" in message
    assert str(bad) in message and "no CRS" in message
    assert not (catalog / "decorated-bad").exists() or not any((catalog / "decorated-bad").rglob("*.json"))


def test_decorator_rejects_a_wrong_return_value_and_unknown_options() -> None:
    @registers_in_stac(catalog="/nonexistent/catalog", collection="x")
    def returns_a_number() -> int:
        return 42

    with pytest.raises(InputError, match=r"returns_a_number returned 42"):
        returns_a_number()
    with pytest.raises(TypeError, match="unknown registration option"):
        registers_in_stac(catalog="c", collection="x", colection_meta={})


def test_decorator_on_a_plain_function_outside_prefect(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @registers_in_stac(catalog=str(catalog), collection="plain")
    def make() -> list[Path]:
        return [product]

    assert make() == [product]
    assert _item(catalog, "plain", "utm_20240513").is_file()


def test_task_and_decorator_take_the_catalog_as_a_pathlib_path(tmp_path: Path) -> None:
    """A ``pathlib.Path`` catalog failed both with an AttributeError
    (``'PosixPath' object has no attribute 'concurrent_safe'``)."""
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @registers_in_stac(catalog=catalog, collection="decorated-path")
    def make() -> Path:
        return product

    assert make() == product
    assert _item(catalog, "decorated-path", "utm_20240513").is_file()
    _, state, results = _run_task(
        lambda: register_in_stac(product, catalog=catalog, collection="task-path", return_state=True)
    )
    assert state.is_completed(), results
    assert [r["action"] for r in results] == ["created"]


def test_decorator_refuses_a_bad_collection_or_catalog_before_the_function_runs(tmp_path: Path) -> None:
    """Both were found only after the decorated function had run (and
    written its product): a task failed at the end of its work."""
    with pytest.raises(InputError, match="unsafe collection id 'ndvi/v2'"):
        registers_in_stac(catalog=str(tmp_path / "catalog"), collection="ndvi/v2")
    with pytest.raises(InputError, match="credentials"):
        registers_in_stac(catalog="s3://AKIAKEY:secret@bucket/stac", collection="ndvi")
    with pytest.raises(TypeError, match="catalog must be a URL or path"):
        registers_in_stac(catalog=None, collection="ndvi")  # type: ignore[arg-type]
    assert not (tmp_path / "catalog").exists()


def test_store_errors_and_bad_input_are_told_apart_without_prefect(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """The classification the retry condition relies on: a catalog bucket
    that does not exist (yet) is a storage error."""
    from producer.prefect import register_and_report

    with pytest.raises(RegistrationFailed) as info:
        register_and_report(
            write_utm(tmp_path / "data"),
            catalog=f"s3://missing-{uuid.uuid4().hex[:10]}/stac",
            collection="x",
            storage_options=s3_server.storage_options,
        )
    assert info.value.transient
    assert [r["error_type"] for r in info.value.failed] == ["storage"]
    # bad input into a healthy catalog: not transient
    with pytest.raises(RegistrationFailed) as info:
        register_and_report(write_nocrs(tmp_path / "data"), catalog=str(tmp_path / "ok"), collection="x")
    assert not info.value.transient
    assert [r["error_type"] for r in info.value.failed] == ["input"]


def test_a_catalog_under_a_file_fails_the_task_once(tmp_path: Path) -> None:
    """It was a storage error: the task retried it 3 times (2+10+30 s) and
    then said "the run can be retried"."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    product = write_utm(tmp_path / "data")
    task_run_id, state, exc = _run_task(
        lambda: register_in_stac(product, catalog=str(blocker / "catalog"), collection="x", return_state=True)
    )
    assert state.is_failed()
    assert isinstance(exc, InputError) and str(blocker) in str(exc) and "another catalog path" in str(exc)
    assert read_task_run(task_run_id).run_count == 1
    assert blocker.read_text() == "not a directory"


@pytest.mark.parametrize("catalog", ["s4://bucket/stac", "hdfs2://bucket/stac"])
def test_a_catalog_url_of_an_unknown_scheme_fails_the_task_once(tmp_path: Path, catalog: str) -> None:
    """A mistyped scheme was a storage error: the task retried it 3 times
    (2+10+30 s), then said "the run can be retried"."""
    product = write_utm(tmp_path / "data")
    task_run_id, state, exc = _run_task(
        lambda: register_in_stac(product, catalog=catalog, collection="x", return_state=True)
    )
    assert state.is_failed()
    assert isinstance(exc, InputError), exc
    assert catalog in str(exc) and "scheme" in str(exc) and "retried" not in str(exc)
    assert read_task_run(task_run_id).run_count == 1


def test_decorator_and_task_take_replace_for_another_products_item(tmp_path: Path) -> None:
    """The identity error tells Python callers to pass replace=True: the
    Prefect task and decorator must accept it and pass it on."""
    catalog = tmp_path / "catalog"
    first = write_utm(tmp_path / "a")
    second = write_utm(tmp_path / "b")  # same file name, another product

    @registers_in_stac(catalog=str(catalog), collection="twins")
    def make(path: Path) -> Path:
        return path

    make(first)
    with pytest.raises(Exception, match="replace=True"):
        make(second)
    replacing = registers_in_stac(catalog=str(catalog), collection="twins", replace=True)(lambda: second)
    assert replacing() == second
    assert json.loads(_item(catalog, "twins", "utm_20240513").read_text())["assets"]["data"]["href"] == str(
        second
    )

    @flow(name="replace-in-task")
    def pipeline() -> Any:
        return register_in_stac(first, catalog=str(catalog), collection="twins", replace=True)

    (row,) = pipeline()
    assert row["action"] == "updated"
    assert json.loads(_item(catalog, "twins", "utm_20240513").read_text())["assets"]["data"]["href"] == str(
        first
    )


# ---------------------------------------------------------------------------
# artifact keys are checked before anything is written
# ---------------------------------------------------------------------------


def test_a_bad_artifact_key_is_refused_before_anything_is_registered(tmp_path: Path) -> None:
    """Prefect checks an artifact key only when the artifact is created, after
    the registration: the task would register, then fail (and be rerun)."""
    catalog = tmp_path / "catalog"
    product = write_utm(tmp_path / "data")

    @flow(name="bad-artifact-key")
    def pipeline() -> Any:
        return register_in_stac(product, catalog=str(catalog), collection="keys", artifact_key="My_Key")

    state = pipeline(return_state=True)
    assert state.is_failed()
    with pytest.raises(
        InputError, match=r"artifact_key 'My_Key'.*lowercase letters, digits and dashes"
    ) as info:
        state.result()
    assert "'my-key'" in str(info.value)  # a key that would do
    assert not catalog.exists()  # nothing written

    with pytest.raises(InputError, match=r"artifact_key 'Nightly Run'"):  # when the decorator is applied
        registers_in_stac(catalog=str(catalog), collection="keys", artifact_key="Nightly Run")
    assert not catalog.exists()


def test_decorator_returns_an_iterator_it_registered_as_a_list(tmp_path: Path) -> None:
    """Registration consumed a returned generator/iterator: the caller got an
    exhausted one, and a properties function saw an exhausted one too."""
    catalog = tmp_path / "catalog"
    products = [write_utm(tmp_path / "data"), write_cog(tmp_path / "data")]
    seen: list[Any] = []

    def level(value: Any) -> dict[str, Any]:
        seen.append(value)
        return {"processing:level": "L2"} if list(value) else {}

    @registers_in_stac(catalog=str(catalog), collection="gen", properties=level)
    def make_generator() -> Any:
        return (str(p) for p in products)

    @registers_in_stac(catalog=str(catalog), collection="gen2")
    def make_map() -> Any:
        return map(str, products)

    @registers_in_stac(catalog=str(catalog), collection="gen3")
    async def make_async() -> Any:
        return iter([str(products[0])])

    assert make_generator() == [str(p) for p in products]
    assert seen == [[str(p) for p in products]]
    item = json.loads(_item(catalog, "gen", "utm_20240513").read_text())
    assert item["properties"]["processing:level"] == "L2"
    assert make_map() == [str(p) for p in products]
    assert _item(catalog, "gen2", "cog_20240105").is_file()

    import asyncio

    assert asyncio.run(make_async()) == [str(products[0])]
    assert _item(catalog, "gen3", "utm_20240513").is_file()
    # a list or a str is still passed through as it is
    single = registers_in_stac(catalog=str(catalog), collection="gen4")(lambda: str(products[0]))
    assert single() == str(products[0])
