"""Pydantic models of the events the pipeline functions receive and send.

S3 notifications use Powertools' parser models; the deploy state machine's payloads are ours.
"""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import S3Model, S3RecordModel
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modeldrop.naming import decode_event_key

__all__ = [
    "DeploymentStatusEvent",
    "ExecutionInput",
    "S3Model",
    "StatusAction",
    "StatusResult",
    "UploadedObject",
]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class UploadedObject(_Camel):
    """One uploaded object, as OnUpload handles it; the idempotency key is (bucket, key, objectVersion)."""

    bucket: str
    key: str
    object_version: str | None = None
    etag: str | None = None
    size: int | None = None

    @classmethod
    def from_record(cls, record: S3RecordModel) -> UploadedObject:
        s3_object = record.s3.object
        if s3_object is None:
            raise ValueError(f"S3 event {record.eventName} carries no object")
        # Unversioned buckets report versionId "null" (or none): treat both as "no version".
        version = s3_object.versionId if s3_object.versionId not in (None, "", "null") else None
        return cls(
            bucket=record.s3.bucket.name,
            key=decode_event_key(s3_object.key),
            object_version=version,
            etag=s3_object.eTag,
            size=int(s3_object.size) if s3_object.size is not None else None,
        )


class ExecutionInput(_Camel):
    """What a deploy state machine execution starts with (modeldrop.rollout.execution_input)."""

    deployment_id: str
    model_name: str
    version: int
    endpoint_name: str
    endpoint_config_name: str
    status: Literal["Deploying", "Queued"]
    max_polls: int = Field(ge=1)
    # A canary or shadow bake (modeldrop.guardrails.bake): its strategy, and what this execution follows
    # now: the candidate's own endpoint ("candidate"), or the live endpoint switching to the candidate's
    # config ("promotion"). Null for a deployment that goes live all at once.
    rollout: Literal["canary", "shadow"] | None = None
    rollout_phase: Literal["candidate", "promotion"] | None = None


StatusAction = Literal[
    "start",
    "smoke_test",
    "smoke_failed",
    "succeeded",
    "failed",
    "timed_out",
    "error",
    "bake_start",
    "bake_judge",
    "bake_promote",
    "bake_switch",
    "bake_end",
    "bake_retire",
]


class DeploymentStatusEvent(_Camel):
    """The payload the deploy state machine sends the DeploymentStatus function."""

    action: StatusAction
    deployment: ExecutionInput
    polls: int = 0
    # DescribeEndpoint's response (aws-sdk integration: SageMaker's own PascalCase field names).
    endpoint: dict[str, Any] | None = None
    # A Catch's output: {"Error": ..., "Cause": ...}.
    error: dict[str, Any] | None = None
    # The smoke_test step's result ({"status", "reason"}), for smoke_failed.
    smoke: dict[str, Any] | None = None
    # bake_promote / bake_end: the bake_judge step's result ({"status", "reason"}).
    verdict: dict[str, Any] | None = None
    execution_arn: str | None = None


class StatusResult(_Camel):
    """What the DeploymentStatus function answers; the state machine chooses on `status`."""

    status: str
    reason: str | None = None
    # smoke_failed: the automatic rollback the state machine follows next (always present, null if none:
    # the ResultSelector's path must exist).
    rollback: ExecutionInput | None = None
    # bake_switch: the switch of the live endpoint to the candidate's config, followed next.
    promotion: ExecutionInput | None = None
