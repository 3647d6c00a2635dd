"""The REST front: API Gateway REST proxy events from the OpenAPI routes, API key, binary bodies."""

from __future__ import annotations

import json

import httpx
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.rest_front import routes_from_openapi
from modeldrop_local.stack import plan_stack

from tests.utils import REPO_ROOT


def _key(cloud: LocalCloud) -> str:
    assert cloud.stack is not None and cloud.stack.rest_api is not None
    value = cloud.stack.rest_api.api_key_value
    assert value
    return value


def test_missing_or_wrong_key_is_forbidden_like_api_gateway(cloud: LocalCloud) -> None:
    # When the route is called without the key, and with a wrong one
    missing = httpx.get(f"{cloud.api_url}/items/1")
    wrong = httpx.get(f"{cloud.api_url}/items/1", headers={"x-api-key": "wrong"})
    # Then API Gateway's 403 comes back
    assert missing.status_code == wrong.status_code == 403
    assert missing.json() == {"message": "Forbidden"}


def test_unknown_path_is_missing_authentication_token(cloud: LocalCloud) -> None:
    response = httpx.get(f"{cloud.api_url}/nowhere", headers={"x-api-key": _key(cloud)})
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_request_becomes_a_rest_proxy_event(cloud: LocalCloud) -> None:
    # When a GET with path and repeated query parameters is sent with the key
    response = httpx.get(
        f"{cloud.api_url}/items/abc?tag=a&tag=b&one=1", headers={"x-api-key": _key(cloud), "X-Custom": "v"}
    )
    # Then the function received the REST API proxy event (payload format 1.0)
    assert response.status_code == 200
    event = response.json()
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/abc"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["queryStringParameters"] == {"tag": "b", "one": "1"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "one": ["1"]}
    assert event["headers"]["X-Custom"] == "v"
    assert event["multiValueHeaders"]["X-Custom"] == ["v"]
    assert event["requestContext"]["stage"] == "test"
    assert event["requestContext"]["identity"]["apiKey"] == _key(cloud)
    assert event["requestContext"]["requestId"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_binary_media_types_travel_base64_and_come_back_as_bytes(cloud: LocalCloud) -> None:
    # Given bytes that are not valid UTF-8
    payload = bytes(range(256))
    # When they are POSTed as a binary media type, asking for a binary answer
    response = httpx.post(
        f"{cloud.api_url}/items/abc",
        content=payload,
        headers={
            "x-api-key": _key(cloud),
            "Content-Type": "application/octet-stream",
            "Accept": "application/octet-stream",
        },
    )
    # Then the function got them base64-encoded and its base64 answer is decoded back to the same bytes
    assert response.status_code == 201
    assert response.content == payload
    assert response.headers.get_list("X-Seen") == ["a", "b"]


def test_text_bodies_stay_text(cloud: LocalCloud) -> None:
    # When JSON is POSTed (not a binary media type) and JSON is accepted
    body = json.dumps({"a": 1})
    response = httpx.post(
        f"{cloud.api_url}/items/abc",
        content=body,
        headers={"x-api-key": _key(cloud), "Content-Type": "application/json", "Accept": "application/json"},
    )
    # Then the body reached the function as text and came back as is
    assert response.status_code == 201
    assert response.text == body


def test_function_failure_is_api_gateways_502(cloud: LocalCloud) -> None:
    # When the integration's function raises
    response = httpx.get(f"{cloud.api_url}/items/boom", headers={"x-api-key": _key(cloud)})
    # Then API Gateway's answer for a failed Lambda integration comes back
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_routes_of_the_real_api_come_from_its_openapi_document() -> None:
    # Given the project's template, whose API body is included from openapi/api.yaml
    resolver = plan_stack(REPO_ROOT / "template.yaml", stack_name="modeldrop")
    body = resolver.resolve(resolver.template["Resources"]["ModeldropApi"]["Properties"]["DefinitionBody"])
    # When the REST front reads its routes
    routes = routes_from_openapi(body)
    # Then each operation is routed to ApiFunction, behind the API key
    assert {(route.method, route.resource) for route in routes} == {
        ("GET", "/models"),
        ("GET", "/models/{name}"),
        ("POST", "/models/{name}/invocations"),
        ("POST", "/models/{name}/rollback"),
        ("POST", "/models/{name}/promote"),
        ("POST", "/models/{name}/abort"),
        ("POST", "/models/{name}/versions/{version}/approve"),
    }
    assert {route.function for route in routes} == {
        "arn:aws:lambda:us-east-1:123456789012:function:modeldrop-ApiFunction"
    }
    assert all(route.needs_api_key for route in routes)
    invocations = next(route for route in routes if route.resource.endswith("/invocations"))
    assert invocations.match("/models/iris/invocations") == {"name": "iris"}
    assert invocations.match("/models/iris/extra/invocations") is None
