"""Pydantic models of the bodies the API answers with (camelCase JSON); the records it reads are
`modeldrop.records`' (the DeploymentsTable's one schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modeldrop.guardrails.state import RolloutState
from modeldrop.naming import MODEL_NAME_PATTERN
from modeldrop.records import Deployment, DeploymentKind, SetupRecord

HISTORY_LENGTH = 10


def is_valid_model_name(name: str) -> bool:
    return MODEL_NAME_PATTERN.fullmatch(name) is not None


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DeploymentSummary(_CamelModel):
    deployment_id: str
    version: int
    status: str
    reason: str | None = None
    object_version: str | None = None
    framework: str | None = None
    memory_mb: int | None = None
    # What OnUpload added so the prebuilt image serves the model.
    serving_setup: SetupRecord | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # Upload, or Rollback (then rollbackTo is the version it restores). Items older than rollbacks: Upload.
    kind: str = "Upload"
    rollback_to: int | None = None
    # The version in the SageMaker Model Registry, and its approval status as modeldrop last saw it.
    model_package_arn: str | None = None
    model_package_version: int | None = None
    approval_status: str | None = None

    @classmethod
    def from_record(cls, record: Deployment) -> DeploymentSummary:
        config = record.config
        return cls(
            deployment_id=record.deployment_id,
            version=record.version,
            status=record.status.value,
            reason=record.reason,
            object_version=record.object_version,
            framework=config.framework.value if config and config.framework else None,
            memory_mb=config.memory_mb if config else None,
            serving_setup=record.serving_setup,
            created_at=record.created_at,
            updated_at=record.updated_at,
            kind=(record.kind or DeploymentKind.UPLOAD).value,
            rollback_to=record.rollback_to,
            model_package_arn=record.model_package_arn,
            model_package_version=record.model_package_version,
            approval_status=record.approval_status,
        )


class ModelSummary(_CamelModel):
    """One model as GET /models lists it. `status` is the endpoint's status (null: no endpoint yet)."""

    name: str
    status: str | None
    endpoint_name: str | None
    live_version: int | None
    updated_at: str | None
    last_deployment: DeploymentSummary | None


class VersionFiguresView(_CamelModel):
    version: int
    requests: int
    errors: int
    p99_ms: float | None = None
    agreement: float | None = None


class RolloutView(_CamelModel):
    """A canary or shadow bake as GET /models/{name}, promote and abort show it."""

    strategy: str
    state: str
    candidate_version: int
    live_version: int | None = None
    canary_percent: float | None = None
    started_at: str | None = None
    updated_at: str | None = None
    reason: str | None = None
    requested: str | None = None
    versions: list[VersionFiguresView] = Field(default_factory=list)

    @classmethod
    def from_state(cls, state: RolloutState) -> RolloutView:
        return cls(
            strategy=state.strategy,
            state=state.state.value,
            candidate_version=state.candidate_version,
            live_version=state.live_version,
            canary_percent=state.canary_percent,
            started_at=state.started_at,
            updated_at=state.updated_at,
            reason=state.reason,
            requested=state.requested.value if state.requested else None,
            versions=[
                VersionFiguresView(
                    version=figures.version,
                    requests=figures.requests,
                    errors=figures.errors,
                    p99_ms=figures.p99_ms,
                    agreement=figures.agreement,
                )
                for figures in state.figures
            ],
        )


class ModelDetail(ModelSummary):
    """GET /models/{name}: the summary plus the most recent deployments, newest first, and the latest
    canary or shadow bake."""

    history: list[DeploymentSummary] = Field(default_factory=list)
    rollout: RolloutView | None = None


class ModelList(_CamelModel):
    models: list[ModelSummary]


class ErrorBody(_CamelModel):
    error: str
    message: str
    model: str | None
    request_id: str | None


class RollbackRequest(BaseModel):
    """POST /models/{name}/rollback's optional body; without a version, the previous live one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | None = Field(default=None, ge=1, strict=True)


class ApprovalRequest(BaseModel):
    """POST /models/{name}/versions/{version}/approve's optional body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str | None = Field(default=None, max_length=1024, strict=True)


class Invocation(BaseModel):
    """What the caller sent to POST /models/{name}/invocations, body already decoded to bytes."""

    model_config = ConfigDict(frozen=True)

    body: bytes
    content_type: str | None = None
    accept: str | None = None


class InvocationResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    body: bytes
    content_type: str | None = None
    # The version that answered (the x-modeldrop-version header), when the record names one.
    version: int | None = None
