"""A property (or new collection/root metadata) whose *name* says it holds a
credential: a pipeline handing its run parameters to ``properties`` (a
``db_password``, an ``api_key``) published the secret in every item, the
search mirror and pgSTAC. Only URLs were cleaned. Such a value is refused
when the options are made, named by its path and never echoed; nothing is
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from producer.events import HandlerConfig
from producer.options import RegisterOptions
from tests import rasters

SECRET = "S3KR1TVALUE"


@pytest.fixture(scope="module")
def utm(tmp_path_factory) -> Path:
    return rasters.write_utm(tmp_path_factory.mktemp("rasters"))


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"password": SECRET}, "'password'"),
        ({"my:api_key": SECRET}, "'my:api_key'"),
        (
            {"processing:parameters": {"db": {"db_password": SECRET}}},
            "'processing:parameters' (at db.db_password)",
        ),
        ({"run": [{"name": "x"}, {"accessToken": SECRET}]}, "'run' (at [1].accessToken)"),
        ({"AWS_SECRET_ACCESS_KEY": SECRET}, "'AWS_SECRET_ACCESS_KEY'"),
        ({"token": 12345}, "'token'"),
    ],
)
def test_a_property_named_like_a_credential_is_refused_without_echoing_it(properties, named) -> None:
    with pytest.raises(InputError) as refused:
        RegisterOptions(properties=properties)
    text = str(refused.value)
    assert named in text and "credential" in text
    assert SECRET not in text and "12345" not in text
    assert SECRET not in json.dumps([h.to_dict() for h in refused.value.hints])


@pytest.mark.parametrize(
    "properties",
    [
        {"password": None},  # nothing to leak
        {"token": ""},
        {"password_protected": True},  # names that only mention one
        {"proj:code": "EPSG:4326"},
        {"processing:level": "L2", "code": "L2A", "key": "tile"},  # too generic to be one
        {"tokens_used": 3, "secrets_manager_arn_present": False},
    ],
)
def test_properties_that_hold_no_credential_are_kept(properties) -> None:
    assert RegisterOptions(properties=properties).properties == properties


def test_collection_and_root_metadata_and_providers_are_checked_too() -> None:
    for options in (
        {"collection_meta": {"title": "T", "api_key": SECRET}},
        {"root_meta": {"description": "d", "credentials": {"user": "bob", "pw": SECRET}}},
        {"item_providers": [{"name": "ACME", "token": SECRET}]},
    ):
        with pytest.raises(InputError) as refused:
            RegisterOptions(**options)
        assert "credential" in str(refused.value) and SECRET not in str(refused.value)


def test_cli_and_event_handler_refuse_it_before_anything_is_written(utm, tmp_path) -> None:
    catalog = tmp_path / "stac"
    res = CliRunner().invoke(
        main,
        [
            "register",
            str(utm),
            "-c",
            str(catalog),
            "--collection",
            "c",
            "--property",
            f"db_password={SECRET}",
        ],
    )
    assert res.exit_code == 2, res.output
    assert "'db_password'" in res.output and SECRET not in res.output
    assert not catalog.exists()
    env = {
        "STAC_CATALOG": str(catalog),
        "STAC_COLLECTION": "c",
        "STAC_PROPERTIES": json.dumps({"token": SECRET}),
    }
    with pytest.raises(InputError) as refused:
        HandlerConfig.from_env(env)
    assert "'token'" in str(refused.value) and SECRET not in str(refused.value)
    with pytest.raises(InputError):
        producer.register([utm], catalog=str(catalog), collection="c", properties={"secret": SECRET})
    assert not catalog.exists()


#: the STAC Authentication extension's map of schemes: its keys are names the
#: publisher chose for each scheme ("token", "apikey"), which hold no secret
AUTH_SCHEMES = {
    "token": {"type": "http", "scheme": "bearer", "description": "a bearer token from the portal"},
    "apikey": {"type": "apiKey", "name": "X-API-Key", "in": "header"},
}


@pytest.mark.parametrize("field", ["collection_meta", "root_meta", "properties"])
def test_auth_scheme_names_are_no_credentials(field) -> None:
    meta = {"auth:schemes": AUTH_SCHEMES}
    if field != "properties":
        meta["title"] = "T"
    options = RegisterOptions(**{field: meta})
    assert getattr(options, field)["auth:schemes"] == AUTH_SCHEMES


def test_a_secret_inside_an_auth_scheme_is_still_refused() -> None:
    schemes = {"token": {"type": "http", "scheme": "bearer", "token": SECRET}}
    with pytest.raises(InputError) as refused:
        RegisterOptions(collection_meta={"title": "T", "auth:schemes": schemes})
    assert "auth:schemes.token.token" in str(refused.value) and SECRET not in str(refused.value)
