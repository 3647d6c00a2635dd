"""The threaded WSGI server of the edge and the REST front, with Nagle's algorithm off.

http.server (under werkzeug) writes a response's head and its body in separate sends. With Nagle on,
the body waits until the client ACKs the head, and a client that delays its ACK (Linux: up to 40 ms)
adds that much to every small request. TCP_NODELAY on each accepted socket sends both at once.
"""

from __future__ import annotations

import socket
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler


class NoDelayWSGIServer(ThreadedWSGIServer):
    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


def make_server(
    host: str, port: int, app: Any, request_handler: type[WSGIRequestHandler] | None = None
) -> NoDelayWSGIServer:
    """Like werkzeug.serving.make_server(threaded=True), on a NoDelayWSGIServer."""
    return NoDelayWSGIServer(host, port, app, handler=request_handler)
