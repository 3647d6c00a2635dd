"""POST /models/{name}/invocations: byte-for-byte pass-through and every error's status and shape."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.stub import Stubber
from modeldrop.api.logic import MAX_PAYLOAD_BYTES
from modeldrop.api.routes import MAX_RESPONSE_BODY_BYTES

from tests.unit.api.support import (
    assert_error,
    header,
    put_deployment,
    put_model,
    streaming,
)
from tests.utils import load_event

INVOKE_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
ENDPOINT = "modeldrop-iris"


def _invoke_event(body: bytes | str | None = None, **headers: str) -> dict[str, Any]:
    event = load_event("api_invoke")
    if body is not None:
        event["body"] = body if isinstance(body, str) else base64.b64encode(body).decode()
        event["isBase64Encoded"] = not isinstance(body, str)
    event["headers"].update(headers)
    return event


def test_json_payload_reaches_the_endpoint_unchanged_and_the_answer_comes_back(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given an InService model and the sample JSON invocation
    put_model(table, "iris")
    event = load_event("api_invoke")
    sagemaker.add_response(
        "invoke_endpoint",
        {"Body": streaming(b"[0, 2]"), "ContentType": "application/json"},
        expected_params={
            "EndpointName": ENDPOINT,
            "Body": event["body"].encode(),
            "ContentType": "application/json",
            "Accept": "application/json",
        },
    )
    # When it is invoked
    response = api.resolve(event, lambda_context)
    # Then SageMaker got the exact request and the caller gets the model's answer and content type
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/json"
    assert response["isBase64Encoded"] is False
    assert json.loads(response["body"]) == [0, 2]


def test_binary_npy_payload_passes_through_byte_for_byte(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given the binary sample event: a real .npy array, base64-encoded by API Gateway
    put_model(table, "iris")
    event = load_event("api_invoke_binary")
    sent = base64.b64decode(event["body"])
    assert np.load(io.BytesIO(sent)).shape == (2, 4)
    answer = io.BytesIO()
    np.save(answer, np.array([0, 2], dtype=np.int64), allow_pickle=False)
    sagemaker.add_response(
        "invoke_endpoint",
        {"Body": streaming(answer.getvalue()), "ContentType": "application/x-npy"},
        expected_params={
            "EndpointName": ENDPOINT,
            "Body": sent,
            "ContentType": "application/x-npy",
            "Accept": "application/x-npy",
        },
    )
    # When it is invoked
    response = api.resolve(event, lambda_context)
    # Then the decoded bytes reached SageMaker and the answer is returned base64-encoded, byte for byte
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "application/x-npy"
    assert response["isBase64Encoded"] is True
    returned = base64.b64decode(response["body"])
    assert returned == answer.getvalue()
    assert np.load(io.BytesIO(returned)).tolist() == [0, 2]


def test_accept_is_honoured_and_the_models_content_type_returned(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a CSV payload asking for CSV back
    put_model(table, "iris")
    sagemaker.add_response(
        "invoke_endpoint",
        {"Body": streaming(b"0\n2\n"), "ContentType": "text/csv; charset=utf-8"},
        expected_params={
            "EndpointName": ENDPOINT,
            "Body": b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
            "ContentType": "text/csv",
            "Accept": "text/csv",
        },
    )
    event = _invoke_event(
        "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", **{"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    # When it is invoked
    response = api.resolve(event, lambda_context)
    # Then the text answer comes back as text with the model's content type
    assert response["statusCode"] == 200
    assert header(response, "Content-Type") == "text/csv; charset=utf-8"
    assert response["isBase64Encoded"] is False
    assert response["body"] == "0\n2\n"


def test_text_content_type_with_non_utf8_bytes_is_still_returned_intact(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a model that labels raw bytes as text/plain
    put_model(table, "iris")
    raw = bytes(range(256))
    sagemaker.add_response("invoke_endpoint", {"Body": streaming(raw), "ContentType": "text/plain"})
    # When it is invoked
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then the bytes are not mangled: they travel base64-encoded
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == raw


def test_model_updating_with_a_live_version_keeps_serving(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a model whose endpoint is Updating to v2 while v1 serves
    put_model(table, "iris", status="Updating", live_version=1)
    sagemaker.add_response("invoke_endpoint", {"Body": streaming(b"[1]"), "ContentType": "application/json"})
    # When it is invoked
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then the live version answers
    assert response["statusCode"] == 200
    assert response["body"] == "[1]"


def test_unknown_model_is_404(api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext) -> None:
    # Given no model at all
    # When the sample invocation is sent
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then 404 ModelNotFound
    body = assert_error(response, 404, "ModelNotFound", "iris", INVOKE_REQUEST_ID)
    assert "iris" in body["message"]


def test_invalid_model_name_is_400(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a name with upper case and an underscore
    event = load_event("api_invoke")
    event["path"] = "/models/Iris_V2/invocations"
    event["pathParameters"] = {"name": "Iris_V2"}
    # When it is invoked
    response = api.resolve(event, lambda_context)
    # Then 400 InvalidModelName, naming the bad name
    body = assert_error(response, 400, "InvalidModelName", "Iris_V2", INVOKE_REQUEST_ID)
    assert "Iris_V2" in body["message"]


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [("Creating", "30"), ("Updating", "30"), ("Failed", None), ("OutOfService", None)],
)
def test_endpoint_not_in_service_is_503_with_its_status(
    api: APIGatewayRestResolver,
    table: Any,
    lambda_context: LambdaContext,
    status: str,
    retry_after: str | None,
) -> None:
    # Given a model whose endpoint has no live version and is not InService
    put_model(table, "iris", status=status, live_version=None)
    # When it is invoked
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then 503 naming the endpoint's status
    body = assert_error(response, 503, "ModelNotInService", "iris", INVOKE_REQUEST_ID)
    assert f"endpoint status: {status}" in body["message"]
    # And a Retry-After only while the endpoint is on its way to a new state
    assert header(response, "Retry-After") == retry_after


def test_model_with_only_a_rejected_upload_is_503_with_the_reason(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a first upload that was rejected (deployment item, no model item)
    put_deployment(table, "iris", 1, status="Rejected", reason="no model artifact and no code/inference.py")
    # When it is invoked
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then 503 with the recorded reason
    body = assert_error(response, 503, "ModelNotInService", "iris", INVOKE_REQUEST_ID)
    assert "Rejected" in body["message"]
    assert "no model artifact" in body["message"]


def test_payload_over_4_mb_is_413_without_calling_sagemaker(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a binary payload of 4 MB + 1 byte (the Stubber has nothing queued: a call would fail)
    put_model(table, "iris")
    event = _invoke_event(b"\x00" * (MAX_PAYLOAD_BYTES + 1), **{"Content-Type": "application/octet-stream"})
    # When it is invoked
    response = api.resolve(event, lambda_context)
    # Then 413 with the measured size
    body = assert_error(response, 413, "PayloadTooLarge", "iris", INVOKE_REQUEST_ID)
    assert str(MAX_PAYLOAD_BYTES + 1) in body["message"]


def test_payload_of_exactly_4_mb_is_accepted(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a binary payload of exactly 4 MB
    put_model(table, "iris")
    payload = b"\x01" * MAX_PAYLOAD_BYTES
    sagemaker.add_response(
        "invoke_endpoint",
        {"Body": streaming(b"{}"), "ContentType": "application/json"},
        expected_params={
            "EndpointName": ENDPOINT,
            "Body": payload,
            "ContentType": "application/octet-stream",
            "Accept": "application/json",
        },
    )
    event = _invoke_event(payload, **{"Content-Type": "application/octet-stream"})
    # When it is invoked / Then it reaches SageMaker
    assert api.resolve(event, lambda_context)["statusCode"] == 200


def test_empty_body_is_400(api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext) -> None:
    # Given an invocation without a body
    put_model(table, "iris")
    event = load_event("api_invoke")
    event["body"] = None
    # When it is invoked / Then 400 EmptyPayload
    assert_error(api.resolve(event, lambda_context), 400, "EmptyPayload", "iris", INVOKE_REQUEST_ID)


@pytest.mark.parametrize(
    ("original_status", "expected_status"),
    [(400, 400), (422, 422), (500, 502), (None, 502)],
)
def test_model_error_keeps_the_models_4xx_else_502(
    api: APIGatewayRestResolver,
    table: Any,
    sagemaker: Stubber,
    lambda_context: LambdaContext,
    original_status: int | None,
    expected_status: int,
) -> None:
    # Given a model whose code fails with its own status and message
    put_model(table, "iris")
    modeled: dict[str, Any] = {"OriginalMessage": "could not parse input: expected 4 features, got 3"}
    if original_status is not None:
        modeled["OriginalStatusCode"] = original_status
    sagemaker.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error from primary with message ...",
        http_status_code=424,
        modeled_fields=modeled,
    )
    # When it is invoked
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then the model's 4xx (or 502) with the model's own message
    body = assert_error(response, expected_status, "ModelError", "iris", INVOKE_REQUEST_ID)
    assert body["message"] == "could not parse input: expected 4 features, got 3"


def test_sagemaker_validation_error_is_400(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given SageMaker refusing the request
    put_model(table, "iris")
    sagemaker.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="1 validation error detected: Value at 'contentType' failed to satisfy constraint",
        http_status_code=400,
    )
    # When it is invoked / Then 400 with SageMaker's message
    body = assert_error(
        api.resolve(load_event("api_invoke"), lambda_context),
        400,
        "InvalidInvocation",
        "iris",
        INVOKE_REQUEST_ID,
    )
    assert "contentType" in body["message"]


def test_endpoint_missing_in_sagemaker_is_503_not_the_callers_fault(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a record saying InService but no endpoint in SageMaker
    put_model(table, "iris")
    sagemaker.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="Endpoint modeldrop-iris of account 123456789012 not found.",
        http_status_code=400,
    )
    # When it is invoked / Then 503
    assert_error(
        api.resolve(load_event("api_invoke"), lambda_context),
        503,
        "ModelNotInService",
        "iris",
        INVOKE_REQUEST_ID,
    )


@pytest.mark.parametrize(
    ("error_code", "http_status", "expected_code", "retry_after"),
    [
        ("ThrottlingException", 400, "Throttled", "1"),
        ("ModelNotReadyException", 429, "ModelNotReady", "5"),
    ],
)
def test_throttling_and_model_not_ready_are_429_with_retry_after(
    api: APIGatewayRestResolver,
    table: Any,
    sagemaker: Stubber,
    lambda_context: LambdaContext,
    error_code: str,
    http_status: int,
    expected_code: str,
    retry_after: str,
) -> None:
    # Given an endpoint at its concurrency limit, or a model still loading
    put_model(table, "iris")
    sagemaker.add_client_error(
        "invoke_endpoint",
        service_error_code=error_code,
        service_message="Rate exceeded",
        http_status_code=http_status,
    )
    # When it is invoked
    response = api.resolve(load_event("api_invoke"), lambda_context)
    # Then 429 with a Retry-After header
    assert_error(response, 429, expected_code, "iris", INVOKE_REQUEST_ID)
    assert header(response, "Retry-After") == retry_after


@pytest.mark.parametrize(
    ("error_code", "http_status", "expected_status", "expected_code"),
    [
        ("InternalFailure", 500, 502, "UpstreamFailure"),
        ("InternalDependencyException", 530, 502, "UpstreamFailure"),
        ("ServiceUnavailable", 503, 503, "ServiceUnavailable"),
    ],
)
def test_sagemaker_failures_are_gateway_errors(
    api: APIGatewayRestResolver,
    table: Any,
    sagemaker: Stubber,
    lambda_context: LambdaContext,
    error_code: str,
    http_status: int,
    expected_status: int,
    expected_code: str,
) -> None:
    # Given SageMaker failing on its side
    put_model(table, "iris")
    sagemaker.add_client_error(
        "invoke_endpoint", service_error_code=error_code, service_message="boom", http_status_code=http_status
    )
    # When it is invoked / Then a 5xx in the error shape
    response = api.resolve(load_event("api_invoke"), lambda_context)
    assert_error(response, expected_status, expected_code, "iris", INVOKE_REQUEST_ID)


def test_request_id_falls_back_to_the_lambda_request_id(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given an event without an API Gateway request id
    event = load_event("api_invoke")
    event["requestContext"].pop("requestId")
    # When it fails / Then the Lambda request id is quoted
    assert_error(
        api.resolve(event, lambda_context), 404, "ModelNotFound", "iris", lambda_context.aws_request_id
    )


def test_answer_too_large_for_a_lambda_response_is_502_with_a_reason(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a model answering 4.5 MB of binary, which base64 makes 6 MB
    put_model(table, "iris")
    answer = b"\x07" * (4 * 1024 * 1024 + 512 * 1024)
    sagemaker.add_response("invoke_endpoint", {"Body": streaming(answer), "ContentType": "application/x-npy"})
    # When it is invoked
    response = api.resolve(load_event("api_invoke_binary"), lambda_context)
    # Then 502 ResponseTooLarge instead of a failed Lambda invocation
    body = assert_error(response, 502, "ResponseTooLarge", "iris", "e3b0c442-98fc-41c1-a4e2-9c6f1b2d3a4e")
    assert str(MAX_RESPONSE_BODY_BYTES) in body["message"]


def test_largest_binary_answer_that_fits_is_returned(
    api: APIGatewayRestResolver, table: Any, sagemaker: Stubber, lambda_context: LambdaContext
) -> None:
    # Given a model answering the largest binary body whose base64 still fits
    put_model(table, "iris")
    answer = b"\x07" * (MAX_RESPONSE_BODY_BYTES // 4 * 3)
    sagemaker.add_response("invoke_endpoint", {"Body": streaming(answer), "ContentType": "application/x-npy"})
    # When it is invoked / Then it comes back whole
    response = api.resolve(load_event("api_invoke_binary"), lambda_context)
    assert response["statusCode"] == 200
    assert base64.b64decode(response["body"]) == answer
    assert len(json.dumps(response)) < 6 * 1024 * 1024
