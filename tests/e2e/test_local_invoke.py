"""`modeldrop local invoke FUNCTION -e events/X.json` with every sample event, against a running local cloud."""

from __future__ import annotations

import json

import pytest
from modeldrop_local.cli import app
from modeldrop_local.state import LocalCloud
from typer.testing import CliRunner

from tests.utils import EVENTS_DIR

pytestmark = pytest.mark.e2e

FUNCTION_BY_PREFIX = {
    "api_": "ApiFunction",
    "deployment_status_": "DeploymentStatusFunction",
    "s3_": "OnUploadFunction",
}


def _function_for(event_name: str) -> str:
    return next(function for prefix, function in FUNCTION_BY_PREFIX.items() if event_name.startswith(prefix))


@pytest.mark.parametrize("event_file", sorted(path.name for path in EVENTS_DIR.glob("*.json")))
def test_local_invoke_runs_the_function_with_the_event(cloud: LocalCloud, event_file: str) -> None:
    # Given a sample event and the function it is meant for
    function = _function_for(event_file)
    # When `modeldrop local invoke` runs it against the running local cloud
    result = CliRunner().invoke(
        app, ["local", "invoke", function, "-e", str(EVENTS_DIR / event_file), "--endpoint-url", cloud.edge_url]
    )
    # Then the function's answer is printed as JSON; a failure comes in Lambda's error shape with exit 1
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    if result.exit_code == 0:
        if function == "ApiFunction":
            assert answer["statusCode"] in (200, 404)
        else:
            assert isinstance(answer, dict)
    else:
        assert result.exit_code == 1
        assert set(answer) == {"errorMessage", "errorType", "stackTrace"}
