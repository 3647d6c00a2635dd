"""The local cloud's one HTTP server (waitress plus modeldrop's three additions), on its own."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from modeldrop_local.http_server import MAX_HEADER_BYTES, WSGIServer

from reliability.hostile_http import expect_continue_call
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


# --- Expect: 100-continue, for every body size -----------------------------------------------------

# What botocore sends for put_object(Body=b"") (1.43.11 and the pinned release alike: captured off the
# wire), less the signature: the head alone, with Expect and Content-Length: 0.
BOTOCORE_EMPTY_PUT = (
    b"PUT /bucket/key HTTP/1.1\r\nAccept-Encoding: identity\r\nUser-Agent: Boto3/1.43.11 Botocore/1.43.11\r\n"
    b"Expect: 100-continue\r\nx-amz-checksum-crc32: AAAAAA==\r\nx-amz-sdk-checksum-algorithm: CRC32\r\n"
    b"host: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
)


@pytest.mark.parametrize(
    ("head", "body", "answer"),
    [
        (BOTOCORE_EMPTY_PUT % 0, b"", b"0 /bucket/key "),
        (b"GET /no-body HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", b"", b"- /no-body "),
        (BOTOCORE_EMPTY_PUT % 5, b"hello", b"5 /bucket/key hello"),
        (BOTOCORE_EMPTY_PUT % 999, b"x" * 999, b"999 /bucket/key " + b"x" * 999),
        (
            b"POST /c HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\r\n",
            b"3 /c abc",
        ),
    ],
    ids=["empty-body", "no-body-at-all", "small-body", "body-at-the-limit", "chunked"],
)
def test_expect_continue_gets_100_then_the_answer_whatever_the_body(
    server: WSGIServer, head: bytes, body: bytes, answer: bytes
) -> None:
    # Given a request with Expect: 100-continue, sent as botocore sends it (head first, body on 100)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        # When it reaches the server
        got = expect_continue_call(connection, head, body)
    # Then the 100 comes at once, the body goes, and the final answer follows without a wait
    assert (got.continued, got.body_sent, got.status) == (True, True, 200)
    assert got.body == answer
    assert got.seconds < 1.0


def test_expect_continue_over_the_body_limit_is_refused_at_once(server: WSGIServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        got = expect_continue_call(connection, BOTOCORE_EMPTY_PUT % 1000, b"x" * 1000)
    # The refusal is the final answer to the head: no 100, and the body is never sent
    assert (got.continued, got.body_sent, got.status) == (False, False, 413)


def test_botocore_1_43_11s_empty_put_then_a_put_with_a_body_on_one_connection(server: WSGIServer) -> None:
    # Given botocore's keep-alive connection: an empty PutObject, then one with a body (1.43.11 reads the
    # second answer with the status of the first when the first came without a 100; see http_server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        first = expect_continue_call(connection, BOTOCORE_EMPTY_PUT % 0, b"")
        second = expect_continue_call(connection, BOTOCORE_EMPTY_PUT % 3, b"abc")
    # Then each got its 100 and its own answer, on the same connection
    assert (first.continued, first.status, first.body) == (True, 200, b"0 /bucket/key ")
    assert (second.continued, second.status, second.body) == (True, 200, b"3 /bucket/key abc")
