"""The one HTTP server of the local cloud's three ports (edge, REST front, standalone SageMaker): waitress.

waitress (Pylons, pure Python) is a maintained WSGI server with what these ports need: HTTP/1.1
keep-alive, TCP_NODELAY on every accepted socket (its default `socket_options`), a request read whole
by its event loop before a worker thread sees it (so slow or half-sent requests never hold a thread),
431 for oversized headers, 501 for a transfer coding other than chunked, 400 for an invalid
Content-Length, and a fixed pool of worker threads. Four things are added here:
- a request with both Transfer-Encoding and Content-Length is refused with 400 (RFC 9112 §6.3 lets a
  server let chunked win, as waitress does, but such a request is how requests are smuggled past a
  proxy, and no client of these ports sends one);
- on a port that moto answers, headers whose names hold an underscore (S3 metadata `x-amz-meta-a_b`)
  reach moto with their spelling, as moto's own server gives them; waitress drops such headers, since
  in WSGI `X-A_B` and `X-A-B` would both become `HTTP_X_A_B`;
- response header names go out as the app spelt them (waitress capitalises them; see `_Task`);
- `Expect: 100-continue` on a request with no body to wait for (Content-Length: 0, or none) is answered,
  and on one already refused (413, 431, 400) the refusal comes at once; waitress hangs both (see
  `_Channel.send_continue`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError, get_header_lines
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher, WSGITask

WSGIApp = Callable[..., Iterable[bytes]]
EnvironHook = Callable[[dict[str, Any], list[tuple[str, str]]], None]

# One line per request at INFO (`local up --verbose`); `local up` leaves it at WARNING.
access_log = logging.getLogger("modeldrop_local.access")

MAX_HEADER_BYTES = 64 * 1024  # request line + headers; past it: 431
IDLE_CONNECTION_TIMEOUT_S = 300  # a keep-alive connection with no request for this long is closed
# Every request holds a worker thread until it is answered, and calls between the cloud's parts nest
# (a Lambda invoke through the edge waits while its function calls the edge), so a port's pool must
# exceed what can be in flight at once: the account's serverless concurrency (local quota 10 by
# default, 200 at most per endpoint) plus the state machines and functions calling back.
DEFAULT_THREADS = 64
CONNECTION_LIMIT = 1000  # open connections, idle keep-alive ones included (poll(), not select())


class _FramingCheckedParser(HTTPRequestParser):
    """waitress's parser, refusing a request that carries both Transfer-Encoding and Content-Length."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            raise ParsingError("both Transfer-Encoding and Content-Length")


class _RawHeadersParser(_FramingCheckedParser):
    """Also keeps each header as sent (name spelling included), for an environ hook."""

    raw_headers: list[tuple[str, str]]

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        _, _, header_block = header_plus.partition(b"\r\n")
        raw = []
        for line in get_header_lines(header_block):
            name, _, value = line.partition(b":")
            raw.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        self.raw_headers = raw


class _Task(WSGITask):
    """waitress's WSGI task, sending response header names as the app spelt them.

    waitress capitalises every name (`x-amz-meta-model_name` → `X-Amz-Meta-Model_name`). Names are
    case-insensitive in HTTP, but not to every client: botocore takes S3 metadata keys from the header
    names as sent, and S3 sends them in lower case, so a capitalised one reaches the user changed.
    """

    def build_response_header(self) -> bytes:
        spelt = {
            capitalised: name
            for name, _ in self.response_headers
            if (capitalised := _capitalised(name)) != name
        }
        head: bytes = super().build_response_header()
        if not spelt:
            return head  # the common case: nothing to re-spell
        status_line, *lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
        named = []
        for line in lines:
            name, separator, value = line.partition(": ")
            named.append(f"{spelt.get(name, name)}{separator}{value}")
        return "\r\n".join([status_line, *named, "", ""]).encode("latin-1")


def _capitalised(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))  # as waitress's task.py does


class _HookedTask(_Task):
    def get_environment(self) -> dict[str, Any]:
        if self.environ is not None:
            return self.environ
        environ: dict[str, Any] = super().get_environment()
        hook = self.channel.server.environ_hook
        if hook is not None:
            hook(environ, self.request.raw_headers)
        return environ


class _Channel(HTTPChannel):
    parser_class = _FramingCheckedParser
    task_class = _Task

    def send_continue(self) -> None:
        """100 Continue, without waitress's hang on a request that is complete with its headers.

        waitress 3.0.2's send_continue (src/waitress/channel.py) marks the request incomplete again to
        read the body it invites; a request with no body (botocore sends `Expect: 100-continue` with
        Content-Length: 0 for put_object(Body=b"")) or one already refused then waits for a body that
        never comes, and the client times out. A refusal is sent as the final status instead of the 100
        (RFC 9110 §10.1.1 allows either; waitress closes the connection after a refusal). A bodiless
        request still gets its 100 first: botocore 1.43.11 keeps the status of a final answer to an
        Expect request and reads the next response on that kept-alive connection with it (awsrequest.py
        AWSConnection.request resets response_class only for requests without Expect; later releases
        reset it always), so an early final answer would make the next call time out.
        """
        request = self.request
        if request.error is not None:
            request.expect_continue = False
            return
        completed = request.completed
        super().send_continue()
        request.completed = completed

    def handle_close(self) -> None:
        # A socket closed with unread input is reset, and a reset can discard an answer the client has
        # not read yet (a 431 or 413 sent before the rest of the request was read): read off what has
        # already arrived, so the close is an orderly one.
        _read_off_pending_input(self.socket)
        super().handle_close()


class _HookedChannel(_Channel):
    parser_class = _RawHeadersParser
    task_class = _HookedTask


def _read_off_pending_input(connection: socket.socket | None, limit: int = 1 << 20) -> None:
    if connection is None:
        return
    try:
        connection.shutdown(socket.SHUT_WR)
        while limit > 0 and (data := connection.recv(65536)):  # the event loop's sockets do not block
            limit -= len(data)
    except OSError:
        return  # nothing more to read now, or the client has gone


class WSGIServer(TcpWSGIServer):
    """A waitress server on host:port (0: a free one) with its own thread pool, run from a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApp,
        *,
        threads: int = DEFAULT_THREADS,
        max_body_bytes: int = 1 << 30,
        environ_hook: EnvironHook | None = None,
        name: str = "http",
    ) -> None:
        adj = Adjustments(
            host=host,
            port=port,
            threads=threads,
            ident=f"modeldrop-{name}",
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=max_body_bytes,
            channel_timeout=IDLE_CONNECTION_TIMEOUT_S,
            connection_limit=CONNECTION_LIMIT,
            asyncore_use_poll=True,
            clear_untrusted_proxy_headers=False,  # no proxy in front: no X-Forwarded-* to strip
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(threads)
        self.environ_hook = environ_hook
        self.channel_class = _HookedChannel if environ_hook else _Channel
        super().__init__(_logged(app), map={}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
        self.host = host
        self.port = int(self.effective_port)
        self._thread = threading.Thread(target=self.run, name=f"{name}-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve on the calling thread until `stop()` (or KeyboardInterrupt)."""
        self.run()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening, close every connection (idle keep-alive ones too), end the worker threads."""
        if self._thread.is_alive():
            # The event loop owns the sockets: close them on its own thread, via its trigger. The
            # trigger only leaves the loop's map there; its pipe is closed here once the loop has
            # returned, since the loop may run the thunk before this thread's write reaches the pipe.
            self.trigger.pull_trigger(self._close_all_but_the_trigger)
            self._thread.join(timeout_s)
        else:
            self._close_all_but_the_trigger()  # never started, or `serve_forever()` has returned
        self.trigger.close()
        self.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout_s)

    def _close_all_but_the_trigger(self) -> None:
        for dispatcher in list(self._map.values()):
            if dispatcher is self.trigger:
                dispatcher.del_channel()  # with nothing left in its map, the loop returns
            elif dispatcher is self:
                wasyncore.dispatcher.close(self)  # the listening socket (our close() takes the trigger too)
            else:
                dispatcher.close()


def _logged(app: WSGIApp) -> WSGIApp:
    """The app, with one access-log line per request when `modeldrop_local.access` is at INFO."""

    def logged_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not access_log.isEnabledFor(logging.INFO):
            return app(environ, start_response)
        status: list[str] = []

        def recording_start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [code]
            return start_response(code, headers, exc_info)

        iterable = app(environ, recording_start_response)
        try:
            body = list(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        access_log.info(
            '%s "%s %s %s" %s %d',
            environ.get("REMOTE_ADDR", "-"),
            environ["REQUEST_METHOD"],
            environ["REQUEST_URI"],
            environ["SERVER_PROTOCOL"],
            status[0].split(" ", 1)[0] if status else "-",
            sum(len(chunk) for chunk in body),
        )
        return body

    return logged_app
