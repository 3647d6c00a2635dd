"""Create template.yaml's resources in the local cloud, as read by the template reader (template.py).

Everything comes from the template: the bucket, tables, roles, state machine (DefinitionUri with its
DefinitionSubstitutions), the API key, the functions, the S3 → Lambda notifications (read and
recorded by `s3_notifications.py`) and the functions' EventBridge rules (`eventbridge.py`). The
resources are created with plain boto3 clients: through the edge, or moto's in-process mock in the
unit tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from modeldrop_local import eventbridge, s3_notifications
from modeldrop_local.template import (
    ACCOUNT_ID,
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
    IGNORED_TYPES,
    NO_VALUE,
    SUPPORTED_TYPES,
    FunctionSpec,
    Resolver,
    TemplateError,
    check_resource_types,
    function_specs,
    load_template,
    plan_stack,
)

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_REGION",
    "DEFAULT_STACK_NAME",
    "IGNORED_TYPES",
    "NO_VALUE",
    "SUPPORTED_TYPES",
    "FunctionSpec",
    "LocalStack",
    "Resolver",
    "TemplateError",
    "build_stack",
    "check_resource_types",
    "create_resources",
    "function_specs",
    "load_template",
    "plan_stack",
    "state_machine_definition",
]
_ALREADY_EXISTS = {
    "BucketAlreadyOwnedByYou",
    "BucketAlreadyExists",
    "ResourceInUseException",
    "EntityAlreadyExists",
    "StateMachineAlreadyExists",
    "ResourceAlreadyExistsException",
}


# What the local cloud makes of each resource type (resources are created in _create_resource).


@dataclass(frozen=True)
class RestApiSpec:
    """The REST API a template declares: its OpenAPI body (intrinsics resolved), stage and key."""

    logical_id: str
    stage: str
    definition: dict[str, Any]
    api_key_value: str | None


@dataclass
class LocalStack:
    """The template's resources as they exist in the local cloud."""

    name: str
    region: str
    template_path: Path
    resolver: Resolver
    functions: dict[str, FunctionSpec]
    notifications: list[s3_notifications.S3Notification]
    # The functions' EventBridge rules (eventbridge.py): events the local cloud publishes reach them.
    event_rules: list[eventbridge.EventRule]
    rest_api: RestApiSpec | None
    outputs: dict[str, str]

    def function(self, name_or_arn: str) -> FunctionSpec:
        """A function by name, ARN (with or without qualifier) or logical id."""
        name = name_or_arn
        if name.startswith("arn:"):
            name = name.split(":")[6]
        for spec in self.functions.values():
            if name in (spec.name, spec.logical_id):
                return spec
        raise KeyError(f"Function not found: {name_or_arn}")


def _included(resolver: Resolver, resource: dict[str, Any]) -> bool:
    condition = resource.get("Condition")
    return condition is None or resolver.condition(condition)


def build_stack(
    template_path: Path,
    *,
    edge_url: str | None,
    api_url: str = "",
    stack_name: str = DEFAULT_STACK_NAME,
    region: str = DEFAULT_REGION,
    parameters: Mapping[str, str] | None = None,
    create: bool = True,
) -> LocalStack:
    """Plan the stack and create its resources via the edge (create=False: only read the template).

    Creating is idempotent: resources a restored state already holds are left as they are.
    """
    template_path = template_path.resolve()
    resolver = plan_stack(template_path, stack_name=stack_name, region=region, parameters=parameters)
    template = resolver.template
    resources = {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if _included(resolver, resource)
    }
    clients = _Clients(edge_url, region)
    api_key_value: str | None = None
    # API keys get their id from API Gateway (moto), so they are created before anything resolves them.
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::ApiGateway::ApiKey":
            properties = resolver.resolve(resource.get("Properties", {}))
            key_name = properties.get("Name", f"{stack_name}-{logical_id}")
            key = clients.find_or_create_api_key(key_name, properties, create)
            resolver.refs[logical_id] = key["id"]
            api_key_value = key["value"]
    if create:
        _create_resources(clients, resolver, resources, template_path.parent)
    functions = function_specs(resolver, template_path, included=set(resources))
    notifications = [
        notification
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for notification in s3_notifications.function_notifications(resolver, logical_id, resource)
    ]
    event_rules = [
        rule
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for rule in eventbridge.function_rules(resolver, logical_id, resource)
    ]
    if create:
        s3_notifications.record_on_buckets(clients("s3"), notifications)
        eventbridge.record_rules(clients("events"), event_rules)
    rest_api = _rest_api(resolver, resources, api_key_value)
    outputs = _outputs(resolver, rest_api, api_url)
    return LocalStack(
        name=stack_name,
        region=region,
        template_path=template_path,
        resolver=resolver,
        functions=functions,
        notifications=notifications,
        event_rules=event_rules,
        rest_api=rest_api,
        outputs=outputs,
    )


def create_resources(
    resolver: Resolver,
    template_path: Path,
    logical_ids: Iterable[str],
    *,
    edge_url: str | None = None,
    region: str = DEFAULT_REGION,
) -> None:
    """Create these resources of a planned stack as build_stack does (edge_url None: boto3's own
    endpoints, e.g. moto's mock in the unit tests, which need the tables, bucket and state machine)."""
    resources = {logical_id: resolver.template["Resources"][logical_id] for logical_id in logical_ids}
    _create_resources(_Clients(edge_url, region), resolver, resources, template_path.resolve().parent)


def _create_resources(
    clients: _Clients, resolver: Resolver, resources: dict[str, Any], base_dir: Path
) -> None:
    for logical_id, resource in resources.items():
        try:
            _create_resource(clients, resolver, logical_id, resource, base_dir)
        except ClientError as error:
            # Restored state holds it already: a restart creates only what is missing.
            if error.response["Error"]["Code"] not in _ALREADY_EXISTS:
                raise


class _Clients:
    """boto3 clients of the edge (None: boto3's own endpoints, which moto's mock serves in tests)."""

    def __init__(self, edge_url: str | None, region: str) -> None:
        self.edge_url = edge_url
        self.region = region
        self._cache: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = boto3.client(  # type: ignore[call-overload]
                service,
                endpoint_url=self.edge_url,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return self._cache[service]

    def find_or_create_api_key(self, name: str, properties: dict[str, Any], create: bool) -> dict[str, Any]:
        """The key named `name` (a restored state keeps its id and value), else a new one."""
        apigateway = self("apigateway")
        for key in apigateway.get_api_keys(includeValues=True).get("items", []):
            if key["name"] == name:
                return dict(key)
        if not create:
            raise TemplateError(f"API key {name} does not exist (and create=False)")
        return dict(
            apigateway.create_api_key(
                name=name,
                description=str(properties.get("Description", "")),
                enabled=bool(properties.get("Enabled", True)),
            )
        )


def _create_resource(
    clients: _Clients, resolver: Resolver, logical_id: str, resource: dict[str, Any], base_dir: Path
) -> None:
    kind = resource["Type"]
    name = resolver.refs[logical_id]
    if kind == "AWS::S3::Bucket":
        properties = resolver.resolve(resource.get("Properties", {}))
        s3 = clients("s3")
        s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in properties:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"]
            )
    elif kind == "AWS::DynamoDB::Table":
        properties = resolver.resolve(resource.get("Properties", {}))
        dynamodb = clients("dynamodb")
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        if arguments["BillingMode"] == "PROVISIONED":
            arguments["ProvisionedThroughput"] = properties.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index_kind in properties:
                arguments[index_kind] = properties[index_kind]
        dynamodb.create_table(**arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"],
                    "Enabled": bool(ttl["Enabled"]),
                },
            )
    elif kind == "AWS::IAM::Role":
        properties = resolver.resolve(resource.get("Properties", {}))
        clients("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(properties["AssumeRolePolicyDocument"])
        )
    elif kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
        # SAM creates an execution role per function and state machine.
        service = "lambda" if kind == "AWS::Serverless::Function" else "states"
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role_name = resolver.refs[f"{logical_id}Role"]
        try:
            clients("iam").create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        except ClientError as error:
            # A restored state keeps IAM but not Step Functions: the state machine is still to create.
            if error.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
        if kind == "AWS::Serverless::StateMachine":
            clients("stepfunctions").create_state_machine(
                name=resolver.attributes[(logical_id, "Name")],
                definition=state_machine_definition(resolver, resource, base_dir),
                roleArn=resolver.attributes[(f"{logical_id}Role", "Arn")],
                type=str(resource.get("Properties", {}).get("Type", "STANDARD")),
            )
    elif kind == "AWS::Logs::LogGroup":
        clients("logs").create_log_group(logGroupName=name)


def state_machine_definition(resolver: Resolver, resource: dict[str, Any], base_dir: Path) -> str:
    """The ASL document: DefinitionUri's file (or Definition) with DefinitionSubstitutions applied."""
    properties = resource.get("Properties", {})
    if "Definition" in properties:
        text = json.dumps(resolver.resolve(properties["Definition"]))
    else:
        text = (base_dir / properties["DefinitionUri"]).read_text()
    for key, value in resolver.resolve(properties.get("DefinitionSubstitutions", {})).items():
        text = text.replace("${" + key + "}", str(value))
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"state machine definition is not valid JSON after substitutions: {error}"
        ) from error
    return text


def _rest_api(resolver: Resolver, resources: dict[str, Any], api_key_value: str | None) -> RestApiSpec | None:
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Api":
            continue
        properties = resource.get("Properties", {})
        body = properties.get("DefinitionBody")
        if body is None:
            raise TemplateError(
                f"{logical_id}: the local REST front needs a DefinitionBody (or AWS::Include)"
            )
        return RestApiSpec(
            logical_id=logical_id,
            stage=str(properties.get("StageName", "Prod")),
            definition=resolver.resolve(body),
            api_key_value=api_key_value,
        )
    return None


def _outputs(resolver: Resolver, rest_api: RestApiSpec | None, api_url: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for name, output in resolver.template.get("Outputs", {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        value = output["Value"]
        # An execute-api URL means the REST API: locally that is the REST front, at the same stage.
        text = json.dumps(value)
        if rest_api is not None and api_url and "execute-api" in text:
            outputs[name] = f"{api_url.rstrip('/')}/{rest_api.stage}"
            continue
        outputs[name] = str(resolver.resolve(value))
    return outputs
