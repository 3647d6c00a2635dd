"""A thin adapter over the SageMaker control plane: exactly the calls the pipeline makes.

Request shapes follow botocore's SageMaker service model; tests pin them with botocore's Stubber.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

VARIANT_NAME = "AllTraffic"
MANAGED_BY_TAG = {"Key": "managed-by", "Value": "modeldrop"}


class EndpointBusy(Exception):
    """UpdateEndpoint was refused because the endpoint is Creating/Updating (another deployment's turn)."""


class EndpointDescription(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_name: str
    status: str
    endpoint_config_name: str | None = None
    failure_reason: str | None = None

    @classmethod
    def from_response(cls, response: dict[str, Any]) -> EndpointDescription:
        """From DescribeEndpoint's answer (or the subset of it the state machine passes on)."""
        return cls(
            endpoint_name=response["EndpointName"],
            status=response["EndpointStatus"],
            endpoint_config_name=response.get("EndpointConfigName"),
            failure_reason=response.get("FailureReason"),
        )


# Endpoint statuses during which SageMaker refuses UpdateEndpoint: a deployment arriving then waits.
BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
# Statuses from which the endpoint cannot be updated and must be deleted and created again.
BROKEN_STATUSES = frozenset({"Failed", "OutOfService", "UpdateRollbackFailed"})


# Throttling and service-side failures: the same request may succeed when sent again.
_TRANSIENT_ERROR_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "InternalFailure", "ServiceUnavailable"}
)


def is_transient(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _TRANSIENT_ERROR_CODES


def client_error_text(error: ClientError) -> str:
    """The error's code and message, for a record's reason."""
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Error')}: {details.get('Message', str(error))}"


def _unless_gone(delete: Callable[..., Any], **name: str) -> None:
    """Delete, and count what is already gone as deleted (a retry, or a clean-up after someone else's)."""
    try:
        delete(**name)
    except ClientError as error:
        if not _is_not_found(error):
            raise


def _is_not_found(error: ClientError) -> bool:
    # SageMaker answers ValidationException "Could not find endpoint/model/..." for missing resources.
    message = error.response.get("Error", {}).get("Message", "")
    code = error.response.get("Error", {}).get("Code", "")
    return code in {"ValidationException", "ResourceNotFound"} and "not find" in message.lower()


def _is_busy(error: ClientError) -> bool:
    message = error.response.get("Error", {}).get("Message", "").lower()
    return error.response.get("Error", {}).get("Code") == "ValidationException" and (
        "in-progress" in message or "in progress" in message or "cannot update" in message
    )


class SageMakerAdapter:
    def __init__(self, client: Any | None = None) -> None:
        self._client: Any = client if client is not None else boto3.client("sagemaker")

    @property
    def client(self) -> Any:
        return self._client

    def create_model(
        self,
        name: str,
        *,
        image: str,
        model_data_url: str,
        role_arn: str,
        environment: dict[str, str],
    ) -> None:
        container: dict[str, Any] = {"Image": image, "ModelDataUrl": model_data_url}
        if environment:
            container["Environment"] = environment
        self._client.create_model(
            ModelName=name,
            PrimaryContainer=container,
            ExecutionRoleArn=role_arn,
            Tags=[MANAGED_BY_TAG],
        )

    def create_endpoint_config(
        self,
        name: str,
        *,
        model_name: str,
        memory_mb: int,
        max_concurrency: int,
        provisioned_concurrency: int,
    ) -> None:
        serverless: dict[str, int] = {"MemorySizeInMB": memory_mb, "MaxConcurrency": max_concurrency}
        # SageMaker rejects ProvisionedConcurrency 0: the key is left out to mean "none".
        if provisioned_concurrency > 0:
            serverless["ProvisionedConcurrency"] = provisioned_concurrency
        self._client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": VARIANT_NAME, "ModelName": model_name, "ServerlessConfig": serverless}
            ],
            Tags=[MANAGED_BY_TAG],
        )

    def describe_endpoint(self, name: str) -> EndpointDescription | None:
        """The endpoint, or None when it does not exist."""
        try:
            response = self._client.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        return EndpointDescription.from_response(response)

    def create_endpoint(self, name: str, config_name: str) -> None:
        self._client.create_endpoint(EndpointName=name, EndpointConfigName=config_name, Tags=[MANAGED_BY_TAG])

    def update_endpoint(self, name: str, config_name: str) -> None:
        """Switch the endpoint to a new config; the old one keeps serving until the new one is InService."""
        try:
            self._client.update_endpoint(EndpointName=name, EndpointConfigName=config_name)
        except ClientError as error:
            if _is_busy(error):
                raise EndpointBusy(str(error)) from error
            raise

    def delete_endpoint(self, name: str) -> None:
        _unless_gone(self._client.delete_endpoint, EndpointName=name)

    def delete_endpoint_config(self, name: str) -> None:
        _unless_gone(self._client.delete_endpoint_config, EndpointConfigName=name)

    def delete_model(self, name: str) -> None:
        _unless_gone(self._client.delete_model, ModelName=name)

    # ------------------------------------------------------------------ Model Registry (modeldrop.registry)
    def ensure_model_package_group(self, name: str, description: str) -> str:
        """The group's ARN; the group is created on first use (a concurrent creator's group is fine)."""
        try:
            return str(
                self._client.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
            )
        except ClientError as error:
            if not _is_missing_group(error):
                raise
        try:
            response = self._client.create_model_package_group(
                ModelPackageGroupName=name, ModelPackageGroupDescription=description, Tags=[MANAGED_BY_TAG]
            )
        except ClientError as error:
            if "already exists" not in error.response.get("Error", {}).get("Message", "").lower():
                raise
            return str(
                self._client.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
            )
        return str(response["ModelPackageGroupArn"])

    def create_model_package(
        self,
        group_name: str,
        *,
        description: str,
        container: dict[str, Any],
        content_types: list[str],
        response_types: list[str],
        approval_status: str,
        metadata: dict[str, str],
        client_token: str,
    ) -> tuple[str, int]:
        """A new version in the group: its ARN and version number (from DescribeModelPackage)."""
        response = self._client.create_model_package(
            ModelPackageGroupName=group_name,
            ModelPackageDescription=description,
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": content_types,
                "SupportedResponseMIMETypes": response_types,
            },
            ModelApprovalStatus=approval_status,
            CustomerMetadataProperties=metadata,
            # A retried OnUpload gets the package its first attempt created, not a second version.
            ClientToken=client_token,
        )
        arn = str(response["ModelPackageArn"])
        return arn, int(self.describe_model_package(arn)["ModelPackageVersion"])

    def describe_model_package(self, arn: str) -> dict[str, Any]:
        return dict(self._client.describe_model_package(ModelPackageName=arn))

    def update_model_package(
        self, arn: str, *, approval_status: str | None = None, approval_description: str | None = None
    ) -> None:
        """Change the approval status and/or its description (UpdateModelPackage leaves the rest)."""
        request: dict[str, Any] = {"ModelPackageArn": arn}
        if approval_status is not None:
            request["ModelApprovalStatus"] = approval_status
        if approval_description is not None:
            request["ApprovalDescription"] = approval_description
        self._client.update_model_package(**request)


def _is_missing_group(error: ClientError) -> bool:
    # DescribeModelPackageGroup answers ValidationException "ModelPackageGroup <arn> does not exist."
    message = error.response.get("Error", {}).get("Message", "").lower()
    return error.response.get("Error", {}).get("Code") == "ValidationException" and (
        "does not exist" in message or "not found" in message
    )
