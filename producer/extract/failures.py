"""What a failure to read a product's bytes means for the caller: a "not
found" or unusable URL/options (:class:`InputError`, retrying will not help)
or a storage fault (:class:`StoreError`, retryable).

Its own module so that both the asset helpers and the product opener use it
without importing each other.
"""

from __future__ import annotations

import re

from producer.errors import (
    InputError,
    ProducerError,
    StoreError,
    credentials_error,
    missing_credentials,
    timeout_hint,
)
from producer.httplimits import deadline_message, is_deadline, is_timeout, is_unreachable, timeout_message
from producer.redact import redact
from producer.sources import is_configuration_error


def storage_failure(location: str, exc: BaseException) -> ProducerError:
    """The error for a product whose bytes could not be read: "not found"
    (:class:`InputError`) for a missing object or bucket, missing AWS
    credentials or unusable options (:class:`InputError` too), else a retryable
    :class:`StoreError` naming the product and what to check."""
    where = redact(location)
    detail = redact(f"{type(exc).__name__}: {exc}")
    if is_deadline(exc):  # the server sent, but too slowly: no timeout to raise would help
        return StoreError(deadline_message(where))
    http = http_failure(location, exc)
    if http is not None:
        return http
    if _timed_out(exc):
        if location.lower().startswith(("s3://", "s3a://")):
            return StoreError(
                f"{where}: no answer from the storage within its read timeout; retry later",
                hints=(timeout_hint("read", 15),),  # s3fs's default read timeout
            )
        return StoreError(
            f"{where}: no answer from the storage within its read timeout; retry later, or check the storage"
        )
    if isinstance(exc, FileNotFoundError) or _status(exc) == 404:
        return InputError(f"{where}: not found (no such object or bucket); check the URL")
    cause = missing_credentials(exc)
    if cause is not None:  # the caller's configuration: a retry finds none either
        return credentials_error(where, cause)
    if is_configuration_error(exc):
        return InputError(
            f"{where}: the storage options or the URL are not usable ({detail}); "
            "fix them (retrying will not help)"
        )
    if _error_code(exc) == "InvalidObjectState":  # a 403 that no permission lifts
        return StoreError(
            f"{where}: the object is in an archive storage class (Glacier Flexible Retrieval, Deep "
            "Archive, or an Intelligent-Tiering archive tier) and cannot be read until it is restored: "
            "restore it (aws s3api restore-object), then register it again"
        )
    if isinstance(exc, PermissionError) or _status(exc) == 403:
        return StoreError(
            f"{where}: access denied while reading the product ({detail}); grant read access "
            "to it (s3:GetObject, and kms:Decrypt for an SSE-KMS encrypted bucket), then retry"
        )
    return StoreError(
        f"{where}: storage failed while reading the product ({detail}); this is usually "
        "transient (throttling, network): retry"
    )


#: GDAL's words for the status of a failed /vsicurl/ request
_GDAL_HTTP_STATUS = re.compile(r"HTTP response code: (\d{3})")


def http_failure(location: str, exc: BaseException) -> ProducerError | None:
    """The error for a product read over http(s) that failed on the way: a
    retryable :class:`StoreError` when the server did not answer in time
    (naming the setting that bounds the wait), could not be reached, or
    answered a status worth retrying (5xx, 429, 408) or access denied (403,
    401: a signature that expired, a grant not given yet), and "not found"
    (:class:`InputError`) for 404 and 410, never "corrupt"; None for other
    locations and failures."""
    if not location.lower().startswith(("http://", "https://")):
        return None
    where = redact(location)
    if is_deadline(exc):
        return StoreError(deadline_message(where))
    # fsspec's http info() re-raises any failure as FileNotFoundError: look behind it
    for err in (exc, exc.__cause__, exc.__context__):
        if err is None:
            continue
        if is_timeout(err):
            return StoreError(timeout_message(where))
        if is_unreachable(err):
            return StoreError(
                f"{where}: cannot reach the server ({redact(str(err))}); check the URL and the "
                "network, then retry"
            )
        status = _http_status(err)
        if status in (404, 410):
            return InputError(f"{where}: not found (HTTP {status}); check the URL")
        if status in (401, 403):
            return StoreError(
                f"{where}: access denied (HTTP {status}); a presigned URL may have expired: sign it "
                "again or grant read access, then retry"
            )
        if status is not None and (status >= 500 or status in (408, 429)):
            return StoreError(f"{where}: the server answered HTTP {status}; retry later")
    return None


def _http_status(err: BaseException) -> int | None:
    """The HTTP status of a failed request: aiohttp's (fsspec) ``status``, or
    the one GDAL's message names."""
    status = getattr(err, "status", None)
    if isinstance(status, int) and 100 <= status <= 599:
        return status
    found = _GDAL_HTTP_STATUS.search(str(err))
    return int(found.group(1)) if found else None


def _timed_out(exc: BaseException) -> bool:
    """A read that got no answer in time, anywhere in ``exc``'s chain (s3fs
    re-raises its timeout as an ``IndexError`` while handling it)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if is_timeout(cur) or type(cur).__name__ in (
            "ReadTimeoutError",
            "AioReadTimeoutError",
            "ConnectTimeoutError",
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _response_field(exc: BaseException, section: str, field: str) -> object:
    """``response[section][field]`` of the first of ``exc``, its cause and its
    context that carries a botocore-style ``response`` saying it, else None."""
    for err in (exc, exc.__cause__, exc.__context__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            value = (response.get(section) or {}).get(field)
            if value is not None:
                return value
    return None


def _error_code(exc: BaseException) -> str | None:
    """S3's error code behind an (s3fs/botocore) exception (``InvalidObjectState``), if it says."""
    code = _response_field(exc, "Error", "Code")
    return code if isinstance(code, str) else None


def _status(exc: BaseException) -> int | None:
    """HTTP status behind an (s3fs/botocore) exception, if it says."""
    status = _response_field(exc, "ResponseMetadata", "HTTPStatusCode")
    return status if isinstance(status, int) else None
