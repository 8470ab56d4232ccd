"""Key rules shared by every store: what a key may look like, how a prefix
matches, and which names are reserved for the stores' own files.

A key is a relative ``/``-separated path of non-empty segments, none of which
is ``.`` or ``..``, with no backslash or NUL. So a key can never name anything
outside the store's root. Segments starting with :data:`RESERVED_PREFIX` are
reserved (the local store's lock and temporary files use them) and are
rejected as keys and never listed.
"""

from __future__ import annotations

from producer.errors import StoreError

#: names starting with this are the stores' own files, never documents
RESERVED_PREFIX = ".stac-producer"


def check_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative key, else raise
    :class:`~producer.errors.StoreError` saying why."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"invalid store key {key!r}: a key must be a non-empty relative path")
    if "\\" in key or "\x00" in key:
        raise StoreError(f"invalid store key {key!r}: use '/' as separator; no backslashes or NUL bytes")
    if key.startswith("/"):
        raise StoreError(
            f"invalid store key {key!r}: keys are relative to the catalog root, drop the leading '/'"
        )
    for segment in key.split("/"):
        if segment == "":
            raise StoreError(f"invalid store key {key!r}: empty path segment ('//' or trailing '/')")
        if segment in (".", ".."):
            raise StoreError(f"invalid store key {key!r}: '.' and '..' segments are not allowed")
        if segment.startswith(RESERVED_PREFIX):
            raise StoreError(
                f"invalid store key {key!r}: names starting with {RESERVED_PREFIX!r} are reserved for the store"
            )
    return key


def check_prefix(prefix: str) -> str:
    """Normalise a :meth:`Store.list` prefix: ``""`` (everything) or a valid key
    (a trailing ``/`` is allowed and dropped). Raise
    :class:`~producer.errors.StoreError` otherwise."""
    if prefix == "":
        return ""
    stripped = prefix[:-1] if prefix.endswith("/") else prefix
    if not stripped:
        raise StoreError(f"invalid list prefix {prefix!r}: use '' for the whole store")
    return check_key(stripped)


def under_prefix(key: str, prefix: str) -> bool:
    """True if ``key`` is ``prefix`` or lies below it, segment-wise (so prefix
    ``ndvi`` matches ``ndvi/collection.json`` but not ``ndvi2/...``).
    ``prefix`` must come from :func:`check_prefix`."""
    return prefix == "" or key == prefix or key.startswith(prefix + "/")


def is_listable(key: str) -> bool:
    """True if ``key`` (found on storage) is a document key a store may list:
    valid per :func:`check_key` (so never a lock or temporary file)."""
    try:
        check_key(key)
    except StoreError:
        return False
    return True
