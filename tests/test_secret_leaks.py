"""Secrets that reached output, documents or reprs, found by a probe.

- credential query parameters spelled with ``-`` (``api-key``,
  ``access-token``) or missing from the list (``private_token``, ``auth``,
  ``jwt``, ``credential``) were published in asset hrefs and printed;
- :func:`~producer.redact.redact` stopped a parameter's value at ``:``, so
  ``api_key=ID:SECRET`` printed ``SECRET``;
- ``remove --product`` echoed the product URL with its credentials, and
  took an ``s3://KEY:SECRET@`` URL that register refuses;
- ``repr(Result)`` showed the product URL with its credentials;
- the pgSTAC error scrubber replaced the password wherever its letters
  appeared in the driver's message (garbling it, and telling the password);
- messages naming a catalog (``no catalog at ...``, store errors) showed
  its URL unredacted.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.redact import clean_href, redact
from tests.crashes import write_tile

SECRET = "SEKRETXYZ"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A folder served by ``python -m http.server`` on 127.0.0.1 (its own
    process: GDAL reads in-process hold the GIL a server thread would need);
    yields (base URL, folder)."""
    site = tmp_path / "site"
    site.mkdir()
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
        cwd=site,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = re.search(r"port (\d+)", server.stdout.readline())
        assert port, "http.server did not start"
        yield f"http://127.0.0.1:{port[1]}/", site
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


CREDENTIAL_PARAMETERS = [
    "api-key",
    "API-Key",
    "access-token",
    "private_token",
    "private-token",
    "auth",
    "jwt",
    "credential",
    "x_amz_signature",
    "X-Goog-Credential",
    "sslpassword",  # libpq's, for the client key: a DSN in URL form
]


@pytest.mark.parametrize("name", CREDENTIAL_PARAMETERS)
def test_credential_parameters_in_any_spelling_are_dropped_and_masked(name: str) -> None:
    url = f"https://h/x.tif?v=1&{name}={SECRET}#f"
    assert clean_href(url) == "https://h/x.tif?v=1#f"
    assert redact(url) == f"https://h/x.tif?v=1&{name}=***#f"


#: presigned URLs of other object stores (Alibaba OSS V1 with an STS token and
#: V4, Tencent COS, Huawei OBS): their signatures and security tokens were
#: published in asset hrefs and printed, under names the list did not hold
OTHER_CLOUDS = [
    "https://b.oss-cn-hangzhou.aliyuncs.com/x.tif?OSSAccessKeyId=LTAIKEYID&Expires=1700000000"
    f"&Signature=SIG{SECRET}&security-token=STS{SECRET}",
    "https://b.oss-cn-hangzhou.aliyuncs.com/x.tif?x-oss-signature-version=OSS4-HMAC-SHA256"
    "&x-oss-credential=LTAIKEYID%2F20240101%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-date=20240101T000000Z"
    f"&x-oss-expires=3600&x-oss-signature=SIG{SECRET}&x-oss-security-token=STS{SECRET}",
    "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/x.tif?q-sign-algorithm=sha1&q-ak=AKIDKEYID"
    "&q-sign-time=1700000000%3B1700003600&q-key-time=1700000000%3B1700003600&q-header-list=host"
    f"&q-url-param-list=&q-signature=SIG{SECRET}&x-cos-security-token=STS{SECRET}",
    "https://b.obs.cn-north-4.myhuaweicloud.com/x.tif?AccessKeyId=HSTKEYID&Expires=1700000000"
    f"&Signature=SIG{SECRET}&x-obs-security-token=STS{SECRET}",
]


@pytest.mark.parametrize("url", OTHER_CLOUDS, ids=["oss-v1", "oss-v4", "cos", "obs"])
def test_presigned_urls_of_other_object_stores_lose_their_signature_and_token(url: str) -> None:
    assert clean_href(url + "&v=2") == url.split("?", 1)[0] + "?v=2"
    shown = redact(f"cannot read {url}: 403")
    assert SECRET not in shown and "KEYID" not in shown and shown.endswith(": 403"), shown


@pytest.mark.parametrize(
    ("url", "published"),
    [
        # a presigned URL passed on, percent-encoded, to a proxy or a tiler
        (
            "https://proxy.example/fetch?url=https%3A%2F%2Fb.s3.amazonaws.com%2Fx.tif%3FX-Amz-Credential%3DAKIA"
            f"%26X-Amz-Signature%3D{SECRET}%26v%3D2&band=1",
            "https://proxy.example/fetch?url=https://b.s3.amazonaws.com/x.tif%3Fv%3D2&band=1",
        ),
        # a token in the fragment (an OAuth redirect's spelling)
        (f"https://h.example/x.tif#access_token={SECRET}&page=2", "https://h.example/x.tif#page=2"),
        # the parameter's name percent-encoded (parsed as "sig" by the server)
        (f"https://h.example/x.tif?%73ig={SECRET}&v=1", "https://h.example/x.tif?v=1"),
    ],
    ids=["nested", "fragment", "encoded-name"],
)
def test_credentials_nested_encoded_or_in_the_fragment_are_dropped_and_masked(
    url: str, published: str
) -> None:
    """Each was published whole in the asset href or shown whole in messages."""
    assert clean_href(url) == published
    shown = redact(f"cannot read {url}: 403")
    assert SECRET not in shown and shown.endswith(": 403"), shown


def test_a_plain_parameter_is_kept_and_shown() -> None:
    url = "https://h/x.tif?version=3&keyword=a"
    assert clean_href(url) == url and redact(url) == url


@pytest.mark.parametrize("name", ["api-key", "access-token", "private_token", "jwt"])
def test_register_over_http_publishes_no_credential_parameter(
    tmp_path: Path, served: tuple[str, Path], name: str
) -> None:
    base, site = served
    write_tile(site, "scene_20240510.tif", 6.0, 46.0)
    url = f"{base}scene_20240510.tif?{name}={SECRET}"
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(main, ["register", url, "-c", str(catalog), "--collection", "c"])
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output
    item = json.loads((catalog / "c" / "scene_20240510" / "scene_20240510.json").read_text())
    assert item["assets"]["data"]["href"] == f"{base}scene_20240510.tif"
    assert SECRET not in json.dumps(item)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "http://h/x.tif?api_key=myid:SEKRETXYZ&v=1: not a raster",
            "http://h/x.tif?api_key=***&v=1: not a raster",
        ),
        ("x.tif?token=user:SEKRETXYZ: not a readable raster", "x.tif?token=***: not a readable raster"),
        ("'http://h/x?sig=a:SEKRETXYZ' failed", "'http://h/x?sig=***' failed"),
        ("http://h/x?sig=a:b:SEKRETXYZ", "http://h/x?sig=***"),
    ],
)
def test_redact_masks_a_value_holding_colons(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_cli_and_logs_never_show_the_part_of_a_secret_after_a_colon(
    tmp_path: Path, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port}/x.tif?token=user:{SECRET}"
    with caplog.at_level(logging.DEBUG):
        res = CliRunner().invoke(
            main, ["-v", "register", url, "-c", str(tmp_path / "cat"), "--collection", "c"]
        )
    assert res.exit_code != 0
    assert "token=***" in res.output
    assert SECRET not in res.output
    assert not any(SECRET in r.getMessage() for r in caplog.records)
    results = producer.register([url], catalog=str(tmp_path / "cat"), collection="c")
    assert results[0].error is not None and SECRET not in results[0].error


@pytest.mark.parametrize(
    "product",
    [
        f"http://u:{SECRET}@127.0.0.1:9/x.tif",
        f"https://h/x.tif?sig={SECRET}",
        f"https://h/x.tif?api-key={SECRET}",
    ],
)
def test_remove_with_another_product_never_shows_its_credentials(tmp_path: Path, product: str) -> None:
    catalog = str(tmp_path / "cat")
    tile = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    producer.register([tile], catalog=catalog, collection="c")
    args = ["remove", "scene_20240510", "-c", catalog, "--collection", "c", "--product", product]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "it stays" in res.output, res.output
    assert SECRET not in res.output
    kept = producer.remove("scene_20240510", catalog=catalog, collection="c", product=product)
    assert kept.action == "kept" and kept.reason is not None and "***" in kept.reason
    for shown in (kept.reason, str(kept.to_dict()), repr(kept), str(kept)):
        assert SECRET not in shown


def test_remove_refuses_an_object_store_product_with_credentials_like_register(tmp_path: Path) -> None:
    catalog = str(tmp_path / "cat")
    tile = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    producer.register([tile], catalog=catalog, collection="c")
    product = f"s3://AKIA:{SECRET}@bkt/x.tif"
    res = CliRunner().invoke(
        main, ["remove", "scene_20240510", "-c", catalog, "--collection", "c", "--product", product]
    )
    assert res.exit_code == 2, res.output
    assert SECRET not in res.output and "credentials" in res.output
    with pytest.raises(producer.InputError) as caught:
        producer.remove("scene_20240510", catalog=catalog, collection="c", product=product)
    assert SECRET not in str(caught.value)
    assert (tmp_path / "cat" / "c" / "scene_20240510" / "scene_20240510.json").exists()


def test_result_repr_and_str_redact_the_product_url(tmp_path: Path) -> None:
    url = f"http://u:{SECRET}@127.0.0.1:9/x.tif?sig={SECRET}"
    results = producer.register([url], catalog=str(tmp_path / "cat"), collection="c")
    for shown in (repr(results[0]), str(results[0]), repr(results), str(results[0].to_dict())):
        assert SECRET not in shown
    assert "source='http://***@127.0.0.1:9/x.tif?sig=***'" in repr(results[0])


def test_errors_naming_an_unreachable_http_catalog_never_show_its_signature(closed_port: int) -> None:
    catalog = f"http://127.0.0.1:{closed_port}/stac?sig={SECRET}"
    for call in (lambda: producer.validate_catalog(catalog), lambda: producer.search(catalog)):
        with pytest.raises(producer.ProducerError) as caught:
            call()
        assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
        assert "sig=***" in str(caught.value)


@pytest.mark.parametrize("verb", ["validate", "search", "reconcile"])
def test_an_http_catalog_url_with_a_query_is_refused_not_read_as_a_broken_catalog(
    tmp_path: Path, served: tuple[str, Path], verb: str
) -> None:
    """``validate https://host/stac?token=...`` read ``stac?token=.../catalog.json``
    (the query swallowed every document key): validate and reconcile failed
    with "maximum recursion depth exceeded", search said the catalog "is not
    JSON: repair it with reconcile", of a catalog that is fine. Now a usage
    error saying why, the token masked, before any request."""
    base, site = served
    producer.register(
        [write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)],
        catalog=str(site / "stac"),
        collection="c",
    )
    assert CliRunner().invoke(main, [verb, f"{base}stac"]).exit_code == 0
    res = CliRunner().invoke(main, [verb, f"{base}stac?token={SECRET}"])
    assert res.exit_code == 2, res.output
    assert "query" in res.output and "token=***" in res.output and SECRET not in res.output
    assert "recursion" not in res.output and "repair" not in res.output
    with pytest.raises(producer.InputError, match="query"):
        producer.validate_catalog(f"{base}stac/?sig={SECRET}")


@pytest.mark.parametrize(
    ("flag", "field"), [("--id-template", "id_template"), ("--item-license", "item_license")]
)
def test_a_refusals_suggested_fix_never_spells_the_secret_it_was_given(
    tmp_path: Path, flag: str, field: str
) -> None:
    """An id template or a licence holding a URL with user info: the value
    was masked, but the fix it suggested (the text made safe: every
    character no id or licence may hold made ``_`` or ``-``) spelled the
    password out, where no masking could find it any more."""
    value = f"https://user:{SECRET}@h.example/" + ("{stem}" if field == "id_template" else "")
    tile = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    res = CliRunner().invoke(
        main, ["register", str(tile), "-c", str(tmp_path / "cat"), "--collection", "c", flag, value]
    )
    assert res.exit_code == 2 and "Fix it with" in res.output, res.output
    assert SECRET not in res.output, res.output
    from producer.options import RegisterOptions

    with pytest.raises(producer.InputError) as caught:
        RegisterOptions(**{field: value})
    assert SECRET not in str(caught.value) and SECRET not in json.dumps(
        [h.to_dict() for h in caught.value.hints]
    )


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
def test_checking_an_object_store_asset_href_with_credentials_never_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int, client: str
) -> None:
    """An item whose asset href is ``s3://KEY:SECRET@bucket/x.tif`` (written
    by hand or another tool): ``--check-assets`` handed it to s3fs, and
    botocore's "Invalid bucket name \"KEY:SECRET@bucket\"" was printed by
    validate and reconcile (text and --json). Now unchecked, saying why,
    without a request."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    root = tmp_path / "catalog"
    (res,) = producer.register(
        [write_tile(tmp_path / "tiles", "t_20240101.tif", 10.0, 50.0)], catalog=str(root), collection="c"
    )
    item_path = Path(res.href)
    item = json.loads(item_path.read_text())
    item["assets"]["data"]["href"] = f"s3://AKIAKEY:{SECRET}/x@bkt/x.tif"
    item["assets"]["other"] = {"href": f"s3://AKIAKEY:{SECRET}@bkt/y.tif"}
    item_path.write_text(json.dumps(item))
    endpoint = ["-o", f"endpoint_url=http://127.0.0.1:{closed_port}"]
    for args in (
        ["validate", "--check-assets"],
        ["validate", "--check-assets", "--json"],
        ["reconcile", "--check-assets", "--json"],
    ):
        out = CliRunner().invoke(main, [args[0], str(root), *args[1:], *endpoint]).output
        assert "asset-unchecked" in out and "carries credentials" in out, out
        assert SECRET not in out and "AKIAKEY" not in out, out


def test_every_deliberate_error_redacts_the_url_in_its_message() -> None:
    from producer.errors import CatalogError, InputError, StoreError

    for kind in (InputError, StoreError, CatalogError):
        err = kind(f"cannot read 'x' in catalog https://u:{SECRET}@h/stac?X-Amz-Signature={SECRET}")
        assert SECRET not in str(err) and SECRET not in err.fact


def test_reconcile_names_a_missing_products_url_without_its_credentials(
    tmp_path: Path, closed_port: int
) -> None:
    """``reconcile(data=[presigned URL])``: the ``missing-product`` and
    ``register-failed`` findings were keyed by the product URL as given, so
    ``str(problem)``, ``to_dict()`` and the report's repr (the reconcile
    flow's artifact rows, its ERROR log lines and result) held the
    signature; only the CLI masked it."""
    catalog = str(tmp_path / "cat")
    producer.register(
        [write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)], catalog=catalog, collection="c"
    )
    url = f"http://u:{SECRET}@127.0.0.1:{closed_port}/x.tif?X-Amz-Signature={SECRET}"
    for fix in (False, True):
        report = producer.reconcile(catalog, data=[url], fix=fix, collection="c")
        kinds = {p.kind for p in report.problems + report.remaining}
        assert ("register-failed" if fix else "missing-product") in kinds, kinds
        shown = [str(p) for p in report.problems + report.remaining]
        shown += [json.dumps(p.to_dict()) for p in report.problems + report.remaining]
        assert all(SECRET not in text for text in [*shown, repr(report)]), shown
        assert any("X-Amz-Signature=***" in text for text in shown), shown
    res = CliRunner().invoke(
        main, ["reconcile", catalog, "--data", url, "--collection", "c", "--fix", "--json"]
    )
    assert res.exit_code == 1 and SECRET not in res.output, res.output


def test_validate_never_shows_the_credentials_of_an_asset_href(tmp_path: Path) -> None:
    """An item whose asset href carries user info and a presigned signature
    (written by hand or by another tool: register drops them). Was:
    ``validate --check-assets`` (text and ``--json``), ``validate_catalog`` and
    the Prefect reconcile flow's artifacts showed both; only the reconcile
    CLI masked them."""
    root = tmp_path / "catalog"
    tile = write_tile(tmp_path / "tiles", "t_20240101.tif", 10.0, 50.0)
    (res,) = producer.register([tile], catalog=str(root), collection="c")
    item_path = Path(res.href)
    item = json.loads(item_path.read_text())
    item["assets"]["data"]["href"] = f"https://user:{SECRET}@127.0.0.1:9/x.tif?X-Amz-Signature={SECRET}"
    item_path.write_text(json.dumps(item))
    for args in (["--check-assets"], ["--check-assets", "--json"]):
        out = CliRunner().invoke(main, ["validate", str(root), *args]).output
        assert "x.tif" in out and SECRET not in out, out
    problems = producer.validate_catalog(str(root), check_assets=True)
    assert problems and all(SECRET not in str(p) for p in problems), problems
    report = producer.reconcile(str(root), check_assets=True)
    assert all(SECRET not in json.dumps(p.to_dict()) for p in report.problems)
