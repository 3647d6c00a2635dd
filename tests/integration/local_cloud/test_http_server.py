"""The local cloud's one HTTP server (waitress plus modeldrop's three additions), on its own."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from modeldrop_local.http_server import MAX_HEADER_BYTES, WSGIServer

from tests.utils import exchange_until_closed


def _echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("x-amz-meta-model_name", "iris"), ("x-amzn-ErrorType", "None")],
    )
    return [b"%s %s %s" % (environ.get("CONTENT_LENGTH", "-").encode(), environ["PATH_INFO"].encode(), body)]


@pytest.fixture
def server() -> Iterator[WSGIServer]:
    running = WSGIServer("127.0.0.1", 0, _echo_app, threads=1, max_body_bytes=1000, name="test")
    running.start()
    yield running
    running.stop()


def test_a_half_sent_request_holds_no_worker_thread(server: WSGIServer) -> None:
    # Given a server with one worker thread, and a client that sent half a request and went quiet
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        # When another client sends a whole request
        answer = exchange_until_closed(
            server.port, b"GET /quick HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
    # Then it is answered: the half-sent one waits in the event loop, not on the thread
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"- /quick ")


def test_headers_over_the_limit_get_431(server: WSGIServer) -> None:
    # Given a request whose headers exceed the limit
    request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Filler: %s\r\n\r\n" % (b"a" * MAX_HEADER_BYTES)
    # When it is sent
    answer = exchange_until_closed(server.port, request)
    # Then the answer is 431, and the app never saw it
    assert answer.split(b" ", 2)[1] == b"431"


def test_a_body_over_the_limit_gets_413(server: WSGIServer) -> None:
    # Given a server that takes bodies of up to 999 bytes
    request = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    # When a larger one is sent
    answer = exchange_until_closed(server.port, request)
    # Then it is refused with 413
    assert answer.split(b" ", 2)[1] == b"413"


def test_a_chunked_body_reaches_the_app_whole_with_its_length(server: WSGIServer) -> None:
    # Given a chunked request body of two chunks
    request = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    request += b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    # When it is sent
    answer = exchange_until_closed(server.port, request)
    # Then the app reads the whole body, with a Content-Length
    assert answer.endswith(b"\r\n\r\n5 /c abcde")


def test_response_header_names_go_out_as_the_app_spelt_them(server: WSGIServer) -> None:
    # Given an app answering with a lower-case S3 metadata header and a mixed-case one
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    # When it answers
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    connection.close()
    # Then the names are spelt as the app spelt them (botocore reads S3 metadata keys from them)
    names = [name for name, _ in response.getheaders()]
    assert "x-amz-meta-model_name" in names
    assert "x-amzn-ErrorType" in names


def test_stop_closes_kept_alive_connections_and_ends_the_threads() -> None:
    # Given a running server and a client holding a keep-alive connection open
    before = set(threading.enumerate())
    running = WSGIServer("127.0.0.1", 0, _echo_app, threads=3, name="stopping")
    running.start()
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    connection.request("GET", "/")
    connection.getresponse().read()
    # When the server stops
    running.stop()
    # Then the kept connection is closed by the server, and no thread of the server is left
    assert connection.sock is not None
    assert connection.sock.recv(1) == b""
    connection.close()
    assert set(threading.enumerate()) <= before
