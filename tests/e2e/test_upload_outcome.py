"""An upload's outcome is recorded at once, whatever else the local cloud is doing (issue 9).

Its own cloud, with the template's AWS default PollIntervalSeconds=30: a deployment's state machine then
sits in its Wait state for half a minute, which is what the hostile upload must not queue behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from modeldrop_local.example_models import build_sklearn_iris
from modeldrop_local.stack_client import StackClient

from reliability.tarballs import escaping_tarball
from tests.integration.local_cloud.conftest import wait_for
from tests.utils import cloud_on_free_ports

pytestmark = pytest.mark.e2e
STACK_NAME = "modeldrop-outcome"


@pytest.fixture(scope="module")
def slow_polling_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    logging.getLogger("modeldrop_local.access").setLevel(logging.WARNING)
    cloud = cloud_on_free_ports(
        tmp_path_factory, stack_name=STACK_NAME, parameters={"PollIntervalSeconds": "30"}
    )
    with cloud:
        yield StackClient(cloud.edge_url, STACK_NAME)


def _deployment(stack: StackClient, model: str, version: str | None) -> Any:
    return next(
        (d for d in stack.records().list_deployments(model, limit=5) if d.object_version == version), None
    )


def test_a_hostile_upload_is_rejected_while_another_models_state_machine_waits(
    slow_polling_stack: StackClient, tmp_path: Path, aws_env: None
) -> None:
    stack = slow_polling_stack
    # Given a model whose deployment is followed by a state machine waiting 30 s before its first poll
    waiting_version = stack.upload(build_sklearn_iris(tmp_path / "iris"), "waiting")
    waiting = wait_for(
        lambda: (d := _deployment(stack, "waiting", waiting_version)) and d.execution_arn and d,
        timeout_s=20,
    )
    assert str(waiting.status) == "Deploying"
    stepfunctions = boto3.client("stepfunctions", endpoint_url=stack.endpoint_url)
    try:
        # When a tarball with a path escaping its root is uploaded as another model
        hostile_version = stack.upload(escaping_tarball(tmp_path / "hostile.tar.gz"), "hostile")
        # Then its rejection is recorded, with its reason, while the first state machine still waits
        rejected = wait_for(
            lambda: (d := _deployment(stack, "hostile", hostile_version)) and str(d.status) != "Queued" and d,
            timeout_s=10,
        )
        assert str(rejected.status) == "Rejected"
        assert rejected.reason == "path escapes the archive root: '../escaped.txt'"
        execution = stepfunctions.describe_execution(executionArn=waiting.execution_arn)
        assert execution["status"] == "RUNNING"
        assert str(_deployment(stack, "waiting", waiting_version).status) == "Deploying"
    finally:
        # The waiting execution must not outlive this cloud and call back into a later one.
        stepfunctions.stop_execution(executionArn=waiting.execution_arn)
