"""Per-band metadata: the STAC 1.1 ``bands`` array of the data asset.

Common band fields (STAC 1.1 core): ``name``, ``description``, ``data_type``,
``nodata``, ``unit``, ``statistics``. Raster extension v2 fields:
``raster:scale``, ``raster:offset``, ``raster:spatial_resolution``,
``raster:bits_per_sample``. EO extension v2: ``eo:common_name`` under the rule
in :func:`common_names`.

Everything reads header metadata of an open dataset, except
:func:`band_statistics`, which reads pixels (decimated through overviews when
the file has them). Nothing is written or mutated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import numpy as np
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.io import MemoryFile
from rasterio.windows import Window

#: rasterio/numpy dtype name → STAC ``data_type``
DATA_TYPES: dict[str, str] = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "float16": "float16",
    "float32": "float32",
    "float64": "float64",
    "complex_int16": "cint16",
    "complex_int32": "cint32",
    "complex64": "cfloat32",
    "complex128": "cfloat64",
    "complex": "cfloat64",
}
#: GDAL ≥ 3.10 spectral colour interpretations that name a band's spectral range
_SPECTRAL_INTERP: dict[str, str] = {
    "pan": "pan",
    "coastal": "coastal",
    "rededge": "rededge",
    "nir": "nir",
    "lwir": "lwir",
}
_RGB = ("red", "green", "blue")
#: the dtypes rasterio does not describe exactly: a nodata a double cannot always
#: hold (64-bit integers), a GDAL type it names after another (CInt32 as complex64)
_INEXACT = ("int64", "uint64", "complex64")
#: the long_name GDAL's netCDF driver invents for unnamed bands: not a description
_GDAL_PLACEHOLDER = re.compile(r"^GDAL Band Number \d+$")
#: a statistics read is decimated to the coarsest overview whose long side is at least this
STATS_MIN_SIZE = 256
#: full-resolution statistics are accumulated over windows of about this many pixels
STATS_WINDOW_PIXELS = 1 << 22
#: mean Earth radius (m), for the approximate resolution of geographic grids
_EARTH_RADIUS_M = 6_371_008.8


def data_type(dtype: str) -> str:
    """STAC ``data_type`` for a rasterio dtype name (``"other"`` if unknown)."""
    return DATA_TYPES.get(str(dtype), "other")


def _bits(dtype: str) -> int:
    try:
        return np.dtype(dtype).itemsize * 8
    except TypeError:  # rasterio-only names such as complex_int16
        return 0


def nodata_value(value: float | None, dtype: str) -> float | int | str | None:
    """STAC ``nodata``: NaN/±inf as ``"nan"``/``"inf"``/``"-inf"``; ints for integer
    bands (an ``int`` given is kept exact: a double cannot hold every 64-bit one)."""
    if value is None:
        return None
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and data_type(dtype).startswith(("int", "uint"))
    ):
        return value
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if data_type(dtype).startswith(("int", "uint")) and value.is_integer():
        return int(value)
    return value


def common_names(colorinterp: tuple[ColorInterp, ...]) -> list[str | None]:
    """``eo:common_name`` per band, or ``None`` where it cannot be justified.

    Rule: a colour interpretation is only a *display* hint, so it names the
    spectral band only when it says so unambiguously:

    - GDAL ≥ 3.10 spectral interpretations ``pan``, ``coastal``, ``rededge``,
      ``nir``, ``lwir`` map to the common name of the same spelling;
    - ``red``/``green``/``blue`` map to ``red``/``green``/``blue`` only when each
      of the three occurs exactly once (an RGB(A) image: TIFF photometric RGB
      declares the samples are red, green and blue light);
    - everything else (gray, undefined, palette, alpha, HSL, CMYK, YCbCr, the
      ambiguous swir/mwir/tir/other_ir, SAR) gives none.
    """
    names = [getattr(ci, "name", str(ci)) for ci in colorinterp]
    rgb_image = all(names.count(colour) == 1 for colour in _RGB)
    result: list[str | None] = []
    for name in names:
        if name in _SPECTRAL_INTERP:
            result.append(_SPECTRAL_INTERP[name])
        elif name in _RGB and rgb_image:
            result.append(name)
        else:
            result.append(None)
    return result


def spatial_resolution(crs: CRS | None, transform: Affine, bounds: list[float] | None = None) -> float | None:
    """Mean pixel size in metres (``raster:spatial_resolution``), or ``None``.

    Pixel sizes are the lengths of the geotransform's column and row vectors
    (right for rotated grids). Projected CRSs are converted with their linear
    unit factor; geographic CRSs approximately, on a sphere at the latitude of
    the grid centre (``bounds`` = native ``[minx, miny, maxx, maxy]``).
    """
    if crs is None:
        return None
    size_x = math.hypot(transform.a, transform.d)
    size_y = math.hypot(transform.b, transform.e)
    if not (size_x > 0 and size_y > 0 and math.isfinite(size_x) and math.isfinite(size_y)):
        return None
    try:
        if crs.is_geographic:
            _, radians_per_unit = crs.units_factor
            lat = 0.0 if bounds is None else (bounds[1] + bounds[3]) / 2.0
            lat = max(-90.0, min(90.0, lat * math.degrees(radians_per_unit)))
            metres_x = size_x * radians_per_unit * _EARTH_RADIUS_M * math.cos(math.radians(lat))
            metres_y = size_y * radians_per_unit * _EARTH_RADIUS_M
        else:
            _, metres_per_unit = crs.linear_units_factor
            metres_x, metres_y = size_x * metres_per_unit, size_y * metres_per_unit
    except Exception:  # CRS without readable units (rasterio CRSError and GDAL errors)
        return None
    value = (metres_x + metres_y) / 2.0
    return float(value) if math.isfinite(value) and value > 0 else None


@dataclass
class _Accumulator:
    """Streaming min/max/mean/variance (Chan et al. pairwise combination)."""

    count: int = 0
    total: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, block: np.ma.MaskedArray) -> None:
        self.total += block.size
        values = np.ma.masked_invalid(block).compressed().astype("float64")
        n = values.size
        if n == 0:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        delta = mean - self.mean
        combined = self.count + n
        self.mean += delta * n / combined
        self.m2 += m2 + delta * delta * self.count * n / combined
        self.count = combined
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def result(self) -> dict[str, float]:
        percent = 100.0 * self.count / self.total if self.total else 0.0
        if self.count == 0:
            return {"valid_percent": 0.0}
        return {
            "minimum": self.minimum,
            "maximum": self.maximum,
            "mean": self.mean,
            "stddev": math.sqrt(self.m2 / self.count),
            "valid_percent": percent,
        }


def stats_shape(src: Any, bidx: int = 1) -> tuple[int, int] | None:
    """Decimated ``(rows, cols)`` to read statistics at, or ``None`` for full resolution.

    With overviews: the coarsest overview level whose long side is still at least
    :data:`STATS_MIN_SIZE` pixels (GDAL serves the read from that overview).
    Without overviews, or when every overview is smaller: full resolution.
    """
    factors = sorted(src.overviews(bidx) or [])
    longest = max(src.width, src.height)
    usable = [f for f in factors if longest / f >= STATS_MIN_SIZE]
    if not usable:
        return None
    factor = usable[-1]
    return (max(1, math.ceil(src.height / factor)), max(1, math.ceil(src.width / factor)))


def _windows(width: int, height: int) -> Iterator[Window]:
    rows = max(1, STATS_WINDOW_PIXELS // max(1, width))
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


def band_statistics(src: Any, bidx: int) -> dict[str, float]:
    """``statistics`` of band ``bidx``: minimum, maximum, mean, stddev, valid_percent.

    Reads pixels: once at the decimated shape of :func:`stats_shape` when the
    file has overviews, else full resolution in row windows (bounded memory).
    Pixels masked by nodata, the internal mask or alpha, and NaN/inf, are not
    valid. Values are raw pixel values (scale/offset not applied); stddev is the
    population standard deviation; ``valid_percent`` is measured at the read
    resolution.
    """
    acc = _Accumulator()
    shape = stats_shape(src, bidx)
    if shape is not None:
        acc.add(src.read(bidx, out_shape=shape, masked=True, resampling=Resampling.nearest))
    else:
        for window in _windows(src.width, src.height):
            acc.add(src.read(bidx, window=window, masked=True))
    return acc.result()


def _band_name(src: Any, bidx: int) -> str | None:
    description = (src.descriptions[bidx - 1] or "").strip()
    if description:
        return description
    variable = (src.tags(bidx).get("NETCDF_VARNAME") or "").strip()
    return variable or None


def band_names(src: Any) -> list[str]:
    """``name`` per band: the band description, else the NetCDF variable name, else
    ``b1``, ``b2``...; a name that would repeat another falls back to ``bN``."""
    proposed = [_band_name(src, i) for i in src.indexes]
    names = []
    for i, name in zip(src.indexes, proposed):
        names.append(name if name and proposed.count(name) == 1 else f"b{i}")
    return names


def _gdal_bands(src: Any) -> dict[int, tuple[str, int | None]]:
    """``{band index: (GDAL data type, exact integer nodata or None)}``, for the
    bands rasterio does not describe exactly.

    rasterio reads nodata through a double, which cannot hold every 64-bit
    integer: ``2**64 - 1`` (the usual ``uint64`` nodata) comes back as none
    at all, ``2**53 + 1`` as ``2**53``; and it calls a ``CInt32`` band
    ``complex64``, as it does a ``CFloat32`` one. GDAL's VRT description of
    the dataset (metadata only, no pixel is read) spells each band's type
    and nodata exactly. ``{}`` when that description cannot be made
    (rasterio's reading is used then).
    """
    try:
        with MemoryFile(ext=".vrt") as memfile:
            rasterio.shutil.copy(src, memfile.name, driver="VRT")
            root = ElementTree.fromstring(memfile.read())
    except Exception:  # rasterio/GDAL errors, unparsable XML: keep what rasterio says
        return {}
    found: dict[int, tuple[str, int | None]] = {}
    for band in root.iter("VRTRasterBand"):
        text = (band.findtext("NoDataValue") or "").strip()
        gdal_type = band.get("dataType") or ""
        exact = int(text) if gdal_type in ("Int64", "UInt64") and re.fullmatch(r"[+-]?\d+", text) else None
        found[int(band.get("band") or 0)] = (gdal_type, exact)
    return found


def get_bands_info(
    src: Any,
    *,
    stats: bool = False,
    resolution: float | None = None,
) -> list[dict[str, Any]]:
    """The ``bands`` array of the data asset, one dict per band (reads headers;
    pixels only when ``stats``). ``resolution`` is ``raster:spatial_resolution``
    in metres (see :func:`spatial_resolution`), repeated in every band."""
    names = band_names(src)
    commons = common_names(tuple(src.colorinterp))
    gdal = _gdal_bands(src) if any(d in _INEXACT for d in src.dtypes) else {}
    bands: list[dict[str, Any]] = []
    for pos, bidx in enumerate(src.indexes):
        dtype = src.dtypes[pos]
        tags = src.tags(bidx)
        band: dict[str, Any] = {"name": names[pos]}
        description = (tags.get("long_name") or src.descriptions[pos] or "").strip()
        if description and not _GDAL_PLACEHOLDER.match(description):
            band["description"] = description
        if commons[pos]:
            band["eo:common_name"] = commons[pos]
        gdal_type, exact = gdal.get(bidx, ("", None))
        band["data_type"] = "cint32" if gdal_type == "CInt32" else data_type(dtype)
        nodata = exact if exact is not None else nodata_value(src.nodatavals[pos], dtype)
        if nodata is not None:
            band["nodata"] = nodata
        unit = (src.units[pos] or "").strip() if src.units else ""
        if unit:
            band["unit"] = unit
        scale = src.scales[pos] if src.scales else 1.0
        offset = src.offsets[pos] if src.offsets else 0.0
        if scale is not None and float(scale) != 1.0:
            band["raster:scale"] = float(scale)
        if offset is not None and float(offset) != 0.0:
            band["raster:offset"] = float(offset)
        nbits = src.tags(bidx, ns="IMAGE_STRUCTURE").get("NBITS")
        if nbits and nbits.isdigit() and int(nbits) < _bits(dtype):
            band["raster:bits_per_sample"] = int(nbits)
        if resolution is not None:
            band["raster:spatial_resolution"] = resolution
        if stats and not band["data_type"].startswith("c"):
            band["statistics"] = band_statistics(src, bidx)
        bands.append(band)
    return bands
