"""File → STAC Item, pure: nothing here touches the catalog or writes anything.

One entry point::

    from producer.extract import create_item, ExtractOptions
    item = create_item("s3://bucket/ndvi_20240513.tif", ExtractOptions(collection="ndvi"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producer.extract.options import ExtractOptions

if TYPE_CHECKING:
    from producer.extract.raster import create_item

__all__ = ["create_item", "ExtractOptions"]


def __getattr__(name: str) -> Any:
    # create_item brings rasterio (about 0.8 s): loaded on first use, so that
    # `import producer` and `stac-producer --help` (measured: 0.2 s instead of
    # 1.5 s) do not pay for it; every registration does.
    if name == "create_item":
        from producer.extract.raster import create_item  # noqa: PLC0415 (measured, see above)

        return create_item
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
