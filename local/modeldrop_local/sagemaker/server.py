"""Running the local SageMaker on its own port: a lean, threaded HTTP/1.1 WSGI server.

Why not werkzeug's development server (which the edge and the REST front still use): it closes the
connection after every response, so each InvokeEndpoint paid a TCP handshake and a new thread; it parses
headers with the `email` package, logs every request to stderr, and writes the status line, headers
and body in separate sends. Here a connection keeps its thread while the client keeps it open (keep-alive,
as boto3 and http.client do), headers are parsed by hand, the whole answer goes out in one send, and
TCP_NODELAY is set so no answer waits on Nagle and the client's delayed ACK. The WSGI app is unchanged.
"""

from __future__ import annotations

import email.utils
import io
import logging
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from werkzeug.serving import DechunkedInput

from modeldrop_local.sagemaker.app import LocalSageMakerApp, create_app
from modeldrop_local.sagemaker.lifecycle import Clock
from modeldrop_local.sagemaker.pool import LauncherLike
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings

_logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 65536
MAX_HEADERS = 100
IDLE_CONNECTION_TIMEOUT_S = 300.0  # a keep-alive connection with no request for this long is closed
MAX_DRAIN_BYTES = (
    16 * 1024 * 1024
)  # an unread request body up to this size is read off to keep the connection
SERVER_SOFTWARE = "modeldrop-local-sagemaker"
_NO_BODY_STATUSES = frozenset({204, 304})


class BadRequest(Exception):
    """The request line or headers cannot be parsed: answer 400 (431 for oversized headers) and close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BodyReader(io.RawIOBase):
    """wsgi.input for a Content-Length body: reads at most that many bytes, and knows what is left."""

    def __init__(self, stream: io.BufferedIOBase, length: int) -> None:
        super().__init__()
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.remaining <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        size = min(len(view), self.remaining)
        count = self._stream.readinto(view[:size])
        if not count:
            raise ConnectionError("the client closed the connection in the middle of the request body")
        self.remaining -= count
        return count

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.remaining:
            size = self.remaining
        if size <= 0:
            return b""
        data = self._stream.read(size)
        if len(data) < size:
            self.remaining = 0
            raise ConnectionError("the client closed the connection in the middle of the request body")
        self.remaining -= size
        return data

    def drain(self, limit: int) -> bool:
        """Read off what the app left unread (so the next request parses); False if over the limit."""
        if self.remaining > limit:
            return False
        while self.remaining > 0:
            if not self.read(min(self.remaining, 1 << 20)):
                return False
        return True


def _framing_error(environ: dict[str, Any]) -> str | None:
    """Why the request's body framing cannot be trusted, or None (RFC 9112 §6.1-6.3)."""
    encoding = environ.get("HTTP_TRANSFER_ENCODING")
    length = environ.get("CONTENT_LENGTH")
    if encoding is not None:
        if length is not None:
            return "both Transfer-Encoding and Content-Length"
        if encoding.strip().lower() != "chunked":
            return f"unsupported Transfer-Encoding {encoding[:50]!r} (only chunked)"
        return None
    if length is not None and not (length.isascii() and length.isdigit()):
        return f"invalid Content-Length {length[:50]!r}"
    return None


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class ConnectionHandler(socketserver.BaseRequestHandler):
    """Serves the requests of one connection, one after the other, on the connection's own thread."""

    server: LeanWSGIServer
    request: socket.socket

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(IDLE_CONNECTION_TIMEOUT_S)
        self.rfile = cast(io.BufferedIOBase, self.request.makefile("rb", buffering=65536))
        self.client_address_text = str(self.client_address[0])
        self.client_port = int(self.client_address[1])

    def handle(self) -> None:
        self.server.track(self.request, True)
        try:
            while self._serve_one():
                pass
        except (ConnectionError, TimeoutError, OSError):
            return  # the client went away or idled out: nothing to answer
        finally:
            self.server.track(self.request, False)

    def finish(self) -> None:
        self.rfile.close()

    # -- one request

    def _read_line(self) -> bytes:
        line = self.rfile.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            raise BadRequest("line too long")
        return line

    def _serve_one(self) -> bool:
        """Answer one request; False when the connection must be closed."""
        try:
            line = self._read_line()
            while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 §2.2)
                line = self._read_line()
        except BadRequest:
            self._send_simple(414, "Bad request: request line too long")
            return False
        if not line:
            return False
        try:
            method, target, version, headers = self._parse(line)
        except BadRequest as error:
            self._send_simple(error.status, f"Bad request: {error}")
            return False
        environ = self._environ(method, target, version, headers)
        keep_alive = version == "HTTP/1.1" and "close" not in environ.get("HTTP_CONNECTION", "").lower()
        body: BodyReader | None = None
        framing_error = _framing_error(environ)
        if framing_error:
            # Ambiguous or invalid framing is how requests are smuggled (RFC 9112 §6.3): refuse and close.
            self._send_simple(400, f"Bad request: {framing_error}")
            return False
        if "HTTP_TRANSFER_ENCODING" in environ:
            environ["wsgi.input"] = DechunkedInput(self.rfile)  # type: ignore[arg-type]
            environ["wsgi.input_terminated"] = True
            keep_alive = False  # simplest safe choice for a rare framing: no draining to get wrong
        else:
            body = BodyReader(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = body
            environ["wsgi.input_terminated"] = True
        if environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        status, response_headers, payload = self._run_app(environ)
        if body is not None and body.remaining and not body.drain(MAX_DRAIN_BYTES):
            keep_alive = False
        self._send(status, response_headers, payload, keep_alive, head=method == "HEAD")
        return keep_alive

    def _parse(self, line: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
        parts = line.decode("latin-1").rstrip("\r\n").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"malformed request line {line[:100]!r}")
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        while True:
            try:
                raw = self._read_line()
            except BadRequest:
                raise BadRequest("header line too long", 431) from None
            if raw in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= MAX_HEADERS:
                raise BadRequest("too many headers", 431)
            text = raw.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and headers:  # an obsolete folded continuation line
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                raise BadRequest(f"malformed header line {text[:100]!r}")
            headers.append((name, value.strip()))
        return method, target, version, headers

    def _environ(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]]
    ) -> dict[str, Any]:
        host_from_target = None
        if target.startswith(("http://", "https://")):  # absolute-form: its host wins (RFC 9112 §3.2.2)
            parts = urlsplit(target)
            path, query, host_from_target = parts.path or "/", parts.query, parts.netloc
        else:
            path, _, query = target.partition("?")
        server_host, server_port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            # WSGI's "bytes as latin-1" strings, as werkzeug's server gives them
            "PATH_INFO": unquote(path).encode("utf-8").decode("latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": target,
            "RAW_URI": target,
            "REMOTE_ADDR": self.client_address_text,
            "REMOTE_PORT": self.client_port,
            "SERVER_NAME": str(server_host),
            "SERVER_PORT": str(server_port),
            "SERVER_PROTOCOL": version,
        }
        for name, value in headers:
            if "_" in name:  # as werkzeug: X-Foo_Bar could spoof X-Foo-Bar once both become HTTP_X_FOO_BAR
                continue
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = f"HTTP_{key}"
            if key in environ and key != "CONTENT_TYPE":
                # A repeated header joins with commas (RFC 9110 5.3); so does a repeated Content-Length,
                # which _framing_error then refuses: differing lengths are how requests are smuggled.
                value = f"{environ[key]},{value}"
            environ[key] = value
        if host_from_target:
            environ["HTTP_HOST"] = host_from_target
        return environ

    def _run_app(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            if started and not exc_info:
                raise AssertionError("start_response called twice without exc_info")
            started[:] = [status, headers]
            return written.append

        try:
            iterable = self.server.app(environ, start_response)
            try:
                for chunk in iterable:
                    written.append(chunk)
            finally:
                close = getattr(iterable, "close", None)
                if close is not None:
                    close()
        except Exception:  # the app answers its own errors; this is a bug in it, seen in the log
            _logger.exception("the WSGI app failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            return "500 Internal Server Error", [("Content-Type", "text/plain")], b"Internal Server Error"
        if not started:
            return "500 Internal Server Error", [("Content-Type", "text/plain")], b"no response from the app"
        return started[0], started[1], b"".join(written)

    def _send(
        self, status: str, headers: list[tuple[str, str]], payload: bytes, keep_alive: bool, *, head: bool
    ) -> None:
        code = int(status.split(None, 1)[0])
        lines = [f"HTTP/1.1 {status}\r\n"]
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower == "connection":
                continue  # ours, below
            if lower == "content-length":
                has_length = True
            lines.append(f"{name}: {value}\r\n")
        if not has_length and code >= 200 and code not in _NO_BODY_STATUSES:
            lines.append(f"Content-Length: {len(payload)}\r\n")
        lines.append(f"Server: {SERVER_SOFTWARE}\r\nDate: {_http_date()}\r\n")
        lines.append("Connection: keep-alive\r\n\r\n" if keep_alive else "Connection: close\r\n\r\n")
        head_bytes = "".join(lines).encode("latin-1")
        self.request.sendall(head_bytes if head else head_bytes + payload)

    def _send_simple(self, code: int, message: str) -> None:
        reason = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}.get(
            code, "Error"
        )
        self._send(f"{code} {reason}", [("Content-Type", "text/plain")], message.encode(), False, head=False)


class LeanWSGIServer(socketserver.ThreadingTCPServer):
    """A thread per connection, kept while the client keeps the connection open."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        host: str,
        port: int,
        app: Callable[..., Iterable[bytes]],
        handler: type[ConnectionHandler] = ConnectionHandler,
    ) -> None:
        super().__init__((host, port), handler)
        self.app = app
        self.host = host
        self.port = int(self.server_address[1])
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def server_close(self) -> None:
        """Stop listening and end the kept-alive connections, so their threads finish too."""
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed by its thread


def make_server(host: str, port: int, app: Callable[..., Iterable[bytes]]) -> LeanWSGIServer:
    return LeanWSGIServer(host, port, app)


@dataclass
class RunningServer:
    app: LocalSageMakerApp
    server: LeanWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        self.app.close()


def start_in_thread(
    settings: LocalSageMakerSettings, launcher: LauncherLike | None = None, *, clock: Clock | None = None
) -> RunningServer:
    """Serve on settings.host:settings.port (0: a free port) from a daemon thread; `.stop()` ends it."""
    app = create_app(settings, launcher, clock=clock)
    server = make_server(settings.host, settings.port, app)
    thread = threading.Thread(target=server.serve_forever, name="local-sagemaker-http", daemon=True)
    thread.start()
    return RunningServer(app, server, thread)


def serve(settings: LocalSageMakerSettings) -> None:
    """Serve in the foreground until interrupted, then stop every worker."""
    app = create_app(settings)
    server = make_server(settings.host, settings.port, app)
    print(
        f"local SageMaker on http://{settings.host}:{server.port} (state in {settings.state_dir})", flush=True
    )

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too must stop the workers (fork servers are our children)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()
