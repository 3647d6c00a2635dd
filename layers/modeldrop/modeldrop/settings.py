"""Each pipeline function's configuration, parsed from the environment template.yaml gives it."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modeldrop.model_config import MEMORY_SIZES_MB, ConfigDefaults
from modeldrop.tarball import TarballLimits


class _EnvSettings(BaseModel):
    # Lambda's environment holds much more than our variables: ignore the rest.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


def polls_within(deploy_timeout_seconds: int, poll_interval_seconds: int) -> int:
    """How many DescribeEndpoint polls the state machine makes before it records TimedOut."""
    return max(1, math.ceil(deploy_timeout_seconds / poll_interval_seconds))


class DeploymentStatusSettings(_EnvSettings):
    deployments_table: str = Field(alias="DEPLOYMENTS_TABLE", min_length=1)
    keep_versions: int = Field(default=3, alias="KEEP_VERSIONS", ge=1)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> DeploymentStatusSettings:
        return cls.model_validate(dict(os.environ if environ is None else environ))


class OnUploadSettings(_EnvSettings):
    deployments_table: str = Field(alias="DEPLOYMENTS_TABLE", min_length=1)
    idempotency_table: str = Field(alias="IDEMPOTENCY_TABLE", min_length=1)
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)
    sagemaker_role_arn: str = Field(alias="SAGEMAKER_ROLE_ARN", min_length=1)
    region: str = Field(default="us-east-1", alias="AWS_REGION", min_length=1)
    default_memory_mb: int = Field(default=2048, alias="DEFAULT_MEMORY_MB")
    default_max_concurrency: int = Field(default=5, alias="DEFAULT_MAX_CONCURRENCY", ge=1, le=200)
    default_provisioned_concurrency: int = Field(
        default=0, alias="DEFAULT_PROVISIONED_CONCURRENCY", ge=0, le=200
    )
    max_tarball_members: int = Field(default=10_000, alias="MAX_TARBALL_MEMBERS", ge=1)
    max_uncompressed_mb: int = Field(default=6144, alias="MAX_UNCOMPRESSED_MB", ge=1)
    poll_interval_seconds: int = Field(default=30, alias="POLL_INTERVAL_SECONDS", ge=1)
    deploy_timeout_seconds: int = Field(default=1800, alias="DEPLOY_TIMEOUT_SECONDS", ge=1)

    @field_validator("default_memory_mb")
    @classmethod
    def _serverless_memory_size(cls, value: int) -> int:
        if value not in MEMORY_SIZES_MB:
            raise ValueError(
                f"must be one of {', '.join(map(str, MEMORY_SIZES_MB))} (serverless memory sizes)"
            )
        return value

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> OnUploadSettings:
        return cls.model_validate(dict(os.environ if environ is None else environ))

    @property
    def max_polls(self) -> int:
        """How many DescribeEndpoint polls the state machine makes before it records TimedOut."""
        return polls_within(self.deploy_timeout_seconds, self.poll_interval_seconds)

    def tarball_limits(self) -> TarballLimits:
        max_bytes = self.max_uncompressed_mb * 2**20
        return TarballLimits(
            max_members=self.max_tarball_members,
            max_uncompressed_bytes=max_bytes,
            max_member_bytes=max_bytes,
        )

    def config_defaults(self) -> ConfigDefaults:
        return ConfigDefaults(
            memory_mb=self.default_memory_mb,
            max_concurrency=self.default_max_concurrency,
            provisioned_concurrency=self.default_provisioned_concurrency,
        )


class ModelApprovalSettings(_EnvSettings):
    """The ModelApproval function: an approved version's deployment is followed like an upload's."""

    deployments_table: str = Field(alias="DEPLOYMENTS_TABLE", min_length=1)
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)
    poll_interval_seconds: int = Field(default=30, alias="POLL_INTERVAL_SECONDS", ge=1)
    deploy_timeout_seconds: int = Field(default=1800, alias="DEPLOY_TIMEOUT_SECONDS", ge=1)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> ModelApprovalSettings:
        return cls.model_validate(dict(os.environ if environ is None else environ))

    @property
    def max_polls(self) -> int:
        return polls_within(self.deploy_timeout_seconds, self.poll_interval_seconds)
