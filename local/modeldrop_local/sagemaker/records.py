"""The local SageMaker's records, typed: models, endpoint configs, endpoints and the deployments they serve.

Field names are Python's; the aliases are SageMaker's own member names (boto3's `DescribeEndpoint`
shapes), which are also the keys of the JSON files in the state directory. So a record is read from a
validated request with `model_validate`, stored with `to_json`, and answered from with a subset of
`to_json`. Containers and production variants keep the members the local SageMaker does not read
(`extra="allow"`): DescribeModel and DescribeEndpointConfig give back what CreateX was sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_pascal

BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})


class SageMakerShape(BaseModel):
    """A SageMaker structure: PascalCase on the wire and on disk, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, protected_namespaces=())

    def to_json(self, *, include: set[str] | None = None) -> dict[str, Any]:
        """The record as SageMaker spells it; members that are None are left out, as SageMaker does."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, include=include)


class Tag(SageMakerShape):
    key: str
    value: str = ""


class ContainerDefinition(SageMakerShape):
    model_config = ConfigDict(extra="allow")

    image: str | None = None
    model_data_url: str | None = None
    environment: dict[str, str] | None = None


class ServerlessConfig(SageMakerShape):
    memory_size_in_mb: int = Field(alias="MemorySizeInMB")
    max_concurrency: int
    provisioned_concurrency: int | None = None


class ProductionVariant(SageMakerShape):
    model_config = ConfigDict(extra="allow")

    variant_name: str
    model_name: str
    serverless_config: ServerlessConfig


class Resource(SageMakerShape):
    """What every control-plane resource has: a name, an ARN, a creation time and tags."""

    folder: ClassVar[str]  # where the state directory keeps this kind (store.KINDS)
    noun: ClassVar[str]  # how SageMaker's error messages name this kind
    arn_kind: ClassVar[str]  # the resource type in its ARN
    name_member: ClassVar[str]  # the field that holds its name (`<kind>_name`, beside `<kind>_arn`)

    creation_time: float
    tags: list[Tag] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return str(getattr(self, self.name_member))

    @property
    def arn(self) -> str:
        return str(getattr(self, self.arn_member()))

    @classmethod
    def arn_member(cls) -> str:
        return cls.name_member.removesuffix("_name") + "_arn"


class ModelRecord(Resource):
    folder, noun, arn_kind, name_member = "models", "model", "model", "model_name"

    model_name: str
    model_arn: str
    primary_container: ContainerDefinition
    execution_role_arn: str | None = None
    enable_network_isolation: bool = False


class EndpointConfigRecord(Resource):
    folder, noun, arn_kind = "endpoint-configs", "endpoint configuration", "endpoint-config"
    name_member = "endpoint_config_name"

    endpoint_config_name: str
    endpoint_config_arn: str
    production_variants: list[ProductionVariant]


class EndpointDeployment(SageMakerShape):
    """What an endpoint serves: a snapshot of its model and config taken at Create/UpdateEndpoint."""

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    endpoint_config_name: str
    model_name: str
    variant_name: str
    image: str
    model_data_url: str
    memory_mb: int = Field(alias="MemorySizeInMB")
    max_concurrency: int
    provisioned_concurrency: int
    model_dir: Path
    environment: dict[str, str] = Field(default_factory=dict)
    source_dir: Path | None = None  # an s3:// SAGEMAKER_SUBMIT_DIRECTORY, once downloaded

    def serverless_config(self) -> dict[str, int]:
        """The ServerlessConfig this deployment was made from, as DescribeEndpoint shows it."""
        config = {"MemorySizeInMB": self.memory_mb, "MaxConcurrency": self.max_concurrency}
        if self.provisioned_concurrency:
            config["ProvisionedConcurrency"] = self.provisioned_concurrency
        return config


class EndpointRecord(Resource):
    """An endpoint: `deployed` is being served, `pending` is what Create/UpdateEndpoint brings up."""

    folder, noun, arn_kind, name_member = "endpoints", "endpoint", "endpoint", "endpoint_name"

    endpoint_name: str
    endpoint_arn: str
    endpoint_config_name: str
    endpoint_status: str
    last_modified_time: float
    deployed: EndpointDeployment | None = None
    pending: EndpointDeployment | None = None
    pending_start_time: float | None = None
    failure_reason: str | None = None
