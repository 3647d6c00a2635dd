"""Framing on the private channel between the launcher and a worker.

A frame is a JSON header plus an opaque body: `!II` (header length, body length), header, body.
A Unix stream socket pair carries it, so request and response bodies never pass through the
worker's stdout/stderr, which belong to the model's code.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

_LENGTHS = struct.Struct("!II")
MAX_HEADER_BYTES = 1 << 20
# Up to this size a frame goes out in one send (one syscall, one wake-up of the reader); a bigger body
# is sent on its own rather than copied.
COALESCE_BYTES = 256 * 1024


class ChannelClosed(ConnectionError):
    """The other end went away (the process exited or was killed)."""


def send_frame(sock: socket.socket, header: dict[str, Any], body: bytes = b"") -> None:
    encoded = json.dumps(header).encode()
    prefix = _LENGTHS.pack(len(encoded), len(body))
    if len(body) <= COALESCE_BYTES:
        sock.sendall(b"".join((prefix, encoded, body)))
    else:
        sock.sendall(prefix + encoded)
        sock.sendall(body)


def _recv_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytearray:
    view = bytearray(size)
    received = 0
    while received < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the deadline passed")
            sock.settimeout(remaining)
        count = sock.recv_into(memoryview(view)[received:], size - received)
        if count == 0:
            raise ChannelClosed("the channel was closed by the other end")
        received += count
    return view


def recv_frame(sock: socket.socket, deadline: float | None = None) -> tuple[dict[str, Any], bytes]:
    """One frame. With a deadline (a time.monotonic() value): TimeoutError once it passes."""
    header_size, body_size = _LENGTHS.unpack(_recv_exactly(sock, _LENGTHS.size, deadline))
    if header_size > MAX_HEADER_BYTES:
        raise ChannelClosed(f"corrupt frame: header of {header_size} bytes")
    # Header and body in one read: the sender wrote them together.
    data = _recv_exactly(sock, header_size + body_size, deadline)
    header: dict[str, Any] = json.loads(data[:header_size])
    body = bytes(memoryview(data)[header_size:]) if body_size else b""
    return header, body
