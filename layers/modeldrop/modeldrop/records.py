"""The DeploymentsTable's records: what is stored about a model and its deployments (the schema).

Every function that reads or writes the table uses these models (OnUpload and DeploymentStatus write,
the Api function reads and records rollbacks); the table adapter, with the keys, conditional writes and
expiry, is modeldrop.deployments_table. The SageMaker and S3 names of a deployment are computed from its
model, version and id (modeldrop.naming), and stored too, so that an item says what it created.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field
from pydantic.alias_generators import to_camel

from modeldrop import naming
from modeldrop.model_config import ResolvedConfig


class DeploymentStatus(StrEnum):
    REJECTED = "Rejected"
    QUEUED = "Queued"
    DEPLOYING = "Deploying"
    IN_SERVICE = "InService"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    SUPERSEDED = "Superseded"
    # InService but its smoke test failed, with no earlier version to roll back to: not made live.
    UNHEALTHY = "Unhealthy"
    # "approval": "manual": registered PendingManualApproval; nothing touched the endpoint yet.
    PENDING_APPROVAL = "PendingApproval"

    @property
    def expires(self) -> bool:
        return self in _EXPIRING


class DeploymentKind(StrEnum):
    """What started a deployment: an upload (its own SageMaker model and config) or a rollback (it
    switches the endpoint back to a kept version's model and config, and owns none)."""

    UPLOAD = "Upload"
    ROLLBACK = "Rollback"


_EXPIRING = {
    DeploymentStatus.REJECTED,
    DeploymentStatus.FAILED,
    DeploymentStatus.TIMED_OUT,
    DeploymentStatus.SUPERSEDED,
}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Record(BaseModel):
    # Stored camelCase; attributes this schema does not know (pk, sk, older ones) are ignored.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SetupRecord(_Record):
    """What OnUpload added so the prebuilt image serves the model (modeldrop.serving_setup decides it)."""

    repacked: bool = False
    added_files: list[str] = []
    left_out_files: list[str] = []
    environment: dict[str, str] = {}
    notes: list[str] = []


class Deployment(_Record):
    deployment_id: str
    model_name: str
    version: int
    bucket: str
    key: str
    object_version: str | None = None
    etag: str | None = None
    status: DeploymentStatus
    reason: str | None = None
    # What CreateModel and CreateEndpointConfig get (the environment includes what OnUpload added);
    # None when the upload was rejected before its config was resolved.
    config: ResolvedConfig | None = None
    serving_setup: SetupRecord | None = None
    execution_arn: str | None = None
    created_at: str
    updated_at: str
    ttl: int | None = None
    # Set once the cleanup deleted this deployment's SageMaker model and endpoint config.
    sagemaker_deleted: bool | None = None
    # None on items written before rollbacks existed: those are uploads.
    kind: DeploymentKind | None = None
    # A rollback: the version whose SageMaker model and endpoint config it puts back in service.
    rollback_to: int | None = None
    # An automatic rollback: the version whose failed smoke test started it.
    rolled_back_from: int | None = None
    # A canary or shadow candidate (modeldrop.guardrails): it bakes on an endpoint of its own
    # (candidate_endpoint_name) beside the live one before it is switched to (promoted).
    candidate: bool | None = None
    # The upload's version in the SageMaker Model Registry (group modeldrop-<name>; modeldrop.registry),
    # and its ModelApprovalStatus as last seen (a rollback carries its target's).
    model_package_arn: str | None = None
    model_package_version: int | None = None
    approval_status: str | None = None

    @property
    def is_rollback(self) -> bool:
        return self.kind is DeploymentKind.ROLLBACK

    @property
    def serves_version(self) -> int:
        """The upload version whose model this deployment serves (a rollback serves its target's)."""
        return self.rollback_to if self.is_rollback and self.rollback_to is not None else self.version

    @computed_field  # type: ignore[prop-decorator]
    @property
    def endpoint_name(self) -> str:
        """One endpoint per model."""
        return naming.endpoint_name(self.model_name)

    @property
    def candidate_endpoint_name(self) -> str:
        """A candidate's own endpoint while it bakes: one per version, so a superseded bake never
        shares a name with the next."""
        return naming.versioned_name(self.model_name, self.version)

    @property
    def serving_endpoint_name(self) -> str:
        """The endpoint this deployment is first sent to: a candidate's own, else the model's."""
        return self.candidate_endpoint_name if self.candidate else self.endpoint_name

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sagemaker_model_name(self) -> str:
        """The SageMaker model serving this deployment: its own, or a rollback's target's."""
        return naming.versioned_name(self.model_name, self.serves_version)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def endpoint_config_name(self) -> str:
        """Named as the SageMaker model (one config per model version)."""
        return self.sagemaker_model_name

    @computed_field  # type: ignore[prop-decorator]
    @property
    def model_data_key(self) -> str | None:
        """deployments/<name>/<deploymentId>/model.tar.gz: the inspected object version, copied for
        SageMaker. None for a rollback, which copies nothing (its target's copy serves)."""
        if self.is_rollback:
            return None
        return naming.pinned_model_key(self.model_name, self.deployment_id)


class ModelItem(_Record):
    model_name: str
    endpoint_name: str
    status: str | None = None
    live_deployment_id: str | None = None
    live_version: int | None = None
    live_object_version: str | None = None
    last_deployment_id: str | None = None
    updated_at: str
    # A canary or shadow bake (modeldrop.guardrails.state.RolloutState, as stored); None if none ran.
    rollout: dict[str, Any] | None = None
