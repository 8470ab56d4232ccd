"""File → STAC Item, pure: nothing here touches the catalog or writes anything.

One entry point::

    from producer.extract import create_item, ExtractOptions
    item = create_item("s3://bucket/ndvi_20240513.tif", ExtractOptions(collection="ndvi"))
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
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
        defer_boto3()
        from producer.extract.raster import create_item  # noqa: PLC0415 (measured, see above)

        return create_item
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _DeferredModule(types.ModuleType):
    """Stands in for a module in ``sys.modules`` until one of its attributes
    is used; then imports the real module (which replaces it there) and
    answers from it, now and on every later access."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attr)


def defer_boto3() -> None:
    """Make ``import boto3`` free until boto3 is used.

    rasterio imports boto3 when it is installed (0.2-0.7 s measured on the
    2-core test machine) only to know whether AWS sessions are possible; it
    uses it only when it builds one (a ``rasterio.Env`` with AWS
    credentials in the environment, or an ``s3://`` path handed to GDAL,
    which stac-producer never does: it reads objects through fsspec). So
    ``boto3`` is entered in ``sys.modules`` as a stand-in that imports the
    real module on its first attribute access, for rasterio and for every
    other user alike. (The standard library's ``LazyLoader`` does not do:
    in Python 3.11 a second ``import boto3`` already loads it.) Does
    nothing when boto3 is imported already or not installed.
    """
    if "boto3" in sys.modules:
        return
    spec = importlib.util.find_spec("boto3")
    if spec is None:
        return
    stand_in = _DeferredModule("boto3")
    stand_in.__spec__ = spec
    sys.modules["boto3"] = stand_in
