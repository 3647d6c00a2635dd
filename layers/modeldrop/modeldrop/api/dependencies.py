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
from modeldrop.guardrails.serving import LambdaShadowSender, ShadowSender
from modeldrop.guardrails.state import RolloutRecords
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
    # Canary and shadow bakes (modeldrop.guardrails): the rollout records promote/abort write, and
    # where a shadow bake's copies go. None: not wired (answered 503, no copies sent).
    rollouts: RolloutRecords | None = None
    shadow: ShadowSender | None = None
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


def shadow_sender(settings: ApiSettings) -> ShadowSender | None:
    if not settings.shadow_function_name:
        return None
    # One quick attempt: an Event invocation is queued by Lambda and answered 202 at once; a copy that
    # cannot be queued is skipped rather than delaying the client's answer.
    config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1})
    return LambdaShadowSender(boto3.client("lambda", config=config), settings.shadow_function_name)


def build_dependencies(settings: ApiSettings) -> ApiDependencies:
    table = boto3.resource("dynamodb").Table(settings.deployments_table)
    records = DeploymentRecords(table)
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
        rollouts=RolloutRecords(table),
        shadow=shadow_sender(settings),
        approvals=ModelApprovals(records=records, sagemaker=sagemaker),
    )


@functools.cache
def default_dependencies() -> ApiDependencies:
    return build_dependencies(ApiSettings.from_env())
