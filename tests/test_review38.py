"""Attacks on this session's two changes, kept as tests (review rv38).

- nc38: a remote NetCDF-4 above ``RANGED_ABOVE`` read by ranges
  (:class:`producer.extract.datacube._RangedFile`);
- ev38: one product into a remote catalog extracted beside the catalog's
  reads (``ingest._layout_beside_extraction``), the product's HEAD handed to
  the file s3fs opens (``GuardedOpener.details``).

Real files, real S3 (moto); faults are injected at s3fs's request level
(the object rewritten, a read failing), never in the code under test."""

from __future__ import annotations

import contextvars
import gc
import json
import threading
import time
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import producer
import producer.extract.datacube as datacube
import producer.ingest as ingest
from producer.errors import InputError, ProducerError, StoreError
from producer.extract import ExtractOptions, create_item
from tests import cubes, rasters
from tests.test_netcdf_ranged import _both, _put, _through
from tests.test_register_overlap import _keys, _upload, seed_catalog


def _noise_tif(path: Path, seed: int, size: int = 1200) -> Path:
    """An uncompressed, untiled GeoTIFF of noise (``size`` squared bytes):
    more than one s3fs block of the statistics' reads."""
    data = np.random.default_rng(seed).integers(0, 256, (1, size, size), dtype="uint8")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(10.0, 50.0, 0.001, 0.001),
    ) as dst:
        dst.write(data)
    return path


# --- ev38: the HEAD handed to s3fs's file ------------------------------------------------


@pytest.mark.parametrize("local_check", [False, True])
def test_an_s3_raster_overwritten_between_its_reads_gives_no_item_of_two_versions(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_check: bool
) -> None:
    """The product's HEAD is handed to the file s3fs opens (no second HEAD):
    s3fs then sends its range reads without ``If-Match`` (it adds the ETag
    only to a file it HEADs itself), so a product rewritten after its first
    block gave statistics of blocks of two files. Each range read is tied to
    the ETag of the HEAD: the rewrite is a storage failure (retried); with
    s3fs's ``local_expiry_check`` (servers without If-Match) each answer's
    ETag is compared with the HEAD's instead."""
    import s3fs

    old = _noise_tif(tmp_path / "old.tif", 1).read_bytes()
    (tmp_path / "new").mkdir()
    new = _noise_tif(tmp_path / "new" / "noise_20240501.tif", 2).read_bytes()
    assert len(old) == len(new) > 1024 * 1024
    bucket = s3_server.new_bucket()
    key = "data/noise_20240501.tif"
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=key, Body=old)
    url = f"s3://{bucket}/{key}"
    original = s3fs.S3FileSystem._call_s3
    gets: list[str] = []

    async def rewritten_after_the_first_read(self: Any, method: Any, *args: Any, **kwargs: Any) -> Any:
        ranged = method == "get_object" and kwargs.get("Key") == key and "Range" in kwargs
        if ranged:
            gets.append(kwargs["Range"])
        out = await original(self, method, *args, **kwargs)
        if ranged and len(gets) == 1:  # the writer replaces the product after its first block
            client.put_object(Bucket=bucket, Key=key, Body=new)
        return out

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", rewritten_after_the_first_read)
    s3fs.S3FileSystem.clear_instance_cache()
    storage = {**s3_server.storage_options, "local_expiry_check": local_check}
    options = ExtractOptions(storage_options=storage, stats=True)
    with pytest.raises(ProducerError) as caught:
        create_item(url, options)
    assert isinstance(caught.value, StoreError), caught.value
    assert len(gets) >= 2, gets
    assert "noise_20240501.tif" in str(caught.value), caught.value
    # unchanged since, the same reads give the item of the new version
    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", original)
    s3fs.S3FileSystem.clear_instance_cache()
    item = create_item(url, options).to_dict()
    local = create_item(str(tmp_path / "new" / "noise_20240501.tif"), ExtractOptions(stats=True)).to_dict()
    stats = item["assets"]["data"]["bands"][0]["statistics"]
    assert stats == local["assets"]["data"]["bands"][0]["statistics"]


# --- nc38: a NetCDF-4 on S3 read by ranges -------------------------------------------------


def _live_blocks() -> int:
    """Bytes held by the block caches of every :class:`_RangedFile` alive."""
    gc.collect()
    held = 0
    for obj in gc.get_objects():
        if isinstance(obj, datacube._RangedFile):
            held += sum(len(b) for b in obj._blocks.values()) + len(obj._whole or b"")
    return held


def test_the_threshold_is_strict_a_file_at_it_is_fetched_whole_one_byte_above_read_by_ranges(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.faultproxy import FaultProxy

    path = cubes.write_two_variables(tmp_path / "data")
    url, key = _put(s3_server, path)
    size = path.stat().st_size
    seen = {}
    for above in (size, size - 1):
        monkeypatch.setattr(datacube, "RANGED_ABOVE", above)
        with FaultProxy(s3_server.endpoint_url) as proxy:
            item = create_item(
                url, ExtractOptions(storage_options=_through(proxy, s3_server.storage_options))
            )
            seen[above] = ([r for p, r in proxy.get_ranges if p == key], item.to_dict())
    assert seen[size][0] == [None], seen[size][0]  # one GET of the whole object
    assert seen[size - 1][0][0] == "bytes=0-7", seen[size - 1][0]  # the ranged path's probe
    assert None not in seen[size - 1][0]
    assert seen[size][1] == seen[size - 1][1]


def test_a_netcdf4_classic_model_file_read_by_ranges_gives_the_item_of_the_whole_fetch(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NETCDF4_CLASSIC: HDF5 on disk (read by ranges with h5netcdf), the
    classic data model (no groups, no NC_STRING)."""
    src = cubes.write_two_variables(tmp_path / "src")
    path = tmp_path / "data" / "classic_model_20240501.nc"
    path.parent.mkdir()
    with netCDF4.Dataset(src) as a, netCDF4.Dataset(path, "w", format="NETCDF4_CLASSIC") as b:
        b.setncatts(a.__dict__)
        for name, dim in a.dimensions.items():
            b.createDimension(name, None if dim.isunlimited() else len(dim))
        for name, var in a.variables.items():
            out = b.createVariable(
                name, var.dtype, var.dimensions, fill_value=getattr(var, "_FillValue", None)
            )
            out.setncatts({k: v for k, v in var.__dict__.items() if k != "_FillValue"})
            out[:] = var[:]
    assert path.read_bytes()[:4] == b"\x89HDF"
    whole, ranged, ranges = _both(s3_server, path, monkeypatch, stats=True)
    assert isinstance(whole, dict), whole
    assert ranged == whole
    assert ranges[0] == "bytes=0-7", ranges


def test_bytes_after_the_hdf5_end_of_file_change_nothing_read_by_ranges(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object larger than its superblock's end of file (junk appended,
    a user block of zeros after it): HDF5 reads it as the whole fetch does;
    the asset's size is the object's."""
    body = cubes.write_curvilinear(tmp_path / "src").read_bytes()
    path = tmp_path / "data" / "padded.nc"
    path.parent.mkdir()
    path.write_bytes(body + b"\x00junk" * 3000)
    whole, ranged, _ = _both(s3_server, path, monkeypatch)
    assert ranged == whole
    if isinstance(whole, dict):
        assert whole["assets"]["data"]["file:size"] == path.stat().st_size


def test_the_ranged_file_seeks_and_reads_at_its_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """SEEK_END with a negative offset, a read past the end (nothing, no
    request), a read larger than the blocks kept in the middle of blocks
    kept (their bytes, the blocks kept still served without a request)."""
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 100)
    body = bytes(range(256)) * 20
    asked: list[list[tuple[int, int]]] = []

    def fetch(ranges: list[tuple[int, int]]) -> list[bytes]:
        asked.append(ranges)
        return [body[start:end] for start, end in ranges]

    raw = datacube._RangedFile(fetch, len(body))
    assert raw.seek(-7, 2) == len(body) - 7 and raw.read() == body[-7:]
    assert raw.seek(10, 2) == len(body) + 10
    calls = len(asked)
    assert raw.read(5) == b"" and raw.read() == b"" and len(asked) == calls
    raw.seek(1000)
    assert raw.read(300) == body[1000:1300]  # blocks 10-12 kept
    raw.seek(950)
    big = 100 * (datacube.RANGED_BLOCKS + 3)
    assert raw.read(big) == body[950 : 950 + big]
    calls = len(asked)
    raw.seek(1050)
    assert raw.read(100) == body[1050:1150] and len(asked) == calls  # still kept
    raw.seek(-3, 1)
    assert raw.tell() == 1147 and raw.read(3) == body[1147:1150]


def test_the_block_cache_is_released_with_the_item_and_with_its_error(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing keeps the blocks read once the item is built, nor once its
    error is raised: a caller keeps each failed product's exception (a
    register's results do), and a batch of large NetCDFs that fail must not
    hold RANGED_BLOCKS blocks each."""
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 1024)
    good, _ = _put(s3_server, cubes.write_curvilinear(tmp_path / "a"))
    bad, _ = _put(s3_server, cubes.write_data_in_group(tmp_path / "b"))
    options = ExtractOptions(storage_options=s3_server.storage_options)
    before = _live_blocks()
    item = create_item(good, options)
    assert item.bbox and _live_blocks() == before
    errors = []
    for _ in range(3):
        try:
            create_item(bad, options)
        except ProducerError as exc:
            errors.append(exc)  # kept, with its traceback
    assert len(errors) == 3 and "/data" in str(errors[0])
    assert _live_blocks() == before


def _at_once(run: Any, timeout: float) -> list[Any]:
    """``[run(0), run(1)]`` run on two threads released together (a
    barrier), each result or the exception it raised; fails when either
    thread is still running after ``timeout`` seconds (a deadlock)."""
    out: dict[int, Any] = {}
    start = threading.Barrier(2)

    def one(n: int) -> None:
        start.wait()
        try:
            out[n] = run(n)
        except BaseException as exc:
            out[n] = exc

    threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    return [out[0], out[1]]


def test_two_large_netcdfs_read_by_ranges_at_once_on_two_threads(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h5py's global lock is held around its callbacks, whose reads wait
    on s3fs's loop: two products read by ranges at once (small blocks: many
    callbacks) finish, each with its own item, as read one after the other."""
    from tests.test_netcdf_ranged import _curved

    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 2048)
    urls = [_put(s3_server, _curved(tmp_path / f"c{n}_2024050{n + 1}.nc", 60 + 20 * n))[0] for n in range(2)]
    options = ExtractOptions(storage_options=s3_server.storage_options, stats=True)
    alone = [create_item(url, options).to_dict() for url in urls]
    out = _at_once(lambda n: create_item(urls[n], options).to_dict(), 120)
    assert out == alone


def test_a_build_that_fails_on_an_object_overwritten_meanwhile_is_the_storage_failure(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data in a group is refused (an input error, not retried) once the
    file is read; rewritten while it was read, the refusal may come of
    blocks of two files: the change is what is raised (retried)."""
    import s3fs

    path = cubes.write_data_in_group(tmp_path / "data")
    body = path.read_bytes()
    url, key = _put(s3_server, path, "grouped.nc")
    bucket, name = key.strip("/").split("/", 1)
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 1024)
    options = ExtractOptions(storage_options=s3_server.storage_options)
    with pytest.raises(InputError, match="/data"):
        create_item(url, options)
    original = s3fs.S3FileSystem._cat_file
    calls: list[Any] = []
    client = s3_server.client()

    async def overwritten(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("start"))
        if len(calls) == 2:  # after the probe
            client.put_object(Bucket=bucket, Key=name, Body=body + b"\x00")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", overwritten)
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(StoreError, match="changed while it was read"):
        create_item(url, options)


@pytest.mark.parametrize("when", [1, 2, 3])
def test_an_object_deleted_while_read_by_ranges_is_not_found_and_names_no_secret(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: int
) -> None:
    """Deleted after its HEAD, before the probe (1), after the probe (2),
    after the first block (3): "not found" (the event path then looks and
    skips a product gone), with the product named and the storage options'
    secret in no message of the error or its causes."""
    import s3fs

    path = cubes.write_curvilinear(tmp_path / "data")
    url, key = _put(s3_server, path, "gone.nc")
    bucket, name = key.strip("/").split("/", 1)
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 1024)
    original = s3fs.S3FileSystem._cat_file
    calls: list[Any] = []
    client = s3_server.client()

    async def deleted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("start"))
        if len(calls) == when:
            client.delete_object(Bucket=bucket, Key=name)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", deleted)
    s3fs.S3FileSystem.clear_instance_cache()
    secret = "S3cr3t-never-printed-0123456789"
    options = {**s3_server.storage_options, "secret": secret}
    with pytest.raises(InputError, match="not found") as caught:
        create_item(url, ExtractOptions(storage_options=options))
    assert "gone.nc" in str(caught.value)
    exc: BaseException | None = caught.value
    while exc is not None:
        assert secret not in str(exc) and secret not in repr(exc)
        exc = exc.__cause__ or exc.__context__


def test_a_corrupt_hdf5_read_by_ranges_names_no_secret(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = cubes.write_curvilinear(tmp_path / "data").read_bytes()
    path = tmp_path / "bad" / "corrupt.nc"
    path.parent.mkdir()
    path.write_bytes(body[:8] + bytes(len(body) - 8))  # the magic, then zeros
    url, _ = _put(s3_server, path)
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    secret = "S3cr3t-never-printed-0123456789"
    options = {**s3_server.storage_options, "secret": secret}
    with pytest.raises(InputError) as caught:
        create_item(url, ExtractOptions(storage_options=options))
    assert "corrupt.nc" in str(caught.value)
    exc: BaseException | None = caught.value
    while exc is not None:
        assert secret not in str(exc) and secret not in repr(exc)
        exc = exc.__cause__ or exc.__context__


# --- ev38: one product extracted beside the catalog's reads ----------------------------------

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("_CALLER", default="unset")


@pytest.fixture
def seeded_s3(s3_server: Any, tmp_path: Path) -> tuple[str, str]:
    """A catalog on S3 holding one item, and a second product on S3 (its
    URL), as tests/test_register_overlap.py's ``seeded``."""
    return seed_catalog(s3_server, tmp_path, "rv38")


def _producer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("producer-")]


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_on_the_catalog_reading_thread_reaches_the_caller_nothing_written(
    s3_server: Any, seeded_s3: tuple[str, str], monkeypatch: pytest.MonkeyPatch, raised: type[BaseException]
) -> None:
    prefix, url = seeded_s3
    before = _keys(s3_server, prefix)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise raised()

    monkeypatch.setattr(ingest, "collection_layout", interrupted)
    with pytest.raises(raised):
        producer.register(
            [url], catalog=s3_server.url(prefix), collection="c", storage_options=s3_server.storage_options
        )
    assert not _producer_threads()
    assert _keys(s3_server, prefix) == before


def test_an_interrupt_in_the_extraction_waits_for_the_catalog_read_and_leaves_no_thread(
    s3_server: Any, seeded_s3: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """KeyboardInterrupt in the product's extraction (this thread) while the
    catalog's read is still on its way: raised once that read is over (the
    thread joined, none left), nothing written; the reading thread saw the
    caller's context variables."""
    prefix, url = seeded_s3
    before = _keys(s3_server, prefix)
    real = ingest.collection_layout
    seen: list[str] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        seen.append(f"{threading.current_thread().name}: {_CALLER.get()}")
        time.sleep(0.5)
        out = real(*args, **kwargs)
        seen.append("done")
        return out

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "collection_layout", slow)
    monkeypatch.setattr(producer.extract, "create_item", interrupted)
    token = _CALLER.set("the caller's")
    try:
        with pytest.raises(KeyboardInterrupt):
            producer.register(
                [url],
                catalog=s3_server.url(prefix),
                collection="c",
                storage_options=s3_server.storage_options,
            )
    finally:
        _CALLER.reset(token)
    assert seen == ["producer-catalog-read: the caller's", "done"], seen
    assert not _producer_threads()
    assert _keys(s3_server, prefix) == before


def test_a_catalog_file_given_as_the_product_is_refused_unread(
    s3_server: Any, seeded_s3: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog's own item document (and its collection) named as the
    one product: refused as before, never handed to the extraction."""
    prefix, _ = seeded_s3
    before = _keys(s3_server, prefix)
    item = next(k for k in before if k.endswith(".json") and "/c/" in k and not k.endswith("collection.json"))
    extracted: list[str] = []
    real = producer.extract.create_item

    def counted(source: str, *args: Any, **kwargs: Any) -> Any:
        extracted.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(producer.extract, "create_item", counted)
    for key in (item, f"{prefix}/c/collection.json"):
        (res,) = producer.register(
            [f"s3://{s3_server.bucket}/{key}"],
            catalog=s3_server.url(prefix),
            collection="c",
            storage_options=s3_server.storage_options,
            expand=False,
        )
        assert not res.ok and res.error_type == "input", (res.error_type, res.error)
    assert extracted == []
    assert _keys(s3_server, prefix) == before


def test_one_product_into_a_new_partitioned_s3_collection_lands_in_its_period(
    s3_server: Any, tmp_path: Path
) -> None:
    """The partition key comes of the item's datetime, read from the early
    extraction: the same key as a local catalog gives; a dry run writes nothing."""
    import uuid

    prefix = f"part-{uuid.uuid4().hex[:8]}"
    url = _upload(s3_server, rasters.write_utm(tmp_path), f"{prefix}-data/utm_20240513.tif")
    (dry,) = producer.register(
        [url],
        catalog=s3_server.url(prefix),
        collection="c",
        storage_options=s3_server.storage_options,
        partition="year",
        dry_run=True,
    )
    assert dry.ok, dry.error
    assert _keys(s3_server, prefix) == {}
    (res,) = producer.register(
        [url],
        catalog=s3_server.url(prefix),
        collection="c",
        storage_options=s3_server.storage_options,
        partition="year",
    )
    (local,) = producer.register(
        [url],
        catalog=str(tmp_path / "cat"),
        collection="c",
        storage_options=s3_server.storage_options,
        partition="year",
    )
    assert res.ok and local.ok, (res.error, local.error)
    assert res.href.split(prefix, 1)[1] == local.href.split(str(tmp_path / "cat"), 1)[1]
    assert "2024" in res.href and res.href == dry.href
    assert producer.validate_catalog(s3_server.url(prefix), storage_options=s3_server.storage_options) == []


@pytest.mark.parametrize("pattern", ["folder", "glob"])
def test_a_folder_or_glob_matching_one_s3_product_is_registered(
    s3_server: Any, seeded_s3: tuple[str, str], pattern: str
) -> None:
    prefix, url = seeded_s3
    folder = url.rsplit("/", 1)[0]
    given = folder + "/" if pattern == "folder" else folder + "/*.tif"
    (res,) = producer.register(
        [given], catalog=s3_server.url(prefix), collection="c", storage_options=s3_server.storage_options
    )
    assert res.ok and res.action == "created" and res.source == url, (res.source, res.error)
    assert not _producer_threads()


def test_a_bare_bucket_as_the_product_is_refused_as_a_folder(
    s3_server: Any, seeded_s3: tuple[str, str]
) -> None:
    prefix, _ = seeded_s3
    before = _keys(s3_server, prefix)
    other = s3_server.new_bucket()
    (res,) = producer.register(
        [f"s3://{other}"],
        catalog=s3_server.url(prefix),
        collection="c",
        storage_options=s3_server.storage_options,
        expand=False,
    )
    assert not res.ok and res.error_type == "input", (res.error_type, res.error)
    assert _keys(s3_server, prefix) == before


def test_two_registers_of_large_netcdfs_into_s3_catalogs_at_once(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both changes at once, twice: two threads each register one NetCDF-4
    read by ranges (h5py's lock) into an S3 catalog of its own, each
    extraction beside its catalog's reads (s3fs's one loop for all)."""
    import uuid

    from tests.test_netcdf_ranged import _curved

    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 2048)
    runs = []
    for n in range(2):
        prefix = f"rv38nc-{uuid.uuid4().hex[:8]}"
        path = _curved(tmp_path / f"cube{n}_2024050{n + 1}.nc", 60 + 20 * n)
        runs.append((prefix, _upload(s3_server, path, f"{prefix}-data/{path.name}")))

    def run(n: int) -> Any:
        prefix, url = runs[n]
        (result,) = producer.register(
            [url], catalog=s3_server.url(prefix), collection="c", storage_options=s3_server.storage_options
        )
        return result

    out = _at_once(run, 180)
    for n, (prefix, url) in enumerate(runs):
        res = out[n]
        assert not isinstance(res, BaseException) and res.ok and res.action == "created", res
        assert (
            producer.validate_catalog(s3_server.url(prefix), storage_options=s3_server.storage_options) == []
        )
        expected = create_item(url, ExtractOptions(storage_options=s3_server.storage_options)).to_dict()
        bucket_key = res.href.split(f"s3://{s3_server.bucket}/", 1)[1]
        body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=bucket_key)["Body"].read()
        stored = json.loads(body)
        assert stored["bbox"] == expected["bbox"] and stored["id"] == expected["id"]
    assert not _producer_threads()


def test_products_in_a_versioned_bucket_are_read_without_a_false_change(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A versioned bucket (HEADs answer a VersionId; the object written
    twice, so it has an older version too): a NetCDF-4 read by ranges is
    not "changed while it was read", a GeoTIFF's range reads tied to the
    ETag get the latest version's bytes; both as their local copies give."""
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 1024)
    bucket = s3_server.new_bucket()
    client = s3_server.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    nc = cubes.write_curvilinear(tmp_path / "v2")
    tifs = [_noise_tif(tmp_path / v / "noise_20240501.tif", seed) for seed, v in ((1, "v1"), (2, "v2"))]
    client.put_object(Bucket=bucket, Key=nc.name, Body=b"\x89HDF\r\n\x1a\n an older version")
    client.put_object(Bucket=bucket, Key=nc.name, Body=nc.read_bytes())
    for tif in tifs:
        client.put_object(Bucket=bucket, Key=tif.name, Body=tif.read_bytes())
    assert "VersionId" in client.head_object(Bucket=bucket, Key=nc.name)
    options = ExtractOptions(storage_options=s3_server.storage_options, stats=True)
    local = ExtractOptions(stats=True)
    for path in (nc, tifs[1]):
        remote = create_item(f"s3://{bucket}/{path.name}", options).to_dict()
        here = create_item(str(path), local).to_dict()
        assert remote["bbox"] == here["bbox"]
        assert remote["assets"]["data"].get("bands") == here["assets"]["data"].get("bands")
