"""Preflight: before OnUpload creates anything in SageMaker, check that the account's serverless quotas
leave room for this deployment.

Two account-wide quotas bound serverless inference (Service Quotas, service code `sagemaker`): the number
of serverless endpoints and the total MaxConcurrency allocated across them. Newer accounts get low values
(10 for the concurrency), so a deployment that would exceed one is Rejected up front, naming the quota,
its value and what the deployment needs, instead of failing in CreateEndpoint/UpdateEndpoint.

The values are read with GetServiceQuota (the account's applied value), else GetAWSDefaultServiceQuota,
else the defaults below when Service Quotas cannot be read (no permission, not reachable); the reason
then says which source it used. Quota codes and defaults: the Service Quotas catalogue as listed in
gruntwork-io/terraform-aws-utilities docs/quotas.md (generated from ListAWSDefaultServiceQuotas);
check `aws service-quotas list-aws-default-service-quotas --service-code sagemaker` in your region.

The features serverless endpoints exclude (data capture, VPC, KMS keys, several variants) cannot reach
SageMaker from here: modeldrop.json has no keys for them (unknown keys are rejected) and the pipeline
builds single-variant configs without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from modeldrop.observability import logger
from modeldrop.rejection import RejectionCode, UploadRejected

SERVICE_CODE = "sagemaker"


@dataclass(frozen=True)
class Quota:
    code: str
    name: str
    default: float


SERVERLESS_ENDPOINTS = Quota("L-99AD19BF", "Maximum number of serverless endpoints", 5.0)
SERVERLESS_TOTAL_CONCURRENCY = Quota(
    "L-96300102", "Maximum total concurrency that can be allocated across all serverless endpoints", 10.0
)
QUOTAS = (SERVERLESS_ENDPOINTS, SERVERLESS_TOTAL_CONCURRENCY)


@dataclass(frozen=True)
class QuotaValue:
    quota: Quota
    value: float
    source: str


def read_quota(client: Any, quota: Quota) -> QuotaValue:
    """The account's value of the quota, with where it came from."""
    try:
        response = client.get_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=quota.code)
        return QuotaValue(quota, float(response["Quota"]["Value"]), "applied value")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            return _documented(quota, error)
    except Exception as error:
        # Unreadable quotas (no network, an emulator without the call) must not fail the upload.
        return _documented(quota, error)
    try:
        response = client.get_aws_default_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=quota.code)
        return QuotaValue(quota, float(response["Quota"]["Value"]), "AWS default value")
    except Exception as error:
        return _documented(quota, error)


def _documented(quota: Quota, error: Exception) -> QuotaValue:
    detail = (
        str(error.response.get("Error", {}).get("Code", "error"))
        if isinstance(error, ClientError)
        else f"{type(error).__name__}: {error}"
    )
    logger.warning("service quota not readable, using the documented default", extra={"quota": quota.code})
    return QuotaValue(quota, quota.default, f"documented default; Service Quotas: {detail}")


@dataclass(frozen=True)
class ServerlessUsage:
    """The account's other serverless endpoints and the MaxConcurrency allocated to them."""

    endpoints: int
    concurrency: int


def serverless_usage(sagemaker: Any, *, except_endpoint: str) -> ServerlessUsage:
    endpoints = 0
    concurrency = 0
    for page in sagemaker.get_paginator("list_endpoints").paginate():
        for summary in page.get("Endpoints", []):
            name = summary["EndpointName"]
            if name == except_endpoint or summary.get("EndpointStatus") == "Deleting":
                continue
            config_name = sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]
            described = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
            serverless = [
                variant["ServerlessConfig"]
                for variant in described["ProductionVariants"]
                if "ServerlessConfig" in variant
            ]
            if serverless:
                endpoints += 1
                concurrency += sum(int(variant.get("MaxConcurrency", 0)) for variant in serverless)
    return ServerlessUsage(endpoints, concurrency)


def check_serverless_quotas(
    *, endpoint_name: str, max_concurrency: int, sagemaker: Any, service_quotas: Any
) -> list[QuotaValue]:
    """UploadRejected (code quota) when this endpoint at this MaxConcurrency would exceed an account quota."""
    usage = serverless_usage(sagemaker, except_endpoint=endpoint_name)
    values = [read_quota(service_quotas, quota) for quota in QUOTAS]
    needs = {
        SERVERLESS_ENDPOINTS.code: (
            usage.endpoints + 1,
            f"{usage.endpoints} other serverless endpoint(s) plus {endpoint_name}",
        ),
        SERVERLESS_TOTAL_CONCURRENCY.code: (
            usage.concurrency + max_concurrency,
            f"{usage.concurrency} allocated to the other serverless endpoints plus max_concurrency "
            f"{max_concurrency} for {endpoint_name}",
        ),
    }
    for value in values:
        needed, why = needs[value.quota.code]
        if needed > value.value:
            raise UploadRejected(
                RejectionCode.QUOTA,
                f"account quota '{value.quota.name}' ({SERVICE_CODE} {value.quota.code}) is {value.value:g} "
                f"({value.source}); this deployment needs {needed}: {why}. Lower max_concurrency in "
                "modeldrop.json, delete unused serverless endpoints, or request a quota increase",
            )
    return values
