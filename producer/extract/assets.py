"""The data asset: where it lives (href), what it is (media type), file facts.

- :func:`resolve_location` and :func:`rewrite_href` are pure string work.
- :func:`media_type` reads only GDAL header metadata of an open dataset.
- :func:`file_info` stats the file and, when asked, reads all of its bytes to
  hash them (local files with ``open``, remote URLs in chunks through fsspec).

Nothing is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pystac import MediaType

from producer.errors import InputError
from producer.extract.failures import storage_failure
from producer.urls import is_file_url, is_remote, local_path, product_storage_options, protocol

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # a type only: importing rasterio here would load GDAL for `import producer`
    from rasterio.io import DatasetReader

# plain ``str`` values (not the enum members), so documents hold exact strs
MEDIA_COG: str = MediaType.COG.value
MEDIA_GEOTIFF: str = MediaType.GEOTIFF.value
MEDIA_NETCDF: str = MediaType.NETCDF.value
#: GDAL driver short name → media type, for drivers other than GTiff
_DRIVER_MEDIA: dict[str, str] = {
    "netCDF": MediaType.NETCDF.value,
    "JP2OpenJPEG": MediaType.JPEG2000.value,
    "PNG": MediaType.PNG.value,
    "JPEG": MediaType.JPEG.value,
    "HDF5": MediaType.HDF5.value,
    "HDF4": MediaType.HDF.value,
    "Zarr": MediaType.ZARR.value,
    "VRT": MediaType.XML.value,
}
#: GDAL virtual file systems that have a URL equivalent
_VSI_PREFIXES: tuple[tuple[str, str], ...] = (
    ("/vsis3/", "s3://"),
    ("/vsigs/", "gs://"),
    ("/vsiaz/", "az://"),
    ("/vsiadls/", "abfs://"),
    ("/vsicurl/", ""),
)
#: file suffix → (media type, roles) of the assets that are not data: previews,
#: metadata, documentation (members of a multi-asset item; never opened by GDAL)
SIDECAR_SUFFIXES: dict[str, tuple[str, tuple[str, ...]]] = {
    ".png": (MediaType.PNG.value, ("overview",)),
    ".jpg": (MediaType.JPEG.value, ("overview",)),
    ".jpeg": (MediaType.JPEG.value, ("overview",)),
    ".xml": (MediaType.XML.value, ("metadata",)),
    ".json": (MediaType.JSON.value, ("metadata",)),
    ".txt": (MediaType.TEXT.value, ("metadata",)),  # Landsat's MTL.txt, ANG.txt
    ".pdf": ("application/pdf", ("documentation",)),
}
#: words in a preview's asset key or file name that make it a ``thumbnail``
#: (a small image for listings) rather than an ``overview``
_THUMBNAIL_WORDS = ("thumb", "quicklook", "preview", "browse")
CHUNK_SIZE = 1 << 20
#: protocols whose URLs are requested over HTTP
_HTTP = ("http", "https")
#: multihash prefix: 0x12 = sha2-256, 0x20 = 32-byte digest
_SHA256_MULTIHASH = "1220"


def is_url(location: str) -> bool:
    """True for a location on a remote file system: a URL other than
    ``file://`` (see :mod:`producer.urls`)."""
    return is_remote(location)


def resolve_location(source: str | os.PathLike[str]) -> str:
    """Absolute location of a product: an absolute local path, or a URL.

    ``file://`` URLs become local paths; GDAL ``/vsis3/``-style paths become the
    matching ``s3://`` (``gs://``, ``az://``, plain http) URL; other URLs are kept.
    """
    text = os.fspath(source)
    if isinstance(text, bytes):  # pragma: no cover - os.PathLike[bytes]
        text = os.fsdecode(text)
    for prefix, scheme in _VSI_PREFIXES:
        if text.startswith(prefix):
            return scheme + text[len(prefix) :]
    if text.startswith("/vsi"):
        return text
    if is_file_url(text):
        return os.path.abspath(local_path(text))
    if is_url(text):
        return text
    return os.path.abspath(os.path.expanduser(text))


def _under(location: str, prefix: str) -> bool:
    """Whether ``prefix`` names ``location`` or a folder (bucket, scheme)
    holding it: it ends where a path segment ends (``s3://bucket`` holds
    ``s3://bucket/x.tif``, not ``s3://bucket-logs/x.tif``)."""
    if not location.startswith(prefix):
        return False
    return len(location) == len(prefix) or prefix.endswith(("/", ":")) or location[len(prefix)] == "/"


def rewrite_href(location: str, rewrites: tuple[tuple[str, str], ...] = ()) -> str:
    """Apply the first ``(from_prefix, to_prefix)`` whose prefix holds
    ``location`` (whole path segments: a sibling folder or bucket whose name
    starts alike is not under it). A prefix that starts ``location``'s text
    but ends inside a name (``/data/utm_`` for ``/data/utm_1.tif``, which
    text matching once rewrote) is not applied, with a warning, once per
    rule: the href stays as it is."""
    for old, new in rewrites:
        if old and _under(location, old):
            rest = location[len(old) :]
            if protocol(new) in _HTTP and protocol(location) not in _HTTP:
                # a file name or object key becomes part of a URL: escape what a
                # URL would read otherwise ('?', '#', '%', spaces, '+')
                rest = quote(rest, safe="/-_.~")
            return new + rest
    for old, new in rewrites:
        if old and location.startswith(old) and (old, new) not in _WARNED_MID_NAME:
            _WARNED_MID_NAME.add((old, new))
            log.warning(
                "href rewrite %s=%s is not applied to %s: %r ends inside a name there, and a rewrite "
                "matches whole folders or buckets only; end it where a folder ends (%r) to rewrite "
                "such products",
                old,
                new,
                location,
                old,
                old[: old.rfind("/") + 1] or old,
            )
    return location


#: href rewrites already warned about (:func:`rewrite_href`): once per rule
_WARNED_MID_NAME: set[tuple[str, str]] = set()


def media_type(src: DatasetReader) -> str | None:
    """IANA media type of an open dataset, from its driver and header metadata.

    A GTiff whose ``IMAGE_STRUCTURE`` metadata says ``LAYOUT=COG`` (what GDAL's
    COG driver writes, and reports when it reads such a file) is a COG; any other
    GTiff is a plain GeoTIFF. Unknown drivers give ``None`` (no ``type`` field).
    """
    if src.driver in ("GTiff", "COG"):
        layout = (src.tags(ns="IMAGE_STRUCTURE") or {}).get("LAYOUT", "")
        return MEDIA_COG if layout.upper() == "COG" else MEDIA_GEOTIFF
    return _DRIVER_MEDIA.get(src.driver)


def sidecar_kind(location: str, key: str = "") -> tuple[str, list[str]] | None:
    """``(media type, roles)`` of a file that is not a raster product, from
    its suffix (:data:`SIDECAR_SUFFIXES`); ``None`` for anything else (a
    data file, read by GDAL). A PNG/JPEG whose asset ``key`` or file name
    says thumbnail (``thumb``, ``quicklook``, ``preview``, ``browse``) gets
    the role ``thumbnail``, any other one ``overview``. Pure string work."""
    path = location.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1].lower()
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if suffix not in SIDECAR_SUFFIXES:
        return None
    media, roles = SIDECAR_SUFFIXES[suffix]
    if roles == ("overview",) and any(word in f"{key} {name}".lower() for word in _THUMBNAIL_WORDS):
        roles = ("thumbnail",)
    return media, list(roles)


def _fs_and_path(location: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    import fsspec  # noqa: PLC0415 (cold start: ~80 ms a local product never needs)

    try:
        return fsspec.core.url_to_fs(location, **product_storage_options(storage_options, location))
    except (ImportError, ValueError) as exc:
        raise InputError(
            f"{location}: no filesystem for this URL ({exc}); for s3:// install the [s3] extra"
        ) from exc


def _chunks(location: str, storage_options: Mapping[str, Any]) -> Iterator[bytes]:
    if is_url(location):
        fs, path = _fs_and_path(location, storage_options)
        handle = fs.open(path, "rb")
    else:
        handle = open(location, "rb")  # noqa: SIM115 - closed below
    with handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def sha256_multihash(location: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """``file:checksum`` value: sha2-256 multihash, hex (``"1220"`` + sha256 hexdigest).

    Reads the whole file in 1 MiB chunks (fsspec for URLs).
    """
    digest = hashlib.sha256()
    for chunk in _chunks(location, storage_options or {}):
        digest.update(chunk)
    return _SHA256_MULTIHASH + digest.hexdigest()


def sha256_multihash_of(data: bytes) -> str:
    """:func:`sha256_multihash` of bytes already read (a NetCDF fetched whole
    to be opened: hashed as fetched, not read a second time)."""
    return _SHA256_MULTIHASH + hashlib.sha256(data).hexdigest()


def file_info(
    location: str,
    *,
    checksum: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    size: int | None = None,
) -> dict[str, Any]:
    """File extension fields for the bytes at ``location`` (what was opened).

    ``file:size`` always when the size can be known (local path, or a URL fsspec
    can stat); ``file:checksum`` only when ``checksum`` is true. Locations GDAL
    alone understands (``/vsimem/``...) give no size; asking for their checksum
    is an :class:`InputError`. ``size``, when the caller already knows it,
    saves a request. A remote store that fails raises the retryable
    :class:`~producer.errors.StoreError` (a missing object: "not found").
    """
    info: dict[str, Any] = {}
    options = storage_options or {}
    try:
        if location.startswith("/vsi"):
            if checksum:
                raise InputError(f"{location}: cannot compute file:checksum of a GDAL virtual file")
            return info
        if size is not None:
            info["file:size"] = int(size)
        elif is_url(location):
            fs, path = _fs_and_path(location, options)
            size = fs.size(path)
            if size is not None:
                info["file:size"] = int(size)
        else:
            info["file:size"] = os.path.getsize(location)
        if checksum:
            info["file:checksum"] = sha256_multihash(location, options)
    except OSError as exc:
        if is_url(location):
            raise storage_failure(location, exc) from None
        raise InputError(f"{location}: cannot read file for size/checksum: {exc}") from exc
    return info


def check_utf8_location(location: str) -> None:
    """Raise :class:`InputError` when ``location`` cannot be written as UTF-8:
    a file name in Latin-1 (or another encoding), which Python holds with a
    lone surrogate per undecodable byte. GDAL cannot open it, and its href
    could not be written into a JSON document."""
    try:
        location.encode("utf-8")
    except UnicodeEncodeError as exc:
        shown = os.fsencode(location).decode("utf-8", "backslashreplace")
        byte = (
            os.fsencode(location[exc.start])[:1].hex() if 0xDC80 <= ord(location[exc.start]) <= 0xDCFF else ""
        )
        what = f"the byte 0x{byte}" if byte else f"U+{ord(location[exc.start]):04X}"
        raise InputError(
            f"{shown}: its path is not UTF-8 ({what} is not; a name written in Latin-1 or another "
            "encoding?), which neither GDAL nor the catalog's JSON can hold; rename it to UTF-8, "
            "e.g. `convmv -f latin1 -t utf-8 --notest <file>`, then register it again"
        ) from None
