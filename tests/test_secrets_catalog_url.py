"""A catalog URL with credentials in it (``s3://KEY:SECRET@bucket/stac``) is
refused where the catalog store is opened, like such a product URL: a clear
error naming the catalog (redacted) and the fix in the caller's spelling,
before any request, nothing secret printed or logged; CLI exit 2. Before, it
reached botocore, whose message printed the secret in full ("Invalid bucket
name "KEY:SECRET@bkt"") and advised to "check the endpoint and network"."""

from __future__ import annotations

import errno
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.redact import redact
from producer.store import open_store
from tests.crashes import write_tile

KEY = "AKIAEXAMPLEKEY0001"
SECRET = "wJalrXUtnFEMI-TOPSECRET"
CATALOGS = {
    "s3": f"s3://{KEY}:{SECRET}@bkt/stac",
    "s3-slash-secret": f"s3://{KEY}:{SECRET}/x@bkt/stac",  # AWS secrets may hold '/'
    "s3-user-only": f"s3://{SECRET}@bkt/stac",
    "gcs": f"gs://{KEY}:{SECRET}@bkt/stac",
    "memory": f"memory://{KEY}:{SECRET}@host/stac",
}


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """An endpoint on 127.0.0.1 that accepts nothing: a connection made to it
    stays pending, so the test can tell whether any request was attempted."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", sock
    sock.close()


def _connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except OSError as exc:
        assert exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
        return False
    conn.close()
    return True


def _leaks(text: str) -> bool:
    return SECRET in text or KEY in text or "TOPSECRET" in text


@pytest.mark.parametrize("url", list(CATALOGS.values()), ids=list(CATALOGS))
def test_open_store_refuses_credentials_in_the_catalog_url_without_echoing_them(url: str) -> None:
    with pytest.raises(InputError) as info:
        open_store(url, {"endpoint_url": "http://127.0.0.1:9"})
    message = str(info.value)
    assert not _leaks(message)
    assert "catalog" in message
    assert "://***@bkt/stac" in message or "://***@host/stac" in message
    assert "storage_options={'key':" in message  # the fix, spelled for Python
    assert "environment" in message


def _verbs(catalog: str, product: str, endpoint: str) -> dict[str, list[str]]:
    o = ["-o", f"endpoint_url={endpoint}"]
    return {
        "register": ["register", product, "-c", catalog, "--collection", "c", *o],
        "remove": ["remove", "x", "-c", catalog, "--collection", "c", *o],
        "reconcile": [
            "reconcile",
            catalog,
            "--fix",
            "--data",
            str(Path(product).parent),
            "--collection",
            "c",
            *o,
        ],
        "validate": ["validate", catalog, *o],
        "search": ["search", catalog, *o],
    }


@pytest.mark.parametrize("verb", ["register", "remove", "reconcile", "validate", "search"])
@pytest.mark.parametrize("which", ["s3", "s3-slash-secret"])
def test_cli_refuses_a_catalog_url_with_credentials_exit_2_nothing_secret_shown_no_request(
    tmp_path: Path,
    listener: tuple[str, socket.socket],
    caplog: pytest.LogCaptureFixture,
    verb: str,
    which: str,
) -> None:
    endpoint, sock = listener
    product = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    args = _verbs(CATALOGS[which], str(product), endpoint)[verb]
    with caplog.at_level(logging.DEBUG):
        res = CliRunner().invoke(main, ["-vv", *args])
    out = res.output
    assert res.exit_code == 2, out
    assert not _leaks(out)
    assert not any(_leaks(r.getMessage()) for r in caplog.records)
    assert "s3://***@bkt/stac" in out and "credentials" in out
    assert "-o key=" in out and "-o secret=" in out  # the fix, spelled for the CLI
    assert "storage_options=" not in out
    assert "check the endpoint" not in out
    assert not _connected(sock)  # refused before any request
    assert not (tmp_path / "bkt").exists()


def test_python_verbs_refuse_a_catalog_url_with_credentials(tmp_path: Path) -> None:
    product = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    url = CATALOGS["s3"]
    so = {"endpoint_url": "http://127.0.0.1:9"}
    calls = {
        "register": lambda: producer.register([product], catalog=url, collection="c", storage_options=so),
        "remove": lambda: producer.remove("x", catalog=url, collection="c", storage_options=so),
        "reconcile": lambda: producer.reconcile(url, fix=True, storage_options=so),
        "validate": lambda: producer.validate_catalog(url, storage_options=so),
        "search": lambda: producer.search(url, storage_options=so),
    }
    for name, call in calls.items():
        with pytest.raises(InputError) as info:
            call()
        assert not _leaks(str(info.value)), name
        assert "storage_options={'key':" in str(info.value), name


def test_handle_event_refuses_a_catalog_url_with_credentials(tmp_path: Path) -> None:
    event = {"Records": [{"s3": {"bucket": {"name": "data"}, "object": {"key": "x_20240101.tif"}}}]}
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps(event))
    res = CliRunner().invoke(
        main,
        ["handle-event", str(payload), "-c", CATALOGS["s3"], "--collection", "c", "-o", "endpoint_url=x"],
    )
    assert not _leaks(res.output)


@pytest.mark.parametrize(
    "text, shown",
    [
        (f"postgresql://app:{SECRET}@db:5432/stac failed", "postgresql://***@db:5432/stac failed"),
        (f"gs://{KEY}:{SECRET}@bkt/x", "gs://***@bkt/x"),
        (f"abfs://acct:{SECRET}@container/x", "abfs://***@container/x"),
        (f"redis://:{SECRET}@cache:6379/0", "redis://***@cache:6379/0"),
        (f"S3+HTTPS://{KEY}:{SECRET}@h/x", "S3+HTTPS://***@h/x"),
        (f"'ftp://u:{SECRET}@h/x'", "'ftp://***@h/x'"),
    ],
)
def test_redact_masks_userinfo_of_any_scheme(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_the_event_handlers_config_refuses_it_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    """The handler's config accepted such a URL and failed each event at
    run time, while the Prefect event flow named the raw URL in its table
    artifact's description; now the config refuses it when it is made."""
    from producer.events import HandlerConfig

    with caplog.at_level(logging.DEBUG), pytest.raises(InputError) as info:
        HandlerConfig(catalog=CATALOGS["s3"], collection="c")
    assert not _leaks(str(info.value)) and not _leaks(caplog.text)


def test_the_prefect_task_body_refuses_it_before_naming_the_catalog(caplog: pytest.LogCaptureFixture) -> None:
    """With nothing to register, ``register_and_report`` logged "nothing to
    register into ... <catalog>" with the credentials in it."""
    from producer.prefect import register_and_report

    with caplog.at_level(logging.DEBUG), pytest.raises(InputError) as info:
        register_and_report([], catalog=CATALOGS["s3"], collection="c")
    assert not _leaks(str(info.value)) and not _leaks(caplog.text)


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
@pytest.mark.parametrize("verb", ["register", "validate"])
def test_an_endpoint_url_with_credentials_is_refused_exit_2_with_either_client(
    tmp_path: Path,
    listener: tuple[str, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    verb: str,
) -> None:
    """``-o endpoint_url=http://user:password@host``: refused before any
    request, naming the option (the password masked) and the fix, exit 2.
    Was: s3fs failed each request with a retryable "HTTP Client raised an
    unhandled exception: Cannot combine AUTHORIZATION header...", exit 1,
    while obstore sent the credentials to the server."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    endpoint, sock = listener
    host = endpoint.split("://", 1)[1]
    product = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    o = ["-o", f"endpoint_url=http://{KEY}:{SECRET}@{host}"]
    args = {
        "register": ["register", str(product), "-c", "s3://bkt/stac", "--collection", "c", *o],
        "validate": ["validate", "s3://bkt/stac", *o],
    }[verb]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert not _leaks(res.output)
    assert "endpoint_url" in res.output and "credentials" in res.output and "-o key=" in res.output
    assert not _connected(sock)


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
@pytest.mark.parametrize("verb", ["register", "register-s3-product", "validate"])
@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_an_endpoint_with_credentials_in_the_environment_is_refused_exit_2_with_either_client(
    tmp_path: Path,
    listener: tuple[str, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    verb: str,
    variable: str,
) -> None:
    """The same endpoint given as ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``)
    in the environment, with no endpoint_url option: refused before any
    request, naming the variable (the password masked) and the fix, exit 2.
    Was: s3fs failed each request with a retryable "Cannot combine
    AUTHORIZATION header...", exit 1 ("check the endpoint and network"),
    while obstore sent the credentials to the server."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    endpoint, sock = listener
    host = endpoint.split("://", 1)[1]
    monkeypatch.setenv(variable, f"http://{KEY}:{SECRET}@{host}")
    product = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    args = {
        "register": ["register", str(product), "-c", "s3://bkt/stac", "--collection", "c"],
        "register-s3-product": [
            "register",
            "s3://bkt/x.tif",
            "-c",
            str(tmp_path / "cat"),
            "--collection",
            "c",
        ],
        "validate": ["validate", "s3://bkt/stac"],
    }[verb]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    assert not _leaks(res.output)
    assert variable in res.output and "credentials" in res.output and f"http://{host}" in res.output
    assert not _connected(sock)
    assert not (tmp_path / "cat").exists()


def test_an_endpoint_with_credentials_in_the_environment_is_refused_for_literal_products_and_events(
    tmp_path: Path, listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Products taken literally (``expand=False``, as the event handler
    registers them) are listed by nobody first: refused where the
    registration starts, and the event handler refuses it at start-up; a
    local registration, or an ``endpoint_url`` option of its own, is not
    concerned."""
    from producer.events import HandlerConfig

    endpoint, sock = listener
    host = endpoint.split("://", 1)[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{KEY}:{SECRET}@{host}")
    catalog = str(tmp_path / "cat")
    with pytest.raises(InputError, match="AWS_ENDPOINT_URL") as caught:
        producer.register(["s3://bkt/x.tif"], catalog=catalog, collection="c", expand=False)
    assert not _leaks(str(caught.value)) and f"AWS_ENDPOINT_URL=http://{host}" in str(caught.value)
    with pytest.raises(InputError, match="the products of S3 events") as caught:
        HandlerConfig(catalog=catalog, collection="c")
    assert not _leaks(str(caught.value))
    assert not _connected(sock) and not (tmp_path / "cat").exists()
    product = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    (local,) = producer.register([product], catalog=catalog, collection="c")
    assert local.action == "created", local.error
    HandlerConfig(catalog=catalog, collection="c", storage_options={"endpoint_url": endpoint})


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:99999", "http://127.0.0.1:port", "http://:9000"])
def test_an_endpoint_url_with_a_bad_port_or_no_host_is_a_usage_error_with_either_client(
    monkeypatch: pytest.MonkeyPatch, client: str, endpoint: str
) -> None:
    """Was: s3fs failed it as a retryable storage error ("not a valid URI;
    check the endpoint and network", exit 1); obstore's Rust code panicked,
    printing a backtrace on stderr, then "the obstore client failed
    (called `Result::unwrap()` on an `Err` value: InvalidPort)"."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    res = CliRunner().invoke(main, ["validate", "s3://bkt/stac", "-o", f"endpoint_url={endpoint}"])
    assert res.exit_code == 2, res.output
    assert "is no endpoint URL" in res.output and "unwrap" not in res.output, res.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    res = CliRunner().invoke(main, ["validate", "s3://bkt/stac"])
    assert res.exit_code == 2 and "AWS_ENDPOINT_URL" in res.output, res.output


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
@pytest.mark.parametrize("option", ["key", "secret", "token"])
def test_a_credential_holding_a_line_end_is_a_usage_error_not_a_network_fault(
    tmp_path: Path,
    listener: tuple[str, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    option: str,
) -> None:
    """``-o token="$(cat token.txt)"`` of a file with CRLF line ends keeps the
    ``\\r``: s3fs failed every request with "Forbidden control character
    detected in headers" as a retryable "check the endpoint and network"
    (exit 1), obstore's Rust code panicked (InvalidHeaderValue). Now refused
    before any request, naming the option and never showing its value."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    endpoint, sock = listener
    creds = {"key": "AKIAKEY", "secret": SECRET, "token": "T0KEN"}
    creds[option] += "\r"
    o = [arg for name, value in creds.items() for arg in ("-o", f"{name}={value}")]
    for args in (
        ["validate", "s3://bkt/stac"],
        ["register", "s3://bkt/x.tif", "-c", str(tmp_path / "cat"), "--collection", "c"],
    ):
        res = CliRunner().invoke(main, [*args, "-o", f"endpoint_url={endpoint}", *o])
        assert res.exit_code == 2, res.output
        assert f"storage option {option} holds a control character" in res.output, res.output
        assert not _leaks(res.output) and "T0KEN" not in res.output and "AKIAKEY" not in res.output
    assert not _connected(sock) and not (tmp_path / "cat").exists()


def test_an_azure_container_before_the_at_sign_is_no_credential() -> None:
    """Azure's own URL form names the container before ``@``
    (``abfss://container@account.dfs.core.windows.net/stac``, as adlfs
    takes it): not credentials, so not refused (was: "credentials inside a
    abfss:// URL are not supported", for every Azure catalog and asset
    written that way). A password before the ``@`` still is one."""
    from producer.store.open import has_credentials, refuse_credentials

    for url in (
        "abfss://container@account.dfs.core.windows.net/stac",
        "abfs://container@account.dfs.core.windows.net/stac/catalog.json",
        "az://container@account.blob.core.windows.net/stac",
    ):
        assert not has_credentials(url), url
        refuse_credentials(url)  # no InputError
    assert has_credentials(f"abfss://user:{SECRET}@account.dfs.core.windows.net/stac")
    assert has_credentials(f"s3://{KEY}@bkt/stac")  # an S3 bucket has no container before '@'
    with pytest.raises(InputError) as info:
        refuse_credentials(f"abfss://user:{SECRET}@account.dfs.core.windows.net/stac")
    assert not _leaks(str(info.value))


@pytest.mark.parametrize("verb", ["search", "validate"])
def test_credentials_in_an_https_catalog_url_are_told_the_header_not_s3_keys(verb):
    """A web server takes credentials as a request header: the refusal of
    ``https://USER:PASSWORD@host/stac`` told the caller to give ``-o
    key=KEY -o secret=SECRET``, S3's storage options, which do nothing over
    https. It now names the header, and the password is never printed."""

    from producer.cli import main

    args = [verb, "https://reader:Pw0rdXYZ@127.0.0.1:9/stac"]
    if verb == "search":
        args += ["--bbox", "1,2,3,4"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 2, out.output
    assert "headers=" in out.output and "Authorization" in out.output, out.output
    assert "key=KEY" not in out.output and "secret=" not in out.output
    assert "Pw0rdXYZ" not in out.output
