"""stac-producer: register raster products into a static STAC catalog.

One entry point per job::

    import producer
    results = producer.register(["scene.tif"], catalog="s3://bucket/stac", collection="ndvi")
"""

from __future__ import annotations

from typing import Any

__all__ = ["register", "remove", "reconcile", "validate_catalog"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # lazy: importing producer stays cheap
    if name in __all__:
        from producer import api

        return getattr(api, name)
    raise AttributeError(name)
