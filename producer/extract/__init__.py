"""File → STAC Item, pure: nothing here touches the catalog or writes anything.

One entry point::

    from producer.extract import create_item, ExtractOptions
    item = create_item("s3://bucket/ndvi_20240513.tif", ExtractOptions(collection="ndvi"))
"""

from __future__ import annotations

from producer.extract.options import ExtractOptions
from producer.extract.raster import create_item

__all__ = ["create_item", "ExtractOptions"]
