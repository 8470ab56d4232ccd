"""A latency and fault proxy on 127.0.0.1 in front of the local S3 endpoint.

Real S3 answers in 20–40 ms; moto on 127.0.0.1 in well under one. This proxy
(asyncio, one task per client connection, HTTP/1.1 keep-alive) holds every
request for ``delay`` seconds before forwarding it, so a benchmark sees the
round trips a real deployment pays::

    with LatencyProxy(s3.endpoint_url, delay=0.030) as proxy:
        options = {**s3.storage_options, "endpoint_url": proxy.endpoint_url}

Faults: ``proxy.add_fault("PUT", r"/collection\\.json$", "503", every=10)``
answers every 10th matching request with a 503 SlowDown (``"reset"`` closes
the connection instead, ``"delay:<ms>"`` adds that much more latency).
Counts per method are in :attr:`LatencyProxy.counts`.

Run alone: ``python bench/latproxy.py http://127.0.0.1:PORT --delay-ms 30``
prints the proxy's endpoint and serves until interrupted. Listens on
127.0.0.1 only; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["Fault", "LatencyProxy"]

_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"expect", b"te", b"trailer", b"upgrade"}


@dataclass
class Fault:
    """Answer requests with ``method`` (``*``: any) whose path matches
    ``pattern`` with ``fault`` (``503``, ``reset`` or ``delay:<ms>``), for
    every ``every``-th match, at most ``limit`` times (None: no limit)."""

    method: str
    pattern: str
    fault: str
    every: int = 1
    limit: int | None = None
    seen: int = 0
    hits: int = 0
    _regex: Any = field(default=None, repr=False)

    def fires(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        if self._regex is None:
            self._regex = re.compile(self.pattern)
        if not self._regex.search(path):
            return False
        self.seen += 1
        if self.seen % self.every or (self.limit is not None and self.hits >= self.limit):
            return False
        self.hits += 1
        return True


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _headers(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    out = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            out.append((name.strip(), value.strip()))
    return lines[0], out


def _get(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The body as declared by Content-Length or chunked encoding (de-chunked);
    None when neither is given (read to the end of the connection)."""
    if (_get(headers, b"transfer-encoding") or b"").lower() == b"chunked":
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = _get(headers, b"content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return None


def _message(first: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    kept = [
        (k, v)
        for k, v in headers
        if k.lower() not in _HOP and k.lower() not in (b"content-length", b"transfer-encoding")
    ]
    lines = [first, *(k + b": " + v for k, v in kept), b"Content-Length: " + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class LatencyProxy:
    """The proxy, served by an asyncio loop on a thread of its own."""

    def __init__(self, upstream: str, delay: float = 0.030, port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.delay = delay
        self.port = port
        self.faults: list[Fault] = []
        self.counts: Counter[str] = Counter()
        #: every request as ``(method, path, query)``, for request-count tests and traces
        self.trace: list[tuple[str, str, str]] = []
        #: every request as ``(method, path, query, start, end)``: ``time.perf_counter()``
        #: when its head arrived and when its answer was written back (None: no answer)
        self.timeline: list[tuple[str, str, str, float, float | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_fault(
        self, method: str, pattern: str, fault: str, every: int = 1, limit: int | None = None
    ) -> Fault:
        rule = Fault(method, pattern, fault, every, limit)
        self.faults.append(rule)
        return rule

    # -- serving -----------------------------------------------------------------

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.upstream_host, self.upstream_port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    return
                first, headers = _headers(head)
                method, target = first.split(b" ")[:2]
                if (_get(headers, b"expect") or b"").lower() == b"100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                started = time.perf_counter()
                body = await _read_body(reader, headers) or b""
                name, path = method.decode(), unquote(urlsplit(target.decode()).path)
                self.counts[name] += 1
                query = urlsplit(target.decode()).query
                self.trace.append((name, path, query))
                entry = len(self.timeline)
                self.timeline.append((name, path, query, started, None))
                delay = self.delay
                fault = next((f.fault for f in self.faults if f.fires(name, path)), None)
                if fault is not None and fault.startswith("delay:"):
                    delay += float(fault.split(":", 1)[1]) / 1000.0
                    fault = None
                if delay:
                    await asyncio.sleep(delay)
                if fault == "reset":
                    return
                if fault == "503":
                    writer.write(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(_SLOWDOWN)}\r\n\r\n".encode()
                        + _SLOWDOWN
                    )
                    await writer.drain()
                    self.timeline[entry] = (name, path, query, started, time.perf_counter())
                    continue
                if up is None:
                    up = await self._upstream()
                up_reader, up_writer = up
                up_writer.write(_message(first, headers, body))
                await up_writer.drain()
                rhead = await _read_head(up_reader)
                if rhead is None:
                    return
                rfirst, rheaders = _headers(rhead)
                status = int(rfirst.split(b" ")[1])
                if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
                    rbody: bytes | None = b""
                else:
                    rbody = await _read_body(up_reader, rheaders)
                if rbody is None:  # length unknown: the upstream closes after the body
                    rbody = await up_reader.read()
                    up_writer.close()
                    up = None
                if method == b"HEAD":
                    writer.write(rhead)
                else:
                    writer.write(_message(rfirst, rheaders, rbody))
                await writer.drain()
                self.timeline[entry] = (name, path, query, started, time.perf_counter())
                conn = (_get(rheaders, b"connection") or b"").lower()
                closes = conn == b"close" or (rfirst.startswith(b"HTTP/1.0") and conn != b"keep-alive")
                if closes and up is not None:
                    up[1].close()
                    up = None
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # stop() with a client connection open: just close it
            return
        finally:
            if up is not None:
                up[1].close()
            writer.close()

    def start(self) -> LatencyProxy:
        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            loop.run_forever()
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="latproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("upstream", help="endpoint to forward to, e.g. http://127.0.0.1:5000")
    ap.add_argument("--delay-ms", type=float, default=30.0)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    proxy = LatencyProxy(args.upstream, args.delay_ms / 1000.0, args.port).start()
    print(proxy.endpoint_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
