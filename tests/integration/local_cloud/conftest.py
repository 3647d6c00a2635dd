"""One local cloud per test module, running the tiny fixture template in fixture/."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from modeldrop_local.cloud import LocalCloud

from tests.utils import cloud_on_free_ports

FIXTURE_TEMPLATE = Path(__file__).parent / "fixture" / "template.yaml"
T = TypeVar("T")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    local_cloud = cloud_on_free_ports(
        tmp_path_factory,
        template_path=FIXTURE_TEMPLATE,
        stack_name="fixture",
        parameters={"Greeting": "hi-from-params"},
    )
    with local_cloud:
        yield local_cloud


@pytest.fixture
def client(cloud: LocalCloud, aws_env: None) -> Callable[[str], Any]:
    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=cloud.edge_url, region_name="us-east-1")  # type: ignore[call-overload]

    return make


def echo_function_environment(cloud: LocalCloud) -> dict[str, str]:
    """What the fixture template's EchoFunction sees in its environment: its Variables with the
    intrinsics resolved, plus what the functions host adds."""
    return {
        "GREETING": "hi-from-params",
        "TABLE_NAME": "fixture-EventsTable",
        "FLOW_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:fixture-Flow",
        "BUCKET_ARN": "arn:aws:s3:::fixture-uploads-123456789012",
        "AWS_ENDPOINT_URL": cloud.edge_url,
        "AWS_LAMBDA_FUNCTION_NAME": "fixture-EchoFunction",
    }


def wait_for(probe: Callable[[], T | None], timeout_s: float = 20, interval_s: float = 0.1) -> T:
    """Poll probe until it returns something truthy (no event to await across processes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s")
