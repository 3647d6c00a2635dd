"""Wires the adapters the routes use: built once per Lambda container, replaceable in tests."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import boto3
from botocore.config import Config

from modeldrop.api.logic import is_servable
from modeldrop.api.record_cache import CachedModelRecords
from modeldrop.api.records_reader import ModelRecordsReader
from modeldrop.api.runtime import ModelRuntime, SageMakerRuntime
from modeldrop.api.settings import ApiSettings
from modeldrop.deployments_table import DeploymentRecords
from modeldrop.registry import ModelApprovals
from modeldrop.rollout import DeployExecutions, Rollout
from modeldrop.sagemaker_adapter import SageMakerAdapter


@dataclass(frozen=True)
class ApiDependencies:
    records: ModelRecordsReader
    runtime: ModelRuntime
    # None where rollbacks are not wired (a stack without the state machine, some tests): answered 503.
    rollbacks: Rollout | None = None
    # Where the invocation path reads a model's endpoint: a short-lived cache of `records` in a warm
    # container (modeldrop.api.record_cache); None reads `records` on every request.
    serving_records: ModelRecordsReader | None = None
    # POST /models/{name}/versions/{version}/approve (UpdateModelPackage); None: answered 503.
    approvals: ModelApprovals | None = None

    @property
    def invocation_records(self) -> ModelRecordsReader:
        return self.serving_records or self.records


def sagemaker_runtime_client(settings: ApiSettings) -> object:
    # One attempt: a throttled or slow model is reported to the caller (429 / 504) at once
    # instead of being retried inside API Gateway's 29-second budget.
    config = Config(
        read_timeout=settings.invoke_read_timeout_s,
        connect_timeout=settings.invoke_connect_timeout_s,
        retries={"mode": "standard", "total_max_attempts": 1},
    )
    return boto3.client("sagemaker-runtime", config=config)


def build_dependencies(settings: ApiSettings) -> ApiDependencies:
    records = DeploymentRecords(boto3.resource("dynamodb").Table(settings.deployments_table))
    sagemaker = SageMakerAdapter(boto3.client("sagemaker"))
    rollbacks = None
    if settings.state_machine_arn:
        rollbacks = Rollout(
            records=records,
            sagemaker=sagemaker,
            executions=DeployExecutions(
                boto3.client("stepfunctions"), settings.state_machine_arn, max_polls=settings.max_polls
            ),
        )
    return ApiDependencies(
        records=records,
        runtime=SageMakerRuntime(sagemaker_runtime_client(settings)),
        rollbacks=rollbacks,
        serving_records=CachedModelRecords(records, is_servable, ttl_s=settings.record_cache_ttl_s),
        approvals=ModelApprovals(records=records, sagemaker=sagemaker),
    )


@functools.cache
def default_dependencies() -> ApiDependencies:
    return build_dependencies(ApiSettings.from_env())
