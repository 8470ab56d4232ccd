"""Products read in place on S3 (ranged reads through fsspec), with the
endpoint from the standard AWS environment or from explicit options."""

from __future__ import annotations

import json

from click.testing import CliRunner

import producer
from producer.cli import main
from tests import rasters


def upload(server, bucket, path, key):
    server.client().put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return f"s3://{bucket}/{key}"


def test_s3_product_into_local_catalog_with_environment_endpoint(s3_server, tmp_path, catalog_dir):
    bucket = s3_server.new_bucket()
    url = upload(s3_server, bucket, rasters.write_cog(tmp_path), "data/2024/cog_20240105.tif")
    # no storage options: AWS_ENDPOINT_URL (set by the test server) is honoured
    (res,) = producer.register([url], catalog=str(catalog_dir), collection="c")
    assert res.action == "created", res.error
    item = json.loads((catalog_dir / "c/cog_20240105/cog_20240105.json").read_text())
    asset = item["assets"]["data"]
    assert asset["href"] == url
    assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert asset["file:size"] == (tmp_path / "cog_20240105.tif").stat().st_size
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_s3_prefix_expansion_and_s3_catalog_from_the_cli(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    for writer in (rasters.write_utm, rasters.write_wgs84, rasters.write_nocrs):
        path = writer(tmp_path)
        upload(s3_server, bucket, path, f"data/{path.name}")
    s3_server.client().put_object(Bucket=bucket, Key="data/notes.txt", Body=b"x")
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "register",
            f"s3://{bucket}/data/",
            "--json",
            "-c",
            f"s3://{bucket}/stac",
            "--collection",
            "c",
            "-o",
            f"endpoint_url={s3_server.endpoint_url}",
        ],
    )
    assert res.exit_code == 1  # nocrs fails, the others register
    lines = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    assert sorted((l["id"], l["action"]) for l in lines) == [
        ("nocrs_20240513", "error"),
        ("utm_20240513", "created"),
        ("wgs84_20240301", "created"),
    ]
    res = runner.invoke(main, ["validate", f"s3://{bucket}/stac"])
    assert res.exit_code == 0, res.output


def test_handle_event_cli_registers_the_object_of_a_real_shaped_payload(s3_server, tmp_path):
    from pathlib import Path

    bucket = s3_server.new_bucket()
    key = "products/ndvi/S2_20240601_T31UFQ.tif"
    upload(s3_server, bucket, rasters.write_utm(tmp_path), key)
    payload = (Path(__file__).parent / "events" / "s3_put.json").read_text()
    event_file = tmp_path / "event.json"
    event_file.write_text(payload.replace("amzn-s3-demo-bucket", bucket))
    catalog = f"s3://{bucket}/stac"
    res = CliRunner().invoke(
        main, ["handle-event", str(event_file), "-c", catalog, "--collection", "c", "--prefix", "products/"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [r["id"] for r in out["registered"]] == ["S2_20240601_T31UFQ"]
    assert out["failed"] == [] and out["batchItemFailures"] == []
    assert producer.validate_catalog(catalog) == []
    # a prefix that does not match: skipped, nothing fails
    res = CliRunner().invoke(
        main, ["handle-event", str(event_file), "-c", catalog, "--collection", "c", "--prefix", "elsewhere/"]
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["skipped"]


def test_an_archived_s3_product_says_to_restore_it_not_to_grant_access(s3_server, tmp_path, catalog_dir):
    """An object in the GLACIER storage class answers GET with
    InvalidObjectState (403): the product was "access denied ... grant read
    access (s3:GetObject, kms:Decrypt)", a fix that changes nothing (its
    creation event went round to the dead-letter queue with it)."""
    bucket = s3_server.new_bucket()
    key = "data/2024/cog_20240105.tif"
    s3_server.client().put_object(
        Bucket=bucket, Key=key, Body=rasters.write_cog(tmp_path).read_bytes(), StorageClass="GLACIER"
    )
    (res,) = producer.register([f"s3://{bucket}/{key}"], catalog=str(catalog_dir), collection="c")
    assert res.action == "error" and res.error_type == "storage"
    assert "archive storage class" in res.error and "restore-object" in res.error, res.error
    assert "grant read access" not in res.error
    assert not (catalog_dir / "c").exists()


def test_a_corrupt_s3_product_is_named_by_its_url_not_gdals_handle(s3_server, tmp_path, catalog_dir):
    """An object that is no raster failed with GDAL's name for it,
    "'/vsiriopener_6841814dba48.../bucket/key' not recognized", an internal
    handle the caller never gave: the message names the URL only."""
    url = s3_server.url("corrupt/not-a-raster.tif")
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="corrupt/not-a-raster.tif", Body=b"not a tiff")
    [result] = producer.register(url, catalog=str(catalog_dir), collection="c")
    assert result.error_type == "input" and "not a readable raster" in result.error, result.error
    assert "vsiriopener" not in result.error and result.error.count(url) >= 2, result.error


def _proxied_options(s3_server, proxy):
    return {
        **s3_server.storage_options,
        "client_kwargs": {**s3_server.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint_url},
    }


def test_an_s3_product_is_read_with_one_head_and_no_request_for_another_bucket(
    s3_server, tmp_path, catalog_dir
):
    """The product's HEAD (size, a folder, an empty object) serves the open
    file too: no second HEAD of it; rasterio's check of the opener
    (``size("test")``) costs no request either: on AWS it is a HEAD of
    somebody else's bucket named ``test``, which answers 403 (here: the
    proxy's 403 for any request to a bucket ``test``)."""
    from tests.faultproxy import FaultProxy

    bucket = s3_server.new_bucket()
    url = upload(s3_server, bucket, rasters.write_cog(tmp_path), "data/cog_20240105.tif")
    with FaultProxy(s3_server.endpoint_url) as proxy:
        foreign = proxy.add("*", r"^/test(/|$)", "403")
        (res,) = producer.register(
            [url],
            catalog=str(catalog_dir),
            collection="c",
            storage_options=_proxied_options(s3_server, proxy),
        )
        trace = list(proxy.trace)
    lines = [f"{m} {p} {q}" for m, p, q in trace]
    assert res.ok and res.action == "created", res.error
    assert foreign.hits == 0, lines
    product = f"/{bucket}/data/cog_20240105.tif"
    assert [m for m, p, _ in trace if p == product and m == "HEAD"] == ["HEAD"], lines
    assert [m for m, p, _ in trace if p == product and m == "GET"], lines  # read, through the one HEAD
    item = json.loads((catalog_dir / "c/cog_20240105/cog_20240105.json").read_text())
    assert item["assets"]["data"]["file:size"] == (tmp_path / "cog_20240105.tif").stat().st_size
    assert producer.validate_catalog(str(catalog_dir)) == []


def test_the_folder_of_an_s3_geotiff_is_listed_beside_its_first_reads(s3_server, tmp_path, catalog_dir):
    """GDAL lists a product's folder on open (side-car files): that LIST goes
    out with the product's HEAD, not after its first block came back. The
    HEAD is held until the LIST arrives (a register that lists only when
    GDAL asks waits out the hold), and a side-car in that folder is still
    read (its .aux.xml)."""
    from tests.faultproxy import FaultProxy

    bucket = s3_server.new_bucket()
    path = rasters.write_cog(tmp_path)
    url = upload(s3_server, bucket, path, "data/cog_20240105.tif")
    s3_server.client().put_object(
        Bucket=bucket,
        Key="data/cog_20240105.tif.aux.xml",
        Body=b'<PAMDataset><Metadata><MDI key="SIDECAR">seen</MDI></Metadata></PAMDataset>',
    )
    with FaultProxy(s3_server.endpoint_url) as proxy:
        hold = proxy.add("HEAD", r"/data/cog_20240105\.tif$", "hold", until=rf"^/{bucket}/?$")
        (res,) = producer.register(
            [url],
            catalog=str(catalog_dir),
            collection="c",
            storage_options=_proxied_options(s3_server, proxy),
        )
        trace = list(proxy.trace)
    lines = [f"{m} {p} {q}" for m, p, q in trace]
    assert res.ok and res.action == "created", res.error
    assert hold.hits == 1 and hold.expired == 0, lines
    assert len([q for m, p, q in trace if "list-type" in q]) == 1, lines  # GDAL's own look: no second LIST
    assert [p for m, p, _ in trace if p.endswith(".aux.xml")], lines  # the side-car, found and read
    import threading

    assert not [t.name for t in threading.enumerate() if t.name.startswith("producer-")]
