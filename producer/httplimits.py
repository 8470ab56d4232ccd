"""How long a product read over http(s) may wait for its server.

GDAL (``/vsicurl/``, rasterio) sets no timeout of its own, so a server that
accepts the connection and never answers held ``register`` forever; fsspec's
http file system (NetCDF, Zarr) waits aiohttp's 5 minutes. Both are bounded
by the same settings, GDAL's own configuration options, read from the
environment (or an enclosing ``rasterio.Env``) when the user set them, else
:data:`GDAL_HTTP_DEFAULTS`:

- ``GDAL_HTTP_CONNECTTIMEOUT``: seconds to connect (15);
- ``GDAL_HTTP_TIMEOUT``: seconds a request may take (60; for fsspec, the
  longest silence between two reads, so a long download is not cut);
- ``GDAL_HTTP_MAX_RETRY`` / ``GDAL_HTTP_RETRY_DELAY``: GDAL's retries of a
  failed request (2, 1 s apart). GDAL retries a request that timed out too,
  and makes two (HEAD, GET) to open a file: a server that never answers
  fails the product after about 6 x ``GDAL_HTTP_TIMEOUT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "GDAL_HTTP_DEFAULTS",
    "gdal_http_environment",
    "http_setting",
    "http_timeout",
    "is_timeout",
    "is_unreachable",
    "timeout_message",
    "with_http_timeout",
]

#: GDAL's http settings applied to products read over http(s) unless the user set them
GDAL_HTTP_DEFAULTS: dict[str, str] = {
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_MAX_RETRY": "2",
    "GDAL_HTTP_RETRY_DELAY": "1",
}


def _user_setting(name: str) -> str | None:
    """``name`` as the user set it: the environment, or an enclosing
    ``rasterio.Env`` (looked at only when rasterio is loaded already)."""
    value = os.environ.get(name)
    if value:
        return value
    rasterio = sys.modules.get("rasterio")
    if rasterio is not None and rasterio.env.hasenv():
        found = rasterio.env.getenv().get(name)
        if found not in (None, ""):
            return str(found)
    return None


def http_setting(name: str) -> str:
    """The value of the GDAL http setting ``name`` that applies."""
    return _user_setting(name) or GDAL_HTTP_DEFAULTS[name]


def _seconds(name: str) -> float:
    try:
        value = float(http_setting(name))
    except ValueError:
        value = float(GDAL_HTTP_DEFAULTS[name])
    return value if value > 0 else float(GDAL_HTTP_DEFAULTS[name])


def http_timeout() -> float:
    """Seconds a product's server may take to answer (``GDAL_HTTP_TIMEOUT``)."""
    return _seconds("GDAL_HTTP_TIMEOUT")


@contextmanager
def gdal_http_environment() -> Iterator[None]:
    """A ``rasterio.Env`` with :data:`GDAL_HTTP_DEFAULTS` for the settings
    the user did not set (on top of an enclosing environment, which is kept;
    without one, rasterio's defaults and no AWS session, as for a product read
    through fsspec)."""
    import rasterio  # noqa: PLC0415

    missing = {k: v for k, v in GDAL_HTTP_DEFAULTS.items() if _user_setting(k) is None}
    if not missing:
        yield
        return
    if rasterio.env.hasenv():
        env = rasterio.Env(**missing)
    else:
        from rasterio.session import DummySession  # noqa: PLC0415

        env = rasterio.Env.from_defaults(session=DummySession(), **missing)
    with env:
        yield


def with_http_timeout(options: dict[str, Any]) -> dict[str, Any]:
    """fsspec http storage ``options`` (a copy) whose aiohttp session gives up
    on a server silent for ``GDAL_HTTP_TIMEOUT`` s (``GDAL_HTTP_CONNECTTIMEOUT``
    to connect); a ``timeout`` the caller gave (an option, or in
    ``client_kwargs``) is kept."""
    out = dict(options)
    client = dict(out.get("client_kwargs") or {})
    if "timeout" in out or "timeout" in client:
        return out
    import aiohttp  # noqa: PLC0415 (fsspec's http file system needs it anyway)

    client["timeout"] = aiohttp.ClientTimeout(
        total=None, sock_connect=_seconds("GDAL_HTTP_CONNECTTIMEOUT"), sock_read=http_timeout()
    )
    out["client_kwargs"] = client
    return out


#: what curl (through GDAL) says when a request got no answer in time
_CURL_TIMEOUT = ("timed out", "timeout was reached")
#: ... and when it could not connect at all
_CURL_UNREACHABLE = ("failed to connect", "could not connect", "couldn't connect", "could not resolve")


def is_timeout(exc: BaseException) -> bool:
    """A request that got no answer in time: aiohttp's and asyncio's
    timeouts (fsspec re-raises them as ``FSTimeoutError``), or GDAL's curl
    error saying so."""
    import asyncio  # noqa: PLC0415

    from fsspec.exceptions import FSTimeoutError  # noqa: PLC0415

    if isinstance(exc, (FSTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return True
    text = str(exc).lower()
    return "curl error" in text and any(s in text for s in _CURL_TIMEOUT)


def is_unreachable(exc: BaseException) -> bool:
    """The connection failed (refused, reset, no route, no such host)."""
    if isinstance(exc, ConnectionError):
        return True
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError):
        return True
    text = str(exc).lower()
    return "curl error" in text and any(s in text for s in _CURL_UNREACHABLE)


def timeout_message(where: str) -> str:
    """The message for the product ``where`` whose server did not answer."""
    return (
        f"{where}: the server did not answer within {http_timeout():g} s (per request); retry later, or set "
        "GDAL_HTTP_TIMEOUT (seconds) in the environment to wait longer"
    )
