"""The functions host's workers come from its fork server (libraries imported once); they behave as
spawned workers did, and a dead fork server costs speed, never an invocation."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psutil
import pytest
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.functions_host import FunctionsForkServer, FunctionsHost

from tests.integration.local_cloud.conftest import echo_function_environment

ECHO = "fixture-EchoFunction"
FUNCTIONS_FORK_SERVER = ["-m", "modeldrop_local.forking", "--fork-server", "functions"]


@pytest.fixture
def host(cloud: LocalCloud) -> Iterator[FunctionsHost]:
    """A host of its own for the fixture's functions (no spares: every worker is started on demand)."""
    assert cloud.stack is not None
    functions_host = FunctionsHost(cloud.stack.functions, cloud.environment())
    yield functions_host
    functions_host.close()


def _echo(host: FunctionsHost, event: dict[str, object]) -> dict[str, object]:
    result = host.invoke(ECHO, json.dumps(event).encode())
    answer: dict[str, object] = json.loads(result.payload)
    assert not result.function_error, answer
    return answer


def test_a_worker_is_forked_from_the_fork_server_with_the_functions_own_environment(
    host: FunctionsHost, cloud: LocalCloud
) -> None:
    # When the function is invoked cold
    answer = _echo(host, {"ping": 1})
    # Then the fork server is its parent, and it runs with its own environment and layer
    worker = psutil.Process(int(str(answer["pid"])))
    fork_server = worker.parent()
    assert fork_server is not None and fork_server.cmdline()[1:5] == FUNCTIONS_FORK_SERVER
    assert answer["layer"] == "from-the-layer"
    assert answer["env"] == echo_function_environment(cloud)


def test_a_cold_start_after_the_fork_server_died_gets_a_new_one(host: FunctionsHost) -> None:
    # Given a warm worker, then its fork server killed (as by the OOM killer)
    first = psutil.Process(int(str(_echo(host, {})["pid"])))
    old_server = first.parent()
    assert old_server is not None
    old_server.kill()
    old_server.wait(timeout=5)
    # When an invocation outlives the Timeout (the worker is killed, the next one starts cold)
    result = host.invoke(ECHO, json.dumps({"sleep": 5}).encode())
    assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"
    # Then the next cold start still runs the function, from a fork server started again
    answer = _echo(host, {"after": "restart"})
    assert answer["event"] == {"after": "restart"}
    worker = psutil.Process(int(str(answer["pid"])))
    new_server = worker.parent()
    assert new_server is not None and new_server.pid != old_server.pid
    assert new_server.cmdline()[1:5] == FUNCTIONS_FORK_SERVER


def test_the_fork_server_only_imports_so_forking_it_is_safe(cloud: LocalCloud) -> None:
    # Given the functions' fork server, started on its own
    server = FunctionsForkServer(cloud.environment())
    try:
        # When it has imported the functions' libraries
        server.wait_ready()
        # Then it runs one thread (a fork copies only the calling one) and has the libraries loaded
        assert server.ready is not None
        assert server.ready["threads"] == 1
        assert {"boto3", "pydantic", "aws_lambda_powertools"} <= set(server.ready["loaded"])
    finally:
        server.close()
