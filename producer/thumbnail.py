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
gives (beside the item document, not in the data bucket; its name carries a
hash of the product's data href, so a registration of ANOTHER product under
the same id, refused by the identity check or a ``replace``, never
overwrites the PNG the stored item links), linked from the item as the asset
``thumbnail`` (role ``thumbnail``, ``image/png``, a relative href). The
register pipeline calls :func:`prepare` while it builds the item (the asset
is then validated with it), and :func:`pending` around the write of the item
document: the PNG is written first, so a crash leaves at worst a PNG no item
links (the next registration of that product overwrites it; ``reconcile``
reports it as ``unlinked-thumbnail`` and deletes it with ``fix`` once it is
older than a register under way), and
a PNG written for a product the identity check then refuses is deleted
again (bad input leaves storage untouched). Removing the item removes its
PNG (:func:`delete`), and so does the removal of an item's old copy when
it moves to another partition. An item whose product is replaced leaves
the old product's PNG behind (an unlinked one, as above). A rerun of
the same product without the option keeps the stored asset
(:meth:`producer.commit.Committer.keep_thumbnail`): the item never drops
the link while its PNG stays behind.

A thumbnail is a nicety: any failure to make one (a datacube, which has no
single picture; an unreadable band; a bug) is a warning and the item is
registered without it. Only a failure to WRITE the PNG fails the product,
like any other storage error (:class:`~producer.errors.StoreError` naming
the PNG's path).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from producer.catalog.layout import THUMBNAIL_ASSET, relative_href, thumbnail_key
from producer.commit import IdentityConflict, normalise_href, product_href
from producer.errors import NotFound, StoreError
from producer.extract.options import ExtractOptions
from producer.hrefs import rendered_thumbnail
from producer.store.base import Store

__all__ = [
    "MAX_SIZE",
    "PENDING",
    "THUMBNAIL_ASSET",
    "attach",
    "delete",
    "discard_pending",
    "key_of",
    "pending",
    "prepare",
    "render",
]

log = logging.getLogger(__name__)

#: the asset key of the thumbnail
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


def key_of(item_key: str, doc: dict[str, Any] | None) -> str:
    """The thumbnail key of the item ``doc`` at ``item_key``: named after
    the product its data asset links (see :func:`thumbnail_key`)."""
    href = product_href(doc)
    return thumbnail_key(item_key, normalise_href(href) if href is not None else None)


def _linked(item_key: str, doc: dict[str, Any] | None, root_url: str | None = None) -> str | None:
    """The key of the rendered PNG that ``doc``'s thumbnail asset links, or
    None (:func:`producer.hrefs.rendered_thumbnail`, which the committer
    uses too)."""
    return rendered_thumbnail(item_key, doc, root_url)


def is_rendered(item_key: str, doc: dict[str, Any] | None, root_url: str | None = None) -> bool:
    """True when ``doc``'s ``thumbnail`` asset is a preview this module
    rendered (it links one of its keys beside ``item_key``), False when it
    is missing or one of the user's files (a group's ``thumbnail.tif``).
    ``root_url``: as for :func:`producer.hrefs.rendered_thumbnail`."""
    return rendered_thumbnail(item_key, doc, root_url) is not None


def prepare(doc: dict[str, Any], key: str, source: str, options: ExtractOptions) -> bytes | None:
    """When ``options.thumbnail``: render the product's PNG and add the
    ``thumbnail`` asset to ``doc`` (mutated), linking :func:`key_of` beside
    the item document ``key``. Returns the PNG, or None: no thumbnail wanted,
    or none could be made (a datacube, or any failure to read or render:
    logged as a warning naming the product; no asset then, and the product
    is registered without it). Reads the product; writes nothing."""
    if not options.thumbnail:
        return None
    from producer.extract.source import is_datacube  # noqa: PLC0415 (loaded with extraction)

    if is_datacube(source):
        log.warning(
            "%s: no thumbnail: NetCDF and Zarr datacubes have no single picture to preview; "
            "the item is registered without one",
            source,
        )
        return None
    try:
        png = _render_source(source, options)
    except Exception as exc:  # a preview must never sink a registration
        log.warning(
            "%s: no thumbnail: it could not be rendered (%s: %s); the item is registered without one",
            source,
            type(exc).__name__,
            exc,
        )
        return None
    if png is None:
        return None
    doc.setdefault("assets", {})[THUMBNAIL_ASSET] = {
        "href": relative_href(key, key_of(key, doc)),
        "type": "image/png",
        "title": "Thumbnail",
        "roles": ["thumbnail"],
    }
    return png


def _render_source(source: str, options: ExtractOptions) -> bytes | None:
    from producer.extract.source import open_source  # noqa: PLC0415 (rasterio: loaded with extraction)

    with ExitStack() as stack:
        src = open_source(source, options, stack).dataset
        return render(src, source)


def attach(doc: dict[str, Any], png: bytes | None) -> None:
    """Carry ``png`` in the validated ``doc`` (mutated) until :func:`pending` writes it."""
    if png is not None:
        doc[PENDING] = png


def _put(store: Store, key: str, doc: dict[str, Any]) -> str | None:
    """Write the PNG ``doc`` carries (if any) to :func:`key_of` and drop it
    from ``doc`` (mutated). One GET, and one PUT unless the same PNG is there
    already (a rerun writes nothing). Returns the key when this call created
    it (nothing was there before), else None. Raises :class:`StoreError`
    naming the PNG's path when storage fails."""
    png = doc.pop(PENDING, None)
    if png is None:
        return None
    target = _linked(key, doc, store.url) or key_of(key, doc)  # what the item links, whatever its data href
    try:
        try:
            if store.get(target)[0] == png:
                return None
            existed = True
        except NotFound:
            existed = False
        store.put(target, png)
    except StoreError as exc:
        raise StoreError(f"not registered: cannot write its thumbnail {store.url}/{target}: {exc}") from exc
    except OSError as exc:  # disk full, permission denied, ...: like any other write of the product
        text = exc.strerror or str(exc) or type(exc).__name__
        raise StoreError(f"not registered: cannot write its thumbnail {store.url}/{target}: {text}") from exc
    return None if existed else target


@contextmanager
def pending(store: Store, key: str, doc: dict[str, Any]) -> Iterator[None]:
    """Around the write of the item document ``doc`` at ``key``: first write
    the PNG ``doc`` carries (see :func:`_put`; ``doc`` is mutated), then run
    the body (the item write). If the body refuses the product as another
    one's (:class:`~producer.commit.IdentityConflict`), the PNG this call
    created is deleted again: storage is left as it was."""
    created = _put(store, key, doc)
    try:
        yield
    except IdentityConflict:
        if created is not None:
            try:
                store.delete(created)
            except (NotFound, FileNotFoundError):
                pass
        raise


def discard_pending(doc: dict[str, Any]) -> None:
    """Drop a rendered PNG ``doc`` carries without writing it (dry run)."""
    doc.pop(PENDING, None)


def delete(store: Store, item_key: str, item: dict[str, Any] | None = None) -> None:
    """Delete the thumbnail of the removed item ``item`` (its last document)
    at ``item_key``: the key its thumbnail asset links (only one of this
    module's keys: a multi-asset item's thumbnail is the user's file, never
    deleted) and the key named after its product (a PNG a crash left before
    the item linked it). Usually one DELETE; a missing PNG is fine."""
    targets = {key_of(item_key, item)}
    linked = _linked(item_key, item, store.url)
    if linked is not None:
        targets.add(linked)
    for target in sorted(targets):
        try:
            store.delete(target)
        except (NotFound, FileNotFoundError):
            pass
