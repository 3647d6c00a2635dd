"""The production sagemaker-runtime client against a real HTTP server on loopback: bytes on the wire,
one attempt only (no hidden retries), and read timeouts / refused connections mapped to 504 / 502."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.api.dependencies import ApiDependencies, sagemaker_runtime_client
from modeldrop.api.routes import create_resolver
from modeldrop.api.runtime import SageMakerRuntime
from modeldrop.api.settings import ApiSettings
from modeldrop.deployments_table import DeploymentRecords

from tests.unit.api.support import TABLE_NAME, assert_error, header, put_model
from tests.utils import free_port, load_event

# Real HTTP on loopback on purpose (tests/unit/conftest.py blocks sockets elsewhere).
pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

REQUEST_ID = "e3b0c442-98fc-41c1-a4e2-9c6f1b2d3a4e"


@dataclass
class FakeRuntimeBehaviour:
    """What the loopback SageMaker runtime does, and what it saw."""

    mode: str = "echo"  # echo | throttle | hang
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


def _handler_for(behaviour: FakeRuntimeBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            behaviour.requests.append((self.path, dict(self.headers), body))
            if behaviour.mode == "hang":
                behaviour.release.wait(timeout=10)
                return
            if behaviour.mode == "throttle":
                payload = json.dumps({"message": "Rate exceeded"}).encode()
                self.send_response(400)
                self.send_header("x-amzn-ErrorType", "ThrottlingException")
                self.send_header("Content-Type", "application/json")
            else:
                payload = body
                self.send_response(200)
                self.send_header("Content-Type", self.headers.get("Accept", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    return Handler


@pytest.fixture
def fake_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuntimeBehaviour]:
    behaviour = FakeRuntimeBehaviour()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(behaviour))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{server.server_address[1]}")
    yield behaviour
    behaviour.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _api(table: Any) -> APIGatewayRestResolver:
    settings = ApiSettings(
        deployments_table=TABLE_NAME, invoke_read_timeout_s=0.5, invoke_connect_timeout_s=0.5
    )
    dependencies = ApiDependencies(
        records=DeploymentRecords(table), runtime=SageMakerRuntime(sagemaker_runtime_client(settings))
    )
    return create_resolver(lambda: dependencies)


def test_binary_bytes_cross_the_wire_unchanged(
    fake_runtime: FakeRuntimeBehaviour, table: Any, lambda_context: LambdaContext
) -> None:
    # Given an InService model behind a runtime that echoes what it receives
    put_model(table, "iris")
    event = load_event("api_invoke_binary")
    # When the binary sample is invoked
    response = _api(table).resolve(event, lambda_context)
    # Then the runtime got the decoded bytes with the caller's headers, and they came back intact
    path, headers, body = fake_runtime.requests[0]
    assert path == "/endpoints/modeldrop-iris/invocations"
    assert headers["Content-Type"] == "application/x-npy"
    assert headers["Accept"] == "application/x-npy"
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert response["body"] == event["body"]
    assert body == base64.b64decode(event["body"])


def test_throttling_is_reported_at_once_without_retries(
    fake_runtime: FakeRuntimeBehaviour, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a runtime that throttles every request
    put_model(table, "iris")
    fake_runtime.mode = "throttle"
    # When invoked
    response = _api(table).resolve(load_event("api_invoke_binary"), lambda_context)
    # Then 429 with Retry-After, after exactly one attempt
    assert_error(response, 429, "Throttled", "iris", REQUEST_ID)
    assert header(response, "Retry-After") == "1"
    assert len(fake_runtime.requests) == 1


def test_read_timeout_is_504(
    fake_runtime: FakeRuntimeBehaviour, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a runtime that never answers
    put_model(table, "iris")
    fake_runtime.mode = "hang"
    # When invoked with a 0.5 s read timeout
    response = _api(table).resolve(load_event("api_invoke_binary"), lambda_context)
    # Then 504 ModelTimeout, after one attempt
    assert_error(response, 504, "ModelTimeout", "iris", REQUEST_ID)
    assert len(fake_runtime.requests) == 1


def test_refused_connection_is_502(
    monkeypatch: pytest.MonkeyPatch, table: Any, lambda_context: LambdaContext
) -> None:
    # Given nothing listening where the runtime should be
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", f"http://127.0.0.1:{free_port()}")
    put_model(table, "iris")
    # When invoked / Then 502 UpstreamFailure
    response = _api(table).resolve(load_event("api_invoke_binary"), lambda_context)
    assert_error(response, 502, "UpstreamFailure", "iris", REQUEST_ID)
