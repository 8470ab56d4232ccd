"""The one spelling of an instant in every document the producer writes.

Item ``datetime``/``start_datetime``/``end_datetime``, ``created``/``updated``
and the collection's temporal interval all go through :func:`format_time`, so
one instant is spelled one way across a catalog (it used to be
``...00.500000Z`` in items and ``...00.5Z`` in the collection).
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "parse_time"]


def format_time(value: datetime) -> str:
    """Datetime → RFC 3339 in UTC with ``Z`` (``2024-05-13T10:00:00Z``,
    ``...T10:00:00.500000Z``): pystac's :func:`~pystac.utils.datetime_to_str`.
    A naive datetime is taken as local time (``astimezone``)."""
    # imported here: pystac loads urllib3 (~0.1 s), which the options (and so
    # `stac-producer --help`) import this module for but never call
    from pystac.utils import datetime_to_str  # noqa: PLC0415

    return datetime_to_str(value.astimezone(UTC))


def parse_time(value: str) -> datetime:
    """RFC 3339 string → aware datetime (``Z`` accepted; no offset means UTC)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt
