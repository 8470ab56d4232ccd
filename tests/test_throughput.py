"""Issue 12 points 3 and 4: a new item is PUT create-only without a GET
first, items of a batch are written in parallel and products extracted in a
process pool, with results per product and in order either way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import producer
from producer import parallel
from producer.commit import Committer
from producer.ingest import register_products, validator
from producer.options import RegisterOptions
from producer.parallel import MIN_POOLED, cores, extraction_workers
from producer.store import CountingStore, LocalStore, open_store
from tests import rasters
from tests.trees import assert_stac_valid_tree


def _item_key(source: str) -> str:
    stem = Path(source).stem
    return f"c/{stem}/{stem}.json"


def _assert_put_before_any_get(counting: CountingStore, sources: list[str]) -> None:
    """Each new item's first call is its one PUT (the GET after the link,
    which settles races with a concurrent remove, may follow)."""
    for source in sources:
        key = _item_key(source)
        calls = [kind for kind, k in counting.calls if k == key]
        assert calls[0] == "put" and calls.count("put") == 1, calls


def test_new_items_are_put_create_only_with_no_get_before_local(tmp_path):
    sources = rasters.dated_cogs(tmp_path / "data", 3)
    counting = CountingStore(LocalStore(str(tmp_path / "cat")))
    results = register_products(sources, catalog=counting, collection="c", options=RegisterOptions())
    assert [r.action for r in results] == ["created"] * 3, [r.error for r in results]
    _assert_put_before_any_get(counting, sources)
    assert_stac_valid_tree(tmp_path / "cat")


def test_new_items_are_put_create_only_with_no_get_before_s3(s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    sources = rasters.dated_cogs(tmp_path / "data", 3)
    counting = CountingStore(open_store(f"s3://{bucket}/stac", s3_server.storage_options))
    results = register_products(sources, catalog=counting, collection="c", options=RegisterOptions())
    assert [r.action for r in results] == ["created"] * 3, [r.error for r in results]
    _assert_put_before_any_get(counting, sources)
    again = register_products(sources, catalog=counting, collection="c", options=RegisterOptions())
    assert [r.action for r in again] == ["unchanged"] * 3


def test_existing_item_412_then_read_gives_unchanged_or_updated_and_no_conflict(tmp_path):
    source = rasters.dated_cogs(tmp_path / "data", 1)[0]
    counting = CountingStore(LocalStore(str(tmp_path / "cat")))
    committer = Committer(counting, validator().check)
    (first,) = register_products([source], catalog=counting, collection="c", options=RegisterOptions())
    item = first.item
    assert item is not None
    key = _item_key(source)
    counting.reset()

    action, committed = committer.write_item(key, item)
    assert action == "unchanged"
    assert committed["properties"]["created"] == committed["properties"]["updated"]
    assert (counting.puts[key], counting.gets[key]) == (1, 1)  # the 412, then one read

    changed = {**item, "properties": {**item["properties"], "title": "changed"}}
    action, committed = committer.write_item(key, changed)
    assert action == "updated"
    assert committed["properties"]["title"] == "changed"
    # a first-attempt 412 read nothing, so it lost no race: no conflict, no sleep
    assert (committer.conflicts, committer.backoff_seconds) == (0, 0.0)


def test_parallel_item_writes_keep_per_product_results_in_order(tmp_path):
    sources = rasters.dated_cogs(tmp_path / "data", 8)
    catalog = tmp_path / "cat"
    blocked = Path(sources[5]).stem
    (catalog / "c").mkdir(parents=True)
    (catalog / "c" / blocked).write_text("a file where the item's folder goes")
    results = register_products(
        sources, catalog=str(catalog), collection="c", options=RegisterOptions(workers=1)
    )
    assert [r.source for r in results] == sources
    assert [r.id for r in results] == [Path(s).stem for s in sources]
    for i, result in enumerate(results):
        if i == 5:
            assert result.action == "error"
            assert result.error is not None and sources[5] in result.error
            assert "a parent is a file" in result.error
        else:
            assert result.action == "created", result.error
            assert result.href == str(catalog / _item_key(sources[i]))
    (catalog / "c" / blocked).unlink()
    assert_stac_valid_tree(catalog)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_broken_product_in_a_pooled_batch_fails_alone_with_its_serial_message(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(parallel, "EXTRACT_KIND", kind)
    sources = rasters.dated_cogs(tmp_path / "data", 5)
    broken = str(rasters.write_corrupt(tmp_path / "data"))
    sources.insert(2, broken)  # an explicit workers=2 pools even a small batch
    pooled = producer.register(
        sources, catalog=str(tmp_path / "pooled"), collection="c", options=RegisterOptions(workers=2)
    )
    serial = producer.register(
        [broken], catalog=str(tmp_path / "serial"), collection="c", options=RegisterOptions(workers=1)
    )
    assert [r.source for r in pooled] == sources
    assert pooled[2].action == "error"
    assert (pooled[2].error, pooled[2].error_type) == (serial[0].error, serial[0].error_type)
    assert [r.action for i, r in enumerate(pooled) if i != 2] == ["created"] * 5
    assert_stac_valid_tree(tmp_path / "pooled")


def test_workers_option_rejects_a_negative_count_and_auto_pools_only_large_batches():
    assert extraction_workers(0, MIN_POOLED - 1) == 1
    assert extraction_workers(0, MIN_POOLED) == min(cores(), MIN_POOLED)
    assert extraction_workers(2, 6) == 2
    try:
        RegisterOptions(workers=-1)
    except ValueError as exc:
        assert "workers" in str(exc)
    else:
        raise AssertionError("workers=-1 was accepted")


def test_register_into_a_local_catalog_does_not_import_boto3(tmp_path):
    """rasterio imports boto3 (and botocore) at import when installed; the
    register path defers it until used, and a local catalog never uses it."""
    source = rasters.write_cog(tmp_path / "data")
    code = (
        "import sys, producer\n"
        f"(r,) = producer.register([{str(source)!r}], catalog={str(tmp_path / 'cat')!r}, collection='c')\n"
        "assert r.action == 'created', r.error\n"
        "print(sorted(m for m in ('boto3.session', 'botocore') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1]
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_deferred_boto3_loads_on_first_use():
    code = (
        "import sys\n"
        "from producer.extract import defer_boto3\n"
        "sys.modules.pop('boto3', None)\n"
        "defer_boto3()\n"
        "import boto3\n"
        "assert 'botocore' not in sys.modules\n"
        "print(boto3.Session.__name__, type(sys.modules['boto3']).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert out.stdout.split() == ["Session", "module"], out.stderr[-2000:]


def test_draft7_meta_format_list_matches_the_meta_schema():
    """validate.py lists the draft-07 meta-schema's formats instead of
    importing jsonschema in every process: the list must stay exact."""
    from jsonschema.validators import SPECIFICATIONS

    from producer.validate import DRAFT7_META_FORMATS, _format_names

    meta = SPECIFICATIONS.contents("http://json-schema.org/draft-07/schema")
    assert tuple(sorted(set(_format_names(meta)))) == DRAFT7_META_FORMATS


def test_a_warm_valid_document_is_checked_without_importing_jsonschema(tmp_path):
    """The compiled checks accept a valid item alone; jsonschema loads only
    to word a rejection (its messages are unchanged: tests/test_validate.py)."""
    source = rasters.write_cog(tmp_path / "data")
    code = (
        "import sys, producer\n"
        "(r,) = producer.register([sys.argv[1]], catalog=sys.argv[2], collection='c')\n"
        "assert r.action == 'created', r.error\n"
        "print(sorted(m for m in ('jsonschema', 'referencing') if m in sys.modules))\n"
    )
    env = {**os.environ, "STAC_PRODUCER_CACHE_DIR": str(tmp_path / "cache")}
    for run in range(2):  # the first run compiles and caches, the second loads the cache
        out = subprocess.run(
            [sys.executable, "-c", code, str(source), str(tmp_path / f"cat{run}")],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).parents[1],
        )
        assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
