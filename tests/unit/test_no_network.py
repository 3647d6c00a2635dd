"""tests/unit/conftest.py: a unit test cannot open a network socket, only AF_UNIX ones."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError


def test_a_network_socket_is_refused_in_a_unit_test() -> None:
    # When a unit test opens a TCP socket, even to loopback
    # Then it is refused before any connection is tried
    with pytest.raises(SocketBlockedError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_unix_sockets_still_work() -> None:
    # multiprocessing and the worker's pipes use AF_UNIX: those stay open
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        left.sendall(b"ping")
        assert right.recv(4) == b"ping"


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_a_test_marked_for_loopback_may_listen_there() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert server.getsockname()[0] == "127.0.0.1"
