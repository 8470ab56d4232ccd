"""stac-producer: register raster products into a static STAC catalog.

One entry point per job::

    import producer
    results = producer.register(["scene.tif"], catalog="s3://bucket/stac", collection="ndvi")

Options are declared once, in :class:`RegisterOptions`; every verb returns
plain data (:class:`Result`, :class:`Problem`, :class:`ReconcileReport`) and
raises :class:`ProducerError` subclasses.
"""

from __future__ import annotations

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
