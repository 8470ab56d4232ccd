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

Those bound silence only (fsspec, botocore: the longest wait between two
reads): a server that trickles its body, a byte every second, held a read
of a NetCDF or Zarr product over http(s), or of any product on S3, for
ever. :func:`read_deadline` (``STAC_PRODUCER_READ_DEADLINE``, seconds,
default :data:`READ_DEADLINE`) bounds each read request as a whole, body
included (:func:`with_http_timeout`, :func:`with_s3_read_deadline`); such a
product fails as a retryable storage error (:func:`deadline_message`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "GDAL_HTTP_DEFAULTS",
    "READ_DEADLINE",
    "deadline_message",
    "is_deadline",
    "read_deadline",
    "with_s3_read_deadline",
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


#: seconds one read request of a product may take as a whole, body included
#: (5 min: a 1 MiB block at 3.5 KiB/s), unless ``STAC_PRODUCER_READ_DEADLINE`` says
READ_DEADLINE = 300.0
#: the environment variable that sets :func:`read_deadline`
READ_DEADLINE_VARIABLE = "STAC_PRODUCER_READ_DEADLINE"


def read_deadline() -> float:
    """Seconds one read request of a product may take in all
    (``STAC_PRODUCER_READ_DEADLINE``; :data:`READ_DEADLINE` when unset, not
    a number, or not above 0)."""
    try:
        value = float(os.environ.get(READ_DEADLINE_VARIABLE) or READ_DEADLINE)
    except ValueError:
        return READ_DEADLINE
    return value if value > 0 else READ_DEADLINE


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
        total=read_deadline(), sock_connect=_seconds("GDAL_HTTP_CONNECTTIMEOUT"), sock_read=http_timeout()
    )
    out["client_kwargs"] = client
    return out


def with_s3_read_deadline(options: dict[str, Any]) -> dict[str, Any]:
    """s3fs storage ``options`` (a copy) whose requests each end after
    :func:`read_deadline` seconds in all, body included (botocore's
    ``read_timeout`` bounds the silence between two reads only); an
    ``http_session_cls`` the caller gave in ``config_kwargs`` is kept.

    The deadline is in the options (a session class per value), so a file
    system fsspec cached for other options, or another deadline, is not
    reused with its own."""
    out = dict(options)
    config = dict(out.get("config_kwargs") or {})
    if "http_session_cls" in config:
        return out
    config["http_session_cls"] = _deadline_session_class(read_deadline())
    out["config_kwargs"] = config
    return out


#: the session class per deadline (ms), built on first use (aiobotocore is optional)
_DEADLINE_SESSIONS: dict[int, type] = {}
_DEADLINE_SESSION_NAME = "DeadlineSession_"


def _deadline_session_class(seconds: float) -> type:
    """aiobotocore's aiohttp session with a total timeout of ``seconds`` on
    every request (its connect and read timeouts kept)."""
    ms = max(1, round(seconds * 1000))
    if ms in _DEADLINE_SESSIONS:
        return _DEADLINE_SESSIONS[ms]
    import aiohttp  # noqa: PLC0415
    from aiobotocore.httpsession import AIOHTTPSession  # noqa: PLC0415

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        AIOHTTPSession.__init__(self, *args, **kwargs)
        own = self._timeout
        self._timeout = aiohttp.ClientTimeout(
            total=ms / 1000, sock_connect=own.sock_connect, sock_read=own.sock_read
        )

    name = f"{_DEADLINE_SESSION_NAME}{ms}"  # pickled by name: see __getattr__
    cls = type(name, (AIOHTTPSession,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})
    _DEADLINE_SESSIONS[ms] = cls
    return cls


def __getattr__(name: str) -> Any:
    """``DeadlineSession_<ms>``, built on first use: storage options holding
    one are pickled by name for worker processes, which build it in turn."""
    if name.startswith(_DEADLINE_SESSION_NAME) and name[len(_DEADLINE_SESSION_NAME) :].isdigit():
        return _deadline_session_class(int(name[len(_DEADLINE_SESSION_NAME) :]) / 1000)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def is_deadline(exc: BaseException) -> bool:
    """A request ended by :func:`read_deadline`: aiohttp's total timeout
    raises a bare ``TimeoutError`` where a silent socket raises its
    ``ServerTimeoutError``; fsspec, aiobotocore and s3fs wrap either (as
    cause, context, or botocore's ``error`` keyword), so ``exc``'s whole
    chain is looked at."""
    aiohttp = sys.modules.get("aiohttp")
    silence: tuple[type, ...] = (aiohttp.ServerTimeoutError,) if aiohttp is not None else ()
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or any(cur is seen for seen in chain):
            continue
        chain.append(cur)
        kwargs = getattr(cur, "kwargs", None)  # botocore keeps the aiohttp error there
        nested = kwargs.get("error") if isinstance(kwargs, dict) else None
        todo += [cur.__cause__, cur.__context__, nested if isinstance(nested, BaseException) else None]
    if silence and any(isinstance(err, silence) for err in chain):
        return False
    return any(type(err) is TimeoutError for err in chain)


def deadline_message(where: str) -> str:
    """The message for the product ``where`` whose read took longer than :func:`read_deadline`."""
    return (
        f"{where}: a read of the product took longer than {read_deadline():g} s in all (the server sends "
        f"it too slowly); retry later, or set {READ_DEADLINE_VARIABLE} (seconds) in the environment "
        "to allow longer"
    )


def timeout_message(where: str) -> str:
    """The message for the product ``where`` whose server did not answer."""
    return (
        f"{where}: the server did not answer within {http_timeout():g} s (per request); retry later, or set "
        "GDAL_HTTP_TIMEOUT (seconds) in the environment to wait longer"
    )
