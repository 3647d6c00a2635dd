"""DeploymentStatus's logic: the steps of the deploy state machine that need code.

  start      a Queued deployment tries its turn: Superseded if a newer upload exists, TimedOut when it
             waited too long, else sent to SageMaker (Deploying) or still Queued.
  smoke_test the endpoint is InService: invoke this deployment once with its modeldrop.json smoke test
             (Passed, Failed with the reason, or Skipped: none configured, a rollback, another config).
  smoke_failed  record the failure and roll back to the previous live version (RollingBack, with the
             rollback deployment the state machine follows next), or, with none, Unhealthy.
  succeeded  the endpoint is InService — but a failed UpdateEndpoint also ends InService (on the old
             config, with a FailureReason), so success means: InService on *this* deployment's config.
  failed     the endpoint is Failed (a first create) or otherwise broken: record FailureReason.
  timed_out  not InService within the deploy timeout.
  error      a state failed for good after its retries: record the error.
Every write is conditional on the deployment still being in flight, so a replayed step changes nothing.
Switching the endpoint (a queued deployment's turn, going live, the rollback) is the rollout's
(modeldrop.rollout); this module decides on the step and records its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config

from modeldrop.deployments_table import DeploymentRecords, GoLive
from modeldrop.events import DeploymentStatusEvent, StatusResult
from modeldrop.observability import logger, metrics
from modeldrop.records import Deployment, DeploymentStatus
from modeldrop.registry import describe_outcome
from modeldrop.rollout import IN_FLIGHT, Rollout, execution_input
from modeldrop.sagemaker_adapter import EndpointDescription, SageMakerAdapter
from modeldrop.settings import DeploymentStatusSettings
from modeldrop.smoke_test import INVOKE_READ_TIMEOUT_S, run_smoke_test

# Outcomes written into the version's Model Package (its ApprovalDescription) as well as its record.
_DESCRIBED_ON_THE_PACKAGE = {DeploymentStatus.FAILED, DeploymentStatus.TIMED_OUT, DeploymentStatus.UNHEALTHY}
# A newer deployment in one of these states replaces a queued older one (last upload wins).
_REPLACES_OLDER = {DeploymentStatus.QUEUED, DeploymentStatus.DEPLOYING, DeploymentStatus.IN_SERVICE}


@dataclass(frozen=True)
class StatusDependencies:
    settings: DeploymentStatusSettings
    sagemaker: SageMakerAdapter
    records: DeploymentRecords
    s3: Any
    # sagemaker-runtime, for the smoke test (one attempt: the state machine retries a cold endpoint).
    runtime: Any = None

    @classmethod
    def from_environment(cls, settings: DeploymentStatusSettings | None = None) -> StatusDependencies:
        settings = settings or DeploymentStatusSettings.load()
        runtime_config = Config(
            read_timeout=INVOKE_READ_TIMEOUT_S, retries={"mode": "standard", "total_max_attempts": 1}
        )
        return cls(
            settings=settings,
            sagemaker=SageMakerAdapter(boto3.client("sagemaker")),
            records=DeploymentRecords(boto3.resource("dynamodb").Table(settings.deployments_table)),
            s3=boto3.client("s3"),
            runtime=boto3.client("sagemaker-runtime", config=runtime_config),
        )

    @property
    def rollout(self) -> Rollout:
        # No executions: this function runs inside the one following the deployment.
        return Rollout(
            records=self.records,
            sagemaker=self.sagemaker,
            s3=self.s3,
            keep_versions=self.settings.keep_versions,
        )


def handle_status(event: DeploymentStatusEvent, deps: StatusDependencies) -> StatusResult:
    target = event.deployment
    logger.append_keys(model=target.model_name, deployment_id=target.deployment_id, action=event.action)
    deployment = deps.records.deployment_followed(target.model_name, target.version, target.deployment_id)

    if deployment.status not in IN_FLIGHT:
        # A replayed or late step: the recorded outcome stands, and SageMaker is not asked again.
        result = StatusResult(status=deployment.status.value, reason=deployment.reason)
    elif event.action == "start":
        result = _start(deployment, event, deps)
    elif event.action == "smoke_test":
        result = _smoke_test(deployment, EndpointDescription.from_response(event.endpoint or {}), deps)
    elif event.action == "smoke_failed":
        reason = str((event.smoke or {}).get("reason") or "the smoke test failed")
        result = _smoke_failed(deployment, reason, event.deployment.max_polls, deps)
    elif event.action == "succeeded":
        result = _in_service(deployment, EndpointDescription.from_response(event.endpoint or {}), deps)
    elif event.action == "failed":
        endpoint = EndpointDescription.from_response(event.endpoint or {})
        reason = (
            _failure_reason(endpoint, deps) or f"endpoint {endpoint.endpoint_name} became {endpoint.status}"
        )
        result = _finish(deployment, DeploymentStatus.FAILED, reason, deps, endpoint_status=endpoint.status)
    elif event.action == "timed_out":
        endpoint = EndpointDescription.from_response(event.endpoint or {})
        reason = (
            f"endpoint {endpoint.endpoint_name} not InService after {target.max_polls} polls "
            f"(deploy timeout); last status {endpoint.status}"
        )
        result = _finish(
            deployment, DeploymentStatus.TIMED_OUT, reason, deps, endpoint_status=endpoint.status
        )
    else:  # "error"
        error = event.error or {}
        reason = (
            f"deploy state machine error {error.get('Error', 'unknown')}: {error.get('Cause', '')}".strip()
        )
        result = _finish(deployment, DeploymentStatus.FAILED, reason, deps, endpoint_status=None)
    logger.info("deployment step recorded", extra={"status": result.status, "reason": result.reason})
    return result


def _start(deployment: Deployment, event: DeploymentStatusEvent, deps: StatusDependencies) -> StatusResult:
    if deployment.status is not DeploymentStatus.QUEUED:
        # Already started by an earlier attempt of this step.
        return StatusResult(status=deployment.status.value, reason=deployment.reason)
    newer = _newer_deployment(deployment, deps.records)
    if newer is not None:
        reason = f"superseded by version {newer.version} ({newer.deployment_id}), uploaded later"
        return _finish(deployment, DeploymentStatus.SUPERSEDED, reason, deps, endpoint_status=None)
    if event.polls >= event.deployment.max_polls:
        reason = f"still queued behind another deployment after {event.polls} polls (deploy timeout)"
        return _finish(deployment, DeploymentStatus.TIMED_OUT, reason, deps, endpoint_status=None)
    return StatusResult(status=deps.rollout.take_turn(deployment).value)


def _newer_deployment(deployment: Deployment, records: DeploymentRecords) -> Deployment | None:
    for candidate in records.list_deployments(deployment.model_name, limit=50):
        if candidate.version > deployment.version and candidate.status in _REPLACES_OLDER:
            return candidate
    return None


def _in_service(
    deployment: Deployment, endpoint: EndpointDescription, deps: StatusDependencies
) -> StatusResult:
    if endpoint.endpoint_config_name != deployment.endpoint_config_name:
        # UpdateEndpoint failed and SageMaker rolled back: the old config still serves.
        reason = _failure_reason(endpoint, deps) or (
            f"endpoint {endpoint.endpoint_name} is InService on {endpoint.endpoint_config_name}, "
            f"not on this deployment's {deployment.endpoint_config_name}"
        )
        return _finish(deployment, DeploymentStatus.FAILED, reason, deps, endpoint_status=endpoint.status)
    replaced = _live_upload(deployment.model_name, deps.records) if deployment.is_rollback else None
    if deps.rollout.go_live(deployment) is GoLive.NOT_IN_FLIGHT:
        current = deps.records.get_deployment(deployment.model_name, deployment.version)
        return StatusResult(status=(current or deployment).status.value)
    metrics.add_metric(name="DeploymentSucceeded", unit=MetricUnit.Count, value=1)
    if replaced is not None and replaced.version != deployment.serves_version:
        describe_outcome(
            replaced,
            f"v{replaced.version} rolled back to v{deployment.serves_version} "
            f"(deployment v{deployment.version})",
            deps.sagemaker,
        )
    if deployment.rolled_back_from is not None:
        # The automatic rollback after a failed smoke test is live: the execution still ends failed.
        return StatusResult(
            status="RolledBack", reason=f"v{deployment.rolled_back_from} failed its smoke test"
        )
    return StatusResult(status=DeploymentStatus.IN_SERVICE.value)


def _live_upload(model_name: str, records: DeploymentRecords) -> Deployment | None:
    """The upload whose model serves now (a live rollback serves its target's)."""
    model = records.get_model(model_name)
    if model is None or model.live_deployment_id is None:
        return None
    deployments = records.all_deployments(model_name)
    live = next((d for d in deployments if d.deployment_id == model.live_deployment_id), None)
    return next((d for d in deployments if live is not None and d.version == live.serves_version), None)


def _smoke_test(
    deployment: Deployment, endpoint: EndpointDescription, deps: StatusDependencies
) -> StatusResult:
    test = deployment.config.smoke_test if deployment.config else None
    if deployment.is_rollback or test is None:
        return StatusResult(status="Skipped")
    if endpoint.endpoint_config_name != deployment.endpoint_config_name:
        # The update failed and SageMaker went back to the old config: the next step records that.
        return StatusResult(status="Skipped")
    # SmokeTestNotReady (cold or throttled endpoint) propagates: the state machine retries the step.
    failure = run_smoke_test(deps.runtime, endpoint.endpoint_name, test)
    if failure is None:
        logger.info("smoke test passed")
        return StatusResult(status="Passed")
    logger.warning("smoke test failed", extra={"reason": failure})
    return StatusResult(status="Failed", reason=failure)


def _smoke_failed(
    deployment: Deployment, reason: str, max_polls: int, deps: StatusDependencies
) -> StatusResult:
    """Record the failed smoke test; roll back to the previous live version, or mark Unhealthy without one."""
    rollback = deps.rollout.roll_back_failed(deployment)
    if rollback is None:
        # A first version (or nothing left to restore): the endpoint stays, but it is not made live.
        return _finish(
            deployment,
            DeploymentStatus.UNHEALTHY,
            f"smoke test failed: {reason}; no previous version to roll back to, the endpoint stays up",
            deps,
            endpoint_status=DeploymentStatus.UNHEALTHY.value,
        )
    finished = _finish(
        deployment,
        DeploymentStatus.FAILED,
        f"smoke test failed: {reason}; "
        f"rolled back to v{rollback.rollback_to} (deployment v{rollback.version})",
        deps,
        endpoint_status=None,
    )
    return StatusResult(
        status="RollingBack", reason=finished.reason, rollback=execution_input(rollback, max_polls)
    )


def _failure_reason(endpoint: EndpointDescription, deps: StatusDependencies) -> str | None:
    """SageMaker's FailureReason: the state machine does not pass it (the field is optional in
    DescribeEndpoint's answer, and a missing JSONPath would be a runtime error), so read it here."""
    if endpoint.failure_reason:
        return endpoint.failure_reason
    current = deps.sagemaker.describe_endpoint(endpoint.endpoint_name)
    return current.failure_reason if current else None


def _finish(
    deployment: Deployment,
    status: DeploymentStatus,
    reason: str,
    deps: StatusDependencies,
    *,
    endpoint_status: str | None,
) -> StatusResult:
    if not deps.records.update_deployment(
        deployment.model_name, deployment.version, status, reason=reason, expected=IN_FLIGHT
    ):
        current = deps.records.get_deployment(deployment.model_name, deployment.version)
        current = current or deployment
        return StatusResult(status=current.status.value, reason=current.reason)
    if endpoint_status is not None and deps.records.get_model(deployment.model_name) is not None:
        deps.records.set_model_status(deployment.model_name, endpoint_status)
    if status in _DESCRIBED_ON_THE_PACKAGE:
        describe_outcome(deployment, f"v{deployment.version} {status.value}: {reason}", deps.sagemaker)
    metrics.add_metric(name=f"Deployment{status.value}", unit=MetricUnit.Count, value=1)
    return StatusResult(status=status.value, reason=reason)


def result_json(result: StatusResult) -> dict[str, Any]:
    return result.model_dump(by_alias=True, mode="json")
