"""Opening a product: a path, a URL or an already-open rasterio dataset.

Only what this module opens is registered on the caller's
:class:`contextlib.ExitStack` (so it is closed when the stack unwinds); a
dataset passed in by the caller is used as is and never closed. rasterio and
GDAL errors are re-raised as :class:`~producer.errors.InputError` naming the
product. Nothing is written.
"""

from __future__ import annotations

import os
import re
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from producer.errors import InputError
from producer.extract.assets import is_url, resolve_location
from producer.extract.options import ExtractOptions

try:  # GDAL errors rasterio raises without wrapping (private module, may move)
    from rasterio._err import CPLE_BaseError as _CPLE_BaseError
except ImportError:  # pragma: no cover
    _CPLE_BaseError = RasterioError  # type: ignore[assignment,misc]

#: every error rasterio/GDAL may raise while opening or reading headers
RASTERIO_ERRORS: tuple[type[BaseException], ...] = (RasterioError, _CPLE_BaseError, OSError)

_SUBDATASET_RE = re.compile(r'^(?P<driver>[A-Za-z0-9_]+):"?(?P<path>.+?)"?:(?P<var>[^:"]+)$')
_REMOTE_NOT_LOCAL = ("http://", "https://")


@dataclass(frozen=True)
class OpenedSource:
    """What :func:`open_source` opened: the dataset to read metadata from."""

    #: the dataset to read (a subdataset when the product has subdatasets)
    dataset: Any
    #: absolute local path or URL of the product's bytes (``None`` if unknown)
    location: str | None
    #: subdataset name used, when the product itself has no bands
    subdataset: str | None = None


def is_dataset(obj: object) -> bool:
    """True for an open rasterio dataset (reader, writer, MemoryFile dataset)."""
    # look on the type: a closed dataset raises (not AttributeError) on property access
    return all(hasattr(type(obj), attr) for attr in ("crs", "transform", "closed", "read", "profile"))


def dataset_location(dataset: Any) -> str | None:
    """The product location behind an open dataset's ``name`` (subdataset syntax removed)."""
    name = getattr(dataset, "name", None)
    if not name:
        return None
    match = _SUBDATASET_RE.match(name)
    if match and not is_url(name) and not name.startswith("/"):
        name = match["path"]
    return resolve_location(name)


def _open(path: str, options: ExtractOptions, stack: ExitStack) -> Any:
    kwargs: dict[str, Any] = {}
    if is_url(path) and not path.startswith(_REMOTE_NOT_LOCAL):
        # Object stores go through fsspec (ranged reads: headers, not whole
        # files), which honours storage_options and the standard AWS
        # configuration including AWS_ENDPOINT_URL, as the catalog store does;
        # GDAL's /vsis3/ would ignore a custom endpoint.
        import fsspec

        kwargs["opener"] = fsspec.core.url_to_fs(path, **dict(options.storage_options))[0]
    with warnings.catch_warnings():  # georeferencing is checked (with a clear error) later
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return stack.enter_context(rasterio.open(path, **kwargs))


def open_source(
    source: str | os.PathLike[str] | Any, options: ExtractOptions, stack: ExitStack
) -> OpenedSource:
    """Open ``source`` for reading headers; datasets opened here go on ``stack``.

    A product without bands but with subdatasets (e.g. a NetCDF file with
    several variables) is represented by its **first** subdataset.

    Raises :class:`InputError` (naming the file) for a missing, empty, corrupt
    or non-raster product, or a closed dataset.
    """
    if is_dataset(source):
        if source.closed:
            raise InputError(f"{getattr(source, 'name', source)}: the dataset passed in is closed; pass an open one or a path")
        dataset, location = source, dataset_location(source)
    else:
        try:
            text = os.fspath(source)
        except TypeError as exc:
            raise InputError(
                f"cannot read a product from a {type(source).__name__}: pass a path, a URL or an open rasterio dataset"
            ) from exc
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        location = resolve_location(text)
        if not is_url(location) and not location.startswith("/vsi"):
            if not os.path.exists(location):
                raise InputError(f"{location}: file not found; check the path")
            if os.path.isdir(location):
                raise InputError(f"{location}: is a directory, not a raster file")
            if os.path.getsize(location) == 0:
                raise InputError(f"{location}: file is empty (0 bytes); was it completely written?")
        try:
            dataset = _open(location, options, stack)
        except RASTERIO_ERRORS as exc:
            raise InputError(
                f"{location}: not a readable raster (corrupt, truncated, or not a format GDAL knows): {exc}"
            ) from exc
    subdataset = None
    try:
        if dataset.count == 0:
            subdatasets = list(dataset.subdatasets or [])
            if not subdatasets:
                raise InputError(f"{location}: the raster has no bands and no subdatasets")
            subdataset = subdatasets[0]
            dataset = _open(subdataset, options, stack)
    except RASTERIO_ERRORS as exc:
        raise InputError(f"{location}: cannot open subdataset {subdataset!r}: {exc}") from exc
    return OpenedSource(dataset, location, subdataset)


#: beyond this many blocks per band only the last ones are checked (striped giants)
_MAX_BLOCKS_CHECKED = 250_000


def _tiff_block_ends(dataset: Any) -> tuple[int, str] | None:
    """``(end, which)``: the byte where the last full-resolution block ends.

    Reads the offsets and byte counts GDAL already has from the TIFF header
    (``BLOCK_OFFSET_x_y`` / ``BLOCK_SIZE_x_y``), no pixel data. ``None`` for
    other formats. Pixel-interleaved files share one set of blocks, band 1;
    band-interleaved ones are checked band by band. Sparse (never written)
    blocks have offset 0 and are skipped.
    """
    if getattr(dataset, "driver", None) not in ("GTiff", "COG"):
        return None
    block_h, block_w = dataset.block_shapes[0]
    cols = -(-dataset.width // block_w)
    rows = -(-dataset.height // block_h)
    bands = [1] if getattr(dataset.interleaving, "name", "") == "pixel" else range(1, dataset.count + 1)
    blocks = [(x, y) for y in range(rows) for x in range(cols)] if rows * cols <= _MAX_BLOCKS_CHECKED else \
        [(x, rows - 1) for x in range(cols)] + [(cols - 1, y) for y in range(rows)]
    best = (0, "")
    for band in bands:
        for x, y in blocks:
            offset = dataset.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=band)
            size = dataset.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=band)
            if not offset or size is None:
                continue
            end = int(offset) + int(size)
            if end > best[0]:
                best = (end, f"block ({x}, {y}) of band {band}")
    return best if best[0] else None


def check_complete(dataset: Any, size: int | None, where: str) -> None:
    """Raise :class:`InputError` when a TIFF's pixel data runs past its end.

    A product caught while it is still being written (or cut short by a
    failed copy) often has an intact header, so it opens and its metadata
    reads fine; only its last blocks are missing. Registering it would
    publish a broken asset. Checks the full-resolution blocks against the
    file size (``size``; ``None`` skips the check). Overviews appended after
    the data by an in-place ``gdaladdo`` are not checked; in a COG they come
    before the full-resolution data, so any cut is caught.
    """
    if size is None:
        return
    try:
        found = _tiff_block_ends(dataset)
    except RASTERIO_ERRORS:  # offsets unreadable: leave the verdict to the readers
        return
    if found and found[0] > size:
        end, which = found
        raise InputError(
            f"{where}: truncated: its {which} ends at byte {end:,} but the file has "
            f"{size:,} bytes; it was not completely written (still being copied, or "
            "a failed upload). Write it again, then register it"
        )
