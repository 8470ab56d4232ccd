"""S3 with no AWS credentials anywhere: the caller's configuration, not a
storage fault. Every path that reaches S3 (reading a product, the catalog,
listing a prefix) says that no credentials were found and how to give them,
as an ``input`` error (not retried: a retry finds none either).

The S3 is the suite's moto server on 127.0.0.1; the credentials of its
environment are taken away for the test (restored afterwards), instance
metadata stays off and the AWS config files are empty files, so botocore's
chain finds nothing and nothing leaves the machine."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import NO_CREDENTIALS_HINT, InputError
from producer.options import env_spelling
from producer.sources import expand_paths
from tests import rasters

#: what the credential chain reads besides the config files (s3server sets some, removes others)
_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECURITY_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


@pytest.fixture
def bare(s3_server, tmp_path, monkeypatch):
    """The S3 server, a bucket holding one COG (uploaded with the server's
    own credentials), and then an environment without any credentials."""
    bucket = s3_server.new_bucket()
    cog = rasters.write_cog(tmp_path / "src")
    s3_server.client().put_object(Bucket=bucket, Key="products/cog_20240105.tif", Body=cog.read_bytes())
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    for var in _CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # fsspec keeps the file systems it made per process, keyed by their
    # options: one made by an earlier test of this worker (the same options,
    # its credentials already resolved) would answer without looking again
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return bucket, cog


def _says_no_credentials(message: str) -> None:
    assert "no AWS credentials found" in message, message
    assert "AWS_PROFILE" in message and "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in message
    assert "transient" not in message and "network" not in message and "retry" not in message


def test_a_product_on_s3_without_credentials_is_an_input_error(bare, catalog_dir):
    bucket, _ = bare
    (res,) = producer.register(
        [f"s3://{bucket}/products/cog_20240105.tif"], catalog=str(catalog_dir), collection="c", workers=1
    )
    assert res.action == "error"
    assert res.error_type == "input"  # the Prefect task and the event handler do not retry it
    _says_no_credentials(res.error)
    assert res.hints == (NO_CREDENTIALS_HINT,)
    assert "storage_options={'key': 'KEY', 'secret': 'SECRET'}" in res.error  # Python's spelling
    assert (
        env_spelling(NO_CREDENTIALS_HINT) == """STAC_STORAGE_OPTIONS='{"key": "KEY", "secret": "SECRET"}'"""
    )


def test_an_s3_catalog_without_credentials_is_an_input_error(bare):
    bucket, cog = bare
    (res,) = producer.register([str(cog)], catalog=f"s3://{bucket}/stac", collection="c")
    assert res.action == "error"
    assert res.error_type == "input"
    _says_no_credentials(res.error)
    assert res.hints == (NO_CREDENTIALS_HINT,)
    with pytest.raises(InputError, match="no AWS credentials found"):
        producer.validate_catalog(f"s3://{bucket}/stac")


def test_listing_an_s3_prefix_without_credentials_is_an_input_error(bare):
    bucket, _ = bare
    with pytest.raises(InputError) as info:
        expand_paths(f"s3://{bucket}/products/")
    _says_no_credentials(str(info.value))


def test_the_cli_spells_the_fix_as_storage_option_flags(bare, tmp_path):
    bucket, cog = bare
    res = CliRunner().invoke(
        main,
        ["register", f"s3://{bucket}/products/cog_20240105.tif", "-c", str(tmp_path / "stac")]
        + ["--collection", "c", "--json", "--workers", "1"],
    )
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout.splitlines()[0])
    assert out["error_type"] == "input"
    _says_no_credentials(out["error"])
    assert out["error"].endswith("Fix it with -o key=KEY -o secret=SECRET (give the credentials)")
    res = CliRunner().invoke(main, ["validate", f"s3://{bucket}/stac"])
    assert res.exit_code == 2, res.output
    assert "no AWS credentials found" in res.output and "-o key=KEY -o secret=SECRET" in res.output


@pytest.mark.usefixtures("prefect_harness")
def test_the_prefect_task_advises_the_workers_environment_not_storage_options(bare, catalog_dir):
    """Inside a Prefect run the fix said storage_options={'key': ..., 'secret': ...}:
    parameters Prefect stores in plain text (docs/PREFECT.md says never put keys there)."""
    from prefect import flow

    from producer.prefect import RegistrationFailed, register_in_stac

    bucket, _ = bare

    @flow(name="no-credentials")
    def run() -> object:
        return register_in_stac.with_options(retries=0)(
            f"s3://{bucket}/products/cog_20240105.tif",
            catalog=str(catalog_dir),
            collection="c",
            return_state=True,
        ).result(raise_on_failure=False)

    failed = run()
    assert isinstance(failed, RegistrationFailed)
    (row,) = failed.failed
    _says_no_credentials(row["error"])
    for message in (row["error"], str(failed)):
        assert "storage_options=" not in message, message
        assert "environment of the worker" in message and "IAM role" in message, message


@pytest.mark.usefixtures("prefect_harness")
def test_the_backfill_and_reconcile_flows_advise_the_workers_environment(bare, tmp_path):
    """Listing the prefix (backfill) or opening the catalog (reconcile) with no
    credentials advised storage_options={'key': ..., 'secret': ...} too."""
    from flows.backfill import backfill
    from flows.reconcile import reconcile_catalog

    bucket, _ = bare
    states = [
        backfill(f"s3://{bucket}/products/", str(tmp_path / "stac"), "c", return_state=True),
        reconcile_catalog(f"s3://{bucket}/stac", return_state=True),
    ]
    for state in states:
        with pytest.raises(InputError) as info:
            state.result()
        message = str(info.value)
        _says_no_credentials(message)
        assert "storage_options=" not in message, message
        assert "environment of the worker" in message and "IAM role" in message, message


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
@pytest.mark.parametrize("given", ["environment", "option"])
def test_a_profile_that_does_not_exist_is_the_callers_configuration(
    bare, tmp_path, monkeypatch, client, given
):
    """AWS_PROFILE (or ``-o profile=``) naming no profile of the config
    files: s3fs failed as a retryable "The config profile (x) could not be
    found; check the endpoint and network" (exit 1); obstore called it "bad
    storage_options" (exit 1) also when it came from the environment."""
    bucket, _ = bare
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    o = ["-o", "profile=nosuchprofile"] if given == "option" else []
    if given == "environment":
        monkeypatch.setenv("AWS_PROFILE", "nosuchprofile")
    res = CliRunner().invoke(main, ["validate", f"s3://{bucket}/stac", *o])
    assert res.exit_code == 2, res.output
    _says_no_credentials(res.output)
    assert "nosuchprofile" in res.output and "bad storage_options" not in res.output
    res = CliRunner().invoke(
        main, ["register", f"s3://{bucket}/products/", "-c", str(tmp_path / "stac"), "--collection", "c", *o]
    )
    assert res.exit_code == 2, res.output
    _says_no_credentials(res.output)
