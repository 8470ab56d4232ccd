"""Fixture factory: tiny REAL rasters, each named after its edge case.

Every ``write_*`` function writes one file into ``dirpath`` (created if
missing) with rasterio and returns its path; nothing else is touched. File
names carry a date wherever the product should get its datetime from the name,
so ``create_item(path)`` works with default options for every *valid* fixture
(``tagsdate.tif`` and ``sample.nc`` get theirs from tags; ``nodate.tif`` has
none on purpose).

    from tests.rasters import write_utm, write_all
    path = write_utm(tmp_path)             # .../utm_20240513.tif
    paths = write_all(tmp_path)            # {"utm": Path, "cog": Path, ...}

The constants below are the facts tests assert against.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.rpc import RPC
from rasterio.transform import from_origin

SIZE = 64  # pixels per side of every small fixture

UTM_ORIGIN = (500_000.0, 5_000_000.0)  # EPSG:32633, 10 m pixels
UTM_RES = 10.0
POLAR_ORIGIN = (-320_000.0, 320_000.0)  # EPSG:3413, 10 km pixels: grid holds the North Pole
POLAR_RES = 10_000.0
WGS84_ORIGIN = (10.0, 50.0)  # EPSG:4326, 0.01 degree pixels
WGS84_RES = 0.01
DATELINE_ORIGIN = (780_000.0, 8_100_000.0)  # EPSG:32760 (UTM 60S), 1 km: spans 180°
DATELINE_RES = 1_000.0
ROTATION_DEG = 30.0
CUSTOM_PROJ = "+proj=ortho +lat_0=45 +lon_0=10 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
CUSTOM_RES = 1_000.0
NODATA_VALUE = -9999
NODATA_SCALE = 0.01
NODATA_OFFSET = -5.0
NODATA_UNIT = "degC"
NODATA_MASKED_ROWS = 16  # first rows of nodata.tif hold the nodata value
TAGS_DATETIME = "2023:07:01 12:30:00"
NETCDF_COVERAGE_START = "2024-01-15T06:00:00Z"
MULTIBAND_DESCRIPTIONS = ("Red channel", "Green channel", "Blue channel")
GCPS = (  # (row, col, lon, lat): a 64x64 image over 20..21 E, 40..41 N
    (0.0, 0.0, 20.0, 41.0),
    (0.0, 64.0, 21.0, 41.0),
    (64.0, 0.0, 20.0, 40.0),
    (64.0, 64.0, 21.0, 40.0),
)
DATELINE_GCPS = (  # a 64x64 image over 179.5 E..179.5 W, 40..41 N: its longitudes jump at 180
    (0.0, 0.0, 179.5, 41.0),
    (0.0, 64.0, -179.5, 41.0),
    (64.0, 0.0, 179.5, 40.0),
    (64.0, 64.0, -179.5, 40.0),
)


def _dir(dirpath: str | os.PathLike[str]) -> Path:
    path = Path(dirpath)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ramp(dtype: str = "uint8", count: int = 1) -> np.ndarray:
    """Deterministic, non-constant pixels (so statistics are meaningful)."""
    rows, cols = np.indices((SIZE, SIZE))
    band = ((rows * SIZE + cols) % 251).astype(dtype)
    return np.stack([band + i for i in range(count)]).astype(dtype)


def _write(
    path: Path,
    data: np.ndarray,
    *,
    crs: CRS | str | None,
    transform: Affine | None,
    driver: str = "GTiff",
    **profile: object,
) -> Path:
    count, height, width = data.shape
    kwargs: dict[str, object] = dict(
        driver=driver, width=width, height=height, count=count, dtype=str(data.dtype), **profile
    )
    if crs is not None:
        kwargs["crs"] = crs
    if transform is not None:
        kwargs["transform"] = transform
    with rasterio.open(path, "w", **kwargs) as dst:
        dst.write(data)
    return path


def write_utm(dirpath: str | os.PathLike[str]) -> Path:
    """``utm_20240513.tif``: EPSG:32633, north-up, 10 m, uint8."""
    return _write(
        _dir(dirpath) / "utm_20240513.tif",
        _ramp(),
        crs="EPSG:32633",
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
    )


def write_polar(dirpath: str | os.PathLike[str]) -> Path:
    """``polar_3413_20240201.tif``: NSIDC north polar stereographic, grid contains the pole."""
    return _write(
        _dir(dirpath) / "polar_3413_20240201.tif",
        _ramp("uint16"),
        crs="EPSG:3413",
        transform=from_origin(*POLAR_ORIGIN, POLAR_RES, POLAR_RES),
    )


def write_wgs84(dirpath: str | os.PathLike[str]) -> Path:
    """``wgs84_20240301.tif``: EPSG:4326, 0.01° pixels, float32."""
    return _write(
        _dir(dirpath) / "wgs84_20240301.tif",
        _ramp("float32"),
        crs="EPSG:4326",
        transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
    )


def rotated_transform() -> Affine:
    """The geotransform of ``rotated.tif``: UTM origin, rotated by 30°, 10 m pixels."""
    return Affine.translation(*UTM_ORIGIN) @ Affine.rotation(ROTATION_DEG) @ Affine.scale(UTM_RES, -UTM_RES)


def write_rotated(dirpath: str | os.PathLike[str]) -> Path:
    """``rotated_20240401.tif``: EPSG:32633 with a rotated (non north-up) geotransform."""
    return _write(
        _dir(dirpath) / "rotated_20240401.tif",
        _ramp(),
        crs="EPSG:32633",
        transform=rotated_transform(),
    )


def write_dateline(dirpath: str | os.PathLike[str]) -> Path:
    """``dateline_20240601.tif``: UTM 60S near Fiji, crosses the antimeridian."""
    return _write(
        _dir(dirpath) / "dateline_20240601.tif",
        _ramp(),
        crs="EPSG:32760",
        transform=from_origin(*DATELINE_ORIGIN, DATELINE_RES, DATELINE_RES),
    )


def write_nocrs(dirpath: str | os.PathLike[str]) -> Path:
    """``nocrs_20240513.tif``: a geotransform but no CRS and no GCPs."""
    return _write(
        _dir(dirpath) / "nocrs_20240513.tif",
        _ramp(),
        crs=None,
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
    )


#: a local (engineering) CRS: metres on a plane tied to no place on Earth (a lab, a site grid)
ENGINEERING_WKT = 'LOCAL_CS["site grid",LOCAL_DATUM["x",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'


def write_engineering_crs(dirpath: str | os.PathLike[str]) -> Path:
    """``site_grid_20240701.tif``: a geotransform in a local (engineering) CRS
    (:data:`ENGINEERING_WKT`), which has no relation to WGS84. Not in :data:`WRITERS`."""
    return _write(
        _dir(dirpath) / "site_grid_20240701.tif",
        _ramp(),
        crs=CRS.from_wkt(ENGINEERING_WKT),
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
    )


def write_mars(dirpath: str | os.PathLike[str]) -> Path:
    """``mars_20240701.tif``: a grid in a CRS of Mars (``IAU_2015:49900``), which
    no transformation relates to WGS84. Not in :data:`WRITERS`."""
    return _write(
        _dir(dirpath) / "mars_20240701.tif",
        _ramp(),
        crs=CRS.from_user_input("IAU_2015:49900"),
        transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
    )


def write_custom_crs(dirpath: str | os.PathLike[str]) -> Path:
    """``custom_crs_20240701.tif``: orthographic CRS from a PROJ string, no authority code."""
    return _write(
        _dir(dirpath) / "custom_crs_20240701.tif",
        _ramp(),
        crs=CRS.from_proj4(CUSTOM_PROJ),
        transform=from_origin(0.0, 0.0, CUSTOM_RES, CUSTOM_RES),
    )


def write_multiband(dirpath: str | os.PathLike[str]) -> Path:
    """``multiband_20240801.tif``: 3 uint8 bands, RGB colour interpretation, descriptions."""
    path = _dir(dirpath) / "multiband_20240801.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=3,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
        photometric="RGB",
    ) as dst:
        dst.write(_ramp(count=3))
        dst.colorinterp = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        for index, text in enumerate(MULTIBAND_DESCRIPTIONS, start=1):
            dst.set_band_description(index, text)
    return path


def write_nodata(dirpath: str | os.PathLike[str]) -> Path:
    """``nodata_20240901.tif``: int16 with nodata, scale/offset and a unit.

    The first :data:`NODATA_MASKED_ROWS` rows hold the nodata value.
    """
    data = _ramp("int16")
    data[:, :NODATA_MASKED_ROWS, :] = NODATA_VALUE
    path = _dir(dirpath) / "nodata_20240901.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=1,
        dtype="int16",
        crs="EPSG:32633",
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
        nodata=NODATA_VALUE,
    ) as dst:
        dst.write(data)
        dst.scales = (NODATA_SCALE,)
        dst.offsets = (NODATA_OFFSET,)
        dst.units = (NODATA_UNIT,)
    return path


def write_nan_nodata(dirpath: str | os.PathLike[str]) -> Path:
    """``nan_nodata_20240902.tif``: float32 whose nodata is NaN (half the pixels NaN)."""
    data = _ramp("float32")
    data[:, :, : SIZE // 2] = np.nan
    return _write(
        _dir(dirpath) / "nan_nodata_20240902.tif",
        data,
        crs="EPSG:4326",
        transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
        nodata=float("nan"),
    )


def write_cog(dirpath: str | os.PathLike[str]) -> Path:
    """``cog_20240105.tif``: written by GDAL's COG driver (``LAYOUT=COG``)."""
    return _write(
        _dir(dirpath) / "cog_20240105.tif",
        _ramp(),
        crs="EPSG:32633",
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
        driver="COG",
    )


def dated_cogs(directory: str | os.PathLike[str], n: int) -> list[str]:
    """``n`` copies of one tiny COG named cog_2024MMDD_<i>.tif (distinct ids and dates)."""
    directory = _dir(directory)
    one = write_cog(directory / "src")
    out = []
    for i in range(n):
        path = directory / f"cog_2024{1 + i % 12:02d}{1 + i % 28:02d}_{i:03d}.tif"
        shutil.copyfile(one, path)
        out.append(str(path))
    return out


def write_overviews(dirpath: str | os.PathLike[str]) -> Path:
    """``overviews_20240513.tif``: 512x512 uint8 noise with nearest overviews x2 and x4.

    Statistics computed from the x2 overview differ from full-resolution ones.
    """
    rng = np.random.default_rng(42)
    data = rng.integers(0, 256, size=(1, 512, 512), dtype="uint8")
    path = _dir(dirpath) / "overviews_20240513.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=512,
        height=512,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(*UTM_ORIGIN, UTM_RES, UTM_RES),
        tiled=True,
        blockxsize=128,
        blockysize=128,
        compress="deflate",
    ) as dst:
        dst.write(data)
        dst.build_overviews([2, 4], Resampling.nearest)
    return path


def write_corrupt(dirpath: str | os.PathLike[str]) -> Path:
    """``corrupt.tif``: the first 100 bytes of a valid GeoTIFF (its IFD is cut off)."""
    directory = _dir(dirpath)
    whole = write_utm(directory / ".corrupt-source")
    path = directory / "corrupt.tif"
    path.write_bytes(whole.read_bytes()[:100])
    whole.unlink()
    whole.parent.rmdir()
    return path


def write_truncated(dirpath: str | os.PathLike[str]) -> Path:
    """``truncated_20240107.tif``: a COG cut off halfway through its pixel data.

    Header and IFDs are intact, so it opens and its metadata reads; only
    the block offsets in the header tell that the data ends past the file.
    """
    directory = _dir(dirpath)
    whole = write_cog(directory / ".truncated-source")
    data = whole.read_bytes()
    path = directory / "truncated_20240107.tif"
    path.write_bytes(data[: len(data) - len(data) // 4])
    whole.unlink()
    whole.parent.rmdir()
    return path


def write_empty(dirpath: str | os.PathLike[str]) -> Path:
    """``empty.tif``: zero bytes."""
    path = _dir(dirpath) / "empty.tif"
    path.write_bytes(b"")
    return path


def write_notraster(dirpath: str | os.PathLike[str]) -> Path:
    """``notraster.tif``: a text file with a raster's name."""
    path = _dir(dirpath) / "notraster.tif"
    path.write_text("this is not a raster, just some text\n")
    return path


def write_tagsdate(dirpath: str | os.PathLike[str]) -> Path:
    """``tagsdate.tif``: no date in the name; ``TIFFTAG_DATETIME`` = :data:`TAGS_DATETIME`."""
    path = _dir(dirpath) / "tagsdate.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
    ) as dst:
        dst.write(_ramp())
        dst.update_tags(TIFFTAG_DATETIME=TAGS_DATETIME)
    return path


def write_nodate(dirpath: str | os.PathLike[str]) -> Path:
    """``nodate.tif``: georeferenced, but no date in its name or tags."""
    return _write(
        _dir(dirpath) / "nodate.tif",
        _ramp(),
        crs="EPSG:4326",
        transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
    )


def write_range(dirpath: str | os.PathLike[str]) -> Path:
    """``monthly_20240101_20240131.tif``: two dates in the name → a datetime range."""
    return _write(
        _dir(dirpath) / "monthly_20240101_20240131.tif",
        _ramp(),
        crs="EPSG:4326",
        transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
    )


def write_gcps(
    dirpath: str | os.PathLike[str],
    points: tuple[tuple[float, float, float, float], ...] = GCPS,
    name: str = "gcps_20241001.tif",
) -> Path:
    """``gcps_20241001.tif``: no geotransform, four GCPs in EPSG:4326 (see :data:`GCPS`;
    ``points``, e.g. :data:`DATELINE_GCPS`, and ``name`` for others)."""
    path = _dir(dirpath) / name
    gcps = [GroundControlPoint(row=r, col=c, x=x, y=y, z=0.0) for r, c, x, y in points]
    with warnings.catch_warnings():  # no geotransform on purpose
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint8") as dst:
            dst.write(_ramp())
            dst.gcps = (gcps, CRS.from_epsg(4326))
    return path


def write_rpcs(dirpath: str | os.PathLike[str]) -> Path:
    """``rpcs_20241001.tif``: a sensor image located by RPCs only (no geotransform,
    no GCPs): an unorthorectified satellite scene. Not in :data:`WRITERS`."""
    rpcs = RPC(
        height_off=0.0,
        height_scale=500.0,
        lat_off=40.5,
        lat_scale=0.5,
        line_den_coeff=[1.0] + [0.0] * 19,
        line_num_coeff=[0.0, 0.0, -1.0] + [0.0] * 17,
        line_off=32.0,
        line_scale=32.0,
        long_off=20.5,
        long_scale=0.5,
        samp_den_coeff=[1.0] + [0.0] * 19,
        samp_num_coeff=[0.0, 1.0] + [0.0] * 18,
        samp_off=32.0,
        samp_scale=32.0,
    )
    path = _dir(dirpath) / "rpcs_20241001.tif"
    with warnings.catch_warnings():  # no geotransform on purpose
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=1, dtype="uint8") as dst:
            dst.write(_ramp())
            dst.rpcs = rpcs
    return path


def write_gdal_type(dirpath: str | os.PathLike[str], gdal_type: str, nodata: int | float, name: str) -> Path:
    """``name``: a 2x2 EPSG:4326 GeoTIFF of GDAL data type ``gdal_type`` (``Int64``,
    ``CInt32``...) whose nodata is ``nodata`` exactly, as GDAL writes it
    (rasterio's writer passes a 64-bit nodata through a double, which loses
    its digits, and writes no ``CInt32`` band)."""
    vrt = (
        '<VRTDataset rasterXSize="2" rasterYSize="2"><SRS>EPSG:4326</SRS>'
        "<GeoTransform>10,1,0,50,0,-1</GeoTransform>"
        f'<VRTRasterBand dataType="{gdal_type}" band="1"><NoDataValue>{nodata}</NoDataValue>'
        "</VRTRasterBand></VRTDataset>"
    )
    path = _dir(dirpath) / name
    with MemoryFile(vrt.encode(), ext=".vrt") as memfile, memfile.open() as src:
        rasterio.shutil.copy(src, path, driver="GTiff")
    return path


def write_64bit_nodata(dirpath: str | os.PathLike[str], dtype: str, nodata: int) -> Path:
    """``<dtype>_nodata_20240101.tif``: a 2x2 ``int64``/``uint64`` EPSG:4326 GeoTIFF
    whose nodata is the integer ``nodata`` exactly (:func:`write_gdal_type`)."""
    gdal_type = {"int64": "Int64", "uint64": "UInt64"}[dtype]
    return write_gdal_type(dirpath, gdal_type, nodata, f"{dtype}_nodata_20240101.tif")


def _netcdf_copy(path: Path, data: np.ndarray, tags: dict[str, str], band_tags: dict[str, str]) -> Path:
    """GDAL's netCDF driver only supports CreateCopy: build in memory, then copy."""
    count, height, width = data.shape
    with MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=width,
            height=height,
            count=count,
            dtype=str(data.dtype),
            crs="EPSG:4326",
            transform=from_origin(*WGS84_ORIGIN, WGS84_RES, WGS84_RES),
            nodata=-9999.0,
        ) as dst:
            dst.write(data)
            if tags:
                dst.update_tags(**tags)
            for band in range(1, count + 1):
                if band_tags:
                    dst.update_tags(band, **band_tags)
                dst.units = tuple(band_tags.get("units", "") for _ in range(count))
        with memfile.open() as src:
            rasterio.shutil.copy(src, path, driver="netCDF")
    return path


def write_netcdf(dirpath: str | os.PathLike[str]) -> Path:
    """``sample.nc``: one float32 variable (EPSG:4326), unit K; date only in the
    ``time_coverage_start`` global attribute (:data:`NETCDF_COVERAGE_START`)."""
    return _netcdf_copy(
        _dir(dirpath) / "sample.nc",
        _ramp("float32"),
        {"time_coverage_start": NETCDF_COVERAGE_START},
        {"units": "K", "long_name": "air temperature"},
    )


def write_netcdf_multivar(dirpath: str | os.PathLike[str]) -> Path:
    """``multivar_20240120.nc``: two variables (Band1, Band2) → GDAL subdatasets."""
    return _netcdf_copy(_dir(dirpath) / "multivar_20240120.nc", _ramp("float32", count=2), {}, {})


#: fixture key → writer, in a stable order
WRITERS: dict[str, Callable[[str | os.PathLike[str]], Path]] = {
    "utm": write_utm,
    "polar": write_polar,
    "wgs84": write_wgs84,
    "rotated": write_rotated,
    "dateline": write_dateline,
    "nocrs": write_nocrs,
    "custom_crs": write_custom_crs,
    "multiband": write_multiband,
    "nodata": write_nodata,
    "nan_nodata": write_nan_nodata,
    "cog": write_cog,
    "overviews": write_overviews,
    "corrupt": write_corrupt,
    "truncated": write_truncated,
    "empty": write_empty,
    "notraster": write_notraster,
    "tagsdate": write_tagsdate,
    "nodate": write_nodate,
    "range": write_range,
    "gcps": write_gcps,
    "netcdf": write_netcdf,
    "netcdf_multivar": write_netcdf_multivar,
}
#: fixtures for which ``create_item(path)`` must succeed with default options
VALID = (
    "utm", "polar", "wgs84", "rotated", "dateline", "custom_crs", "multiband", "nodata",
    "nan_nodata", "cog", "overviews", "tagsdate", "range", "gcps", "netcdf", "netcdf_multivar",
)  # fmt: skip
#: fixtures that must be rejected, and the error class name
INVALID = {
    "nocrs": "NoGeoreferenceError",
    "corrupt": "InputError",
    "truncated": "InputError",
    "empty": "InputError",
    "notraster": "InputError",
    "nodate": "NoDatetimeError",
}


def write_all(dirpath: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every fixture into ``dirpath``; returns ``{key: path}`` (keys of :data:`WRITERS`)."""
    return {key: writer(dirpath) for key, writer in WRITERS.items()}


def write_tile(
    folder: str | os.PathLike[str], name: str, lon: float, lat: float, *, size: int = 16, pixel: float = 0.01
) -> Path:
    """A tiny ``size`` x ``size`` EPSG:4326 GeoTIFF whose top-left corner is at
    (lon, lat), ``pixel`` degrees per pixel; its date comes from ``name``
    (e.g. ``x_20240101.tif``). Creates ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(lon, lat, pixel, pixel),
    ) as dst:
        dst.write((np.arange(size * size) % 256).astype("uint8").reshape(1, size, size))
    return path
