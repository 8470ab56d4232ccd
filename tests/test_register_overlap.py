"""One product into an S3 catalog (the event handler's register): the
catalog's reads go out while the product is being extracted, not before,
and the errors keep their order (ingest._layout_beside_extraction).

Everything goes through ``tests/faultproxy.py`` in front of moto: the
catalog and the product (read in place on S3) alike. Which request waits on
which is seen at the proxy, by order: a ``hold`` rule keeps the collection's
GET unanswered until a request for the product arrives.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import producer
from tests import rasters
from tests.faultproxy import FaultProxy

COLL = r"/collection\.json$"


def _through(s3_server: Any, proxy: FaultProxy) -> dict[str, Any]:
    return {
        **s3_server.storage_options,
        "client_kwargs": {**s3_server.storage_options["client_kwargs"], "endpoint_url": proxy.endpoint_url},
    }


def _upload(s3_server: Any, path: Path, key: str) -> str:
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=path.read_bytes())
    return f"s3://{s3_server.bucket}/{key}"


def _keys(s3_server: Any, prefix: str) -> dict[str, str]:
    """Every object under ``prefix``, with its ETag: what the catalog holds."""
    out = s3_server.client().list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix + "/")
    return {o["Key"]: o["ETag"] for o in out.get("Contents", [])}


@pytest.fixture
def seeded(s3_server: Any, tmp_path: Path) -> tuple[str, str]:
    """A catalog on S3 holding one item, and a second product on S3 (its URL)."""
    return seed_catalog(s3_server, tmp_path, "overlap")


def seed_catalog(s3_server: Any, tmp_path: Path, tag: str) -> tuple[str, str]:
    """The prefix of a new catalog on S3 (``<tag>-<random>``) holding one
    item, and the URL of a second product on S3, beside it."""
    prefix = f"{tag}-{uuid.uuid4().hex[:8]}"
    first = _upload(s3_server, rasters.write_wgs84(tmp_path), f"{prefix}-data/a/wgs84_20240301.tif")
    (res,) = producer.register(
        [first], catalog=s3_server.url(prefix), collection="c", storage_options=s3_server.storage_options
    )
    assert res.ok, res.error
    second = _upload(s3_server, rasters.write_utm(tmp_path), f"{prefix}-data/b/utm_20240513.tif")
    return prefix, second


def test_the_catalog_reads_of_a_one_product_s3_register_go_out_while_the_product_is_read(s3_server, seeded):
    """The collection's GET is held until the product's first request comes:
    a register that read the catalog before extracting (the product's reads
    only after the collection's answer) waits out the hold."""
    prefix, url = seeded
    with FaultProxy(s3_server.endpoint_url) as proxy:
        hold = proxy.add("GET", COLL, "hold", until=r"/utm_20240513\.tif$")
        (res,) = producer.register(
            [url], catalog=s3_server.url(prefix), collection="c", storage_options=_through(s3_server, proxy)
        )
        trace = list(proxy.trace)
    assert res.ok and res.action == "created", res.error
    lines = [f"{m} {p}" for m, p, _ in trace]
    assert hold.hits == 1, lines
    assert hold.expired == 0, f"the product was read only after the collection's answer: {lines}"
    first_product = next(i for i, (_, p, _) in enumerate(trace) if p.endswith(".tif"))
    first_put = next(i for i, (m, _, _) in enumerate(trace) if m == "PUT")
    assert first_product < first_put, lines  # nothing written before the product was read
    # the reading thread is gone with the register (the proxy's own threads stay)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("producer-")]
    assert producer.validate_catalog(s3_server.url(prefix), storage_options=s3_server.storage_options) == []


def test_a_bad_product_still_gets_its_own_error_with_the_catalog_untouched(s3_server, seeded, tmp_path):
    prefix, _ = seeded
    bad = tmp_path / "broken_20240601.tif"
    bad.write_bytes(b"II*\x00 not a raster at all")
    url = _upload(s3_server, bad, f"{prefix}-data/c/broken_20240601.tif")
    before = _keys(s3_server, prefix)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        (res,) = producer.register(
            [url], catalog=s3_server.url(prefix), collection="c", storage_options=_through(s3_server, proxy)
        )
        methods = {m for m, _, _ in proxy.trace}
    assert not res.ok and res.error_type == "input", res.error
    assert "not a readable raster" in str(res.error)
    assert methods <= {"GET", "HEAD"}, methods
    assert _keys(s3_server, prefix) == before


@pytest.mark.parametrize("fault", ["403", "503"])
def test_a_collection_that_cannot_be_read_fails_a_good_product_with_the_read_error(s3_server, seeded, fault):
    prefix, url = seeded
    before = _keys(s3_server, prefix)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        rule = proxy.add("GET", COLL, fault)
        (res,) = producer.register(
            [url],
            catalog=s3_server.url(prefix),
            collection="c",
            storage_options=_through(s3_server, proxy),
            max_retries=1,
        )
        methods = {m for m, _, _ in proxy.trace}
    assert rule.hits >= 2  # the layout's read, then preflight's (the one reported)
    assert not res.ok and res.error_type == "storage", (res.error_type, res.error)
    assert "collection.json" in str(res.error), res.error  # the read that failed, named
    assert methods <= {"GET", "HEAD"}, methods
    assert _keys(s3_server, prefix) == before


def test_when_both_the_product_and_the_collection_fail_the_product_error_wins(s3_server, seeded, tmp_path):
    prefix, _ = seeded
    missing = f"s3://{s3_server.bucket}/{prefix}-data/d/gone_20240601.tif"
    before = _keys(s3_server, prefix)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.add("GET", COLL, "403")
        (res,) = producer.register(
            [missing],
            catalog=s3_server.url(prefix),
            collection="c",
            storage_options=_through(s3_server, proxy),
            expand=False,
        )
        methods = {m for m, _, _ in proxy.trace}
    assert not res.ok and res.error_type == "input", (res.error_type, res.error)
    assert "gone_20240601.tif" in str(res.error) and "collection.json" not in str(res.error), res.error
    assert methods <= {"GET", "HEAD"}, methods
    assert _keys(s3_server, prefix) == before


def test_a_partition_the_collection_does_not_record_is_still_refused_before_anything(
    s3_server, seeded, tmp_path
):
    """The layout's InputError is raised as when the catalog was read
    first, even for a product that is bad as well."""
    prefix, url = seeded
    before = _keys(s3_server, prefix)
    for product in (url, f"s3://{s3_server.bucket}/{prefix}-data/d/gone_20240601.tif"):
        with pytest.raises(producer.InputError, match="partition|layout|flat"):
            producer.register(
                [product],
                catalog=s3_server.url(prefix),
                collection="c",
                storage_options=s3_server.storage_options,
                partition="year",
                expand=False,
            )
    assert _keys(s3_server, prefix) == before
