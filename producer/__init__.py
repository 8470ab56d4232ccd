"""stac-producer: register raster products into a static STAC catalog.

One entry point per job::

    import producer
    results = producer.register(["scene.tif"], catalog="s3://bucket/stac", collection="ndvi")

Options are declared once, in :class:`RegisterOptions`; every verb returns
plain data (:class:`Result`, :class:`Problem`, :class:`ReconcileReport`) and
raises :class:`ProducerError` subclasses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers and IDEs see them; imported on first use at run time
    from producer.api import reconcile, register, register_item, remove, search, validate_catalog
    from producer.audit import Problem
    from producer.errors import (
        CatalogError,
        ConflictError,
        Hint,
        InputError,
        NoDatetimeError,
        NoGeoreferenceError,
        NotFound,
        ProducerError,
        StoreError,
        UnsafeIdError,
        ValidationError,
    )
    from producer.options import RegisterOptions
    from producer.repair import ReconcileReport
    from producer.results import Action, ErrorKind, RegisterResult, RemoveResult, Result

#: public name -> the module that defines it. ``import producer`` loads none of
#: them: the write path (pystac, fsspec, rasterio via the extractors) costs
#: about 0.5 s, which ``stac-producer --help`` and a Lambda's import must not pay
#: up front. :func:`__getattr__` imports a module on the first use of one of its names.
_WHERE = {
    **dict.fromkeys(
        ["reconcile", "register", "register_item", "remove", "search", "validate_catalog"], "producer.api"
    ),
    "Problem": "producer.audit",
    **dict.fromkeys(
        [
            "CatalogError",
            "ConflictError",
            "Hint",
            "InputError",
            "NoDatetimeError",
            "NoGeoreferenceError",
            "NotFound",
            "ProducerError",
            "StoreError",
            "UnsafeIdError",
            "ValidationError",
        ],
        "producer.errors",
    ),
    "RegisterOptions": "producer.options",
    "ReconcileReport": "producer.repair",
    **dict.fromkeys(["Action", "ErrorKind", "RegisterResult", "RemoveResult", "Result"], "producer.results"),
}

__all__ = [
    "Action",
    "CatalogError",
    "ConflictError",
    "ErrorKind",
    "Hint",
    "InputError",
    "NoDatetimeError",
    "NoGeoreferenceError",
    "NotFound",
    "Problem",
    "ProducerError",
    "ReconcileReport",
    "RegisterOptions",
    "RegisterResult",
    "RemoveResult",
    "Result",
    "StoreError",
    "UnsafeIdError",
    "ValidationError",
    "reconcile",
    "register",
    "register_item",
    "remove",
    "search",
    "validate_catalog",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first use (and
    then cached in this module's namespace, so the lookup happens once)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'producer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
