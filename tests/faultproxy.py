"""A fault-injecting HTTP proxy on 127.0.0.1, in front of the moto S3 server.

Point a client's ``endpoint_url`` at :attr:`FaultProxy.endpoint_url`; every
request is forwarded to the upstream endpoint unchanged, except those that
match a rule, which get the rule's fault instead::

    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.add("GET", r"/data/bad\\.tif$", "503")    # 503 SlowDown XML
        proxy.add("GET", r"/data/kms\\.tif$", "403")    # 403 AccessDenied XML
        proxy.add("GET", r"\\.tif$", "reset")            # connection reset (RST)
        proxy.add("GET", r"\\.tif$", "stall")            # never answers (until stopped)
        proxy.add("GET", r"\\.json$", "slowbody")        # headers, a few bytes, then nothing
        proxy.add("GET", r"\\.json$", "badsig")          # 403 SignatureDoesNotMatch, as S3 words it
        proxy.add("GET", r"\\.tif$", "trickle")          # the body a byte at a time, never silent long
        proxy.add("GET", r"/collection\\.json$", "hold", until=r"\\.tif$")  # forwarded once a .tif request came

Rules match the HTTP method (``"*"`` for any) and a regular expression
searched in the request path (``/<bucket>/<key>``, URL-decoded, without the
query string). ``limit`` makes a rule fire only that many times, ``skip`` lets that many
matching requests through before it fires. A ``slowbody`` rule forwards the
 request (a PUT lands upstream) and stalls its answer after the headers; a
``trickle`` rule forwards it and sends the body one byte every
:attr:`FaultProxy.trickle_interval` seconds (no read timeout ever fires). The proxy
counts requests per method, records the ``Range`` header of every GET and
adds up the bytes of GET answers per path (:attr:`FaultProxy.get_bytes`), so
tests can check that extraction read headers only. A ``hold`` rule keeps its
request (unanswered) until a request whose path matches its ``until``
arrives, then forwards it; after :attr:`FaultProxy.hold_seconds` without one
it forwards it anyway and counts that in the rule's ``expired``: which
requests a client sends while another is on its way, by order, not timing.

Nothing is written anywhere; the proxy listens on 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["FaultProxy", "Rule"]

FAULTS = ("503", "403", "reset", "stall", "slowbody", "badsig", "trickle", "hold")
#: bytes of the body a ``slowbody`` answer sends before it stalls
SLOWBODY_BYTES = 8

_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>User is not authorized to perform: kms:Decrypt</Message></Error>"
)


def _bad_signature(method: str, path: str, headers: Any) -> bytes:
    """S3's 403 SignatureDoesNotMatch body for this request: like AWS, it
    echoes the access key id and the request it signed (its canonical
    headers, so a session token's ``x-amz-security-token`` too)."""
    from xml.sax.saxutils import escape

    signed = sorted(k.lower() for k in headers if k.lower() == "host" or k.lower().startswith("x-amz-"))
    canonical = "\n".join(
        [
            method,
            path,
            "",
            *(f"{k}:{headers.get(k, '').strip()}" for k in signed),
            "",
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    auth = headers.get("Authorization", "")
    key_id = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
        "<Message>The request signature we calculated does not match the signature you provided. "
        f"Check your key and signing method.</Message><AWSAccessKeyId>{escape(key_id)}</AWSAccessKeyId>"
        f"<CanonicalRequest>{escape(canonical)}</CanonicalRequest></Error>"
    ).encode()


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
}


@dataclass
class Rule:
    """Answer requests with ``method`` whose path matches ``pattern`` with ``fault``."""

    method: str
    pattern: str
    fault: str
    limit: int | None = None
    skip: int = 0
    hits: int = 0
    seen: int = 0
    #: ``hold``: the path pattern of the request that releases a held one
    until: str | None = None
    #: ``hold``: requests forwarded because nothing released them in time
    expired: int = 0
    _regex: Any = field(default=None, repr=False)
    _arrived: threading.Event = field(default_factory=threading.Event, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.limit is not None and self.hits >= self.limit:
            return False
        if self.method not in ("*", method):
            return False
        if self._regex is None:
            self._regex = re.compile(self.pattern)
        if not self._regex.search(path):
            return False
        self.seen += 1
        return self.seen > self.skip


class FaultProxy:
    """A threaded HTTP reverse proxy to ``upstream`` (``http://127.0.0.1:PORT``)
    that injects the faults of its rules. Use as a context manager, or call
    :meth:`start` / :meth:`stop`."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the fault proxy only forwards to 127.0.0.1, not {upstream}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.rules: list[Rule] = []
        self.requests: dict[str, int] = {}
        self.get_ranges: list[tuple[str, str | None]] = []
        #: bytes of the bodies of forwarded GET answers, per path
        self.get_bytes: dict[str, int] = {}
        #: every request as ``(method, path, query string)``, in arrival order
        self.trace: list[tuple[str, str, str]] = []
        #: seconds between two bytes of a ``trickle`` answer
        self.trickle_interval = 0.2
        #: seconds a ``hold`` rule keeps a request when nothing releases it
        self.hold_seconds = 5.0
        self._lock = threading.Lock()
        self._release = threading.Event()  # set on stop: stalled handlers give up
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- rules -----------------------------------------------------------------

    def add(
        self,
        method: str,
        pattern: str,
        fault: str,
        limit: int | None = None,
        skip: int = 0,
        until: str | None = None,
    ) -> Rule:
        """Add a rule; returns it (its ``hits`` count how often it fired).
        ``skip`` lets that many matching requests through first (a fault in
        the middle of a read); ``limit`` stops it after that many faults;
        ``until`` (``hold`` only, required there): see the module's doc."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; use one of {FAULTS}")
        if (fault == "hold") != (until is not None):
            raise ValueError("a hold rule, and only one, takes until= (the pattern that releases it)")
        rule = Rule(method.upper(), pattern, fault, limit, skip, until=until)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule and counter: the proxy forwards everything again."""
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.get_ranges.clear()
            self.get_bytes.clear()
            self.trace.clear()

    def _match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.requests[method] = self.requests.get(method, 0) + 1
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    # --- server ----------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start the proxy first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # no access log on stderr
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _fault(self, rule: Rule) -> None:
                if rule.fault == "reset":
                    # SO_LINGER 0: close() sends RST instead of FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if rule.fault == "stall":
                    proxy._release.wait()
                    self.close_connection = True
                    return
                if rule.fault == "slowbody":
                    self._slow_body()
                    return
                if rule.fault == "trickle":
                    self._trickle()
                    return
                if rule.fault == "hold":
                    if not rule._arrived.wait(proxy.hold_seconds):
                        with proxy._lock:
                            rule.expired += 1
                    self._pass(self._request_body)
                    return
                if rule.fault == "badsig":
                    status, body = 403, _bad_signature(self.command, urlsplit(self.path).path, self.headers)
                else:
                    status, body = (503, _SLOWDOWN) if rule.fault == "503" else (403, _DENIED)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                # a HEAD response carries no body, but says how long it would be
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _upstream(self, body: bytes) -> tuple[http.client.HTTPResponse, bytes]:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                    }
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    return resp, resp.read()
                finally:
                    conn.close()

            def _send_head(self, resp: http.client.HTTPResponse, data: bytes) -> None:
                self.send_response_only(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = resp.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()

            def _slow_body(self) -> None:
                """The upstream's status and headers (its full Content-Length),
                the first :data:`SLOWBODY_BYTES` of the body, then nothing
                until the proxy stops: a body that stalls mid-way."""
                resp, data = self._upstream(self._request_body)
                self._send_head(resp, data)
                if self.command != "HEAD":
                    self.wfile.write(data[:SLOWBODY_BYTES])
                self.wfile.flush()
                proxy._release.wait()
                self.close_connection = True

            def _trickle(self) -> None:
                """The upstream's answer, its body one byte at a time, every
                ``trickle_interval`` seconds, until done or the proxy stops."""
                resp, data = self._upstream(self._request_body)
                self._send_head(resp, data)
                self.wfile.flush()
                if self.command != "HEAD":
                    for i in range(len(data)):
                        if proxy._release.wait(proxy.trickle_interval):
                            break
                        try:
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            break
                self.close_connection = True

            def _forward(self) -> None:
                body = self._body()
                path = unquote(urlsplit(self.path).path)
                with proxy._lock:
                    proxy.trace.append((self.command, path, unquote(urlsplit(self.path).query)))
                    for held in proxy.rules:  # a request that releases held ones
                        if held.until is not None and re.search(held.until, path):
                            held._arrived.set()
                if self.command == "GET":
                    with proxy._lock:
                        proxy.get_ranges.append((path, self.headers.get("Range")))
                rule = proxy._match(self.command, path)
                if rule is not None:
                    self._request_body = body
                    self._fault(rule)
                    return
                self._pass(body)

            def _pass(self, body: bytes) -> None:
                path = unquote(urlsplit(self.path).path)
                resp, data = self._upstream(body)
                self._send_head(resp, data)
                if self.command == "GET":
                    with proxy._lock:
                        proxy.get_bytes[path] = proxy.get_bytes.get(path, 0) + len(data)
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled requests, stop serving and close the socket."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
