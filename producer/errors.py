"""One error hierarchy for the whole package.

Every error subclasses :class:`ProducerError` *and* the built-in it behaves
like, so callers can catch either. Messages name the object (file, document
key, catalog URL) and say how to fix the problem.
"""

from __future__ import annotations


class ProducerError(Exception):
    """Base class of every error raised on purpose by stac-producer."""


class InputError(ProducerError, ValueError):
    """A product or an option is unusable; nothing was written."""


class NoGeoreferenceError(InputError):
    """The raster has neither a CRS with a geotransform nor GCPs."""


class NoDatetimeError(InputError):
    """No datetime source produced a value for the product."""


class UnsafeIdError(InputError):
    """An item or collection id is not safe to use as a path segment."""


class CatalogError(ProducerError, ValueError):
    """An existing catalog document is malformed or not the STAC we expect."""


class ValidationError(ProducerError, ValueError):
    """A document failed JSON-schema validation; it was not written.

    ``errors`` holds one message per problem, each starting with the JSON path.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors or [])


class StoreError(ProducerError, OSError):
    """Storage failed (permissions, network, unsupported backend)."""


class NotFound(StoreError, FileNotFoundError):
    """The document does not exist in the store."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the document changed (or exists) since read.

    Raised by stores; the commit layer catches it and retries.
    """


class ConflictError(ProducerError, RuntimeError):
    """Compare-and-swap retries were exhausted for a document."""
