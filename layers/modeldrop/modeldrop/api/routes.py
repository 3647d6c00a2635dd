"""REST routes (Powertools resolver). They must match openapi/api.yaml; a unit test holds them together."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit

from modeldrop.api import logic
from modeldrop.api.dependencies import ApiDependencies
from modeldrop.api.errors import ApiError, InternalError, InvalidInvocation, ResponseTooLarge, RouteNotFound
from modeldrop.api.media_types import is_binary_media_type
from modeldrop.api.models import ErrorBody, Invocation, InvocationResult
from modeldrop.guardrails.serving import VERSION_HEADER
from modeldrop.guardrails.state import RequestedDecision
from modeldrop.observability import logger, metrics

# Lambda's synchronous response limit is 6 MB for the whole JSON envelope; keep room for headers.
MAX_RESPONSE_BODY_BYTES = 6 * 1024 * 1024 - 16 * 1024

# (method, path) in Powertools' syntax; openapi/api.yaml spells `<name>` as `{name}`.
ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/models"),
    ("GET", "/models/<name>"),
    ("POST", "/models/<name>/invocations"),
    ("POST", "/models/<name>/rollback"),
    ("POST", "/models/<name>/promote"),
    ("POST", "/models/<name>/abort"),
    ("POST", "/models/<name>/versions/<version>/approve"),
)


def create_resolver(dependencies: Callable[[], ApiDependencies]) -> APIGatewayRestResolver:
    """A resolver whose routes take their adapters from `dependencies()` at call time."""
    app = APIGatewayRestResolver()

    @app.get("/models")
    def list_models() -> Response:
        listing = logic.list_models(dependencies().records)
        metrics.add_metric(name="ModelQueries", unit=MetricUnit.Count, value=1)
        return _json(200, listing.model_dump_json(by_alias=True))

    @app.get("/models/<name>")
    def get_model(name: str) -> Response:
        detail = logic.describe_model(name, dependencies().records)
        metrics.add_metric(name="ModelQueries", unit=MetricUnit.Count, value=1)
        headers = {VERSION_HEADER: str(detail.live_version)} if detail.live_version is not None else None
        return _json(200, detail.model_dump_json(by_alias=True), headers=headers)

    @app.post("/models/<name>/invocations")
    def invoke(name: str) -> Response:
        deps = dependencies()
        event = app.current_event
        invocation = Invocation(
            body=_request_bytes(event.body, event.is_base64_encoded, name),
            content_type=event.headers.get("content-type"),
            accept=event.headers.get("accept"),
        )
        result = logic.invoke_model(
            name, invocation, deps.invocation_records, deps.runtime, shadow=deps.shadow
        )
        metrics.add_metric(name="ModelInvocations", unit=MetricUnit.Count, value=1)
        return _invocation_response(name, result)

    @app.post("/models/<name>/rollback")
    def rollback(name: str) -> Response:
        event = app.current_event
        request = logic.parse_rollback_request(
            name, _request_bytes(event.body, event.is_base64_encoded, name)
        )
        deps = dependencies()
        accepted = logic.rollback_model(name, request, deps.rollbacks, deps.rollouts)
        metrics.add_metric(name="RollbacksRequested", unit=MetricUnit.Count, value=1)
        # 202: the endpoint switches in the background; GET /models/{name} follows the deployment.
        return _json(202, accepted.model_dump_json(by_alias=True))

    @app.post("/models/<name>/promote")
    def promote(name: str) -> Response:
        deps = dependencies()
        rollout = logic.decide_rollout(name, RequestedDecision.PROMOTE, deps.records, deps.rollouts)
        metrics.add_metric(name="PromotionsRequested", unit=MetricUnit.Count, value=1)
        # 202: the deploy state machine promotes at its next judgement.
        return _json(202, rollout.model_dump_json(by_alias=True))

    @app.post("/models/<name>/abort")
    def abort(name: str) -> Response:
        deps = dependencies()
        rollout = logic.decide_rollout(name, RequestedDecision.ABORT, deps.records, deps.rollouts)
        metrics.add_metric(name="AbortsRequested", unit=MetricUnit.Count, value=1)
        return _json(202, rollout.model_dump_json(by_alias=True))

    @app.post("/models/<name>/versions/<version>/approve")
    def approve(name: str, version: str) -> Response:
        event = app.current_event
        number, request = logic.parse_approval_request(
            name, version, _request_bytes(event.body, event.is_base64_encoded, name)
        )
        approved = logic.approve_model_version(name, number, request, dependencies().approvals)
        metrics.add_metric(name="ApprovalsRequested", unit=MetricUnit.Count, value=1)
        # 202: the state-change event starts the deployment; GET /models/{name} follows it.
        return _json(202, approved.model_dump_json(by_alias=True))

    @app.not_found
    def route_not_found(_: NotFoundError) -> Response:
        event = app.current_event
        error = RouteNotFound(f"No route for {event.http_method} {event.path}.")
        return _error_response(error, _request_id(app))

    @app.exception_handler(ApiError)
    def api_error(error: ApiError) -> Response:
        if error.status >= 500:
            logger.warning("Request failed", extra={"error": error.code, "detail": error.message})
            metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        return _error_response(error, _request_id(app))

    @app.exception_handler(Exception)
    def unexpected_error(error: Exception) -> Response:
        # The trace goes to the log only; the caller gets the request id to quote.
        logger.exception("Unhandled error")
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        model = (app.current_event.path_parameters or {}).get("name")
        failure = InternalError("Internal error; quote the requestId when reporting it.", model=model)
        return _error_response(failure, _request_id(app))

    return app


def _request_bytes(body: str | None, is_base64: bool | None, model: str) -> bytes:
    """The caller's bytes: API Gateway base64-encodes bodies of binary media types."""
    if body is None:
        return b""
    if not is_base64:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as error:
        raise InvalidInvocation("The request body is not valid base64.", model=model) from error


def _invocation_response(model: str, result: InvocationResult) -> Response:
    content_type = result.content_type or content_types.APPLICATION_JSON
    headers = {VERSION_HEADER: str(result.version)} if result.version is not None else {}
    text = None if is_binary_media_type(content_type) else _utf8_or_none(result.body)
    if text is not None:
        _check_response_size(model, len(text.encode("utf-8")))
        return Response(status_code=200, content_type=content_type, body=text, headers=headers)
    # Binary (or text that is not UTF-8): base64 with isBase64Encoded, which API Gateway decodes.
    encoded = base64.b64encode(result.body).decode("ascii")
    _check_response_size(model, len(encoded))
    response = Response(status_code=200, content_type=content_type, body=encoded, headers=headers)
    response.base64_encoded = True
    return response


def _check_response_size(model: str, body_bytes: int) -> None:
    # Past Lambda's response limit the invocation itself fails and API Gateway answers a bare 502;
    # saying why, in the error shape, is kinder.
    if body_bytes > MAX_RESPONSE_BODY_BYTES:
        raise ResponseTooLarge(
            f"Model '{model}' answered {body_bytes} bytes (as sent to API Gateway), more than the "
            f"{MAX_RESPONSE_BODY_BYTES} a Lambda response can carry.",
            model=model,
        )


def _utf8_or_none(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _request_id(app: APIGatewayRestResolver) -> str | None:
    # Read leniently: the error path must not fail on an event without a request context.
    request_context = app.current_event.raw_event.get("requestContext") or {}
    request_id = request_context.get("requestId")
    if request_id:
        return str(request_id)
    context = getattr(app, "lambda_context", None)
    return getattr(context, "aws_request_id", None)


def _error_response(error: ApiError, request_id: str | None) -> Response:
    body = ErrorBody(error=error.code, message=error.message, model=error.model, request_id=request_id)
    return _json(int(error.status), body.model_dump_json(by_alias=True), headers=error.headers())


def _json(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers or {}
    )
