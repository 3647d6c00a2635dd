"""Errors the API answers with: each carries its HTTP status and a stable CamelCase code.

Every error body has the same shape, `{"error", "message", "model", "requestId"}`, whichever layer
raised it, so clients can branch on `error` without parsing messages.
"""

from __future__ import annotations

from http import HTTPStatus

# How long a throttled client should wait. A serverless endpoint at its MaxConcurrency frees a slot
# within a request's duration; a cold model needs a few seconds to load.
THROTTLED_RETRY_AFTER_S = 1
MODEL_NOT_READY_RETRY_AFTER_S = 5
SERVICE_UNAVAILABLE_RETRY_AFTER_S = 5
# An endpoint being created or updated takes minutes; polling faster only burns requests.
ENDPOINT_CHANGING_RETRY_AFTER_S = 30


class ApiError(Exception):
    """An error with an HTTP status, a CamelCase code and a message safe to show to the caller."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.model = model
        if status is not None:
            self.status = status
        self.retry_after_s = retry_after_s
        # Set by the layer that knows more of the answer (e.g. x-modeldrop-version: the version that failed).
        self.extra_headers: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class InvalidModelName(ApiError):
    status = HTTPStatus.BAD_REQUEST
    code = "InvalidModelName"


class EmptyPayload(ApiError):
    status = HTTPStatus.BAD_REQUEST
    code = "EmptyPayload"


class InvalidInvocation(ApiError):
    """SageMaker rejected the request itself (its ValidationError)."""

    status = HTTPStatus.BAD_REQUEST
    code = "InvalidInvocation"


class InvalidRequest(ApiError):
    """A request body the route cannot use (e.g. a rollback body that is not {"version": N})."""

    status = HTTPStatus.BAD_REQUEST
    code = "InvalidRequest"


class RollbackNotPossible(ApiError):
    """The rollback conflicts with the model's versions: the code says how (VersionNotKept,
    NothingToRollBack, VersionAlreadyLive), the message which versions are kept."""

    status = HTTPStatus.CONFLICT
    code = "RollbackNotPossible"

    def __init__(self, message: str, *, code: str, model: str | None = None) -> None:
        super().__init__(message, model=model)
        self.code = code


class NoBakeInProgress(ApiError):
    """Promote or abort asked of a model with no canary or shadow candidate baking."""

    status = HTTPStatus.CONFLICT
    code = "NoBakeInProgress"


class ApprovalNotPossible(ApiError):
    """The version is not waiting for approval (VersionNotPendingApproval): approved automatically,
    approved or rejected already, or not a registered upload."""

    status = HTTPStatus.CONFLICT
    code = "VersionNotPendingApproval"


class VersionNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "VersionNotFound"


class RouteNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "RouteNotFound"


class ModelNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    code = "ModelNotFound"


class PayloadTooLarge(ApiError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "PayloadTooLarge"


class ModelInvocationFailed(ApiError):
    """The model's own code failed: its 4xx is passed on, anything else becomes 502."""

    status = HTTPStatus.BAD_GATEWAY
    code = "ModelError"


class Throttled(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "Throttled"


class ModelNotReady(ApiError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "ModelNotReady"


class UpstreamFailure(ApiError):
    """SageMaker itself failed (InternalFailure, InternalDependencyException, connection refused)."""

    status = HTTPStatus.BAD_GATEWAY
    code = "UpstreamFailure"


class ResponseTooLarge(ApiError):
    """The model answered more than a Lambda response can carry to API Gateway."""

    status = HTTPStatus.BAD_GATEWAY
    code = "ResponseTooLarge"


class ModelNotInService(ApiError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "ModelNotInService"


class ServiceUnavailable(ApiError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "ServiceUnavailable"


class ModelTimeout(ApiError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "ModelTimeout"


class InternalError(ApiError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "InternalError"
