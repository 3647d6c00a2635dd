"""The local cloud's Service Quotas for SageMaker serverless inference.

moto's Service Quotas backend knows only the VPC quotas; the preflight of OnUpload (modeldrop.preflight)
reads SageMaker's serverless quotas through GetServiceQuota. The edge answers them from here: the
documented defaults (the values modeldrop.preflight falls back to on AWS), overridable per quota code
for tests and demos, in-process with `set_quota` or for `modeldrop local up` with the environment
variable MODELDROP_LOCAL_SERVICE_QUOTAS="L-96300102=20,L-99AD19BF=8".
"""

from __future__ import annotations

import os
from typing import Any

from modeldrop.preflight import QUOTAS, SERVICE_CODE, Quota
from moto.servicequotas.exceptions import NoSuchResource
from moto.servicequotas.models import ServiceQuotasBackend

ENVIRONMENT_VARIABLE = "MODELDROP_LOCAL_SERVICE_QUOTAS"
_overrides: dict[str, float] = {}
_installed = False


def set_quota(code: str, value: float) -> None:
    """The account's applied value of a SageMaker quota from now on (GetServiceQuota answers it)."""
    _known(code)
    _overrides[code] = float(value)


def reset_quotas() -> None:
    _overrides.clear()


def _known(code: str) -> Quota:
    for quota in QUOTAS:
        if quota.code == code:
            return quota
    raise ValueError(f"unknown SageMaker quota code {code!r}: known are {', '.join(q.code for q in QUOTAS)}")


def _from_environment() -> dict[str, float]:
    values: dict[str, float] = {}
    for pair in filter(None, os.environ.get(ENVIRONMENT_VARIABLE, "").split(",")):
        code, _, value = pair.partition("=")
        _known(code.strip())
        values[code.strip()] = float(value)
    return values


def _item(quota: Quota, region: str, value: float) -> dict[str, Any]:
    # The shape of Service Quotas' ServiceQuota structure (botocore service-quotas service model).
    return {
        "ServiceCode": SERVICE_CODE,
        "ServiceName": "Amazon SageMaker",
        "QuotaArn": f"arn:aws:servicequotas:{region}::{SERVICE_CODE}/{quota.code}",
        "QuotaCode": quota.code,
        "QuotaName": quota.name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


def install() -> None:
    """Teach moto's Service Quotas backend the SageMaker serverless quotas (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    get_service_quota = ServiceQuotasBackend.get_service_quota
    list_defaults = ServiceQuotasBackend.list_aws_default_service_quotas

    def get(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code != SERVICE_CODE:
            return get_service_quota(self, service_code, quota_code)
        try:
            quota = _known(quota_code)
        except ValueError:
            raise NoSuchResource from None
        value = _overrides.get(quota_code, _from_environment().get(quota_code, quota.default))
        return _item(quota, self.region_name, value)

    def list_default(self: ServiceQuotasBackend, service_code: str) -> list[dict[str, Any]]:
        if service_code != SERVICE_CODE:
            return list_defaults(self, service_code)
        return [_item(quota, self.region_name, quota.default) for quota in QUOTAS]

    ServiceQuotasBackend.get_service_quota = get  # type: ignore[method-assign]
    ServiceQuotasBackend.list_aws_default_service_quotas = list_default  # type: ignore[method-assign]
