"""What the Prefect server stores of a backfill, reconcile or event run holds
no secret, and a backfill of nothing fails.

Against the session's real Prefect server (``prefect_harness``): the flow
runs' parameters (parent and sub-flow), artifacts, logs and state messages
are read back from the API.

* the pgSTAC DSN comes from ``STAC_PGSTAC_DSN`` in the worker's environment,
  never from a flow parameter, and is not copied into the sub-flow's;
* a catalog URL with credentials is refused before it is named anywhere, and
  a presigned prefix is redacted in the artifact, logs and failure message;
* a prefix that holds no product fails the run, naming what it holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from producer.errors import InputError
from producer.options import RegisterOptions
from producer.worker_secrets import dsn_has_password, with_worker_secrets
from tests.crashes import write_tile
from tests.prefect_harness import flow_run_id, read_artifacts
from tests.s3server import S3Server

pytestmark = pytest.mark.usefixtures("prefect_harness")

PASSWORD = "Fl0wRunS3cret"
#: nothing listens on port 1
UNREACHABLE_DSN = f"postgresql://stac:{PASSWORD}@127.0.0.1:1/stac"


def _with_password(dsn: str) -> str:
    """The test database's DSN with a password in it (its trust authentication ignores it)."""
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def _pgstac_ids(dsn: str, collection: str) -> list[str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id FROM pgstac.items WHERE collection = %s ORDER BY id", (collection,))
        return [row[0] for row in rows.fetchall()]


def _runs_stored(flow_run: UUID) -> list[Any]:
    """The flow run and its sub-flow runs, as the server stores them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(flow_run)
        subs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run]))
        )
    return [parent, *subs]


def _stored_text(flow_run: UUID) -> str:
    """Everything the server holds of a flow run and its sub-flow runs: their
    parameters and state messages, the artifacts and the log lines."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the run's log lines reach the server in the background
    runs = _runs_stored(flow_run)
    with get_client(sync_client=True) as client:
        logs = client.request(
            "POST",
            "/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [str(r.id) for r in runs]}}, "limit": 200},
        ).json()
    artifacts = [a.model_dump(mode="json") for r in runs for a in read_artifacts(flow_run=r.id)]
    stored = [
        *(r.parameters for r in runs),
        *(r.state.message if r.state else None for r in runs),
        artifacts,
        [line["message"] for line in logs],
    ]
    return json.dumps(stored, default=str)


# ---------------------------------------------------------------------------
# D4: the pgSTAC DSN
# ---------------------------------------------------------------------------


def test_backfill_reads_the_pgstac_dsn_from_the_worker_environment_and_stores_it_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pgstac_dsn: str
) -> None:
    from flows.backfill import backfill

    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    write_tile(tmp_path / "data", "p1_20240106.tif", 11, 50.0)
    monkeypatch.setenv("STAC_PGSTAC_DSN", _with_password(pgstac_dsn))
    state = backfill(str(tmp_path / "data"), str(tmp_path / "catalog"), "c", concurrency=1, return_state=True)

    assert state.is_completed(), state
    assert state.result()["created"] == 2
    assert _pgstac_ids(pgstac_dsn, "c") == ["p0_20240105", "p1_20240106"]  # the worker's database
    runs = _runs_stored(flow_run_id(state))
    assert len(runs) == 2  # the backfill and its batches' sub-flow
    assert PASSWORD not in _stored_text(flow_run_id(state))


def test_backfill_refuses_a_dsn_with_a_password_in_its_parameters(tmp_path: Path) -> None:
    from flows.backfill import backfill

    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    catalog = tmp_path / "catalog"
    options = RegisterOptions(pgstac=f"postgresql://stac:{PASSWORD}@db.internal:5432/stac", dry_run=True)
    state = backfill(str(tmp_path / "data"), str(catalog), "c", options=options, return_state=True)

    assert state.is_failed()
    with pytest.raises(InputError, match="options.pgstac holds a database password") as info:
        state.result()
    assert "set STAC_PGSTAC_DSN in the environment of the worker" in str(info.value)
    assert "change that password" in str(info.value)
    assert PASSWORD not in str(info.value)
    # refused before anything ran: no sub-flow copied it, nothing was written
    runs = _runs_stored(flow_run_id(state))
    assert len(runs) == 1
    assert not catalog.exists()


def test_event_and_reconcile_flows_refuse_a_dsn_with_a_password_in_their_parameters(tmp_path: Path) -> None:
    from flows.events import handle_s3_event
    from flows.reconcile import reconcile_catalog

    options = RegisterOptions(pgstac=f"postgresql://stac:{PASSWORD}@db.internal/stac")
    state = handle_s3_event(
        {"Records": []}, str(tmp_path / "catalog"), "c", options=options, return_state=True
    )
    with pytest.raises(InputError, match="options.pgstac holds a database password"):
        state.result()
    state = reconcile_catalog(str(tmp_path / "catalog"), options=options, return_state=True)
    with pytest.raises(InputError, match="options.pgstac holds a database password"):
        state.result()
    assert not (tmp_path / "catalog").exists()


def test_event_flow_reads_the_pgstac_dsn_from_the_worker_environment(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, pgstac_dsn: str
) -> None:
    from flows.events import handle_s3_event

    path = write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    key = f"{tmp_path.name}/products/{path.name}"
    s3_server.client().upload_file(str(path), s3_server.bucket, key)
    payload = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": s3_server.bucket}, "object": {"key": key, "size": 1}},
            }
        ]
    }
    monkeypatch.setenv("STAC_PGSTAC_DSN", _with_password(pgstac_dsn))
    state = handle_s3_event(
        payload,
        catalog=str(tmp_path / "catalog"),
        collection="c",
        storage_options=s3_server.keyless_options,
        return_state=True,
    )
    assert state.is_completed(), state
    assert _pgstac_ids(pgstac_dsn, "c") == ["p0_20240105"]
    assert PASSWORD not in _stored_text(flow_run_id(state))


@pytest.mark.parametrize(
    "where",
    ["storage_options", "options.catalog_storage_options", "storage_options.client_kwargs"],
)
def test_flows_refuse_storage_credentials_in_their_parameters(tmp_path: Path, where: str) -> None:
    """Prefect stores flow-run parameters in plain text, sub-flow runs' too
    (a backfill stored its storage_options twice). Before: keys given as
    storage options were taken and stored; now each flow refuses them before
    anything runs, naming where they were and the worker's credentials."""
    from flows.backfill import backfill
    from flows.events import handle_s3_event
    from flows.reconcile import reconcile_catalog

    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    catalog = str(tmp_path / "catalog")
    creds = {"key": "AKIAEXAMPLE", "secret": PASSWORD}
    if where == "storage_options":
        kwargs: dict[str, Any] = {"storage_options": creds}
    elif where == "storage_options.client_kwargs":
        kwargs = {"storage_options": {"client_kwargs": {"aws_secret_access_key": PASSWORD}}}
    else:
        kwargs = {"options": RegisterOptions(catalog_storage_options=creds)}
    states = [
        backfill(str(tmp_path / "data"), catalog, "c", return_state=True, **kwargs),
        handle_s3_event({"Records": []}, catalog, "c", return_state=True, **kwargs),
        reconcile_catalog(catalog, return_state=True, **kwargs),
    ]
    for state in states:
        assert state.is_failed(), state
        with pytest.raises(InputError, match="holds storage credentials") as info:
            state.result()
        message = str(info.value)
        assert where.split(".client_kwargs")[0] in message and PASSWORD not in message, message
        assert "IAM role" in message and "rotate" in message, message
    assert len(_runs_stored(flow_run_id(states[0]))) == 1  # no sub-flow copied them
    assert not (tmp_path / "catalog").exists()


def test_storage_options_naming_a_way_to_authenticate_are_no_secret() -> None:
    """gcsfs's ``token="google_default"`` or ``"anon"`` says how to
    authenticate, it holds no secret: a flow takes it; a key anywhere inside
    the options is refused."""
    from producer.worker_secrets import refuse_storage_credentials

    refuse_storage_credentials({"token": "google_default", "client_kwargs": {"endpoint_url": "http://x"}})
    refuse_storage_credentials({"anon": True, "token": "anon"})
    with pytest.raises(InputError, match=r"storage_options\.config\.aws_session_token holds"):
        refuse_storage_credentials({"config": {"aws_session_token": "t0k"}})


def test_worker_secrets_fill_only_what_the_options_leave_unset() -> None:
    env = {"STAC_PGSTAC_DSN": UNREACHABLE_DSN, "STAC_ID_TEMPLATE": "{stem}-x"}
    assert with_worker_secrets(None, {}) is None
    filled = with_worker_secrets(None, env)
    assert filled is not None and filled.pgstac == UNREACHABLE_DSN
    assert filled.id_template == RegisterOptions().id_template  # only secrets come from there
    given = RegisterOptions(pgstac="postgresql:///stac")
    assert with_worker_secrets(given, env) is given
    assert dsn_has_password(UNREACHABLE_DSN)
    assert dsn_has_password("postgresql://db/stac?password=x")
    assert dsn_has_password("host=db password=x dbname=stac")
    assert not dsn_has_password("postgresql:///stac")
    assert not dsn_has_password("postgresql://stac@db/stac")


# ---------------------------------------------------------------------------
# D2: the catalog URL and the prefix
# ---------------------------------------------------------------------------


def test_backfill_refuses_a_catalog_url_with_credentials_before_naming_it(tmp_path: Path) -> None:
    from flows.backfill import backfill

    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    catalog = f"s3://AKIAFAKEKEY:{PASSWORD}@bucket/stac"
    state = backfill(str(tmp_path / "data"), catalog, "c2", concurrency=1, return_state=True)

    assert state.is_failed()
    with pytest.raises(InputError, match="credentials inside a s3:// URL are not supported"):
        state.result()
    stored = _stored_text(flow_run_id(state))
    # the run's parameters hold what the caller passed; nothing the flow wrote does
    assert stored.count(PASSWORD) == 1
    assert [a.key for a in read_artifacts(flow_run=flow_run_id(state)) if a.type == "table"] == []


@pytest.mark.parametrize("flow_name", ["backfill", "reconcile", "event"])
def test_a_catalog_url_with_credentials_is_refused_advising_the_workers_environment(
    tmp_path: Path, flow_name: str
) -> None:
    """The refusal advised storage_options={'key': 'KEY', 'secret': 'SECRET'}:
    a flow parameter, which Prefect stores in plain text."""
    from flows.backfill import backfill
    from flows.events import handle_s3_event
    from flows.reconcile import reconcile_catalog

    catalog = f"s3://AKIAFAKEKEY:{PASSWORD}@bucket/stac"
    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    runs = {
        "backfill": lambda: backfill(str(tmp_path / "data"), catalog, "c", concurrency=1, return_state=True),
        "reconcile": lambda: reconcile_catalog(catalog, return_state=True),
        "event": lambda: handle_s3_event({"Records": []}, catalog, "c", return_state=True),
    }
    state = runs[flow_name]()
    with pytest.raises(InputError, match="credentials inside a s3:// URL are not supported") as info:
        state.result()
    message = str(info.value)
    assert "storage_options=" not in message and "'secret'" not in message, message
    assert "environment of the worker" in message and "IAM role" in message, message
    assert PASSWORD not in message and PASSWORD not in (state.message or "")


def test_backfill_redacts_a_presigned_prefix_in_its_artifact_logs_and_failure(tmp_path: Path) -> None:
    from flows.backfill import backfill

    prefix = (
        f"https://127.0.0.1:1/products/x_20240101.tif?X-Amz-Credential=AKIAFAKE&X-Amz-Signature={PASSWORD}"
    )
    state = backfill(prefix, str(tmp_path / "catalog"), "c2b", concurrency=1, return_state=True)

    assert state.is_failed()
    assert "X-Amz-Signature=***" in (state.message or "") and PASSWORD not in (state.message or "")
    (artifact,) = read_artifacts(key="backfill-c2b", flow_run=flow_run_id(state))
    assert "X-Amz-Signature=***" in artifact.description and PASSWORD not in artifact.description
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.request(
            "POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [str(flow_run_id(state))]}}}
        ).json()
    assert any("product(s) under" in line["message"] for line in logs)
    assert [line["message"] for line in logs if PASSWORD in line["message"]] == []


def test_backfill_copies_no_presigned_url_into_its_sub_flow_parameters(tmp_path: Path) -> None:
    """The batches sub-flow took the product URLs as a parameter: Prefect
    stored each presigned URL, signature and all, once more in plain text."""
    from flows.backfill import backfill

    prefix = (
        f"https://127.0.0.1:1/products/x_20240101.tif?X-Amz-Credential=AKIAFAKE&X-Amz-Signature={PASSWORD}"
    )
    state = backfill(prefix, str(tmp_path / "catalog"), "c2c", concurrency=1, return_state=True)
    assert state.is_failed()
    runs = _runs_stored(flow_run_id(state))
    assert len(runs) == 2  # the batches ran, in their sub-flow
    # the caller's own parameter holds it; nothing the flow wrote does
    assert _stored_text(flow_run_id(state)).count(PASSWORD) == 1


# ---------------------------------------------------------------------------
# D3: a prefix without products
# ---------------------------------------------------------------------------


def test_backfill_of_a_prefix_without_products_fails_naming_what_it_holds(
    tmp_path: Path, s3_server: S3Server
) -> None:
    from flows.backfill import backfill

    client = s3_server.client()
    client.put_object(Bucket=s3_server.bucket, Key=f"{tmp_path.name}/jp2/scene_20240105.jp2", Body=b"J2K")
    catalog = s3_server.url(f"{tmp_path.name}/stac")
    state = backfill(
        s3_server.url(f"{tmp_path.name}/jp2/"),
        catalog,
        "ndvi",
        storage_options=s3_server.keyless_options,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(InputError, match=r"no products found in s3://.*/jp2/?: folders and prefixes") as info:
        state.result()
    message = str(info.value)
    assert "it holds files ending in .jp2 (1)" in message
    assert "Give prefix a list of such files, or a glob" in message and "--" not in message
    assert "Contents" not in client.list_objects_v2(Bucket=s3_server.bucket, Prefix=f"{tmp_path.name}/stac")

    (tmp_path / "empty").mkdir()
    state = backfill(str(tmp_path / "empty"), str(tmp_path / "catalog"), "c", return_state=True)
    with pytest.raises(InputError, match="it holds no file"):
        state.result()
    state = backfill(str(tmp_path / "empty" / "*.tiff"), str(tmp_path / "catalog"), "c", return_state=True)
    with pytest.raises(InputError, match=r"\*\.tiff matches no file; check the pattern"):
        state.result()
    assert not (tmp_path / "catalog").exists()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://stac@db/stac?sslpassword=KeyPassw0rd",
        "host=db dbname=stac sslpassword=KeyPassw0rd",
        "host=db dbname='postgresql://stac:KeyPassw0rd@db/stac'",
        "postgresql://db/stac?dbname=postgresql%3A%2F%2Fstac%3AKeyPassw0rd%40db%2Fstac",
    ],
    ids=["url-sslpassword", "kv-sslpassword", "kv-dbname-url", "url-dbname-url"],
)
def test_a_dsn_whose_password_hides_in_sslpassword_or_an_expanded_dbname_is_a_secret(dsn: str) -> None:
    """libpq takes a password from ``sslpassword`` (the client key's) and
    from a ``dbname`` that is itself a connection string: such a DSN was
    taken as a flow parameter, which Prefect stores in plain text."""
    from producer.worker_secrets import refuse_secret_parameters

    assert dsn_has_password(dsn)
    with pytest.raises(InputError, match="options.pgstac holds a database password") as info:
        refuse_secret_parameters(RegisterOptions(pgstac=dsn))
    assert "KeyPassw0rd" not in str(info.value)
    assert not dsn_has_password("host=db dbname=stac sslmode=require")
    assert not dsn_has_password("postgresql://stac@db/stac?sslmode=require&dbname=stac")


@pytest.mark.parametrize("where", ["catalog", "prefix", "task"])
def test_a_url_with_credentials_in_a_flow_run_says_to_rotate_them_and_not_storage_options(
    tmp_path: Path, where: str
) -> None:
    """A catalog, prefix or product URL with ``KEY:SECRET@`` in a flow run
    was told to give the credentials "... or as storage options. Fix it with
    an IAM role ... (not storage_options ...)" (the register task: "Fix it
    with storage_options={'key': ...}"), and never to rotate them, though
    Prefect had stored them with the run's parameters."""
    from prefect import flow

    from flows.backfill import backfill
    from producer.prefect import register_in_stac

    @flow
    def register_flow(paths: list[str], catalog: str) -> Any:
        return register_in_stac(paths, catalog=catalog, collection="c")

    secret_url = f"s3://AKIAFAKEKEY:{PASSWORD}@bucket"
    write_tile(tmp_path / "data", "p0_20240105.tif", 10, 50.0)
    runs = {
        "catalog": lambda: backfill(
            str(tmp_path / "data"), f"{secret_url}/stac", "c", concurrency=1, return_state=True
        ),
        "prefix": lambda: backfill(
            f"{secret_url}/data/", str(tmp_path / "stac"), "c", concurrency=1, return_state=True
        ),
        "task": lambda: register_flow(
            [f"{secret_url}/data/p0_20240105.tif"], str(tmp_path / "stac"), return_state=True
        ),
    }
    state = runs[where]()
    with pytest.raises(InputError, match="credentials inside a s3:// URL are not supported") as info:
        state.result()
    message = str(info.value)
    assert "rotate" in message, message
    assert "as storage options" not in message and "storage_options=" not in message, message
    assert "IAM role" in message and "environment of the worker" in message, message
    assert PASSWORD not in message and PASSWORD not in (state.message or "")
    assert not (tmp_path / "stac").exists()


def test_a_dsn_whose_password_holds_a_raw_slash_counts_as_holding_a_password() -> None:
    """urlsplit ends the authority of ``postgresql://u:Pa/ss@db/stac`` at the
    '/' inside the password: no password found, so such a flow parameter was
    not refused with the advice to rotate it (Prefect had stored it)."""
    assert dsn_has_password("postgresql://u:Pa/ss@db/stac")
    assert dsn_has_password("postgres://u:/leading@db:5432/stac")
    assert not dsn_has_password("postgresql://stac@db/stac?options=-c%20x")
    assert not dsn_has_password("postgresql://db/stac")
