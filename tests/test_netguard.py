"""The suite's network block (tests/netguard.py) refuses everything beyond the
loopback at once, with an error that says why, and lets 127.0.0.1 through."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from tests.netguard import NetworkBlocked

# TEST-NET-1 (RFC 5737): routable nowhere; unguarded, a connect would hang until its timeout
UNROUTABLE = ("192.0.2.1", 80)


def test_connect_to_a_non_local_address_fails_fast_with_a_clear_error() -> None:
    started = time.monotonic()
    with (
        socket.socket() as sock,
        pytest.raises(NetworkBlocked, match=r"only connect to 127\.0\.0\.1.*192\.0\.2\.1"),
    ):
        sock.settimeout(10)
        sock.connect(UNROUTABLE)
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect_ex(UNROUTABLE)
    with pytest.raises(NetworkBlocked):
        socket.create_connection(UNROUTABLE, timeout=10)
    assert time.monotonic() - started < 1.0


def test_name_lookup_of_a_remote_host_is_refused_before_any_dns_query() -> None:
    with pytest.raises(socket.gaierror, match=r"name lookup of 'stac-extensions\.github\.io'"):
        socket.getaddrinfo("stac-extensions.github.io", 443)
    # what a library sees: urllib wraps the refusal, the reason stays readable
    with pytest.raises(OSError, match=r"only connect to 127\.0\.0\.1"):
        urllib.request.urlopen("https://stac-extensions.github.io/", timeout=10)


def test_loopback_connections_still_work() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            conn, _ = server.accept()
            conn.close()
        with socket.create_connection(("localhost", port), timeout=5):
            conn, _ = server.accept()
            conn.close()
