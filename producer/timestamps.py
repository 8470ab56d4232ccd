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
    A naive datetime is taken as local time (``astimezone``).

    That function's steps inline (``isoformat``, ``+00:00`` spelled ``Z``):
    importing it here cost an import lookup and a call per timestamp, three
    per upsert, and importing pystac at module level ~0.1 s for the options
    (``stac-producer --help``), which never call this."""
    text = value.astimezone(UTC).isoformat(timespec="auto")
    return f"{text[:-6]}Z" if text.endswith("+00:00") else text


def parse_time(value: str) -> datetime:
    """RFC 3339 string → aware datetime (``Z`` accepted; no offset means UTC)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt
