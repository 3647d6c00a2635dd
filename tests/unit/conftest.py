"""Unit tests reach no network: every socket but AF_UNIX is refused (pytest-socket, miketheman/pytest-socket).

moto's mock serves AWS in-process, and botocore.stub.Stubber answers without a connection, so a unit
test that opens a socket is calling something real by mistake. A test that serves real HTTP on
loopback on purpose says so with `@pytest.mark.allow_hosts(["127.0.0.1"])`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: only those under tests/unit are held to it.
    for item in items:
        if UNIT_TESTS in Path(str(item.path)).parents and not item.get_closest_marker("allow_hosts"):
            item.add_marker(pytest.mark.disable_socket)
