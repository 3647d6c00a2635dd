"""Preflight: before OnUpload creates anything in SageMaker, check that the account's serverless quotas
leave room for this deployment.

Two account-wide quotas bound serverless inference (Service Quotas, service code `sagemaker`): the number
of serverless endpoints and the total MaxConcurrency allocated across them. Newer accounts get low values
(10 for the concurrency), so a deployment that would exceed one is Rejected up front, naming the quota,
its value and what the deployment needs, instead of failing in CreateEndpoint/UpdateEndpoint. A model whose
modeldrop.json sets no max_concurrency gets the stack default or, when the quota leaves less, what it leaves
(at least 1): the deployment's record says so. A max_concurrency the user set is never lowered.

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


@dataclass(frozen=True)
class ConcurrencyFit:
    """The MaxConcurrency this deployment gets, and why when it is not the one asked for."""

    max_concurrency: int
    note: str | None = None


def check_serverless_quotas(
    *,
    endpoint_name: str,
    max_concurrency: int,
    sagemaker: Any,
    service_quotas: Any,
    fit_default: bool = False,
    at_least: int = 1,
) -> ConcurrencyFit:
    """UploadRejected (code quota) when this endpoint at this MaxConcurrency would exceed an account quota.

    fit_default: max_concurrency is the stack's default, not the user's (modeldrop.json set none): lower it
    to what the total-concurrency quota leaves, down to `at_least` (1, or the provisioned concurrency), and
    say so in the note. A value the user set is never lowered: it is refused when it does not fit.
    """
    usage = serverless_usage(sagemaker, except_endpoint=endpoint_name)
    values = [read_quota(service_quotas, quota) for quota in QUOTAS]
    asked = max_concurrency
    note: str | None = None
    if fit_default:
        total = next(value for value in values if value.quota is SERVERLESS_TOTAL_CONCURRENCY)
        room = int(total.value) - usage.concurrency
        max_concurrency = min(asked, max(room, at_least, 1))
        if max_concurrency < asked:
            note = (
                f"max_concurrency {max_concurrency}, not the default {asked}: account quota "
                f"'{total.quota.name}' ({SERVICE_CODE} {total.quota.code}) is {total.value:g} "
                f"({total.source}) and {usage.concurrency} is allocated to the other serverless endpoints. "
                "Set max_concurrency in modeldrop.json to choose it"
            )
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
    return ConcurrencyFit(max_concurrency, note)
