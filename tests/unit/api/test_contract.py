"""openapi/api.yaml, the Powertools routes and template.yaml describe one API and cannot drift apart."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from modeldrop.api import errors
from modeldrop.api.dependencies import ApiDependencies
from modeldrop.api.media_types import BINARY_MEDIA_TYPES, is_binary_media_type
from modeldrop.api.routes import ROUTES, create_resolver
from modeldrop.naming import MODEL_NAME_PATTERN
from modeldrop.records import DeploymentStatus
from openapi_spec_validator import validate
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from tests.unit.api.support import load_openapi_raw, load_template, resolved_openapi

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _openapi_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _conditions_used(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["Fn::If"][0]} if "Fn::If" in node else set()
        return found.union(*(_conditions_used(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_conditions_used(item) for item in node))
    return set()


def _powertools_style(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


@pytest.mark.parametrize("iam", [False, True], ids=["api-key", "iam"])
def test_openapi_document_is_valid_in_both_auth_modes(iam: bool) -> None:
    # Given the document as CloudFormation resolves it for one auth mode
    document = resolved_openapi(iam=iam)
    # When it is validated / Then it is a valid OpenAPI 3.0 document
    validate(document)
    # And every operation asks for that mode's security scheme
    scheme = "sigv4" if iam else "api_key"
    assert all(operation["security"] == [{scheme: []}] for operation in _operations(document))


def test_openapi_routes_match_the_resolvers_routes() -> None:
    # Given the routes in the three places that name them
    documented = {(method, _powertools_style(path)) for method, path in _openapi_routes(load_openapi_raw())}
    resolver = create_resolver(lambda: ApiDependencies(records=None, runtime=None))  # type: ignore[arg-type]
    registered = {
        (route.method, route.path)
        for route in resolver._static_routes + resolver._dynamic_routes  # no public accessor
    }
    # Then they are the same set
    assert documented == set(ROUTES) == registered


def test_every_operation_proxies_to_the_api_function() -> None:
    # Given the raw document (before CloudFormation resolves it)
    for operation in _operations(load_openapi_raw()):
        integration = operation["x-amazon-apigateway-integration"]
        # Then each operation is a Lambda proxy integration on ApiFunction
        assert integration["type"] == "aws_proxy"
        assert integration["httpMethod"] == "POST"
        assert integration["uri"] == {
            "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31"
            "/functions/${ApiFunction.Arn}/invocations"
        }


def test_binary_media_types_agree_and_leave_json_as_text() -> None:
    # Given the document's binary media types
    document = load_openapi_raw()
    # Then they are the function's, and JSON or CSV are not among them
    assert tuple(document["x-amazon-apigateway-binary-media-types"]) == BINARY_MEDIA_TYPES
    assert document["x-amazon-apigateway-api-key-source"] == "HEADER"
    assert "*/*" not in BINARY_MEDIA_TYPES
    assert not is_binary_media_type("application/json; charset=utf-8")
    assert not is_binary_media_type("text/csv")
    assert is_binary_media_type("image/png")
    assert is_binary_media_type("Application/X-NPY")


def test_every_status_the_function_can_answer_is_documented_for_invocations() -> None:
    # Given every error class of the API (RouteNotFound is answered for paths outside the document;
    # the rollback's own errors are held to the rollback route below)
    statuses = {
        int(error.status)
        for error in vars(errors).values()
        if isinstance(error, type)
        and issubclass(error, errors.ApiError)
        and error not in (errors.RouteNotFound, *_ROLLBACK_ONLY_ERRORS, *_APPROVAL_ONLY_ERRORS)
    }
    # Then each status is a documented response of POST /models/{name}/invocations
    documented = load_openapi_raw()["paths"]["/models/{name}/invocations"]["post"]["responses"]
    assert statuses <= {int(status) for status in documented}
    assert {"Retry-After"} == set(resolved_openapi()["components"]["responses"]["TooManyRequests"]["headers"])


_ROLLBACK_ONLY_ERRORS = (errors.RollbackNotPossible, errors.InvalidRequest, errors.NoBakeInProgress)
_APPROVAL_ONLY_ERRORS = (errors.ApprovalNotPossible, errors.VersionNotFound)


def test_every_status_the_rollback_can_answer_is_documented_for_it() -> None:
    # Given the errors POST /models/{name}/rollback raises (name, body, model, versions, wiring)
    statuses = {
        int(error.status)
        for error in (
            errors.InvalidModelName,
            errors.InvalidRequest,
            errors.ModelNotFound,
            errors.RollbackNotPossible,
            errors.ServiceUnavailable,
            errors.InternalError,
        )
    }
    # Then each is a documented response of the route, and success is 202 (the switch runs on)
    documented = load_openapi_raw()["paths"]["/models/{name}/rollback"]["post"]["responses"]
    assert statuses | {202} <= {int(status) for status in documented}


@pytest.mark.parametrize("route", ["/models/{name}/promote", "/models/{name}/abort"])
def test_every_status_promote_and_abort_can_answer_is_documented_for_them(route: str) -> None:
    # Given the errors a person's end of a bake raises (name, model, no bake, wiring)
    statuses = {
        int(error.status)
        for error in (
            errors.InvalidModelName,
            errors.ModelNotFound,
            errors.NoBakeInProgress,
            errors.ServiceUnavailable,
            errors.InternalError,
        )
    }
    # Then each is a documented response, and success is 202 (the state machine carries it out)
    documented = load_openapi_raw()["paths"][route]["post"]["responses"]
    assert statuses | {202} <= {int(status) for status in documented}


def test_every_status_the_approval_can_answer_is_documented_for_it() -> None:
    # Given the errors POST /models/{name}/versions/{version}/approve raises
    statuses = {
        int(error.status)
        for error in (
            errors.InvalidModelName,
            errors.InvalidRequest,
            errors.ModelNotFound,
            errors.VersionNotFound,
            errors.ApprovalNotPossible,
            errors.ServiceUnavailable,
            errors.InternalError,
        )
    }
    # Then each is a documented response of the route, and success is 202 (the deployment follows)
    route = load_openapi_raw()["paths"]["/models/{name}/versions/{version}/approve"]["post"]
    assert statuses | {202} <= {int(status) for status in route["responses"]}


def test_template_wires_the_api_to_this_document_and_function() -> None:
    # Given template.yaml
    template = load_template()
    resources = template["Resources"]
    api = resources["ModeldropApi"]
    function = resources["ApiFunction"]
    # Then the API's definition is this document, included by AWS::Include
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["DefinitionBody"] == {
        "Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "openapi/api.yaml"}}
    }
    # And the function is the one the routes live in, with one event per documented route
    assert function["Type"] == "AWS::Serverless::Function"
    assert function["Properties"]["CodeUri"].rstrip("/") == "functions/api"
    assert function["Properties"]["Handler"] == "app.lambda_handler"
    events = function["Properties"]["Events"].values()
    assert all(event["Properties"]["RestApiId"] == {"Ref": "ModeldropApi"} for event in events)
    template_routes = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"]) for event in events
    }
    assert template_routes == _openapi_routes(load_openapi_raw())
    # And every condition the document uses is defined by the template
    assert _conditions_used(load_openapi_raw()) <= set(template.get("Conditions", {}))
    assert {"ApiUrl", "ApiKeyId"} <= set(template["Outputs"])


def test_sam_translates_the_api_with_one_permission_per_route_and_the_document_untouched(
    aws_env: None,
) -> None:
    # Given template.yaml with code locations as `sam package` would leave them
    template = load_template()
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://packaged-artifacts/key"
    # When the SAM transform runs on it (what CloudFormation does on deploy)
    translator = Translator(_ManagedPolicies(), Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    resources = translator.translate(template, {})["Resources"]
    # Then API Gateway may invoke the function on exactly the documented routes
    permitted = {
        resource["Properties"]["SourceArn"]["Fn::Sub"][0].rsplit("}/", 1)[1]
        for resource in resources.values()
        if resource["Type"] == "AWS::Lambda::Permission"
        and resource["Properties"]["FunctionName"] == {"Ref": "ApiFunction"}
    }
    # (SAM writes each path parameter as a wildcard)
    expected = {
        re.sub(r"\{[^}]+\}", "*", f"{method}{path}") for method, path in _openapi_routes(load_openapi_raw())
    }
    assert permitted == {route.replace("/", "/", 1) for route in expected}
    # And the REST API's body is still the included document (SAM did not rewrite it)
    rest_api = resources["ModeldropApi"]
    assert rest_api["Type"] == "AWS::ApiGateway::RestApi"
    assert rest_api["Properties"]["Body"] == {
        "Fn::Transform": {"Name": "AWS::Include", "Parameters": {"Location": "openapi/api.yaml"}}
    }
    # And the key, usage plan and its key exist only in API-key mode
    keyed = {
        name: resource
        for name, resource in resources.items()
        if resource["Type"].startswith("AWS::ApiGateway::")
    }
    assert {keyed[name]["Type"] for name in keyed if keyed[name].get("Condition") == "UseApiKey"} == {
        "AWS::ApiGateway::ApiKey",
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey",
    }


class _ManagedPolicies(dict[str, str]):
    """Resolves AWS managed policy names offline (the translator would otherwise ask IAM)."""

    def __missing__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/{name}"

    def get(self, name: str, default: Any = None) -> str:
        return self[name]

    def load(self) -> dict[str, str]:
        return self


def test_document_uses_the_pipelines_model_name_rule_and_statuses() -> None:
    # Given the document's model name parameter and deployment statuses
    components = load_openapi_raw()["components"]
    # Then they are the pipeline's own
    assert components["parameters"]["ModelName"]["schema"]["pattern"] == MODEL_NAME_PATTERN.pattern
    statuses = components["schemas"]["DeploymentSummary"]["properties"]["status"]["enum"]
    assert statuses == [status.value for status in DeploymentStatus]
