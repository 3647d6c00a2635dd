"""Upload → OnUpload → SageMaker → Step Functions → REST, on the local cloud with the real template."""

from __future__ import annotations

import io
import json
import re
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from modeldrop_local.cli import StackClient, app
from modeldrop_local.example_models import (
    build_custom_inference,
    build_sklearn_iris,
    iris_sample,
    predict_in_process,
)
from typer.testing import CliRunner

pytestmark = pytest.mark.e2e
MODEL = "iris"


def _deploy(stack: StackClient, tarball: Path, name: str = MODEL) -> Any:
    version = stack.upload(tarball, name)
    return stack.follow(name, version, timeout_s=120, progress=lambda line: None, poll_s=0.2)


def _predict(stack: StackClient, name: str = MODEL) -> httpx.Response:
    return stack.invoke(name, json.dumps(iris_sample()).encode(), "application/json")


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
    answers: list[tuple[int, Any]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            response = _predict(stack)
            answers.append(
                (response.status_code, response.json() if response.status_code == 200 else response.text)
            )

    thread = threading.Thread(target=client)
    thread.start()
    try:
        # When a new version (a custom inference.py answering with names) is uploaded and goes InService
        custom = build_custom_inference(models_dir / "custom")
        deployment = _deploy(stack, custom)
        assert deployment is not None and str(deployment.status) == "InService", deployment
        after = _predict(stack)
    finally:
        stop.set()
        thread.join(timeout=30)
    # Then no request failed during the update, and the answers switched from the old model to the new one
    old, new = predict_in_process(iris, iris_sample()), predict_in_process(custom, iris_sample())
    assert old != new
    assert answers, "the client thread made no request"
    assert [status for status, _ in answers if status != 200] == []
    # (both answers were seen, so the client really ran across the switch)
    assert {json.dumps(body, sort_keys=True) for _, body in answers} == {
        json.dumps(old, sort_keys=True),
        json.dumps(new, sort_keys=True),
    }
    assert after.json() == new
