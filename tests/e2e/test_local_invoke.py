"""`modeldrop local invoke FUNCTION -e events/X.json` with every sample event, on a running local cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from modeldrop_local.cli import app
from modeldrop_local.cloud import LocalCloud
from typer.testing import CliRunner

from tests.utils import EVENTS_DIR, REPO_ROOT

pytestmark = pytest.mark.e2e

FUNCTION_BY_PREFIX = {
    "api_": "ApiFunction",
    "deployment_status_": "DeploymentStatusFunction",
    "model_package_": "ModelApprovalFunction",
    "s3_": "OnUploadFunction",
    "shadow_": "ShadowFunction",
}


def _function_for(event_name: str) -> str:
    return next(function for prefix, function in FUNCTION_BY_PREFIX.items() if event_name.startswith(prefix))


# On a fresh local cloud (no model uploaded), what each sample event gets from its function:
# (exit code, API status code or the outcome/error type the function reports).
EXPECTED = {
    "api_get_model.json": (0, 404),
    "api_get_unknown_model.json": (0, 404),
    "api_invoke.json": (0, 404),
    "api_invoke_binary.json": (0, 404),
    "api_list_models.json": (0, 200),
    "api_rollback.json": (0, 404),
    "api_approve_version.json": (0, 404),
    "api_promote.json": (0, 404),
    "api_abort.json": (0, 404),
    # The status function refuses payloads about a deployment it has no record of.
    "deployment_status_error.json": (1, "UnknownDeployment"),
    "deployment_status_failed.json": (1, "UnknownDeployment"),
    "deployment_status_start.json": (1, "UnknownDeployment"),
    "deployment_status_succeeded.json": (1, "UnknownDeployment"),
    "deployment_status_timed_out.json": (1, "UnknownDeployment"),
    "deployment_status_bake_judge.json": (1, "UnknownDeployment"),
    # A state change of a package no deployment has is ignored.
    "model_package_approved.json": (0, "ignored"),
    "model_package_rejected.json": (0, "ignored"),
    # A key naming no model is recorded Rejected; the model event names an object version not in the bucket.
    "s3_put_bad_key.json": (0, "Rejected"),
    "s3_put_model.json": (1, "ClientError"),
    # The copy names a candidate endpoint that does not exist: nothing to compare, nothing recorded.
    "shadow_copy.json": (0, "ModelNotInService"),
}


def test_every_sample_event_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(path.name for path in EVENTS_DIR.glob("*.json"))


@pytest.mark.parametrize("event_file", sorted(EXPECTED))
def test_local_invoke_runs_the_function_with_the_event(cloud: LocalCloud, event_file: str) -> None:
    # Given a sample event and the function it is meant for
    function = _function_for(event_file)
    # When `modeldrop local invoke` runs it against the running local cloud
    result = CliRunner().invoke(
        app,
        ["local", "invoke", function, "-e", str(EVENTS_DIR / event_file), "--endpoint-url", cloud.edge_url],
    )
    # Then the function's answer is printed as JSON, a failure in Lambda's error shape with exit code 1
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    exit_code, outcome = EXPECTED[event_file]
    assert result.exit_code == exit_code, answer
    if exit_code == 1:
        assert set(answer) == {"errorMessage", "errorType", "stackTrace"}
        assert answer["errorType"] == outcome
    elif function == "ApiFunction":
        assert answer["statusCode"] == outcome
    elif function == "ModelApprovalFunction":
        assert answer["action"] == outcome
    elif function == "ShadowFunction":
        assert (answer["answered"], answer["error"]) == (False, outcome)
    else:
        assert [item["status"] for item in answer["outcomes"]] == [outcome]


def test_local_invoke_without_a_running_cloud_starts_a_transient_one() -> None:
    # When no endpoint is given, the command (run as users run it) starts a cloud of its own and stops it
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(REPO_ROOT / part) for part in ("local", "layers/modeldrop"))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "modeldrop_local.cli", "local", "invoke", "ApiFunction"),
            *("-e", str(EVENTS_DIR / "api_list_models.json")),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then the function answered from a fresh cloud (no models yet)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["models"] == []
