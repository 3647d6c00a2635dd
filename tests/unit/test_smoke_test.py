"""The smoke test of modeldrop.json (modeldrop.smoke_test): its validation, its checks of an answer, and
the one InvokeEndpoint it makes (request shape pinned with botocore's Stubber)."""

from __future__ import annotations

import io
import re

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from modeldrop.model_config import parse_model_config
from modeldrop.rejection import UploadRejected
from modeldrop.smoke_test import SmokeTest, SmokeTestNotReady, parse_json_path, run_smoke_test


def test_json_path_subset() -> None:
    assert parse_json_path("$") == []
    assert parse_json_path("$.predictions[0]['score']") == ["predictions", 0, "score"]
    with pytest.raises(ValueError, match=re.escape("unsupported at '..x'")):
        parse_json_path("$..x")


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (b'{"smoke_test": {"content_type": "text/csv"}}', "smoke_test.body"),
        (b'{"smoke_test": {"body": null}}', "smoke_test.body must be the request to send"),
        (
            b'{"smoke_test": {"body": 1, "json_path": "predictions"}}',
            "smoke_test.json_path must start with '$'",
        ),
        (b'{"smoke_test": {"body": 1, "equals": 0}}', "equals needs json_path"),
        (b'{"smoke_test": {"body": 1, "expected": 0}}', "unknown key 'expected'"),
    ],
)
def test_a_bad_smoke_test_rejects_the_config_naming_the_key(config: bytes, says: str) -> None:
    with pytest.raises(UploadRejected) as rejected:
        parse_model_config(config)
    assert says in rejected.value.reason


@pytest.mark.parametrize(
    ("test", "content_type", "answer", "failure"),
    [
        ({"body": [[1.0]], "expect": [0]}, "application/json", b"[0]", None),
        ({"body": [[1.0]], "expect": [0]}, "application/json", b"[2]", "expected [0], got '[2]'"),
        ({"body": "1,2", "expect": "setosa"}, "text/csv", b"setosa\n", None),
        (
            {"body": [[1.0]], "json_path": "$.predictions[0]"},
            "application/json",
            b'{"predictions": [1]}',
            None,
        ),
        (
            {"body": [[1.0]], "json_path": "$[0]"},
            "application/json",
            b'{"predictions": [1]}',
            "$[0] not found",
        ),
        (
            {"body": [[1.0]], "json_path": "$[0]", "equals": 1},
            "application/json",
            b"[2]",
            "$[0] is 2, expected 1",
        ),
        ({"body": [[1.0]], "json_path": "$[0]"}, "text/csv", b"1\n2", "the answer is not JSON"),
        ({"body": [[1.0]]}, "text/html", b"<p>anything</p>", None),
    ],
)
def test_the_answer_is_checked(
    test: dict[str, object], content_type: str, answer: bytes, failure: str | None
) -> None:
    result = SmokeTest.model_validate(test).check(content_type, answer)
    if failure is None:
        assert result is None
    else:
        assert result is not None and failure in result


def _runtime() -> tuple[object, Stubber]:
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def test_one_invocation_with_the_configured_request() -> None:
    # Given a smoke test sending CSV
    test = SmokeTest.model_validate({"body": "5.1,3.5,1.4,0.2", "content_type": "text/csv", "expect": [0]})
    client, stubber = _runtime()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(b"[0]"), 3), "ContentType": "application/json"},
        {
            "EndpointName": "modeldrop-iris",
            "Body": b"5.1,3.5,1.4,0.2",
            "ContentType": "text/csv",
            "Accept": "application/json",
        },
    )
    # When it runs / Then it made exactly that call and passed
    with stubber:
        assert run_smoke_test(client, "modeldrop-iris", test) is None
    stubber.assert_no_pending_responses()


def test_a_model_error_fails_and_a_cold_endpoint_is_retried() -> None:
    test = SmokeTest.model_validate({"body": [[1.0]]})
    client, stubber = _runtime()
    stubber.add_client_error(
        "invoke_endpoint",
        "ModelError",
        "boom",
        424,
        response_meta={},
        modeled_fields={"OriginalStatusCode": 500},
    )
    stubber.add_client_error("invoke_endpoint", "ModelNotReadyException", "loading", 429)
    with stubber:
        failure = run_smoke_test(client, "modeldrop-iris", test)
        assert failure is not None and failure.startswith(
            "the request failed with ModelError (the model answered 500)"
        )
        with pytest.raises(SmokeTestNotReady):
            run_smoke_test(client, "modeldrop-iris", test)
