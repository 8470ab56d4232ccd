"""Opening a product: a path, a URL or an already-open rasterio dataset.

Only what this module opens is registered on the caller's
:class:`contextlib.ExitStack` (so it is closed when the stack unwinds); a
dataset passed in by the caller is used as is and never closed. rasterio and
GDAL errors are re-raised as :class:`~producer.errors.InputError` naming the
product. Nothing is written.

Products on object stores (``s3://``, ``gs://``...) are read through fsspec:
stat'ed and their first block fetched before GDAL sees them, then read by
GDAL through :class:`GuardedOpener`, whose failures never propagate into
GDAL (rasterio's opener bridge aborts the process when a Python read
raises); they become a retryable :class:`~producer.errors.StoreError`, or
"not found" for a missing object or bucket (:func:`storage_failure`).
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
import warnings
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from producer.errors import InputError, StoreError
from producer.extract.assets import check_utf8_location, is_url, resolve_location
from producer.extract.failures import http_failure, storage_failure
from producer.extract.options import ExtractOptions
from producer.httplimits import gdal_http_environment, http_timeout, timeout_message
from producer.redact import redact
from producer.sources import is_wrf_output
from producer.urls import LOCAL_PROTOCOLS, pathlib_merged_url, product_storage_options

# The one private import of a dependency: GDAL errors (CPLE_*) that rasterio
# raises without wrapping them in a rasterio.errors class, and rasterio has no
# public name for their base class. Kept here only, with a fallback if it moves.
try:
    from rasterio._err import CPLE_BaseError as _CPLE_BaseError
except ImportError:  # pragma: no cover
    _CPLE_BaseError = RasterioError

#: every error rasterio/GDAL may raise while opening or reading headers
RASTERIO_ERRORS: tuple[type[BaseException], ...] = (RasterioError, _CPLE_BaseError, OSError)

_SUBDATASET_RE = re.compile(r'^(?P<driver>[A-Za-z0-9_]+):"?(?P<path>.+?)"?:(?P<var>[^:"]+)$')
_REMOTE_NOT_LOCAL = ("http://", "https://")


#: names of the products :mod:`producer.extract.datacube` reads (with xarray)
NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
ZARR_SUFFIX = ".zarr"


def _suffix_of(location: str) -> str:
    return location.rstrip("/").lower()


def is_datacube(source: object) -> bool:
    """True for a path or URL naming a NetCDF file or a Zarr store (by its
    name, WRF's own suffix-less output names included; nothing is read). Open datasets are never datacubes here. Lives
    here, not in :mod:`producer.extract.datacube`, so that registering a
    GeoTIFF never imports the datacube reader (cold start, issue 12)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    text = os.fspath(source)
    if isinstance(text, bytes):  # pragma: no cover - os.PathLike[bytes]
        text = os.fsdecode(text)
    name = _suffix_of(text.split("?", 1)[0] if text.startswith(("http://", "https://")) else text)
    return name.endswith(NETCDF_SUFFIXES) or name.endswith(ZARR_SUFFIX) or is_wrf_output(name)


@dataclass(frozen=True)
class OpenedSource:
    """What :func:`open_source` opened: the dataset to read metadata from."""

    #: the dataset to read (a subdataset when the product has subdatasets)
    dataset: Any
    #: absolute local path or URL of the product's bytes (``None`` if unknown)
    location: str | None
    #: subdataset name used, when the product itself has no bands
    subdataset: str | None = None
    #: the guarded opener of a product read from an object store: check its
    #: ``errors`` (:func:`raise_read_errors`) after reading metadata
    opener: GuardedOpener | None = None


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


#: bytes fetched per request while reading headers from an object store
#: (fsspec's default, 5 MiB, would fetch that much of every product)
HEADER_BLOCK = 256 * 1024
#: block size when pixels are read too (statistics)
PIXEL_BLOCK = 1024 * 1024


class _GuardedFile:
    """A read-only file over an fsspec file whose failures never reach GDAL.

    GDAL reads through rasterio's Python-opener bridge, which aborts the
    whole process (``std::length_error``, SIGABRT) when a Python read
    raises. Here a failing ``read``/``seek`` records the exception in
    ``errors`` and answers like the end of the file; the caller checks
    ``errors`` after GDAL is done and reports a storage error.
    """

    def __init__(self, handle: Any, errors: list[BaseException]) -> None:
        self._handle = handle
        self._errors = errors

    def read(self, size: int = -1) -> bytes:
        if self._errors:
            return b""
        try:
            return self._handle.read(size)
        except Exception as exc:
            self._errors.append(exc)
            return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._handle.seek(offset, whence)
        except Exception as exc:
            self._errors.append(exc)
            return 0

    def tell(self) -> int:
        try:
            return self._handle.tell()
        except Exception as exc:
            self._errors.append(exc)
            return 0

    def close(self) -> None:
        try:
            self._handle.close()
        except Exception:
            pass

    def __enter__(self) -> _GuardedFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: products whose folder GDAL lists on open (GeoTIFFs: the event path's COGs),
#: listed beside their first reads (:func:`_list_beside`)
_LISTED_SUFFIXES = (".tif", ".tiff")
#: GDAL config option that turns GDAL's listing of a product's folder off
_READDIR = "GDAL_DISABLE_READDIR_ON_OPEN"

#: fsspec protocols whose paths start with a bucket (or container) name
_BUCKET_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


class GuardedOpener:
    """rasterio opener (its ``FileContainer`` protocol) over an fsspec
    filesystem: every call that touches storage records its exception in
    :attr:`errors` instead of raising into GDAL.

    ``known`` maps the product path to its size, read (with a HEAD) before
    GDAL is involved, so GDAL's stat of the product costs no request;
    ``details`` (optional) maps it to that HEAD's whole answer
    (``fs.info``), which an S3 file opened on it takes instead of a HEAD
    of its own (:meth:`open`). The size of a bare bucket (rasterio's check
    of an opener asks ``size("test")``) is 0 without a request: no bucket
    is a file, and another account's bucket of that name answers 403.
    Directory listings (GDAL looks for sidecar files) that fail answer
    "empty", as GDAL's own ``/vsis3/`` does. Listings that succeed are kept
    in ``listings`` (:attr:`ExtractOptions.listings`: the register call's)
    when given, so the products of one folder cost one listing; never in the
    file system's own listing cache, which lives as long as the process and
    would answer later stats (see :func:`producer.urls.product_storage_options`).
    """

    def __init__(
        self,
        fs: Any,
        known: dict[str, int],
        block_size: int,
        listings: dict | None = None,
        details: dict[str, dict] | None = None,
    ) -> None:
        self.fs: Any = fs
        self.known = dict(known)
        self.details = dict(details or {})
        #: folder -> its names, listed beside the product's first reads
        #: (:func:`_object_store_opener`): what GDAL's listing of it gets,
        #: without a request ([] when that listing failed, as :meth:`ls` says)
        self.prefetched: dict[str, list[str]] = {}
        protocols = {
            str(p) for p in (fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,))
        }
        self._buckets = bool(_BUCKET_PROTOCOLS & protocols)  # paths start with a bucket name
        self._s3 = "s3" in protocols  # s3fs: its files take a size and the HEAD's answer
        self.block_size = block_size
        self.listings = listings
        self.errors: list[BaseException] = []
        self._spare: tuple[str, _GuardedFile] | None = None

    def path_of(self, url: str) -> str:
        """The path of ``url`` in this opener's file system (what
        ``url_to_fs`` would give), through fsspec's public
        :func:`fsspec.core.strip_protocol`."""
        import fsspec  # noqa: PLC0415 (see _object_store_opener)

        return str(fsspec.core.strip_protocol(url))

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> _GuardedFile:
        if "r" not in mode or "+" in mode:
            raise PermissionError(f"{path}: products are opened read-only")
        spare, self._spare = self._spare, None
        if spare is not None and spare[0] == path:
            spare[1].seek(0)
            return spare[1]  # the probe's handle: its first block is already here
        try:
            details = self.details.get(path) if self._s3 else None
            handle = None
            if details is not None and details.get("ETag"):
                # the HEAD made before GDAL: s3fs's file would make the same
                # HEAD again to learn the size and the ETag each range read
                # is tied to (If-Match; with local_expiry_check, compared
                # with each answer's): this one's. Given a size, s3fs ties
                # its reads to nothing: the ETag is put back here, or the
                # file makes its own HEAD (an object rewritten between two
                # reads must fail them, not mix two versions in one item)
                handle = self.fs.open(path, "rb", block_size=self.block_size, size=int(details["size"]))
                handle.details = details
                if not getattr(self.fs, "local_expiry_check", False):
                    if isinstance(getattr(handle, "read_kw", None), dict):
                        handle.read_kw = {**handle.read_kw, "IfMatch": details["ETag"]}
                    else:  # an s3fs that reads otherwise: its own HEAD, its own check
                        handle.close()
                        handle = None
            if handle is None:
                handle = self.fs.open(path, "rb", block_size=self.block_size)
        except Exception as exc:
            self.errors.append(exc)
            raise FileNotFoundError(path) from None
        return _GuardedFile(handle, self.errors)

    def _guard(self, default: Any, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except FileNotFoundError:
            return default
        except Exception as exc:
            self.errors.append(exc)
            return default

    def isfile(self, path: str) -> bool:
        return path in self.known or bool(self._guard(False, self.fs.isfile, path))

    def isdir(self, path: str) -> bool:
        return path not in self.known and bool(self._guard(False, self.fs.isdir, path))

    def ls(self, path: str) -> list[str]:
        if path in self.prefetched:
            return list(self.prefetched[path])
        key = (str(self.fs.protocol), path)
        if self.listings is not None and key in self.listings:
            return list(self.listings[key])
        names = self.list_folder(path)
        return [] if names is None else list(names)

    def list_folder(self, path: str) -> list[str] | None:
        """The names in folder ``path`` (kept in :attr:`listings`), or None
        when the listing fails."""
        try:
            names = [os.path.basename(str(p).rstrip("/")) for p in self.fs.ls(path, detail=False)]
        except Exception:
            return None
        if self.listings is not None:
            self.listings[(str(self.fs.protocol), path)] = names
        return names

    def mtime(self, path: str) -> int:
        return 0

    def modified(self, path: str) -> Any:
        """Modification time GDAL asks for in a stat: not needed, the epoch."""
        return datetime.fromtimestamp(0, UTC)

    def size(self, path: str) -> int:
        if path in self.known:
            return self.known[path]
        if self._buckets and "/" not in path.strip("/"):  # a bucket: no file, no request
            return 0
        return int(self._guard(0, self.fs.size, path) or 0)

    def rm(self, path: str) -> None:
        raise PermissionError(f"{path}: products are never deleted by stac-producer")


def _object_store_opener(path: str, options: ExtractOptions) -> GuardedOpener:
    """Stat the product and read its first bytes through fsspec, before GDAL
    sees it; raise what :func:`storage_failure` says when that fails."""
    import fsspec  # noqa: PLC0415 (cold start: ~80 ms a local product never needs)

    try:
        from producer.awssession import with_shared_session  # noqa: PLC0415

        # the catalog store's aiobotocore session, not a second one (cold start)
        fs, fs_path = fsspec.core.url_to_fs(
            path, **with_shared_session(path, product_storage_options(options.storage_options, path))
        )
    except (ImportError, ValueError) as exc:
        raise InputError(
            f"{_redacted(path)}: no filesystem for this URL ({exc}); for s3:// install the [s3] extra"
        ) from exc
    if isinstance(getattr(fs, "retries", None), int):
        # s3fs tries each range read 5 times, each try 5 times, each of those
        # botocore's attempts: a stalled product took 125 read timeouts (31
        # minutes at s3fs's default 15 s). botocore's attempts suffice (its
        # retries are configurable, throttling included), as for the catalog;
        # a connection reset in the middle of a body is then the product's
        # retryable storage error, not retried here
        fs.retries = 1
    opener = GuardedOpener(fs, {}, PIXEL_BLOCK if options.stats else HEADER_BLOCK, options.listings)
    lister = _list_beside(opener, fs_path)
    try:
        try:
            info = fs.info(fs_path)
        except Exception as exc:
            raise storage_failure(path, exc) from None
        if info.get("type") == "directory":
            raise InputError(f"{_redacted(path)}: is a folder (prefix), not a raster file")
        size = int(info.get("size") or 0)
        if size == 0:
            raise InputError(f"{_redacted(path)}: object is empty (0 bytes); was it completely written?")
        opener.known[fs_path] = size
        opener.details[fs_path] = info
        probe = opener.open(fs_path)
        probe.read(1)
    finally:
        if lister is not None:
            lister.join()
    if opener.errors:
        probe.close()
        raise_read_errors(opener, path)
    opener._spare = (fs_path, probe)
    return opener


def _list_beside(opener: GuardedOpener, fs_path: str) -> threading.Thread | None:
    """Start listing the folder of the GeoTIFF ``fs_path`` on a thread
    (joined by the caller) into :attr:`GuardedOpener.prefetched`: GDAL lists
    it on open to find side-car files (``GDAL_DISABLE_READDIR_ON_OPEN``
    unset, as for every product on an object store), one request after the
    product's first reads; this way it goes out with them. None when GDAL
    would not list it (the option set by the caller, another format, a
    listing of this call has it already, a product at the bucket's top)."""
    folder = fs_path.rpartition("/")[0]
    if not folder or (opener._buckets and "/" not in folder.strip("/")):
        return None
    if not fs_path.lower().endswith(_LISTED_SUFFIXES):
        return None
    if os.environ.get(_READDIR) or (rasterio.env.hasenv() and _READDIR in rasterio.env.getenv()):
        return None
    if opener.listings is not None and (str(opener.fs.protocol), folder) in opener.listings:
        return None

    def run() -> None:
        names = opener.list_folder(folder)
        opener.prefetched[folder] = [] if names is None else names

    lister = threading.Thread(target=run, name="producer-sidecar-list", daemon=True)
    lister.start()
    return lister


def _env_without_aws_session() -> AbstractContextManager[Any]:
    """The GDAL environment of a product read through fsspec: no AWS session.

    Outside any ``rasterio.Env``, every rasterio call that needs one (the
    open, the footprint's reprojection) makes a default one, and with AWS
    credentials in the environment (a Lambda, an ECS task) that default
    imports boto3 and builds a boto3 session (50-80 ms of a cold start) to
    hand GDAL credentials for ``/vsis3/``, which a product read through
    fsspec never uses. Otherwise it is that default (rasterio's default
    options, e.g. ``GTIFF_IMPLICIT_JPEG_OVR`` off). An enclosing
    ``rasterio.Env`` (the caller's) is kept. Entered on the extraction's
    stack, so it serves every later read too.
    """
    if rasterio.env.hasenv():
        return nullcontext()
    from rasterio.session import DummySession  # noqa: PLC0415 (loaded with rasterio.env already)

    return rasterio.Env.from_defaults(session=DummySession())


def raise_read_errors(opener: GuardedOpener | None, location: str | None) -> None:
    """Raise the storage error behind the first failed read of ``opener``, if any."""
    if opener is not None and opener.errors:
        raise storage_failure(location or "the product", opener.errors[0])


def _redacted(text: str) -> str:
    return redact(text)


def _open(path: str, options: ExtractOptions, stack: ExitStack, opener: GuardedOpener | None = None) -> Any:
    kwargs: dict[str, Any] = {}
    if opener is not None:
        # Object stores go through fsspec (ranged reads: headers, not whole
        # files), which honours storage_options and the standard AWS
        # configuration including AWS_ENDPOINT_URL, as the catalog store does;
        # GDAL's /vsis3/ would ignore a custom endpoint. The guarded opener
        # keeps storage failures away from GDAL (see _GuardedFile).
        kwargs["opener"] = opener
        path = opener.path_of(path) if "://" in path else path
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
    or non-raster product, or a closed dataset, and
    :class:`~producer.errors.StoreError` (retryable) when an object store
    fails to deliver the bytes (throttling, access denied, network): such a
    failure never reaches GDAL (see :class:`GuardedOpener`).
    """
    opener: GuardedOpener | None = None
    dataset: Any
    if is_dataset(source):
        dataset = source
        if dataset.closed:
            raise InputError(
                f"{getattr(dataset, 'name', dataset)}: the dataset passed in is closed; pass an open one or a path"
            )
        location = dataset_location(dataset)
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
            check_local_file(location)
        if is_url(location) and not location.startswith(_REMOTE_NOT_LOCAL):
            opener = _object_store_opener(location, options)
            stack.enter_context(_env_without_aws_session())
        elif location.startswith(_REMOTE_NOT_LOCAL):
            # GDAL reads it (/vsicurl/) and sets no timeout of its own: a
            # server that never answers would hold the register forever
            stack.enter_context(gdal_http_environment())
        started = time.monotonic()
        try:
            dataset = _open(location, options, stack, opener)
        except RASTERIO_ERRORS as exc:
            raise_read_errors(opener, location)
            failed = http_failure(location, exc)
            if failed is not None:
                raise failed from None
            if location.startswith(_REMOTE_NOT_LOCAL) and time.monotonic() - started >= http_timeout():
                # curl ends a request after GDAL_HTTP_TIMEOUT in all and says
                # nothing: GDAL then reads what it got ("Cannot read TIFF
                # header"). A file this slow to fail was cut short, not corrupt
                raise StoreError(timeout_message(_redacted(location))) from None
            raise InputError(
                f"{_redacted(location)}: not a readable raster (corrupt, truncated, or not a "
                f"format GDAL knows): {_redacted(_without_handle(str(exc), location))}"
            ) from exc
    subdataset = None
    try:
        if dataset.count == 0:
            subdatasets = list(dataset.subdatasets or [])
            if not subdatasets:
                raise_read_errors(opener, location)
                raise InputError(f"{location}: the raster has no bands and no subdatasets")
            subdataset = subdatasets[0]
            dataset = _open(subdataset, options, stack)
    except RASTERIO_ERRORS as exc:
        raise_read_errors(opener, location)
        raise InputError(f"{location}: cannot open subdataset {subdataset!r}: {exc}") from exc
    raise_read_errors(opener, location)
    return OpenedSource(dataset, location, subdataset, opener)


#: GDAL's name for an object read through our opener (``/vsiriopener_<id>/bucket/key``)
_OPENER_HANDLE = re.compile(r"/vsiriopener_[0-9A-Za-z]+/")


def _without_handle(text: str, location: str) -> str:
    """GDAL's ``text`` with its name for an object read through the opener
    given back as the object's URL (the handle means nothing to the caller)."""
    if not is_url(location):
        return text
    return _OPENER_HANDLE.sub(lambda _: location.split("://", 1)[0] + "://", text)


def _url_meant(location: str) -> str | None:
    """The storage URL a missing local ``location`` was typed as, one slash
    lost (``s3:/bucket/x.tif`` under the working folder: ``s3://bucket/x.tif``),
    or None."""
    try:
        relative = os.path.relpath(location)
    except ValueError:  # another drive
        return None
    meant = None if relative.startswith("..") else pathlib_merged_url(relative)
    if meant is None or meant.split("://", 1)[0].lower() in LOCAL_PROTOCOLS:
        return None
    from fsspec.registry import known_implementations  # noqa: PLC0415 (an error path only)

    return meant if meant.split("://", 1)[0].lower() in known_implementations else None


def check_local_file(location: str) -> None:
    """Raise :class:`InputError` naming ``location`` unless it is a non-empty
    regular file: missing, a symlink loop, a dangling symlink, a directory or
    an empty file each get their own message; a path that is not UTF-8
    (:func:`check_utf8_location`). Reads metadata only."""
    check_utf8_location(location)
    if not os.path.exists(location):
        if os.path.islink(location):
            try:
                os.stat(location)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise InputError(
                        f"{location}: symlink loop (the link points, directly or through other "
                        "links, back at itself); point it at the real file"
                    ) from None
            raise InputError(
                f"{location}: broken symlink to {os.readlink(location)!r}, which does not exist; "
                "fix the link or register the real file"
            )
        meant = _url_meant(location)
        if meant is not None:
            raise InputError(
                f"{location}: file not found; if the URL {redact(meant)} was meant, write it so "
                "(with both '/' after its scheme)"
            )
        raise InputError(f"{location}: file not found; check the path")
    if os.path.isdir(location):
        raise InputError(f"{location}: is a directory, not a raster file")
    if os.path.getsize(location) == 0:
        raise InputError(f"{location}: file is empty (0 bytes); was it completely written?")


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
    blocks = (
        [(x, y) for y in range(rows) for x in range(cols)]
        if rows * cols <= _MAX_BLOCKS_CHECKED
        else [(x, rows - 1) for x in range(cols)] + [(cols - 1, y) for y in range(rows)]
    )
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


# --- NetCDF classic: where the data must end --------------------------------------

#: nc_type → bytes per value (CDF-1/2 types 1-6, CDF-5 adds 7-11)
_NC_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 10, 11, 12
_NC_STREAMING = 0xFFFFFFFF
#: largest header read while looking for the end of the data (a bigger one is not checked)
_MAX_NETCDF_HEADER = 16 * 1024 * 1024


class _Header:
    """Big-endian cursor over the first bytes of a file, fetched on demand."""

    def __init__(self, read: Any, size: int) -> None:
        self._read, self._size = read, size
        self._data = b""
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self._data):
            if end > self._size or end > _MAX_NETCDF_HEADER:
                raise EOFError
            want = min(self._size, _MAX_NETCDF_HEADER, max(end, 2 * len(self._data), 64 * 1024))
            self._data = self._read(0, want)
            if len(self._data) < end:
                raise EOFError
        out = self._data[self.pos : end]
        self.pos = end
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def skip_padded(self, n: int) -> None:
        self.take(n + (-n % 4))


def _netcdf_classic_end(read: Any, size: int) -> tuple[int, str] | None:
    """``(end, which)``: the byte where the data of the last variable of a
    NetCDF classic (CDF-1/2/5) file ends, from its header; ``None`` for other
    formats (NetCDF-4 is HDF5, which checks its own end of file) and for
    files whose record count is unknown (streaming). ``read(start, length)``
    returns bytes of the file. Raises :class:`EOFError` when the header
    itself is cut off."""
    head = _Header(read, size)
    magic = head.take(4)
    if magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
        return None
    version = magic[3]
    count = 8 if version == 5 else 4  # nelems / dim lengths / numrecs
    offset = 4 if version == 1 else 8  # variable begin
    numrecs = head.uint(count)

    def skip_attributes() -> None:
        tag, n = head.uint(4), head.uint(count)
        if tag not in (0, _NC_ATTRIBUTE):
            raise EOFError
        for _ in range(n if tag else 0):
            head.skip_padded(head.uint(count))  # name
            nc_type, nvals = head.uint(4), head.uint(count)
            head.skip_padded(nvals * _NC_TYPE_SIZE.get(nc_type, 1))

    tag, ndims = head.uint(4), head.uint(count)
    dims = []
    for _ in range(ndims if tag == _NC_DIMENSION else 0):
        head.skip_padded(head.uint(count))
        dims.append(head.uint(count))
    skip_attributes()
    tag, nvars = head.uint(4), head.uint(count)
    variables = []
    for _ in range(nvars if tag == _NC_VARIABLE else 0):
        name = head.take(head.uint(count))
        head.take(-len(name) % 4)
        dimids = [head.uint(count) for _ in range(head.uint(count))]
        skip_attributes()
        nc_type = head.uint(4)
        vsize = head.uint(count)
        begin = head.uint(offset)
        shape = [dims[d] if d < len(dims) else 0 for d in dimids]
        is_record = bool(shape) and shape[0] == 0
        values = 1
        for length in shape[1:] if is_record else shape:
            values *= length
        variables.append(
            (name.decode("utf-8", "replace"), begin, values * _NC_TYPE_SIZE.get(nc_type, 1), vsize, is_record)
        )
    records = [v for v in variables if v[4]]
    if records and numrecs == _NC_STREAMING:
        return None
    # one record holds a slice of every record variable, each padded to 4
    # bytes, except when there is only one record variable
    recsize = records[0][2] if len(records) == 1 else sum(v[3] for v in records)
    best = (0, "")
    for var_name, begin, nbytes, _, is_record in variables:
        if is_record:
            if numrecs == 0:
                continue
            end = begin + (numrecs - 1) * recsize + nbytes
        else:
            end = begin + nbytes
        if end > best[0]:
            best = (end, f"variable {var_name!r}")
    return best if best[0] else None


def check_netcdf_complete(read: Any, size: int | None, where: str) -> None:
    """Raise :class:`InputError` when a NetCDF classic file is shorter than
    its header says (a truncated copy). ``read(start, length)`` returns the
    file's bytes; only the header is read. ``size`` ``None`` skips the check."""
    if size is None:
        return
    try:
        found = _netcdf_classic_end(read, size)
    except EOFError:
        raise InputError(
            f"{where}: truncated: the NetCDF header runs past the end of the file "
            f"({size:,} bytes); it was not completely written. Write it again, then register it"
        ) from None
    if found and found[0] > size:
        end, which = found
        raise InputError(
            f"{where}: truncated: the data of its {which} ends at byte {end:,} but the file has "
            f"{size:,} bytes; it was not completely written (still being copied, or a failed "
            "upload). Write it again, then register it"
        )
