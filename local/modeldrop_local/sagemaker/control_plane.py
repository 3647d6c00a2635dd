"""The control plane: SageMaker's Create/Describe/Delete/List and tag operations, over typed records.

Each request is validated against botocore's SageMaker model first (validation.py), so handlers
read members that are known to be there. CreateEndpoint and UpdateEndpoint freeze what the endpoint
will serve into an EndpointDeployment and hand it to the lifecycle, which brings it up in the background;
DeleteEndpoint marks the endpoint Deleting and has the lifecycle finish the job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from modeldrop_local.sagemaker import errors
from modeldrop_local.sagemaker.lifecycle import EndpointLifecycle
from modeldrop_local.sagemaker.records import (
    BUSY_STATUSES,
    ContainerDefinition,
    EndpointDeployment,
    ProductionVariant,
    Resource,
    Tag,
)
from modeldrop_local.sagemaker.registry import EndpointRegistry, Table
from modeldrop_local.sagemaker.validation import validate_request, validate_serverless_variants

MAX_TAGS = 50
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def merge_tags(existing: list[Tag], new: list[dict[str, str]]) -> list[Tag]:
    """AddTags: a key that is there already takes the new value; at most MAX_TAGS in all."""
    merged = {tag.key: tag.value for tag in existing}
    merged.update({tag["Key"]: tag.get("Value", "") for tag in new})
    if len(merged) > MAX_TAGS:
        raise errors.validation(
            f"A resource can have at most {MAX_TAGS} tags; this request makes {len(merged)}."
        )
    return [Tag(key=key, value=value) for key, value in merged.items()]


def _page(
    records: list[Any], params: dict[str, Any], summary_members: set[str], listed: str
) -> dict[str, Any]:
    """The filters, order and paging that the List operations share (NameContains, SortBy, ...)."""
    if params.get("NameContains"):
        needle = str(params["NameContains"]).lower()
        records = [r for r in records if needle in r.name.lower()]
    if params.get("StatusEquals"):
        records = [r for r in records if getattr(r, "endpoint_status", None) == params["StatusEquals"]]
    if "CreationTimeBefore" in params:
        records = [r for r in records if r.creation_time < float(params["CreationTimeBefore"])]
    if "CreationTimeAfter" in params:
        records = [r for r in records if r.creation_time > float(params["CreationTimeAfter"])]
    sort_member = {"Name": "name", "CreationTime": "creation_time", "Status": "endpoint_status"}[
        params.get("SortBy", "CreationTime")
    ]
    records.sort(
        key=lambda r: getattr(r, sort_member), reverse=params.get("SortOrder", "Descending") == "Descending"
    )
    start = int(params["NextToken"]) if str(params.get("NextToken", "")).isdigit() else 0
    size = int(params.get("MaxResults", 100))
    page: dict[str, Any] = {
        listed: [r.to_json(include=summary_members) for r in records[start : start + size]]
    }
    if start + size < len(records):
        page["NextToken"] = str(start + size)
    return page


def _variant_summary(deployment: EndpointDeployment, resolved_at: float) -> dict[str, Any]:
    serverless = deployment.serverless_config()
    return {
        "VariantName": deployment.variant_name,
        "DeployedImages": [
            {
                "SpecifiedImage": deployment.image,
                "ResolvedImage": deployment.image,
                "ResolutionTime": resolved_at,
            }
        ],
        "CurrentWeight": 1.0,
        "DesiredWeight": 1.0,
        "CurrentServerlessConfig": serverless,
        "DesiredServerlessConfig": serverless,
    }


class ControlPlane:
    """The operations of `POST /` with `X-Amz-Target: SageMaker.<Operation>`."""

    def __init__(self, registry: EndpointRegistry, lifecycle: EndpointLifecycle) -> None:
        self.registry = registry
        self.settings = registry.settings
        self.lifecycle = lifecycle
        self._operations: dict[str, Handler] = {
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
            "UpdateEndpoint": self.update_endpoint,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }

    @property
    def operations(self) -> list[str]:
        return sorted(self._operations)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run a control-plane operation (validated against botocore's model); raises SageMakerError."""
        handler = self._operations.get(operation)
        if handler is None:
            raise errors.unknown_operation(f"SageMaker.{operation}")
        validate_request(operation, params)
        return handler(params)

    def _create(
        self, table: Table[Any], name: str, members: dict[str, Any], tags: list[dict[str, str]]
    ) -> str:
        """Store a new record from `members` (the kind's own fields); returns its ARN."""
        kind = table.record_type
        with self.registry.lock:
            arn = table.arn(name)
            if table.get(name) is not None:
                raise errors.already_exists(kind.noun, arn)
            record = kind.model_validate(
                {**members, kind.name_member: name, kind.arn_member(): arn, "creation_time": time.time()}
            )
            record.tags = merge_tags([], tags)
            table.put(record)
        return arn

    def _delete(self, table: Table[Any], name: str) -> dict[str, Any]:
        """Delete a model or endpoint config, with SageMaker's error when it does not exist."""
        with self.registry.lock:
            table.require(name)
            table.delete(name)
        return {}

    @staticmethod
    def _described(record: Resource) -> dict[str, Any]:
        answer = record.to_json()
        answer.pop("Tags", None)
        return answer

    # -------------------------------------------------------------------------------- models

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        container = params.get("PrimaryContainer") or (params.get("Containers") or [None])[0]
        if container is None:
            raise errors.validation("Either PrimaryContainer or Containers must be specified.")
        members = {
            "primary_container": container,
            "execution_role_arn": params.get("ExecutionRoleArn"),
            "enable_network_isolation": bool(params.get("EnableNetworkIsolation", False)),
        }
        arn = self._create(self.registry.models, params["ModelName"], members, params.get("Tags", []))
        return {"ModelArn": arn}

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._described(self.registry.models.require(params["ModelName"]))

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._delete(self.registry.models, params["ModelName"])

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        summary = {"model_name", "model_arn", "creation_time"}
        return _page(self.registry.models.all(), params, summary, "Models")

    # ------------------------------------------------------------------------ endpoint configs

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        variants = params["ProductionVariants"]
        validate_serverless_variants(variants)
        for variant in variants:
            self.registry.models.require(variant["ModelName"])
        members = {"production_variants": variants}
        name = params["EndpointConfigName"]
        arn = self._create(self.registry.configs, name, members, params.get("Tags", []))
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._described(self.registry.configs.require(params["EndpointConfigName"]))

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        # Allowed while an endpoint uses it, as on SageMaker: endpoints keep their own snapshot.
        return self._delete(self.registry.configs, params["EndpointConfigName"])

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        summary = {"endpoint_config_name", "endpoint_config_arn", "creation_time"}
        return _page(self.registry.configs.all(), params, summary, "EndpointConfigs")

    # -------------------------------------------------------------------------------- endpoints

    def _snapshot(self, endpoint_name: str, config_name: str) -> EndpointDeployment:
        """Freeze what the endpoint will serve: later changes to the config or model do not affect it."""
        config = self.registry.configs.require(config_name)
        variant: ProductionVariant = config.production_variants[0]
        container: ContainerDefinition = self.registry.models.require(variant.model_name).primary_container
        serverless = variant.serverless_config
        deployment_id = f"{int(time.time())}-{uuid.uuid4().hex[:8]}"
        return EndpointDeployment(
            deployment_id=deployment_id,
            endpoint_config_name=config_name,
            model_name=variant.model_name,
            variant_name=variant.variant_name,
            image=container.image or "",
            model_data_url=container.model_data_url or "",
            memory_mb=serverless.memory_size_in_mb,
            max_concurrency=serverless.max_concurrency,
            provisioned_concurrency=serverless.provisioned_concurrency or 0,
            model_dir=self.registry.store.model_data_dir(endpoint_name, deployment_id),
            environment=dict(container.environment or {}),
        )

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        endpoints = self.registry.endpoints
        with self.registry.lock:
            if endpoints.get(name) is not None:
                raise errors.already_exists("endpoint", endpoints.arn(name))
            count = len(endpoints.all())
            if count >= self.settings.max_endpoints:
                raise errors.resource_limit_exceeded(
                    f"The account-level service limit 'Number of endpoints' is {self.settings.max_endpoints} "
                    f"Endpoints, with current utilization of {count} Endpoints and a request delta of 1 "
                    "Endpoints. Delete an endpoint or start the local SageMaker with a higher max_endpoints."
                )
            deployment = self._snapshot(name, params["EndpointConfigName"])
            now = time.time()
            members = {
                "endpoint_config_name": deployment.endpoint_config_name,
                "endpoint_status": "Creating",
                "last_modified_time": now,
                "pending": deployment,
                "pending_start_time": now,
            }
            arn = self._create(endpoints, name, members, params.get("Tags", []))
        self.registry.log.write(
            name, f"CreateEndpoint with config {deployment.endpoint_config_name}: Creating"
        )
        self.lifecycle.deploy_in_background(name, deployment)
        return {"EndpointArn": arn}

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.registry.lock:
            record = self.registry.endpoints.require(name)
            arn, status = record.endpoint_arn, record.endpoint_status
            if status in BUSY_STATUSES:
                raise errors.validation(f'Cannot update in-progress endpoint "{arn}".')
            if status == "Failed" or record.deployed is None:
                # Worded so that callers matching "cannot update" (an in-progress endpoint) do not wait.
                raise errors.validation(
                    f'Endpoint "{arn}" is in status {status} and cannot be updated; '
                    "delete it and create it again."
                )
            deployment = self._snapshot(name, params["EndpointConfigName"])
            now = time.time()
            record.endpoint_status, record.last_modified_time = "Updating", now
            record.pending, record.pending_start_time = deployment, now
            record.failure_reason = None
            self.registry.endpoints.put(record)
        self.registry.log.write(name, f"UpdateEndpoint to config {deployment.endpoint_config_name}: Updating")
        self.lifecycle.deploy_in_background(name, deployment)
        return {"EndpointArn": arn}

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self.registry.endpoints.require(params["EndpointName"])
        answer = record.to_json(
            include={
                "endpoint_name",
                "endpoint_arn",
                "endpoint_config_name",
                "endpoint_status",
                "creation_time",
                "last_modified_time",
                "failure_reason",
            }
        )
        if not record.failure_reason:
            answer.pop("FailureReason", None)
        deployed, pending = record.deployed, record.pending
        if deployed is not None:
            answer["EndpointConfigName"] = deployed.endpoint_config_name
            answer["ProductionVariants"] = [_variant_summary(deployed, record.last_modified_time)]
        if pending is not None and deployed is not None:
            answer["PendingDeploymentSummary"] = {
                "EndpointConfigName": pending.endpoint_config_name,
                "ProductionVariants": [
                    {
                        "VariantName": pending.variant_name,
                        "DesiredServerlessConfig": pending.serverless_config(),
                    }
                ],
                "StartTime": record.pending_start_time or record.last_modified_time,
            }
        return answer

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.registry.lock:
            record = self.registry.endpoints.require(name)
            if record.endpoint_status != "Deleting":
                record.endpoint_status, record.last_modified_time = "Deleting", time.time()
                self.registry.endpoints.put(record)
            self.registry.deleting.add(name)
        self.registry.log.write(name, "DeleteEndpoint: Deleting")
        self.lifecycle.delete_in_background(name)
        return {}

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        summary = {"endpoint_name", "endpoint_arn", "creation_time", "last_modified_time", "endpoint_status"}
        return _page(self.registry.endpoints.all(), params, summary, "Endpoints")

    # ------------------------------------------------------------------------------------ tags

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.registry.lock:
            record = self.registry.find_by_arn(params["ResourceArn"])
            record.tags = merge_tags(record.tags, params["Tags"])
            self.registry.save(record)
        return {"Tags": params["Tags"]}

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        record = self.registry.find_by_arn(params["ResourceArn"])
        return {"Tags": [tag.to_json() for tag in record.tags]}

    def delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.registry.lock:
            record = self.registry.find_by_arn(params["ResourceArn"])
            drop = set(params["TagKeys"])
            record.tags = [tag for tag in record.tags if tag.key not in drop]
            self.registry.save(record)
        return {}
