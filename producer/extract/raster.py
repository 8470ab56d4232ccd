"""Raster product → STAC 1.1.0 Item: the pure builder :func:`create_item`.

One function per concern, each "dataset in, dict out":

- :func:`get_geometry`: WGS84 ``geometry`` + ``bbox`` (via ``footprint.py``);
- :func:`get_projection_info`: projection v2.0.0 fields (item properties);
- :func:`producer.extract.bands.get_bands_info`: the asset's ``bands``;
- :func:`get_raster_asset_info`: raster v2.0.0 fields that hold for the whole asset;
- :func:`producer.extract.assets.file_info`: file v2.1.0 fields.

Where each field goes (single-asset items)::

    item.properties   datetime | start_datetime/end_datetime, proj:code,
                      proj:wkt2 + proj:projjson (only when proj:code is null),
                      proj:shape, proj:transform, proj:bbox
    assets["data"]    href, type, title, roles, file:size, file:checksum,
                      raster:sampling, bands[]
    bands[i]          name, description, eo:common_name, data_type, nodata, unit,
                      statistics, raster:scale, raster:offset,
                      raster:spatial_resolution, raster:bits_per_sample

``stac_extensions`` lists exactly the extensions whose fields were emitted.
Headers only are read (pixels for ``options.stats``, all bytes for
``options.checksum``); nothing is written; no links are added (the commit
layer does that, and sets ``created``/``updated``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import Any

import pystac
import rasterio.env
import rasterio.transform
from rasterio.crs import CRS

from producer.errors import InputError, NoGeoreferenceError, ProducerError
from producer.extract import footprint as _footprint
from producer.extract.assets import file_info, is_url, media_type, resolve_location, rewrite_href
from producer.extract.bands import get_bands_info, spatial_resolution
from producer.extract.datetimes import resolve_datetime
from producer.extract.ids import make_item_id, split_location
from producer.extract.options import ExtractOptions
from producer.extract.source import (
    RASTERIO_ERRORS,
    GuardedOpener,
    check_complete,
    check_netcdf_complete,
    is_datacube,
    open_source,
    raise_read_errors,
    storage_failure,
)
from producer.redact import clean_href, redact

PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
EO_EXT = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
#: a NetCDF/Zarr data asset of a multi-asset item (:func:`producer.grouping.build_asset`)
#: carries cube:* and xarray:* fields; the same URLs as producer.extract.datacube's
#: (not imported from there: a GeoTIFF's register never loads that module)
DATACUBE_EXT = "https://stac-extensions.github.io/datacube/v2.3.0/schema.json"
XARRAY_EXT = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"
#: field prefix → extension schema URL, in the order they are declared
EXTENSIONS: dict[str, str] = {
    "cube:": DATACUBE_EXT,
    "proj:": PROJECTION_EXT,
    "raster:": RASTER_EXT,
    "eo:": EO_EXT,
    "file:": FILE_EXT,
    "xarray:": XARRAY_EXT,
}
#: key of the single data asset
DATA_ASSET = "data"

#: what building an item may raise, reported per product
_BUILD_ERRORS: tuple[type[BaseException], ...] = (ProducerError, *RASTERIO_ERRORS)


def _has_gcps(src: Any) -> bool:
    gcps, gcp_crs = src.gcps
    return bool(gcps) and gcp_crs is not None and bool(gcp_crs)


def _has_geotransform(src: Any) -> bool:
    return src.crs is not None and bool(src.crs) and not src.transform.is_identity


def _is_engineering(crs: CRS) -> bool:
    """Whether ``crs`` is a local (engineering) CRS: ``LOCAL_CS``/``ENGCRS``,
    which no transformation relates to WGS84."""
    try:
        return crs.to_dict(projjson=True).get("type") == "EngineeringCRS"
    except Exception:  # a CRS PROJ cannot express as PROJJSON: the footprint says what fails
        return False


def get_geometry(
    src: Any, where: str, *, georeferenced: bool | None = None
) -> tuple[dict[str, Any], list[float]]:
    """WGS84 ``(geometry, bbox)`` of the dataset's pixel grid.

    A CRS with a geotransform wins; else GCPs (affine approximation). Neither →
    :class:`NoGeoreferenceError`; never a whole-world default. Errors from the
    footprint computation are re-raised with the product named.
    ``georeferenced``: what :func:`_has_geotransform` says, when the caller
    asked already (it is asked once per product: 3% of an extraction).
    """
    if georeferenced is None:
        georeferenced = _has_geotransform(src)
    try:
        if georeferenced:
            return _footprint.footprint(src.crs, src.transform, src.width, src.height)
        if _has_gcps(src):
            gcps, gcp_crs = src.gcps
            if len(gcps) == 1 and src.driver in ("GTiff", "COG"):
                raise InputError(
                    "the geotransform has a zero (or missing) pixel size: the GeoTIFF holds one "
                    "tie point and no usable pixel scale, so its pixel grid has no area. Set the "
                    "pixel size, e.g. `gdal_edit.py -a_ullr ulx uly lrx lry`, then register it again"
                )
            return _footprint.footprint_from_gcps(gcps, gcp_crs, src.width, src.height)
    except ProducerError as exc:
        crs = src.crs if georeferenced else src.gcps[1]
        if crs is not None and _is_engineering(crs):  # asked on failure only: not on every product's path
            raise NoGeoreferenceError(
                f"{where}: the raster's CRS is a local (engineering) CRS, tied to no place on Earth, "
                "so its footprint is unknown. Assign the CRS its coordinates really are in, e.g. "
                "`gdal_edit.py -a_srs EPSG:xxxx`, then register it again"
            ) from exc
        if isinstance(exc, _footprint.NotReprojectableError):
            raise InputError(
                f"{where}: {exc}. Check its CRS and geotransform (`gdalinfo`): a grid far outside "
                "its CRS's area, or a CRS of another body than the Earth, has no place on the Earth. "
                "Fix a wrong one, e.g. `gdal_edit.py -a_srs EPSG:xxxx -a_ullr ulx uly lrx lry`, then "
                "register it again"
            ) from exc
        raise type(exc)(f"{where}: {exc}") from exc
    if getattr(src, "rpcs", None):
        raise NoGeoreferenceError(
            f"{where}: the raster is located by RPCs only (a sensor model, not a map grid), "
            "which give no footprint without an elevation model. Orthorectify it first, e.g. "
            "`gdalwarp -rpc -t_srs EPSG:4326 in.tif out.tif` (add `-to RPC_DEM=dem.tif` for "
            "relief), then register the result"
        )
    missing = "no CRS" if src.crs is None or not src.crs else "a CRS but no geotransform"
    raise NoGeoreferenceError(
        f"{where}: the raster has {missing} and no ground control points, so its "
        "footprint is unknown. Assign a CRS and geotransform, e.g. "
        "`gdal_edit.py -a_srs EPSG:xxxx` (and `-a_ullr ulx uly lrx lry` if the "
        "geotransform is missing), then register it again"
    )


def crs_fields(crs: CRS) -> dict[str, Any]:
    """``proj:code`` when the CRS matches an authority code exactly, else
    ``proj:code: null`` with ``proj:wkt2`` and ``proj:projjson``.

    "Exactly" means GDAL's match confidence is 100 (the file declares the code,
    or its definition is identical). Approximate matches are not trusted:
    GDAL matches e.g. a bare Lambert conformal conic PROJ string to an
    unrelated ESRI code at confidence 70.

    A CRS with a datum shift attached (a GeoTIFF with ``TOWGS84``: PROJ reads
    it as a ``BoundCRS``) is described by its source CRS, the one its
    coordinates are in: ``proj:code`` of the source when exact, else its
    PROJJSON; ``proj:wkt2`` keeps the whole definition, shift included. The
    PROJJSON of a ``BoundCRS`` itself is not emitted: stac-geoparquet and
    rustac cannot convert it (its transformation parameters mix types), so
    one such item would stop a whole collection from converting.
    """
    authority = crs.to_authority(confidence_threshold=100)
    if authority:
        return {"proj:code": f"{authority[0]}:{authority[1]}"}
    projjson = crs.to_dict(projjson=True)
    if projjson.get("type") == "BoundCRS" and isinstance(projjson.get("source_crs"), dict):
        source = projjson["source_crs"]
        code = CRS.from_user_input(json.dumps(source)).to_authority(confidence_threshold=100)
        fields: dict[str, Any] = {
            "proj:code": f"{code[0]}:{code[1]}" if code else None,
            "proj:wkt2": crs.to_wkt(version="WKT2_2019"),
        }
        if not code:
            fields["proj:projjson"] = source
        return fields
    return {
        "proj:code": None,
        "proj:wkt2": crs.to_wkt(version="WKT2_2019"),
        "proj:projjson": projjson,
    }


def get_projection_info(src: Any, *, georeferenced: bool | None = None) -> dict[str, Any]:
    """Projection extension v2.0.0 fields for item properties.

    CRS + geotransform: :func:`crs_fields`, ``proj:shape`` ``[rows, cols]``,
    ``proj:transform`` (the 6 affine coefficients ``a, b, c, d, e, f`` in the
    order the extension documents, i.e. rasterio's ``Affine`` order, not GDAL's),
    and ``proj:bbox`` in the native CRS. GCP-only rasters have no native grid
    CRS: only ``proj:shape``. ``georeferenced``: see :func:`get_geometry`.
    """
    info: dict[str, Any] = {}
    if _has_geotransform(src) if georeferenced is None else georeferenced:
        info.update(crs_fields(src.crs))
        info["proj:shape"] = [int(src.height), int(src.width)]
        transform = src.transform
        info["proj:transform"] = [float(v) for v in _footprint._coefficients(transform)]
        info["proj:bbox"] = _footprint.native_bbox(transform, src.width, src.height)
    else:
        info["proj:shape"] = [int(src.height), int(src.width)]
    return info


def get_raster_asset_info(src: Any) -> dict[str, Any]:
    """Raster extension fields common to all bands: ``raster:sampling`` from
    GDAL's ``AREA_OR_POINT`` metadata (``Area``/``Point``), when present (for
    NetCDF, the ``GDAL_AREA_OR_POINT`` global attribute GDAL writes)."""
    tags = src.tags()
    raw = tags.get("AREA_OR_POINT") or tags.get("NC_GLOBAL#GDAL_AREA_OR_POINT") or ""
    sampling = raw.strip().lower()
    return {"raster:sampling": sampling} if sampling in ("area", "point") else {}


def _resolution(src: Any, georeferenced: bool | None = None) -> float | None:
    """``raster:spatial_resolution`` (metres) from the geotransform, or the GCP affine fit."""
    if _has_geotransform(src) if georeferenced is None else georeferenced:
        transform = src.transform
        bounds = _footprint.native_bbox(transform, src.width, src.height)
        return spatial_resolution(src.crs, transform, bounds)
    if _has_gcps(src):
        gcps, gcp_crs = src.gcps
        try:
            transform = rasterio.transform.from_gcps(_footprint.unwrapped_gcps(gcps, gcp_crs))
            bounds = _footprint.native_bbox(transform, src.width, src.height)
        except (ProducerError, ValueError, ArithmeticError):
            return None
        return spatial_resolution(gcp_crs, transform, bounds)
    return None


def _datetime_tags(src: Any) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    return dict(src.tags()), dict(src.tags(ns="IMAGERY") or {}), dict(src.tags(1) if src.count else {})


def used_extensions(item: dict[str, Any]) -> list[str]:
    """Schema URLs of the extensions whose fields occur in an item dict
    (properties, assets, and bands in either)."""
    keys: set[str] = set()

    def collect(obj: dict[str, Any]) -> None:
        keys.update(obj)
        for band in obj.get("bands") or []:
            keys.update(band)

    collect(item.get("properties", {}))
    for asset in (item.get("assets") or {}).values():
        collect(asset)
    return [url for prefix, url in EXTENSIONS.items() if any(k.startswith(prefix) for k in keys)]


def create_item(
    source: str | os.PathLike[str] | Any,
    options: ExtractOptions = ExtractOptions(),
    *,
    href: str | None = None,
) -> pystac.Item:
    """Build the STAC Item of one raster product (pure: nothing is written).

    :param source: local path, URL (``s3://``, ``https://``, ``/vsis3/``...), an
        ``os.PathLike``, or an already-open rasterio dataset (left open; whatever
        this function opens itself is closed before it returns). NetCDF files
        and Zarr stores named by a path or URL are described by
        :func:`producer.extract.datacube.create_item` (every variable); an
        open dataset with subdatasets and no bands is described by its first
        subdataset.
    :param options: see :class:`ExtractOptions`; not mutated.
    :param href: where the product really lives, when that is not what
        ``source`` says (a local copy, or an open dataset): used for the item id,
        the file-name datetime and the asset href. ``options.href_rewrites`` are
        applied to it (or to the absolute source location) either way.
    :returns: a :class:`pystac.Item` with one asset ``"data"``, no links, and
        ``collection_id = options.collection`` when given.
    :raises InputError: unreadable/missing/empty/corrupt product, bad option.
    :raises NoGeoreferenceError: neither CRS + geotransform nor GCPs.
    :raises NoDatetimeError: no datetime source yielded a value.
    :raises UnsafeIdError: the id from ``options.id_template`` is unsafe.
    """
    if is_datacube(source):  # NetCDF and Zarr: read the CF way, with xarray
        # imported here: a GeoTIFF's cold start never loads the datacube reader
        from producer.extract.datacube import NotNetCDF  # noqa: PLC0415
        from producer.extract.datacube import create_item as create_datacube_item  # noqa: PLC0415

        try:
            return create_datacube_item(source, options, href=href)
        except NotNetCDF:
            pass  # misnamed: GDAL reads the format from the content
    with ExitStack() as stack:
        stack.enter_context(_no_folder_listing(source))
        opened = open_source(source, options, stack)
        src = opened.dataset
        location = resolve_location(href) if href else opened.location
        if not location:
            raise InputError(
                f"{getattr(src, 'name', src)!r}: cannot tell where the product lives; pass href="
            )
        try:
            item = _build_item(src, location, opened.location, options, opened.opener)
        except _BUILD_ERRORS as exc:
            # a read that failed in storage shows up in GDAL as a short file:
            # report the storage failure, not "corrupt" or "truncated"
            raise_read_errors(opened.opener, location)
            if isinstance(exc, ProducerError):
                raise
            raise InputError(f"{redact(location)}: cannot read raster metadata: {redact(str(exc))}") from exc
        raise_read_errors(opened.opener, location)
        return item


#: GDAL config option: "TRUE" makes GDAL look for a product's side-car files
#: (``.aux.xml``, ``.tfw``, ``.ovr``, ...) by name instead of listing its folder
_READDIR = "GDAL_DISABLE_READDIR_ON_OPEN"


def _no_folder_listing(source: Any) -> AbstractContextManager[Any]:
    """A GDAL environment in which opening a local product does not list its folder.

    By default GDAL lists the folder of every file it opens to find its
    side-car files; in a folder of 1,000 COGs that listing cost more CPU than
    the rest of the open (``bench/batch.py``). With the option ``TRUE`` GDAL
    still finds every side-car, by probing its names (unlike ``EMPTY_DIR``,
    which ignores them). A setting the caller made (environment variable, or
    an enclosing ``rasterio.Env``) is kept. The environment also serves the
    reads of :func:`_build_item`, which then need no environment of their own.
    Products on object stores are read through fsspec (and GDAL's ``/vsi``
    paths), where a probe for a missing side-car is a failed request: they,
    and open datasets, keep GDAL's default.
    """
    if not _local_file(source):
        return nullcontext()
    if os.environ.get(_READDIR) or (rasterio.env.hasenv() and _READDIR in rasterio.env.getenv()):
        return nullcontext()
    if rasterio.env.hasenv():  # the caller's environment: its options stand
        return rasterio.Env(**{_READDIR: "TRUE"})
    # else rasterio's default options too (GTIFF_IMPLICIT_JPEG_OVR off), as in
    # the environment rasterio.open makes by itself and a remote product gets
    return rasterio.Env.from_defaults(**{_READDIR: "TRUE"})


def _local_file(source: Any) -> bool:
    """Whether ``source`` names a product on the local file system."""
    if not isinstance(source, str | os.PathLike):
        return False
    text = os.fspath(source)
    return isinstance(text, str) and not is_url(text) and not text.startswith("/vsi")


def reading_environment(sources: Sequence[Any]) -> AbstractContextManager[Any]:
    """The GDAL environment :func:`create_item` makes for each of
    ``sources``, entered once for all of them (read one after the other in
    this thread, e.g. a worker's chunk of a batch): rasterio's default one
    without folder listings when every source is a local file and no
    environment is set up already, else none (each product then makes its
    own, as alone). Making and leaving it per product was ~5% of a local
    COG's extraction CPU (``bench/batch.py``)."""
    if not sources or rasterio.env.hasenv() or not all(_local_file(s) for s in sources):
        return nullcontext()
    return _no_folder_listing(sources[0])


def _byte_reader(location: str, opener: GuardedOpener | None) -> Any:
    """``read(start, length) -> bytes`` over the product at ``location``
    (local file, or the object behind ``opener``); storage failures raise
    what :func:`~producer.extract.source.storage_failure` says."""

    def read(start: int, length: int) -> bytes:
        try:
            if opener is not None:
                fs = opener.fs
                return fs.cat_file(opener.path_of(location), start=start, end=start + length)
            with open(location, "rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except OSError as exc:
            raise storage_failure(location, exc) from None

    return read


def _check_complete(src: Any, location: str, size: int | None, opener: GuardedOpener | None) -> None:
    """Refuse a product cut short: TIFF blocks or NetCDF data past its end."""
    check_complete(src, size, location)
    if getattr(src, "driver", None) == "netCDF" and (opener is not None or not is_url(location)):
        check_netcdf_complete(_byte_reader(location, opener), size, location)


def _build_item(
    src: Any,
    location: str,
    data_location: str | None,
    options: ExtractOptions,
    opener: GuardedOpener | None = None,
) -> pystac.Item:
    item_id = make_item_id(location, options)
    georeferenced = _has_geotransform(src)
    geometry, bbox = get_geometry(src, location, georeferenced=georeferenced)
    _, name = split_location(location)
    when = resolve_datetime(
        name,
        explicit=options.datetime,
        sources=tuple(options.datetime_sources),
        pattern=options.datetime_pattern,
        read_tags=lambda: _datetime_tags(src),
        where=location,
        named=options.named_datetime,
    )
    properties: dict[str, Any] = get_projection_info(src, georeferenced=georeferenced)

    asset_fields: dict[str, Any] = {}
    if data_location:
        known = opener.known.get(opener.path_of(data_location)) if opener else None
        asset_fields.update(
            file_info(
                data_location, checksum=options.checksum, storage_options=options.storage_options, size=known
            )
        )
    elif options.checksum:
        raise InputError(f"{location}: cannot compute file:checksum, the product's bytes are not addressable")
    if data_location:
        _check_complete(src, data_location, asset_fields.get("file:size"), opener)
    asset_fields.update(get_raster_asset_info(src))
    asset_fields["bands"] = get_bands_info(
        src, stats=options.stats, resolution=_resolution(src, georeferenced)
    )

    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=when.datetime,
        start_datetime=when.start,
        end_datetime=when.end,
        properties=properties,
        collection=options.collection,
    )
    item.add_asset(
        DATA_ASSET,
        pystac.Asset(
            href=clean_href(rewrite_href(location, tuple(options.href_rewrites))),
            title=name,
            media_type=media_type(src),
            roles=["data"],
            extra_fields=asset_fields,
        ),
    )
    # the fields themselves, not a second to_dict of the item (the caller makes one)
    item.stac_extensions = used_extensions(
        {"properties": item.properties, "assets": {k: a.extra_fields for k, a in item.assets.items()}}
    )
    return item
