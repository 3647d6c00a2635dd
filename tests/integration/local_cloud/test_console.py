"""What a user sees at the console: one clear line when the cloud or the stack is not there, no
access-log line per internal call unless --verbose, condensed function logs, and servers that do
not wait on Nagle."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import httpx
import psutil
import pytest
from modeldrop_local.cli import app
from modeldrop_local.cli.local import configure_console
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.functions_host.console import console_line
from typer.testing import CliRunner

from tests.integration.local_cloud.conftest import wait_for
from tests.utils import free_port


def test_a_command_with_no_cloud_listening_says_so_in_one_line() -> None:
    # Given nothing listening on the edge port
    url = f"http://127.0.0.1:{free_port()}"
    # When a command that needs the stack runs against it
    for command in (["status"], ["logs", "iris"], ["invoke", "iris", "--data", "{}"]):
        result = CliRunner().invoke(app, [*command, "--endpoint-url", url])
        # Then it fails with one line naming the address and what to do, and no traceback
        assert result.exit_code == 1, result.output
        assert result.output == f"cannot reach {url}: is `modeldrop local up` running?\n"


def test_an_unknown_stack_name_says_so_in_one_line(cloud: LocalCloud) -> None:
    # Given a running local cloud whose stack is "fixture"
    # When a command asks for a stack that is not there
    result = CliRunner().invoke(app, ["status", "--endpoint-url", cloud.edge_url, "--stack-name", "nope"])
    # Then it fails with one line naming the stack and how to choose another
    assert result.exit_code == 1
    assert result.output == (
        f"no stack named nope at {cloud.edge_url} (choose one with --stack-name or AWS_SAM_STACK_NAME)\n"
    )


@pytest.fixture
def console_levels() -> Iterator[None]:
    """configure_console changes process-wide logger levels: put them back after the test."""
    names = ("modeldrop_local.access", "moto.stepfunctions.parser.asl.component.eval_component")
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_access_logs_only_with_verbose(
    cloud: LocalCloud, console_levels: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the console configured as `local up` does by default
    configure_console(verbose=False)
    # When the edge and the REST front answer requests
    httpx.get(f"{cloud.edge_url}/")
    httpx.get(f"{cloud.api_url}/nowhere")
    # Then no access-log line was logged
    assert [r.getMessage() for r in caplog.records if r.name == "modeldrop_local.access"] == []
    # When the console is configured with --verbose
    configure_console(verbose=True)
    httpx.get(f"{cloud.api_url}/nowhere")
    # Then each request gets its access-log line
    access_log = [r.getMessage() for r in caplog.records if r.name == "modeldrop_local.access"]
    assert any('"GET /test/nowhere HTTP/1.1" 403' in line for line in access_log)


def _accepted_socket_nodelay(port: int) -> int:
    """Connect to port and read TCP_NODELAY on the socket the server (in this process) accepted."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client_port = client.getsockname()[1]

        def accepted_fd() -> int | None:
            for connection in psutil.Process().net_connections(kind="tcp"):
                local, remote = connection.laddr, connection.raddr
                if local and remote and (local.port, remote.port) == (port, client_port):
                    return connection.fd
            return None

        fd = wait_for(accepted_fd, timeout_s=5, interval_s=0.01)
        with socket.socket(fileno=socket.dup(fd)) as accepted:
            return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_edge_and_rest_front_send_without_waiting_on_nagle(cloud: LocalCloud) -> None:
    # Given the running edge and REST front
    assert cloud.rest is not None
    # When a client connects to each
    # Then the socket each server accepted has TCP_NODELAY set (head and body leave at once)
    assert _accepted_socket_nodelay(cloud.edge_port) == 1
    assert _accepted_socket_nodelay(cloud.rest.port) == 1


def test_function_logs_are_condensed_for_the_console() -> None:
    # Given the lines a Powertools function writes: a record, an EMF metric, an error, a logged event
    record = {"level": "INFO", "message": "deployment recorded", "model": "iris", "status": "Deploying"}
    metric = {"_aws": {"CloudWatchMetrics": []}, "DeploymentStarted": [1.0]}
    error = {"level": "ERROR", "message": "boom", "exception": "Traceback ...\nValueError: x"}
    event = {"level": "INFO", "message": {"Records": []}}
    # When each is shown on the console
    lines = (record, metric, error, event)
    shown = [console_line("OnUploadFunction", json.dumps(line) + "\n") for line in lines]
    # Then the record and the error are one readable line (the error with its traceback), the rest stays out
    assert shown == [
        "OnUploadFunction INFO deployment recorded model=iris status=Deploying",
        None,
        "OnUploadFunction ERROR boom\nTraceback ...\nValueError: x",
        None,
    ]
    # And a plain print passes as it is
    assert console_line("ApiFunction", "hello\n") == "ApiFunction: hello"
