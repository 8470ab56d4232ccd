"""Register options declared once (``RegisterOptions``), one result type,
and hints that every caller phrases for its own users."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.events import HandlerConfig, handle
from producer.options import RegisterOptions, option_spec, resolve_options
from producer.results import Action, ErrorKind, Result
from tests import rasters
from tests.faultproxy import FaultProxy
from tests.s3server import S3Server

# ---------------------------------------------------------------------------
# one declaration
# ---------------------------------------------------------------------------


def test_register_help_lists_every_option_field() -> None:
    """The CLI's register flags are generated from the fields: a new field
    shows up in --help without touching cli.py."""
    out = CliRunner().invoke(main, ["register", "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    for f in dataclasses.fields(RegisterOptions):
        spec = option_spec(f)
        assert spec.flag in out.output, f.name
        assert spec.help.split(".")[0][:40] in " ".join(out.output.split()), f.name


def test_bad_values_raise_the_error_they_are() -> None:
    # a batch size of 0 can be typed (--batch-size 0, STAC_BATCH_SIZE=0): the user's input
    with pytest.raises(InputError, match="batch size") as info:
        RegisterOptions(batch_size=0)
    assert info.value.hint is not None and info.value.hint.option == "batch_size"
    with pytest.raises(TypeError, match="stats"):
        RegisterOptions(stats="yes")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown partition scheme"):
        RegisterOptions(partition="week")
    with pytest.raises(InputError, match="unknown datetime source"):
        RegisterOptions(datetime_sources=("mtime",))
    with pytest.raises(InputError, match="FROM=TO") as rewrite:
        RegisterOptions(href_rewrites=("no-equals-sign",))
    assert rewrite.value.hint is not None and rewrite.value.hint.option == "href_rewrites"


def test_unknown_override_names_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"id_templat.*the options are \[.*'id_template'"):
        producer.register([], catalog=str(tmp_path), collection="c", id_templat="{stem}")


def test_overrides_apply_on_top_of_options_and_copy_what_they_take() -> None:
    meta = {"title": "T"}
    base = RegisterOptions(id_template="{parent}_{stem}", collection_meta=meta)
    opts = resolve_options(base, {"anon": True}, replace=True, href_rewrites=["/a=s3://b/a"])
    assert (opts.id_template, opts.replace, opts.href_rewrites) == (
        "{parent}_{stem}",
        True,
        (("/a", "s3://b/a"),),
    )
    assert opts.data_storage_options == opts.catalog_storage_options == {"anon": True}
    meta["title"] = "changed"
    assert base.collection_meta == {"title": "T"}  # copied, not shared with the caller
    # the shorthand never overrides a storage option set for one side
    own = resolve_options(RegisterOptions(catalog_storage_options={"profile": "cat"}), {"anon": True})
    assert own.catalog_storage_options == {"profile": "cat"} and own.data_storage_options == {"anon": True}


def test_storage_options_are_never_shown() -> None:
    opts = RegisterOptions(
        data_storage_options={"secret": "s3cr3t-data"}, catalog_storage_options={"secret": "s3cr3t-cat"}
    )
    assert "s3cr3t" not in repr(opts) and "s3cr3t" not in str(opts)


def test_handler_options_come_from_the_fields_environment_variables() -> None:
    env = {
        "STAC_CATALOG": "s3://cat/stac",
        "STAC_COLLECTION": "ndvi",
        "STAC_PARTITION": "year",
        "STAC_REPLACE": "true",
        "STAC_BATCH_SIZE": "7",
        "STAC_HREF_REWRITES": "/data=s3://bucket/data",
        "STAC_DATA_STORAGE_OPTIONS": '{"profile": "data"}',
        "STAC_STORAGE_OPTIONS": '{"profile": "both"}',
    }
    cfg = HandlerConfig.from_env(env)
    assert cfg.options == RegisterOptions(
        partition="year",
        replace=True,
        batch_size=7,
        href_rewrites=(("/data", "s3://bucket/data"),),
        data_storage_options={"profile": "data"},
        catalog_storage_options={"profile": "both"},
    )
    with pytest.raises(InputError, match="STAC_BATCH_SIZE"):
        HandlerConfig.from_env({**env, "STAC_BATCH_SIZE": "many"})


# ---------------------------------------------------------------------------
# data and catalog storage options are separate
# ---------------------------------------------------------------------------


def _account(proxy: FaultProxy) -> dict[str, Any]:
    """Storage options that reach S3 through ``proxy`` only, no retries."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }


def test_data_and_catalog_are_read_and_written_with_their_own_storage_options(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """Two "accounts": through the data account's endpoint the catalog bucket
    is forbidden (403), through the catalog account's the data bucket is. A
    registration that used one set of storage options for both would fail."""
    client = s3_server.client()
    data_bucket, catalog_bucket = s3_server.new_bucket(), s3_server.new_bucket()
    path = rasters.write_utm(tmp_path)
    client.upload_file(str(path), data_bucket, f"products/{path.name}")
    with (
        FaultProxy(s3_server.endpoint_url) as data_account,
        FaultProxy(s3_server.endpoint_url) as catalog_account,
    ):
        data_account.add("*", rf"^/{catalog_bucket}(/|$)", "403")
        catalog_account.add("*", rf"^/{data_bucket}(/|$)", "403")
        options = RegisterOptions(
            data_storage_options=_account(data_account), catalog_storage_options=_account(catalog_account)
        )
        (result,) = producer.register(
            [f"s3://{data_bucket}/products/{path.name}"],
            catalog=f"s3://{catalog_bucket}/stac",
            collection="split",
            options=options,
        )
        assert result.action == Action.CREATED, result.error
        assert sum(data_account.requests.values()) > 0 and sum(catalog_account.requests.values()) > 0
        # the same with the options swapped fails: the accounts really differ
        swapped = dataclasses.replace(
            options,
            data_storage_options=options.catalog_storage_options,
            catalog_storage_options=options.data_storage_options,
        )
        (refused,) = producer.register(
            [f"s3://{data_bucket}/products/{path.name}"],
            catalog=f"s3://{catalog_bucket}/stac2",
            collection="split",
            options=swapped,
        )
        assert refused.action == Action.ERROR
    item = json.loads(
        client.get_object(Bucket=catalog_bucket, Key=f"stac/split/{result.id}/{result.id}.json")[
            "Body"
        ].read()
    )
    assert item["assets"]["data"]["href"] == f"s3://{data_bucket}/products/{path.name}"


def test_reconcile_checks_and_lists_data_with_data_options_and_writes_with_catalog_options(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """Reconcile with the two accounts: the catalog is opened with the
    catalog's options, the asset checks and the listing of ``data`` use the
    data's, and the missing product it registers is read with the data's. With
    one set for everything, the catalog bucket (or the data bucket) answers 403."""
    client = s3_server.client()
    data_bucket, catalog_bucket = s3_server.new_bucket(), s3_server.new_bucket()
    first, second = rasters.write_utm(tmp_path / "a"), rasters.write_polar(tmp_path / "b")
    for path in (first, second):
        client.upload_file(str(path), data_bucket, f"products/{path.name}")
    with (
        FaultProxy(s3_server.endpoint_url) as data_account,
        FaultProxy(s3_server.endpoint_url) as catalog_account,
    ):
        data_account.add("*", rf"^/{catalog_bucket}(/|$)", "403")
        catalog_account.add("*", rf"^/{data_bucket}(/|$)", "403")
        options = RegisterOptions(
            data_storage_options=_account(data_account), catalog_storage_options=_account(catalog_account)
        )
        catalog = f"s3://{catalog_bucket}/stac"
        (done,) = producer.register(
            [f"s3://{data_bucket}/products/{first.name}"],
            catalog=catalog,
            collection="split",
            options=options,
        )
        assert done.ok, done.error
        data_account.requests.clear()
        catalog_account.requests.clear()
        report = producer.reconcile(
            catalog, data=f"s3://{data_bucket}/products/", fix=True, collection="split", options=options
        )
        assert [r.action for r in report.registered] == [Action.CREATED], [r.error for r in report.registered]
        assert not [p for p in report.remaining if p.is_error], report.remaining
        # each side went through its own account: the catalog's documents
        # (GET, PUT) through the catalog's, the data (listing, reads) through the data's
        assert catalog_account.requests.get("PUT", 0) > 0 and catalog_account.requests.get("GET", 0) > 0
        assert data_account.requests.get("GET", 0) > 0
        assert "PUT" not in data_account.requests


# ---------------------------------------------------------------------------
# results and hints
# ---------------------------------------------------------------------------


def test_outcomes_are_string_enums() -> None:
    result = Result(source="a.tif", id="a", href="x", action="created")
    assert result.action is Action.CREATED and result.action == "created"
    result.fail("a.tif: broken", InputError("broken"))
    assert result.action is Action.ERROR and result.error_type is ErrorKind.INPUT
    assert json.loads(json.dumps(result.to_dict()))["error_type"] == "input"
    removed = producer.RemoveResult(id="a", href="x", action="removed")
    assert removed.to_dict() == {"id": "a", "href": "x", "action": "removed", "extent_recomputed": False}


def _twins(root: Path) -> tuple[Path, Path]:
    """The same file name in two folders: one item id for two products."""
    first = rasters.write_utm(root / "a")
    second = root / "b" / first.name
    second.parent.mkdir(parents=True)
    second.write_bytes(first.read_bytes())
    return first, second


def test_one_id_collision_phrased_for_python_cli_and_handler(s3_server: S3Server, tmp_path: Path) -> None:
    first, second = _twins(tmp_path / "data")

    # Python: the keyword argument, and no CLI flag
    _, clash = producer.register([first, second], catalog=str(tmp_path / "py"), collection="c")
    assert clash.action == Action.ERROR and clash.hint is not None and clash.hint.option == "id_template"
    assert "id_template='{parent}_{stem}'" in clash.error and "--" not in clash.error
    assert clash.to_dict()["hints"][0] == {
        "option": "id_template",
        "example": "{parent}_{stem}",
        "does": "give the products different ids",
    }

    # CLI: the flag, on stderr
    out = CliRunner().invoke(
        main,
        [
            "register",
            str(first),
            str(second),
            "--catalog",
            str(tmp_path / "cli"),
            "--collection",
            "c",
            "--json",
        ],
    )
    assert out.exit_code == 1
    assert "--id-template '{parent}_{stem}'" in out.stderr and "id_template=" not in out.stderr

    # event handler: its environment variable
    client = s3_server.client()
    bucket = s3_server.new_bucket()
    keys = [f"a/{first.name}", f"b/{second.name}"]
    for key, path in zip(keys, (first, second), strict=True):
        client.upload_file(str(path), bucket, key)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": k}},
            }
            for k in keys
        ]
    }
    config = HandlerConfig(
        catalog=str(tmp_path / "events"), collection="c", storage_options=s3_server.storage_options
    )
    (failure,) = handle(event, config)["failed"]
    assert "STAC_ID_TEMPLATE='{parent}_{stem}'" in failure["error"] and "--" not in failure["error"]


def test_flow_parameters_take_the_options_as_a_json_object() -> None:
    """A deployment gives ``options`` as JSON: Prefect turns it into a
    RegisterOptions, and refuses values the options refuse."""
    from prefect.exceptions import ParameterTypeError

    from flows.backfill import backfill

    given = {"prefix": "p", "catalog": "c", "collection": "n"}
    params = backfill.validate_parameters(
        {**given, "options": {"href_rewrites": ["/a=s3://b/a"], "replace": True}}
    )
    assert params["options"] == RegisterOptions(href_rewrites=(("/a", "s3://b/a"),), replace=True)
    for bad in ({"batch_size": 0}, {"id_templat": "{stem}"}):
        with pytest.raises(ParameterTypeError):
            backfill.validate_parameters({**given, "options": bad})


def test_a_missing_product_is_an_error_for_every_caller(tmp_path: Path) -> None:
    """Reconcile without fix: a product nobody registered leaves the catalog
    incomplete. Its problem is an error by its kind, so the CLI (exit 1) and
    the reconcile flow (which fails on errors) agree without a special case."""
    data = tmp_path / "data"
    rasters.write_utm(data)
    catalog = str(tmp_path / "catalog")
    producer.register([rasters.write_cog(data)], catalog=catalog, collection="c")
    report = producer.reconcile(catalog, data=str(data), collection="c")
    (missing,) = [p for p in report.remaining if p.kind == "missing-product"]
    assert missing.is_error and missing.to_dict()["severity"] == "error"
    out = CliRunner().invoke(main, ["reconcile", catalog, "--data", str(data), "--collection", "c"])
    assert out.exit_code == 1 and "ERROR" in out.output and "missing-product" in out.output


def test_repair_with_data_but_no_collection_is_the_callers_input_error(tmp_path: Path) -> None:
    """Python gets an InputError naming the parameter (it was a bare
    ValueError), the CLI a usage error naming the flag."""
    data = tmp_path / "data"
    rasters.write_utm(data)
    catalog = str(tmp_path / "catalog")
    with pytest.raises(InputError, match="collection='ndvi'") as info:
        producer.reconcile(catalog, data=str(data), fix=True)
    assert info.value.hint is not None and info.value.hint.option == "collection"
    out = CliRunner().invoke(main, ["reconcile", catalog, "--data", str(data), "--fix"])
    assert out.exit_code == 2 and "--collection ndvi" in out.output


# ---------------------------------------------------------------------------
# every option error a user can type names the fix in that user's spelling
# ---------------------------------------------------------------------------

#: the RegisterOptions fields spelled as Python keywords: never in a CLI or
#: handler message (their flags use hyphens, their variables STAC_...)
_KEYWORDS = sorted(f.name for f in dataclasses.fields(RegisterOptions) if "_" in f.name)
_PROVIDER = "--item-provider ESA:producer,licensor:https://www.esa.int"

#: (CLI arguments, the same as RegisterOptions keywords, the fix as the CLI
#: spells it, as Python spells it, as the event handler's environment spells it)
OPTION_ERRORS: list[tuple[list[str], dict[str, Any], str | None, str | None, str | None]] = [
    (["--batch-size", "0"], {"batch_size": 0}, "--batch-size 500", "batch_size=500", "STAC_BATCH_SIZE=500"),
    (["--max-links", "0"], {"max_links": 0}, "--max-links 2000", "max_links=2000", "STAC_MAX_LINKS=2000"),
    (["--workers", "-1"], {"workers": -1}, "--workers 0", "workers=0", "STAC_WORKERS=0"),
    (["--max-retries", "-1"], {"max_retries": -1}, "--max-retries 25", "max_retries=25", None),
    (
        ["--property", "datetime=2024-01-01T00:00:00Z"],
        {"properties": {"datetime": "2024-01-01T00:00:00Z"}},
        "--datetime 2024-01-01T00:00:00Z",
        "datetime='2024-01-01T00:00:00Z'",
        "STAC_DATETIME=2024-01-01T00:00:00Z",
    ),
    (
        ["--property", "end_datetime=2024-01-31T00:00:00Z"],
        {"properties": {"end_datetime": "2024-01-31T00:00:00Z"}},
        "--datetime 2024-05-13T10:00:00Z",
        "datetime='2024-05-13T10:00:00Z'",
        "STAC_DATETIME=2024-05-13T10:00:00Z",
    ),
    (
        ["--property", 'processing:software={"ndvi": "1.4"}'],
        {"properties": {"processing:software": {"ndvi": "1.4"}}},
        "--software ndvi=1.4",
        "software={'ndvi': '1.4'}",
        """STAC_SOFTWARE='{"ndvi": "1.4"}'""",
    ),
    (["--property", "created=x"], {"properties": {"created": "x"}}, None, None, None),
    (
        ["--property", "no-value"],
        {"properties": ["no-value"]},
        "--property processing:level=L2",
        "properties={'processing:level': 'L2'}",
        """STAC_PROPERTIES='{"processing:level": "L2"}'""",
    ),
    (
        ["--href-rewrite", "no-equals-sign"],
        {"href_rewrites": ["no-equals-sign"]},
        "--href-rewrite /data=s3://bucket/data",
        "href_rewrites=['/data=s3://bucket/data']",
        "STAC_HREF_REWRITES=/data=s3://bucket/data",
    ),
    # refused once, when the options are made, not once per product at extraction
    (
        ["--datetime", "garbage"],
        {"datetime": "garbage"},
        "--datetime 2024-05-13T10:00:00Z",
        "datetime='2024-05-13T10:00:00Z'",
        "STAC_DATETIME=2024-05-13T10:00:00Z",
    ),
    (
        ["--datetime-pattern", "("],
        {"datetime_pattern": "("},
        "--datetime-pattern '(?P<year>",
        "datetime_pattern='(?P<year>",
        "STAC_DATETIME_PATTERN='(?P<year>",
    ),
    # an option that the others make unused: refused, never silently ignored
    (
        ["--datetime", "2024-05-13", "--datetime-pattern", r"(?P<year>\d{4})"],
        {"datetime": "2024-05-13", "datetime_pattern": r"(?P<year>\d{4})"},
        "--datetime-source filename --datetime-source explicit --datetime-source tags",
        "datetime_sources=['filename', 'explicit', 'tags']",
        None,
    ),
    (
        ["--datetime-pattern", r"(?P<year>\d{4})", "--datetime-source", "tags"],
        {"datetime_pattern": r"(?P<year>\d{4})", "datetime_sources": ["tags"]},
        "--datetime-source filename --datetime-source tags",
        "datetime_sources=['filename', 'tags']",
        None,
    ),
    (
        ["--datetime", "2024-05-13", "--datetime-source", "filename"],
        {"datetime": "2024-05-13", "datetime_sources": ["filename"]},
        "--datetime-source filename --datetime-source explicit",
        "datetime_sources=['filename', 'explicit']",
        None,
    ),
    (
        ["--id-template", "{bad}"],
        {"id_template": "{bad}"},
        "--id-template '{parent}_{stem}'",
        "id_template='{parent}_{stem}'",
        "STAC_ID_TEMPLATE='{parent}_{stem}'",
    ),
    (
        ["--id-template", "{stem"],
        {"id_template": "{stem"},
        "--id-template '{parent}_{stem}'",
        "id_template='{parent}_{stem}'",
        "STAC_ID_TEMPLATE='{parent}_{stem}'",
    ),
    (
        ["--item-provider", "ESA:owner"],
        {"item_providers": ["ESA:owner"]},
        _PROVIDER,
        "item_providers=['ESA:producer,licensor:https://www.esa.int']",
        """STAC_ITEM_PROVIDERS='["ESA:producer,licensor:https://www.esa.int"]'""",
    ),
]


def _python_spelled(text: str) -> list[str]:
    """What in ``text`` is spelled for Python: a ``RegisterOptions.`` field,
    a keyword with an underscore, a Python dict or list."""
    found = [k for k in _KEYWORDS if re.search(rf"(?<![\w-]){k}\b", text)]
    return found + [s for s in ("RegisterOptions", "{'", "['", "=None", "=True") if s in text]


@pytest.mark.parametrize(("args", "kwargs", "flag", "keyword", "env"), OPTION_ERRORS)
def test_option_errors_name_the_fix_as_each_caller_spells_it(
    tmp_path: Path,
    args: list[str],
    kwargs: dict[str, Any],
    flag: str | None,
    keyword: str | None,
    env: str | None,
) -> None:
    """A bad option is the caller's input error (exit 2, nothing written) whose
    fix the CLI spells as a flag (``--batch-size 500``, never
    ``RegisterOptions.batch_size`` or a Python dict), Python as a keyword and
    the event handler as its environment variable."""
    product = rasters.write_utm(tmp_path / "data")
    catalog = tmp_path / "cat"
    out = CliRunner().invoke(main, ["register", str(product), "-c", str(catalog), "--collection", "c", *args])
    assert out.exit_code == 2, out.output
    message = " ".join(out.output.split())
    assert _python_spelled(message) == [], message
    assert (flag is None and "Fix it with" not in message) or (flag and f"Fix it with {flag}" in message), (
        message
    )
    assert not catalog.exists()

    with pytest.raises(InputError) as python:
        RegisterOptions(**kwargs)
    assert python.value.hints == () if keyword is None else f"Fix it with {keyword}" in str(python.value)
    assert "--" not in str(python.value) and "RegisterOptions" not in str(python.value)

    if env is not None:
        [(field_name, value)] = kwargs.items()
        spec = option_spec(next(f for f in dataclasses.fields(RegisterOptions) if f.name == field_name))
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        with pytest.raises(InputError) as handler:
            HandlerConfig.from_env({"STAC_CATALOG": "s3://b/stac", "STAC_COLLECTION": "c", spec.env: text})
        assert f"Fix it with {env}" in str(handler.value), str(handler.value)
        assert _python_spelled(str(handler.value)) == [] and "--" not in str(handler.value)


def test_hint_examples_are_spelled_as_each_caller_takes_them() -> None:
    """A mapping or list example reads back through the CLI's and the
    environment's own parsing as the value it stands for (no ``str(dict)``)."""
    from producer.errors import Hint
    from producer.options import env_spelling, flag_spelling

    props = Hint("properties", {"processing:level": "L2", "eo:cloud_cover": 12.5, "code": "12"}, "x")
    assert flag_spelling(props) == (
        "--property processing:level=L2 --property eo:cloud_cover=12.5 --property 'code=\"12\"'"
    )
    from_env = RegisterOptions.from_env({"STAC_PROPERTIES": env_spelling(props).split("=", 1)[1][1:-1]})
    assert from_env.properties == props.example
    providers = Hint("item_providers", ["ESA:producer,licensor:https://www.esa.int"], "x")
    text = env_spelling(providers).split("=", 1)[1][1:-1]
    assert RegisterOptions.from_env({"STAC_ITEM_PROVIDERS": text}).item_providers == (
        {"name": "ESA", "roles": ["producer", "licensor"], "url": "https://www.esa.int"},
    )
    meta = Hint("collection_meta", {"title": "NDVI"}, "x")
    assert flag_spelling(meta) == """--collection-meta '{"title": "NDVI"}'"""
    assert flag_spelling(Hint("software", {"ndvi": "1.4"}, "x")) == "--software ndvi=1.4"


def test_group_with_an_asset_key_is_refused_in_each_callers_spelling(tmp_path: Path) -> None:
    """A group pattern and an asset key together: the CLI names neither as
    Python keywords (was "group and asset_key cannot be combined ... drop
    asset_key"); nothing is written."""
    product = rasters.write_utm(tmp_path / "data")
    catalog = tmp_path / "cat"
    group = r"(?P<id>[^/]+)/(?P<asset>[^/]+)\.tif$"
    args = ["--group", group, "--asset-key", "b"]
    out = CliRunner().invoke(main, ["register", str(product), "-c", str(catalog), "--collection", "c", *args])
    assert out.exit_code == 2, out.output
    message = " ".join(out.output.split())
    assert "cannot be combined" in message and "leave the asset key out" in message
    assert "Fix it with" not in message  # was "Fix it with --group ...", which the caller gave
    assert _python_spelled(message) == [], message
    assert not catalog.exists()
    with pytest.raises(InputError, match="cannot be combined") as python:
        producer.register([str(product)], catalog=str(catalog), collection="c", group=group, asset_key="b")
    assert "--" not in str(python.value) and "Fix it with" not in str(python.value)


def test_a_hint_is_a_sentence_of_its_own() -> None:
    """ "... must be at least 1, not 0 Fix it with ..." ran the hint into the
    fact; every hinted error now ends its fact before the hint."""
    import re

    from producer.errors import ID_TEMPLATE_HINT, ProducerError

    for make in (
        lambda: RegisterOptions(batch_size=0),
        lambda: RegisterOptions(max_links=0),
        lambda: RegisterOptions(workers=-1),
    ):
        with pytest.raises(InputError) as info:
            make()
        assert "Fix it with" in str(info.value)
        assert re.search(r"[^.!?:] Fix it with", str(info.value)) is None, str(info.value)
    assert str(ProducerError("ends here.", hints=(ID_TEMPLATE_HINT,))).startswith("ends here. Fix it with")


def test_rewrite_to_a_signed_url_is_refused_without_echoing_the_signature(tmp_path: Path) -> None:
    """An ``--href-rewrite`` TO with a query string (a container-level SAS):
    the file name went after the query, then the signature parameter was
    dropped with the file name in it, so every asset pointed at the bare
    container (exit 0). Now it is the caller's input error, exit 2, nothing
    written, and the signature is never shown."""
    product = rasters.write_utm(tmp_path / "data")
    catalog = tmp_path / "cat"
    signed = "https://acct.blob.core.windows.net/cont?sv=2020-08-04&sig=SEKRETXYZ"
    rule = f"{product.parent}={signed}"
    out = CliRunner().invoke(
        main, ["register", str(product), "-c", str(catalog), "--collection", "c", "--href-rewrite", rule]
    )
    message = " ".join(out.output.split())
    assert out.exit_code == 2, out.output
    assert "query string" in message and "SEKRETXYZ" not in message, message
    assert f"Fix it with --href-rewrite {product.parent}=https://acct.blob.core.windows.net/cont" in message
    assert not catalog.exists()

    for target in (signed, "https://h.example.com/data#frag", "https://h.example.com/data?"):
        with pytest.raises(InputError, match="query string") as python:
            RegisterOptions(href_rewrites=(f"/data={target}",))
        assert "SEKRETXYZ" not in str(python.value) and "href_rewrites=" in str(python.value)
    # object-store keys may hold '?' literally: not an http query
    assert RegisterOptions(href_rewrites=("/data=s3://b/a?b",)).href_rewrites == (("/data", "s3://b/a?b"),)


def test_a_misspelt_option_keyword_names_the_one_meant() -> None:
    """``register(..., idtemplate=...)`` listed all 32 option names; the one
    meant is offered first."""
    with pytest.raises(
        TypeError, match=r"unknown registration option\(s\) \['idtemplate'\] \(did you mean 'id_template'\?\)"
    ):
        resolve_options(None, None, idtemplate="{parent}_{stem}")
    with pytest.raises(TypeError) as err:
        resolve_options(None, None, zzz=1)
    assert "did you mean" not in str(err.value)
    # every field, in order (the names are found once per process)
    names = [f.name for f in dataclasses.fields(RegisterOptions)]
    assert str(err.value).endswith(f"; the options are {names}")
    assert resolve_options(None, None, id_template="{stem}").id_template == "{stem}"


def test_a_new_collections_metadata_the_schema_refuses_is_a_usage_error_before_any_write(
    tmp_path: Path,
) -> None:
    """``--license 'CC BY'`` (or a number as title) failed every product
    with exit 1 and "... (new collection; check the collection metadata) is
    not valid STAC ...; fix the document or the code that built it": a
    usage error now, naming the field and a licence that would do."""
    from tests.crashes import write_tile

    tile = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(
        main, ["register", str(tile), "-c", str(catalog), "--collection", "c", "--license", "CC BY"]
    )
    assert res.exit_code == 2, res.output
    assert "license" in res.output and "CC BY" in res.output and "code that built it" not in res.output
    assert "CC-BY" in res.output  # the fix
    assert not catalog.exists()
    with pytest.raises(InputError, match="metadata of a new collection"):
        RegisterOptions(collection_meta={"title": 5})
    with pytest.raises(InputError, match="metadata of a new root catalog"):
        RegisterOptions(root_meta={"description": ["x"]})
    RegisterOptions(collection_meta={"license": "CC-BY-4.0", "title": "T", "keywords": ["k"]})
    # an extension this install does not bundle is checked when a collection is made, as before
    # (an existing collection takes no metadata)
    RegisterOptions(collection_meta={"stac_extensions": ["https://example.com/x/v1.0.0/schema.json"]})


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("progres", "progress"),
        ("storage_option", "storage_options"),
        ("on_changes", "on_change"),
        ("sink", "sinks"),
    ],
)
def test_a_misspelt_keyword_of_the_verb_itself_names_it_not_an_option(
    tmp_path: Path, typo: str, meant: str
) -> None:
    """``register(..., progres=...)`` was offered ``'properties'``,
    ``storage_option=`` ``'data_storage_options'``, and ``on_changes=`` or
    ``sink=`` nothing: only the option fields were looked at."""
    with pytest.raises(TypeError, match=rf"\['{typo}'\] \(did you mean '{meant}'\?\)"):
        producer.register([], catalog=str(tmp_path / "c"), collection="c", **{typo: 1})
    from producer.prefect import registers_in_stac

    with pytest.raises(TypeError, match=r"\(did you mean 'artifact_key'\?\)"):
        registers_in_stac(catalog=str(tmp_path / "c"), collection="c", artifactkey="k")
    assert not (tmp_path / "c").exists()


def test_a_new_collections_provider_role_the_schema_refuses_names_a_provider_fix(tmp_path: Path) -> None:
    """``--provider 'ESA:Producer'`` was refused with "Fix it with
    --collection-meta '{"title": "NDVI"}'", a fix that has nothing to do
    with the provider: the hint now gives the providers with roles the
    schema takes."""
    from tests.crashes import write_tile

    tile = write_tile(tmp_path / "data", "scene_20240510.tif", 6.0, 46.0)
    catalog = tmp_path / "cat"
    res = CliRunner().invoke(
        main,
        ["register", str(tile), "-c", str(catalog), "--collection", "c", "--provider", "ESA:Producer,host"],
    )
    assert res.exit_code == 2, res.output
    assert "'Producer' is not one of" in res.output, res.output
    assert '"title": "NDVI"' not in res.output, res.output
    assert '"roles": ["producer", "host"]' in res.output, res.output
    assert not catalog.exists()
    # a role given as one text, and a provider URL's credentials kept out of the fix
    with pytest.raises(InputError) as err:
        RegisterOptions(
            collection_meta={"providers": [{"name": "x", "roles": "Host", "url": "https://u:SECRET@x.org"}]}
        )
    assert "'roles': ['host']" in str(err.value) and "SECRET" not in str(err.value), err.value
