"""The SageMaker control plane through unmodified boto3: validation, errors, CRUD, lists and tags."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reliability.hostile_http import expect_continue_call
from tests.integration.local_sagemaker.conftest import (
    ROLE_ARN,
    SKLEARN_IMAGE,
    ModelUrls,
    create_serverless_endpoint,
)

ACCOUNT = "123456789012"


def _error(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return dict(caught.value.response)


def _config_request(name: str, model: str, serverless: dict[str, int] | None) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": model}
    if serverless is not None:
        variant["ServerlessConfig"] = serverless
    else:
        variant.update(InstanceType="ml.m5.large", InitialInstanceCount=1)
    return {"EndpointConfigName": name, "ProductionVariants": [variant]}


@pytest.fixture(scope="module")
def cp_model(sm: Any, model_urls: ModelUrls) -> str:
    sm.create_model(
        ModelName="cp-model",
        PrimaryContainer={"Image": SKLEARN_IMAGE, "ModelDataUrl": model_urls.iris},
        ExecutionRoleArn=ROLE_ARN,
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    return "cp-model"


@pytest.mark.parametrize(
    ("serverless", "expected"),
    [
        (
            {"MemorySizeInMB": 1500, "MaxConcurrency": 2},
            "Member must satisfy enum value set: [1024, 2048, 3072, 4096, 5120, 6144]",
        ),
        (
            {"MemorySizeInMB": 8192, "MaxConcurrency": 2},
            "Value '8192' at 'productionVariants.1.member.serverlessConfig.memorySizeInMB' failed to satisfy "
            "constraint: Member must have value less than or equal to 6144",
        ),
        ({"MemorySizeInMB": 2048, "MaxConcurrency": 0}, "Member must have value greater than or equal to 1"),
        ({"MemorySizeInMB": 2048, "MaxConcurrency": 201}, "Member must have value less than or equal to 200"),
        (
            {"MemorySizeInMB": 2048, "MaxConcurrency": 2, "ProvisionedConcurrency": 3},
            "ProvisionedConcurrency (3) must be less than or equal to MaxConcurrency (2)",
        ),
        (None, "has no ServerlessConfig"),
    ],
    ids=[
        "memory-step",
        "memory-max",
        "concurrency-min",
        "concurrency-max",
        "provisioned-above-max",
        "instances",
    ],
)
def test_endpoint_config_refuses_what_serverless_refuses(
    sm: Any, cp_model: str, serverless: dict[str, int] | None, expected: str
) -> None:
    # Given a model, When a config breaks a serverless rule
    response = _error(sm.create_endpoint_config, **_config_request("cp-bad", cp_model, serverless))
    # Then SageMaker's ValidationException names the rule, and nothing was created
    assert response["Error"]["Code"] == "ValidationException"
    assert expected in response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert (
        _error(sm.describe_endpoint_config, EndpointConfigName="cp-bad")["Error"]["Code"]
        == "ValidationException"
    )


@pytest.mark.parametrize(
    ("request_params", "expected"),
    [
        (
            {"EndpointName": "bad_name!", "EndpointConfigName": "x"},
            "Value 'bad_name!' at 'endpointName' failed to satisfy constraint: Member must satisfy regular "
            "expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        ),
        (
            {"EndpointName": "a" * 64, "EndpointConfigName": "x"},
            "Member must have length less than or equal to 63",
        ),
        (
            {"EndpointName": "ok"},
            "Value null at 'endpointConfigName' failed to satisfy constraint: Member must not be null",
        ),
    ],
    ids=["pattern", "too-long", "missing"],
)
def test_endpoint_names_are_checked_against_the_service_model(
    sm: Any, request_params: dict[str, Any], expected: str
) -> None:
    # When CreateEndpoint gets a name the service model forbids (or misses a required member)
    response = _error(sm.create_endpoint, **request_params)
    # Then the message is AWS's, built from botocore's shapes
    assert response["Error"]["Code"] == "ValidationException"
    assert expected in response["Error"]["Message"]


def test_every_violation_is_reported_together(sm: Any) -> None:
    # When a request breaks three constraints (a bad name; a config name too long, so no pattern fits)
    response = _error(sm.create_endpoint, EndpointName="-bad-", EndpointConfigName="b" * 70)
    # Then all are listed, as AWS does
    message = response["Error"]["Message"]
    assert message.startswith("3 validation errors detected: ")
    assert "at 'endpointName'" in message
    assert "Member must have length less than or equal to 63" in message


def test_missing_and_duplicate_resources(sm: Any, cp_model: str) -> None:
    # A config naming an unknown model
    response = _error(
        sm.create_endpoint_config,
        **_config_request("cp-c", "nope", {"MemorySizeInMB": 1024, "MaxConcurrency": 1}),
    )
    assert (
        response["Error"]["Message"]
        == f'Could not find model "arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/nope".'
    )
    # A model created twice
    response = _error(
        sm.create_model,
        ModelName=cp_model,
        PrimaryContainer={"Image": SKLEARN_IMAGE},
        ExecutionRoleArn=ROLE_ARN,
    )
    assert response["Error"]["Code"] == "ValidationException"
    assert response["Error"]["Message"].startswith("Cannot create already existing model")
    # Describing, deleting or updating what does not exist
    for call, kwargs, kind in [
        (sm.describe_endpoint, {"EndpointName": "Ghost"}, "endpoint/ghost"),
        (sm.delete_endpoint, {"EndpointName": "ghost"}, "endpoint/ghost"),
        (sm.update_endpoint, {"EndpointName": "ghost", "EndpointConfigName": "c"}, "endpoint/ghost"),
        (sm.describe_model, {"ModelName": "ghost"}, "model/ghost"),
        (sm.delete_endpoint_config, {"EndpointConfigName": "ghost"}, "endpoint-config/ghost"),
    ]:
        response = _error(call, **kwargs)
        assert response["Error"]["Code"] == "ValidationException"
        assert response["Error"]["Message"].startswith("Could not find"), response["Error"]["Message"]
        assert f":{kind}" in response["Error"]["Message"]
    # An endpoint on a config that does not exist
    response = _error(sm.create_endpoint, EndpointName="cp-ep", EndpointConfigName="ghost")
    assert "Could not find endpoint configuration" in response["Error"]["Message"]


def test_models_and_configs_round_trip(sm: Any, cp_model: str, model_urls: ModelUrls) -> None:
    # Given a model and a config
    create_serverless_endpoint(sm, "cp-rt", model_urls.iris, provisioned=1, create_endpoint=False)
    # Then Describe answers what was created
    model = sm.describe_model(ModelName=cp_model)
    assert model["ModelArn"] == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/cp-model"
    assert model["PrimaryContainer"]["ModelDataUrl"] == model_urls.iris
    assert model["CreationTime"].year >= 2024
    config = sm.describe_endpoint_config(EndpointConfigName="cp-rt-config")
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {
        "MemorySizeInMB": 2048,
        "MaxConcurrency": 2,
        "ProvisionedConcurrency": 1,
    }
    # And List finds them by name
    names = [m["ModelName"] for m in sm.list_models(NameContains="cp-")["Models"]]
    assert {"cp-model", "cp-rt-config-model"} <= set(names)
    configs = sm.list_endpoint_configs(NameContains="cp-rt")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["cp-rt-config"]
    # And pagination hands out every item once
    first = sm.list_models(MaxResults=1, SortBy="Name", SortOrder="Ascending")
    second = sm.list_models(MaxResults=1, SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"])
    assert first["Models"][0]["ModelName"] < second["Models"][0]["ModelName"]
    # When the config and a model are deleted, Then they are gone
    sm.delete_endpoint_config(EndpointConfigName="cp-rt-config")
    sm.delete_model(ModelName="cp-rt-config-model")
    assert "cp-rt-config-model" not in [m["ModelName"] for m in sm.list_models()["Models"]]


def test_tags(sm: Any, cp_model: str) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/{cp_model}"
    # Given tags set at creation
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    # When tags are added (one replaced) and one deleted
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "data"}, {"Key": "stage", "Value": "dev"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["stage"])
    # Then ListTags shows the result
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "data"}]
    # And an unknown ARN is ResourceNotFound
    response = _error(sm.list_tags, ResourceArn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/ghost")
    assert response["Error"]["Code"] == "ResourceNotFound"


def test_unknown_operation_is_refused(local_sagemaker: Any) -> None:
    import httpx

    # When a target the local SageMaker does not implement arrives
    response = httpx.post(
        local_sagemaker.url,
        headers={"X-Amz-Target": "SageMaker.CreateTrainingJob", "Content-Type": "application/x-amz-json-1.1"},
        content=b"{}",
    )
    # Then it says so in SageMaker's error shape
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"


def test_runs_alone_on_loopback(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.utils import REPO_ROOT, free_port

    # Given `python -m modeldrop_local.sagemaker` started with a port and a state directory
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(REPO_ROOT / p) for p in ("layers/modeldrop", "local")),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modeldrop_local.sagemaker",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # Then it answers on 127.0.0.1 with the operations it serves
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_modeldrop/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        assert "UpdateEndpoint" in health.json()["operations"]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("body", [b"", b"[]"], ids=["empty-body", "small-body"])
def test_expect_continue_is_answered_by_the_standalone_sagemaker(local_sagemaker: Any, body: bytes) -> None:
    # Given an InvokeEndpoint-shaped request with Expect: 100-continue, sent as botocore sends it
    port = int(local_sagemaker.url.rsplit(":", 1)[1])
    head = (
        b"POST /endpoints/nowhere/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    # When it reaches the port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        got = expect_continue_call(connection, head, body)
    # Then the 100 comes and SageMaker's answer follows (the endpoint does not exist: a 4xx)
    assert got.continued
    assert got.status is not None and 400 <= got.status < 500, got
