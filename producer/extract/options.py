"""Options that steer extraction (file -> STAC Item). Immutable (but for
the folder listings one register call shares, :attr:`ExtractOptions.listings`),
so one instance can be shared by many threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: default order in which datetime sources are tried
DEFAULT_DATETIME_SOURCES: tuple[str, ...] = ("explicit", "filename", "tags")
#: the item id template used when none is given: the file name without its extension
DEFAULT_ID_TEMPLATE = "{stem}"


@dataclass(frozen=True)
class ExtractOptions:
    #: explicit datetime: ISO 8601 instant, or ``start/end`` for a range
    datetime: str | None = None
    #: order of sources tried: any of "explicit", "filename", "tags"
    datetime_sources: tuple[str, ...] = DEFAULT_DATETIME_SOURCES
    #: user regex tried on the file name before the built-in patterns
    datetime_pattern: str | None = None
    #: the datetime the product's name stands for when another name holds it
    #: (a multi-asset item's id, ``20240513``): tried in the place of the
    #: "filename" source, before the file's own name, so an explicit datetime
    #: and a datacube's time axis still come first; same syntax as ``datetime``
    named_datetime: str | None = None
    #: item id template; fields: {stem}, {name}, {parent}, {collection}
    id_template: str = DEFAULT_ID_TEMPLATE
    #: (from_prefix, to_prefix) pairs applied to the asset href, first match wins
    href_rewrites: tuple[tuple[str, str], ...] = ()
    #: compute per-band statistics (reads pixels, from overviews when present)
    stats: bool = False
    #: add a sha2-256 multihash ``file:checksum`` (reads the whole file)
    checksum: bool = False
    #: collection id written into the item
    collection: str | None = None
    #: fsspec/S3 storage options used to read remote products
    storage_options: dict = field(default_factory=dict, hash=False, compare=False)
    #: the pipeline's metadata (a :class:`producer.provenance.Provenance`) and
    #: the thumbnail switch, applied after extraction by the register pipeline
    provenance: Any = field(default=None, hash=False, compare=False)
    thumbnail: bool = False
    #: folder listings made while reading this call's products from an object
    #: store (GDAL lists a product's folder to find sidecar files), keyed by
    #: folder, so products in one folder cost one listing. ``None`` (the
    #: default): none shared, each product lists afresh. The register pipeline
    #: gives each call its own dict, so a listing never outlives the call that
    #: made it (a warm process must see the files uploaded since); never a
    #: dict shared by calls
    listings: dict | None = field(default=None, hash=False, compare=False, repr=False)
