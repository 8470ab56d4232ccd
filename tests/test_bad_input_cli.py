"""Bad input a user types: storage options, catalog paths, metadata names
(each is refused as a usage error that names the fix, storage untouched),
and option values that must reach the storage client as what they mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import _storage_options, main
from producer.errors import InputError
from producer.store import open_store
from tests import rasters
from tests.trees import tree_hash


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return rasters.write_all(tmp_path_factory.mktemp("bad-input-rasters"))


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


# -- storage options on the command line --------------------------------------


def test_storage_option_values_are_read_as_json_except_credentials():
    opts = _storage_options(
        [
            "anon=false",
            "requester_pays=false",
            "use_ssl=false",
            'config_kwargs={"read_timeout": 5}',
            "key=0123",
            "secret=12345",
            "endpoint_url=http://127.0.0.1:9000",
            'client_kwargs={"region_name": "eu-west-1"}',
            "profile=plain text",
        ]
    )
    assert opts["anon"] is False and opts["requester_pays"] is False and opts["use_ssl"] is False
    assert opts["config_kwargs"] == {"read_timeout": 5}
    assert opts["key"] == "0123" and opts["secret"] == "12345"  # credentials stay text
    assert opts["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}
    assert opts["profile"] == "plain text"


def test_storage_option_false_and_config_kwargs_reach_s3fs(s3_server, data):
    url = f"s3://{s3_server.new_bucket()}/stac"
    flags = [
        *("-o", f"endpoint_url={s3_server.endpoint_url}", "-o", "key=testing", "-o", "secret=testing"),
        *("-o", "anon=false", "-o", 'config_kwargs={"read_timeout": 5}'),
    ]
    res = invoke("register", str(data["utm"]), "-c", url, "--collection", "c", *flags)
    assert res.exit_code == 0, res.output
    res = invoke("validate", url, *flags)
    assert res.exit_code == 0, res.output
    store = open_store(url, _storage_options(flags[1::2]))
    assert store.fs.anon is False  # the text 'false' would be truthy: unsigned requests
    assert store.fs.config_kwargs["read_timeout"] == 5


@pytest.mark.parametrize("flag", ["-o", "--catalog-storage-option", "--data-storage-option"])
def test_a_malformed_storage_option_is_not_echoed(data, tmp_path, flag):
    catalog = tmp_path / "cat"
    res = invoke(
        "register", str(data["utm"]), "-c", str(catalog), "--collection", "c", flag, "secret:SEKRETXYZ"
    )
    assert res.exit_code == 2
    assert "SEKRETXYZ" not in res.output
    assert "not KEY=VALUE" in res.output and "'secret'" in res.output
    res = invoke("register", str(data["utm"]), "-c", str(catalog), "--collection", "c", flag, "AKIASEKRET99")
    assert res.exit_code == 2 and "AKIASEKRET99" not in res.output
    assert not catalog.exists()


# -- an endpoint without its scheme --------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "s3://bkt/stac"],
        ["search", "s3://bkt/stac"],
        ["remove", "x", "-c", "s3://bkt/stac", "--collection", "c"],
        ["reconcile", "s3://bkt/stac"],
        ["register", "s3://bkt/x.tif", "-c", "s3://bkt/stac", "--collection", "c"],
    ],
)
def test_an_endpoint_without_scheme_is_a_usage_error(args):
    res = invoke(*args, "-o", "endpoint_url=127.0.0.1:9000", "-o", "key=K", "-o", "secret=S")
    assert res.exit_code == 2, res.output
    assert not isinstance(res.exception, ValueError) or isinstance(res.exception, SystemExit)
    assert "is no endpoint URL" in res.output
    assert "-o endpoint_url=http://127.0.0.1:9000" in res.output


def test_an_endpoint_without_scheme_for_the_products_names_the_flag(data, tmp_path):
    catalog = tmp_path / "cat"
    res = invoke(
        "register", "s3://bkt/x.tif", "-c", str(catalog), "--collection", "c",
        "--data-storage-option", "endpoint_url=127.0.0.1:9000",
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--data-storage-option endpoint_url=http://127.0.0.1:9000" in res.output
    assert not catalog.exists()


def test_an_endpoint_without_scheme_in_the_api_is_an_input_error(data, tmp_path):
    bad = {"client_kwargs": {"endpoint_url": "127.0.0.1:9000"}, "key": "K", "secret": "S"}
    with pytest.raises(InputError, match=r"storage_options=\{'endpoint_url': 'http://127.0.0.1:9000'\}"):
        producer.validate_catalog("s3://bkt/stac", storage_options=bad)
    with pytest.raises(InputError, match="data_storage_options="):
        producer.register(
            [str(data["utm"])], catalog=str(tmp_path / "c"), collection="c", data_storage_options=bad
        )
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("key", ["client_kwargs", "config_kwargs", "s3_additional_kwargs"])
def test_a_client_kwargs_that_is_no_mapping_is_an_input_error(data, tmp_path, key):
    """client_kwargs: "http://minio:9000" (a deployment's JSON) crashed the catalog
    with s3fs's AttributeError, and for a product was a storage error "usually
    transient: retry" (the Prefect task retried it 3 times)."""
    bad = {key: "http://127.0.0.1:9000", "key": "K", "secret": "S"}
    with pytest.raises(InputError, match=rf"{key} must be a mapping.*not str") as info:
        producer.validate_catalog("s3://bkt/stac", storage_options=bad)
    if key == "client_kwargs":  # a URL given as it: the fix puts it where it belongs
        assert "storage_options={'client_kwargs': {'endpoint_url': 'http://127.0.0.1:9000'}}" in str(
            info.value
        )
    with pytest.raises(InputError, match=rf"data_storage_options.*{key}|{key}.*data_storage_options"):
        producer.register(
            ["s3://bkt/x_20240101.tif"], catalog=str(tmp_path / "c"), collection="c", data_storage_options=bad
        )
    assert not (tmp_path / "c").exists()


# -- the catalog given as its catalog.json -------------------------------------


def test_a_catalog_given_as_its_catalog_json_is_its_folder(data, tmp_path):
    catalog = tmp_path / "cat"
    root = str(catalog / "catalog.json")
    res = invoke("register", str(data["utm"]), "-c", str(catalog), "--collection", "c")
    assert res.exit_code == 0, res.output
    res = invoke("validate", root)
    assert res.exit_code == 0 and "catalog.json is missing" not in res.output, res.output
    res = invoke("search", root)
    assert res.exit_code == 0 and "Not a directory" not in res.output, res.output
    assert json.loads(res.output)["numberMatched"] == 1
    res = invoke("register", str(data["wgs84"]), "-c", root, "--collection", "c")
    assert res.exit_code == 0, res.output
    found = producer.search(root)
    assert found["numberMatched"] == 2
    item_id = found["features"][0]["id"]
    res = invoke("remove", item_id, "-c", root, "--collection", "c")
    assert res.exit_code == 0, res.output
    report = producer.reconcile(root)
    assert report.problems == [] and not (catalog / "catalog.json").is_dir()


def test_a_new_catalog_given_as_its_catalog_json_is_made_in_the_folder(data, tmp_path):
    res = invoke(
        "register", str(data["utm"]), "-c", str(tmp_path / "new" / "catalog.json"), "--collection", "c"
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "catalog.json").is_file()  # not a folder named catalog.json


# -- max_retries of remove and reconcile ---------------------------------------


@pytest.mark.parametrize("verb", ["reconcile", "remove"])
def test_a_negative_max_retries_is_refused_before_anything_is_written(data, tmp_path, verb):
    catalog = tmp_path / "cat"
    producer.register([str(data["utm"]), str(data["wgs84"])], catalog=str(catalog), collection="c")
    item = next(catalog.glob("c/**/*.json"), None)
    dangling = [p for p in catalog.rglob("*.json") if p.parent.name != "c" and p.parent != catalog][0]
    dangling.unlink()  # something for a fix to write
    before = tree_hash(catalog)
    with pytest.raises(InputError, match=r"at least 0, not -1\. Fix it with max_retries=25"):
        if verb == "reconcile":
            producer.reconcile(str(catalog), fix=True, max_retries=-1)
        else:
            producer.remove("x", catalog=str(catalog), collection="c", max_retries=-1)
    with pytest.raises(TypeError):
        producer.reconcile(str(catalog), max_retries="3")  # type: ignore[arg-type]
    assert tree_hash(catalog) == before and item is not None


# -- messages in the caller's spelling, naming the product ----------------------


def test_an_empty_derived_from_names_the_flag_in_the_cli_and_the_parameter_in_python(data, tmp_path):
    catalog = tmp_path / "cat"
    res = invoke("register", str(data["utm"]), "-c", str(catalog), "--collection", "c", "--derived-from", "")
    assert res.exit_code == 2, res.output
    assert "derived_from ''" not in res.output
    assert "Fix it with --derived-from s3://bucket/inputs/scene.tif" in res.output
    with pytest.raises(InputError, match=r"Fix it with via=\['https://"):
        producer.register([str(data["utm"])], catalog=str(catalog), collection="c", via=[" "])
    assert not catalog.exists()


def test_free_text_as_via_or_derived_from_is_refused_not_published_as_a_working_folder_path(
    data, tmp_path, monkeypatch
):
    """``--via "nightly run 42"`` became a link to ``/WORKING/FOLDER/nightly
    run 42``: the working folder's absolute path was published in the item."""
    monkeypatch.chdir(tmp_path)
    catalog = tmp_path / "cat"
    res = invoke(
        "register", str(data["utm"]), "-c", str(catalog), "--collection", "c", "--via", "nightly run 42"
    )
    assert res.exit_code == 2, res.output
    assert "'nightly run 42' is neither a URL nor the path of an existing file" in res.output, res.output
    assert "Fix it with --via https://ci.example.org/runs/42" in res.output, res.output
    with pytest.raises(InputError, match=r"neither a URL nor the path.*Fix it with derived_from=\['s3://"):
        producer.register(
            [str(data["utm"])], catalog=str(catalog), collection="c", derived_from=["l2a scene"]
        )
    assert not catalog.exists()
    # a path to a file stays a link to it (made absolute); a URL as given
    (tmp_path / "in.tif").write_bytes(b"")
    (result,) = producer.register(
        [str(data["utm"])], catalog=str(catalog), collection="c", derived_from=["in.tif"], via=["run:42"]
    )
    assert result.ok, result
    links = json.loads(Path(result.href).read_text())["links"]
    assert [x["href"] for x in links if x["rel"] == "derived_from"] == [str(tmp_path / "in.tif")]
    assert [x["href"] for x in links if x["rel"] == "via"] == ["run:42"]  # a URI: kept as given


def test_a_relative_input_file_with_a_colon_in_its_name_is_still_linked_by_its_absolute_path(
    data, tmp_path, monkeypatch
):
    """``--derived-from input-2024-01-01T10:00.nc`` (a file in the working
    folder, named with a time) looks like a URI with the scheme
    ``input-2024-01-01t10``: it was published as that relative text, which a
    reader resolves against the item's own folder, not as the file's path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input-2024-01-01T10:00.nc").write_bytes(b"")
    catalog = tmp_path / "cat"
    res = invoke(
        "register",
        str(data["utm"]),
        "-c",
        str(catalog),
        "--collection",
        "c",
        "--derived-from",
        "input-2024-01-01T10:00.nc",
        "--via",
        "doi:10.5281/zenodo.1",
    )
    assert res.exit_code == 0, res.output
    (item,) = catalog.rglob("utm_*.json")
    links = json.loads(item.read_text())["links"]
    assert [x["href"] for x in links if x["rel"] == "derived_from"] == [
        str(tmp_path / "input-2024-01-01T10:00.nc")
    ]
    assert [x["href"] for x in links if x["rel"] == "via"] == ["doi:10.5281/zenodo.1"]


def test_an_input_file_under_home_given_with_a_tilde_is_linked_not_refused(data, tmp_path, monkeypatch):
    """``derived_from=["~/inputs/x.nc"]`` (a config file, STAC_DERIVED_FROM:
    no shell expands it) was refused as "neither a URL nor the path of an
    existing file", as product paths and catalogs take ``~``."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "x.nc").write_bytes(b"")
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [str(data["utm"])], catalog=str(catalog), collection="c", derived_from=["~/inputs/x.nc"]
    )
    assert result.ok, result
    links = json.loads(Path(result.href).read_text())["links"]
    assert [x["href"] for x in links if x["rel"] == "derived_from"] == [str(tmp_path / "inputs" / "x.nc")]


def test_a_relative_input_path_not_there_yet_is_linked_not_refused(data, tmp_path, monkeypatch):
    """``registers_in_stac(derived_from=["inputs/raw.nc"])`` makes its options
    when the module is imported, before a task downloads the input (or after
    a clean-up removed it): a relative path with a folder in it is a path, not
    free text, and was refused as "neither a URL nor the path of an existing
    file" (it was linked by its absolute path before)."""
    monkeypatch.chdir(tmp_path)
    catalog = tmp_path / "cat"
    (result,) = producer.register(
        [str(data["utm"])], catalog=str(catalog), collection="c", derived_from=["inputs/raw.nc"]
    )
    assert result.ok, result
    links = json.loads(Path(result.href).read_text())["links"]
    assert [x["href"] for x in links if x["rel"] == "derived_from"] == [str(tmp_path / "inputs" / "raw.nc")]
    # free text with a slash in it is still no path
    with pytest.raises(InputError, match="neither a URL nor the path"):
        producer.register(
            [str(data["utm"])],
            catalog=str(catalog),
            collection="c",
            via=["see https://ci.example.org/runs/42"],
        )


def test_an_empty_product_path_is_refused_naming_its_position(data, tmp_path):
    catalog = tmp_path / "cat"
    res = invoke("register", str(data["utm"]), "", "-c", str(catalog), "--collection", "c")
    assert res.exit_code == 2, res.output
    assert "empty product path (2nd of the 2 given)" in res.output and "unsafe item id" not in res.output
    for expand in (True, False):
        with pytest.raises(InputError, match=r"empty product path \(1st of the 1 given\)"):
            producer.register([""], catalog=str(catalog), collection="c", expand=expand)
    assert not catalog.exists()


# -- metadata that would overwrite what the producer writes ---------------------


@pytest.mark.parametrize(
    "meta", [{"id": "other"}, {"type": "Catalog"}, {"links": []}, {"stac_version": "0.9.0"}, {"extent": {}}]
)
def test_collection_meta_cannot_set_a_structural_field(data, tmp_path, meta):
    catalog = tmp_path / "cat"
    producer.register([str(data["utm"])], catalog=str(catalog), collection="a")
    before = tree_hash(catalog)
    res = invoke(
        "register", str(data["wgs84"]), "-c", str(catalog), "--collection", "c",
        "--collection-meta", json.dumps(meta),
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    key = next(iter(meta))
    assert f"cannot set {key!r}" in res.output and '--collection-meta \'{"title": "NDVI"}\'' in res.output
    if key == "id":
        assert "--collection other" in res.output
    with pytest.raises(InputError, match=r"collection_meta=\{'title': 'NDVI'\}"):
        producer.register([str(data["wgs84"])], catalog=str(catalog), collection="c", collection_meta=meta)
    assert tree_hash(catalog) == before


def test_root_meta_cannot_set_links_but_may_set_its_id(data, tmp_path):
    with pytest.raises(InputError, match="cannot set 'links'"):
        producer.register(
            [str(data["utm"])], catalog=str(tmp_path / "x"), collection="c", root_meta={"links": []}
        )
    assert not (tmp_path / "x").exists()
    producer.register(
        [str(data["utm"])], catalog=str(tmp_path / "y"), collection="c", root_meta={"id": "mine"}
    )
    assert json.loads((tmp_path / "y" / "catalog.json").read_text())["id"] == "mine"


@pytest.mark.parametrize(
    "name", ["geometry", "bbox", "links", "assets", "type", "stac_version", "id", "collection", "properties"]
)
def test_a_property_named_as_a_top_level_item_field_is_refused(data, tmp_path, name):
    catalog = tmp_path / "cat"
    res = invoke(
        "register", str(data["utm"]), "-c", str(catalog), "--collection", "c", "--property", f"{name}=1"
    )
    assert res.exit_code == 2, res.output
    assert f"property {name!r} is the name of a top-level field of the item" in res.output
    assert f"--property 'my:{name}=<value>'" in res.output
    with pytest.raises(InputError, match=rf"properties=\{{'my:{name}': '<value>'\}}"):
        producer.register([str(data["utm"])], catalog=str(catalog), collection="c", properties={name: 1})
    assert not catalog.exists()


def test_a_property_of_another_name_keeps_the_mirror_current(data, tmp_path):
    catalog = tmp_path / "cat"
    res = invoke(
        "register", str(data["utm"]), "-c", str(catalog), "--collection", "c", "--property", "my:bbox=1"
    )
    assert res.exit_code == 0, res.output
    assert producer.reconcile(str(catalog)).problems == []


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
def test_a_region_outside_client_kwargs_is_refused_with_where_it_goes(
    s3_server, data, tmp_path, monkeypatch, client
):
    """``-o region_name=eu-west-1`` (boto3's spelling): s3fs takes the region
    only in ``client_kwargs``. The default client dropped it without a word
    (requests signed for another region), with a profile it crashed with a
    traceback (``AioSession() got an unexpected keyword argument``), and
    obstore refused it as an option it does not support. Now both refuse it
    before any request, with the option where it is read."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    bucket = s3_server.new_bucket()
    for extra in ((), ("-o", "profile=default")):
        res = invoke(
            "register", str(data["utm"]), "-c", f"s3://{bucket}/stac", "--collection", "c",
            "-o", "region_name=eu-west-1", *extra,
        )  # fmt: skip
        assert res.exit_code == 2, res.output
        assert (
            "region_name" in res.output
            and """-o 'client_kwargs={"region_name": "eu-west-1"}'""" in res.output
        )
        assert "Traceback" not in res.output
    with pytest.raises(InputError, match="client_kwargs"):
        producer.validate_catalog(f"s3://{bucket}/stac", storage_options={"region_name": "eu-west-1"})
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
def test_boto3_spellings_and_misspelt_s3_options_are_refused_naming_what_s3fs_reads(
    s3_server, data, tmp_path, monkeypatch, client
):
    """``aws_access_key_id``/``aws_secret_access_key`` (boto3's names): the
    default client dropped them and signed with the environment's
    credentials; a misspelt option beside a ``profile`` crashed it with a
    traceback. Both clients refuse them alike, never showing the secret."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    bucket = s3_server.new_bucket()
    cases = [
        (
            ("-o", "aws_access_key_id=AKIAEXAMPLE", "-o", "aws_secret_access_key=boto3-secret-9f2"),
            "-o secret=SECRET",
        ),
        (("-o", "profile=default", "-o", "anonn=true"), "did you mean 'anon'?"),
    ]
    for flags, fix in cases:
        res = invoke("validate", f"s3://{bucket}/stac", *flags)
        assert res.exit_code == 2, res.output
        assert fix in res.output and "Traceback" not in res.output and "boto3-secret-9f2" not in res.output
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_an_s3_catalog_url_with_one_slash_is_refused_not_made_a_local_folder(data, tmp_path, monkeypatch):
    """``-c s3:/bucket/stac`` (one slash lost): read as a relative path, the
    catalog was created in a folder named ``s3:`` under the working
    directory and the register said ``created``, while the bucket stayed
    empty. Refused with the URL meant; ``file:/path`` stays a local path."""
    monkeypatch.chdir(tmp_path)
    res = invoke("register", str(data["utm"]), "-c", "s3:/bucket/stac", "--collection", "c")
    assert res.exit_code == 2, res.output
    assert "s3://bucket/stac" in res.output
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="gs://bucket/stac"):
        producer.validate_catalog("gs:/bucket/stac")
    (done,) = producer.register([str(data["utm"])], catalog=f"file:{tmp_path}/cat", collection="c")
    assert done.action == "created" and (tmp_path / "cat" / "catalog.json").is_file()
    # the event handler refuses it at start-up, naming its variable, not in each record
    from producer.events import HandlerConfig

    with pytest.raises(InputError, match="STAC_CATALOG=s3://bucket/stac") as info:
        HandlerConfig.from_env({"STAC_CATALOG": "s3:/bucket/stac", "STAC_COLLECTION": "c"})
    assert "'s3:' and a single '/'" in str(info.value)


@pytest.mark.parametrize("flag", ["--catalog-storage-option", "--data-storage-option"])
def test_the_fix_for_a_region_given_to_one_side_is_json_the_flag_reads_back(data, tmp_path, flag):
    """``--catalog-storage-option region_name=eu-west-1`` was told to give
    ``client_kwargs={'region_name': 'eu-west-1'}``, a Python dict's repr: pasted
    back, that is no JSON, so the flag took it as a text. The fix is the JSON
    object ``-o`` shows, and reading it back gives the region where s3fs reads it."""
    import shlex

    catalog = tmp_path / "stac"
    res = invoke(
        "register", str(data["utm"]), "-c", str(catalog), "--collection", "c", flag, "region_name=eu-west-1"
    )
    assert res.exit_code == 2, res.output
    fix = res.output.split("Fix it with ", 1)[1].split(" (the options", 1)[0]
    words = shlex.split(fix)
    assert words[0] == flag
    assert _storage_options(words[1:], flag) == {"client_kwargs": {"region_name": "eu-west-1"}}
    assert not catalog.exists()


def test_the_storage_option_help_puts_the_region_where_it_is_taken():
    """``-o --help`` listed ``region_name`` among the options whose VALUE stays
    text, as if ``-o region_name=eu-west-1`` were one to give: it is refused
    (s3fs reads the region in ``client_kwargs``), so the help says where it goes."""
    res = invoke("search", "--help")
    help_text = " ".join(res.output.split())
    assert "and region_name." not in help_text
    assert """client_kwargs='{"region_name": "eu-west-1"}'""" in help_text
    res = invoke("search", "x", "-o", """client_kwargs={"region_name": "eu-west-1"}""")
    assert "client_kwargs" not in res.output  # the form the help gives is taken


def test_a_misspelt_catalog_storage_option_is_fixed_on_the_flag_it_came_from(s3_server, data):
    """``--catalog-storage-option anonn=true`` (an S3 catalog) was told to give
    ``-o anon=VALUE``: ``-o`` gives it to the products too, and the misspelt
    catalog option stays. The fix names the option the caller used, on the
    command line and from Python; nothing is written."""
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/stac"
    res = invoke(
        "register", str(data["utm"]), "-c", url, "--collection", "c",
        "--catalog-storage-option", "anonn=true",
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--catalog-storage-option anon=VALUE" in res.output and "-o anon" not in res.output
    with pytest.raises(InputError, match=r"catalog_storage_options=\{'anon'"):
        producer.register(
            str(data["utm"]), catalog=url, collection="c", catalog_storage_options={"anonn": True}
        )
    res = invoke("register", str(data["utm"]), "-c", url, "--collection", "c", "-o", "anonn=true")
    assert res.exit_code == 2 and "-o anon=VALUE" in res.output, res.output  # given once: -o
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_misspelt_storage_option_of_products_on_s3_is_refused_not_dropped(s3_server, data, tmp_path):
    """``--data-storage-option anonn=true`` (or ``-o``) for products on S3 with
    a local catalog: s3fs took the misspelt option without a word and read the
    products with the environment's credentials (``created``, exit 0); a
    misspelt ``client_kwargs`` key failed each product with a raw
    ``TypeError``. Both are refused before anything is read, as for an S3
    catalog, with the fix on the flag given; nothing is written."""
    bucket = s3_server.new_bucket()
    s3_server.client().upload_file(str(data["utm"]), bucket, "products/utm.tif")
    product = f"s3://{bucket}/products/utm.tif"
    catalog = tmp_path / "stac"
    cases = [
        (("--data-storage-option", "anonn=true"), "--data-storage-option anon=VALUE"),
        (("-o", "anonn=true"), "-o anon=VALUE"),
        (("-o", 'client_kwargs={"endpoint_urll": "http://127.0.0.1:9"}'), "did you mean 'endpoint_url'?"),
    ]
    for flags, fix in cases:
        res = invoke("register", product, "-c", str(catalog), "--collection", "c", *flags)
        assert res.exit_code == 2, res.output
        assert "the products' storage options" in res.output and fix in res.output, res.output
        assert "Traceback" not in res.output and not catalog.exists()
    with pytest.raises(InputError, match=r"data_storage_options=\{'anon'"):
        producer.register(product, catalog=str(catalog), collection="c", data_storage_options={"anonn": True})


def test_a_product_url_with_one_slash_is_told_the_url_meant(data, tmp_path, monkeypatch):
    """``register s3:/bucket/x.tif`` (one slash lost, as for ``-c``) failed
    with "/work/s3:/bucket/x.tif: file not found; check the path", a path the
    caller never typed: the error names the URL meant."""
    monkeypatch.chdir(tmp_path)
    res = invoke("register", "s3:/bucket/products/x.tif", "-c", str(tmp_path / "cat"), "--collection", "c")
    assert res.exit_code == 1, res.output
    assert "s3://bucket/products/x.tif" in " ".join(res.output.split()), res.output


def test_a_shared_option_for_http_products_names_their_own_option_for_an_s3_catalog(tmp_path):
    """``-o block_size=...`` meant for products on an http server, with the
    catalog on S3: s3fs once ignored it, now the catalog refuses it, and the
    only fix offered was s3fs's ``default_block_size`` for the catalog. It
    also names the products' own option, which keeps it away from s3fs."""
    res = invoke(
        "register",
        "https://data.example.invalid/cog_20240101.tif",
        "-c",
        "s3://bucket/stac",
        "--collection",
        "c",
        "-o",
        "block_size=1048576",
    )
    assert res.exit_code == 2, res.output
    assert "--data-storage-option block_size=" in res.output, res.output
    assert "Traceback" not in res.output


def test_obstore_refusing_product_options_names_the_flag_that_takes_them(s3_server, data, monkeypatch):
    """With ``STAC_S3_CLIENT=obstore``, ``-o 'config_kwargs={"retries": ...}'``
    was refused saying "give them as the products' own storage options",
    naming neither the flag nor the way to write them: the refusal ends with
    ``--data-storage-option`` and the value to paste (the library's with
    ``data_storage_options=``), and nothing is written."""
    monkeypatch.setenv("STAC_S3_CLIENT", "obstore")
    bucket = s3_server.new_bucket()
    res = invoke(
        "register", str(data["utm"]), "-c", f"s3://{bucket}/stac", "--collection", "c",
        "-o", 'config_kwargs={"retries": {"max_attempts": 3}}',
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert """--data-storage-option 'config_kwargs={"retries": {"max_attempts": 3}}'""" in res.output, (
        res.output
    )
    assert "Traceback" not in res.output
    res = invoke(
        "validate", f"s3://{bucket}/stac", "-o", "requester_pays=true",
        "-o", 'client_kwargs={"aws_secret_access_key": "obstore-secret-5c1"}',
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--data-storage-option requester_pays=true" in res.output, res.output
    assert "obstore-secret-5c1" not in res.output and "VALUE" in res.output, res.output
    with pytest.raises(InputError, match=r"data_storage_options=\{'config_kwargs': \{'retries'"):
        producer.register(
            [str(data["utm"])], catalog=f"s3://{bucket}/stac", collection="c",
            storage_options={"config_kwargs": {"retries": {"max_attempts": 3}}},
        )  # fmt: skip
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_an_empty_data_entry_of_reconcile_is_refused_naming_it_in_the_callers_spelling(data, tmp_path):
    """``reconcile --data "$DIR"`` with the variable unset (or a list built
    with a trailing empty entry) was refused as "empty product path (2nd of
    the 2 given)", naming no option: which of the paths given, of what? The
    refusal names ``--data`` (``data`` in Python) and the entry; skipping it
    could hide the prefix meant behind "0 missing"."""
    catalog = tmp_path / "cat"
    producer.register([str(data["utm"])], catalog=str(catalog), collection="c")
    before = tree_hash(catalog)
    folder = str(Path(data["utm"]).parent)
    for extra in ([], ["--fix"]):
        res = invoke("reconcile", str(catalog), "--data", folder, "--data", "", "--collection", "c", *extra)
        assert res.exit_code == 2, res.output
        assert "the 2nd --data of the 2 given is empty" in res.output, res.output
        assert "Nothing was checked or written" in res.output
    with pytest.raises(InputError, match="data: its 2nd entry of the 2 given is empty"):
        producer.reconcile(str(catalog), data=[folder, " "], fix=True, collection="c")
    with pytest.raises(InputError, match="data is empty.*leave data out"):
        producer.reconcile(str(catalog), data="")
    assert tree_hash(catalog) == before
