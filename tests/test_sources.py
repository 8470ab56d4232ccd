"""What a product argument means (producer/sources.py), and credentials in
product URLs (producer/redact.py): names are taken literally before any
globbing, s3 globs match any number of objects, http(s) URLs keep their query,
and no secret reaches an href, a result, the CLI output or a traceback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from click.testing import CliRunner

import producer
from producer.api import expand_paths as api_expand_paths
from producer.cli import main
from producer.extract import ExtractOptions, create_item
from producer.redact import clean_href, redact
from producer.sources import expand_paths
from tests import rasters

REPO = Path(__file__).resolve().parent.parent
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"


def _upload(s3_server, bucket: str, path: Path, key: str) -> str:
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return f"s3://{bucket}/{key}"


def _run(args: list[str]):
    return CliRunner().invoke(main, args)


# --- local names -------------------------------------------------------------------------


def test_existing_local_name_with_brackets_is_taken_literally_not_globbed(tmp_path):
    literal = tmp_path / "br[1]_20240101.tif"
    shutil.copy(rasters.write_utm(tmp_path / "src"), literal)
    shutil.copy(rasters.write_wgs84(tmp_path / "src"), tmp_path / "br1_20240101.tif")
    assert expand_paths([str(literal)]) == [str(literal)]
    assert api_expand_paths(str(literal)) == [str(literal)]  # the re-export audit.py uses
    catalog = tmp_path / "catalog"
    res = _run(["register", str(literal), "-c", str(catalog), "--collection", "c", "--json"])
    # br1_20240101.tif, which the pattern would match, is never registered
    assert not (catalog / "c" / "br1_20240101").exists()
    (out,) = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    assert out["source"] == str(literal)


def test_local_glob_still_expands_when_no_file_has_that_name(tmp_path):
    for writer in (rasters.write_utm, rasters.write_wgs84):
        writer(tmp_path)
    found = expand_paths([str(tmp_path / "*_2024*.tif")])
    assert [Path(p).name for p in found] == ["utm_20240513.tif", "wgs84_20240301.tif"]


# --- s3 keys -------------------------------------------------------------------------------


def test_s3_glob_matching_several_objects_registers_them_all(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    for writer in (rasters.write_utm, rasters.write_wgs84):
        path = writer(tmp_path)
        _upload(s3_server, bucket, path, f"data/{path.name}")
    s3_server.client().put_object(Bucket=bucket, Key="data/notes.txt", Body=b"x")
    catalog = tmp_path / "catalog"
    res = _run(
        [
            "register",
            f"s3://{bucket}/data/*.tif",
            "-c",
            str(catalog),
            "--collection",
            "c",
            "--json",
            "-o",
            f"endpoint_url={s3_server.endpoint_url}",
        ]
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    assert sorted((l["id"], l["action"]) for l in lines) == [
        ("utm_20240513", "created"),
        ("wgs84_20240301", "created"),
    ]
    res = _run(
        [
            "register",
            f"s3://{bucket}/data/*.nc",
            "-c",
            str(catalog),
            "--collection",
            "c",
            "-o",
            f"endpoint_url={s3_server.endpoint_url}",
        ]
    )
    assert res.exit_code == 2 and "no products found" in res.output


def test_s3_prefix_without_products_names_the_endings_it_holds(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    for name in ("a_20240105.jp2", "b_20240106.jp2", "notes.txt"):
        s3_server.client().put_object(Bucket=bucket, Key=f"scenes/{name}", Body=b"x")
    res = _run(
        ["register", f"s3://{bucket}/scenes/", "-c", str(tmp_path / "catalog"), "--collection", "c"]
        + ["-o", f"endpoint_url={s3_server.endpoint_url}"]
    )
    assert res.exit_code == 2, res.output
    assert "it holds files ending in .jp2 (2), .txt (1)" in res.output
    assert f"s3://{bucket}/scenes/**/*.jp2" in res.output
    assert not (tmp_path / "catalog").exists()


@pytest.mark.parametrize("name", ["scene?v3.tif", "scene#v2.tif", "scene[1].tif"])
def test_s3_key_with_question_mark_hash_or_brackets_is_taken_literally(name, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    _upload(s3_server, bucket, rasters.write_utm(tmp_path), "data/scene.tif")
    special = rasters.write_wgs84(tmp_path)
    url = _upload(s3_server, bucket, special, f"data/{name}")
    options = s3_server.storage_options
    assert expand_paths([url], options) == [url]
    # the bytes read are those of that very key, not of data/scene.tif
    item = create_item(
        url, ExtractOptions(id_template="{parent}", datetime="2024-03-01T00:00:00Z", storage_options=options)
    )
    asset = item.assets["data"]
    assert asset.href == url
    assert asset.extra_fields["file:size"] == special.stat().st_size
    assert item.bbox[0] == pytest.approx(rasters.WGS84_ORIGIN[0])


def test_empty_bucket_name_is_a_clear_error_not_a_traceback(tmp_path):
    res = _run(["register", "s3://", "-c", str(tmp_path / "catalog"), "--collection", "c"])
    assert res.exit_code == 2, res.output
    assert "no bucket name" in res.output
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit)
    assert not (tmp_path / "catalog").exists()


# --- http(s) URLs and credentials ----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_presigned_https_url_with_query_is_registered_without_its_signature(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    _upload(s3_server, bucket, rasters.write_utm(tmp_path), "data/utm_20240513.tif")
    presigned = s3_server.client().generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "data/utm_20240513.tif", "ResponseCacheControl": "no-cache"},
        ExpiresIn=600,
    )
    assert "X-Amz-Signature=" in presigned or "Signature=" in presigned
    catalog = tmp_path / "catalog"
    # GDAL holds the GIL while it reads an http URL, so the server (in this
    # process) is only reachable from another one: the CLI runs in a subprocess
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "producer.cli",
            "register",
            presigned,
            "-c",
            str(catalog),
            "--collection",
            "c",
            "--json",
        ],
        cwd=REPO,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, (res.stdout, res.stderr)
    output = res.stdout + res.stderr
    (item_file,) = catalog.glob("c/*/*.json")
    text = item_file.read_text()
    href = json.loads(text)["assets"]["data"]["href"]
    assert href == f"{s3_server.endpoint_url}/{bucket}/data/utm_20240513.tif?response-cache-control=no-cache"
    signing = {
        k: v
        for k, v in parse_qsl(urlsplit(presigned).query)
        if k in ("Signature", "X-Amz-Signature", "AWSAccessKeyId", "X-Amz-Credential")
    }
    assert signing
    for value in signing.values():
        assert value not in text and value not in output


def test_credentials_in_a_product_url_are_redacted_in_results_cli_and_hrefs(tmp_path):
    base = f"http://reader:{SECRET}@127.0.0.1:{_closed_port()}"
    missing = f"{base}/gone_20240101.tif?X-Amz-Signature={SECRET}&token={SECRET}"
    (res,) = producer.register([missing], catalog=str(tmp_path / "catalog"), collection="c")
    assert res.action == "error"
    assert SECRET not in res.error and SECRET not in json.dumps(res.to_dict())
    out = _run(["register", missing, "-c", str(tmp_path / "catalog"), "--collection", "c", "--json"])
    assert out.exit_code == 1 and SECRET not in out.output
    # credentials inside an s3:// URL are refused, and never echoed
    s3 = f"s3://AKIAEXAMPLE:{SECRET}@bucket/data/x_20240101.tif"
    out = _run(["register", s3, "-c", str(tmp_path / "catalog"), "--collection", "c"])
    assert out.exit_code == 2 and "credentials inside" in out.output
    assert SECRET not in out.output and "AKIAEXAMPLE" not in out.output
    # the way out is spelled as the CLI takes it, as for a catalog URL (not key=..., secret=...)
    assert "-o key=KEY -o secret=SECRET" in out.output and "key=..." not in out.output
    assert not (tmp_path / "catalog").exists()
    # the href of a product read with userinfo carries none
    item = create_item(rasters.write_utm(tmp_path), href=f"{base}/utm_20240513.tif")
    assert item.assets["data"].href == f"http://127.0.0.1:{base.rsplit(':', 1)[1]}/utm_20240513.tif"


@pytest.mark.parametrize(
    "url, href",
    [
        ("http://user:pw@host/x.tif", "http://host/x.tif"),
        ("https://h/x.tif?AWSAccessKeyId=AKIA&Signature=s&Expires=1", "https://h/x.tif"),
        ("https://h/x.tif?sv=2024&sr=b&sig=s&se=2", "https://h/x.tif"),
        ("https://h/x.tif?sr=b&Expires=1", "https://h/x.tif?sr=b&Expires=1"),
        ("s3://b/data/scene?v3.tif", "s3://b/data/scene?v3.tif"),
        ("s3://AKIA:pw/with/slashes@b/x.tif", "s3://b/x.tif"),  # an AWS secret holds '/'
        ("s3://b/k@2x.tif", "s3://b/k@2x.tif"),  # a key's own '@'
        ("ftp://h:21/k@2x.tif", "ftp://h:21/k@2x.tif"),  # a port, not a password
        ("/data/x.tif", "/data/x.tif"),
    ],
)
def test_clean_href_strips_userinfo_and_signing_parameters_only(url, href):
    assert clean_href(url) == href
    assert "pw" not in redact(f"cannot read {url}: boom").replace("pw@", "")
    assert redact("x s3://KEY:SECRET@bucket/k y") == "x s3://***@bucket/k y"


@pytest.mark.parametrize(
    "param",
    [
        "password",
        "PassWord",
        "key",
        "code",
        "client_secret",
        "secret",
        "Token",
        "access_token",
        "sig",
        "apiKey",
        "api_key",
        "refresh_token",
        "pwd",
        "subscription-key",
    ],
)
def test_credential_query_parameters_are_dropped_from_hrefs_and_masked_in_messages(param):
    url = f"https://h.example/data/x.tif?version=2&{param}=S3CR3TVALUE&format=cog"
    assert clean_href(url) == "https://h.example/data/x.tif?version=2&format=cog"
    out = redact(f"cannot open {url}: boom")
    assert "S3CR3TVALUE" not in out and out.endswith("&format=cog: boom") and f"{param}=***" in out


@pytest.mark.parametrize(
    "url", ["https://h/x.tif?version=2", "https://h/x.tif?v=3&keys=a&codec=zstd&passes=2", "https://h/x.tif"]
)
def test_plain_query_parameters_stay_in_hrefs_byte_for_byte(url):
    assert clean_href(url) == url and redact(url) == url


def test_secret_holding_a_slash_in_an_s3_url_is_refused_and_never_printed(tmp_path):
    """AWS secrets often hold '/': the credentials then look like a bucket
    'KEY:SECRET-PART'. Refused as credentials (usage error), nothing echoed."""
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    url = f"s3://AKIAIOSFODNN7EXAMPLE:{secret}@bucket/data/"
    res = CliRunner().invoke(main, ["register", url, "--catalog", str(tmp_path / "c"), "--collection", "c"])
    assert res.exit_code == 2, res.output
    for part in secret.split("/") + ["AKIAIOSFODNN7EXAMPLE"]:
        assert part not in res.output
    assert "credentials" in res.output
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "text",
    [
        "https://user:p@ss@host/x.tif failed",
        "s3://AKIA:wJal/K7MD/bPx@bucket/k.tif: boom",
    ],
)
def test_redact_masks_userinfo_holding_slashes_or_at_signs(text):
    out = redact(text)
    assert "p@ss" not in out and "ss@host" not in out and "wJal" not in out and "K7MD" not in out
    assert "***@" in out


def test_redact_keeps_the_text_after_a_masked_signature():
    out = redact("https://h/x.tif?token=abc123: no datetime found")
    assert "abc123" not in out and out.endswith(": no datetime found")


def test_object_store_hrefs_are_not_parsed_as_http_urls():
    """An s3 key may hold '?', '#', '=' literally: the href is the key."""
    for href in ("s3://b/data/scene?token=a.tif", "s3://b/data/scene#v2.tif", "s3://b/k/a=1&sig=2.tif"):
        assert clean_href(href) == href


def test_local_name_with_query_characters_rewritten_to_https_is_escaped(tmp_path):
    """A name becomes part of a URL through --href-rewrite: '?', '#', spaces
    and '+' are percent-escaped, so the href fetches that very object."""
    src = rasters.write_utm(tmp_path / "data")
    odd = src.with_name("scene?v3 #2+x_20240513.tif")
    src.rename(odd)
    (res,) = producer.register(
        [str(odd)],
        catalog=str(tmp_path / "c"),
        collection="c",
        href_rewrites=[f"{tmp_path / 'data'}=https://host/data"],
    )
    assert res.ok, res.error
    href = res.item["assets"]["data"]["href"]
    assert href == "https://host/data/scene%3Fv3%20%232%2Bx_20240513.tif"
    # the same product registered again is the same product (not a collision)
    (again,) = producer.register(
        [str(odd)],
        catalog=str(tmp_path / "c"),
        collection="c",
        href_rewrites=[f"{tmp_path / 'data'}=https://host/data"],
    )
    assert again.action == "unchanged"


def test_no_products_found_names_the_endings_searched_and_the_way_to_name_others(tmp_path, monkeypatch):
    """A folder of GeoTIFFs named *.gtif (an ending the folder search does not
    take): the error lists the endings searched (whatever PRODUCT_SUFFIXES
    holds), what the folder holds instead, and a glob that registers them."""
    from producer.sources import PRODUCT_SUFFIXES, STORE_SUFFIXES

    folder = tmp_path / "scenes"
    for i, (lon, lat) in enumerate([(6.0, 46.0), (7.0, 46.0)]):
        tif = rasters.write_tile(tmp_path / "src", f"scene_2024050{i + 1}.tif", lon, lat)
        folder.mkdir(exist_ok=True)
        shutil.copyfile(tif, folder / f"scene_2024050{i + 1}.gtif")
    monkeypatch.chdir(tmp_path)
    out = _run(["register", "scenes", "-c", "stac", "--collection", "c"])
    assert out.exit_code == 2
    message = " ".join(out.output.split())
    assert f"files ending in {' '.join(PRODUCT_SUFFIXES)} (any letter case)" in message
    assert f"Zarr stores ({' '.join(STORE_SUFFIXES)})" in message
    assert "it holds files ending in .gtif (2)" in message
    assert "match them with a glob: 'scenes/**/*.gtif'" in message
    assert not (tmp_path / "stac").exists()
    # the glob it offers registers them
    out = _run(["register", "scenes/**/*.gtif", "-c", "stac", "--collection", "c"])
    assert out.exit_code == 0, out.output
    assert "2 products: 2 created" in out.output
    # a glob that matches nothing is said to be one
    out = _run(["register", "scenes/*.jp2", "-c", "stac", "--collection", "c"])
    assert out.exit_code == 2 and "scenes/*.jp2 matches no file; check the pattern" in out.output


# --- one product given twice ------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_product_given_twice_is_registered_and_reported_once(tmp_path, monkeypatch, batch_size):
    """A folder and a file inside it (a shell glob overlapping a folder):
    the second copy failed as an id collision "with itself" (exit 1 though
    every product was registered), or, in another batch, came back
    ``unchanged``: the outcome hung on --batch-size. Each product is
    registered once, one result each, at its first position."""
    data = tmp_path / "data"
    tiles = [rasters.write_tile(data, f"t{i}_20240101.tif", 10 + i, 50) for i in range(3)]
    monkeypatch.chdir(tmp_path)
    given = [str(data), str(tiles[0]), f"{data}/./t1_20240101.tif", "data/t2_20240101.tif"]
    res = _run(["register", *given, "-c", str(tmp_path / "cat"), "--collection", "c", "--json",
                "--batch-size", str(batch_size)])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [(r["id"], r["action"]) for r in rows] == [(f"t{i}_20240101", "created") for i in range(3)]
    assert [r["source"] for r in rows] == [str(t) for t in tiles]
    # the library's literal paths (the event handler's) too
    again = producer.register([str(tiles[0]), str(tiles[0])], catalog=str(tmp_path / "cat"),
                              collection="c", expand=False)  # fmt: skip
    assert [(r.id, r.action) for r in again] == [("t0_20240101", "unchanged")]


def test_an_s3_object_given_by_its_prefix_and_its_key_is_registered_once(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    urls = [
        _upload(s3_server, bucket, rasters.write_tile(tmp_path, f"t{i}_20240101.tif", 10 + i, 50),
                f"data/t{i}_20240101.tif")
        for i in range(2)
    ]  # fmt: skip
    given = [f"s3://{bucket}/data/", urls[1], urls[1].replace("s3://", "s3a://", 1)]
    assert expand_paths(given) == urls
    results = producer.register(given, catalog=str(tmp_path / "cat"), collection="c")
    assert [(r.source, r.action) for r in results] == [(u, "created") for u in urls], [
        r.error for r in results
    ]


# --- a file name that is not UTF-8 ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")  # zarr's notes on consolidation
def test_a_file_name_that_is_not_utf8_fails_its_product_naming_the_byte_and_the_rename(tmp_path):
    """A file named in Latin-1 (``café`` as the byte 0xe9): a raster failed
    with "unexpected UnicodeEncodeError" (GDAL cannot open the path), and a
    sidecar of ``register_item`` crashed the call with an encoder's traceback
    after creating the catalog. Each now fails alone, named, with the rename."""
    from tests import cubes

    good = rasters.write_utm(tmp_path / "data")
    latin1 = os.fsdecode(os.fsencode(str(tmp_path / "data")) + b"/caf\xe9_20240513.tif")
    shutil.copy(good, latin1)
    results = producer.register([str(tmp_path / "data")], catalog=str(tmp_path / "cat"), collection="c")
    by_source = {r.source: r for r in results}
    assert by_source[str(good)].action == "created"
    error = by_source[latin1].error or ""
    assert "its path is not UTF-8 (the byte 0xe9" in error and "convmv" in error and "caf\\xe9" in error
    assert "Unexpected" not in error and "unexpected" not in error

    sidecar = os.fsdecode(os.fsencode(str(tmp_path / "data")) + b"/m\xe9ta.xml")
    Path(sidecar).write_bytes(b"<x/>")
    meta, band = producer.register_item(
        item_id="scene_20240513",
        assets={"meta": sidecar, "band": str(good)},
        catalog=str(tmp_path / "cat2"),
        collection="c",
    )
    assert band.action == "created" and "its path is not UTF-8" in (meta.error or "")
    item = json.loads((tmp_path / "cat2/c/scene_20240513/scene_20240513.json").read_text())
    assert sorted(item["assets"]) == ["band"]

    store = os.fsdecode(os.fsencode(str(tmp_path)) + b"/oc\xe9an.zarr")
    cubes.two_variables_dataset().drop_encoding().to_zarr(store)
    with pytest.raises(producer.errors.InputError, match=r"its path is not UTF-8 \(the byte 0xe9"):
        create_item(store)


def test_gdals_own_aux_xml_beside_a_raster_is_no_product_of_a_folder(tmp_path, s3_server):
    """``B02.tif.aux.xml`` (GDAL's cache of the raster's statistics, written
    by ``gdalinfo -stats`` or QGIS): a group registering the folder with
    ``.xml`` metadata took it in as the metadata asset ``B02.tif.aux``. A
    folder or prefix now leaves it out; other XML files stay."""
    from producer.grouping import GROUP_SUFFIXES

    scene = tmp_path / "data" / "S2A_20240513"
    scene.mkdir(parents=True)
    shutil.copy(rasters.write_utm(tmp_path), scene / "B02.tif")
    (scene / "B02.tif.aux.xml").write_text("<PAMDataset/>")
    (scene / "MTD.xml").write_text("<x/>")
    bucket = s3_server.new_bucket()
    for path in scene.iterdir():
        _upload(s3_server, bucket, path, f"data/S2A_20240513/{path.name}")
    for folder, options in (
        (str(tmp_path / "data"), None),
        (f"s3://{bucket}/data/", s3_server.storage_options),
    ):
        found = [p.rsplit("/", 1)[1] for p in expand_paths(folder, options, GROUP_SUFFIXES)]
        assert "B02.tif.aux.xml" not in found and {"B02.tif", "MTD.xml"} <= set(found), found
    results = producer.register(
        str(tmp_path / "data"),
        catalog=str(tmp_path / "cat"),
        collection="s2",
        group=r"(?P<id>S2A_\d{8})/(?P<asset>[^/]+)\.(tif|xml)$",
    )
    assert all(r.ok for r in results), [r.error for r in results]
    item = json.loads((tmp_path / "cat/s2/S2A_20240513/S2A_20240513.json").read_text())
    assert sorted(item["assets"]) == ["B02", "MTD"]


def test_a_folder_of_files_without_an_ending_is_not_told_it_holds_no_file(tmp_path):
    """A folder holding only files with no ending (``scene_20240105``,
    written by a tool that adds none) was told "it holds no file": now it
    is told how many such files it holds, and the glob example stays one
    with an ending to fill in."""
    from producer.sources import no_products_found

    for name in ("scene_20240105", "scene_20240106", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    fact, glob = no_products_found([str(tmp_path)])
    assert "no file" not in fact
    assert "it holds files ending in .txt (1), files with no ending (2)" in fact, fact
    assert glob.endswith("/**/*.txt")
    (tmp_path / "notes.txt").unlink()
    fact, glob = no_products_found([str(tmp_path)])
    assert "it holds files with no ending (2)" in fact and "no file" not in fact, fact
    assert glob.endswith("/**/*.EXT")
