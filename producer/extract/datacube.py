"""NetCDF and Zarr datacubes → STAC Item, read the CF way (xarray + cftime).

One entry point, :func:`create_item`, used by
:func:`producer.extract.raster.create_item` for every product
:func:`is_datacube` recognises (``.nc``/``.nc4``/``.cdf``/``.netcdf`` files,
``.zarr`` stores, local or on an object store). Nothing is written; the
caller's file is never modified.

What the item says:

- ``cube:dimensions`` (datacube v2.3.0): the horizontal axes (``axis`` x/y,
  extent over cell edges, step, reference system), the time axis (ISO 8601
  extent, values, step) and every other axis (vertical ones as ``axis`` z;
  others with their values or extent, unit);
- ``cube:variables``: every data variable (``type: data``) and auxiliary
  coordinate (2-D lat/lon, bounds: ``type: auxiliary``) with its
  dimensions, unit, description, data type and nodata, and for a packed
  variable (CF ``scale_factor``/``add_offset``) ``raster:scale``/
  ``raster:offset`` (also in its band, as a GeoTIFF's bands have them);
- geometry: a regular grid (1-D x/y coordinates) through its CRS (the
  ``grid_mapping`` variable; lat/lon coordinates without one are EPSG:4326, as
  CF says) and the shared footprint code, with ``proj:*`` fields; a
  curvilinear grid (2-D lat/lon arrays) from the outline of those arrays
  (cell centres), with ``proj:shape`` only; data variables on several
  grids: the union of their footprints, ``proj:*`` only where every grid
  agrees (:func:`_union_of_grids`);
- datetime: the time coordinate (``axis="T"``, ``standard_name="time"``
  or named ``time``/``valid_time``/``t``), its bounds when present, any CF
  calendar; ACDD ``time_coverage_*`` only without one
  (:func:`producer.extract.datetimes.resolve_datetime` says the order);
- the ``data`` asset: ``bands`` only for a single-variable file GDAL reads
  as one band (a loader is never told about a band it cannot read; with
  ``options.stats`` its ``statistics``, of the stored values like a
  GeoTIFF's, scale/offset not applied; the datacube extension has no place
  for statistics of other variables),
  ``xarray:open_kwargs`` (xarray-assets v1.0.0), ``file:*`` for NetCDF.

xarray, netCDF4, cftime and pyproj are imported inside the functions that
need them; the dispatch test :func:`is_datacube` lives in
:mod:`producer.extract.source` (re-exported here), so that a GeoTIFF's
register never imports this module.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pystac

from producer.errors import InputError, NoGeoreferenceError, ProducerError
from producer.extract import footprint as _footprint
from producer.extract.assets import (
    check_utf8_location,
    file_info,
    is_url,
    resolve_location,
    rewrite_href,
    sha256_multihash_of,
)
from producer.extract.bands import data_type, nodata_value, spatial_resolution
from producer.extract.datetimes import (
    DATETIME_HINT,
    DatetimeResult,
    cf_datetimes,
    from_acdd,
    from_time_axis,
    in_microseconds,
    is_absolute_time,
    parse_datetime,
    resolve_datetime,
)
from producer.extract.failures import storage_failure
from producer.extract.ids import make_item_id, split_location
from producer.extract.options import ExtractOptions
from producer.extract.source import (  # noqa: F401 (NETCDF_SUFFIXES, ZARR_SUFFIX, is_datacube: re-exported)
    NETCDF_SUFFIXES,
    ZARR_SUFFIX,
    _suffix_of,
    check_local_file,
    check_netcdf_complete,
    is_datacube,
)
from producer.redact import clean_href, redact
from producer.timestamps import format_time
from producer.urls import product_storage_options, protocol

DATACUBE_EXT = "https://stac-extensions.github.io/datacube/v2.3.0/schema.json"
XARRAY_EXT = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"
PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
#: field prefix → extension schema URL, in the order they are declared
_EXTENSIONS = {"cube:": DATACUBE_EXT, "proj:": PROJECTION_EXT, "raster:": RASTER_EXT, "file:": FILE_EXT}

MEDIA_NETCDF = "application/netcdf"
MEDIA_ZARR = "application/vnd+zarr"
#: key of the single data asset (as for rasters)
DATA_ASSET = "data"
#: time axes with at most this many steps list them in ``values``
MAX_VALUES = 100
#: points per outline edge of a curvilinear grid
_OUTLINE_POINTS = 32

_TIME_NAMES = ("time", "valid_time", "t")
#: (``degrees longitude``/``degrees latitude``, blanks removed: WPS's geogrid and metgrid)
_WPS_LON, _WPS_LAT = "degreeslongitude", "degreeslatitude"
_LON_UNITS = {"degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese", _WPS_LON}
_LAT_UNITS = {"degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn", _WPS_LAT}
_LON_NAMES = ("lon", "longitude", "nav_lon")
_LAT_NAMES = ("lat", "latitude", "nav_lat")
_VERTICAL_NAMES = {
    "height",
    "depth",
    "altitude",
    "air_pressure",
    "model_level_number",
    "atmosphere_sigma_coordinate",
}
#: GDAL's placeholder long_name for a variable it wrote without one
_GDAL_PLACEHOLDER = re.compile(r"^GDAL Band Number \d+$")

#: what to do about a cube without georeferencing: written into a NEW file
GEOREF_FIX = (
    "Write the georeferencing into a new file, never over the original: add CF coordinates "
    "(1-D lat/lon in degrees_north/degrees_east, or x/y with a grid_mapping variable naming the CRS), "
    "e.g. with xarray: ds.assign_coords(lat=..., lon=...).to_netcdf('fixed.nc'), or "
    "`gdal_translate -a_srs EPSG:xxxx -a_ullr ulx uly lrx lry in.nc fixed.nc`; then register the new file"
)
TIME_FIX = (
    "Give it a CF time coordinate in a new file (e.g. with xarray: "
    "ds.expand_dims(time=[numpy.datetime64('2024-05-13')]).to_netcdf('fixed.nc')), "
    "or an ACDD time_coverage_start attribute, or give it a datetime yourself."
)


def is_zarr(location: str) -> bool:
    return _suffix_of(location).endswith(ZARR_SUFFIX)


# --------------------------------------------------------------------------- opening


@dataclass
class _Opened:
    dataset: Any
    #: ``file:size`` of a NetCDF (``None`` for a Zarr store)
    size: int | None
    #: what ``xarray.open_dataset(href, **open_kwargs)`` needs
    open_kwargs: dict[str, Any] = field(default_factory=dict)
    #: the paths of the NetCDF-4 (or Zarr) groups below the root that hold
    #: variables (read only to word an error: the root group is what is described)
    groups: Callable[[], list[str]] = field(default=lambda: [])
    #: ``file:checksum`` of a NetCDF fetched whole (the bytes opened), when asked for
    checksum: str | None = None
    #: called once the item is built (or its build failed): the error to raise
    #: instead, for a NetCDF read by ranges (:class:`_RangedFile`) whose reads
    #: failed (a storage failure, whatever h5py made of it) or whose object
    #: changed while it was read; ``None`` when the reads were sound
    settle: Callable[[], ProducerError | None] = field(default=lambda: None)


#: how the cube is decoded: values as stored, so that nothing is computed
#: from the data and fill values stay visible as attributes
_DECODE: dict[str, Any] = {
    "decode_times": False,
    "mask_and_scale": False,
    "decode_coords": "all",
    "cache": False,
}


class NotNetCDF(InputError):
    """A product named like a NetCDF file whose bytes are not NetCDF (or
    HDF5, which NetCDF-4 is): :func:`producer.extract.raster.create_item`
    hands it to GDAL, which reads the format from the content."""


#: first bytes of NetCDF classic (CDF-1/2/5) and of HDF5 (NetCDF-4)
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


def _check_magic(head: bytes, location: str) -> None:
    if not head.startswith(_NETCDF_MAGIC):
        raise NotNetCDF(f"{redact(location)}: named like a NetCDF file, but its bytes are another format")


def _unreadable(location: str, what: str, exc: BaseException) -> InputError:
    return InputError(
        f"{redact(location)}: not a readable {what} (corrupt, truncated, or another format): "
        f"{redact(f'{type(exc).__name__}: {exc}')}"
    )


@contextmanager
def _quiet_references(seen: list[str]) -> Iterator[None]:
    """Open with xarray's UserWarning about a ``grid_mapping`` or
    ``coordinates`` attribute naming a variable the file lacks kept from the
    caller (a warning printed beside the product's error names no product);
    the messages are appended to ``seen``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=r"Variable\(s\) referenced in", category=UserWarning)
        yield
    for warning in caught:
        if re.match(r"Variable\(s\) referenced in", str(warning.message)):
            seen.append(str(warning.message))
        else:  # any other warning goes on as it came
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno, source=warning.source
            )


def _restore_grid_mappings(ds: Any, seen: list[str], handle: Any) -> None:
    """Put back, into the encoding of each variable of ``ds``, the
    ``grid_mapping`` attribute xarray dropped because it names a variable
    the file lacks (``seen``: its warnings), read from ``handle`` (an open
    netCDF4 Dataset, an h5netcdf File, or a zarr Group):
    :func:`_missing_grid_mapping` then names it."""
    if not any("grid_mapping" in message for message in seen):
        return
    for name, var in ds.variables.items():
        if hasattr(handle, "variables"):  # netCDF4, h5netcdf
            stored = handle.variables.get(str(name))
            raw = _attrs_of(stored).get("grid_mapping") if stored is not None else None
        else:  # zarr
            stored = handle.get(str(name))
            raw = stored.attrs.get("grid_mapping") if stored is not None else None
        if raw and "grid_mapping" not in var.attrs and "grid_mapping" not in var.encoding:
            var.encoding["grid_mapping"] = str(raw)


def _attrs_of(stored: Any) -> Mapping[str, Any]:
    """The attributes of a variable or group of an open netCDF4 Dataset
    (its ``__dict__``) or h5netcdf File (its ``attrs``)."""
    if type(stored).__module__.startswith("netCDF4"):
        return dict(stored.__dict__)
    return stored.attrs


#: bytes per request when a remote NetCDF is fetched whole: each request
#: ends at the read deadline (:func:`producer.httplimits.read_deadline`), so
#: a large file comes in parts (several at once), never in one request that
#: a slow but steady link could not finish in time
WHOLE_PART = 16 * 1024 * 1024


def _version_of(info: Mapping[str, Any]) -> tuple[Any, ...]:
    """What says which version of an object ``info`` (``fs.info``) describes:
    its ETag, version id, modification time and size, those the file system
    gives."""
    return tuple(info.get(k) for k in ("ETag", "etag", "VersionId", "LastModified", "mtime", "size"))


def _fetch_whole(fs: Any, path: str, size: int, info: Mapping[str, Any] | None = None) -> bytes:
    """The ``size`` bytes of ``path``: one request up to :data:`WHOLE_PART`,
    else that first part, then the others at once. A server that ignores
    ``Range`` (answers the whole file to the first) has given it all. Read
    in parts, the object is looked at again once they are in (``info``: as
    it was before): overwritten meanwhile, its parts may mix two versions,
    so that is an error (:class:`OSError`: a storage failure, retried)."""
    if size <= WHOLE_PART:
        return bytes(fs.cat_file(path))
    first = bytes(fs.cat_file(path, start=0, end=WHOLE_PART))
    if len(first) == size:
        return first  # the whole file, Range ignored
    if len(first) != WHOLE_PART:
        raise OSError(f"asked for bytes 0-{WHOLE_PART - 1}, got {len(first)}")
    starts = list(range(WHOLE_PART, size, WHOLE_PART))
    ends = [min(start + WHOLE_PART, size) for start in starts]
    parts = fs.cat_ranges([path] * len(starts), starts, ends, on_error="raise")
    data = first + b"".join(bytes(part) for part in parts)
    if len(data) != size:
        raise OSError(f"got {len(data)} bytes of {size}")
    if info is not None:
        fs.invalidate_cache(path)
        if _version_of(fs.info(path)) != _version_of(info):
            raise OSError(
                "the object changed while it was read in parts (overwritten meanwhile): register it "
                "again once its writer has finished"
            )
    return data


def _open_netcdf(location: str, options: ExtractOptions, stack: ExitStack) -> _Opened:
    """Open a NetCDF (classic or NetCDF-4) with xarray's netCDF4 engine.

    A local file is opened where it is. An object (``s3://``...) is read
    through fsspec (with ``options.storage_options``):

    - a NetCDF-4 (HDF5) object larger than :data:`RANGED_ABOVE` bytes, its
      checksum not asked for, is read by ranges (:func:`_open_ranged`:
      h5netcdf through a block-cached file object): its header, its
      coordinates and what the item reads of its data, never the whole file,
      nor the file held in memory;
    - any other (classic NetCDF, a small file, a checksum asked for: it
      hashes the bytes fetched) is fetched once, whole (:func:`_fetch_whole`),
      and opened from memory with netCDF4 (which cannot read through a
      Python file object; on memory it is the faster engine).

    The classic-format completeness check runs on the object's bytes before
    anything else, on either path. The item's ``xarray:open_kwargs`` say
    ``engine: h5netcdf`` for a NetCDF-4 object on either path.
    """
    import netCDF4  # noqa: PLC0415 (heavy, datacubes only)
    import xarray as xr  # noqa: PLC0415 (heavy, datacubes only)

    if not is_url(location):
        check_local_file(location)
        size = os.path.getsize(location)

        def read(start: int, length: int) -> bytes:
            with open(location, "rb") as handle:
                handle.seek(start)
                return handle.read(length)

        _check_magic(read(0, 8), location)
        check_netcdf_complete(read, size, location)
        seen: list[str] = []
        try:
            with _quiet_references(seen):
                ds = xr.open_dataset(location, engine="netcdf4", **_DECODE)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise _unreadable(location, "NetCDF file", exc) from None
        stack.callback(ds.close)
        if seen:
            with netCDF4.Dataset(location, mode="r") as raw:
                _restore_grid_mappings(ds, seen, raw)

        def local_groups() -> list[str]:
            with netCDF4.Dataset(location, mode="r") as handle:
                return _group_paths(handle)

        return _Opened(ds, size, {"engine": "netcdf4"}, local_groups)

    import fsspec  # noqa: PLC0415

    try:
        fs, path = fsspec.core.url_to_fs(
            location, **product_storage_options(options.storage_options, location)
        )
    except (ImportError, ValueError) as exc:
        raise InputError(f"{redact(location)}: no filesystem for this URL ({exc})") from None
    data: bytes | None = None
    try:
        info = fs.info(path)
        if info.get("type") == "directory":
            raise InputError(f"{redact(location)}: is a folder (prefix), not a NetCDF file")
        size = int(info.get("size") or 0)
        if size == 0:
            raise InputError(f"{redact(location)}: object is empty (0 bytes); was it completely written?")
        if size > RANGED_ABOVE and not options.checksum:
            head = bytes(fs.cat_file(path, start=0, end=8))
            if len(head) == size:  # a server that ignores Range: the whole file is in
                data = head
            elif not head.startswith(_HDF5_MAGIC):
                data = _fetch_whole(fs, path, size, info)
        else:
            data = _fetch_whole(fs, path, size, info)
    except ProducerError:
        raise
    except Exception as exc:
        raise storage_failure(location, exc) from None
    if data is None:
        return _open_ranged(location, fs, path, size, info, stack)
    _check_magic(data[:8], location)
    check_netcdf_complete(lambda start, length: data[start : start + length], size, location)
    try:
        handle = netCDF4.Dataset(os.path.basename(path), mode="r", memory=data)
    except (OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(location, "NetCDF file", exc) from None
    seen = []
    try:
        with _quiet_references(seen):
            ds = xr.open_dataset(xr.backends.NetCDF4DataStore(handle), **_DECODE)
    except BaseException:
        handle.close()
        raise
    _restore_grid_mappings(ds, seen, handle)
    stack.callback(ds.close)  # closes the netCDF4 handle too
    return _Opened(
        ds,
        size,
        {"engine": "h5netcdf"} if data.startswith(_HDF5_MAGIC) else {},
        lambda: _group_paths(handle),
        sha256_multihash_of(data) if options.checksum else None,  # not a second download to hash it
    )


#: a remote NetCDF-4 (HDF5) file larger than this many bytes is read by
#: ranges (:func:`_open_ranged`), never whole: its header, its coordinates
#: and what the item reads of its data come a block at a time. At or below
#: it, and for classic NetCDF (its data is contiguous, one request fetches
#: it), the file is fetched whole and netCDF4 opens it from memory (faster
#: on memory); so is any file whose ``file:checksum`` is asked for (every
#: byte is read to hash it: one download serves both)
RANGED_ABOVE = 64 * 1024 * 1024
#: bytes of one block of a NetCDF-4 read by ranges: one request each, so
#: that the scattered small reads of its header cost a request per block,
#: not per read
RANGED_BLOCK = 4 * 1024 * 1024
#: blocks of a NetCDF-4 read by ranges kept in memory (least recently used
#: dropped): at most this many times :data:`RANGED_BLOCK` bytes held
RANGED_BLOCKS = 8
#: a block missed right after the last one fetched, for the second time in a
#: row (the data read in order, as statistics read it; not a header that runs
#: into its second block) brings this many more with it, all fetched at once
#: (in parallel): the reads of a variable do not wait a round trip per block
RANGED_AHEAD = 4

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class _RangedFile(io.RawIOBase):
    """A read-only file object over ``fetch(ranges)`` (the bytes of each
    ``(start, end)`` range, ``end`` excluded, of an object of ``size``
    bytes; several ranges are fetched at once): what h5py reads a NetCDF-4
    on an object store through.

    Reads come from blocks of :data:`RANGED_BLOCK` bytes, the last
    :data:`RANGED_BLOCKS` kept (least recently used dropped), so that the
    scattered small reads of an HDF5 header cost a request per block; the
    blocks of data read in order are read ahead (:data:`RANGED_AHEAD`); a read larger than the blocks kept goes straight through,
    in parts of a block fetched at once, and is not kept.

    h5py reads a Python file object through callbacks, and what it makes of
    an exception raised in one is an HDF5 error that no longer says it was
    the storage: the first failure is kept in :attr:`failure` (and every
    later read fails at once, no request made), for the caller to raise it
    as the storage failure it was. A server that ignores ``Range`` answers
    the whole file: it is kept and served from then on (as
    :func:`_fetch_whole` does)."""

    def __init__(self, fetch: Callable[[list[tuple[int, int]]], list[bytes]], size: int) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._pos = 0
        self._whole: bytes | None = None
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._next = -1  # the block after the last fetched
        self._streak = 0  # misses in a row, each of the block after the last fetched
        self.failure: BaseException | None = None

    def _get(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        if self._whole is not None:
            return [self._whole[start:end] for start, end in ranges]
        if self.failure is not None:
            raise OSError("an earlier read of this file failed")
        try:
            parts = [bytes(part) for part in self._fetch(ranges)]
            for (start, end), part in zip(ranges, parts, strict=True):
                if len(part) == self._size and end - start != self._size:  # Range ignored
                    self._whole = part
                    return [part[s:e] for s, e in ranges]
                if len(part) != end - start:
                    raise OSError(f"asked for bytes {start}-{end - 1}, got {len(part)}")
        except BaseException as exc:
            self.failure = exc
            raise
        return parts

    def _load(self, first: int, last: int) -> None:
        """Blocks ``first`` to ``last`` (at most :data:`RANGED_BLOCKS`) in
        :attr:`_blocks`, the most recently used."""
        block = RANGED_BLOCK
        missing = [b for b in range(first, last + 1) if b not in self._blocks]
        if missing:
            self._streak = self._streak + 1 if missing[0] == self._next else 0
        if missing and self._streak >= 2:
            count = (self._size + block - 1) // block
            room = RANGED_BLOCKS - (last + 1 - first)
            ahead = range(last + 1, min(count, last + 1 + min(RANGED_AHEAD, room)))
            missing += [b for b in ahead if b not in self._blocks]
        if missing:
            parts = self._get([(b * block, min((b + 1) * block, self._size)) for b in missing])
            self._blocks.update(zip(missing, parts, strict=True))
            self._next = missing[-1] + 1
        for b in range(first, last + 1):
            self._blocks.move_to_end(b)
        while len(self._blocks) > RANGED_BLOCKS:
            self._blocks.popitem(last=False)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        """Closed, its blocks dropped: the error of a product (kept by the
        caller, with its traceback, whose frames hold this file) keeps no
        bytes of it."""
        self._blocks.clear()
        self._whole = None
        super().close()

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = self._size if size is None or size < 0 else min(self._size, start + size)
        if start >= end:
            return b""
        block = RANGED_BLOCK
        first, last = start // block, (end - 1) // block
        if last - first + 1 > RANGED_BLOCKS:  # straight through, not kept
            data = b"".join(self._get([(s, min(s + block, end)) for s in range(start, end, block)]))
        else:
            self._load(first, last)
            if first == last:
                data = self._blocks[first][start - first * block : end - first * block]
            else:
                joined = b"".join(self._blocks[b] for b in range(first, last + 1))
                data = joined[start - first * block : end - first * block]
        self._pos = end
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


def _ranges_of(fs: Any, path: str) -> Callable[[list[tuple[int, int]]], list[bytes]]:
    """``fetch(ranges)`` for :class:`_RangedFile`: one range with one
    request, several at once (``fs.cat_ranges``, concurrent on an
    asynchronous file system such as s3fs)."""

    def fetch(ranges: list[tuple[int, int]]) -> list[bytes]:
        if len(ranges) == 1:
            return [fs.cat_file(path, start=ranges[0][0], end=ranges[0][1])]
        starts, ends = [s for s, _ in ranges], [e for _, e in ranges]
        return list(fs.cat_ranges([path] * len(ranges), starts, ends, on_error="raise"))

    return fetch


def _open_ranged(
    location: str, fs: Any, path: str, size: int, info: Mapping[str, Any], stack: ExitStack
) -> _Opened:
    """Open the NetCDF-4 (HDF5) object ``path`` of ``fs`` (``info``: its
    ``fs.info``, ``size`` bytes) with xarray's h5netcdf engine through a
    :class:`_RangedFile`: what the item needs is read, never the whole file.

    The object is looked at again once the item is built (:attr:`_Opened.settle`):
    overwritten meanwhile, its blocks may come from two versions, so that is
    a storage failure (retried), as for :func:`_fetch_whole`'s parts; so is
    any failed read, whatever h5py or the code reading the cube made of it.
    """
    import h5netcdf  # noqa: PLC0415 (heavy, large remote NetCDF-4 only)
    import xarray as xr  # noqa: PLC0415

    raw = _RangedFile(_ranges_of(fs, path), size)
    stack.callback(raw.close)

    def settle() -> ProducerError | None:
        if raw.failure is not None:
            return storage_failure(location, raw.failure)
        try:
            fs.invalidate_cache(path)
            now = fs.info(path)
        except Exception as exc:
            return storage_failure(location, exc)
        if _version_of(now) != _version_of(info):
            return storage_failure(
                location,
                OSError(
                    "the object changed while it was read by ranges (overwritten meanwhile): register it "
                    "again once its writer has finished"
                ),
            )
        return None

    def read(start: int, length: int) -> bytes:
        raw.seek(start)
        return raw.read(length)

    def instead(exc: Exception) -> ProducerError:
        """What to raise for ``exc``, raised while the file was opened."""
        failure = settle()
        if failure is not None:
            return failure
        if isinstance(exc, ProducerError):
            return exc
        return _unreadable(location, "NetCDF file", exc)

    seen: list[str] = []
    try:
        _check_magic(read(0, 8), location)
        check_netcdf_complete(read, size, location)
        # phony_dims "sort": dimensions HDF5 datasets lack named as netCDF-C names them
        handle = h5netcdf.File(raw, "r", decode_vlen_strings=True, phony_dims="sort")
        stack.callback(handle.close)
        with _quiet_references(seen):
            ds = xr.open_dataset(xr.backends.H5NetCDFStore(handle), **_DECODE)
        stack.callback(ds.close)
        _restore_grid_mappings(ds, seen, handle)
    except Exception as exc:
        raise instead(exc) from None
    return _Opened(ds, size, {"engine": "h5netcdf"}, lambda: _group_paths(handle), None, settle)


#: at most this many groups are named in a message
_GROUPS_NAMED = 10


def _group_paths(handle: Any) -> list[str]:
    """Paths (``/data``, ``/data/sub``) of the groups below ``handle`` (an
    open netCDF4 Dataset or Group, or h5netcdf File or Group) that hold
    variables, depth first."""
    out: list[str] = []
    for group in handle.groups.values():
        if group.variables:
            out.append(str(group.path if type(group).__module__.startswith("netCDF4") else group.name))
        out.extend(_group_paths(group))
    return out


def _zarr_group_paths(group: Any) -> list[str]:
    """Paths (``data``, ``data/sub``) of the groups below ``group`` (an open
    zarr Group) that hold arrays, depth first."""
    out: list[str] = []
    for _, child in sorted(group.groups(), key=lambda pair: pair[0]):
        if any(True for _ in child.arrays()):
            out.append(str(child.path))
        out.extend(_zarr_group_paths(child))
    return out


def _check_root_group(opened: _Opened, shown: str, zarr: bool = False) -> None:
    """Raise :class:`InputError` for a NetCDF-4 file or Zarr store whose root
    group holds no data variable while groups below it do: only the root group
    is read, so the cube would otherwise be refused for lacking coordinates it
    has, or (coordinates at the root, data in a group) published with no
    variable at all."""
    ds = opened.dataset
    if len(ds.data_vars):
        return
    groups = opened.groups()
    if not groups:
        return
    named = ", ".join(repr(g) for g in groups[:_GROUPS_NAMED])
    more = f" and {len(groups) - _GROUPS_NAMED} more" if len(groups) > _GROUPS_NAMED else ""
    group = groups[0]
    if len(ds.variables):  # coordinates at the root: a DataTree node inherits them, open_dataset does not
        holds = "coordinates only"
        read = (
            f"xarray.open_datatree('in.zarr', engine='zarr')[{group!r}].to_dataset()"
            if zarr
            else f"xarray.open_datatree('in.nc')[{group!r}].to_dataset()"
        )
    else:
        holds = "no arrays" if zarr else "no variables"
        read = (
            f"xarray.open_dataset('in.zarr', engine='zarr', group={group!r})"
            if zarr
            else f"xarray.open_dataset('in.nc', group={group!r})"
        )
    if zarr:
        raise InputError(
            f"{redact(shown)}: its root group holds {holds}; its data is in the Zarr group(s) "
            f"{named}{more}, and only the root group is read. Write the group to register into a new "
            f"store, e.g. with xarray: {read}.drop_encoding().to_zarr('fixed.zarr'), then register "
            "the new store"
        )
    ncks = "" if len(ds.variables) else f" (or `ncks -G : -g {group.lstrip('/')} in.nc fixed.nc`)"
    raise InputError(
        f"{redact(shown)}: its root group holds {holds}; its data is in the NetCDF-4 group(s) "
        f"{named}{more}, and only the root group is read. Write the group to register into a new "
        f"file, e.g. with xarray: {read}.to_netcdf('fixed.nc'){ncks}, then register the new file"
    )


def _zarr_consolidated(location: str, options: ExtractOptions) -> tuple[bool, int, bytes | None]:
    """``(consolidated, zarr_format, root)`` of the store at ``location``, from
    its root metadata (``.zmetadata``/``.zgroup`` for v2, ``zarr.json`` for
    v3); ``root`` is the ``zarr.json`` read (v3), which opens the store
    without fetching it again. Raises :class:`InputError` when the store has
    neither."""
    import json  # noqa: PLC0415

    import fsspec  # noqa: PLC0415

    try:
        fs, root = fsspec.core.url_to_fs(
            location, **product_storage_options(options.storage_options, location)
        )
    except (ImportError, ValueError) as exc:
        raise InputError(f"{redact(location)}: no filesystem for this URL ({exc})") from None
    root = root.rstrip("/")
    # http: a failed request raises instead of reading as "no such file"
    strict: dict[str, Any] = {"strict": True} if protocol(location) in ("http", "https") else {}
    try:
        if fs.exists(f"{root}/zarr.json", **strict):
            document = fs.cat_file(f"{root}/zarr.json")
            meta = json.loads(document)
            if isinstance(meta, dict) and meta.get("node_type") == "array":
                raise _root_array(location, "zarr.json")
            return bool(meta.get("consolidated_metadata")), 3, bytes(document)
        if fs.exists(f"{root}/.zmetadata", **strict):
            return True, 2, None
        if fs.exists(f"{root}/.zgroup", **strict):
            return False, 2, None
        if fs.exists(f"{root}/.zarray", **strict):
            raise _root_array(location, ".zarray")
        exists = fs.exists(root)
    except ProducerError:
        raise
    except Exception as exc:
        raise storage_failure(location, exc) from None
    if not exists:
        raise InputError(f"{redact(location)}: Zarr store not found; check the path or URL")
    raise InputError(
        f"{redact(location)}: not a Zarr store (no zarr.json, .zmetadata or .zgroup at its root); "
        "register the store's root folder"
    )


def _zarr_store_with_root(location: str, storage_options: dict[str, Any], document: bytes) -> Any:
    """A read-only zarr store at the URL ``location`` that answers its root
    ``zarr.json`` with ``document`` (already fetched) and reads every other
    key from storage."""
    from zarr.core.sync import sync  # noqa: PLC0415 (heavy, datacubes only)
    from zarr.storage import FsspecStore, WrapperStore  # noqa: PLC0415

    class KnownRoot(WrapperStore[Any]):
        def _with_store(self, store: Any) -> KnownRoot:
            return KnownRoot(store)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if key == "zarr.json" and byte_range is None:
                return prototype.buffer.from_bytes(document)
            return await self._store.get(key, prototype, byte_range)

    async def on_zarrs_loop() -> Any:
        # made where zarr makes its own stores: fsspec caches a filesystem per
        # thread, and one made in this thread would leave its client session
        # open (aiohttp's "Unclosed client session" at exit)
        return FsspecStore.from_url(location.rstrip("/"), storage_options=storage_options, read_only=True)

    return KnownRoot(sync(on_zarrs_loop()))


def _root_array(location: str, document: str) -> InputError:
    """The error for a Zarr store whose root is one array (its ``document``,
    ``.zarray`` or ``zarr.json``, says so), not a group: xarray reads a
    dataset from a group of arrays, and a bare array names no dimension,
    coordinate or CRS."""
    return InputError(
        f"{redact(location)}: its root is a Zarr array ({document} at the root), not a group: xarray reads "
        "a Zarr store as a group of arrays with named dimensions and coordinates, so a bare array is no "
        "dataset to describe (no latitude, longitude or time). Write it into a new store as a dataset, "
        "e.g. with xarray and zarr: xarray.Dataset({'v': (('y', 'x'), zarr.open_array('in.zarr')[:])}, "
        "coords={'y': lats, 'x': lons}).to_zarr('fixed.zarr'), then register the new store"
    )


def _restore_zarr_grid_mappings(ds: Any, seen: list[str], location: str, extra: dict[str, Any]) -> None:
    """:func:`_restore_grid_mappings` for the Zarr store at ``location``
    (opened again with zarr to read the attributes as stored); when it
    cannot be, the generic "no grid_mapping" error stands."""
    import zarr  # noqa: PLC0415 (heavy, datacubes only)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            root = zarr.open_group(location.rstrip("/"), mode="r", **extra)
            _restore_grid_mappings(ds, seen, root)
    except Exception:  # only words an error
        return


def _open_zarr(location: str, options: ExtractOptions, stack: ExitStack) -> _Opened:
    """Open a Zarr store (v2 or v3, consolidated or not) with xarray."""
    import xarray as xr  # noqa: PLC0415 (heavy, datacubes only)

    if not is_url(location):
        check_utf8_location(location)
    consolidated, _, root_document = _zarr_consolidated(location, options)
    open_kwargs: dict[str, Any] = {"engine": "zarr", "consolidated": consolidated}
    extra: dict[str, Any] = (
        {"storage_options": product_storage_options(options.storage_options, location)}
        if is_url(location)
        else {}
    )
    target: Any = location.rstrip("/")
    opening = extra
    seen: list[str] = []
    try:
        if root_document is not None and is_url(location):
            # a v3 root document holds the consolidated metadata of every array
            # (57 KB for 50 variables): xarray is given it instead of a second GET
            target, opening = _zarr_store_with_root(location, extra["storage_options"], root_document), {}
        with (
            warnings.catch_warnings()
        ):  # zarr's notes on v3 consolidated metadata are not the user's business
            warnings.simplefilter("ignore", UserWarning)
            with _quiet_references(seen):
                ds = xr.open_dataset(target, **open_kwargs, **opening, **_DECODE)
    except KeyError as exc:
        if "_ARRAY_DIMENSIONS" in str(exc) or "dimension_names" in str(exc):  # zarr's own, not xarray's
            raise InputError(
                f"{redact(location)}: its arrays have no dimension names (`_ARRAY_DIMENSIONS` in Zarr v2, "
                "`dimension_names` in v3), so no array can be told to run along latitude, longitude or "
                "time: a plain Zarr store, not an xarray dataset. Write it to a new store with its "
                "dimensions named, e.g. xarray.Dataset({'v': (('y', 'x'), array)}, coords=...).to_zarr(...), "
                "or zarr's create_array(..., dimension_names=['y', 'x']), then register that"
            ) from None
        raise _unreadable(location, "Zarr store", exc) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise _unreadable(location, "Zarr store", exc) from None
    stack.callback(ds.close)
    if seen:
        _restore_zarr_grid_mappings(ds, seen, location, extra)
    if not consolidated and not ds.variables and protocol(location) in ("http", "https"):
        # zarr finds the arrays of an unconsolidated store by listing its
        # folder, which an http server without listings answers 404/403
        raise InputError(
            f"{redact(location)}: xarray found no array in this Zarr store: its metadata is not "
            "consolidated and the http server lists no folder, so its arrays cannot be found. "
            "Consolidate it (zarr.consolidate_metadata(store), or to_zarr(..., consolidated=True)) "
            "so one document names every array, then register it again"
        )

    def zarr_groups() -> list[str]:
        import zarr  # noqa: PLC0415 (heavy, datacubes only)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                root = zarr.open_group(location.rstrip("/"), mode="r", **extra)
                return _zarr_group_paths(root)
        except Exception:  # only words an error; without it the generic one stands
            return []

    return _Opened(ds, None, open_kwargs, zarr_groups)


# --------------------------------------------------------------------------- reading CF


def _attr(var: Any, name: str) -> str:
    value = var.attrs.get(name)
    return str(value).strip() if value is not None else ""


def _units(var: Any) -> str:
    return _attr(var, "units").lower().replace(" ", "")


def _is_lon(name: Hashable, var: Any) -> bool:
    return (
        _attr(var, "standard_name") in ("longitude", "grid_longitude")
        or _units(var) in _LON_UNITS
        or _attr(var, "axis").upper() == "X"
        and _units(var).startswith("degree")
        or str(name).lower() in _LON_NAMES
    )


def _is_lat(name: Hashable, var: Any) -> bool:
    return (
        _attr(var, "standard_name") in ("latitude", "grid_latitude")
        or _units(var) in _LAT_UNITS
        or _attr(var, "axis").upper() == "Y"
        and _units(var).startswith("degree")
        or str(name).lower() in _LAT_NAMES
    )


def _is_x(name: Hashable, var: Any) -> bool:
    return (
        _attr(var, "axis").upper() == "X"
        or _attr(var, "standard_name") == "projection_x_coordinate"
        or str(name).lower() == "x"
        or _is_lon(name, var)
    )


def _is_y(name: Hashable, var: Any) -> bool:
    return (
        _attr(var, "axis").upper() == "Y"
        or _attr(var, "standard_name") == "projection_y_coordinate"
        or str(name).lower() == "y"
        or _is_lat(name, var)
    )


def _grid_mapping_name(ds: Any, names: list[str] | None = None) -> str | None:
    """The grid mapping variable named by a data variable (``crs`` in
    ``grid_mapping="crs"`` or the extended ``"crs: x y"`` form): by any
    variable, or (``names``) by one of those variables."""
    chosen = ds.variables.values() if names is None else [ds.variables[n] for n in names]
    for var in chosen:
        raw = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
        if raw:
            name = str(raw).split(":")[0].split()[0]
            if name in ds.variables:
                return name
    return None


def _crs_variables(ds: Any) -> list[str]:
    """Variables that describe a CRS (a CF ``grid_mapping_name``, or the
    ``crs_wkt``/``spatial_ref`` WKT GDAL and rioxarray write)."""
    return [
        str(name)
        for name, var in ds.variables.items()
        if any(var.attrs.get(key) for key in ("grid_mapping_name", "crs_wkt", "spatial_ref"))
    ]


def _missing_grid_mapping(ds: Any, x_name: str, y_name: str, where: str) -> NoGeoreferenceError | None:
    """The error for x/y coordinates whose data variable names, in its
    ``grid_mapping`` attribute, a variable the file does not hold (a typo, or
    a variable dropped by a tool that rewrote the file); ``None`` when no
    variable does."""
    for owner, var in ds.variables.items():
        raw = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
        if not raw:
            continue
        named = str(raw).split(":")[0].split()[0] if str(raw).split() else ""
        if not named or named in ds.variables:
            continue
        zarr = is_zarr(where)
        kind = "store" if zarr else "file"
        found = _crs_variables(ds)
        if found:
            crs = found[0]
            holds = f"The {kind}'s variable(s) describing a CRS: {', '.join(map(repr, found))}. "
            fix = (
                (
                    f"Write a new store in which the grid_mapping of {str(owner)!r} names {crs!r}, e.g. with "
                    f"xarray: ds = xarray.open_zarr('in.zarr'); ds[{str(owner)!r}].attrs['grid_mapping'] = "
                    f"{crs!r}; ds.to_zarr('fixed.zarr'), then register the new store"
                )
                if zarr
                else (
                    f"Write a new file in which the grid_mapping of {str(owner)!r} names {crs!r}, e.g. with "
                    f"xarray: ds[{str(owner)!r}].attrs['grid_mapping'] = {crs!r}; ds.to_netcdf('fixed.nc') "
                    f"(or `ncatted -a grid_mapping,{owner},o,c,{crs} in.nc fixed.nc`), then register the new file"
                )
            )
        else:
            holds = f"No variable in the {kind} describes a CRS either. "
            fix = GEOREF_FIX
        return NoGeoreferenceError(
            f"{where}: the grid_mapping attribute of variable {str(owner)!r} names {named!r}, but the {kind} "
            f"has no variable {named!r}, so the CRS of the x/y coordinates {x_name!r}/{y_name!r} is "
            f"unknown. {holds}{fix}"
        )
    return None


def _crs_of(ds: Any, name: str, where: str) -> Any:
    """pyproj CRS of the grid mapping variable ``name``: its ``crs_wkt`` or
    GDAL's ``spatial_ref`` when present, else its CF parameters."""
    from pyproj import CRS  # noqa: PLC0415
    from pyproj.exceptions import CRSError  # noqa: PLC0415

    attrs = dict(ds.variables[name].attrs)
    try:
        for key in ("crs_wkt", "spatial_ref"):
            if attrs.get(key):
                return CRS.from_wkt(str(attrs[key]))
        return CRS.from_cf(attrs)
    except CRSError as exc:
        raise NoGeoreferenceError(
            f"{where}: the grid_mapping variable {name!r} does not describe a CRS ({exc}). {GEOREF_FIX}"
        ) from None


#: units of an angle in radians (UDUNITS spellings)
_RADIANS = frozenset({"rad", "radian", "radians"})


def _scan_angle_metres(ds: Any, mapping: str, name: str, values: Any) -> Any:
    """``values`` of the x or y coordinate ``name`` in the CRS's metres. CF
    geostationary grids (GOES-R ABI) give x/y as scan angles in radians: they
    are the metres the CRS is in over the satellite's height (``h``), as
    GDAL reads them. Any other coordinate: ``values``."""
    attrs = ds.variables[mapping].attrs
    if str(attrs.get("grid_mapping_name", "")).strip().lower() != "geostationary":
        return values
    if _units(ds[name]).strip().lower() not in _RADIANS:
        return values
    height = _number(attrs.get("perspective_point_height"))
    if not isinstance(height, int | float) or not height > 0:
        return values
    return values * float(height)


#: metres in one of a projected coordinate's length units (UDUNITS spellings)
_LENGTH_UNITS = {
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), 1.0),
    **dict.fromkeys(("km", "kilometre", "kilometres", "kilometer", "kilometers"), 1000.0),
}


def _in_crs_units(ds: Any, name: str, values: Any, crs: Any) -> Any:
    """``values`` of the projected x or y coordinate ``name`` in the unit of
    the axes of ``crs``: CF lets ``projection_x_coordinate`` be in any length
    unit (Daymet's and sea-ice grids give kilometres), and GDAL reads ``km``
    as the CRS's metres. A coordinate without a length unit (none, or one
    this does not know) is taken as in the CRS's unit."""
    metres = _LENGTH_UNITS.get(_units(ds[name]))
    if metres is None or not crs.is_projected or not crs.axis_info:
        return values
    crs_metres = crs.axis_info[0].unit_conversion_factor
    if not crs_metres or metres == crs_metres:
        return values
    return values * (metres / crs_metres)


def _is_regular(values: Any) -> bool:
    """True when ``values`` step evenly, within 1e-4 of the step, or within
    the rounding of float32 when they are float32 numbers (lat/lon written
    as float32: a 0.01 degree step at 100 E rounds to 0.0099945 .. 0.0100021,
    which GDAL, too, reads as regular)."""
    import numpy as np  # noqa: PLC0415

    if values.size < 2:
        return False
    numbers = values.astype("float64")
    steps = np.diff(numbers)
    step = float(steps.mean())
    tolerance = 1e-4 * abs(step)
    if values.dtype.kind == "f" and np.array_equal(numbers, numbers.astype("float32"), equal_nan=True):
        # each value off by up to half a float32 unit in the last place: a step by up to one
        tolerance = max(tolerance, 2.0 * float(np.finfo("float32").eps) * float(np.nanmax(np.abs(numbers))))
    return step != 0 and bool(np.all(np.abs(steps - step) <= tolerance))


def _tidy(value: Any) -> float:
    """A step computed from float coordinates, without the last digits of
    rounding noise (``0.009999999999999927`` → ``0.01``)."""
    return float(f"{float(value):.12g}")


def _number(value: Any) -> Any:
    """A numpy scalar as the plain Python number JSON can hold."""
    return value.item() if hasattr(value, "item") else value


def _coordinate_values(name: Hashable, var: Any) -> Any:
    """The numbers of a coordinate as CF means them, as a float64 array:
    ``scale_factor``/``add_offset`` applied (xarray's CF decoding), NaN where
    the stored value is a fill value (``_FillValue``, ``missing_value``),
    lies outside ``valid_min``/``valid_max``/``valid_range`` (compared as
    stored, as CF says), or is not finite. The cube is opened without
    masking (values as stored, :data:`_DECODE`), so this is where a
    coordinate is decoded; ``var`` is not modified."""
    import numpy as np  # noqa: PLC0415
    import xarray as xr  # noqa: PLC0415

    variable = getattr(var, "variable", var)
    attrs = dict(variable.attrs)
    for key in ("_FillValue", "missing_value", "scale_factor", "add_offset", "_Unsigned"):
        if key not in attrs and key in variable.encoding:
            attrs[key] = variable.encoding[key]
    raw = np.asarray(variable.values)
    outside = np.zeros(raw.shape, dtype=bool)
    low, high = attrs.get("valid_min"), attrs.get("valid_max")
    if attrs.get("valid_range") is not None and np.size(attrs["valid_range"]) == 2:
        low, high = np.asarray(attrs["valid_range"]).ravel()
    if variable.ndim == 1 and variable.dims == (name,):
        # a coordinate variable has no missing values (CF 5); a fill value of
        # 0 on one is a storage default (a Zarr v2 array's fill_value unless
        # set, which xarray reports as _FillValue): masked, it made holes of 0.
        # One declared otherwise (-9999) still marks a cell never written: a
        # longitude of -9999 is no place (it stretched the bbox to 81 E)
        for key in ("_FillValue", "missing_value"):
            try:
                zero = attrs.get(key) is not None and float(_first(attrs[key])) == 0.0
            except (TypeError, ValueError):
                zero = True  # no number: no fill to apply
            if zero:
                attrs.pop(key, None)
        low = high = None
    for limit, below in ((low, True), (high, False)):
        try:  # a limit that is not one number (text, a list) is ignored
            bound = float(_first(limit)) if limit is not None else None
        except (TypeError, ValueError):
            bound = None
        if bound is not None:
            outside |= raw < bound if below else raw > bound
    decoded = xr.conventions.decode_cf_variable(
        name,
        xr.Variable(variable.dims, raw, attrs),
        mask_and_scale=True,
        decode_times=False,
        decode_timedelta=False,
    )
    values = np.array(decoded.values, dtype="float64")
    values[outside | ~np.isfinite(values)] = np.nan
    return values


#: what to do about latitudes outside [-90, 90]: written into a NEW file
LATITUDE_FIX = (
    "Declare the fill value the file uses in the coordinate's _FillValue, missing_value or "
    "valid_min/valid_max attribute, or correct the latitudes, in a new file (never over the original), "
    "and register that"
)


def _check_latitudes(lat: Any, name: str, where: str) -> None:
    """Raise :class:`InputError` when a latitude coordinate (fill values
    already NaN) holds a value outside [-90, 90]: such a number is no
    place on Earth, and never reaches an item."""
    import numpy as np  # noqa: PLC0415

    finite = lat[np.isfinite(lat)]
    bad = finite[np.abs(finite) > 90.0]
    if bad.size:
        raise InputError(
            f"{where}: the latitude coordinate {name!r} holds {bad.size} value(s) outside [-90, 90] "
            f"(from {_tidy(bad.min())} to {_tidy(bad.max())}) not declared as missing. {LATITUDE_FIX}"
        )


@dataclass
class _Grid:
    """Where the cube lies: its horizontal dimensions and footprint."""

    x_dim: str
    y_dim: str
    geometry: dict[str, Any]
    bbox: list[float]
    properties: dict[str, Any]
    dimensions: dict[str, dict[str, Any]]
    #: ``raster:spatial_resolution`` in metres, when the grid is regular
    resolution: float | None = None


def _reference_system(crs: Any) -> int | dict[str, Any]:
    code = crs.to_epsg(min_confidence=100)
    return int(code) if code is not None else dict(crs.to_json_dict())


def _crs_fields(crs: Any) -> dict[str, Any]:
    """``proj:code`` for an exact authority match, else WKT2 + PROJJSON."""
    authority = crs.to_authority(min_confidence=100)
    if authority:
        return {"proj:code": f"{authority[0]}:{authority[1]}"}
    return {"proj:code": None, "proj:wkt2": crs.to_wkt("WKT2_2019"), "proj:projjson": crs.to_json_dict()}


def _regular_grid(x_name: str, y_name: str, xs: Any, ys: Any, crs: Any, where: str) -> _Grid:
    """A grid with 1-D x and y coordinates (``xs``/``ys``, decoded), regular
    in both: affine transform (north-up, the way GDAL presents it),
    footprint through :func:`producer.extract.footprint.footprint`."""
    from affine import Affine  # noqa: PLC0415
    from rasterio.crs import CRS as RioCRS  # noqa: PLC0415

    width, height = int(xs.size), int(ys.size)
    step_x = (xs[-1] - xs[0]) / (width - 1)
    step_y = abs((ys[-1] - ys[0]) / (height - 1))
    transform = Affine(step_x, 0.0, float(xs[0] - step_x / 2), 0.0, -step_y, float(ys.max() + step_y / 2))
    rio_crs = RioCRS.from_wkt(crs.to_wkt())
    try:
        geometry, bbox = _footprint.footprint(rio_crs, transform, width, height)
    except ProducerError as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    native = _footprint.native_bbox(transform, width, height)
    properties = {
        **_crs_fields(crs),
        "proj:shape": [height, width],
        "proj:transform": [float(v) for v in tuple(transform)[:6]],
        "proj:bbox": native,
    }
    system = _reference_system(crs)
    dims = {
        x_name: {
            "type": "spatial",
            "axis": "x",
            "extent": [native[0], native[2]],
            "step": _tidy(step_x),
            "reference_system": system,
        },
        y_name: {
            "type": "spatial",
            "axis": "y",
            "extent": [native[1], native[3]],
            "step": _tidy((ys[-1] - ys[0]) / (height - 1)),
            "reference_system": system,
        },
    }
    resolution = spatial_resolution(rio_crs, transform, native)
    return _Grid(x_name, y_name, geometry, bbox, properties, dims, resolution)


def _ring_geometry(
    lon: Any, lat: Any, where: str, extremes: tuple[float, float] | None = None
) -> tuple[dict[str, Any], list[float]]:
    """Polygon and bbox of a closed outline of lon/lat points, built by
    :func:`producer.extract.footprint.footprint_from_lonlat` (the rules of a
    raster's footprint: an outline around a pole becomes a polygon over
    it, the pole nearer to the cells' ``extremes`` of latitude; one across
    the antimeridian is cut there)."""
    try:
        return _footprint.footprint_from_lonlat(lon, lat, extremes)
    except InputError as exc:
        raise NoGeoreferenceError(
            f"{where}: the lat/lon coordinates give no footprint: {exc}. {GEOREF_FIX}"
        ) from None


def _outline(array: Any) -> Any:
    """Points along the border of a 2-D array (clockwise in index space,
    at most :data:`_OUTLINE_POINTS` per edge)."""
    import numpy as np  # noqa: PLC0415

    rows, cols = array.shape
    r = np.unique(np.linspace(0, rows - 1, min(rows, _OUTLINE_POINTS)).round().astype(int))
    c = np.unique(np.linspace(0, cols - 1, min(cols, _OUTLINE_POINTS)).round().astype(int))
    return np.concatenate(
        [array[0, c[:-1]], array[r[:-1], cols - 1], array[rows - 1, c[::-1][:-1]], array[r[::-1][:-1], 0]]
    )


def _per_step(var: Any) -> bool:
    """Whether ``var`` is a lat/lon array written once per time step
    (WRF's ``XLAT(Time, south_north, west_east)``): 3-D, along a time
    dimension first."""
    return var.ndim == 3 and str(var.dims[0]).lower() in _TIME_NAMES


def _first_step(lon_name: str, lat_name: str, lon_var: Any, lat_var: Any, where: str) -> tuple[Any, Any]:
    """The lat/lon arrays ``lon_var``/``lat_var`` (see :func:`_per_step`)
    at their first time step, which is every step's grid; a grid that moves
    from step to step (a WRF moving nest) is no one footprint, and is
    refused."""
    import numpy as np  # noqa: PLC0415

    step = str(lon_var.dims[0])
    if int(lon_var.sizes[step]) > 1:
        for name, var in ((lat_name, lat_var), (lon_name, lon_var)):
            same = all(
                np.allclose(
                    _coordinate_values(name, first),
                    _coordinate_values(name, last),
                    rtol=0.0,
                    atol=1e-5,
                    equal_nan=True,
                )
                for _, (first, last) in _row_blocks(var.isel({step: 0}), var.isel({step: -1}))
            )
            if not same:
                raise NoGeoreferenceError(
                    f"{where}: its lat/lon arrays {lat_name!r}/{lon_name!r} change along {step!r} (a moving "
                    "nest, as WRF writes one that follows a storm): the grid is not one place for the whole "
                    f"file. Register one time step per file, e.g. `ncks -d {step},0 in.nc step0.nc` or with "
                    f"xarray: ds.isel({step}=[0]).to_netcdf('step0.nc'), then register those"
                )
    return lon_var.isel({step: 0}), lat_var.isel({step: 0})


#: cells of a curvilinear grid's lat/lon arrays decoded at a time: the
#: arrays are read a block of rows at a time, never held whole (a 4000 x
#: 4000 grid's float64 pair is 256 MB, and each step of the work copies it)
_BLOCK_CELLS = 1 << 16


def _chunk_rows(var: Any, dim: Hashable) -> int:
    """Rows (along ``dim``) of one chunk of ``var`` as stored (1 when it is
    not chunked)."""
    chunks = (getattr(var, "encoding", None) or {}).get("preferred_chunks") or {}
    return max(1, int(chunks.get(dim) or 1))


def _row_blocks(*variables: Any, axis: int = 0) -> Iterator[tuple[slice, list[Any]]]:
    """Blocks of about :data:`_BLOCK_CELLS` cells of ``variables`` (of one
    shape, cut along their dimension ``axis``): ``(rows, [each variable's block])``. Stored in chunks of
    more rows than a block holds, the variables are read a band of whole
    chunks at a time and each band cut into blocks in memory: a chunk read
    for every block it overlaps was decompressed again for each (minutes
    for a 4000 x 4000 array stored as one chunk)."""
    # the variables alone: a DataArray of a coordinate loads its coordinates with it (lat with lon)
    variables = tuple(getattr(v, "variable", v) for v in variables)
    shape, dim = variables[0].shape, variables[0].dims[axis]
    rows, cols = int(shape[axis]), math.prod(int(n) for i, n in enumerate(shape) if i != axis)
    count = max(1, _BLOCK_CELLS // max(cols, 1))
    unit = math.lcm(*(_chunk_rows(v, dim) for v in variables))
    if unit <= count:  # whole chunks fit in a block
        count -= count % unit
        for start in range(0, rows, count):
            block = slice(start, min(rows, start + count))
            yield block, [v.isel({dim: block}) for v in variables]
        return
    for first in range(0, rows, unit):
        band = slice(first, min(rows, first + unit))
        held: list[Any] = []
        for v in variables:  # one band in memory at a time
            held.append(v.isel({dim: band}).load())
        for start in range(band.start, band.stop, count):
            block = slice(start, min(band.stop, start + count))
            inside = slice(block.start - first, block.stop - first)
            yield block, [v.isel({dim: inside}) for v in held]
        held.clear()


@dataclass
class _Cells:
    """What a curvilinear grid's item says about all of its cells, gathered
    a block of rows at a time (:func:`_scan_cells`)."""

    #: rows / columns holding at least one cell with both positions
    rows: Any
    cols: Any
    missing: bool = False
    lat_min: float = math.inf
    lat_max: float = -math.inf
    lon_min: float = math.inf
    lon_max: float = -math.inf
    #: latitudes outside [-90, 90]: how many, lowest, highest
    bad: int = 0
    bad_min: float = math.inf
    bad_max: float = -math.inf
    #: sums and counts of the changes of longitude along rows (0) and columns (1)
    change: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    #: lon/lat at the rows and columns :func:`_outline` takes of the whole
    #: grid (:func:`_outline_indices`), picked from the blocks as they pass
    lattice: tuple[Any, Any] | None = None

    def any_valid(self) -> bool:
        return bool(self.rows.any())


def _positions(lon_name: str, lat_name: str, lon_var: Any, lat_var: Any, index: Mapping[str, Any]) -> Any:
    """Decoded ``lon``/``lat`` of the cells ``index`` selects (by dimension
    name; ``{}``: all), NaN in both where either is missing."""
    return _decoded(lon_name, lat_name, lon_var.isel(index), lat_var.isel(index))


def _decoded(lon_name: str, lat_name: str, lon_var: Any, lat_var: Any) -> Any:
    """Decoded ``lon``/``lat`` of the cells of ``lon_var``/``lat_var``, NaN
    in both where either is missing."""
    import numpy as np  # noqa: PLC0415

    lon = _coordinate_values(lon_name, lon_var)
    lat = _coordinate_values(lat_name, lat_var)
    missing = ~(np.isfinite(lon) & np.isfinite(lat))
    lon[missing] = lat[missing] = np.nan
    return lon, lat, missing


def _lon_steps(lon: Any, axis: int) -> Any:
    """Absolute changes of longitude between neighbours along ``axis``
    (across the antimeridian the short way), where both hold a position."""
    import numpy as np  # noqa: PLC0415

    steps = np.abs(np.diff(lon, axis=axis))
    if bool((steps > 180.0).any()):  # the modulo costs most of a pass: only where it changes something
        steps = np.abs((np.diff(lon, axis=axis) + 180.0) % 360.0 - 180.0)
    return steps[np.isfinite(steps)]


def _scan_cells(lon_name: str, lat_name: str, lon_var: Any, lat_var: Any) -> _Cells:
    """One pass over every cell of the grid, a block of rows at a time."""
    import numpy as np  # noqa: PLC0415

    height, width = (int(n) for n in lon_var.shape)
    cells = _Cells(rows=np.zeros(height, bool), cols=np.zeros(width, bool))
    picked_rows, picked_cols = _outline_indices(0, height - 1), _outline_indices(0, width - 1)
    lattice = np.full((2, picked_rows.size, picked_cols.size), np.nan)
    previous = None  # the last row of the previous block: the change across blocks
    for block, (lon_block, lat_block) in _row_blocks(lon_var, lat_var):
        lon, lat, missing = _decoded(lon_name, lat_name, lon_block, lat_block)
        valid = ~missing
        cells.missing = cells.missing or bool(missing.any())
        cells.rows[block] = valid.any(axis=1)
        cells.cols |= valid.any(axis=0)
        if valid.any():
            cells.lat_min = min(cells.lat_min, float(np.nanmin(lat)))
            cells.lat_max = max(cells.lat_max, float(np.nanmax(lat)))
            cells.lon_min = min(cells.lon_min, float(np.nanmin(lon)))
            cells.lon_max = max(cells.lon_max, float(np.nanmax(lon)))
        bad = lat[valid & (np.abs(lat) > 90.0)]
        if bad.size:
            cells.bad += int(bad.size)
            cells.bad_min, cells.bad_max = (
                min(cells.bad_min, float(bad.min())),
                max(cells.bad_max, float(bad.max())),
            )
        joined = lon if previous is None else np.concatenate([previous, lon])
        for axis, part in ((0, joined), (1, lon)):
            steps = _lon_steps(part, axis) if part.shape[axis] >= 2 else part[:0]
            cells.change[2 * axis] += float(steps.sum())
            cells.change[2 * axis + 1] += steps.size
        previous = lon[-1:]
        here = (picked_rows >= block.start) & (picked_rows < block.stop)
        local = picked_rows[here] - block.start
        lattice[0, here], lattice[1, here] = lon[local][:, picked_cols], lat[local][:, picked_cols]
        del lon_block, lat_block  # views of a band: the next band is read without this one
    cells.lattice = (lattice[0], lattice[1])
    return cells


def _mean_changes(cells: _Cells) -> tuple[float, float]:
    """Mean change of longitude along each of the two dimensions."""
    total0, count0, total1, count1 = cells.change
    return (total0 / count0 if count0 else 0.0), (total1 / count1 if count1 else 0.0)


def _curvilinear_grid(ds: Any, lon_name: str, lat_name: str, where: str) -> _Grid:
    """A grid whose lat/lon are 2-D arrays: footprint from their outline
    (cell centres), ``proj:shape`` only (no affine transform exists).

    The arrays are read a block of rows at a time (:func:`_scan_cells`):
    extremes, extents, the rows and columns holding positions and the axis
    choice come from every cell, the outline from the cells along the border
    of those rows and columns, read alone."""
    import numpy as np  # noqa: PLC0415

    lon_var, lat_var = ds[lon_name], ds[lat_name]
    if _per_step(lon_var) and lon_var.dims == lat_var.dims:
        lon_var, lat_var = _first_step(lon_name, lat_name, lon_var, lat_var, where)
    if lon_var.dims != lat_var.dims:
        lat_var = lat_var.transpose(*lon_var.dims)
    dim0, dim1 = (str(d) for d in lon_var.dims)
    cells = _scan_cells(lon_name, lat_name, lon_var, lat_var)
    if cells.bad:
        raise InputError(
            f"{where}: the latitude coordinate {lat_name!r} holds {cells.bad} value(s) outside [-90, 90] "
            f"(from {_tidy(cells.bad_min)} to {_tidy(cells.bad_max)}) not declared as missing. {LATITUDE_FIX}"
        )
    if not cells.any_valid():
        raise NoGeoreferenceError(
            f"{where}: the lat/lon arrays {lat_name!r}/{lon_name!r} hold no valid coordinates. {GEOREF_FIX}"
        )
    if (
        not cells.missing
        and _WRF_LATLON.match(lon_name)
        and _WRF_LATLON.match(lat_name)
        and _wrf_crs(ds) is not None
    ):
        lon, lat, _ = _positions(lon_name, lat_name, lon_var, lat_var, {})
        projected = _wrf_projected_grid(ds, (lon_name, lat_name), [dim0, dim1], lon, lat, where)
        if projected is not None:
            return projected
    # the border of the rows and columns that hold a position (a swath's
    # missing scan lines left out): the outline of the whole grid's
    rows, cols = np.flatnonzero(cells.rows), np.flatnonzero(cells.cols)
    box = ((int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1])))
    if box == ((0, lon_var.shape[0] - 1), (0, lon_var.shape[1] - 1)) and cells.lattice is not None:
        edge_lon, edge_lat = (_outline(a) for a in cells.lattice)
    else:
        edge_lon, edge_lat = _border(lon_name, lat_name, lon_var, lat_var, *box)
    extremes = (cells.lat_min, cells.lat_max)  # every cell's, not the border's
    geometry, bbox = _ring_geometry(edge_lon, edge_lat, where, extremes)
    # the dimension along which longitude changes most is x (nearly equal: the
    # second, as for an exact tie, whatever the order of the sums)
    change0, change1 = _mean_changes(cells)
    tie = abs(change0 - change1) <= 1e-9 * max(change0, change1)
    x_dim, y_dim = (dim0, dim1) if change0 > change1 and not tie else (dim1, dim0)
    note = f"curvilinear grid index; coordinates in {lon_name!r} and {lat_name!r}"
    dims = {
        x_dim: {
            "type": "spatial",
            "axis": "x",
            "extent": _curvilinear_lon_extent(cells, bbox, lon_name, lat_name, lon_var, lat_var),
            "reference_system": 4326,
            "description": note,
        },
        y_dim: {
            "type": "spatial",
            "axis": "y",
            "extent": [cells.lat_min, cells.lat_max],
            "reference_system": 4326,
            "description": note,
        },
    }
    shape = [int(ds.sizes[y_dim]), int(ds.sizes[x_dim])]
    return _Grid(x_dim, y_dim, geometry, bbox, {"proj:shape": shape}, dims)


def _border(
    lon_name: str, lat_name: str, lon_var: Any, lat_var: Any, rows: tuple[int, int], cols: tuple[int, int]
) -> tuple[Any, Any]:
    """:func:`_outline` of the lon/lat of the cells in ``rows`` and ``cols``
    (first and last, inclusive), reading the cells it takes alone: the four
    edges of the lattice of at most :data:`_OUTLINE_POINTS` rows and columns
    whose outline is the block's (read whole, that lattice touched every
    chunk of arrays stored in small chunks)."""
    import numpy as np  # noqa: PLC0415

    dim0, dim1 = (str(d) for d in lon_var.dims)
    r, c = _outline_indices(*rows), _outline_indices(*cols)
    lon, lat = np.full((r.size, c.size), np.nan), np.full((r.size, c.size), np.nan)
    edges = (
        ((0, slice(None)), {dim0: r[:1], dim1: c}),
        ((-1, slice(None)), {dim0: r[-1:], dim1: c}),
        ((slice(None), 0), {dim0: r, dim1: c[:1]}),
        ((slice(None), -1), {dim0: r, dim1: c[-1:]}),
    )
    for at, index in edges:
        edge_lon, edge_lat, _ = _positions(lon_name, lat_name, lon_var, lat_var, index)
        lon[at], lat[at] = edge_lon.ravel(), edge_lat.ravel()
    return _outline(lon), _outline(lat)


def _outline_indices(first: int, last: int) -> Any:
    """The indices from ``first`` to ``last`` (inclusive) that :func:`_outline`
    takes of an array of that many rows (or columns): its outline is the
    outline of these rows and columns alone."""
    import numpy as np  # noqa: PLC0415

    count = last - first + 1
    return first + np.unique(np.linspace(0, count - 1, min(count, _OUTLINE_POINTS)).round().astype(int))


def _curvilinear_lon_extent(
    cells: _Cells, bbox: list[float], lon_name: str, lat_name: str, lon_var: Any, lat_var: Any
) -> list[float]:
    """:func:`_lon_extent` of a curvilinear grid's longitudes: from the
    pass over the cells, or, across the antimeridian (the longitudes of one
    side counted on past 180, where the bbox says), from a second pass a
    block at a time."""
    if bbox[0] <= bbox[2]:
        return [cells.lon_min, cells.lon_max]
    low, high = math.inf, -math.inf
    for _, (lon_block, lat_block) in _row_blocks(lon_var, lat_var):
        lon, _, missing = _decoded(lon_name, lat_name, lon_block, lat_block)
        if not missing.all():
            part_low, part_high = _lon_extent(lon, bbox)
            low, high = min(low, part_low), max(high, part_high)
    return [low, high]


#: WRF's earth: a sphere of 6370 km (WRF's EARTH_RADIUS_M), not WGS84
_WRF_SPHERE = "+a=6370000 +b=6370000 +units=m +no_defs"


def _wrf_number(ds: Any, name: str) -> float | None:
    """The global attribute ``name`` of WRF/WPS output as a finite number."""
    try:
        value = float(_first(ds.attrs[name]))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) else None


def _wrf_crs(ds: Any) -> Any | None:
    """The CRS of a WRF/WPS grid from its global attributes (``MAP_PROJ`` 1
    Lambert conformal, 2 polar stereographic, 3 Mercator; ``TRUELAT1``/
    ``TRUELAT2``, ``STAND_LON``, ``MOAD_CEN_LAT``, ``CEN_LON``) on WRF's
    sphere, as WRF's own map code (module_llxy) defines them; ``None`` for
    another projection (6: lat/lon, rotated or not) or a parameter missing."""
    from pyproj import CRS  # noqa: PLC0415
    from pyproj.exceptions import CRSError  # noqa: PLC0415

    kind = _wrf_number(ds, "MAP_PROJ")
    lat1, lat2 = _wrf_number(ds, "TRUELAT1"), _wrf_number(ds, "TRUELAT2")
    lon0, lat0 = _wrf_number(ds, "STAND_LON"), _wrf_number(ds, "MOAD_CEN_LAT")
    centre = _wrf_number(ds, "CEN_LON")
    if kind == 1 and None not in (lat1, lat2, lon0, lat0):
        text = f"+proj=lcc +lat_1={lat1} +lat_2={lat2} +lat_0={lat0} +lon_0={lon0}"
    elif kind == 2 and lat1 is not None and lon0 is not None:
        # the pole of the hemisphere TRUELAT1 is in (WRF: hemi = -1 when it is negative)
        text = f"+proj=stere +lat_ts={lat1} +lat_0={90 if lat1 >= 0 else -90} +lon_0={lon0}"
    elif kind == 3 and lat1 is not None and centre is not None:
        # WRF counts Mercator longitudes from the domain, not STAND_LON: centred
        # there, the grid never meets the projection's edge
        text = f"+proj=merc +lat_ts={lat1} +lon_0={centre}"
    else:
        return None
    try:
        return CRS.from_proj4(f"{text} +x_0=0 +y_0=0 {_WRF_SPHERE}")
    except CRSError:
        return None


def _wrf_projected_grid(
    ds: Any, names: tuple[str, str], dims: list[str], lon: Any, lat: Any, where: str
) -> _Grid | None:
    """The regular grid a WRF/WPS lat/lon array (``lon``/``lat`` over
    ``dims``, ``(south_north, west_east)``) is in its map projection: CRS
    from the global attributes (:func:`_wrf_crs`), cells ``DX``/``DY``
    apart. Only when the arrays agree: every point, projected, lies within
    a small fraction of a cell of that regular grid (float32 lat/lon are
    good to a metre); else ``None`` (the lat/lon outline stands)."""
    import numpy as np  # noqa: PLC0415
    from pyproj import CRS, Transformer  # noqa: PLC0415

    crs = _wrf_crs(ds)
    dx, dy = _wrf_number(ds, "DX"), _wrf_number(ds, "DY")
    if crs is None or not dx or not dy or dx <= 0 or dy <= 0 or lon.ndim != 2 or min(lon.shape) < 2:
        return None
    to_map = Transformer.from_crs(CRS.from_epsg(4326), crs, always_xy=True)
    x, y = (np.asarray(v, dtype="float64") for v in to_map.transform(lon, lat))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    rows, cols = np.indices(x.shape)
    x0, y0 = float(np.mean(x - cols * dx)), float(np.mean(y - rows * dy))
    tolerance = max(0.01 * min(dx, dy), 5.0)
    if np.max(np.abs(x - (x0 + cols * dx))) > tolerance or np.max(np.abs(y - (y0 + rows * dy))) > tolerance:
        return None
    y_dim, x_dim = dims
    xs, ys = x0 + dx * np.arange(x.shape[1]), y0 + dy * np.arange(x.shape[0])
    grid = _regular_grid(x_dim, y_dim, xs, ys, crs, where)
    note = f"WRF grid in its map projection (DX, DY apart); cell latitudes and longitudes in {names[1]!r}/{names[0]!r}"
    for dim in (x_dim, y_dim):
        grid.dimensions[dim]["description"] = note
    return grid


def _axis_dim(ds: Any, name: str) -> str:
    """The dimension a 1-D horizontal coordinate runs along: its own name
    for a dimension coordinate, ``y`` for ``lat(y)``."""
    return str(ds[name].dims[0])


def _horizontal_axes(ds: Any) -> tuple[list[str], list[str], list[str], list[str]]:
    """Candidate horizontal coordinates of ``ds``, in file order: 1-D x and
    y dimension coordinates (then 1-D longitudes and latitudes along two
    other dimensions that have no coordinate of their own, ``lon(x)`` and
    ``lat(y)``: CF auxiliary coordinates of a grid), 2-D longitude and
    latitude arrays."""
    one_d = {name: var for name, var in ds.coords.items() if var.ndim == 1 and name in ds.dims}
    two_d = {name: var for name, var in ds.coords.items() if var.ndim == 2 or _per_step(var)}
    aux = {
        name: var
        for name, var in ds.coords.items()
        if var.ndim == 1 and name not in ds.dims and var.dims[0] not in ds.variables
    }
    aux_lon = [str(n) for n, v in aux.items() if _is_lon(n, v)]
    aux_lat = [str(n) for n, v in aux.items() if _is_lat(n, v) and not _is_lon(n, v)]
    grid = bool(aux_lon and aux_lat) and _axis_dim(ds, aux_lon[0]) != _axis_dim(ds, aux_lat[0])
    return (
        [str(n) for n, v in one_d.items() if _is_x(n, v)] + (aux_lon[:1] if grid else []),
        [str(n) for n, v in one_d.items() if _is_y(n, v)] + (aux_lat[:1] if grid else []),
        [str(n) for n, v in two_d.items() if _is_lon(n, v)],
        [str(n) for n, v in two_d.items() if _is_lat(n, v)],
    )


#: a horizontal grid: ``(x, y)`` names of its 1-D coordinates, or ``(lon, lat)``
#: of its 2-D arrays, with ``True`` for the 2-D kind
_GridKey = tuple[str, str, bool]


def _variable_grids(ds: Any) -> dict[_GridKey, list[str]]:
    """The horizontal grid of each data variable (1-D x/y dimension
    coordinates first, else 2-D lon/lat arrays over its dimensions), as
    grid → its variables, in file order. Variables on no grid (bounds, a
    time series, a grid mapping) are left out."""
    xs, ys, lons, lats = _horizontal_axes(ds)
    out: dict[_GridKey, list[str]] = {}
    for name, var in ds.data_vars.items():
        dims = {str(d) for d in var.dims}
        x = next((n for n in xs if _axis_dim(ds, n) in dims), None)
        y = next((n for n in ys if _axis_dim(ds, n) in dims and n != x), None)
        key: _GridKey | None = (x, y, False) if x and y else None
        if key is None:
            lon = next((n for n in lons if {str(d) for d in ds[n].dims} <= dims), None)
            lon_dims = {str(d) for d in ds[lon].dims} if lon else set()
            lat = next((n for n in lats if {str(d) for d in ds[n].dims} == lon_dims), None)
            key = (lon, lat, True) if lon and lat else None
        if key is not None:
            out.setdefault(key, []).append(str(name))
    return out


def get_grid(ds: Any, where: str) -> _Grid:
    """Find the horizontal grid of ``ds`` (see the module docstring); raise
    :class:`NoGeoreferenceError` with a fix that writes a new file when
    there is none.

    Data variables on several grids (a regional and a global one, staggered
    grids): the footprint covers every grid (:func:`_union_of_grids`)."""
    grids = _variable_grids(ds)
    if len(grids) > 1:
        return _union_of_grids(ds, grids, where)
    key = next(iter(grids), None)
    return _one_grid(ds, where, key, _grid_mapping_name(ds))


def _one_grid(ds: Any, where: str, key: _GridKey | None, mapping: str | None) -> _Grid:
    """The grid ``key`` (None: the first x/y pair among the coordinates,
    else the first lon/lat arrays), its CRS named by the grid mapping
    variable ``mapping`` (None: lat/lon are EPSG:4326)."""
    import numpy as np  # noqa: PLC0415
    from pyproj import CRS  # noqa: PLC0415

    xs_found, ys_found, lons, lats = _horizontal_axes(ds)
    if key is None:
        x_name = xs_found[0] if xs_found else None
        y_name = next((n for n in ys_found if n != x_name), None)
    else:
        x_name, y_name = (None, None) if key[2] else key[:2]
    if x_name and y_name:
        xs, ys = _coordinate_values(x_name, ds[x_name]), _coordinate_values(y_name, ds[y_name])
        if mapping is not None:
            crs = _crs_of(ds, mapping, where)
        elif _is_lon(x_name, ds[x_name]) and _is_lat(y_name, ds[y_name]):
            crs = CRS.from_epsg(4326)  # CF: latitude/longitude coordinates are geographic
        else:
            raise _missing_grid_mapping(ds, x_name, y_name, where) or NoGeoreferenceError(
                f"{where}: the x/y coordinates {x_name!r}/{y_name!r} have no grid_mapping naming their "
                f"CRS. {GEOREF_FIX}"
            )
        if mapping is not None:
            xs, ys = (_scan_angle_metres(ds, mapping, n, v) for n, v in ((x_name, xs), (y_name, ys)))
            xs, ys = (_in_crs_units(ds, n, v, crs) for n, v in ((x_name, xs), (y_name, ys)))
        if ds.sizes[_axis_dim(ds, x_name)] < 2 or ds.sizes[_axis_dim(ds, y_name)] < 2:
            raise NoGeoreferenceError(
                f"{where}: the grid has a single row or column, so its cell size is unknown. {GEOREF_FIX}"
            )
        if crs.is_geographic:
            _check_latitudes(ys, y_name, where)
        for name, values in ((x_name, xs), (y_name, ys)):
            if int(np.isfinite(values).sum()) < 2:
                raise NoGeoreferenceError(
                    f"{where}: the coordinate {name!r} holds fewer than 2 valid values (the rest are fill "
                    f"values or NaN). {GEOREF_FIX}"
                )
        if crs.is_geographic and not _is_regular(xs) and _is_regular(_unwrapped(xs)):
            xs = _unwrapped(xs)  # regular across the antimeridian: 170 .. 178, -180 .. -174
        x_dim, y_dim = _axis_dim(ds, x_name), _axis_dim(ds, y_name)  # cube:dimensions: the file's names
        if _is_regular(xs) and _is_regular(ys):
            return _regular_grid(x_dim, y_dim, xs, ys, crs, where)
        # irregular 1-D axes (e.g. a Gaussian grid), or axes with missing values:
        # outline of the mesh, no transform
        return _irregular_grid(x_dim, y_dim, xs, ys, crs, where)
    lon_name, lat_name = key[:2] if key else (lons[0] if lons else None, lats[0] if lats else None)
    if lon_name and lat_name:
        return _curvilinear_grid(ds, lon_name, lat_name, where)
    sampled = _sampling_coordinates(ds)
    if sampled:
        feature = str(ds.attrs.get("featureType") or "").strip()
        kind = f"featureType {feature!r}: " if feature else ""
        raise NoGeoreferenceError(
            f"{where}: its latitudes and longitudes ({', '.join(map(repr, sampled))}) run along "
            f"{_dims_of(ds, sampled)}, not along axes of their own: {kind}a CF discrete sampling geometry "
            "(stations, a trajectory, profiles), not a grid. Only gridded NetCDF and Zarr are registered; "
            "grid the data onto a regular lat/lon grid in a new file first (e.g. with xarray, or "
            "`cdo remapbil`), then register that"
        )
    raise NoGeoreferenceError(f"{where}: no horizontal coordinates (x/y or lat/lon) found. {GEOREF_FIX}")


def _sampling_coordinates(ds: Any) -> list[str]:
    """The scalar or 1-D latitude and longitude coordinates of ``ds`` along a
    dimension of another name (``lat(station)``, ``lon(obs)``, one station's
    ``lat``): the places of a CF discrete sampling geometry, which has no
    grid. Empty unless both are there."""
    lats = [str(n) for n, v in ds.coords.items() if v.ndim <= 1 and n not in ds.dims and _is_lat(n, v)]
    lons = [str(n) for n, v in ds.coords.items() if v.ndim <= 1 and n not in ds.dims and _is_lon(n, v)]
    return [lats[0], lons[0]] if lats and lons else []


def _dims_of(ds: Any, names: list[str]) -> str:
    dims = sorted({str(d) for n in names for d in ds[n].dims})
    return " and ".join(repr(d) for d in dims) or "no dimension (one place)"


_CRS_FIELDS = ("proj:code", "proj:wkt2", "proj:projjson")


def _wgs84_box(bbox: list[float]) -> dict[str, Any]:
    """A grid's WGS84 ``bbox`` as the ``proj:*`` fields of a one-cell grid
    in EPSG:4326 (east past 180 when it crosses the antimeridian), the form
    :func:`producer.extract.grids.union_footprint` takes."""
    west, south, east, north = (float(v) for v in bbox)
    if east < west:
        east += 360.0
    cell = [east - west, 0.0, west, 0.0, south - north, north]
    return {
        "proj:code": "EPSG:4326",
        "proj:shape": [1, 1],
        "proj:transform": cell,
        "proj:bbox": [west, south, east, north],
    }


def _union_of_grids(ds: Any, grids: Mapping[_GridKey, list[str]], where: str) -> _Grid:
    """One :class:`_Grid` for data variables on several horizontal grids.

    Footprint and bbox: the union of every grid's, as a multi-asset item's
    (:func:`producer.extract.grids.union_footprint`): the envelope of the grids
    in their CRS when they are all regular in one CRS, else of their WGS84
    boxes; it covers every variable, so a search over any of them finds
    the item. ``cube:dimensions`` describes each grid's x/y axes (extent,
    step, reference system): that is where a datacube states per-variable
    grids. The item's ``proj:*`` can describe one grid only: the CRS fields
    stay when every grid shares the CRS, ``proj:shape``/``proj:transform``/
    ``proj:bbox`` only when the grids are the same; else they are left
    out rather than stating the first grid's as the file's. Each grid's
    CRS is the grid mapping of its own variables."""
    from producer.extract.grids import union_footprint  # noqa: PLC0415 (shared with multi-asset items)

    def mapping(key: _GridKey, names: list[str]) -> str | None:
        own = _grid_mapping_name(ds, names)
        if own is not None or key[2] or (_is_lon(key[0], ds[key[0]]) and _is_lat(key[1], ds[key[1]])):
            return own  # lat/lon without one of their own: EPSG:4326, not another grid's CRS
        return _grid_mapping_name(ds)  # x/y: the file's grid mapping, as for a single grid

    built = [_one_grid(ds, where, key, mapping(key, names)) for key, names in grids.items()]
    dimensions: dict[str, dict[str, Any]] = {}
    for grid in built:
        dimensions.update(grid.dimensions)
    fields = [grid.properties for grid in built]
    crs = [{k: f[k] for k in _CRS_FIELDS if k in f} for f in fields]
    same_crs = bool(crs[0]) and all(c == crs[0] for c in crs)
    if all(f == fields[0] for f in fields):
        properties = dict(fields[0])
    else:
        properties = dict(crs[0]) if same_crs else {}
    regular = same_crs and all("proj:transform" in f for f in fields)
    try:
        geometry, bbox = union_footprint(fields if regular else [_wgs84_box(g.bbox) for g in built])
    except ProducerError as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    first = built[0]
    return _Grid(first.x_dim, first.y_dim, geometry, bbox, properties, dimensions)


def _unwrapped(lon: Any) -> Any:
    """1-D longitudes that wrap at the antimeridian (170 .. 178, -180 ..
    -174) made continuous (170 .. 186), so that a regular grid across it is
    read as one; ``lon`` itself when it has missing values or does not wrap."""
    import numpy as np  # noqa: PLC0415

    if not np.isfinite(lon).all():
        return lon
    return np.unwrap(lon, period=360.0)


def _lon_extent(lon: Any, bbox: list[float]) -> list[float]:
    """``cube:dimensions`` extent of longitudes ``lon`` (any shape, NaN
    where missing). The datacube extension's extent is lower and upper
    bound, so a grid whose ``bbox`` crosses the antimeridian (west > east)
    gets its longitudes counted on from its west edge (175 .. 185.4, as a
    0-360 grid's are), never the span of the whole globe."""
    import numpy as np  # noqa: PLC0415

    west, east = bbox[0], bbox[2]
    if west > east:  # the gap is east .. west; its middle splits the two sides
        lon = np.where(lon < (west + east) / 2, lon + 360.0, lon)
    return [float(np.nanmin(lon)), float(np.nanmax(lon))]


def _irregular_grid(x_name: str, y_name: str, xs: Any, ys: Any, crs: Any, where: str) -> _Grid:
    """A grid with 1-D x and y coordinates (``xs``/``ys``, decoded, NaN where
    missing) that are not regular: footprint from the outline of the mesh
    of cell centres, extents over the valid values, no transform."""
    import numpy as np  # noqa: PLC0415
    from pyproj import Transformer  # noqa: PLC0415

    # the mesh of cell centres without its rows and columns of missing values,
    # built only at the rows and columns of its outline (the whole mesh of a
    # 0.01 degree grid is billions of cells)
    cols, rows = np.flatnonzero(np.isfinite(xs)), np.flatnonzero(np.isfinite(ys))
    mesh_x, mesh_y = np.meshgrid(
        xs[_outline_indices(int(cols[0]), int(cols[-1]))], ys[_outline_indices(int(rows[0]), int(rows[-1]))]
    )
    transformer = Transformer.from_crs(crs, 4326, always_xy=True)
    lon, lat = transformer.transform(_outline(mesh_x), _outline(mesh_y))
    geometry, bbox = _ring_geometry(np.asarray(lon), np.asarray(lat), where)
    system = _reference_system(crs)
    dims = {
        x_name: {
            "type": "spatial",
            "axis": "x",
            "extent": _lon_extent(xs, bbox)
            if crs.is_geographic
            else [float(np.nanmin(xs)), float(np.nanmax(xs))],
            "reference_system": system,
        },
        y_name: {
            "type": "spatial",
            "axis": "y",
            "extent": [float(np.nanmin(ys)), float(np.nanmax(ys))],
            "reference_system": system,
        },
    }
    properties = {**_crs_fields(crs), "proj:shape": [int(ys.size), int(xs.size)]}
    return _Grid(x_name, y_name, geometry, bbox, properties, dims)


def find_time(ds: Any) -> str | None:
    """Name of the time coordinate: ``axis="T"``, ``standard_name="time"``,
    or a name in :data:`_TIME_NAMES`, with CF ``<unit> since <date>`` units.
    Dimension coordinates first."""
    names = _time_names(ds)
    return names[0] if names else None


def _time_names(ds: Any) -> list[str]:
    """Every coordinate :func:`find_time` would take, in its order."""
    candidates = [*ds.dims, *ds.coords, *ds.data_vars]
    seen: set[str] = set()
    found: list[str] = []
    for key in candidates:
        name = str(key)
        if name in seen or name not in ds.variables:
            continue
        seen.add(name)
        var = ds.variables[name]
        units = _attr(var, "units")
        if " since " not in f" {units.lower()} " and not is_absolute_time(units):
            continue
        if (
            _attr(var, "axis").upper() == "T"
            or _attr(var, "standard_name") == "time"
            or name.lower() in _TIME_NAMES
        ):
            found.append(name)
    return found


def _unsigned(var: Any) -> Any | None:
    """The unsigned dtype of a signed integer variable flagged
    ``_Unsigned = "true"`` (CF 2.2: how a classic NetCDF, which has no
    unsigned types, stores them; GDAL and xarray read it unsigned), else
    ``None``. The cube is opened with ``mask_and_scale=False``, which leaves
    the flag undecoded."""
    import numpy as np  # noqa: PLC0415

    flag = var.attrs.get("_Unsigned", var.encoding.get("_Unsigned"))
    if var.dtype.kind == "i" and str(flag).strip().lower() == "true":
        return np.dtype(f"u{var.dtype.itemsize}")
    return None


def _dtype(var: Any) -> Any:
    """The dtype ``var``'s values mean (see :func:`_unsigned`)."""
    unsigned = _unsigned(var)
    return var.dtype if unsigned is None else unsigned


def _as_read(var: Any, value: Any) -> Any:
    """``value`` (the stored values, or a fill value) as the reader sees
    it: reinterpreted as unsigned under ``_Unsigned = "true"``."""
    import numpy as np  # noqa: PLC0415

    unsigned = _unsigned(var)
    array = np.asarray(value)
    if unsigned is None:
        return array
    return array.astype(var.dtype).view(unsigned)


def _valid_numbers(var: Any, name: Hashable | None = None) -> Any:
    """The values of ``var`` as float64, without its fill values and NaNs.
    ``name``: the variable's name; when it is a coordinate variable (1-D,
    along the dimension of its name) a fill value of 0 is a number like the
    others, as for x/y in :func:`_coordinate_values` (CF 5: no missing
    values; a Zarr v2 array's default fill_value 0 made the first day of a
    ``days since`` axis a hole), one declared otherwise (-9999) is left out."""
    import numpy as np  # noqa: PLC0415

    values = np.asarray(_as_read(var, var.values), dtype="float64").ravel()
    coordinate = name is not None and tuple(var.dims) == (name,)
    for key in ("_FillValue", "missing_value"):
        fill = var.attrs.get(key, var.encoding.get(key))
        if fill is not None:
            number = float(_as_read(var, fill).ravel()[0])
            if not (coordinate and number == 0.0):  # a coordinate's 0: zarr's default, a value
                values = values[values != number]
    return values[np.isfinite(values)]


@dataclass
class _Time:
    name: str
    result: DatetimeResult
    dimension: dict[str, Any]
    #: ``cube:dimensions`` entry of every time axis, ``name``'s included
    dimensions: dict[str, dict[str, Any]]


def get_time(ds: Any, where: str) -> _Time | None:
    """The time coordinate's span (and of its bounds when present) as an
    item datetime, and its ``cube:dimensions`` entry; ``None`` without one.
    Variables on other time dimensions too (``time``, ``time2``): the span
    of them all, and an entry for each."""
    names = _time_names(ds)
    if not names:
        return _wrf_times(ds, where)
    # other time dimensions, and the valid times of a forecast (cfgrib's
    # ``valid_time(time, step)``, standard_name ``time`` beside the reference
    # ``time``): the data's window spans them, not the reference times alone
    others = [
        n
        for n in names[1:]
        if n in ds.dims or (n in ds.coords and _attr(ds.variables[n], "standard_name") == "time")
    ]
    times = [t for t in (_one_time(ds, n, where) for n in [names[0], *others]) if t is not None]
    if len(times) <= 1:
        return times[0] if times else None
    if all(t.result.datetime is not None for t in times) and len({t.result.datetime for t in times}) == 1:
        return _Time(times[0].name, times[0].result, times[0].dimension, {t.name: t.dimension for t in times})
    starts = [t.result.datetime or t.result.start for t in times]
    ends = [t.result.datetime or t.result.end for t in times]
    result = from_time_axis(
        min(s for s in starts if s is not None),
        max(e for e in ends if e is not None),
        steps=2,
        bounded=False,
        name=", ".join(t.name for t in times),
        where=where,
    )
    dimensions = {t.name: t.dimension for t in times}
    return _Time(times[0].name, result, times[0].dimension, dimensions)


#: WRF's time of each step, ``YYYY-MM-DD_HH:MM:SS`` characters
_WRF_TIMES = "Times"
#: the date WPS's geogrid writes into ``Times`` of its static ``geo_em`` files
_WPS_NO_DATE = "0000-00-00"


def _attr_of(ds: Any, name: str) -> str:
    value = ds.attrs.get(name)
    return str(value).strip() if value is not None else ""


def _wrf_times(ds: Any, where: str) -> _Time | None:
    """The time axis of WRF output: its ``Times`` variable (characters,
    ``2024-05-01_00:00:00`` per step, UTC as WRF runs), under the
    dimension it runs along (``Time``); ``None`` without one, or when no step
    was written yet (empty strings)."""
    import numpy as np  # noqa: PLC0415

    var = ds.variables.get(_WRF_TIMES)
    if var is None or var.ndim != 1 or var.dtype.kind not in "SUO":
        return None
    texts = [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in np.asarray(var.values)]
    texts = [t.strip().strip("\x00") for t in texts]
    what = f"{where}: WRF time variable {_WRF_TIMES!r}"
    written = [t for t in texts if t]
    if written and all(t.startswith(_WPS_NO_DATE) for t in written):
        title = _attr_of(ds, "TITLE")
        raise InputError(
            f"{what} holds {written[0]!r}, the no-date WPS writes into a static geo_em file "
            f"(geogrid output{f', {title!r}' if title else ''}: terrain, land use and the grid, which "
            "belong to no time), so the file names no date of its own: give it the date "
            "the product stands for (e.g. the start of the simulation it was made for)",
            hints=(DATETIME_HINT,),
        )
    try:
        times = sorted({parse_datetime(t) for t in texts if t})
    except ValueError as exc:
        raise InputError(
            f"{what} holds a value that is no date ({exc}; WRF writes 'YYYY-MM-DD_HH:MM:SS'): correct it "
            "in a new file, or give it a datetime yourself",
            hints=(DATETIME_HINT,),
        ) from None
    if not times:
        return None
    dim = str(var.dims[0])
    result = from_time_axis(
        times[0], times[-1], steps=len(times), bounded=False, name=_WRF_TIMES, where=where
    )
    dimension: dict[str, Any] = {
        "type": "temporal",
        "extent": [format_time(times[0]), format_time(times[-1])],
        "description": f"WRF time steps, from {_WRF_TIMES!r}",
    }
    if len(times) <= MAX_VALUES:
        dimension["values"] = [format_time(t) for t in times]
    step = _iso_duration(times)
    if step:
        dimension["step"] = step
    return _Time(dim, result, dimension, {dim: dimension})


def _one_time(ds: Any, name: str, where: str) -> _Time | None:
    """:func:`get_time` of the time coordinate ``name`` alone."""
    import numpy as np  # noqa: PLC0415

    var = ds.variables[name]
    units, calendar = _attr(var, "units"), _attr(var, "calendar") or None
    what = f"{where}: time coordinate {name!r}"
    values = _valid_numbers(var, name)
    if tuple(var.dims) == (name,):
        # a coordinate variable has no missing values (CF 5): a step at a fill
        # value was never written, checked before fill values are left out
        stored = np.asarray(_as_read(var, var.values), dtype="float64").ravel()
        _check_written(var, stored[np.isfinite(stored)], what)
    else:
        _check_written(var, values, what)
    if values.size == 0:
        return None
    _check_absolute_precision(var, values, units, what)
    ordered = sorted(set(values.tolist()))
    first, last = cf_datetimes([ordered[0], ordered[-1]], units, calendar, what)
    # decode_coords="all" moves the bounds attribute into the encoding; a CF
    # climatology (7.4: "January mean over 1991-2020") names its span in
    # climatology bounds instead, the time values being mid-points of it
    bounds_name = ""
    for key in ("bounds", "climatology"):
        candidate = str(var.attrs.get(key) or var.encoding.get(key) or "")
        if candidate in ds.variables:
            bounds_name = candidate
            break
    start, end = first, last
    if bounds_name:
        edges = _valid_numbers(ds.variables[bounds_name])
        if edges.size:
            start, end = cf_datetimes([float(edges.min()), float(edges.max())], units, calendar, what)
    result = from_time_axis(
        start,
        end,
        steps=len(ordered),
        bounded=bool(bounds_name),
        name=name,
        where=where,
    )
    dimension: dict[str, Any] = {"type": "temporal", "extent": [format_time(first), format_time(last)]}
    if len(ordered) <= MAX_VALUES:
        dimension["values"] = [format_time(t) for t in cf_datetimes(ordered, units, calendar, what)]
    step = (
        _iso_duration(cf_datetimes(ordered, units, calendar, what))
        if is_absolute_time(units)
        else _iso_step(ordered, units, calendar)
    )
    if step:
        dimension["step"] = step
    if _attr(var, "long_name"):
        dimension["description"] = _attr(var, "long_name")
    return _Time(name, result, dimension, {name: dimension})


def _check_absolute_precision(var: Any, values: Any, units: str, what: str) -> None:
    """Raise :class:`InputError` for a CDO absolute time axis (``day as
    %Y%m%d.%f``) stored in float32 with dates past 2**24 (every date since
    1678): float32 holds such integers to a step of 2 or more, so
    20240513 is stored as 20240512, a day off that nothing shows."""
    import numpy as np  # noqa: PLC0415

    if not is_absolute_time(units) or np.dtype(var.dtype) != np.dtype("float32"):
        return
    if values.size and float(np.max(np.abs(values))) >= 2.0**24:
        raise InputError(
            f"{what}: CDO absolute dates (units {units!r}) stored as float32, which holds an 8-digit date "
            "only to within a day or two (20240513 is stored as 20240512): its dates cannot be trusted, "
            "and no tool can restore them from the file. Write the file again with the time axis in "
            "double precision (float64, as CDO itself writes it) and register that, or give it a "
            "datetime yourself",
            hints=(DATETIME_HINT,),
        )


def _check_written(var: Any, values: Any, what: str) -> None:
    """Raise :class:`InputError` when time values (``values``, as stored) hold
    the netCDF library's default fill value of their type, which a variable
    without a ``_FillValue`` attribute reads where nothing was written: the
    steps of a file registered before its writer finished (9.97e36 days, or
    a year -242960), not times. Likewise for a fill value the time
    coordinate declares itself (``_FillValue``, ``missing_value``, a Zarr
    array's ``fill_value``) other than 0: a step equal to one was never
    written (-9999 ``days since 2024-01-01`` is 1996). A fill value of 0 is
    left a time, being what zarr-python gives a v2 array unless told
    otherwise (day 0 of the axis)."""
    import netCDF4  # noqa: PLC0415 (a dependency of every datacube read)
    import numpy as np  # noqa: PLC0415

    # (a Zarr v3 array's fill_value is in the encoding alone: xarray does not
    # report it as _FillValue)
    for key in ("_FillValue", "missing_value", "fill_value"):
        declared = var.attrs.get(key, var.encoding.get(key))
        if declared is None:
            continue
        try:
            fill = float(_as_read(var, declared).ravel()[0])
        except (TypeError, ValueError, IndexError):
            continue  # a fill value that is no number matches no time
        if fill == 0.0 or not np.isfinite(fill):
            continue
        unwritten = int(np.count_nonzero(values == fill))
        if unwritten:
            steps = values.size
            raise InputError(
                f"{what}: {unwritten} of its {steps} time step{'s' if steps > 1 else ''} "
                f"{'holds' if unwritten == 1 else 'hold'} its fill value {fill:g} ({key}): never written "
                f"(read as a time, it would date the item {_fill_as_time(var, fill)}). Register it once every step is written (or, if {fill:g} is "
                f"a real time, write a copy without the time coordinate's {key} and register that), "
                "or give it a datetime yourself",
                hints=(DATETIME_HINT,),
            )
    if "_FillValue" in var.attrs or "_FillValue" in var.encoding or np.dtype(var.dtype).itemsize < 4:
        return  # (a byte or short's default, 255 or -32767, can be a time: 255 hours)
    default = netCDF4.default_fillvals.get(np.dtype(var.dtype).str[1:])
    if default is None:
        return
    unwritten = int(np.count_nonzero(values == np.asarray(default, dtype=var.dtype).astype("float64")))
    if unwritten:
        steps = values.size
        raise InputError(
            f"{what}: {unwritten} of its {steps} time step{'s' if steps > 1 else ''} "
            f"{'holds' if unwritten == 1 else 'hold'} the netCDF default fill value {default:g}: "
            "never written (the file was registered before its writer finished, or has room for steps not "
            "written yet). Register it once every step is written, or give it a datetime yourself",
            hints=(DATETIME_HINT,),
        )


def _fill_as_time(var: Any, fill: float) -> str:
    """The date a time coordinate's fill value ``fill`` would be read as
    (``1996-08-16T00:00:00Z``), or words saying it is none."""
    try:
        (when,) = cf_datetimes([fill], _attr(var, "units"), _attr(var, "calendar") or None, "")
    except (InputError, ValueError, OverflowError):
        return "no date at all"
    return format_time(when)


def _unit_seconds(units: str, calendar: str | None) -> float | None:
    """Seconds in one unit of a CF time axis (``milliseconds since ...`` →
    0.001), as cftime reads the units in that calendar (every spelling it
    knows: ``msec``, ``min``, ``hr``, ``months`` of a 360-day calendar);
    ``None`` when it cannot."""
    import cftime  # noqa: PLC0415 (only datacubes need it)

    stated = in_microseconds([0], units)[1]
    scale = 0.001 if stated != units else 1.0  # nanoseconds: a thousandth of a microsecond
    units = stated
    try:
        zero, one = cftime.num2date(
            [0.0, 1.0],
            units.strip(),
            calendar=(calendar or "standard").strip().lower(),
            only_use_cftime_datetimes=True,
        )
        return float((one - zero).total_seconds()) * scale
    except (ValueError, TypeError, OverflowError):
        return None


def _iso_step(ordered: list[float], units: str, calendar: str | None) -> str | None:
    """ISO 8601 duration of a regular time axis in whole seconds, or ``None``."""
    if len(ordered) < 2:
        return None
    scale = _unit_seconds(units, calendar)
    if scale is None:
        return None
    return _duration({round((b - a) * scale, 3) for a, b in zip(ordered, ordered[1:], strict=False)})


def _iso_duration(times: list[Any]) -> str | None:
    """:func:`_iso_step` of an axis given as its datetimes (CDO's absolute
    axis, whose numbers are dates, not counts of a unit)."""
    if len(times) < 2:
        return None
    return _duration({(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)})


def _duration(steps: set[float]) -> str | None:
    """ISO 8601 duration of the one step in ``steps`` (seconds), or ``None``."""
    if len(steps) != 1:
        return None
    seconds = steps.pop()
    if seconds <= 0 or not float(seconds).is_integer():
        return None
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return text + ("T" + clock if clock else "")


def _other_dimension(ds: Any, name: str) -> dict[str, Any]:
    """``cube:dimensions`` entry of an axis other than x, y and time."""
    import numpy as np  # noqa: PLC0415

    if int(ds.sizes[name]) == 0:
        # an unlimited dimension before its first write (a NetCDF created by
        # a pipeline that has not appended yet): no value, so no extent and
        # no ``values`` (the datacube schema wants at least one there)
        if name in _time_names(ds):
            return {"type": "temporal", "extent": [None, None], "description": "no time steps written yet"}
        return {"type": "index", "extent": [None, None], "description": "empty dimension"}
    if name not in ds.variables:
        return {"type": "index", "extent": [0, int(ds.sizes[name]) - 1], "step": 1}
    var = ds.variables[name]
    raw = np.asarray(var.values).ravel()
    entry: dict[str, Any]
    vertical = (
        _attr(var, "axis").upper() == "Z"
        or _attr(var, "positive").lower() in ("up", "down")
        or _attr(var, "standard_name") in _VERTICAL_NAMES
    )
    if raw.dtype.kind in "iuf":
        # fill values and NaN are no coordinate: the extent is over the others,
        # the values are listed only when every one is valid
        numbers = [_number(v) for v in raw.tolist()]
        valid = _valid_numbers(var, name).tolist()
        entry = (
            {"type": "spatial", "axis": "z"} if vertical else {"type": _attr(var, "standard_name") or name}
        )
        entry["extent"] = [min(valid), max(valid)] if valid else [None, None]
        if len(numbers) <= MAX_VALUES and len(valid) == len(numbers):
            entry["values"] = numbers
        if _is_regular(raw) and raw.size > 1 and len(valid) == len(numbers):
            entry["step"] = _tidy((raw[-1] - raw[0]) / (raw.size - 1))
    else:
        entry = {"type": _attr(var, "standard_name") or name, "values": [str(v) for v in raw.tolist()]}
    if _attr(var, "units"):
        entry["unit"] = _attr(var, "units")
    if _attr(var, "long_name"):
        entry["description"] = _attr(var, "long_name")
    return entry


def _variable(var: Any, kind: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"dimensions": [str(d) for d in var.dims], "type": kind}
    description = _attr(var, "long_name") or _attr(var, "standard_name")
    if description and not _GDAL_PLACEHOLDER.match(description):
        entry["description"] = description
    if _attr(var, "units"):
        entry["unit"] = _attr(var, "units")
    dtype = str(_dtype(var))
    stac_type = data_type(dtype) if var.dtype.kind in "iufc" else "other"
    entry["data_type"] = stac_type
    for key in ("_FillValue", "missing_value"):
        fill = var.attrs.get(key, var.encoding.get(key))
        if fill is not None and var.dtype.kind in "iuf":
            value = nodata_value(_number(_first(_as_read(var, fill))), dtype)  # an int stays exact
            if value is not None:
                entry["nodata"] = value
            break
    if var.dtype.kind in "iuf":
        entry.update(_packing(var))
    return entry


def _packing(var: Any) -> dict[str, float]:
    """``raster:scale``/``raster:offset`` of a packed variable (CF
    ``scale_factor``/``add_offset``: value = stored × scale + offset, the
    raster extension's meaning too), left out when 1 and 0 as GDAL leaves
    them out of a GeoTIFF's bands; a value that is not one finite number is
    ignored."""
    import numpy as np  # noqa: PLC0415

    out: dict[str, float] = {}
    for attr, key, neutral in (("scale_factor", "raster:scale", 1.0), ("add_offset", "raster:offset", 0.0)):
        raw = var.attrs.get(attr, var.encoding.get(attr))
        if raw is None:
            continue
        try:
            array = np.asarray(raw, dtype="float64").ravel()
        except (TypeError, ValueError):
            continue
        if array.size == 1 and math.isfinite(float(array[0])) and float(array[0]) != neutral:
            out[key] = float(array[0])
    return out


def _first(value: Any) -> Any:
    import numpy as np  # noqa: PLC0415

    return np.asarray(value).ravel()[0]


def get_cube_info(ds: Any, grid: _Grid, time: _Time | None) -> dict[str, Any]:
    """``cube:dimensions`` and ``cube:variables`` of ``ds``."""
    dimensions: dict[str, dict[str, Any]] = {}
    for dim in ds.dims:
        name = str(dim)
        if name in grid.dimensions:
            dimensions[name] = grid.dimensions[name]
        elif time is not None and name in time.dimensions:
            dimensions[name] = time.dimensions[name]
        else:
            dimensions[name] = _other_dimension(ds, name)
    variables: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        variables[str(name)] = _variable(var, "data")
    for name, var in ds.coords.items():
        if var.ndim == 0 or (var.ndim == 1 and name in ds.dims):
            continue  # grid mapping variables; the dimensions themselves
        variables[str(name)] = _variable(var, "auxiliary")
    return {"cube:dimensions": dimensions, "cube:variables": variables}


def _statistics(var: Any) -> dict[str, float]:
    """``statistics`` of one variable (reads its values): fill values and
    NaN/inf are not valid; raw values (no scale/offset), population stddev.
    Read a block of rows at a time (:func:`_row_blocks`, along its first
    dimension of more than one step) and accumulated as a GeoTIFF's
    windows are: never held whole, nor converted whole to float64."""
    import numpy as np  # noqa: PLC0415

    from producer.extract.bands import _Accumulator  # noqa: PLC0415 (the GeoTIFF path's, shared)

    variable = getattr(var, "variable", var)
    # the rows: along the first dimension of more than one step (a time of 1 step comes first)
    axis = next((i for i, n in enumerate(variable.shape) if n > 1), 0)
    acc = _Accumulator()
    for _, (block,) in _row_blocks(variable, axis=axis):
        acc.add(np.ma.masked_array(_valid_numbers(block)))
    acc.total = int(variable.size)
    return acc.result()


def single_band(ds: Any, grid: _Grid, *, stats: bool = False) -> list[dict[str, Any]] | None:
    """``bands`` of a NetCDF GDAL reads as one band: one data variable on
    the grid whose other axes all have length 1; ``None`` otherwise."""
    spatial = {grid.x_dim, grid.y_dim}
    if "proj:transform" in grid.properties and not spatial <= set(map(str, ds.variables)):
        return None  # a regular grid of lat(y)/lon(x) without y/x variables: GDAL reads no geotransform
    data = [v for v in ds.data_vars.values() if spatial <= {str(d) for d in v.dims}]
    if len(data) != 1 or len(ds.data_vars) != 1:
        return None
    var = data[0]
    if math.prod(int(ds.sizes[d]) for d in var.dims if str(d) not in spatial) != 1:
        return None
    name = str(var.name)
    entry = _variable(var, "data")
    band: dict[str, Any] = {"name": name}
    for key in ("description", "data_type", "nodata", "unit", "raster:scale", "raster:offset"):
        if key in entry:
            band[key] = entry[key]
    if stats:
        band["statistics"] = _statistics(var)
    if grid.resolution is not None:
        band["raster:spatial_resolution"] = grid.resolution
    return [band]


# --------------------------------------------------------------------------- the item


def _used_extensions(doc: dict[str, Any]) -> list[str]:
    keys: set[str] = set(doc.get("properties", {}))
    for asset in (doc.get("assets") or {}).values():
        keys.update(asset)
        for band in asset.get("bands") or []:
            keys.update(band)
    out = [url for prefix, url in _EXTENSIONS.items() if any(k.startswith(prefix) for k in keys)]
    if any(k.startswith("xarray:") for k in keys):
        out.append(XARRAY_EXT)
    return out


def create_item(
    source: str | os.PathLike[str],
    options: ExtractOptions = ExtractOptions(),
    *,
    href: str | None = None,
) -> pystac.Item:
    """Build the STAC Item of a NetCDF file or a Zarr store (pure: nothing
    is written, the product is opened read-only and closed before return).

    :param source: local path or URL (``s3://``...) of the file or store root.
    :param options: see :class:`ExtractOptions`; not mutated.
    :param href: where the product really lives when ``source`` is a copy.
    :raises InputError: unreadable, missing, truncated product; checksum of a store.
    :raises NoGeoreferenceError: no horizontal coordinates or CRS (the hint
        writes a new file; the product itself is never edited).
    :raises NoDatetimeError: no datetime source yielded a value.
    """
    text = os.fspath(source)
    location = resolve_location(text).rstrip("/") if is_zarr(text) else resolve_location(text)
    shown = resolve_location(href).rstrip("/") if href else location
    zarr = is_zarr(location)
    if zarr and options.checksum:
        raise InputError(
            f"{redact(shown)}: cannot compute file:checksum of a Zarr store (a folder of objects); "
            "register it without the checksum option"
        )
    with ExitStack() as stack:
        opened = (_open_zarr if zarr else _open_netcdf)(location, options, stack)
        try:
            item = _build(opened, location, shown, options, zarr)
        except Exception as exc:
            # a read that failed (or an object overwritten) is what went wrong,
            # whatever the reading code made of it
            failure = opened.settle()
            if failure is not None:
                raise failure from None
            if isinstance(exc, ProducerError):
                raise
            if isinstance(exc, (ValueError, KeyError, TypeError, OSError, RuntimeError, ArithmeticError)):
                raise InputError(
                    f"{redact(shown)}: cannot read datacube metadata: {redact(str(exc))}"
                ) from exc
            raise
        failure = opened.settle()
        if failure is not None:
            raise failure
        return item


def _time_fix(ds: Any, time: _Time | None) -> str:
    """:data:`TIME_FIX`, told first that the time coordinate is empty when it
    is (an unlimited dimension no step was appended to yet): giving the
    file a time coordinate is no fix for one that has one."""
    empty = [name for name in _time_names(ds) if ds.variables[name].size == 0]
    if time is not None or not empty:
        return TIME_FIX
    return (
        f"Its time coordinate {empty[0]!r} holds no time step yet (nothing was written along it): register "
        f"the file once its first step is written, or give it an ACDD time_coverage_start attribute in a "
        f"new file, or give it a datetime yourself."
    )


#: WRF's lat/lon arrays: of mass points, and of the staggered U and V points;
#: WPS's (``geo_em``, ``met_em``) name the mass points' ``XLAT_M``/``XLONG_M``,
#: and add ``CLAT``/``CLONG``, the computational grid's
_WRF_LATLON = re.compile(r"^XLONG(?:_[UVM])?$|^XLAT(?:_[UVM])?$|^CLAT$|^CLONG$")


def _wrf_coordinates(ds: Any) -> Any:
    """``ds`` with WRF's ``XLAT``/``XLONG`` arrays (and their ``_U``/``_V``
    kin) as coordinates when it is WRF output (a ``Times`` variable) whose
    fields do not name them in a ``coordinates`` attribute (a tool that
    rewrote the file dropped it): they are its grid all the same."""
    if _WRF_TIMES not in ds.variables:
        return ds
    names = [str(n) for n in ds.data_vars if _WRF_LATLON.match(str(n))]
    return ds.set_coords(names) if names else ds


def _build(opened: _Opened, location: str, shown: str, options: ExtractOptions, zarr: bool) -> pystac.Item:
    _check_root_group(opened, shown, zarr)
    ds = _wrf_coordinates(opened.dataset)
    item_id = make_item_id(shown, options)
    _, name = split_location(shown)
    grid = get_grid(ds, shown)
    try:
        time = get_time(ds, shown)
    except InputError:
        given = options.datetime is not None and "explicit" in options.datetime_sources
        if not given and options.named_datetime is None:
            raise
        time = None  # an unreadable time axis does not block the datetime the caller (or item id) gave
    attrs: Mapping[str, Any] = dict(ds.attrs)
    axis: Callable[[], DatetimeResult | None] = lambda: time.result if time else None  # noqa: E731
    when = resolve_datetime(
        name,
        explicit=options.datetime,
        sources=tuple(options.datetime_sources),
        pattern=options.datetime_pattern,
        time_axis=axis,
        read_attrs=lambda: from_acdd(attrs) if time is None else None,
        where=shown,
        fix=_time_fix(ds, time),
        named=options.named_datetime,
    )
    properties: dict[str, Any] = {**grid.properties, **get_cube_info(ds, grid, time)}
    asset_fields: dict[str, Any] = {}
    if not zarr:
        asset_fields.update(
            file_info(
                location,
                checksum=options.checksum and opened.checksum is None,
                storage_options=options.storage_options,
                size=opened.size,
            )
        )
        if opened.checksum is not None:
            asset_fields["file:checksum"] = opened.checksum
        bands = single_band(ds, grid, stats=options.stats)
        if bands:
            sampling = str(attrs.get("GDAL_AREA_OR_POINT", "")).strip().lower()  # as GDAL reads it
            if sampling in ("area", "point"):
                asset_fields["raster:sampling"] = sampling
            asset_fields["bands"] = bands
    if opened.open_kwargs:
        asset_fields["xarray:open_kwargs"] = dict(opened.open_kwargs)
    item = pystac.Item(
        id=item_id,
        geometry=grid.geometry,
        bbox=grid.bbox,
        datetime=when.datetime,
        start_datetime=when.start,
        end_datetime=when.end,
        properties=properties,
        collection=options.collection,
    )
    item.add_asset(
        DATA_ASSET,
        pystac.Asset(
            href=clean_href(rewrite_href(shown, tuple(options.href_rewrites))),
            title=name,
            media_type=MEDIA_ZARR if zarr else MEDIA_NETCDF,
            roles=["data"],
            extra_fields=asset_fields,
        ),
    )
    item.stac_extensions = _used_extensions(item.to_dict(include_self_link=False, transform_hrefs=False))
    return item


__all__ = ["create_item", "is_datacube", "MEDIA_NETCDF", "MEDIA_ZARR", "DATACUBE_EXT", "XARRAY_EXT"]
