"""Fixtures: a moto DeploymentsTable built from template.yaml, a stubbed sagemaker-runtime client,
and the API resolver wired to both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.stub import Stubber
from modeldrop.api.dependencies import ApiDependencies
from modeldrop.api.routes import create_resolver
from modeldrop.api.runtime import SageMakerRuntime
from modeldrop.deployments_table import DeploymentRecords
from moto import mock_aws

from tests.unit.api.support import create_deployments_table, fake_lambda_context


@pytest.fixture
def table(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield create_deployments_table(boto3.resource("dynamodb", region_name="us-east-1"))


@pytest.fixture
def runtime_client(aws_env: None) -> Any:
    return boto3.client("sagemaker-runtime", region_name="us-east-1")


@pytest.fixture
def sagemaker(runtime_client: Any) -> Iterator[Stubber]:
    """Stubs InvokeEndpoint; every queued response must be consumed by the test."""
    with Stubber(runtime_client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def api(table: Any, runtime_client: Any) -> APIGatewayRestResolver:
    dependencies = ApiDependencies(records=DeploymentRecords(table), runtime=SageMakerRuntime(runtime_client))
    return create_resolver(lambda: dependencies)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return fake_lambda_context()
