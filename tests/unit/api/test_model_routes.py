"""GET /models and GET /models/{name}: status, live version, last deployment, history; errors."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from tests.unit.api.support import (
    assert_error,
    assert_matches_schema,
    json_body,
    put_deployment,
    put_model,
)
from tests.utils import load_event


def test_list_models_gives_status_live_version_and_last_deployment(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given iris serving v2 with v3 failing, and a model whose only upload was rejected
    put_model(table, "iris", status="InService", live_version=2)
    put_deployment(table, "iris", 1, status="Superseded")
    put_deployment(table, "iris", 2, status="InService")
    put_deployment(table, "iris", 3, status="Failed", reason="Container failed the /ping health check")
    put_deployment(table, "broken", 1, status="Rejected", reason="tarball member '../etc/passwd' escapes")
    # When the models are listed
    response = api.resolve(load_event("api_list_models"), lambda_context)
    # Then both appear, sorted, with the last deployment's status and reason
    assert response["statusCode"] == 200
    body = json_body(response)
    assert_matches_schema(body, "ModelList")
    assert [model["name"] for model in body["models"]] == ["broken", "iris"]
    broken, iris = body["models"]
    assert broken["status"] is None
    assert broken["liveVersion"] is None
    assert broken["lastDeployment"]["status"] == "Rejected"
    assert "escapes" in broken["lastDeployment"]["reason"]
    assert iris["status"] == "InService"
    assert iris["endpointName"] == "modeldrop-iris"
    assert iris["liveVersion"] == 2
    assert iris["lastDeployment"]["version"] == 3
    assert iris["lastDeployment"]["status"] == "Failed"
    assert iris["lastDeployment"]["reason"] == "Container failed the /ping health check"
    assert iris["lastDeployment"]["framework"] == "sklearn"
    assert iris["lastDeployment"]["memoryMb"] == 2048


def test_list_models_reads_every_page_of_the_table(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given more items than one 1 MB scan page holds
    padding = "x" * 50_000
    for index in range(30):
        name = f"model-{index:02d}"
        put_model(table, name)
        table.update_item(
            Key={"pk": f"MODEL#{name}", "sk": "MODEL"},
            UpdateExpression="SET padding = :p",
            ExpressionAttributeValues={":p": padding},
        )
    # When the models are listed
    body = json_body(api.resolve(load_event("api_list_models"), lambda_context))
    # Then none is missing
    assert [model["name"] for model in body["models"]] == [f"model-{index:02d}" for index in range(30)]


def test_list_models_when_there_are_none(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given an empty table / When listed / Then an empty list
    assert json_body(api.resolve(load_event("api_list_models"), lambda_context)) == {"models": []}


def test_get_model_gives_the_last_ten_deployments_newest_first(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given twelve deployments of iris, the last one timed out
    put_model(table, "iris", status="InService", live_version=11)
    for version in range(1, 12):
        put_deployment(table, "iris", version, status="Superseded" if version < 11 else "InService")
    put_deployment(table, "iris", 12, status="TimedOut", reason="Endpoint not InService after 1800 s")
    # When iris is described
    response = api.resolve(load_event("api_get_model"), lambda_context)
    # Then the status, live version, last deployment with its reason, and ten newest deployments
    assert response["statusCode"] == 200
    body = json_body(response)
    assert_matches_schema(body, "ModelDetail")
    assert body["name"] == "iris"
    assert body["status"] == "InService"
    assert body["liveVersion"] == 11
    assert body["lastDeployment"]["status"] == "TimedOut"
    assert body["lastDeployment"]["reason"] == "Endpoint not InService after 1800 s"
    assert [entry["version"] for entry in body["history"]] == list(range(12, 2, -1))
    assert body["history"][0]["deploymentId"] == "iris-v12"
    assert body["history"][0]["objectVersion"] == "obj-12"


def test_get_model_with_only_a_rejected_upload_shows_the_reason(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given iris whose only upload was rejected
    put_deployment(table, "iris", 1, status="Rejected", reason="modeldrop.json: unknown key 'memory'")
    # When described
    body = json_body(api.resolve(load_event("api_get_model"), lambda_context))
    # Then it has no endpoint, and the rejection reason is there
    assert body["status"] is None
    assert body["lastDeployment"]["reason"] == "modeldrop.json: unknown key 'memory'"
    assert len(body["history"]) == 1


def test_get_unknown_model_is_404(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given another model exists, but not the one asked for
    put_model(table, "iris")
    # When the unknown model is described
    response = api.resolve(load_event("api_get_unknown_model"), lambda_context)
    # Then 404 ModelNotFound
    assert_error(response, 404, "ModelNotFound", "no-such-model", "7e9a1b2c-3d4e-4f5a-9b6c-7d8e9f0a1b2c")


def test_get_model_with_an_invalid_name_is_400(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a name ending with a hyphen
    event = load_event("api_get_model")
    event["path"] = "/models/iris-"
    event["pathParameters"] = {"name": "iris-"}
    # When described / Then 400 InvalidModelName
    assert_error(
        api.resolve(event, lambda_context),
        400,
        "InvalidModelName",
        "iris-",
        "5d2e8f14-9a3b-4c6d-8e7f-0a1b2c3d4e5f",
    )


def test_unknown_route_is_404_in_the_error_shape(
    api: APIGatewayRestResolver, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a DELETE, which the API does not offer
    event = load_event("api_get_model")
    event["httpMethod"] = "DELETE"
    # When sent / Then 404 RouteNotFound
    body = assert_error(
        api.resolve(event, lambda_context), 404, "RouteNotFound", None, "5d2e8f14-9a3b-4c6d-8e7f-0a1b2c3d4e5f"
    )
    assert "DELETE /models/iris" in body["message"]
