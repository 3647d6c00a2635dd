"""Rollback on demand on the local cloud with the real template: `modeldrop rollback` restores the old
predictions while a client keeps invoking, and a version that is not kept is refused naming the kept ones."""

from __future__ import annotations

import json
import threading
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
MODEL = "rollback-iris"


def _deploy(stack: StackClient, tarball: Path) -> Any:
    version = stack.upload(tarball, MODEL)
    deployment = stack.follow(MODEL, version, timeout_s=120, progress=lambda line: None, poll_s=0.2)
    assert deployment is not None and str(deployment.status) == "InService", deployment
    return deployment


def _predict(stack: StackClient) -> httpx.Response:
    return stack.invoke(MODEL, json.dumps(iris_sample()).encode(), "application/json")


def _cli(stack: StackClient, *arguments: str) -> Any:
    return CliRunner().invoke(
        app, [*arguments, "--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
    )


@pytest.fixture(scope="module")
def two_versions(stack: StackClient, models_dir: Path) -> tuple[Path, Path]:
    """v1 the logistic iris model, then v2 a custom inference.py answering with names: v2 is live."""
    old = build_sklearn_iris(models_dir / "rollback-old")
    new = build_custom_inference(models_dir / "rollback-new")
    _deploy(stack, old)
    _deploy(stack, new)
    return old, new


def test_rollback_restores_the_old_predictions_without_a_failed_request(
    stack: StackClient, two_versions: tuple[Path, Path]
) -> None:
    # Given v2 live and a client invoking the model continuously
    old_tarball, new_tarball = two_versions
    old, new = predict_in_process(old_tarball, iris_sample()), predict_in_process(new_tarball, iris_sample())
    assert old != new
    assert _predict(stack).json() == new
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
        # When `modeldrop rollback` runs without a version
        result = _cli(stack, "rollback", MODEL)
        after = _predict(stack)
    finally:
        stop.set()
        thread.join(timeout=30)

    # Then it restored v1 through a deployment of kind Rollback, InService
    assert result.exit_code == 0, result.output
    assert f"{MODEL} serves v1 again" in result.stdout
    rollback = stack.records().list_deployments(MODEL, limit=1)[0]
    assert (str(rollback.kind), rollback.rollback_to, str(rollback.status)) == ("Rollback", 1, "InService")
    # And no request failed, and the answers switched from the new model back to the old one
    assert answers, "the client thread made no request"
    assert [status for status, _ in answers if status != 200] == []
    assert {json.dumps(body, sort_keys=True) for _, body in answers} == {
        json.dumps(old, sort_keys=True),
        json.dumps(new, sort_keys=True),
    }
    assert after.json() == old
    # And the REST API shows the rollback as the live deployment
    detail = httpx.get(
        f"{stack.outputs()['ApiUrl']}/models/{MODEL}", headers={"x-api-key": stack.api_key() or ""}
    ).json()
    assert detail["liveVersion"] == rollback.version
    assert (detail["lastDeployment"]["kind"], detail["lastDeployment"]["rollbackTo"]) == ("Rollback", 1)


def test_rollback_to_a_version_not_kept_is_refused_naming_the_kept_ones(
    stack: StackClient, two_versions: tuple[Path, Path]
) -> None:
    # Given the model's versions (v1 and v2 uploaded; one of them live)
    # When a rollback to a version that does not exist is asked for
    result = _cli(stack, "rollback", MODEL, "--version", "99")
    # Then it fails with the API's 409 reason, which lists the kept versions
    assert result.exit_code == 1
    assert "VersionNotKept" in result.output
    assert "kept versions you can roll back to: v" in result.output
