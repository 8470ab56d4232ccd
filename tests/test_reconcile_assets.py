"""Reconcile's asset checks have three answers (exists / missing / unknown), and
reconcile fails loudly when it could not do its job.

Faults are real: the reverse proxy of ``tests/faultproxy.py`` on 127.0.0.1 in
front of the local S3 (moto) resets the connection or answers 403 for chosen
keys and forwards everything else; a closed port stands for an endpoint that is down; a corrupt
GeoTIFF stands for a product that cannot be registered.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.audit import ERRORS, Problem
from producer.catalog import summaries
from producer.catalog.documents import REMOVING
from producer.cli import main
from producer.mirror import rebuild
from producer.store import open_store
from tests.faultproxy import FaultProxy
from tests.rasters import write_corrupt, write_tile
from tests.s3server import S3Server
from tests.trees import tree_hash


@pytest.fixture
def proxy(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch):
    """A fault proxy in front of the session's S3; botocore makes one attempt
    per request, so an injected fault costs milliseconds, not retries."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with FaultProxy(s3_server.endpoint_url) as p:
        yield p


def _bucket_hash(s3_server: S3Server, bucket: str) -> dict[str, str]:
    client = s3_server.client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = hashlib.sha256(body).hexdigest()
    return out


def _s3_catalog(s3_server: S3Server, tmp_path: Path, n: int) -> tuple[str, list[str]]:
    """A new bucket with ``n`` tiny products under ``data/`` and a catalog of
    them under ``stac/``. Returns (bucket, item ids).

    The catalog is registered locally with the hrefs rewritten to the bucket,
    then uploaded: the same documents as registering from S3 (links are
    relative), at a fraction of the round trips.
    """
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    tiles = [write_tile(tmp_path / "tiles", f"p{i}_2024010{i + 1}.tif", 10.0 + i, 50.0) for i in range(n)]
    local = tmp_path / "local-catalog"
    results = producer.register(
        tiles, catalog=str(local), collection="c", href_rewrites=[f"{tmp_path / 'tiles'}=s3://{bucket}/data"]
    )
    assert all(r.ok for r in results), [r.error for r in results]
    for tile in tiles:
        client.upload_file(str(tile), bucket, f"data/{tile.name}")
    for path in local.rglob("*"):  # the documents and the mirror files
        if path.is_file():
            client.upload_file(str(path), bucket, f"stac/{path.relative_to(local).as_posix()}")
    return bucket, [r.id for r in results]


def _item(s3_server: S3Server, bucket: str, item_id: str) -> dict:
    body = s3_server.client().get_object(Bucket=bucket, Key=f"stac/c/{item_id}/{item_id}.json")["Body"]
    return json.loads(body.read())


def test_problem_kinds_have_a_severity():
    assert {"asset-unchecked", "register-failed"} <= ERRORS
    assert not Problem("interrupted-removal", "k", "an unfinished remove").is_error  # a warning


def test_reconcile_with_unreachable_data_endpoint_changes_nothing_and_exits_1(s3_server, proxy, tmp_path):
    bucket, ids = _s3_catalog(s3_server, tmp_path, 3)
    # the catalog is reachable, the data is not
    rule = proxy.add("*", "^" + re.escape(f"/{bucket}/data/"), "reset")
    before = _bucket_hash(s3_server, bucket)
    for dead in ("remove", "flag"):
        rule.hits = 0
        res = CliRunner().invoke(
            main,
            [
                "reconcile",
                f"s3://{bucket}/stac",
                "--check-assets",
                "--fix",
                "--dead",
                dead,
                "-o",
                f"endpoint_url={proxy.endpoint_url}",
            ],
        )
        assert res.exit_code == 1, res.output
        assert _bucket_hash(s3_server, bucket) == before  # 0 bytes changed
        assert "valid after repair" not in res.output
        assert res.output.count("[asset-unchecked]") == 3
        assert "could not be checked" in res.output
        assert "could not be reached" in res.output  # ... and why
        assert "3 asset(s) could not be checked" in res.output
        # the endpoint was tried, then given up on: not one round of retries per item
        assert 1 <= rule.hits <= 2
    # validate --check-assets says the same: unchecked (an error), never missing
    res = CliRunner().invoke(
        main,
        ["validate", f"s3://{bucket}/stac", "--check-assets", "-o", f"endpoint_url={proxy.endpoint_url}"],
    )
    assert res.exit_code == 1, res.output
    assert res.output.count("[asset-unchecked]") == 3 and "[missing-asset]" not in res.output


def test_reconcile_with_data_endpoint_on_a_closed_port_changes_nothing(tmp_path, monkeypatch):
    """Local catalog whose assets live on an S3 endpoint that is down."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    catalog = tmp_path / "catalog"
    tiles = [write_tile(tmp_path / "tiles", f"q{i}_2024020{i + 1}.tif", 5.0 + i, 40.0) for i in range(3)]
    results = producer.register(
        tiles, catalog=str(catalog), collection="c", href_rewrites=[f"{tmp_path / 'tiles'}=s3://gone/data"]
    )
    assert all(r.ok for r in results), [r.error for r in results]
    before = tree_hash(catalog)
    opts = _closed_port_options()
    for dead in ("remove", "flag"):
        report = producer.reconcile(
            open_store(str(catalog)), storage_options=opts, check_assets=True, fix=True, dead=dead
        )
        assert tree_hash(catalog) == before
        assert report.found == {"asset-unchecked": 3} and report.failed == {"asset-unchecked": 3}
        assert "missing-asset" not in report.fixed
        assert sorted(p.kind for p in report.remaining) == ["asset-unchecked"] * 3
        assert all(p.is_error and "could not be reached" in p.message for p in report.remaining)


def _closed_port_options() -> dict:
    """S3 storage options for an endpoint on 127.0.0.1 where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
    }


def test_reconcile_leaves_an_item_with_one_gone_and_one_unchecked_asset_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    tile = write_tile(tmp_path / "tiles", "two_20240501.tif", 7.0, 7.0)
    catalog = tmp_path / "catalog"
    (res,) = producer.register([tile], catalog=str(catalog), collection="c")
    path = catalog / "c" / tile.stem / f"{tile.stem}.json"
    item = json.loads(path.read_text())
    item["assets"]["mirror"] = {
        "href": "s3://mirror/two_20240501.tif",
        "type": "image/tiff",
        "roles": ["data"],
    }
    path.write_text(json.dumps(item, indent=2))
    tile.unlink()  # the local copy is gone; the mirror cannot be checked
    rebuild(open_store(str(catalog)), "c")  # the stac-geoparquet mirror follows the hand edit
    coll_path = catalog / "c" / "collection.json"  # and so does the collection's item_assets
    coll = json.loads(coll_path.read_text())
    summaries.recompute(coll, [item])
    coll_path.write_text(json.dumps(coll, indent=2))
    before = tree_hash(catalog)
    report = producer.reconcile(
        open_store(str(catalog)),
        storage_options=_closed_port_options(),
        check_assets=True,
        fix=True,
        dead="remove",
    )
    assert tree_hash(catalog) == before
    assert sorted(p.kind for p in report.problems) == ["asset-unchecked", "missing-asset"]
    assert [p.kind for p in report.remaining] == ["asset-unchecked"]


def test_reconcile_mix_gone_asset_is_handled_unknown_asset_is_untouched(s3_server, proxy, tmp_path):
    bucket, (ok_id, gone_id, denied_id) = _s3_catalog(s3_server, tmp_path, 3)
    client = s3_server.client()
    client.delete_object(Bucket=bucket, Key=f"data/{gone_id}.tif")  # really gone: 404
    proxy.add("*", "^" + re.escape(f"/{bucket}/data/{denied_id}.tif") + "$", "403")  # e.g. SSE-KMS
    before = _bucket_hash(s3_server, bucket)
    gone_key = f"stac/c/{gone_id}/{gone_id}.json"
    for dead in ("flag", "remove"):
        res = CliRunner().invoke(
            main,
            [
                "reconcile",
                f"s3://{bucket}/stac",
                "--check-assets",
                "--fix",
                "--dead",
                dead,
                "-o",
                f"endpoint_url={proxy.endpoint_url}",
            ],
        )
        assert res.exit_code == 1, res.output
        after = _bucket_hash(s3_server, bucket)
        for item_id in (ok_id, denied_id):  # untouched, byte for byte
            key = f"stac/c/{item_id}/{item_id}.json"
            assert after[key] == before[key]
        coll = json.loads(client.get_object(Bucket=bucket, Key="stac/c/collection.json")["Body"].read())
        linked = sorted(l["href"] for l in coll["links"] if l["rel"] == "item")
        if dead == "remove":
            assert gone_key not in after
            assert linked == sorted(f"./{i}/{i}.json" for i in (ok_id, denied_id))
        else:
            assert _item(s3_server, bucket, gone_id)["properties"]["deprecated"] is True
            assert len(linked) == 3
        unchecked = [line for line in res.output.splitlines() if "[asset-unchecked]" in line]
        assert len(unchecked) == 1 and denied_id in unchecked[0]
        assert "PermissionError" in unchecked[0] and "Forbidden" in unchecked[0]
    assert producer.validate_catalog(f"s3://{bucket}/stac", storage_options=s3_server.storage_options) == []


def test_reconcile_fix_exits_1_when_a_missing_product_cannot_be_registered(tmp_path):
    data = tmp_path / "data"
    good = write_tile(data, "g_20240101.tif", 1.0, 1.0)
    catalog = tmp_path / "catalog"
    producer.register([good], catalog=str(catalog), collection="c")
    new = write_tile(data, "n_20240102.tif", 2.0, 2.0)
    bad = write_corrupt(data)
    res = CliRunner().invoke(
        main, ["reconcile", str(catalog), "--data", str(data), "--fix", "--collection", "c"]
    )
    assert res.exit_code == 1, res.output
    assert "valid after repair" not in res.output
    (line,) = [line for line in res.output.splitlines() if "[register-failed]" in line]
    assert line.startswith("ERROR") and str(bad) in line
    assert "1 product(s) under --data could not be registered" in res.output
    assert (catalog / "c" / new.stem / f"{new.stem}.json").is_file()  # the good one is registered

    report = producer.reconcile(str(catalog), data=str(data), collection="c", fix=True)
    assert report.failed == {"missing-product": 1}
    assert [(p.kind, p.key) for p in report.remaining] == [("register-failed", str(bad))]


def _drop_link(catalog: Path, item_id: str) -> None:
    path = catalog / "c" / "collection.json"
    coll = json.loads(path.read_text())
    coll["links"] = [l for l in coll["links"] if item_id not in l.get("href", "")]
    path.write_text(json.dumps(coll, indent=2))


def _mark(catalog: Path, item_id: str) -> None:
    path = catalog / "c" / item_id / f"{item_id}.json"
    item = json.loads(path.read_text())
    item["properties"][REMOVING] = "2026-01-01T00:00:00Z"
    path.write_text(json.dumps(item, indent=2))


@pytest.mark.parametrize("linked", [False, True], ids=["orphan", "linked"])
def test_reconcile_finishes_an_interrupted_removal(tmp_path, linked):
    tiles = [write_tile(tmp_path / "tiles", f"r{i}_2024030{i + 1}.tif", 20.0 + i, 30.0) for i in range(3)]
    catalog = tmp_path / "catalog"
    producer.register(tiles, catalog=str(catalog), collection="c")
    victim = tiles[2].stem  # the edge item: its removal shrinks the extent
    _mark(catalog, victim)
    if not linked:
        _drop_link(catalog, victim)  # remove was killed between unlink and delete
    problems = producer.validate_catalog(str(catalog))
    assert [p.kind for p in problems if p.key.endswith(f"{victim}.json")] == ["interrupted-removal"]
    assert not [p for p in problems if p.is_error]

    report = producer.reconcile(str(catalog), fix=True)
    assert report.fixed.get("interrupted-removal") == 1 and "orphan" not in report.fixed
    assert not (catalog / "c" / victim / f"{victim}.json").exists()
    coll = json.loads((catalog / "c" / "collection.json").read_text())
    assert sorted(l["href"] for l in coll["links"] if l["rel"] == "item") == [
        f"./{t.stem}/{t.stem}.json" for t in tiles[:2]
    ]
    assert coll["extent"]["temporal"]["interval"][0][1] == "2024-03-02T00:00:00Z"
    assert producer.validate_catalog(str(catalog)) == []


def test_reconcile_with_assets_in_a_bucket_that_does_not_exist_changes_nothing(s3_server, tmp_path):
    """A wrong bucket name or a wrong endpoint (another S3 that has no such
    bucket) answers 404 for every asset. That says nothing about the assets:
    their items must not be removed or flagged; the run fails naming the bucket."""
    catalog = tmp_path / "catalog"
    tiles = [write_tile(tmp_path / "tiles", f"nb{i}_2024030{i + 1}.tif", 3.0 + i, 30.0) for i in range(2)]
    results = producer.register(
        tiles,
        catalog=str(catalog),
        collection="c",
        href_rewrites=[f"{tmp_path / 'tiles'}=s3://no-such-bucket-here/data"],
    )
    assert all(r.ok for r in results), [r.error for r in results]
    before = tree_hash(catalog)
    for dead in ("remove", "flag"):
        report = producer.reconcile(
            open_store(str(catalog)),
            storage_options=s3_server.storage_options,
            check_assets=True,
            fix=True,
            dead=dead,
        )
        assert tree_hash(catalog) == before
        assert "missing-asset" not in report.found
        assert sorted(p.kind for p in report.remaining) == ["asset-unchecked"] * 2
        assert all(
            "no-such-bucket-here" in p.message and "does not exist" in p.message for p in report.remaining
        )


def test_reconcile_still_finds_a_missing_object_in_a_bucket_that_exists(s3_server, tmp_path):
    """The bucket check does not blunt the real answer: an object gone from a
    bucket that exists is missing, and --dead remove removes its item."""
    bucket = s3_server.new_bucket()
    catalog = tmp_path / "catalog"
    tile = write_tile(tmp_path / "tiles", "gone_20240401.tif", 2.0, 20.0)
    (res,) = producer.register(
        [tile],
        catalog=str(catalog),
        collection="c",
        href_rewrites=[f"{tmp_path / 'tiles'}=s3://{bucket}/data"],
    )
    assert res.ok, res.error
    report = producer.reconcile(
        open_store(str(catalog)),
        storage_options=s3_server.storage_options,
        check_assets=True,
        fix=True,
        dead="remove",
    )
    assert report.found.get("missing-asset") == 1 and report.fixed.get("missing-asset") == 1
    assert not (catalog / "c" / tile.stem).exists()
    assert producer.validate_catalog(str(catalog)) == []


def test_an_orphan_that_cannot_be_read_is_reported_as_unread_and_left_alone(s3_server, proxy, tmp_path):
    """An orphan item whose GET fails (403 here: an object the catalog's
    credentials may list but not read). Before: "no document links it",
    counted neither fixed nor failed, with nothing to say why reconcile
    --fix left it; now the problem says it could not be read, and why."""
    bucket, ids = _s3_catalog(s3_server, tmp_path, 2)
    client = s3_server.client()
    key = "stac/c/collection.json"
    coll = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    coll["links"] = [link for link in coll["links"] if ids[0] not in link.get("href", "")]
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(coll).encode())
    proxy.add("GET", "^" + re.escape(f"/{bucket}/stac/c/{ids[0]}/{ids[0]}.json") + "$", "403")
    res = CliRunner().invoke(
        main, ["reconcile", f"s3://{bucket}/stac", "--fix", "-o", f"endpoint_url={proxy.endpoint_url}"]
    )
    assert res.exit_code == 1, res.output
    assert "valid after repair" not in res.output
    line = next(line for line in res.output.splitlines() if "[orphan]" in line)
    assert f"c/{ids[0]}/{ids[0]}.json" in line
    assert "could not be read" in line and "access denied" in line, line
    coll = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert not [link for link in coll["links"] if ids[0] in link.get("href", "")]  # not linked blind


@pytest.mark.parametrize("fix", [False, True])
def test_a_mirror_that_could_not_be_compared_is_an_error_naming_what_was_not_checked(
    s3_server, proxy, tmp_path, fix
):
    """The nightly reconcile must fail when it could not check everything.
    Before: a storage error reading the stac-geoparquet mirror was a
    ``mirror-stale`` warning and ``reconcile --fix`` exited 0, "valid after
    repair", though nobody knew whether search agreed with the catalog."""
    bucket, _ = _s3_catalog(s3_server, tmp_path, 2)
    proxy.add("GET", "^" + re.escape(f"/{bucket}/stac/c/items") + r"(\.parquet|-fragments/)", "503")
    before = _bucket_hash(s3_server, bucket)
    res = CliRunner().invoke(
        main,
        [
            "reconcile",
            f"s3://{bucket}/stac",
            *(["--fix"] if fix else []),
            "-o",
            f"endpoint_url={proxy.endpoint_url}",
        ],
    )
    assert res.exit_code == 1, res.output
    assert "valid after repair" not in res.output
    line = next(line for line in res.output.splitlines() if "[mirror-unchecked]" in line)
    assert line.startswith("ERROR c/collection.json")
    assert "mirror of collection 'c' could not be compared with its items" in line, line
    assert "rerun reconcile" in line and "reconcile(fix=True)" not in line, line
    assert "the stac-geoparquet mirror of 1 collection(s) could not be checked" in res.output
    assert _bucket_hash(s3_server, bucket) == before  # nothing rebuilt blind
    assert "mirror-unchecked" in ERRORS


def test_a_mirror_that_reconcile_fix_could_not_rebuild_fails_the_run(s3_server, proxy, tmp_path):
    """Before: a stale mirror whose rebuild failed (a storage error on its
    write) stayed a ``mirror-stale`` warning, and ``reconcile --fix`` exited
    0, "valid after repair", though search still missed items."""
    bucket, ids = _s3_catalog(s3_server, tmp_path, 2)
    client = s3_server.client()
    for obj in client.list_objects_v2(Bucket=bucket, Prefix="stac/c/items")["Contents"]:
        client.delete_object(Bucket=bucket, Key=obj["Key"])  # the mirror lost: stale
    proxy.add("PUT", "^" + re.escape(f"/{bucket}/stac/c/items.parquet") + "$", "503")
    res = CliRunner().invoke(
        main, ["reconcile", f"s3://{bucket}/stac", "--fix", "-o", f"endpoint_url={proxy.endpoint_url}"]
    )
    assert res.exit_code == 1, res.output
    assert "valid after repair" not in res.output
    line = next(line for line in res.output.splitlines() if "[mirror-failed]" in line)
    assert line.startswith("ERROR c/collection.json") and "rebuilding it failed" in line, line
    assert "until stac-producer reconcile --fix runs again" in line, line
    report = producer.reconcile(
        f"s3://{bucket}/stac", fix=True, storage_options={"endpoint_url": proxy.endpoint_url}
    )
    assert report.failed == {"mirror-stale": 1} and "mirror-failed" in ERRORS
