"""Rollback on demand: switch a model's endpoint back to a kept version, through the deploy state machine.

A rollback is a deployment of its own (kind Rollback, a new version number, `rollbackTo` = the version it
restores) that reuses the kept version's SageMaker model and endpoint config instead of creating new ones.
It then goes exactly the way an upload goes: UpdateEndpoint (the live version keeps serving until the
restored one is InService), or Queued behind a deployment in flight, followed by the same state machine,
recorded InService, Failed or TimedOut. A version is *kept* while its model and config exist: it went
InService once and the cleanup (KeepVersions) has not deleted it yet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from modeldrop import naming
from modeldrop.deploy import execution_input, start_or_queue
from modeldrop.observability import logger
from modeldrop.records import Deployment, DeploymentKind, DeploymentRecords, DeploymentStatus, utc_now
from modeldrop.registry import is_approved
from modeldrop.sagemaker_adapter import SageMakerAdapter


class RollbackRefused(Exception):
    """The rollback cannot be done; `reason` says why and `kept` lists the versions that can be restored."""

    def __init__(self, code: str, reason: str, kept: list[int]) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.kept = kept


class UnknownModel(LookupError):
    pass


@dataclass(frozen=True)
class RollbackDependencies:
    records: DeploymentRecords
    sagemaker: SageMakerAdapter
    stepfunctions: Any
    state_machine_arn: str
    max_polls: int


@dataclass(frozen=True)
class RollbackPlan:
    target: Deployment
    live: Deployment
    kept: list[int]


def kept_versions(deployments: list[Deployment], *, serving: int | None) -> list[Deployment]:
    """The uploads a rollback can restore, newest first: InService once, model and config not deleted,
    Approved in the Model Registry, and not the version serving now."""
    return sorted(
        (
            deployment
            for deployment in deployments
            if not deployment.is_rollback
            and deployment.status is DeploymentStatus.IN_SERVICE
            and deployment.sagemaker_model_name
            and deployment.endpoint_config_name
            and not deployment.sagemaker_deleted
            and deployment.version != serving
            # Only versions the Model Registry approves may serve again (modeldrop.registry).
            and is_approved(deployment)
        ),
        key=lambda deployment: deployment.version,
        reverse=True,
    )


def plan_rollback(model_name: str, requested: int | None, records: DeploymentRecords) -> RollbackPlan:
    """Which kept version to restore: `requested`, or the one that was live before the live one."""
    model = records.get_model(model_name)
    deployments = records.all_deployments(model_name)
    if model is None and not deployments:
        raise UnknownModel(f"No model named '{model_name}'.")
    live = next(
        (d for d in deployments if model is not None and d.deployment_id == model.live_deployment_id), None
    )
    if live is None:
        raise RollbackRefused(
            "NothingToRollBack", f"Model '{model_name}' has no live version to roll back from.", []
        )
    serving = live.serves_version
    kept = kept_versions(deployments, serving=serving)
    kept_numbers = sorted(deployment.version for deployment in kept)
    if requested is None:
        target = _previous_live(deployments, live, kept)
        if target is None:
            raise RollbackRefused(
                "NothingToRollBack",
                f"Model '{model_name}' has no earlier live version that is still kept "
                f"(v{serving} is live; kept versions: {_listing(kept_numbers)}).",
                kept_numbers,
            )
        return RollbackPlan(target=target, live=live, kept=kept_numbers)
    if requested == serving:
        raise RollbackRefused(
            "VersionAlreadyLive",
            f"Version {requested} of '{model_name}' is already live; "
            f"kept versions you can roll back to: {_listing(kept_numbers)}.",
            kept_numbers,
        )
    target = next((deployment for deployment in kept if deployment.version == requested), None)
    if target is None:
        raise RollbackRefused(
            "VersionNotKept",
            f"Version {requested} of '{model_name}' {_why_not_kept(deployments, requested)}; "
            f"kept versions you can roll back to: {_listing(kept_numbers)} (v{serving} is live).",
            kept_numbers,
        )
    return RollbackPlan(target=target, live=live, kept=kept_numbers)


def _previous_live(
    deployments: list[Deployment], live: Deployment, kept: list[Deployment]
) -> Deployment | None:
    """The version served before the live deployment: the newest earlier InService deployment serving
    another version (an upload serves itself, a rollback its target), if that version is still kept."""
    kept_by_version = {deployment.version: deployment for deployment in kept}
    for deployment in sorted(deployments, key=lambda d: d.version, reverse=True):
        if deployment.version >= live.version or deployment.status is not DeploymentStatus.IN_SERVICE:
            continue
        if deployment.serves_version != live.serves_version:
            return kept_by_version.get(deployment.serves_version)
    return None


def _why_not_kept(deployments: list[Deployment], version: int) -> str:
    found = next((deployment for deployment in deployments if deployment.version == version), None)
    if found is None:
        return "does not exist"
    if found.is_rollback:
        return f"is a rollback (to v{found.rollback_to}), not an uploaded version"
    if not is_approved(found):
        return f"is not approved in the SageMaker Model Registry (its package is {found.approval_status})"
    if found.sagemaker_deleted:
        return "is no longer kept (its SageMaker model and endpoint config were deleted, KeepVersions)"
    return f"never went InService (it is {found.status.value})"


def _listing(versions: list[int]) -> str:
    return ", ".join(f"v{version}" for version in versions) if versions else "none"


def rollback_deployment(target: Deployment, version: int, *, reason: str | None = None) -> Deployment:
    """A new deployment record that restores `target` (Queued, not yet written)."""
    now = utc_now()
    return target.model_copy(
        update={
            # Also the execution name: unique per rollback, even if version numbers started again.
            "deployment_id": f"{target.model_name}-v{version:06d}-rb-{uuid.uuid4().hex[:8]}",
            "version": version,
            "status": DeploymentStatus.QUEUED,
            "reason": reason,
            "kind": DeploymentKind.ROLLBACK,
            "rollback_to": target.version,
            "execution_arn": None,
            "created_at": now,
            "updated_at": now,
            "ttl": None,
            "sagemaker_deleted": None,
            "endpoint_name": target.endpoint_name or naming.endpoint_name(target.model_name),
        }
    )


def request_rollback(model_name: str, requested: int | None, deps: RollbackDependencies) -> Deployment:
    """Record a rollback deployment, send it to SageMaker (or queue it) and start the state machine."""
    plan = plan_rollback(model_name, requested, deps.records)
    version = deps.records.next_version(model_name)
    deployment = rollback_deployment(plan.target, version)
    deps.records.put_deployment(deployment)
    logger.info(
        "rollback requested",
        extra={"model": model_name, "rollback_to": plan.target.version, "from": plan.live.serves_version},
    )
    try:
        status, endpoint_status = start_or_queue(deployment, deps.sagemaker)
    except ClientError as error:
        details = error.response.get("Error", {})
        reason = f"SageMaker refused the rollback: {details.get('Code')}: {details.get('Message')}"
        deps.records.update_deployment(model_name, version, DeploymentStatus.FAILED, reason=reason)
        return deployment.model_copy(update={"status": DeploymentStatus.FAILED, "reason": reason})
    deps.records.touch_model(
        model_name,
        deployment.endpoint_name or naming.endpoint_name(model_name),
        status=endpoint_status,
        last_deployment_id=deployment.deployment_id,
    )
    execution_arn = start_rollback_execution(deployment, status, deps)
    deps.records.update_deployment(model_name, version, status, execution_arn=execution_arn)
    return deployment.model_copy(update={"status": status, "execution_arn": execution_arn})


def start_rollback_execution(
    deployment: Deployment, status: DeploymentStatus, deps: RollbackDependencies
) -> str:
    response = deps.stepfunctions.start_execution(
        stateMachineArn=deps.state_machine_arn,
        name=deployment.deployment_id,
        input=execution_input(deployment, status, deps.max_polls).model_dump_json(by_alias=True),
    )
    return str(response["executionArn"])
