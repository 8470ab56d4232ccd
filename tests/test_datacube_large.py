"""Large datacubes read what their item needs, in bounded memory
(producer/extract/datacube.py): a curvilinear grid's lat/lon arrays are
read a block of rows at a time, never held whole. Real files written here
into ``tmp_path``; memory is measured with tracemalloc (numpy reports its
arrays to it), so the bounds are deterministic."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest

import producer.extract.datacube as datacube
from producer.extract import ExtractOptions, create_item
from tests import cubes
from tests.faultproxy import FaultProxy

#: bytes of one float64 array of the 1000 x 1000 grids below
ONE_ARRAY = 1000 * 1000 * 8


def peak_during(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()`` and the peak of memory traced while it ran; the first call
    of a process imports xarray, pandas, netCDF4... (tens of MB traced):
    the caller warms up on a small product first."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _curvilinear(path: Path, lon_of: Callable[..., Any], lat_of: Callable[..., Any], n: int = 1000) -> Path:
    """A NetCDF with 2-D float64 ``lat``/``lon`` (``n`` x ``n``, rows
    written in blocks) and one data variable on them; ``lon_of``/``lat_of``
    give the positions of rows ``r`` (a column vector) and columns ``c``."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", n)
        ds.createDimension("x", n)
        ds.time_coverage_start = "2024-05-01T00:00:00Z"
        lat = ds.createVariable("lat", "f8", ("y", "x"), fill_value=-999.0)
        lat.units = "degrees_north"
        lon = ds.createVariable("lon", "f8", ("y", "x"), fill_value=-999.0)
        lon.units = "degrees_east"
        sst = ds.createVariable("sst", "f4", ("y", "x"))
        sst.coordinates = "lat lon"
        c = np.arange(n, dtype=float)[None, :] / n
        for start in range(0, n, 100):
            r = np.arange(start, start + 100, dtype=float)[:, None] / n
            lat[start : start + 100] = lat_of(r, c) + 0 * c
            lon[start : start + 100] = lon_of(r, c) + 0 * r
            sst[start : start + 100] = 280.0
    return path


def test_a_curvilinear_grid_is_described_without_holding_its_lat_lon_arrays(tmp_path: Path) -> None:
    """The footprint, bbox and extents of a 2-D lat/lon grid used to be
    computed over the whole arrays, decoded to float64 and copied several
    times (~700 MB for a 4000 x 4000 grid): a block of rows at a time now,
    with the same item."""
    path = _curvilinear(
        tmp_path / "curved.nc",
        lambda r, c: -60.0 + 40.0 * c + 5.0 * r**2,
        lambda r, c: 20.0 + 30.0 * r + 3.0 * np.sin(3.0 * c),
    )
    create_item(str(cubes.write_curvilinear(tmp_path / "small")))
    item, peak = peak_during(lambda: create_item(str(path)).to_dict())
    assert peak < 0.75 * ONE_ARRAY, (
        f"peak {peak / 1e6:.1f} MB while describing 2 x {ONE_ARRAY / 1e6:.0f} MB of lat/lon"
    )
    west, south, east, north = item["bbox"]
    assert (west, south) == pytest.approx((-60.0, 20.0), abs=1e-3)
    assert east == pytest.approx(-60.0 + 40.0 * 0.999 + 5.0 * 0.999**2, abs=1e-6)
    dims = item["properties"]["cube:dimensions"]
    assert dims["y"]["extent"] == pytest.approx([20.0, 20.0 + 30.0 * 0.999 + 3.0], abs=1e-3)


def _across_antimeridian(r: Any, c: Any) -> Any:
    lon = 160.0 + 40.0 * c + 2.0 * r
    return (lon + 180.0) % 360.0 - 180.0


def _around_the_pole(r: Any, c: Any) -> tuple[Any, Any]:
    y, x = 2.0 * r - 1.0 + 0.01, 2.0 * c - 1.0 + 0.01
    return np.degrees(np.arctan2(y, x)), 90.0 - 25.0 * np.hypot(x, y)


@pytest.mark.parametrize(
    ("name", "lon_of", "lat_of"),
    [
        ("pacific", _across_antimeridian, lambda r, c: -10.0 + 30.0 * r + 2.0 * np.sin(3.0 * c)),
        ("arctic", lambda r, c: _around_the_pole(r, c)[0], lambda r, c: _around_the_pole(r, c)[1]),
        ("swath", lambda r, c: np.where(r < 0.05, -999.0, 10.0 + 5.0 * c + r), lambda r, c: 40.0 + 5.0 * r),
    ],
)
def test_a_curvilinear_grid_read_a_row_at_a_time_gives_the_item_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, lon_of: Any, lat_of: Any
) -> None:
    """Across the antimeridian (longitudes counted on past 180 in the x
    extent), around a pole, with missing scan lines at the border: the item
    of blocks of one row is the item of one block."""
    path = _curvilinear(tmp_path / f"{name}.nc", lon_of, lat_of, n=100)
    whole = create_item(str(path)).to_dict()
    monkeypatch.setattr(datacube, "_BLOCK_CELLS", 1)
    rows = create_item(str(path)).to_dict()
    assert rows == whole
    if name == "pacific":
        assert whole["bbox"][0] > whole["bbox"][2]
        assert whole["properties"]["cube:dimensions"]["x"]["extent"][1] > 180.0
    if name == "arctic":
        assert whole["bbox"] == [-180.0, pytest.approx(90.0 - 25.0 * 2**0.5, abs=0.5), 180.0, 90.0]
    if name == "swath":
        assert whole["bbox"][1] == pytest.approx(40.0 + 5.0 * 0.05)


def test_an_irregular_grid_is_outlined_without_building_its_mesh(tmp_path: Path) -> None:
    """A grid of irregular 1-D axes (a Gaussian grid's latitudes) was
    outlined through the whole mesh of its cell centres, two float64
    arrays of rows x columns and the masks of them: gigabytes for a fine
    grid whose coordinates are a few kilobytes. Its outline rows and
    columns alone now; the item is the same."""
    rows, cols = 1000, 2000
    path = tmp_path / "gaussian.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("lat", rows)
        ds.createDimension("lon", cols)
        ds.time_coverage_start = "2024-05-01T00:00:00Z"
        lat = ds.createVariable("lat", "f8", ("lat",), fill_value=-999.0)
        lat.units = "degrees_north"
        lat[:] = np.degrees(np.arcsin(np.linspace(-0.99, 0.99, rows)))
        lat[:3] = -999.0  # rows never written: left out of the outline
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = np.linspace(-30.0, 30.0, cols)
        ds.createVariable("t2m", "f4", ("lat", "lon"), zlib=True, chunksizes=(100, 200))
    create_item(str(cubes.write_curvilinear(tmp_path / "small")))
    item, peak = peak_during(lambda: create_item(str(path)).to_dict())
    assert peak < rows * cols * 8 / 4, f"peak {peak / 1e6:.1f} MB for axes of {rows} and {cols} values"
    south = float(np.degrees(np.arcsin(np.linspace(-0.99, 0.99, rows)))[3])
    assert item["bbox"] == pytest.approx([-30.0, south, 30.0, float(np.degrees(np.arcsin(0.99)))])
    assert "proj:transform" not in item["properties"]


def _through(proxy: FaultProxy, options: dict[str, Any]) -> dict[str, Any]:
    """S3 storage options sending every request through ``proxy``."""
    return {**options, "client_kwargs": {**options["client_kwargs"], "endpoint_url": proxy.endpoint_url}}


def _curved_zarr_on_s3(s3_server: Any, tmp_path: Path, n: int, chunks: tuple[int, int]) -> str:
    """``s3://<bucket>/curved.zarr``: 2-D lat/lon of ``n`` x ``n`` cells in
    ``chunks``, a data variable ``sst`` in chunks of 100 x 100; the bucket."""
    import xarray as xr

    r, c = np.arange(n)[:, None] / n, np.arange(n)[None, :] / n
    ds = xr.Dataset(
        {"sst": (("y", "x"), np.zeros((n, n), "f4"))},
        coords={
            "lat": (("y", "x"), 20.0 + 30.0 * r + 0 * c, {"units": "degrees_north"}),
            "lon": (("y", "x"), -60.0 + 40.0 * c + 5.0 * r**2, {"units": "degrees_east"}),
        },
        attrs={"time_coverage_start": "2024-05-01T00:00:00Z"},
    )
    store = tmp_path / "curved.zarr"
    encoding = {"lat": {"chunks": chunks}, "lon": {"chunks": chunks}, "sst": {"chunks": (100, 100)}}
    ds.to_zarr(store, mode="w", zarr_format=2, consolidated=True, encoding=encoding)
    bucket = str(s3_server.new_bucket())
    client = s3_server.client()
    for path in store.rglob("*"):
        if path.is_file():
            client.put_object(
                Bucket=bucket, Key=f"curved.zarr/{path.relative_to(store)}", Body=path.read_bytes()
            )
    return bucket


def test_a_curvilinear_zarr_on_s3_reads_each_coordinate_chunk_once_and_no_data(
    s3_server: Any, tmp_path: Path
) -> None:
    """lat/lon stored as one chunk each, larger than a block of rows: read
    block by block, the chunk was fetched and decompressed again for every
    block (281 s for a 4000 x 4000 pair in one NetCDF-4 chunk). It is read
    once, for the pass over the cells (a band of whole chunks, cut into
    blocks in memory), which picks the outline too; the data variable never."""
    n = 300
    bucket = _curved_zarr_on_s3(s3_server, tmp_path, n, (n, n))
    assert n * n > datacube._BLOCK_CELLS  # more than one block of rows
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(storage_options=_through(proxy, s3_server.storage_options))
        item = create_item(f"s3://{bucket}/curved.zarr", options).to_dict()
        gets = [path for path, _ in proxy.get_ranges]
    assert item["bbox"][0] == pytest.approx(-60.0)
    for name in ("lat", "lon"):
        assert gets.count(f"/{bucket}/curved.zarr/{name}/0.0") == 1, gets
    assert not [p for p in gets if "/sst/" in p], gets


def test_the_outline_of_a_curvilinear_grid_reads_the_chunks_along_its_edges(
    s3_server: Any, tmp_path: Path
) -> None:
    """The outline is taken at 32 rows and columns of the lat/lon arrays;
    read as the whole 32 x 32 lattice of cells, it fetched every chunk of
    arrays stored in small chunks, then the pass over the cells fetched
    them all again. Only the cells along the four edges are read for it."""
    n, side = 200, 20
    bucket = _curved_zarr_on_s3(s3_server, tmp_path, n, (side, side))
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(storage_options=_through(proxy, s3_server.storage_options))
        item = create_item(f"s3://{bucket}/curved.zarr", options).to_dict()
        gets = [path for path, _ in proxy.get_ranges]
    assert item["bbox"][1] == pytest.approx(20.0)
    chunks, edge = (n // side) ** 2, 4 * (n // side) - 4
    for name in ("lat", "lon"):
        fetched = [p for p in gets if p.startswith(f"/{bucket}/curved.zarr/{name}/")]
        assert len(fetched) <= chunks + edge, f"{len(fetched)} GETs of {chunks} chunks of {name}"


def test_statistics_of_a_single_variable_netcdf_are_accumulated_a_block_at_a_time(tmp_path: Path) -> None:
    """``stats`` on a one-variable NetCDF read the variable whole twice (once
    only to count its cells) and converted it to float64: 1.3 GB for 8000 x
    8000 float32 cells. It is read a block of rows at a time now, as a
    GeoTIFF's windows are, with the same accumulator."""
    n = 1000
    path = tmp_path / "ndvi.nc"
    rows = np.arange(n)[:, None] % 97 + np.arange(n)[None, :] % 89
    values = (rows / 200.0).astype("f4")
    values[:, :10] = -9999.0
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 1)
        ds.createDimension("lat", n)
        ds.createDimension("lon", n)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "days since 2024-05-01"
        time[:] = [0.0]
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(60.0, 30.0, n)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = np.linspace(0.0, 30.0, n)
        ndvi = ds.createVariable("ndvi", "f4", ("time", "lat", "lon"), fill_value=np.float32(-9999.0))
        ndvi[0] = values
    create_item(str(cubes.write_curvilinear(tmp_path / "small")))
    item, peak = peak_during(lambda: create_item(str(path), ExtractOptions(stats=True)).to_dict())
    assert peak < values.nbytes, f"peak {peak / 1e6:.1f} MB for {values.nbytes / 1e6:.0f} MB of values"
    valid = values[values != -9999.0].astype("float64")
    stats = item["assets"]["data"]["bands"][0]["statistics"]
    assert stats["minimum"] == valid.min() and stats["maximum"] == valid.max()
    assert stats["mean"] == pytest.approx(valid.mean(), rel=1e-12)
    assert stats["stddev"] == pytest.approx(valid.std(), rel=1e-12)
    assert stats["valid_percent"] == 99.0


def test_a_netcdf_on_s3_with_a_checksum_is_downloaded_once(s3_server: Any, tmp_path: Path) -> None:
    """A NetCDF on an object store is fetched whole to be opened; with the
    checksum option it was then read whole a second time to hash it (twice
    the bytes of the product). The bytes fetched are hashed."""
    import hashlib

    path = cubes.write_curvilinear(tmp_path / "data")
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="curvilinear.nc", Body=path.read_bytes())
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(checksum=True, storage_options=_through(proxy, s3_server.storage_options))
        item = create_item(f"s3://{bucket}/curvilinear.nc", options).to_dict()
        fetched = proxy.get_bytes.get(f"/{bucket}/curvilinear.nc", 0)
    asset = item["assets"]["data"]
    assert asset["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert fetched == path.stat().st_size, f"{fetched} bytes fetched of a {path.stat().st_size}-byte file"


@pytest.mark.parametrize("consolidated", [True, False])
def test_the_zarr_json_of_a_v3_store_on_s3_is_fetched_once(
    s3_server: Any, tmp_path: Path, consolidated: bool
) -> None:
    """A Zarr v3 store's root ``zarr.json`` holds the consolidated metadata
    of every array (57 KB for 50 variables): read once to tell the format,
    then again by xarray to open the store, it was fetched twice. The bytes
    read first open the store (a store without consolidated metadata too)."""
    import xarray as xr

    n = 8
    ds = xr.Dataset(
        {f"v{i:02d}": (("lat", "lon"), np.zeros((n, n), "f4"), {"units": "K"}) for i in range(50)},
        coords={"lat": np.linspace(-10.0, 10.0, n), "lon": np.linspace(20.0, 40.0, n)},
        attrs={"time_coverage_start": "2024-05-01T00:00:00Z"},
    )
    store = tmp_path / "many.zarr"
    ds.to_zarr(store, mode="w", zarr_format=3, consolidated=consolidated)
    bucket = str(s3_server.new_bucket())
    client = s3_server.client()
    for path in store.rglob("*"):
        if path.is_file():
            client.put_object(
                Bucket=bucket, Key=f"many.zarr/{path.relative_to(store)}", Body=path.read_bytes()
            )
    with FaultProxy(s3_server.endpoint_url) as proxy:
        options = ExtractOptions(storage_options=_through(proxy, s3_server.storage_options))
        item = create_item(f"s3://{bucket}/many.zarr", options).to_dict()
        gets = [path for path, _ in proxy.get_ranges]
    assert item["bbox"] == pytest.approx([20.0, -10.0, 40.0, 10.0], abs=2.0)
    assert "v49" in str(item)
    assert gets.count(f"/{bucket}/many.zarr/zarr.json") == 1, gets
