"""The suite's one network block: nothing connects beyond the loopback.

Loaded as a pytest plugin by ``tests/conftest.py``. From ``pytest_configure``
to ``pytest_unconfigure`` of every process that runs tests (the main one and
each xdist worker), :func:`socket.socket.connect`, ``connect_ex`` and
:func:`socket.getaddrinfo` refuse any address that is not 127.0.0.1, ``::1``
or ``localhost``, at once and with :class:`NetworkBlocked` naming the address.
A name lookup is refused before it starts, so no DNS query leaves the machine
either. The error is an :class:`OSError` (a :class:`socket.gaierror` for
lookups), the type a closed network gives, so the code under test takes the
same path it would take offline.

Subprocesses a test starts (the CLI, spawned writers, the Prefect server) are
not covered: they only ever get 127.0.0.1 endpoints from the tests.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

__all__ = ["NetworkBlocked", "allowed_host", "install", "uninstall"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", ""})


class NetworkBlocked(OSError):
    """A test tried to reach an address outside 127.0.0.1."""


class LookupBlocked(NetworkBlocked, socket.gaierror):
    """A test tried to resolve a name that is not local."""


def allowed_host(host: Any) -> bool:
    """True for the loopback: 127.0.0.0/8, ``::1``, ``localhost``, and the
    unspecified address (``0.0.0.0``, ``::``: what a server binds to, and on
    Linux a connection to it stays on this machine)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _message(what: str) -> str:
    return f"tests may only connect to 127.0.0.1: {what} refused by tests/netguard.py"


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check(sock: socket.socket, address: Any) -> None:
    ip_family = sock.family in (socket.AF_INET, socket.AF_INET6)
    if ip_family and isinstance(address, tuple) and address and not allowed_host(address[0]):
        raise NetworkBlocked(_message(f"connection to {address!r}"))


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not allowed_host(host):
        raise LookupBlocked(socket.EAI_NONAME, _message(f"name lookup of {host!r}"))
    return _real_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    """Patch :mod:`socket` in this process (idempotent)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _guarded_getaddrinfo


def uninstall() -> None:
    """Restore :mod:`socket` as it was before :func:`install`."""
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _real_getaddrinfo


def pytest_configure(config: Any) -> None:
    install()


def pytest_unconfigure(config: Any) -> None:
    uninstall()
