"""Pydantic models: the records the API reads, and the bodies it answers with (camelCase JSON)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from modeldrop.naming import MODEL_NAME_PATTERN

HISTORY_LENGTH = 10


def is_valid_model_name(name: str) -> bool:
    return MODEL_NAME_PATTERN.fullmatch(name) is not None


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ModelRecord(_CamelModel):
    """The `MODEL#<name>` / `MODEL` item written by the pipeline. Unknown attributes are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    model_name: str
    endpoint_name: str | None = None
    status: str | None = None
    live_deployment_id: str | None = None
    live_version: int | None = None
    live_object_version: str | None = None
    last_deployment_id: str | None = None
    updated_at: str | None = None


class DeploymentRecord(_CamelModel):
    """A `MODEL#<name>` / `DEPLOY#<version>` item written by the pipeline."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    deployment_id: str
    model_name: str
    version: int
    status: str
    reason: str | None = None
    object_version: str | None = None
    config: dict[str, Any] | None = None
    serving_setup: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    kind: str | None = None
    rollback_to: int | None = None

    @field_validator("rollback_to", mode="before")
    @classmethod
    def _plain_version(cls, value: Any) -> Any:
        return _plain(value)

    @field_validator("config", mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any) -> Any:
        # DynamoDB hands numbers back as Decimal, which JSON cannot carry.
        return _plain(value)


def _plain(value: Any) -> Any:

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class ServingSetup(_CamelModel):
    """What OnUpload added so the prebuilt image serves the model (modeldrop.serving_setup.SetupRecord)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    repacked: bool = False
    added_files: list[str] = Field(default_factory=list)
    left_out_files: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class DeploymentSummary(_CamelModel):
    deployment_id: str
    version: int
    status: str
    reason: str | None = None
    object_version: str | None = None
    framework: str | None = None
    memory_mb: int | None = None
    serving_setup: ServingSetup | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # Upload, or Rollback (then rollbackTo is the version it restores). Items older than rollbacks: Upload.
    kind: str = "Upload"
    rollback_to: int | None = None

    @classmethod
    def from_record(cls, record: DeploymentRecord) -> DeploymentSummary:
        config = record.config or {}
        memory = config.get("memoryMb")
        return cls(
            deployment_id=record.deployment_id,
            version=record.version,
            status=record.status,
            reason=record.reason,
            object_version=record.object_version,
            framework=config.get("framework"),
            memory_mb=int(memory) if memory is not None else None,
            serving_setup=ServingSetup.model_validate(record.serving_setup) if record.serving_setup else None,
            created_at=record.created_at,
            updated_at=record.updated_at,
            kind=record.kind or "Upload",
            rollback_to=record.rollback_to,
        )


class ModelSummary(_CamelModel):
    """One model as GET /models lists it. `status` is the endpoint's status (null: no endpoint yet)."""

    name: str
    status: str | None
    endpoint_name: str | None
    live_version: int | None
    updated_at: str | None
    last_deployment: DeploymentSummary | None


class ModelDetail(ModelSummary):
    """GET /models/{name}: the summary plus the most recent deployments, newest first."""

    history: list[DeploymentSummary] = Field(default_factory=list)


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
