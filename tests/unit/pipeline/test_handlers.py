"""The thin handlers, end to end on moto: the sample S3 event in, records and executions out."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from modeldrop_local.example_models import build_sklearn_iris
from moto import mock_aws

from tests.unit.pipeline.conftest import Stack, build_stack
from tests.unit.pipeline.template_resources import REGION, REPO_ROOT
from tests.utils import load_event


class _LambdaContext:
    function_name = "modeldrop-OnUploadFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:modeldrop-OnUploadFunction"
    aws_request_id = "6f7d0e55-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def _load(function: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"{function}_app", REPO_ROOT / "functions" / function / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def on_upload(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stack, ModuleType]]:
    with mock_aws():
        stack = build_stack()
        for key, value in stack.environment().items():
            monkeypatch.setenv(key, value)
        yield stack, _load("on_upload")


def _s3_event(stack: Stack, key: str, body: bytes, name: str = "s3_put_model") -> dict[str, Any]:
    stored = stack.put_object(key, body)
    event = load_event(name)
    record = event["Records"][0]
    record["s3"]["bucket"]["name"] = stack.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{stack.bucket}"
    record["s3"]["object"].update(key=key, versionId=stored["version"], eTag=stored["etag"], size=len(body))
    return event


def test_sample_s3_event_deploys_and_duplicate_is_ignored(
    on_upload: tuple[Stack, ModuleType], iris_tarball: bytes
) -> None:
    # Given the sample S3 event for a real iris tarball (moto's SageMaker answers the control plane)
    stack, app = on_upload
    event = _s3_event(stack, "models/iris/model.tar.gz", iris_tarball)

    # When OnUpload's handler receives it twice (S3 delivers at least once)
    first = app.lambda_handler(event, _LambdaContext())
    second = app.lambda_handler(event, _LambdaContext())

    # Then one deployment is recorded and started, and the duplicate replays the same outcome
    assert first == second
    (outcome,) = first["outcomes"]
    assert outcome["status"] == "Deploying"
    assert outcome["modelName"] == "iris" and outcome["version"] == 1
    assert [d.version for d in stack.records().list_deployments("iris")] == [1]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert len(sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]) == 1
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert (
        sagemaker.describe_endpoint(EndpointName="modeldrop-iris")["EndpointConfigName"]
        == "modeldrop-iris-v1"
    )


def test_sample_bad_key_event_is_rejected(on_upload: tuple[Stack, ModuleType]) -> None:
    # Given the sample event for a key that names no model
    stack, app = on_upload
    event = load_event("s3_put_bad_key")
    event["Records"][0]["s3"]["bucket"]["name"] = stack.bucket

    # When OnUpload's handler receives it
    result = app.lambda_handler(event, _LambdaContext())

    # Then it is rejected with the reason, and no SageMaker resource exists
    (outcome,) = result["outcomes"]
    assert outcome["status"] == "Rejected"
    assert "exactly one folder level" in outcome["reason"]
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert sagemaker.list_models()["Models"] == []


def test_url_encoded_keys_are_decoded(on_upload: tuple[Stack, ModuleType]) -> None:
    # Given an event whose key S3 URL-encoded (a space is '+')
    stack, app = on_upload
    event = _s3_event(stack, "models/my model/model.tar.gz", b"not read: the key is refused first")
    event["Records"][0]["s3"]["object"]["key"] = "models/my+model/model.tar.gz"

    # When OnUpload's handler receives it
    result = app.lambda_handler(event, _LambdaContext())

    # Then the reason quotes the real key
    assert "model name 'my model'" in result["outcomes"][0]["reason"]


def test_event_that_is_not_s3_fails_validation(on_upload: tuple[Stack, ModuleType]) -> None:
    # Given an event of the wrong shape
    _, app = on_upload
    from aws_lambda_powertools.utilities.parser import ValidationError
    from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError

    # When / Then Powertools' parser refuses it before any work
    with pytest.raises((ValidationError, InvalidModelTypeError)):
        app.lambda_handler({"Records": [{"eventSource": "aws:sqs"}]}, _LambdaContext())


def test_the_tarballs_modeldrop_json_wins_whole_over_the_sibling_object(
    on_upload: tuple[Stack, ModuleType], tmp_path: Path
) -> None:
    # Given a sibling models/iris/modeldrop.json asking for 4096 MB and 4 concurrent requests, and a
    # tarball whose own modeldrop.json asks only for max_concurrency 2 (it replaces the sibling whole)
    stack, app = on_upload
    stack.put_object(
        "models/iris/modeldrop.json", json.dumps({"memory_mb": 4096, "max_concurrency": 4}).encode()
    )
    tarball = build_sklearn_iris(tmp_path / "iris", config={"max_concurrency": 2})
    event = _s3_event(stack, "models/iris/model.tar.gz", Path(tarball).read_bytes())

    # When OnUpload's handler receives the upload
    (outcome,) = app.lambda_handler(event, _LambdaContext())["outcomes"]

    # Then the endpoint config has the tarball's concurrency and the template's default memory (2048),
    # nothing of the sibling, and the record says so
    assert outcome["status"] == "Deploying", outcome
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName="modeldrop-iris-v1")[
        "ProductionVariants"
    ]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.config is not None
    assert (record.config.memory_mb, record.config.max_concurrency) == (2048, 2)
