"""A catalog path or prefix that holds nothing (a typo: ./stca for ./stac) is
"no catalog there: check the URL", for every verb that reads an existing
catalog, as `search` says; it is not a `missing-root` to repair, which only a
catalog that holds documents but lost its root has. `reconcile --fix --data
... --collection ...` still builds a catalog at a new path from products."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.errors import InputError
from tests import rasters


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile", "{cat}"],
        ["reconcile", "{cat}", "--fix"],
        ["validate", "{cat}"],
        ["remove", "scene", "-c", "{cat}", "--collection", "ndvi"],
        ["search", "{cat}", "--bbox", "0,0,1,1"],
    ],
    ids=["reconcile", "reconcile-fix", "validate", "remove", "search"],
)
def test_a_mistyped_catalog_path_is_no_catalog_exit_2(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "stca"
    res = _cli(*[a.format(cat=typo) for a in args])
    assert res.exit_code == 2, res.output
    assert f"no catalog at {typo} (catalog.json is missing): check the URL" in res.output
    assert "missing-root" not in res.output and "--fix" not in res.output
    assert "no such item" not in res.output
    assert not typo.exists()  # nothing written


@pytest.mark.parametrize("verb", [["validate"], ["reconcile"], ["search", "--bbox", "0,0,1,1"]])
def test_a_catalog_url_of_an_unknown_scheme_exits_2(verb: list[str]) -> None:
    """A mistyped scheme (s4://) is bad input, as a mistyped path is; it exited 1."""
    res = _cli(verb[0], "s4://bucket/stac", *verb[1:])
    assert res.exit_code == 2, res.output
    assert "s4" in res.output and "scheme" in res.output


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile", "{cat}"],
        ["reconcile", "{cat}", "--fix"],
        ["validate", "{cat}"],
        ["remove", "scene", "-c", "{cat}", "--collection", "ndvi"],
    ],
    ids=["reconcile", "reconcile-fix", "validate", "remove"],
)
def test_a_folder_of_products_is_no_catalog_exit_2(tmp_path: Path, args: list[str]) -> None:
    """The data folder given where the catalog goes (``validate ./data``). Was:
    its files counted as a catalog's documents, so validate and reconcile
    reported a ``missing-root`` ERROR to repair (exit 1) and remove said "no
    collection 'ndvi' ... check --collection", while search said "no catalog"."""
    data = tmp_path / "data"
    rasters.write_utm(data)
    (data / "scene_meta.json").write_text('{"sensor": "x"}')  # a sidecar is no STAC document
    before = sorted(os.listdir(data))
    res = _cli(*[a.format(cat=data) for a in args])
    assert res.exit_code == 2, res.output
    assert f"no catalog at {data} (catalog.json is missing): check the URL" in res.output
    assert "missing-root" not in res.output and "check --collection" not in res.output
    assert sorted(os.listdir(data)) == before  # nothing written


def test_an_empty_folder_is_no_catalog_either(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no catalog at .*check the URL"):
        producer.validate_catalog(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="no catalog at"):
        producer.reconcile(str(tmp_path / "empty"), fix=True)
    assert os.listdir(tmp_path / "empty") == []


def test_an_empty_s3_prefix_is_no_catalog(s3_server) -> None:
    bucket = s3_server.new_bucket()
    with pytest.raises(InputError, match=f"no catalog at s3://{bucket}/stca"):
        producer.validate_catalog(f"s3://{bucket}/stca")
    with pytest.raises(InputError, match="no catalog at"):
        producer.reconcile(f"s3://{bucket}/stca", fix=True)
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)


def test_a_catalog_that_lost_only_its_root_stays_a_reconcile_problem(tmp_path: Path) -> None:
    catalog = tmp_path / "stac"
    (res,) = producer.register([rasters.write_utm(tmp_path)], catalog=str(catalog), collection="c")
    assert res.ok, res.error
    (catalog / "catalog.json").unlink()
    assert "missing-root" in {p.kind for p in producer.validate_catalog(str(catalog))}
    out = _cli("validate", str(catalog))
    assert out.exit_code == 1 and "missing-root" in out.output


def test_reconcile_with_data_builds_a_catalog_at_a_new_path(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rasters.write_utm(data)
    new = tmp_path / "rebuilt"
    report = _cli("reconcile", str(new), "--data", str(data))  # what --fix would do; writes nothing
    assert report.exit_code == 1 and "missing-product" in report.output and not new.exists()
    fixed = _cli("reconcile", str(new), "--fix", "--data", str(data), "--collection", "c")
    assert fixed.exit_code == 0, fixed.output
    assert (new / "catalog.json").exists() and (new / "c" / "collection.json").exists()
    assert producer.validate_catalog(str(new)) == []


def test_reconcile_fix_restores_a_lost_root_and_links_what_was_below_it(tmp_path: Path) -> None:
    """Was: `reconcile` advised --fix, and --fix repaired nothing ('missing-root
    1 0 0', problems left, exit 1) while any register recreated the root."""
    catalog = tmp_path / "stac"
    for coll, folder in (("c", "a"), ("d", "b")):
        (res,) = producer.register(
            [rasters.write_utm(tmp_path / folder)], catalog=str(catalog), collection=coll
        )
        assert res.ok, res.error
    (catalog / "catalog.json").unlink()
    # and an item of d that its collection no longer links: an orphan below the lost root
    coll_d = catalog / "d" / "collection.json"
    doc = json.loads(coll_d.read_text())
    doc["links"] = [link for link in doc["links"] if link["rel"] != "item"]
    coll_d.write_text(json.dumps(doc))

    dry = producer.reconcile(str(catalog), fix=True, dry_run=True)
    assert dry.would_fix.get("missing-root") == 1 and not (catalog / "catalog.json").exists()
    report = producer.reconcile(str(catalog), fix=True)
    assert report.remaining == [], report.remaining
    assert report.found["missing-root"] == report.fixed["missing-root"] == 1
    assert report.found["orphan"] == report.fixed["orphan"], (report.found, report.fixed)
    root = json.loads((catalog / "catalog.json").read_text())
    assert sorted(link["href"] for link in root["links"] if link["rel"] == "child") == [
        "./c/collection.json",
        "./d/collection.json",
    ]
    assert producer.validate_catalog(str(catalog)) == []
    assert _cli("reconcile", str(catalog)).exit_code == 0


def test_reconcile_fix_at_a_new_path_counts_the_root_it_made(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rasters.write_utm(data)
    report = producer.reconcile(str(tmp_path / "new"), data=str(data), fix=True, collection="c")
    assert report.remaining == [] and report.failed == {}
    assert report.found == report.fixed == {"missing-root": 1, "missing-product": 1}


def test_reconcile_with_a_data_path_that_does_not_exist_exits_2(tmp_path: Path) -> None:
    """It reported the path as a missing product and advised --fix, which then
    failed to register it."""
    catalog = tmp_path / "stac"
    producer.register([rasters.write_utm(tmp_path / "data")], catalog=str(catalog), collection="c")
    for extra in ([], ["--fix"]):
        res = _cli("reconcile", str(catalog), "--data", str(tmp_path / "dtaa"), "--collection", "c", *extra)
        assert res.exit_code == 2, res.output
        assert f"{tmp_path / 'dtaa'}: no such file or folder" in res.output
        assert "missing-product" not in res.output


@pytest.mark.parametrize("client", ["s3fs", "obstore"])
def test_a_missing_bucket_is_no_catalog_exit_2_naming_the_bucket(
    s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """The verbs that read an existing catalog find none in a bucket that
    does not exist, as in an empty prefix or a mistyped path: "no catalog
    at ...", naming the bucket, exit 2, nothing written (was: a retryable
    storage error, exit 1, while an empty prefix of an existing bucket was
    exit 2). A register still gets a retryable ``storage`` error naming the
    bucket: it creates a catalog at a new prefix, and the bucket may be on
    its way (``test_prefect.py::test_storage_error_is_retried_until_the_bucket_exists``)."""
    monkeypatch.setenv("STAC_S3_CLIENT", client)
    cat = "s3://no-such-bucket-5e1a/stac"
    said = "no catalog at s3://no-such-bucket-5e1a/stac: its bucket 'no-such-bucket-5e1a' does not exist"
    for args in (
        ["reconcile", cat, "--fix"],
        ["validate", cat],
        ["remove", "scene", "-c", cat, "--collection", "ndvi"],
        ["search", cat, "--bbox", "0,0,1,1"],
    ):
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert said in res.output and "check the URL" in res.output, res.output
    (result,) = producer.register(
        [rasters.write_utm(tmp_path)], catalog=cat, collection="c", storage_options=s3_server.storage_options
    )
    assert result.error_type == "storage", result
    assert "bucket 'no-such-bucket-5e1a' of catalog s3://no-such-bucket-5e1a/stac does not exist" in (
        result.error or ""
    )
    buckets = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert "no-such-bucket-5e1a" not in buckets


def test_reconcile_with_data_that_holds_no_product_exits_2_and_writes_nothing(
    tmp_path: Path, s3_server
) -> None:
    """A mistyped glob (``*.tiff`` for ``.tif`` files), a folder of other
    files, or an S3 prefix that lists nothing compared no product and said
    "missing-product 0", exit 0: a nightly reconcile with such a typo
    reported the catalog complete forever, while register and the backfill
    refuse the same path as holding no product."""
    data = tmp_path / "data"
    catalog = tmp_path / "stac"
    producer.register([rasters.write_utm(data)], catalog=str(catalog), collection="c")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no raster here")
    before = sorted(p.name for p in catalog.rglob("*"))
    glob = str(data / "*.tiff")
    for given, said in (
        (glob, f"{glob} matches no file; check the pattern"),
        (str(tmp_path / "notes"), "it holds files ending in .txt (1)"),
    ):
        for extra in ([], ["--fix", "--collection", "c"]):
            res = _cli("reconcile", str(catalog), "--data", given, *extra)
            assert res.exit_code == 2, res.output
            assert said in res.output and "nothing was checked or written" in res.output, res.output
            assert "missing-product" not in res.output
        # one data path that holds products does not hide the other
        with pytest.raises(InputError, match="no products found"):
            producer.reconcile(str(catalog), data=[str(data), given], fix=True, collection="c")
    assert sorted(p.name for p in catalog.rglob("*")) == before
    # nor does an empty data list or path compare anything
    with pytest.raises(InputError, match="data names no product path"):
        producer.reconcile(str(catalog), data=[], fix=True, collection="c")
    with pytest.raises(InputError, match="data is empty"):
        producer.reconcile(str(catalog), data="")
    # an S3 prefix with a typo lists nothing: the same
    bucket = s3_server.new_bucket()
    with pytest.raises(InputError, match=f"no products found in s3://{bucket}/prodcts/"):
        producer.reconcile(
            str(catalog), data=f"s3://{bucket}/prodcts/", storage_options=s3_server.storage_options
        )
    # and without its trailing slash it named no object either: it was reported as a
    # product no item describes, which a fix then failed to register
    for typo in (f"s3://{bucket}/prodcts", f"s3://{bucket}/prodcts/a_20240101.tif"):
        with pytest.raises(InputError, match=f"{typo}: no such object or prefix"):
            producer.reconcile(
                str(catalog), data=typo, fix=True, collection="c", storage_options=s3_server.storage_options
            )
    assert sorted(p.name for p in catalog.rglob("*")) == before
