"""Rollback on demand: which kept version a rollback restores, and the deployment record that does it.

A rollback is a deployment of its own (kind Rollback, a new version number, `rollbackTo` = the version it
restores) that reuses the kept version's SageMaker model and endpoint config instead of creating new ones.
It then goes exactly the way an upload goes: UpdateEndpoint (the live version keeps serving until the
restored one is InService), or Queued behind a deployment in flight, followed by the same state machine,
recorded InService, Failed or TimedOut. A version is *kept* while its model and config exist: it went
InService once and the cleanup (KeepVersions) has not deleted it yet. The switch itself is the
rollout's (modeldrop.rollout.Rollout.roll_back); this module decides and refuses, and writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from modeldrop.deployments_table import DeploymentRecords
from modeldrop.records import Deployment, DeploymentKind, DeploymentStatus, utc_now
from modeldrop.registry import is_approved


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
        }
    )
