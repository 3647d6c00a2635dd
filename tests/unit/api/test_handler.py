"""functions/api/app.py, as Lambda runs it: env-configured adapters, Powertools decorators, sample events."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.api.dependencies import default_dependencies

from tests.unit.api.support import TABLE_NAME, assert_error, put_deployment, put_model
from tests.utils import REPO_ROOT, load_event


@pytest.fixture
def handler_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("DEPLOYMENTS_TABLE", TABLE_NAME)
    default_dependencies.cache_clear()
    # Every function folder has an app.py: load this one under a name of its own.
    spec = importlib.util.spec_from_file_location(
        "modeldrop_api_app", REPO_ROOT / "functions" / "api" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    default_dependencies.cache_clear()


def test_handler_answers_get_model_from_the_table(
    handler_module: ModuleType, table: Any, lambda_context: LambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given iris in the DeploymentsTable the environment names
    put_model(table, "iris")
    put_deployment(table, "iris", 1)
    # When Lambda calls the handler with the sample event
    response = handler_module.lambda_handler(load_event("api_get_model"), lambda_context)
    # Then the model comes back
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["liveVersion"] == 1
    # And the request is counted in the embedded-metric line Powertools prints
    metric_lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [line.get("ModelQueries") for line in metric_lines] == [[1.0]]


def test_unexpected_failure_is_500_without_internals(
    handler_module: ModuleType, table: Any, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the environment names a table that does not exist
    monkeypatch.setenv("DEPLOYMENTS_TABLE", "no-such-table")
    default_dependencies.cache_clear()
    # When the models are listed
    response = handler_module.lambda_handler(load_event("api_list_models"), lambda_context)
    # Then 500 InternalError, with the request id and nothing from the exception
    body = assert_error(response, 500, "InternalError", None, "0b7f3a12-2c4d-4e5f-8a9b-1c2d3e4f5a6b")
    assert "no-such-table" not in response["body"]
    assert "ResourceNotFound" not in body["message"]
