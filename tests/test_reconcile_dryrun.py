"""``reconcile --fix --dry-run`` ("write nothing") writes nothing: not the
repairs of the catalog (before, it linked an orphan: the collection was
rewritten and a mirror fragment added), not the registration of products no
item describes; and it says what a fix WOULD repair (before, a missing
product that was not registered was reported ``fixed``, and the run ended
"valid after repair", exit 0)."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import producer
from producer.cli import main
from producer.store import open_store
from producer.store.counting import CountingStore
from tests.crashes import write_tile
from tests.s3server import S3Server


def _snapshot(root: Path) -> dict[str, str | None]:
    """Every path under ``root`` (folders as None) with its content's hash."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _drifted(tmp_path: Path) -> tuple[Path, Path]:
    """A local catalog of two products whose collection lost the link to one
    (an orphan; the extent goes stale), and a third product under the data
    folder that no item describes. Returns (catalog, data)."""
    data = tmp_path / "data"
    catalog = tmp_path / "cat"
    tiles = [write_tile(data, "a_20240110.tif", 6.0, 46.0), write_tile(data, "b_20240315.tif", 7.0, 46.5)]
    producer.register(tiles, catalog=str(catalog), collection="c")
    coll = catalog / "c/collection.json"
    doc = json.loads(coll.read_text())
    doc["links"] = [link for link in doc["links"] if "b_20240315" not in link.get("href", "")]
    coll.write_text(json.dumps(doc))
    write_tile(data, "n_20240701.tif", 8.0, 47.0)  # nobody registered it
    return catalog, data


def test_cli_reconcile_fix_dry_run_writes_nothing_and_says_what_would_be_fixed(tmp_path: Path) -> None:
    catalog, data = _drifted(tmp_path)
    before = _snapshot(catalog)

    res = CliRunner().invoke(
        main, ["reconcile", str(catalog), "--fix", "--dry-run", "--data", str(data), "--collection", "c"]
    )

    assert _snapshot(catalog) == before  # not one byte, not one file or folder more
    out = res.output
    assert "would fix" in out
    assert "valid after repair" not in out
    assert "nothing written" in out and "dry run" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalpha()}
    assert lines["orphan"][:2] == ["1", "1"]  # found 1, would fix 1
    assert lines["missing-product"][:2] == ["1", "1"]
    assert res.exit_code == 1  # nothing was repaired: the orphan is still an error


def test_reconcile_dry_run_would_fix_what_a_fix_then_fixes(tmp_path: Path) -> None:
    catalog, data = _drifted(tmp_path)
    twin = tmp_path / "twin"
    shutil.copytree(catalog, twin)
    before = _snapshot(catalog)

    dry = producer.reconcile(str(catalog), data=str(data), fix=True, collection="c", dry_run=True)

    assert _snapshot(catalog) == before
    assert dry.dry_run and dry.fixed == {}
    # the mirror holds the orphan: linking it makes the mirror and the extent right again
    assert dry.would_fix == {"orphan": 1, "missing-product": 1, "stale-extent": 1, "mirror-stale": 1}
    assert [r.action for r in dry.registered] == ["created"]  # extracted and validated, not written
    assert {p.kind for p in dry.remaining} == {p.kind for p in dry.problems}  # nothing was repaired

    real = producer.reconcile(str(twin), data=str(data), fix=True, collection="c")
    assert real.fixed["orphan"] == 1 and real.fixed["missing-product"] == 1
    assert not [p for p in real.remaining if p.kind in dry.would_fix]  # all resolved
    assert (twin / "c/n_20240701/n_20240701.json").is_file()
    assert not real.dry_run and real.would_fix == {}


def test_reconcile_dry_run_through_the_register_options_writes_nothing(tmp_path: Path) -> None:
    catalog, data = _drifted(tmp_path)
    before = _snapshot(catalog)
    report = producer.reconcile(
        str(catalog), data=str(data), fix=True, collection="c", options=producer.RegisterOptions(dry_run=True)
    )
    assert _snapshot(catalog) == before
    assert report.dry_run and report.fixed == {} and report.would_fix["orphan"] == 1


def _listing(s3: S3Server, bucket: str) -> dict[str, str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def test_reconcile_dry_run_on_s3_makes_no_write_request(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket(f"dry-{uuid.uuid4().hex[:8]}")
    url = f"s3://{bucket}/stac"
    data = tmp_path / "data"
    tiles = [write_tile(data, "a_20240110.tif", 6.0, 46.0), write_tile(data, "b_20240315.tif", 7.0, 46.5)]
    so = s3_server.storage_options
    producer.register(tiles, catalog=url, collection="c", storage_options=so)
    client = s3_server.client()
    doc = json.loads(client.get_object(Bucket=bucket, Key="stac/c/collection.json")["Body"].read())
    doc["links"] = [link for link in doc["links"] if "b_20240315" not in link.get("href", "")]
    client.put_object(Bucket=bucket, Key="stac/c/collection.json", Body=json.dumps(doc).encode())
    write_tile(data, "n_20240701.tif", 8.0, 47.0)
    before = _listing(s3_server, bucket)

    store = CountingStore(open_store(url, so))
    report = producer.reconcile(store, data=str(data), fix=True, collection="c", dry_run=True)

    assert store.totals()["put"] == 0 and store.totals()["delete"] == 0
    assert _listing(s3_server, bucket) == before
    assert report.would_fix["orphan"] == 1 and report.would_fix["missing-product"] == 1
    assert report.fixed == {}


@pytest.mark.parametrize("dry_run", [True, False])
def test_reconcile_without_fix_ignores_dry_run(tmp_path: Path, dry_run: bool) -> None:
    catalog, data = _drifted(tmp_path)
    before = _snapshot(catalog)
    report = producer.reconcile(str(catalog), data=str(data), collection="c", dry_run=dry_run)
    assert _snapshot(catalog) == before
    assert report.fixed == {} and report.would_fix == {} and report.registered == []


@pytest.mark.usefixtures("prefect_harness")
def test_reconcile_flow_with_dry_run_options_writes_nothing(tmp_path: Path) -> None:
    from flows.reconcile import reconcile_catalog
    from producer.prefect import CatalogProblemsRemain
    from tests.prefect_harness import flow_run_id, read_artifacts, table_rows

    catalog, data = _drifted(tmp_path)
    before = _snapshot(catalog)
    state = reconcile_catalog(
        str(catalog),
        data=str(data),
        fix=True,
        collection="c",
        options=producer.RegisterOptions(dry_run=True),
        artifact_key="rec-dry",
        return_state=True,
    )
    assert _snapshot(catalog) == before
    assert state.is_failed()  # the orphan is still there, as after an audit
    with pytest.raises(CatalogProblemsRemain, match="dry run: nothing was repaired"):
        state.result()
    (summary,) = read_artifacts(key="rec-dry", flow_run=flow_run_id(state))
    assert "dry run: nothing written" in (summary.description or "")
    rows = table_rows(summary)
    assert {"kind": "orphan", "found": 1, "would_fix": 1, "failed": 0, "remaining": 1} in rows
    assert all("fixed" not in row for row in rows)


def test_register_options_without_data_are_refused_not_ignored_by_the_library(tmp_path: Path) -> None:
    """As the CLI's register flags: ``partition``, ``thumbnail``, ... only
    shape what ``data`` registers. Was: ``producer.reconcile(cat, fix=True,
    options=RegisterOptions(partition="year/month"))`` (read as "repartition")
    repaired and returned as if they were taken. The options the repairs use
    (``dry_run``, ``max_retries``, ...) are still taken."""
    catalog, _ = _drifted(tmp_path)
    before = _snapshot(catalog)
    for kwargs in (
        {"options": producer.RegisterOptions(partition="year/month")},
        {"register_options": {"thumbnail": True}},
    ):
        with pytest.raises(producer.InputError, match=r"only appl(y|ies) with data") as info:
            producer.reconcile(str(catalog), fix=True, **kwargs)
        assert ("partition" if "options" in kwargs else "thumbnail") in str(info.value)
        assert _snapshot(catalog) == before
    report = producer.reconcile(
        str(catalog), fix=True, options=producer.RegisterOptions(dry_run=True, max_retries=3)
    )
    assert report.dry_run and _snapshot(catalog) == before
