"""What the API does, independent of API Gateway and of boto3 (adapters are passed in)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from modeldrop.api.errors import (
    ENDPOINT_CHANGING_RETRY_AFTER_S,
    ApprovalNotPossible,
    EmptyPayload,
    InvalidModelName,
    InvalidRequest,
    ModelNotFound,
    ModelNotInService,
    NoBakeInProgress,
    PayloadTooLarge,
    RollbackNotPossible,
    ServiceUnavailable,
    VersionNotFound,
)
from modeldrop.api.models import (
    HISTORY_LENGTH,
    ApprovalRequest,
    DeploymentSummary,
    Invocation,
    InvocationResult,
    ModelDetail,
    ModelList,
    ModelSummary,
    RollbackRequest,
    RolloutView,
    is_valid_model_name,
)
from modeldrop.api.record_cache import CachedModelRecords
from modeldrop.api.records_reader import ModelRecordsReader
from modeldrop.api.runtime import ModelRuntime
from modeldrop.guardrails import bake, serving
from modeldrop.guardrails.routing import Routing
from modeldrop.guardrails.state import RequestedDecision, RolloutRecords, RolloutState
from modeldrop.records import Deployment, ModelItem
from modeldrop.registry import ApprovalRefused, ModelApprovals
from modeldrop.rollback import RollbackRefused, UnknownModel
from modeldrop.rollout import Rollout

logger = Logger(child=True)

# SageMaker Serverless Inference refuses payloads above 4 MB (AWS docs, "Deploy models with Amazon
# SageMaker Serverless Inference", https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html);
# saying so here is cheaper and clearer than a round trip that ends in a ValidationError.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

# While an update is rolled out (or rolled back) SageMaker keeps the previous configuration
# serving, so a model with a live version can be invoked in these states too.
_SERVING_WHILE_CHANGING = frozenset({"Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
# States that end by themselves: worth a Retry-After. Failed or OutOfService need a new upload.
_ENDPOINT_CHANGING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


def validate_model_name(name: str) -> None:
    if not is_valid_model_name(name):
        raise InvalidModelName(
            f"Invalid model name '{name}': use 1-48 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit.",
            model=name,
        )


def is_servable(model: ModelItem) -> bool:
    if not model.endpoint_name:
        return False
    if model.status == "InService":
        return True
    return model.status in _SERVING_WHILE_CHANGING and model.live_version is not None


def invoke_model(
    name: str,
    invocation: Invocation,
    records: ModelRecordsReader,
    runtime: ModelRuntime,
    *,
    shadow: serving.ShadowSender | None = None,
    draw: Callable[[], float] = random.random,
) -> InvocationResult:
    """Pass the caller's bytes to the model's endpoint (or, during a canary, its candidate's) and the
    answer back, with the version that gave it."""
    validate_model_name(name)
    size = len(invocation.body)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"Payload of {size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte (4 MB) limit of "
            "SageMaker Serverless Inference.",
            model=name,
        )
    if size == 0:
        raise EmptyPayload("The request body is empty; send the input for the model.", model=name)
    routing = _servable_routing(name, records)
    logger.debug(
        "Invoking model", extra={"model": name, "endpoint": routing.live.endpoint_name, "bytes": size}
    )
    try:
        return serving.answer(name, invocation, routing, runtime, shadow=shadow, draw=draw)
    except ModelNotInService:
        # SageMaker has no such endpoint: if the record came from the warm container's cache it may be
        # stale (the endpoint deleted since), so the caller gets the table's current answer (404, 503).
        if isinstance(records, CachedModelRecords) and records.forget(name):
            _servable_routing(name, records)
        raise


def _servable_routing(name: str, records: ModelRecordsReader) -> Routing:
    """The routing of a model that can be invoked; the API error that says why not, otherwise."""
    if isinstance(records, CachedModelRecords):
        model, routing = records.get_routed(name)
    else:
        model = records.get_model(name)
        routing = Routing.of(model) if model is not None and is_servable(model) else None
    if model is None:
        # A model whose first upload was rejected or is still deploying has records but no endpoint.
        newest = records.list_deployments(name, limit=1)
        if newest:
            raise _not_deployed(name, newest[0])
        raise ModelNotFound(f"No model named '{name}'.", model=name)
    if not is_servable(model) or model.endpoint_name is None:
        changing = model.status in _ENDPOINT_CHANGING
        raise ModelNotInService(
            f"Model '{name}' is not in service (endpoint status: {model.status or 'none'}).",
            model=name,
            retry_after_s=ENDPOINT_CHANGING_RETRY_AFTER_S if changing else None,
        )
    return routing if routing is not None else Routing.of(model)


def _not_deployed(name: str, last: Deployment) -> ModelNotInService:
    reason = f": {last.reason}" if last.reason else ""
    return ModelNotInService(
        f"Model '{name}' has no endpoint yet "
        f"(last deployment v{last.version} is {last.status.value}{reason}).",
        model=name,
    )


def list_models(records: ModelRecordsReader) -> ModelList:
    return ModelList(models=[_summary(model, last) for model, last in records.all_models()])


def describe_model(name: str, records: ModelRecordsReader) -> ModelDetail:
    validate_model_name(name)
    model = records.get_model(name)
    history = records.list_deployments(name, limit=HISTORY_LENGTH)
    if model is None and not history:
        raise ModelNotFound(f"No model named '{name}'.", model=name)
    summary = _summary(model, history[0] if history else None, name=name)
    rollout = RolloutState.from_attribute(model.rollout) if model is not None and model.rollout else None
    return ModelDetail(
        **summary.model_dump(),
        history=[DeploymentSummary.from_record(record) for record in history],
        rollout=RolloutView.from_state(rollout) if rollout else None,
    )


def _summary(model: ModelItem | None, last: Deployment | None, name: str | None = None) -> ModelSummary:
    model_name = model.model_name if model else (last.model_name if last else name)
    if model_name is None:
        raise ValueError("a model summary needs a model item or a deployment item")
    return ModelSummary(
        name=model_name,
        status=model.status if model else None,
        endpoint_name=model.endpoint_name if model else None,
        live_version=model.live_version if model else None,
        updated_at=(model.updated_at if model else None) or (last.updated_at if last else None),
        last_deployment=DeploymentSummary.from_record(last) if last else None,
    )


def parse_rollback_request(name: str, body: bytes) -> RollbackRequest:
    """An empty body or `{}` means the previous live version; else `{"version": N}`."""
    if not body.strip():
        return RollbackRequest()
    try:
        return RollbackRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise InvalidRequest(
            'The rollback body must be empty or {"version": N} with N a version number (an integer >= 1).',
            model=name,
        ) from error


def rollback_model(
    name: str,
    request: RollbackRequest,
    rollbacks: Rollout | None,
    rollouts: RolloutRecords | None = None,
) -> DeploymentSummary:
    """Start a rollback deployment; answers it as the deployment summary it was recorded with.
    A canary or shadow baking meanwhile is aborted: a rollback on demand wins over a bake."""
    validate_model_name(name)
    if rollbacks is None:
        raise ServiceUnavailable(
            "Rollbacks are not configured on this stack (no STATE_MACHINE_ARN).", model=name
        )
    if rollouts is not None:
        bake.abort_for_rollback(name, rollouts)
    try:
        deployment = rollbacks.roll_back(name, request.version)
    except UnknownModel as error:
        raise ModelNotFound(str(error), model=name) from error
    except RollbackRefused as refusal:
        raise RollbackNotPossible(refusal.reason, code=refusal.code, model=name) from refusal
    return DeploymentSummary.from_record(deployment)


def decide_rollout(
    name: str, decision: RequestedDecision, records: ModelRecordsReader, rollouts: RolloutRecords | None
) -> RolloutView:
    """POST /models/{name}/promote or /abort: a person ends the model's bake."""
    validate_model_name(name)
    if rollouts is None:
        raise ServiceUnavailable("Rollouts are not configured on this stack.", model=name)
    if records.get_model(name) is None and not records.list_deployments(name, limit=1):
        raise ModelNotFound(f"No model named '{name}'.", model=name)
    try:
        return RolloutView.from_state(bake.request_decision(name, decision, rollouts))
    except bake.NoBakeInProgress as error:
        raise NoBakeInProgress(str(error), model=name) from error


def parse_approval_request(name: str, version: str, body: bytes) -> tuple[int, ApprovalRequest]:
    """The version of the path (an integer >= 1) and the optional body `{"description": "..."}`."""
    if not version.isdigit() or int(version) < 1:
        raise InvalidRequest(
            f"Version '{version[:40]}' is not a version number (an integer >= 1).", model=name
        )
    if not body.strip():
        return int(version), ApprovalRequest()
    try:
        return int(version), ApprovalRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise InvalidRequest(
            'The approval body must be empty or {"description": "..."} (at most 1024 characters).',
            model=name,
        ) from error


def approve_model_version(
    name: str, version: int, request: ApprovalRequest, approvals: ModelApprovals | None
) -> DeploymentSummary:
    """Approve a version waiting for manual approval; answers it as recorded (its deployment starts on
    the Model Registry's state-change event)."""
    validate_model_name(name)
    if approvals is None:
        raise ServiceUnavailable("Approvals are not configured on this stack.", model=name)
    try:
        deployment = approvals.approve(name, version, request.description)
    except ApprovalRefused as refusal:
        if refusal.code == "ModelNotFound":
            raise ModelNotFound(refusal.reason, model=name) from refusal
        if refusal.code == "VersionNotFound":
            raise VersionNotFound(refusal.reason, model=name) from refusal
        raise ApprovalNotPossible(refusal.reason, model=name) from refusal
    return DeploymentSummary.from_record(deployment)
