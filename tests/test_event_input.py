"""The event path's edges: literal object keys, poison messages, and the
configuration errors each kind of caller reads in its own spelling.

Handler tests run against the local moto server (``tests/s3server.py``);
the CLI runs through click's runner; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.events import HandlerConfig, handle, parse_event
from tests.rasters import write_nodate, write_utm
from tests.s3server import S3Server

#: an SQS body nested deeper than the JSON decoder goes
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def s3(s3_server: S3Server) -> S3Server:
    """A fresh bucket per test on the session's local S3 server."""
    return s3_server._replace(bucket=s3_server.new_bucket())


def _record(bucket: str, key: str) -> dict[str, Any]:
    """One S3 ObjectCreated record; ``key`` as S3 sends it (URL-encoded)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/"), "size": 1}},
    }


def _sqs(*bodies: Any) -> dict[str, Any]:
    """An SQS batch, messageIds m0, m1, ..."""
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "eventSource": "aws:sqs",
                "body": b if isinstance(b, str) else json.dumps(b),
            }
            for i, b in enumerate(bodies)
        ]
    }


def _config(s3: S3Server) -> HandlerConfig:
    return HandlerConfig(catalog=s3.url("stac"), collection="ndvi", storage_options=s3.storage_options)


def _items(s3: S3Server) -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="stac/ndvi/")
    return sorted(o["Key"] for o in listing.get("Contents", []) if o["Key"].count("/") == 3)


# --- an event names one object: its key is never a pattern -------------------------


def test_gone_key_with_glob_characters_is_skipped_not_expanded(s3: S3Server, tmp_path: Path) -> None:
    raster = write_utm(tmp_path).read_bytes()
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="p5/scene[1]_20240601.tif", Body=raster)
    client.put_object(Bucket=s3.bucket, Key="p5/scene1_20240601.tif", Body=raster)  # never announced
    client.delete_object(Bucket=s3.bucket, Key="p5/scene[1]_20240601.tif")  # gone since its event

    out = handle(_sqs({"Records": [_record(s3.bucket, "p5/scene[1]_20240601.tif")]}), _config(s3))
    assert out["registered"] == [] and out["failed"] == [] and out["batchItemFailures"] == []
    assert [s["url"] for s in out["skipped"]] == [f"s3://{s3.bucket}/p5/scene[1]_20240601.tif"]
    assert "no longer exists" in out["skipped"][0]["reason"]
    assert _items(s3) == []  # scene1_20240601.tif was not registered in its place


def test_existing_key_with_glob_characters_registers_itself_only(s3: S3Server, tmp_path: Path) -> None:
    raster = write_utm(tmp_path).read_bytes()
    for key in ("p6/b?x_20240601.tif", "p6/bax_20240601.tif", "p6/b*_20240602.tif"):
        s3.client().put_object(Bucket=s3.bucket, Key=key, Body=raster)
    out = handle(
        _sqs(
            {"Records": [_record(s3.bucket, "p6/b?x_20240601.tif"), _record(s3.bucket, "p6/b*_20240602.tif")]}
        ),
        _config(s3),
    )
    assert out["failed"] == [], out
    assert [r["source"] for r in out["registered"]] == [
        f"s3://{s3.bucket}/p6/b?x_20240601.tif",
        f"s3://{s3.bucket}/p6/b*_20240602.tif",
    ]


# --- a poison message fails alone ------------------------------------------------


def test_deeply_nested_body_fails_its_message_only() -> None:
    good = {"Records": [_record("b", "products/a_20240601.tif")]}
    events, failures = parse_event(_sqs(good, DEEP))
    assert [(e.key, e.message_id) for e in events] == [("products/a_20240601.tif", "m0")]
    assert [f["message_id"] for f in failures] == ["m1"]
    assert "nested too deeply" in failures[0]["error"]


def test_deeply_nested_body_in_a_batch_is_one_batch_item_failure(s3: S3Server, tmp_path: Path) -> None:
    s3.client().put_object(
        Bucket=s3.bucket, Key="products/ndvi/S2_20240601_T31UFQ.tif", Body=write_utm(tmp_path).read_bytes()
    )
    good = {"Records": [_record(s3.bucket, "products/ndvi/S2_20240601_T31UFQ.tif")]}
    out = handle(_sqs(good, DEEP), _config(s3))
    assert [r["id"] for r in out["registered"]] == ["S2_20240601_T31UFQ"]
    assert out["batchItemFailures"] == [{"itemIdentifier": "m1"}]


def test_cli_deeply_nested_payload_is_a_usage_error(tmp_path: Path) -> None:
    payload = tmp_path / "deep.json"
    payload.write_text(DEEP)
    result = CliRunner().invoke(
        main, ["handle-event", str(payload), "-c", str(tmp_path / "cat"), "--collection", "n"]
    )
    assert result.exit_code == 2, result.output
    assert "nested too deeply" in result.output
    assert not (tmp_path / "cat").exists()


# --- configuration errors in the caller's spelling ---------------------------------


def test_env_config_credentials_in_catalog_url_are_fixed_with_the_variable() -> None:
    env = {"STAC_CATALOG": "s3://AKIAEXAMPLE:s3cr3t@bucket/stac", "STAC_COLLECTION": "ndvi"}
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    message = str(caught.value)
    assert 'STAC_STORAGE_OPTIONS=\'{"key": "KEY", "secret": "SECRET"}\'' in message
    assert "storage_options=" not in message
    assert "s3cr3t" not in message and "AKIAEXAMPLE" not in message


@pytest.mark.parametrize("option", ["key", "secret", "token"])
def test_env_config_credential_given_as_a_json_number_is_refused_at_start_up(option: str) -> None:
    """``STAC_STORAGE_OPTIONS='{"key": "minio", "secret": 12345678}'`` (a
    numeric MinIO password left unquoted) started, then every record failed
    with botocore's raw "TypeError: sequence item 0: expected str instance,
    int found" (and its traceback in the log), naming neither the option nor
    the fix."""
    creds: dict[str, Any] = {"key": "minio", "secret": "minio-pass", "token": "t0ken"}
    creds[option] = 87654321
    env = {
        "STAC_CATALOG": "s3://bucket/stac",
        "STAC_COLLECTION": "ndvi",
        "STAC_STORAGE_OPTIONS": json.dumps(creds),
    }
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    message = str(caught.value)
    assert f"storage option {option} must be text" in message and "STAC_STORAGE_OPTIONS=" in message, message
    assert "87654321" not in message and "minio-pass" not in message, message


@pytest.mark.parametrize(
    ("args", "flag", "field"),
    [
        (["-c", "CATALOG", "--collection", ""], "--collection ndvi", "HandlerConfig.collection"),
        (["-c", "", "--collection", "n"], "--catalog s3://bucket/stac", "HandlerConfig.catalog"),
    ],
)
def test_cli_empty_catalog_or_collection_names_the_flag(
    tmp_path: Path, args: list[str], flag: str, field: str
) -> None:
    payload = tmp_path / "event.json"
    payload.write_text('{"Records": []}')
    args = [str(tmp_path / "cat") if a == "CATALOG" else a for a in args]
    result = CliRunner().invoke(main, ["handle-event", str(payload), *args])
    assert result.exit_code == 2, result.output
    assert flag in result.output and field not in result.output
    assert not (tmp_path / "cat").exists()


def test_python_config_empty_collection_names_the_parameter() -> None:
    with pytest.raises(InputError, match=r"collection id is empty\. Fix it with collection='ndvi'"):
        HandlerConfig(catalog="s3://bucket/stac", collection="")


def test_an_unsafe_collection_id_is_a_configuration_error_in_each_callers_spelling(tmp_path: Path) -> None:
    """It was accepted at start-up: every event then failed each object with
    the same id error (the Lambda's SQS messages went round to the DLQ)."""
    with pytest.raises(InputError, match=r"unsafe collection id 'ndvi/v2'.*Fix it with collection='ndvi'"):
        HandlerConfig(catalog="s3://bucket/stac", collection="ndvi/v2")
    with pytest.raises(InputError, match=r"unsafe collection id 'ndvi/v2'.*Fix it with STAC_COLLECTION=ndvi"):
        HandlerConfig.from_env({"STAC_CATALOG": "s3://bucket/stac", "STAC_COLLECTION": "ndvi/v2"})
    payload = tmp_path / "event.json"
    payload.write_text('{"Records": []}')
    args = ["handle-event", str(payload), "-c", str(tmp_path / "cat"), "--collection", "ndvi/v2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "unsafe collection id 'ndvi/v2'" in result.output and "--collection ndvi" in result.output
    assert not (tmp_path / "cat").exists()


def test_cli_exit_codes_follow_the_records(s3: S3Server, tmp_path: Path) -> None:
    """README: handle-event exits 1 when a record failed (the others are
    still applied), 0 when none did (skipped ones included)."""
    good, bad = "products/ndvi/S2_20240601_T31UFQ.tif", "products/ndvi/undated.tif"
    s3.client().put_object(Bucket=s3.bucket, Key=good, Body=write_utm(tmp_path).read_bytes())
    s3.client().put_object(Bucket=s3.bucket, Key=bad, Body=write_nodate(tmp_path).read_bytes())
    args = ["-c", s3.url("stac"), "--collection", "ndvi"]
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"Records": [_record(s3.bucket, good), _record(s3.bucket, bad)]}))
    result = CliRunner().invoke(main, ["handle-event", str(payload), *args])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert [r["id"] for r in out["registered"]] == ["S2_20240601_T31UFQ"]
    assert [f["url"] for f in out["failed"]] == [f"s3://{s3.bucket}/{bad}"]
    payload.write_text(
        json.dumps({"Records": [_record(s3.bucket, good), _record(s3.bucket, "products/gone.tif")]})
    )
    result = CliRunner().invoke(main, ["handle-event", str(payload), *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"]


@pytest.mark.parametrize(
    ("variable", "value", "fact", "fix", "flags"),
    [
        (
            "STAC_GROUP",
            "(",
            "group pattern '(' is not a regular expression",
            "Fix it with STAC_GROUP='(?P<id>",
            ["--group", "(", "--suffix", ".tif"],
        ),
        (
            "STAC_SNS_TOPIC",
            "stac-changes",
            "SNS topic 'stac-changes' is not a topic ARN",
            "Fix it with STAC_SNS_TOPIC=arn:aws:sns:",
            ["--sns-topic", "stac-changes"],
        ),
    ],
)
def test_a_bad_group_pattern_or_topic_is_a_configuration_error_naming_the_variable(
    tmp_path: Path, variable: str, value: str, fact: str, fix: str, flags: list[str]
) -> None:
    """Both were accepted at start-up: every creation then failed with the
    error (the Lambda's SQS messages went round to the dead-letter queue),
    and a removal with a bad group pattern raised out of the handler,
    failing the whole batch, its fix spelled ``group=...`` for Python."""
    env = {"STAC_CATALOG": "s3://bucket/stac", "STAC_COLLECTION": "ndvi", variable: value}
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    assert fact in str(caught.value) and fix in str(caught.value), str(caught.value)
    payload = tmp_path / "event.json"
    payload.write_text('{"Records": []}')
    args = ["handle-event", str(payload), "-c", str(tmp_path / "cat"), "--collection", "ndvi", *flags]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert fact in result.output and f"Fix it with {flags[0]} " in result.output, result.output
    assert not (tmp_path / "cat").exists()


def test_a_catalog_url_of_an_unknown_scheme_is_a_configuration_error_naming_the_variable(
    tmp_path: Path,
) -> None:
    """``s4://`` was accepted at start-up: every record then failed with
    "cannot open catalog" (round to the dead-letter queue), and ``handle-event``
    exited 0 for an event with no record."""
    env = {"STAC_CATALOG": "s4://bucket/stac", "STAC_COLLECTION": "ndvi"}
    with pytest.raises(
        InputError, match=r"s4://bucket/stac.*is the URL scheme right\?.*Fix it with STAC_CATALOG="
    ):
        HandlerConfig.from_env(env)
    payload = tmp_path / "event.json"
    payload.write_text('{"Records": []}')
    result = CliRunner().invoke(
        main, ["handle-event", str(payload), "-c", "s4://bucket/stac", "--collection", "n"]
    )
    assert result.exit_code == 2, result.output
    assert "is the URL scheme right?" in result.output and "--catalog s3://bucket/stac" in result.output


def test_suffix_star_accepts_every_ending_in_each_callers_spelling(s3: S3Server, tmp_path: Path) -> None:
    """``*`` means every file ending for the handler (``STAC_SUFFIXES=*``, as
    deploy/README documents); ``handle-event --suffix '*'`` and
    ``HandlerConfig(suffixes=["*"])`` took it literally: every object was
    skipped ("file ending not one of ['*']"), exit 0, nothing registered."""
    key = "products/ndvi/S2_20240601_T31UFQ.gtiff"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=write_utm(tmp_path).read_bytes())
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"Records": [_record(s3.bucket, key)]}))
    args = ["handle-event", str(payload), "-c", s3.url("stac"), "--collection", "ndvi", "--suffix", "*"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["skipped"] == [] and [r["action"] for r in out["registered"]] == ["created"]
    config = HandlerConfig(catalog="s3://bucket/stac", collection="ndvi", suffixes=["*"])
    assert config.suffixes == HandlerConfig.from_env({**_ENV, "STAC_SUFFIXES": "*"}).suffixes == ()


_ENV = {"STAC_CATALOG": "s3://bucket/stac", "STAC_COLLECTION": "ndvi"}


def test_an_http_catalog_is_refused_at_start_up_as_read_only_without_its_signature(tmp_path: Path) -> None:
    """An http(s) catalog is read-only; the handler writes to it. It was
    accepted at start-up and every record then failed "read-only" (round to
    the dead-letter queue); handle-event exited 0 for an event with no record."""
    url = "https://bucket.s3.amazonaws.com/stac?X-Amz-Signature=deadbeef0123"
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env({"STAC_CATALOG": url, "STAC_COLLECTION": "ndvi"})
    message = str(caught.value)
    assert "read-only" in message and "Fix it with STAC_CATALOG=s3://bucket/stac" in message
    assert "deadbeef0123" not in message
    payload = tmp_path / "event.json"
    payload.write_text('{"Records": []}')
    result = CliRunner().invoke(main, ["handle-event", str(payload), "-c", url, "--collection", "n"])
    assert result.exit_code == 2, result.output
    assert "read-only" in result.output and "--catalog s3://bucket/stac" in result.output
    assert "deadbeef0123" not in result.output


def test_a_garbled_pgstac_dsn_is_refused_at_start_up_naming_the_variable_not_echoing_it() -> None:
    """It was accepted at start-up: every record then failed "not a valid
    connection string" (round to the dead-letter queue), naming no variable."""
    env = {**_ENV, "STAC_PGSTAC_DSN": "stac:s3cr3t-pw db.internal/stac"}
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env(env)
    message = str(caught.value)
    assert (
        "not a valid connection string" in message and "Fix it with STAC_PGSTAC_DSN=postgresql://" in message
    )
    assert "s3cr3t-pw" not in message


def test_a_pgstac_dsn_without_the_pgstac_extra_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Lambda image installs the [s3] extra only: with STAC_PGSTAC_DSN
    set, every record failed with an ImportError, round to the dead-letter
    queue. Now the handler refuses to start, saying what to install."""
    import sys

    monkeypatch.setitem(sys.modules, "producer.sinks.pgstac", None)  # as in an image without the extra
    with pytest.raises(InputError, match=r"STAC_PGSTAC_DSN is set.*stac-producer\[pgstac\]"):
        HandlerConfig.from_env({**_ENV, "STAC_PGSTAC_DSN": "postgresql://stac@db.internal:5432/stac"})


@pytest.mark.parametrize(
    ("options", "fact", "fix"),
    [
        (
            {"config_kwargs": {"read_timeout": "x"}},
            "config_kwargs read_timeout must be a number of seconds above 0, not 'x'",
            """STAC_STORAGE_OPTIONS='{"config_kwargs": {"read_timeout": 60}}'""",
        ),
        (
            {"config_kwargs": {"read_timout": 5}},
            "config_kwargs has no key 'read_timout' (did you mean 'read_timeout'?)",
            """STAC_STORAGE_OPTIONS='{"config_kwargs": {"read_timeout": 60}}'""",
        ),
        (
            {"client_kwargs": {"endpoint_urll": "http://127.0.0.1:9"}},
            "client_kwargs has no key 'endpoint_urll' (did you mean 'endpoint_url'?)",
            """STAC_STORAGE_OPTIONS='{"client_kwargs": {"endpoint_url": "VALUE"}}'""",
        ),
        (
            {"client_kwargs": {"region_name": 5}},
            "client_kwargs region_name must be text",
            """STAC_STORAGE_OPTIONS='{"client_kwargs": {"region_name": "eu-west-1"}}'""",
        ),
    ],
    ids=["timeout-not-a-number", "misspelt-config-key", "misspelt-client-key", "region-not-text"],
)
def test_bad_keys_in_stac_storage_options_are_refused_at_start_up_naming_the_variable(
    options: dict[str, Any], fact: str, fix: str
) -> None:
    """They were accepted: every record then failed with a raw TypeError
    ("unexpected keyword argument 'read_timout'"), or a timeout of "x" as a
    retryable storage error after trying to connect."""
    with pytest.raises(InputError) as caught:
        HandlerConfig.from_env({**_ENV, "STAC_STORAGE_OPTIONS": json.dumps(options)})
    assert fact in str(caught.value) and f"Fix it with {fix}" in str(caught.value), str(caught.value)


def test_a_timeout_that_is_no_number_is_an_input_error_of_the_library_naming_the_option(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError, match=r"config_kwargs read_timeout must be a number.*storage_options="):
        producer.register(
            [str(write_utm(tmp_path))],
            catalog="s3://bucket/stac",
            collection="c",
            storage_options={"config_kwargs": {"read_timeout": "x"}},
        )


def test_an_unsafe_asset_key_names_the_fix_in_each_callers_spelling(tmp_path: Path) -> None:
    """``STAC_ASSET_KEY='B 02'`` was refused at start-up with no fix naming the
    variable (as every other STAC_* error has), and the CLI's with no flag."""
    with pytest.raises(InputError, match=r"unsafe asset key 'B 02'.*Fix it with STAC_ASSET_KEY=B_02"):
        HandlerConfig.from_env({**_ENV, "STAC_ASSET_KEY": "B 02"})
    with pytest.raises(InputError, match=r"unsafe asset key 'B 02'.*Fix it with asset_key='B_02'"):
        HandlerConfig(catalog="s3://bucket/stac", collection="ndvi", asset_key="B 02")
    payload = tmp_path / "event.json"
    payload.write_text('{"Records": []}')
    args = [
        "handle-event",
        str(payload),
        "-c",
        str(tmp_path / "cat"),
        "--collection",
        "n",
        "--asset-key",
        "B 02",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "unsafe asset key 'B 02'" in result.output and "Fix it with --asset-key B_02" in result.output
    assert not (tmp_path / "cat").exists()
