"""Rollback on demand on the local cloud with the real template: `modeldrop rollback` restores the old
predictions while a client keeps invoking, and a version that is not kept is refused naming the kept ones."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from modeldrop.api.models import DeploymentSummary
from modeldrop.preflight import SERVERLESS_TOTAL_CONCURRENCY
from modeldrop_local.cli import app
from modeldrop_local.example_models import (
    build_custom_inference,
    build_sklearn_iris,
    iris_sample,
    predict_in_process,
)
from modeldrop_local.service_quotas import reset_quotas, set_quota
from modeldrop_local.stack_client import StackClient
from typer.testing import CliRunner

from tests.e2e.clients import assert_switched_without_a_failed_request, deploy, invoking_continuously, predict

pytestmark = pytest.mark.e2e
MODEL = "rollback-iris"
# Every model of this module together stays within the default serverless concurrency quota (10).
SMALL = {"max_concurrency": 2}


def _deploy(stack: StackClient, tarball: Path) -> DeploymentSummary:
    deployment = deploy(stack, tarball, MODEL)
    assert deployment.status == "InService", deployment
    return deployment


def _predict(stack: StackClient) -> httpx.Response:
    return predict(stack, MODEL)


def _cli(stack: StackClient, *arguments: str) -> Any:
    return CliRunner().invoke(
        app, [*arguments, "--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
    )


@pytest.fixture(scope="module")
def two_versions(stack: StackClient, models_dir: Path) -> tuple[Path, Path]:
    """v1 the logistic iris model, then v2 a custom inference.py answering with names: v2 is live."""
    old = build_sklearn_iris(models_dir / "rollback-old", config=SMALL)
    new = build_custom_inference(models_dir / "rollback-new", config=SMALL)
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
    with invoking_continuously(stack, MODEL) as answers:
        # When `modeldrop rollback` runs without a version
        result = _cli(stack, "rollback", MODEL)
        after = _predict(stack)

    # Then it restored v1 through a deployment of kind Rollback, InService
    assert result.exit_code == 0, result.output
    assert f"{MODEL} serves v1 again" in result.stdout
    rollback = stack.records().list_deployments(MODEL, limit=1)[0]
    assert (str(rollback.kind), rollback.rollback_to, str(rollback.status)) == ("Rollback", 1, "InService")
    # And no request failed, and the answers switched from the new model back to the old one
    assert_switched_without_a_failed_request(answers, new, old)
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


# ---------------------------------------------------------------- smoke test before live


def _smoke_test(expected_first_class: int) -> dict[str, Any]:
    """A smoke test that wants a plain list of classes, the first one known (what the iris model answers)."""
    return {"body": iris_sample(), "json_path": "$[0]", "equals": expected_first_class}


def _with_smoke_test(expected_first_class: int) -> dict[str, Any]:
    return SMALL | {"smoke_test": _smoke_test(expected_first_class)}


def test_a_failing_smoke_test_rolls_back_and_leaves_the_old_version_live(
    stack: StackClient, models_dir: Path
) -> None:
    # Given v1 of a model live, its smoke test passed (it answers a list of classes)
    name = "smoke-iris"
    good = build_sklearn_iris(models_dir / "smoke-good", config=_with_smoke_test(0))
    expected = predict_in_process(good, iris_sample())
    assert expected[0] == 0
    first = deploy(stack, good, name)
    assert str(first.status) == "InService", first
    # When v2 answers in another shape (names), so the same smoke test fails
    bad = build_custom_inference(models_dir / "smoke-bad", config=_with_smoke_test(0))
    second = deploy(stack, bad, name)
    # Then v2 is Failed with the smoke test's reason, and an automatic rollback to v1 is live
    assert str(second.status) == "Failed", second
    assert second.reason.startswith("smoke test failed: $[0] not found in the answer"), second.reason
    assert "rolled back to v1" in second.reason
    records = stack.records()
    rollback = _wait_final(records, name, 3)
    assert (str(rollback.kind), rollback.rollback_to, rollback.rolled_back_from) == ("Rollback", 1, 2)
    assert str(rollback.status) == "InService", rollback
    model = records.get_model(name)
    assert model.live_version == 3 and model.status == "InService"
    # And the old version answers again
    response = stack.invoke(name, json.dumps(iris_sample()).encode(), "application/json")
    assert response.status_code == 200 and response.json() == expected


def test_a_first_version_failing_its_smoke_test_stays_but_is_unhealthy(
    stack: StackClient, models_dir: Path
) -> None:
    # Given no earlier version, and a first upload whose smoke test fails (it answers names, not a list)
    name = "smoke-first"
    bad = build_custom_inference(models_dir / "smoke-first", config=_with_smoke_test(0))
    # When it is deployed
    deployment = deploy(stack, bad, name)
    # Then it is Unhealthy with the smoke test's reason, not made live, and the API refuses to route to it
    assert str(deployment.status) == "Unhealthy", deployment
    assert "no previous version to roll back to" in deployment.reason
    model = stack.records().get_model(name)
    assert model.status == "Unhealthy" and model.live_version is None
    response = stack.invoke(name, json.dumps(iris_sample()).encode(), "application/json")
    assert response.status_code == 503
    assert "Unhealthy" in response.json()["message"]


def _wait_final(records: Any, name: str, version: int, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deployment = records.get_deployment(name, version)
        if deployment is not None and str(deployment.status) not in {"Queued", "Deploying"}:
            return deployment
        time.sleep(0.2)
    raise AssertionError(f"v{version} of {name} not final after {timeout_s} s")


# ---------------------------------------------------------------- preflight of account limits


def test_a_deployment_beyond_the_serverless_concurrency_quota_is_rejected_naming_it(
    stack: StackClient, models_dir: Path
) -> None:
    # Given the account's total serverless concurrency quota lowered to what the module's models use
    if stack.endpoint_url is None:
        pytest.skip("the quota override is the local cloud's")
    records = stack.records()
    sagemaker = stack.client("sagemaker")
    used = sum(
        variant["ServerlessConfig"]["MaxConcurrency"]
        for endpoint in sagemaker.list_endpoints()["Endpoints"]
        for variant in sagemaker.describe_endpoint_config(
            EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint["EndpointName"])[
                "EndpointConfigName"
            ]
        )["ProductionVariants"]
    )
    set_quota(SERVERLESS_TOTAL_CONCURRENCY.code, used + 1)
    try:
        # When a new model asking for max_concurrency 2 is uploaded
        tarball = build_sklearn_iris(models_dir / "quota", config=SMALL)
        deployment = stack.follow(
            "quota-iris", stack.upload(tarball, "quota-iris"), timeout_s=60, progress=lambda line: None
        )
    finally:
        reset_quotas()
    # Then it is Rejected before anything reached SageMaker, naming the quota, its value and the need
    assert str(deployment.status) == "Rejected", deployment
    assert deployment.reason.startswith(
        "account quota 'Maximum total concurrency that can be allocated across all serverless endpoints' "
        f"(sagemaker L-96300102) is {used + 1} (applied value); this deployment needs {used + 2}"
    ), deployment.reason
    assert records.get_model("quota-iris") is None  # no endpoint was created
