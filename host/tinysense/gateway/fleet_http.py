"""`tinysense gateway --http HOST:PORT`: the fleet page and its JSON, read-only.

The standard library's ThreadingHTTPServer in a daemon thread; everything the page needs
(one HTML file with its own style and script) is served from here, nothing from outside.
No login on a loopback address; any other address needs a token (`--http-token`, env
TINYSENSE_HTTP_TOKEN), sent as `Authorization: Bearer TOKEN` or `?token=TOKEN` (what a
browser's address bar can carry; the page passes it on to its JSON requests), compared in
constant time. Access lines are not logged (a query string may hold the token).

Endpoints (docs/gateway.md, "The fleet page"): GET /, /api/fleet, /api/devices/ID.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from tinysense.errors import TinysenseError
from tinysense.gateway.fleet import FleetView

log = logging.getLogger("tinysense.gateway.http")

TOKEN_ENV = "TINYSENSE_HTTP_TOKEN"
DEFAULT_HTTP_PORT = 8080
PAGE = "fleet_page.html"


class HttpUsageError(TinysenseError):
    """A bad --http value or a missing token: a usage error (exit 2)."""


def parse_http(text: str) -> tuple[str, int]:
    """'127.0.0.1:8080', 'localhost:8080', '[::1]:8080', ':8080' -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    bad = HttpUsageError(f"bad --http value {text!r}; expected HOST:PORT, e.g. "
                         f"127.0.0.1:{DEFAULT_HTTP_PORT}")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise bad
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        host = "127.0.0.1"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise HttpUsageError(f"bad --http host {host!r}: it does not resolve; give an "
                             "address such as 127.0.0.1 or 0.0.0.0") from None
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback
                               for i in infos)


def check_http(text: str, token: str | None) -> tuple[str, int]:
    """Parse --http and refuse a non-loopback address without a token."""
    host, port = parse_http(text)
    if not token and not is_loopback(host):
        raise HttpUsageError(f"--http {text}: not a loopback address, so a token is "
                             f"required: give --http-token or env {TOKEN_ENV} (the page "
                             "is then opened with ?token=...)")
    return host, port


def _loopback_host(header: str | None) -> bool:
    """Whether a request's Host header names a loopback address or localhost."""
    if not header:
        return False
    host = header.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class FleetServer:
    """The fleet page on HOST:PORT over a read-only view of the gateway database."""

    def __init__(self, view: FleetView, host: str, port: int, token: str | None = None):
        check_http(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", token)
        self.view = view
        self.token = token.encode() if token else None
        self.page = resources.files("tinysense.gateway").joinpath(PAGE).read_bytes()
        server_cls = _Server6 if ":" in host else _Server
        try:
            self.httpd = server_cls((host, port), _handler(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TinysenseError(f"--http {host}:{port}: address already in use (another "
                                     "gateway or web server?); choose another port") from None
            raise TinysenseError(f"--http {host}:{port}: cannot listen: "
                                 f"{exc.strerror or exc}") from None
        h, p = self.httpd.server_address[:2]
        self.address = f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fleet-http",
                                       kwargs={"poll_interval": 0.2}, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def authorized(self, header: str | None, query: dict) -> bool:
        if self.token is None:
            return True
        given = ""
        if header and header.startswith("Bearer "):
            given = header[7:].strip()
        elif query.get("token"):
            given = query["token"][0]
        return hmac.compare_digest(given.encode(), self.token)


def _handler(server: FleetServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tinysense-fleet"
        sys_version = ""

        def log_message(self, format, *args):  # noqa: A002 - no access log: tokens in URLs
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; script-src 'unsafe-inline'; style-src "
                             "'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
            if status == HTTPStatus.UNAUTHORIZED:
                self.send_header("WWW-Authenticate", 'Bearer realm="tinysense"')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data) -> None:
            self._send(status, json.dumps(data, separators=(",", ":")).encode(),
                       "application/json")

        def _allowed(self, query: dict) -> bool:
            if server.token is None and not _loopback_host(self.headers.get("Host")):
                # no login on loopback, but only for pages that were opened as a loopback
                # address: another site's page whose name was re-pointed at 127.0.0.1
                # (DNS rebinding) sends its own name as Host
                self._json(HTTPStatus.FORBIDDEN, {"error": "open the page as 127.0.0.1, [::1] "
                                                           "or localhost"})
                return False
            if server.authorized(self.headers.get("Authorization"), query):
                return True
            self._json(HTTPStatus.UNAUTHORIZED,
                       {"error": "token required: Authorization: Bearer TOKEN or ?token=TOKEN"})
            return False

        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            if not self._allowed(parse_qs(url.query)):
                return None
            try:
                if url.path in ("/", "/index.html"):
                    return self._send(HTTPStatus.OK, server.page, "text/html; charset=utf-8")
                if url.path == "/api/fleet":
                    return self._json(HTTPStatus.OK, server.view.fleet())
                if url.path.startswith("/api/devices/"):
                    ident = url.path[len("/api/devices/"):]
                    try:
                        dev = int(ident, 0)
                    except ValueError:
                        return self._json(HTTPStatus.BAD_REQUEST,
                                          {"error": f"bad device id {ident!r}"})
                    data = server.view.device(dev)
                    if data is None:
                        return self._json(HTTPStatus.NOT_FOUND,
                                          {"error": f"no device {ident}"})
                    return self._json(HTTPStatus.OK, data)
            except Exception as exc:  # noqa: BLE001 - one request fails, the server goes on
                log.warning("fleet page: %s on %s: %s", type(exc).__name__, url.path, exc)
                return self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                                  {"error": f"{type(exc).__name__}: {exc}"})
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page {url.path}"})

        do_HEAD = do_GET

        def _read_only(self):
            if self._allowed(parse_qs(urlsplit(self.path).query)):
                self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "read-only: GET only"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

    return Handler
