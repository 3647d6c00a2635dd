"""The preflight of account limits (modeldrop.preflight): where each quota value comes from, and what a
deployment needs against the account's other serverless endpoints. Request shapes pinned with Stubber."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from modeldrop.preflight import (
    SERVERLESS_ENDPOINTS,
    SERVERLESS_TOTAL_CONCURRENCY,
    check_serverless_quotas,
    read_quota,
)
from modeldrop.rejection import RejectionCode, UploadRejected

REGION = "us-east-1"


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")


def _quota(code: str, value: float) -> dict[str, Any]:
    return {"Quota": {"ServiceCode": "sagemaker", "QuotaCode": code, "Value": value}}


def test_applied_value_then_aws_default_then_documented_default() -> None:
    client = _client("service-quotas")
    request = {"ServiceCode": "sagemaker", "QuotaCode": SERVERLESS_TOTAL_CONCURRENCY.code}
    with Stubber(client) as stubber:
        stubber.add_response("get_service_quota", _quota(SERVERLESS_TOTAL_CONCURRENCY.code, 40.0), request)
        stubber.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=request)
        stubber.add_response(
            "get_aws_default_service_quota", _quota(SERVERLESS_TOTAL_CONCURRENCY.code, 10.0), request
        )
        stubber.add_client_error("get_service_quota", "AccessDeniedException", expected_params=request)
        applied = read_quota(client, SERVERLESS_TOTAL_CONCURRENCY)
        default = read_quota(client, SERVERLESS_TOTAL_CONCURRENCY)
        documented = read_quota(client, SERVERLESS_TOTAL_CONCURRENCY)
    assert (applied.value, applied.source) == (40.0, "applied value")
    assert (default.value, default.source) == (10.0, "AWS default value")
    assert documented.value == SERVERLESS_TOTAL_CONCURRENCY.default
    assert documented.source == "documented default; Service Quotas: AccessDeniedException"


def account_with_endpoints(stubber: Stubber, endpoints: dict[str, dict[str, Any] | None]) -> None:
    """ListEndpoints, then DescribeEndpoint and DescribeEndpointConfig per other one (None: real-time)."""
    stubber.add_response(
        "list_endpoints",
        {
            "Endpoints": [
                {
                    "EndpointName": name,
                    "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "LastModifiedTime": "2026-01-01T00:00:00Z",
                    "EndpointStatus": "InService",
                }
                for name in endpoints
            ]
        },
        {},
    )
    for name, serverless in endpoints.items():
        if name == "modeldrop-iris":
            continue
        stubber.add_response(
            "describe_endpoint",
            {
                "EndpointName": name,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
                "EndpointConfigName": f"{name}-config",
                "EndpointStatus": "InService",
                "CreationTime": "2026-01-01T00:00:00Z",
                "LastModifiedTime": "2026-01-01T00:00:00Z",
            },
            {"EndpointName": name},
        )
        variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": f"{name}-model"}
        if serverless is not None:
            variant["ServerlessConfig"] = serverless
        else:
            variant |= {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        stubber.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": f"{name}-config",
                "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/{name}-config",
                "ProductionVariants": [variant],
                "CreationTime": "2026-01-01T00:00:00Z",
            },
            {"EndpointConfigName": f"{name}-config"},
        )


@pytest.mark.parametrize(
    ("max_concurrency", "endpoints_quota", "concurrency_quota", "refused"),
    [
        (2, 5.0, 10.0, None),
        (4, 5.0, 10.0, "is 10 (applied value); this deployment needs 11: 7 allocated to the other"),
        (
            1,
            2.0,
            10.0,
            "'Maximum number of serverless endpoints' (sagemaker L-99AD19BF) is 2 (applied value); "
            "this deployment needs 3: 2 other serverless endpoint(s) plus modeldrop-iris",
        ),
    ],
)
def test_the_deployment_is_weighed_against_the_other_serverless_endpoints(
    max_concurrency: int, endpoints_quota: float, concurrency_quota: float, refused: str | None
) -> None:
    # Given two other serverless endpoints (5 + 2), a real-time one, and this model's own endpoint
    sagemaker, quotas = _client("sagemaker"), _client("service-quotas")
    with Stubber(sagemaker) as sagemaker_stub, Stubber(quotas) as quotas_stub:
        account_with_endpoints(
            sagemaker_stub,
            {
                "modeldrop-iris": None,
                "other-a": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                "other-b": {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
                "realtime": None,
            },
        )
        for quota, value in (
            (SERVERLESS_ENDPOINTS, endpoints_quota),
            (SERVERLESS_TOTAL_CONCURRENCY, concurrency_quota),
        ):
            quotas_stub.add_response(
                "get_service_quota",
                _quota(quota.code, value),
                {"ServiceCode": "sagemaker", "QuotaCode": quota.code},
            )
        # When this endpoint's deployment asks for max_concurrency
        arguments = {
            "endpoint_name": "modeldrop-iris",
            "max_concurrency": max_concurrency,
            "sagemaker": sagemaker,
            "service_quotas": quotas,
        }
        # Then it passes, or is refused naming the quota, its value and the need
        if refused is None:
            check_serverless_quotas(**arguments)
        else:
            with pytest.raises(UploadRejected) as rejection:
                check_serverless_quotas(**arguments)
            assert rejection.value.code is RejectionCode.QUOTA
            assert refused in rejection.value.reason


@pytest.mark.parametrize(
    ("default", "at_least", "concurrency_quota", "fitted", "refused"),
    [
        # the default fits: used as it is, nothing to say
        (5, 1, 20.0, 5, None),
        # 7 of 10 allocated: the default 5 becomes the 3 left, with a note
        (5, 1, 10.0, 3, None),
        # 7 of 8 allocated: 1 left
        (5, 1, 8.0, 1, None),
        # nothing left: at least 1, which still does not fit, so the usual refusal
        (5, 1, 7.0, None, "is 7 (applied value); this deployment needs 8: 7 allocated to the other"),
        # never below the provisioned concurrency: 2 does not fit in the 1 left
        (5, 2, 8.0, None, "is 8 (applied value); this deployment needs 9: 7 allocated to the other"),
    ],
)
def test_a_default_max_concurrency_is_lowered_to_what_the_quota_leaves(
    default: int, at_least: int, concurrency_quota: float, fitted: int | None, refused: str | None
) -> None:
    # Given two other serverless endpoints holding 7 of the account's total concurrency
    sagemaker, quotas = _client("sagemaker"), _client("service-quotas")
    with Stubber(sagemaker) as sagemaker_stub, Stubber(quotas) as quotas_stub:
        account_with_endpoints(
            sagemaker_stub,
            {
                "other-a": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                "other-b": {"MemorySizeInMB": 1024, "MaxConcurrency": 2},
            },
        )
        for quota, value in ((SERVERLESS_ENDPOINTS, 5.0), (SERVERLESS_TOTAL_CONCURRENCY, concurrency_quota)):
            quotas_stub.add_response(
                "get_service_quota",
                _quota(quota.code, value),
                {"ServiceCode": "sagemaker", "QuotaCode": quota.code},
            )
        arguments: dict[str, Any] = {
            "endpoint_name": "modeldrop-iris",
            "max_concurrency": default,
            "sagemaker": sagemaker,
            "service_quotas": quotas,
            "fit_default": True,
            "at_least": at_least,
        }
        # When the deployment has only the stack default (modeldrop.json set no max_concurrency)
        if refused is not None:
            with pytest.raises(UploadRejected) as rejection:
                check_serverless_quotas(**arguments)
            assert refused in rejection.value.reason
            return
        fit = check_serverless_quotas(**arguments)
    # Then it gets what the quota leaves, and says why when that is less than the default
    assert fit.max_concurrency == fitted
    if fitted == default:
        assert fit.note is None
    else:
        assert fit.note == (
            f"max_concurrency {fitted}, not the default 5: account quota 'Maximum total concurrency that can "
            f"be allocated across all serverless endpoints' (sagemaker L-96300102) is {concurrency_quota:g} "
            "(applied value) and 7 is allocated to the other serverless endpoints. Set max_concurrency in "
            "modeldrop.json to choose it"
        )
