"""``--thumbnail``: a PNG preview of each product, stored in the catalog beside its item.

Rendering (:func:`render`) reads a decimated copy of the raster, at most
:data:`MAX_SIZE` pixels on the long side: GDAL serves such a read from the
overview level closest to that size, so a COG with overviews is never read
at full resolution. A raster without overviews is read whole only while it
has at most :data:`MAX_FULL_READ_PIXELS` pixels; a bigger one gets no
thumbnail (a warning says to add overviews), because a decimated read of it
would fetch every block.

Bands: three or more → the first three as red, green, blue; fewer → the
first as grey. Each band is stretched from its 2nd to its 98th percentile
of valid pixels to 0–255; nodata/masked pixels are transparent.

Where it goes: the catalog key :func:`producer.catalog.layout.thumbnail_key`
gives (beside the item document, not in the data bucket), linked from the
item as the asset ``thumbnail`` (role ``thumbnail``, ``image/png``, a
relative href). The register pipeline calls :func:`prepare` while it builds
the item (the asset is then validated with it), and :func:`put_pending`
just before it writes the item document, so a crash leaves at worst a PNG
no item links (harmless; the next registration overwrites it). Removing
the item removes it (:func:`delete`). An item that moves to another
partition leaves its old PNG behind (harmless, like any orphan PNG).
"""

from __future__ import annotations

import logging
import math
import warnings
from contextlib import ExitStack
from typing import Any

from producer.catalog.layout import relative_href, thumbnail_key
from producer.errors import NotFound
from producer.extract.options import ExtractOptions
from producer.store.base import Store

__all__ = ["MAX_SIZE", "PENDING", "THUMBNAIL_ASSET", "attach", "delete", "prepare", "put_pending", "render"]

log = logging.getLogger(__name__)

#: the asset key of the thumbnail
THUMBNAIL_ASSET = "thumbnail"
#: longest side of a thumbnail, in pixels
MAX_SIZE = 600
#: a raster without a suitable overview is read whole only up to this many pixels
MAX_FULL_READ_PIXELS = 4096 * 4096
#: where a prepared item document carries its rendered PNG until it is written
#: (popped before the document is written; never stored)
PENDING = "stac_producer:thumbnail_png"


def _out_shape(height: int, width: int) -> tuple[int, int]:
    scale = max(height, width) / MAX_SIZE
    if scale <= 1:
        return height, width
    return max(1, math.floor(height / scale)), max(1, math.floor(width / scale))


def _read_level_ok(src: Any, out_h: int, out_w: int) -> bool:
    """True if the decimated read of ``src`` is cheap: the raster is small,
    or an overview exists at least as fine as the output and at most 4 times finer."""
    if src.height * src.width <= MAX_FULL_READ_PIXELS:
        return True
    for factor in src.overviews(1) or ():
        ov_h, ov_w = math.ceil(src.height / factor), math.ceil(src.width / factor)
        if ov_h * ov_w <= max(MAX_FULL_READ_PIXELS, 16 * out_h * out_w):
            return True
    return False


def _stretch(band: Any, valid: Any) -> Any:
    import numpy as np  # noqa: PLC0415 (numpy comes with rasterio, loaded only when rendering)

    data = band.astype("float64")
    values = data[valid]
    values = values[np.isfinite(values)]
    out = np.zeros(band.shape, dtype="uint8")
    if values.size == 0:
        return out
    low, high = np.percentile(values, [2, 98])
    if high <= low:
        high = low + 1
    scaled = np.clip((data - low) / (high - low) * 255.0, 0, 255)
    out[valid] = np.nan_to_num(scaled[valid]).astype("uint8")
    return out


def render(src: Any, where: str) -> bytes | None:
    """A PNG (bytes) of the open rasterio dataset ``src``, at most
    :data:`MAX_SIZE` px on the long side, or None (logged as a warning,
    naming ``where``) when it could not be made cheaply. Reads a decimated
    copy of at most three bands; writes nothing."""
    import numpy as np  # noqa: PLC0415 (see _stretch)
    from rasterio.enums import Resampling  # noqa: PLC0415 (rasterio loads with extraction, not at import)
    from rasterio.errors import NotGeoreferencedWarning  # noqa: PLC0415
    from rasterio.io import MemoryFile  # noqa: PLC0415

    if not src.count:
        log.warning("%s: no thumbnail: the product has no bands GDAL can read", where)
        return None
    out_h, out_w = _out_shape(int(src.height), int(src.width))
    if not _read_level_ok(src, out_h, out_w):
        log.warning(
            "%s: no thumbnail: the raster is %d x %d pixels and has no overviews, so a preview "
            "would read all of it; add overviews (gdaladdo, or write a COG) to get one",
            where,
            src.width,
            src.height,
        )
        return None
    indexes = [1, 2, 3] if src.count >= 3 else [1]
    data = src.read(
        indexes, out_shape=(len(indexes), out_h, out_w), resampling=Resampling.nearest, masked=True
    )
    mask = np.ma.getmaskarray(data).any(axis=0)
    valid = ~mask
    bands = [_stretch(np.ma.getdata(data[i]), valid) for i in range(len(indexes))]
    alpha = np.where(valid, 255, 0).astype("uint8")
    planes = np.stack([*bands, alpha])
    profile = {"driver": "PNG", "height": out_h, "width": out_w, "count": len(planes), "dtype": "uint8"}
    with warnings.catch_warnings(), MemoryFile() as memfile:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG has no georeference: right
        with memfile.open(**profile) as dst:
            dst.write(planes)
        return bytes(memfile.read())


def prepare(doc: dict[str, Any], key: str, source: str, options: ExtractOptions) -> bytes | None:
    """When ``options.thumbnail``: render the product's PNG and add the
    ``thumbnail`` asset to ``doc`` (mutated), linking the key beside the item
    document ``key``. Returns the PNG, or None (no thumbnail wanted, or none
    could be made: no asset then). Reads the product; writes nothing."""
    if not options.thumbnail:
        return None
    from producer.extract.source import open_source  # noqa: PLC0415 (rasterio: loaded with extraction)

    with ExitStack() as stack:
        src = open_source(source, options, stack).dataset
        png = render(src, source)
    if png is None:
        return None
    doc.setdefault("assets", {})[THUMBNAIL_ASSET] = {
        "href": relative_href(key, thumbnail_key(key)),
        "type": "image/png",
        "title": "Thumbnail",
        "roles": ["thumbnail"],
    }
    return png


def attach(doc: dict[str, Any], png: bytes | None) -> None:
    """Carry ``png`` in the validated ``doc`` (mutated) until :func:`put_pending` writes it."""
    if png is not None:
        doc[PENDING] = png


def put_pending(store: Store, key: str, doc: dict[str, Any]) -> None:
    """Write the PNG ``doc`` carries (if any) to the thumbnail key beside the
    item key ``key``, and drop it from ``doc`` (mutated). One GET, and one
    PUT unless the same PNG is there already (a rerun writes nothing);
    called before the item document is written."""
    png = doc.pop(PENDING, None)
    if png is None:
        return
    target = thumbnail_key(key)
    try:
        if store.get(target)[0] == png:
            return
    except NotFound:
        pass
    store.put(target, png)


def discard_pending(doc: dict[str, Any]) -> None:
    """Drop a rendered PNG ``doc`` carries without writing it (dry run)."""
    doc.pop(PENDING, None)


def delete(store: Store, item_key: str) -> None:
    """Delete the thumbnail beside the item key ``item_key`` if there is one
    (one DELETE; a missing one is fine)."""
    try:
        store.delete(thumbnail_key(item_key))
    except (NotFound, FileNotFoundError):
        pass
