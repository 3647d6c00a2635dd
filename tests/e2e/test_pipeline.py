"""Upload → OnUpload → SageMaker → Step Functions → REST, on the local cloud with the real template."""

from __future__ import annotations

import io
import re
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from modeldrop.api.models import DeploymentSummary
from modeldrop_local.cli import app
from modeldrop_local.example_models import (
    build_custom_inference,
    build_sklearn_iris,
    iris_sample,
    predict_in_process,
)
from modeldrop_local.stack_client import StackClient
from typer.testing import CliRunner

from tests.e2e.clients import assert_switched_without_a_failed_request, deploy, invoking_continuously, predict

pytestmark = pytest.mark.e2e
MODEL = "iris"


def _deploy(stack: StackClient, tarball: Path) -> DeploymentSummary:
    return deploy(stack, tarball, MODEL)


def _predict(stack: StackClient) -> httpx.Response:
    return predict(stack, MODEL)


@pytest.fixture(scope="module")
def iris(stack: StackClient, models_dir: Path) -> Path:
    tarball = build_sklearn_iris(models_dir / "logistic")
    deployment = _deploy(stack, tarball)
    assert deployment is not None and str(deployment.status) == "InService", deployment
    return tarball


def test_upload_reaches_in_service_and_rest_predicts_like_in_process(stack: StackClient, iris: Path) -> None:
    # Given the iris model uploaded and InService (fixture)
    # When the REST API is called with the stack's API key
    response = _predict(stack)
    # Then it answers what the same model predicts in this process
    assert response.status_code == 200, response.text
    assert response.json() == predict_in_process(iris, iris_sample())
    # And the REST API refuses a call without the key, as API Gateway does
    url = f"{stack.outputs()['ApiUrl']}/models/{MODEL}/invocations"
    assert httpx.post(url, json=iris_sample()).status_code == 403


def test_logs_show_the_endpoint_log_lines_with_request_ids(stack: StackClient, iris: Path) -> None:
    # Given the iris model InService and called through the REST API
    assert _predict(stack).status_code == 200
    # When `modeldrop logs iris` runs (the endpoint's logs reach CloudWatch Logs within a ship interval)
    invocation = re.compile(r"\[[0-9a-f-]{36}\] invocation status=200")
    deadline = time.monotonic() + 20
    while True:
        result = CliRunner().invoke(
            app, ["logs", MODEL, "--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
        )
        assert result.exit_code == 0, result.output
        if invocation.search(result.stdout) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # Then it shows the deployment history and the endpoint's own lines: its deployment and the request
    assert "v1 InService" in result.stdout
    assert "[sagemaker] InService on modeldrop-iris-v1" in result.stdout
    assert invocation.search(result.stdout), result.stdout


def test_not_a_tarball_is_rejected_with_its_reason_and_the_live_model_keeps_answering(
    stack: StackClient, iris: Path, models_dir: Path
) -> None:
    # Given a file that is not a gzip tarball
    bad = models_dir / "garbage.tar.gz"
    bad.write_bytes(b"this is not a tarball")
    # When it is uploaded over the live model
    deployment = _deploy(stack, bad)
    # Then the deployment is Rejected with a reason, and the previous version still answers
    assert deployment is not None and str(deployment.status) == "Rejected"
    assert deployment.reason
    response = _predict(stack)
    assert response.status_code == 200
    assert response.json() == predict_in_process(iris, iris_sample())


def test_model_that_cannot_load_fails_with_its_reason_and_the_live_model_keeps_answering(
    stack: StackClient, iris: Path, models_dir: Path
) -> None:
    # Given a well-formed tarball whose model.joblib is not a model
    broken = models_dir / "broken.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"not a pickle at all" * 10
        info = tarfile.TarInfo("model.joblib")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    broken.write_bytes(buffer.getvalue())
    # When it is uploaded
    deployment = _deploy(stack, broken)
    # Then SageMaker's health check fails it: Failed with a reason; the previous version still answers
    assert deployment is not None and str(deployment.status) == "Failed", deployment
    assert deployment.reason
    response = _predict(stack)
    assert response.status_code == 200, response.text
    assert response.json() == predict_in_process(iris, iris_sample())


def test_new_version_switches_predictions_without_a_failed_request(
    stack: StackClient, iris: Path, models_dir: Path
) -> None:
    # Given a client invoking the live model continuously
    with invoking_continuously(stack, MODEL) as answers:
        # When a new version (a custom inference.py answering with names) is uploaded and goes InService
        custom = build_custom_inference(models_dir / "custom")
        deployment = _deploy(stack, custom)
        assert str(deployment.status) == "InService", deployment
        after = _predict(stack)
    # Then no request failed during the update, and the answers switched from the old model to the new one
    old, new = predict_in_process(iris, iris_sample()), predict_in_process(custom, iris_sample())
    assert_switched_without_a_failed_request(answers, old, new)
    assert after.json() == new


def test_cli_deploy_status_and_logs_go_through_the_rest_api_only(
    stack: StackClient, iris: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a CLI that cannot reach the DeploymentsTable (on AWS: an API key and no DynamoDB rights)
    def no_table(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the CLI read DynamoDB")

    monkeypatch.setattr(StackClient, "records", no_table)
    monkeypatch.setattr("boto3.session.Session.resource", no_table)
    target = ["--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
    tarball = build_sklearn_iris(models_dir / "cli-iris")

    # When a model is deployed, listed and its history read with the CLI (output is not a terminal)
    deployed = CliRunner().invoke(app, ["deploy", str(tarball), "--name", "cli-iris", *target])
    listed = CliRunner().invoke(app, ["status", *target])
    history = CliRunner().invoke(app, ["status", "cli-iris", *target])

    # Then deploy printed one plain line per transition, no live display, and ended InService
    assert deployed.exit_code == 0, deployed.output
    lines = deployed.stdout.splitlines()
    assert lines[-1] == "cli-iris v1 is InService"
    transitions = lines[1:-1]
    # (the deployment turns InService a moment before the model item: its endpoint may still read Creating)
    assert transitions[-1].startswith("v1 InService (endpoint ")
    assert len(transitions) == len(set(transitions)) and "\x1b" not in deployed.stdout
    # And status lists the model from GET /models, and its deployments from GET /models/{name}
    assert listed.exit_code == 0, listed.output
    assert "cli-iris\tInService\tlive v1\tmodeldrop-cli-iris" in listed.stdout.splitlines()
    assert history.exit_code == 0, history.output
    assert history.stdout.startswith("v1\tInService\t")


def test_cli_deploy_refuses_an_invalid_model_name_before_uploading(stack: StackClient, iris: Path) -> None:
    # Given a name S3 would take but OnUpload would refuse
    # When it is deployed with the CLI
    result = CliRunner().invoke(
        app,
        [
            "deploy",
            str(iris),
            "--name",
            "Iris_Model",
            "--endpoint-url",
            str(stack.endpoint_url),
            "--stack-name",
            stack.stack_name,
        ],
    )
    # Then it fails naming the rule, and nothing was uploaded under that name
    assert result.exit_code == 1
    assert "cannot deploy: model name 'Iris_Model' in key 'models/Iris_Model/model.tar.gz' is invalid: " in (
        result.output
    )
    bucket = stack.outputs()["ModelsBucketName"]
    listing = stack.client("s3").list_objects_v2(Bucket=bucket, Prefix="models/Iris_Model/")
    assert listing.get("KeyCount", 0) == 0
