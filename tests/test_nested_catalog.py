"""A catalog at a bucket's root (or any folder) with another catalog in a
folder below it: the other catalog is not the outer one's to judge or
repair."""

from __future__ import annotations

from pathlib import Path

import producer
from tests.crashes import write_tile
from tests.s3server import S3Server


def _objects(s3_server: S3Server, bucket: str, prefix: str) -> dict[str, str]:
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


def test_a_catalog_in_a_folder_of_another_is_left_alone_by_its_validate_and_reconcile(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """A bucket with a catalog at its root and a second one under
    ``staging/``: validating the root called the second catalog's every
    document an orphan (exit 1), and ``reconcile --fix`` linked them into
    the root, wrote a collection ``staging`` and a partition catalog into
    the second catalog, and left both invalid."""
    bucket = s3_server.new_bucket()
    options = s3_server.storage_options
    tiles = [
        write_tile(tmp_path, "a_20240110.tif", 6.0, 46.0),
        write_tile(tmp_path, "b_20240315.tif", 7.0, 46.5),
    ]
    (outer,) = producer.register(
        [str(tiles[0])], catalog=f"s3://{bucket}", collection="a", storage_options=options
    )
    (inner,) = producer.register(
        [str(tiles[1])], catalog=f"s3://{bucket}/staging", collection="d", storage_options=options
    )
    assert outer.action == inner.action == "created"
    before = _objects(s3_server, bucket, "staging/")

    problems = producer.validate_catalog(f"s3://{bucket}/", storage_options=options)
    assert not [p for p in problems if p.is_error], problems
    (nested,) = problems
    assert nested.key == "staging/catalog.json" and "another catalog" in nested.message
    assert f"s3://{bucket}/staging" in nested.message

    report = producer.reconcile(f"s3://{bucket}", fix=True, storage_options=options)
    assert not [p for p in report.remaining if p.is_error], report.remaining
    assert _objects(s3_server, bucket, "staging/") == before
    assert not [p for p in producer.validate_catalog(f"s3://{bucket}/staging", storage_options=options)]


def test_a_bucket_validated_in_place_of_the_catalog_in_it_names_that_catalog(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """``validate s3://bucket`` where the catalog is ``s3://bucket/stac``:
    every document of it was an orphan of a missing root, and the fix
    offered was a reconcile creating a root at the bucket's top; the
    message names the catalog below instead."""
    bucket = s3_server.new_bucket()
    options = s3_server.storage_options
    tile = write_tile(tmp_path, "a_20240110.tif", 6.0, 46.0)
    producer.register([str(tile)], catalog=f"s3://{bucket}/stac", collection="a", storage_options=options)
    problems = producer.validate_catalog(f"s3://{bucket}", storage_options=options)
    assert [p.kind for p in problems] == ["missing-root", "nested-catalog"], problems
    assert f"s3://{bucket}/stac: if one of them is the catalog meant" in problems[0].message


def test_a_sub_catalog_whose_absolute_root_link_names_this_root_is_no_nested_catalog(tmp_path: Path) -> None:
    """A sub-catalog written with absolute links (pystac's absolute-published
    layout), left unlinked, in a folder named as the catalog's own
    (``.../data/data/catalog.json`` with root ``.../data/catalog.json``): its
    root link ends like its own key but names this catalog's root, so it is
    this catalog's orphan, not the root of another one."""
    import json

    catalog = tmp_path / "data"
    tile = write_tile(tmp_path / "tiles", "a_20240110.tif", 6.0, 46.0)
    (result,) = producer.register([str(tile)], catalog=str(catalog), collection="a")
    assert result.ok, result
    sub = catalog / "data" / "catalog.json"
    sub.parent.mkdir()
    root_href = str(catalog / "catalog.json")
    links = [{"rel": "root", "href": root_href}, {"rel": "self", "href": str(sub)}]
    sub.write_text(
        json.dumps(
            {"type": "Catalog", "stac_version": "1.1.0", "id": "sub", "description": "d", "links": links}
        )
    )
    kinds = {(p.kind, p.key) for p in producer.validate_catalog(str(catalog))}
    assert ("nested-catalog", "data/catalog.json") not in kinds, kinds
    assert ("orphan", "data/catalog.json") in kinds, kinds


def test_registering_into_a_collection_whose_folder_is_another_catalog_is_refused(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """``register -c s3://bucket --collection staging`` with another catalog at
    ``staging/``: the collection document, the item and the mirror were
    written into that catalog's folder, beside its own root."""
    from click.testing import CliRunner

    from producer.cli import main

    bucket = s3_server.new_bucket()
    options = s3_server.storage_options
    a = write_tile(tmp_path, "a_20240110.tif", 6.0, 46.0)
    b = write_tile(tmp_path, "b_20240315.tif", 7.0, 46.5)
    producer.register([str(a)], catalog=f"s3://{bucket}", collection="a", storage_options=options)
    producer.register([str(a)], catalog=f"s3://{bucket}/staging", collection="d", storage_options=options)
    before = _objects(s3_server, bucket, "")

    for dry_run in (False, True):
        (refused,) = producer.register(
            [str(b)], catalog=f"s3://{bucket}", collection="staging", storage_options=options, dry_run=dry_run
        )
        assert refused.action == "error" and refused.error_type == "input"
        assert refused.error is not None
        assert f"s3://{bucket}/staging, which holds another catalog" in refused.error
        assert f"catalog='s3://{bucket}/staging'" in refused.error
    assert _objects(s3_server, bucket, "") == before

    local = tmp_path / "cat"
    producer.register([str(a)], catalog=str(local), collection="a")
    producer.register([str(a)], catalog=str(local / "staging"), collection="d")
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*"))
    out = CliRunner().invoke(main, ["register", str(b), "-c", str(local), "--collection", "staging"])
    assert out.exit_code == 1, out.output
    assert f"--catalog {local / 'staging'}" in out.output and "another catalog" in out.output
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*")) == files
    # its own catalog, named as the fix says: registered there
    (there,) = producer.register([str(b)], catalog=str(local / "staging"), collection="d")
    assert there.action == "created", there.error
