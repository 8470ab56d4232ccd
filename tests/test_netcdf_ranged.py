"""A NetCDF-4 on an object store larger than
:data:`producer.extract.datacube.RANGED_ABOVE` is read by ranges
(h5netcdf through a block-cached file object), never fetched whole: the
item is the one the whole fetch gives, the bytes read are what the item
needs, a failed read is a storage failure naming the product, and an object
overwritten while it is read is caught.

Real NetCDF files (tests/cubes.py, netCDF4), real S3 (moto, the
``s3_server`` fixture) behind :class:`tests.faultproxy.FaultProxy`; the
threshold and the block size are set low with monkeypatch (configuration,
the code under test runs as it is)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest

import producer.extract.datacube as datacube
from producer.errors import InputError, ProducerError, StoreError
from producer.extract import ExtractOptions, create_item
from tests import cubes
from tests.faultproxy import FaultProxy

#: a threshold no test file reaches: the whole fetch
WHOLE = 1 << 40


def _through(proxy: FaultProxy, options: dict[str, Any]) -> dict[str, Any]:
    """S3 storage options sending every request through ``proxy``."""
    return {**options, "client_kwargs": {**options["client_kwargs"], "endpoint_url": proxy.endpoint_url}}


def _put(s3_server: Any, path: Path, key: str | None = None) -> tuple[str, str]:
    """``path`` uploaded to a new bucket: ``(url, /bucket/key)``."""
    bucket = s3_server.new_bucket()
    key = key or path.name
    s3_server.client().put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    return f"s3://{bucket}/{key}", f"/{bucket}/{key}"


def _outcome(url: str, options: ExtractOptions) -> Any:
    """The item (as a dict), or the error it gave (type and message)."""
    try:
        return create_item(url, options).to_dict()
    except ProducerError as exc:
        return (type(exc).__name__, str(exc))


def _both(
    s3_server: Any, path: Path, monkeypatch: pytest.MonkeyPatch, **opts: Any
) -> tuple[Any, Any, list[Any]]:
    """The outcome of ``path`` on S3 fetched whole and read by ranges, and
    the ``Range`` headers of the GETs of the ranged read."""
    url, key = _put(s3_server, path)
    monkeypatch.setattr(datacube, "RANGED_ABOVE", WHOLE)
    whole = _outcome(url, ExtractOptions(storage_options=s3_server.storage_options, **opts))
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(storage_options=_through(proxy, s3_server.storage_options), **opts)
        ranged = _outcome(url, options)
        ranges = [r for p, r in proxy.get_ranges if p == key]
    return whole, ranged, ranges


def _grid_mapping_typo(dirpath: Path) -> Path:
    """A UTM x/y grid whose variable's ``grid_mapping`` names a variable
    the file lacks (xarray drops it; the restore puts it back, to name it)."""
    dirpath.mkdir(parents=True, exist_ok=True)
    return cubes.write_utm_grid_mapping(dirpath / "gm_typo.nc", "crs_utm", time_coverage_start="2024-05-01")


def _attribute_types(dirpath: Path) -> Path:
    """Attributes of every kind netCDF4 and h5netcdf might decode apart:
    NC_CHAR and NC_STRING text, a list of strings, unsigned and small
    integer fill values, arrays (valid_range, flag_values), packing, a
    time axis whose units and calendar are NC_STRING, a text variable."""
    dirpath.mkdir(parents=True, exist_ok=True)
    path = dirpath / "attrs_20240501.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "char title"
        nc.setncattr_string("summary", "string summary é")
        nc.setncattr_string("keywords", ["a", "b c"])
        nc.history_numbers = np.array([1, 2, 3], "i2")
        nc.version = np.float64(2.5)
        nc.createDimension("time", 2)
        nc.createDimension("lat", 5)
        nc.createDimension("lon", 4)
        nc.createDimension("nchar", 6)
        time = nc.createVariable("time", "f8", ("time",))
        time.setncattr_string("units", "hours since 2024-05-01 00:00:00")
        time.setncattr_string("calendar", "proleptic_gregorian")
        time.axis = "T"
        time[:] = [0.0, 6.0]
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(50, 49, 5)
        lon = nc.createVariable("lon", "f8", ("lon",))
        lon.setncattr_string("units", "degrees_east")
        lon[:] = np.linspace(10, 11, 4)
        packed = nc.createVariable("packed", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767))
        packed.scale_factor = np.float32(0.01)
        packed.add_offset = np.float32(273.15)
        packed.valid_range = np.array([-30000, 30000], "i2")
        packed.units = "K"
        packed.long_name = "packed temperature"
        packed[:] = np.zeros((2, 5, 4))
        flags = nc.createVariable("flags", "u1", ("time", "lat", "lon"), fill_value=np.uint8(255))
        flags.flag_values = np.array([0, 1, 2], "u1")
        flags.setncattr_string("flag_meanings", "clear cloud shadow")
        flags[:] = np.ones((2, 5, 4), "u1")
        small = nc.createVariable("small", "i1", ("time", "lat", "lon"), fill_value=np.int8(-1))
        small._Unsigned = "true"
        small[:] = np.ones((2, 5, 4), "i1")
        wide = nc.createVariable("wide", "u8", ("time", "lat", "lon"), fill_value=np.uint64(2**63 + 5))
        wide[:] = np.ones((2, 5, 4), "u8")
        label = nc.createVariable("label", "S1", ("lat", "nchar"))
        label.long_name = "station label"
        label[:] = netCDF4.stringtochar(np.array(["abcdef"] * 5, "S6"))
        names = nc.createVariable("names", str, ("lat",))
        for i in range(5):
            names[i] = f"n{i}"
    return path


def _two_variables(d: Path) -> Path:
    return cubes.write_two_variables(d)


def _many_variables(d: Path) -> Path:
    return cubes.write_many_variables(d)


def _in_group(d: Path) -> Path:
    return cubes.write_data_in_group(d)


def _curvilinear(d: Path) -> Path:
    return cubes.write_curvilinear(d)


def _two_grids(d: Path) -> Path:
    return cubes.write_two_grids(d)


def _calendar(d: Path) -> Path:
    return cubes.write_calendar(d)


@pytest.mark.parametrize(
    "write",
    [
        _two_variables,
        _many_variables,
        _in_group,
        _grid_mapping_typo,
        _curvilinear,
        _two_grids,
        _calendar,
        _attribute_types,
        lambda d: _curved(d / "curved.nc"),
    ],
)
@pytest.mark.parametrize("block", [None, 1024])
def test_a_netcdf4_read_by_ranges_gives_the_item_of_the_whole_fetch(
    s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write: Callable[[Path], Path],
    block: int | None,
) -> None:
    """A regular lat/lon grid with two variables, many variables, data in
    a group (the root-group error lists the groups, through h5netcdf's
    handle), a grid_mapping naming a missing variable (restored from
    h5netcdf's handle to be named), a curvilinear grid, two grids, a
    360-day calendar, attributes of every type: the same item, or the
    same error, as the whole fetch (netCDF4 from memory) gives; in blocks
    of 4 MiB (one block for these files) and of 1 KiB (reads across
    blocks, read ahead, larger than the blocks kept)."""
    (tmp_path / "data").mkdir()
    path = write(tmp_path / "data")
    if block is not None:
        monkeypatch.setattr(datacube, "RANGED_BLOCK", block)
    assert path.read_bytes()[:4] == b"\x89HDF"
    whole, ranged, ranges = _both(s3_server, path, monkeypatch, stats=True)
    assert ranged == whole
    assert ranges and ranges[0] == "bytes=0-7", ranges  # the ranged path ran: its probe first
    if write in (_in_group, _grid_mapping_typo):
        assert isinstance(whole, tuple), whole
        assert ("'/data'" if write is _in_group else "'crs_utm'") in whole[1]
    else:
        assert isinstance(whole, dict), whole
        assert whole["assets"]["data"]["xarray:open_kwargs"] == {"engine": "h5netcdf"}


def test_a_classic_netcdf_above_the_threshold_is_fetched_whole(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Classic NetCDF (CDF magic): its data is contiguous and netCDF4 reads
    it from memory; the probe of its first bytes, then the whole file."""
    path = cubes.write_latlon_no_grid_mapping(tmp_path / "data")
    assert path.read_bytes()[:3] == b"CDF"
    whole, ranged, ranges = _both(s3_server, path, monkeypatch)
    assert ranged == whole and isinstance(whole, dict)
    assert ranges == ["bytes=0-7", None], ranges
    assert "xarray:open_kwargs" not in whole["assets"]["data"]


@pytest.mark.parametrize("seed", range(4))
def test_the_ranged_file_reads_what_the_bytes_hold(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Reads at random places and of random lengths (within a block, across
    blocks, past the end, larger than the blocks kept, in order so that
    blocks are read ahead) give the object's bytes, a block at most a request."""
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 100)
    rng = np.random.default_rng(seed)
    body = rng.integers(0, 256, 10_000 + seed * 37, dtype="u1").tobytes()
    asked: list[list[tuple[int, int]]] = []

    def fetch(ranges: list[tuple[int, int]]) -> list[bytes]:
        asked.append(ranges)
        return [body[start:end] for start, end in ranges]

    raw = datacube._RangedFile(fetch, len(body))
    for i in range(300):
        if i % 3 == 0:  # reading on in order
            start = raw.tell()
        else:
            start = int(rng.integers(0, len(body) + 50))
        length = int(rng.choice([1, 7, 99, 100, 101, 250, 900, 2000]))
        raw.seek(start)
        assert raw.read(length) == body[start : start + length], (start, length)
    raw.seek(-10, 2)
    buffer = bytearray(20)
    assert raw.readinto(buffer) == 10 and bytes(buffer[:10]) == body[-10:]
    for ranges in asked:  # never more than a block a request
        assert all(0 < end - start <= 100 for start, end in ranges), ranges
    assert any(len(ranges) > 1 for ranges in asked)  # some read ahead, or straight through


def test_the_ranged_file_reads_ahead_only_what_is_read_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """A header running into its second block costs that block alone; data
    read in order (a third block after the second) is fetched
    RANGED_AHEAD blocks at a time, in one call (concurrent requests)."""
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 100)
    body = bytes(range(256)) * 40
    asked: list[list[int]] = []

    def fetch(ranges: list[tuple[int, int]]) -> list[bytes]:
        asked.append([start // 100 for start, _ in ranges])
        return [body[start:end] for start, end in ranges]

    raw = datacube._RangedFile(fetch, len(body))
    raw.seek(10)
    raw.read(150)  # blocks 0 and 1: the first miss, nothing to read on from
    raw.seek(5000)
    raw.read(10)  # elsewhere
    raw.seek(180)
    raw.read(30)  # block 1 (kept), block 2: not after the last fetched (50), nothing ahead
    assert asked == [[0, 1], [50], [2]], asked
    for start in range(300, 1500, 50):  # in order from block 3
        raw.seek(start)
        assert raw.read(50) == body[start : start + 50]
    ahead = [blocks for blocks in asked[3:] if len(blocks) > 1]
    assert ahead and all(len(blocks) == 1 + datacube.RANGED_AHEAD for blocks in ahead[:-1]), asked
    assert len(asked) < 3 + 12, asked  # fewer calls than blocks


def _large(path: Path, rows: int = 2000, cols: int = 5000) -> Path:
    """A NetCDF-4 whose data (``rows`` x ``cols`` float32 of noise, in
    chunks, not compressible) dominates: small 1-D lat/lon and time."""
    return cubes.write_noise_t2m(path, rows, cols)


@pytest.fixture(scope="module")
def large_nc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _large(tmp_path_factory.mktemp("large") / "t2m.nc")


def test_a_large_netcdf4_on_s3_is_read_by_ranges_not_downloaded(
    s3_server: Any, large_nc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 40 MB NetCDF-4 whose data the item never reads was downloaded whole
    (and held in memory) for its header and coordinates: a few blocks of it
    now, for the same item."""
    size = large_nc.stat().st_size
    assert size > 40_000_000
    url, key = _put(s3_server, large_nc)
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 16 * 1024 * 1024)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(storage_options=_through(proxy, s3_server.storage_options))
        ranged = create_item(url, options).to_dict()
        fetched = proxy.get_bytes.get(key, 0)
    assert fetched < size / 5, f"{fetched:,} bytes fetched of a {size:,}-byte file"
    monkeypatch.setattr(datacube, "RANGED_ABOVE", WHOLE)
    whole = create_item(url, ExtractOptions(storage_options=s3_server.storage_options)).to_dict()
    assert ranged == whole
    assert ranged["bbox"] == pytest.approx([-30.0, 20.0, 70.0, 60.0], abs=0.05)


_PEAK = """
import json, sys, tracemalloc
import producer.extract.datacube as datacube
from producer.extract import ExtractOptions, create_item

small, url, options, threshold = json.loads(sys.argv[1])
datacube.RANGED_ABOVE = 0
create_item(small, ExtractOptions(storage_options=options))  # imports h5netcdf, h5py... (traced too)
datacube.RANGED_ABOVE = threshold
tracemalloc.start()
create_item(url, ExtractOptions(storage_options=options)).to_dict()
print(tracemalloc.get_traced_memory()[1])
"""


def _peak_of(small: str, url: str, options: dict[str, Any], threshold: int) -> int:
    """Peak Python memory (tracemalloc) of a process describing ``url``
    (the moto server, in this one, is not traced with it)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PEAK), json.dumps([small, url, options, threshold])],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_a_large_netcdf4_on_s3_is_described_in_memory_well_below_its_size(
    s3_server: Any, large_nc: Path
) -> None:
    """Fetched whole, the file was held in memory (its size, at least, while
    the item was built): the block cache holds a few blocks now."""
    size = large_nc.stat().st_size
    url, _ = _put(s3_server, large_nc)
    small, _ = _put(s3_server, cubes.write_two_variables(large_nc.parent / "small"))
    ranged = _peak_of(small, url, s3_server.storage_options, 16 * 1024 * 1024)
    assert ranged < size / 3, f"peak {ranged / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
    whole = _peak_of(small, url, s3_server.storage_options, WHOLE)
    assert whole > size, f"peak {whole / 1e6:.1f} MB fetched whole"  # what the measure would see


def test_a_large_netcdf4_with_a_checksum_is_still_fetched_once_whole(
    s3_server: Any, large_nc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checksum needs every byte: the whole fetch stays (one download
    hashes and opens), not a ranged read and a second download to hash."""
    size = large_nc.stat().st_size
    url, key = _put(s3_server, large_nc)
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 16 * 1024 * 1024)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(checksum=True, storage_options=_through(proxy, s3_server.storage_options))
        item = create_item(url, options).to_dict()
        fetched = proxy.get_bytes.get(key, 0)
    assert fetched == size
    assert (
        item["assets"]["data"]["file:checksum"] == "1220" + hashlib.sha256(large_nc.read_bytes()).hexdigest()
    )


_FAILING = """
import json, sys
from producer.errors import ProducerError
import producer.extract.datacube as datacube
from producer.extract import ExtractOptions, create_item
from tests.faultproxy import FaultProxy

url, endpoint, options, key, skip = json.loads(sys.argv[1])
datacube.RANGED_ABOVE = 0
datacube.RANGED_BLOCK = 1024
with FaultProxy(endpoint) as proxy:
    if skip is None:  # GETs fail once the file is open, while the item is built
        build = datacube._build

        def failing(*args, **kwargs):
            proxy.add("GET", key + "$", "503")
            return build(*args, **kwargs)

        datacube._build = failing
    else:
        proxy.add("GET", key + "$", "503", skip=skip)
    options["client_kwargs"]["endpoint_url"] = proxy.endpoint_url
    try:
        create_item(url, ExtractOptions(storage_options=options))
    except ProducerError as exc:
        gets = proxy.requests.get("GET", 0)
        print(json.dumps([type(exc).__name__, str(exc), gets, sum(r.hits for r in proxy.rules)]))
        sys.exit(3)
print(json.dumps(["no error", "", 0, 0]))
"""


def _curved(path: Path, n: int = 100) -> Path:
    """A NetCDF-4 of 2-D ``n`` x ``n`` lat/lon (read as the item is built,
    not when the file is opened) and a data variable on them."""
    r, c = np.arange(n, dtype=float)[:, None] / n, np.arange(n, dtype=float)[None, :] / n
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", n)
        nc.createDimension("x", n)
        nc.time_coverage_start = "2024-05-01T00:00:00Z"
        lat = nc.createVariable("lat", "f8", ("y", "x"))
        lat.units = "degrees_north"
        lat[:] = 20.0 + 30.0 * r + 0 * c
        lon = nc.createVariable("lon", "f8", ("y", "x"))
        lon.units = "degrees_east"
        lon[:] = -60.0 + 40.0 * c + 5.0 * r**2
        sst = nc.createVariable("sst", "f4", ("y", "x"))
        sst.coordinates = "lat lon"
        sst[:] = 280.0
    return path


@pytest.mark.parametrize("skip", [1, 2, 4, None])
def test_a_503_during_the_ranged_read_is_a_storage_failure_naming_the_product(
    s3_server: Any, tmp_path: Path, skip: int | None
) -> None:
    """GETs answered 503 SlowDown once the probe (and for ``skip`` 2 and 4,
    the first blocks; ``None``: once the file is open, while the item is
    built) went through: h5py reads the file through Python
    callbacks, and the exception raised in one came out as an HDF5 error
    ("not a readable NetCDF file (corrupt...)", never retried) or worse. It
    is the retryable storage failure a whole fetch gives, naming the product;
    the process exits as Python does (run apart: an abort would kill it)."""
    path = _curved(tmp_path / "curved.nc")
    url, key = _put(s3_server, path, "cube_20240501.nc")
    options = {**s3_server.storage_options, "client_kwargs": dict(s3_server.storage_options["client_kwargs"])}
    options["config_kwargs"] = {"retries": {"max_attempts": 1, "mode": "standard"}}
    args = json.dumps([url, s3_server.endpoint_url, options, key, skip])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FAILING), args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr[-3000:])
    kind, message, gets, failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert kind == StoreError.__name__, message
    assert failed and gets > (skip or 0), (gets, failed)  # reads were answered 503
    assert "cube_20240501.nc" in message and "corrupt" not in message, message


def test_an_object_overwritten_while_read_by_ranges_is_a_storage_failure(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten (same size, other bytes) after its first blocks were read,
    the object gave an item of blocks of two files: it is looked at again
    once the item is built, and a change is a storage failure (retried)."""
    import s3fs

    path = cubes.write_curvilinear(tmp_path / "data")
    body = path.read_bytes()
    url, key = _put(s3_server, path, "cube.nc")
    bucket, name = key.strip("/").split("/", 1)
    client = s3_server.client()
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    monkeypatch.setattr(datacube, "RANGED_BLOCK", 1024)
    assert len(body) > 3 * 1024
    original = s3fs.S3FileSystem._cat_file
    calls: list[Any] = []

    async def overwritten_after_two(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("start"))
        if len(calls) == 3:  # the probe, the first block: the writer rewrites the file
            client.put_object(Bucket=bucket, Key=name, Body=body[:-1] + bytes([body[-1] ^ 1]))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", overwritten_after_two)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached file system made its sync methods before
    with pytest.raises(StoreError, match="changed while it was read") as caught:
        create_item(url, ExtractOptions(storage_options=s3_server.storage_options))
    assert "cube.nc" in str(caught.value)
    assert len(calls) > 3
    # unchanged, the same reads give the item
    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", original)
    s3fs.S3FileSystem.clear_instance_cache()
    assert create_item(url, ExtractOptions(storage_options=s3_server.storage_options)).bbox


def test_a_missing_object_read_by_ranges_is_not_found(
    s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
    bucket = s3_server.new_bucket()
    with pytest.raises(InputError, match="not found"):
        create_item(f"s3://{bucket}/nothing.nc", ExtractOptions(storage_options=s3_server.storage_options))


def test_a_truncated_netcdf4_read_by_ranges_is_refused_as_truncated(
    s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HDF5 checks its own end of file (the completeness check reads only
    classic headers): a NetCDF-4 cut short is the input error of the whole
    fetch, here saying it is truncated; nothing read beyond the end."""
    body = cubes.write_curvilinear(tmp_path / "data").read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(body[: len(body) // 2])
    whole, ranged, _ = _both(s3_server, cut, monkeypatch)
    assert whole[0] == ranged[0] == "InputError", (whole, ranged)
    assert "not a readable NetCDF file" in whole[1] and "not a readable NetCDF file" in ranged[1]
    assert "truncated file" in ranged[1] and "cut.nc" in ranged[1], ranged


def test_a_netcdf4_on_a_server_that_ignores_range_is_described_from_its_one_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m http.server`` answers the whole file to a ``Range``
    request: the probe of the first bytes brought it all, and it is opened
    from those bytes (one GET), as before."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    www = tmp_path / "www"
    path = cubes.write_two_variables(www)
    gets: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            gets.append(self.path)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    try:
        monkeypatch.setattr(datacube, "RANGED_ABOVE", WHOLE)
        whole = create_item(url).to_dict()
        gets.clear()
        monkeypatch.setattr(datacube, "RANGED_ABOVE", 0)
        ranged = create_item(url).to_dict()
    finally:
        server.shutdown()
        server.server_close()
    assert ranged == whole
    assert gets == [f"/{path.name}"], gets
