"""The SageMaker Model Registry on the edge: model package groups and packages, served by moto's
SageMaker backend, and the "SageMaker Model Package State Change" events SageMaker sends.

The local SageMaker serves endpoints; the registry is bookkeeping that moto implements
(moto/sagemaker/models.py: CreateModelPackageGroup, CreateModelPackage, Describe/List of both,
UpdateModelPackage), so the edge hands these operations to moto, with two corrections and one
addition:

- UpdateModelPackage changes only the members a request carries (botocore's UpdateModelPackage: every
  member but ModelPackageArn is optional), whereas moto assigns all of them, so a request carrying only
  ModelApprovalStatus would wipe the approval description and the customer metadata, and one carrying
  only ApprovalDescription would wipe the approval status. The request is completed with the package's
  current values before moto sees it.
- CreateModelPackageGroup refuses a name that exists ("Model Package Group already exists"), where moto
  silently replaces the group.
- After a package is created, and whenever an UpdateModelPackage changes its ModelApprovalStatus, the
  event SageMaker sends to EventBridge is published to the template's rules (eventbridge.py), in the
  shape AWS documents ("SageMaker model package state change",
  docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package):
  source aws.sagemaker, the package ARN in `resources`, and the package's description as `detail`
  (ModelPackageGroupName, ModelPackageVersion, ModelPackageArn, ModelApprovalStatus, ApprovalDescription,
  CustomerMetadataProperties, InferenceSpecification, ...), times in epoch milliseconds.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends
from werkzeug.wrappers import Response

from modeldrop_local.eventbridge import EventRules

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
TARGET_PREFIX = "SageMaker."
REGISTRY_OPERATIONS = frozenset(
    {
        "CreateModelPackageGroup",
        "DescribeModelPackageGroup",
        "ListModelPackageGroups",
        "CreateModelPackage",
        "DescribeModelPackage",
        "ListModelPackages",
        "UpdateModelPackage",
    }
)
STATE_CHANGE_DETAIL_TYPE = "SageMaker Model Package State Change"
# The members UpdateModelPackage leaves as they are when a request does not carry them.
_KEPT_BY_UPDATE = {
    "ModelApprovalStatus": "model_approval_status",
    "ApprovalDescription": "approval_description",
    "CustomerMetadataProperties": "customer_metadata_properties",
}
_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/[^/]+/(?P<region>[^/]+)/sagemaker/aws4_request")


def registry_operation(environ: dict[str, Any]) -> str | None:
    """The Model Registry operation a request calls, else None."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if not target.startswith(TARGET_PREFIX):
        return None
    operation = target[len(TARGET_PREFIX) :]
    return operation if operation in REGISTRY_OPERATIONS else None


def state_change_event(package: dict[str, Any], *, region: str, account_id: str) -> dict[str, Any]:
    """The EventBridge event of a model package's state, from its DescribeModelPackage answer."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": STATE_CHANGE_DETAIL_TYPE,
        "source": "aws.sagemaker",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [package["ModelPackageArn"]],
        "detail": _epoch_milliseconds(package),
    }


def _epoch_milliseconds(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: _epoch_milliseconds(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_epoch_milliseconds(item) for item in value]
    return value


class ModelRegistry:
    """The WSGI handler of the registry operations; `forward` is the edge's moto app."""

    def __init__(self, forward: WSGIApp, *, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self._forward = forward
        self._account_id = account_id
        # Attached with the stack: the rules its functions subscribe (None: no events are sent).
        self.rules: EventRules | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        operation = registry_operation(environ) or ""
        region = _region(environ)
        params = _json_body(environ)
        backend = sagemaker_backends[self._account_id][region]
        status_before: str | None = None
        if operation == "CreateModelPackageGroup" and params is not None:
            name = params.get("ModelPackageGroupName")
            if name in backend.model_package_groups:
                arn = backend.model_package_groups[name].arn
                return _error(f"Model Package Group already exists: {arn}")(environ, start_response)
        if operation == "UpdateModelPackage" and params is not None:
            package = _package(backend, str(params.get("ModelPackageArn", "")))
            if package is not None:
                status_before = package.model_approval_status
                for member, attribute in _KEPT_BY_UPDATE.items():
                    current = getattr(package, attribute)
                    if member not in params and current is not None:
                        params[member] = current
                _replace_body(environ, params)

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        body = b"".join(self._forward(environ, capture))
        if self.rules is not None and str(captured.get("status", "")).startswith("200"):
            arn = json.loads(body or b"{}").get("ModelPackageArn")
            package = _package(backend, arn) if arn else None
            changed = operation == "CreateModelPackage" or (
                operation == "UpdateModelPackage"
                and package is not None
                and package.model_approval_status != status_before
            )
            if package is not None and changed and package.model_package_group_name:
                event = state_change_event(
                    package.gen_response_object(), region=region, account_id=self._account_id
                )
                self.rules.publish(event)
        return [body]


def _package(backend: Any, name_or_arn: str) -> Any:
    try:
        return backend.describe_model_package(name_or_arn)
    except Exception:  # moto's ValidationError: the request itself gets moto's answer
        return None


def _region(environ: dict[str, Any]) -> str:
    signed = _CREDENTIAL_REGION.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return signed["region"] if signed else "us-east-1"


def _json_body(environ: dict[str, Any]) -> dict[str, Any] | None:
    """The request's JSON, with the body put back for moto to read; None when it is not a JSON object."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        params = json.loads(raw or b"{}")
    except ValueError:
        return None
    return params if isinstance(params, dict) else None


def _replace_body(environ: dict[str, Any], params: dict[str, Any]) -> None:
    raw = json.dumps(params).encode()
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))


def _error(message: str) -> Response:
    return Response(
        json.dumps({"__type": "ValidationException", "message": message}),
        status=400,
        headers={"x-amzn-ErrorType": "ValidationException"},
        content_type="application/x-amz-json-1.1",
    )
