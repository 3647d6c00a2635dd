"""SageMaker runtime adapter: InvokeEndpoint, with SageMaker's errors translated into API errors."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Protocol

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from modeldrop.api.errors import (
    MODEL_NOT_READY_RETRY_AFTER_S,
    SERVICE_UNAVAILABLE_RETRY_AFTER_S,
    THROTTLED_RETRY_AFTER_S,
    ApiError,
    InvalidInvocation,
    ModelInvocationFailed,
    ModelNotInService,
    ModelNotReady,
    ModelTimeout,
    ServiceUnavailable,
    Throttled,
    UpstreamFailure,
)
from modeldrop.api.models import Invocation, InvocationResult

# Not in the service model, but SageMaker answers with them when an endpoint is at its limits.
_THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


class ModelRuntime(Protocol):
    def invoke(self, model: str, endpoint_name: str, invocation: Invocation) -> InvocationResult: ...


class SageMakerRuntime:
    """`ModelRuntime` on a boto3 `sagemaker-runtime` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def invoke(self, model: str, endpoint_name: str, invocation: Invocation) -> InvocationResult:
        request: dict[str, Any] = {"EndpointName": endpoint_name, "Body": invocation.body}
        if invocation.content_type:
            request["ContentType"] = invocation.content_type
        if invocation.accept:
            request["Accept"] = invocation.accept
        try:
            response = self._client.invoke_endpoint(**request)
        except ClientError as error:
            raise translate_client_error(model, error) from error
        except (ReadTimeoutError, ConnectTimeoutError) as error:
            raise ModelTimeout(f"Model '{model}' did not answer in time.", model=model) from error
        except (EndpointConnectionError, ConnectionClosedError) as error:
            raise UpstreamFailure(f"Could not reach the endpoint of model '{model}'.", model=model) from error
        return InvocationResult(body=response["Body"].read(), content_type=response.get("ContentType"))


def translate_client_error(model: str, error: ClientError) -> ApiError:
    """Map an InvokeEndpoint error to the API error the caller sees."""
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message") or code
    if code == "ModelError":
        return _model_error(model, dict(error.response), message)
    if code == "ValidationError":
        if "not found" in message.lower() or "could not find" in message.lower():
            # The record said InService but SageMaker has no such endpoint: ours to fix, not the caller's.
            return ModelNotInService(f"The endpoint of model '{model}' is not available.", model=model)
        return InvalidInvocation(message, model=model)
    if code == "ModelNotReadyException":
        return ModelNotReady(
            f"Model '{model}' is not ready yet: {message}",
            model=model,
            retry_after_s=MODEL_NOT_READY_RETRY_AFTER_S,
        )
    if code in _THROTTLING_CODES:
        return Throttled(
            f"Model '{model}' is at its concurrency limit; retry later.",
            model=model,
            retry_after_s=THROTTLED_RETRY_AFTER_S,
        )
    if code == "ServiceUnavailable":
        return ServiceUnavailable(
            f"SageMaker is unavailable for model '{model}'; retry later.",
            model=model,
            retry_after_s=SERVICE_UNAVAILABLE_RETRY_AFTER_S,
        )
    return UpstreamFailure(f"SageMaker failed to invoke model '{model}' ({code}).", model=model)


def _model_error(model: str, response: dict[str, Any], message: str) -> ModelInvocationFailed:
    original_status = response.get("OriginalStatusCode")
    original_message = response.get("OriginalMessage") or message
    # The model's own 4xx tells the caller what was wrong with the input; a 5xx (or none) from
    # the model is a failure behind the gateway.
    status: int = HTTPStatus.BAD_GATEWAY
    if isinstance(original_status, int) and 400 <= original_status < 500:
        status = original_status
    return ModelInvocationFailed(original_message, model=model, status=status)
