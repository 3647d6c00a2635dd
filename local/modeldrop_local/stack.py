"""Read template.yaml and create its resources in the local cloud.

Everything comes from the template: the bucket, tables, roles, state machine (DefinitionUri with its
DefinitionSubstitutions), the API key, the functions (CodeUri/Handler/Layers/Environment/Timeout) and
the S3 → Lambda notifications (read and recorded by `s3_notifications.py`). Physical names are decided
first (deterministic, like CloudFormation's), so intrinsics resolve whatever order the resources are
declared in; then the resources are created through the edge with plain boto3 clients.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from samtranslator.yaml_helper import yaml_parse

from modeldrop_local import s3_notifications

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_STACK_NAME = "modeldrop-local"
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
NO_VALUE = object()
_ALREADY_EXISTS = {
    "BucketAlreadyOwnedByYou",
    "BucketAlreadyExists",
    "ResourceInUseException",
    "EntityAlreadyExists",
    "StateMachineAlreadyExists",
    "ResourceAlreadyExistsException",
}


class TemplateError(ValueError):
    """The template uses something the local cloud cannot resolve; the message names it."""


def load_template(path: Path) -> dict[str, Any]:
    """The template as a dict, each `Fn::Transform: AWS::Include` replaced by the local file it names."""
    template = dict(yaml_parse(path.read_text()))
    return _inline_includes(template, path.parent)


def _inline_includes(value: Any, base_dir: Path) -> Any:
    if isinstance(value, list):
        return [_inline_includes(item, base_dir) for item in value]
    if not isinstance(value, dict):
        return value
    transform = value.get("Fn::Transform")
    if isinstance(transform, dict) and transform.get("Name") == "AWS::Include" and len(value) == 1:
        location = Path(transform["Parameters"]["Location"])
        included_path = location if location.is_absolute() else base_dir / location
        if not included_path.is_file():
            raise TemplateError(f"AWS::Include location not found: {included_path}")
        return _inline_includes(yaml_parse(included_path.read_text()), included_path.parent)
    return {key: _inline_includes(item, base_dir) for key, item in value.items()}


@dataclass(frozen=True)
class FunctionSpec:
    """One template function, as the functions host runs it."""

    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int
    # ReservedConcurrentExecutions: at most this many invocations at once (None: the account's pool).
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class RestApiSpec:
    """The REST API a template declares: its OpenAPI body (intrinsics resolved), stage and key."""

    logical_id: str
    stage: str
    definition: dict[str, Any]
    api_key_value: str | None


@dataclass
class Resolver:
    """Resolves the intrinsics this kind of template uses against parameters and physical names."""

    template: dict[str, Any]
    refs: dict[str, Any]
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)

    def evaluate_conditions(self) -> None:
        for name in self.template.get("Conditions", {}):
            self.condition(name)

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self._condition_value(self.template["Conditions"][name]))
        return self.conditions[name]

    def _condition_value(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if function == "Fn::Not":
                return not self._condition_value(argument[0])
            if function == "Fn::And":
                return all(self._condition_value(item) for item in argument)
            if function == "Fn::Or":
                return any(self._condition_value(item) for item in argument)
            if function == "Condition":
                return self.condition(argument)
        return self.resolve(value)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            resolved = [self.resolve(item) for item in value]
            return [item for item in resolved if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((function, argument),) = value.items()
            handler = _INTRINSICS.get(function)
            if handler is not None:
                return handler(self, argument)
        resolved_map = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved_map.items() if item is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self.refs:
            raise TemplateError(f"cannot resolve Ref {name}: no such parameter or resource")
        return self.refs[name]

    def get_att(self, argument: Any) -> Any:
        logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        key = (logical_id, attribute)
        if key not in self.attributes:
            raise TemplateError(f"cannot resolve Fn::GetAtt {logical_id}.{attribute} locally")
        return self.attributes[key]

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        local = {key: self.resolve(item) for key, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(name))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text)


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda r, a: r.ref(a),
    "Fn::GetAtt": lambda r, a: r.get_att(a),
    "Fn::Sub": lambda r, a: r.sub(a),
    "Fn::If": lambda r, a: r.resolve(a[1] if r.condition(a[0]) else a[2]),
    "Fn::Join": lambda r, a: str(a[0]).join(str(item) for item in r.resolve(a[1])),
    "Fn::Select": lambda r, a: r.resolve(a[1])[int(r.resolve(a[0]))],
    "Fn::Split": lambda r, a: str(r.resolve(a[1])).split(a[0]),
    "Fn::Equals": lambda r, a: str(r.resolve(a[0])) == str(r.resolve(a[1])),
}


@dataclass
class LocalStack:
    """The template's resources as they exist in the local cloud."""

    name: str
    region: str
    template_path: Path
    resolver: Resolver
    functions: dict[str, FunctionSpec]
    notifications: list[s3_notifications.S3Notification]
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


def _function_name(stack_name: str, logical_id: str) -> str:
    return f"{stack_name}-{logical_id}"[:64]


def plan_stack(
    template_path: Path,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    region: str = DEFAULT_REGION,
    parameters: Mapping[str, str] | None = None,
) -> Resolver:
    """Decide every physical name and attribute; returns a resolver that knows them all."""
    template = load_template(template_path)
    overrides = dict(parameters or {})
    declared = template.get("Parameters", {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown template parameters: {', '.join(unknown)}")
    refs: dict[str, Any] = {
        "AWS::StackName": stack_name,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        # A UUID as on AWS (template.yaml names the bucket after it), derived from the name and region so
        # that a restarted local cloud finds its persisted bucket again, and two stacks never share one.
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/"
        f"{uuid.uuid5(uuid.NAMESPACE_URL, f'modeldrop-local:{region}:{stack_name}')}",
    }
    for name, declaration in declared.items():
        if name in overrides:
            refs[name] = str(overrides[name])
        elif "Default" in declaration:
            refs[name] = str(declaration["Default"])
        else:
            raise TemplateError(f"template parameter {name} has no default: pass a value")
    resolver = Resolver(template, refs)
    resolver.evaluate_conditions()
    for logical_id, resource in template.get("Resources", {}).items():
        _plan_resource(resolver, logical_id, resource, stack_name, region)
    return resolver


def _plan_resource(
    resolver: Resolver, logical_id: str, resource: dict[str, Any], stack: str, region: str
) -> None:
    kind = resource.get("Type", "")
    refs, attributes = resolver.refs, resolver.attributes
    arn_prefix = f"arn:aws:{{service}}:{region}:{ACCOUNT_ID}"
    if kind == "AWS::Serverless::Function" or kind == "AWS::Lambda::Function":
        name = _function_name(stack, logical_id)
        refs[logical_id] = name
        attributes[(logical_id, "Arn")] = arn_prefix.format(service="lambda") + f":function:{name}"
        role = f"{stack}-{logical_id}Role"[:64]
        refs[f"{logical_id}Role"] = role
        attributes[(f"{logical_id}Role", "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"
    elif kind == "AWS::Serverless::StateMachine" or kind == "AWS::StepFunctions::StateMachine":
        name = f"{stack}-{logical_id}"[:80]
        arn = arn_prefix.format(service="states") + f":stateMachine:{name}"
        refs[logical_id] = arn
        attributes[(logical_id, "Arn")] = arn
        attributes[(logical_id, "Name")] = name
        refs[f"{logical_id}Role"] = f"{stack}-{logical_id}Role"[:64]
        attributes[(f"{logical_id}Role", "Arn")] = (
            f"arn:aws:iam::{ACCOUNT_ID}:role/{refs[f'{logical_id}Role']}"
        )
    elif kind == "AWS::DynamoDB::Table":
        name = resolver.resolve(resource.get("Properties", {}).get("TableName")) or f"{stack}-{logical_id}"
        refs[logical_id] = name
        attributes[(logical_id, "Arn")] = arn_prefix.format(service="dynamodb") + f":table/{name}"
    elif kind == "AWS::S3::Bucket":
        name = resolver.resolve(resource.get("Properties", {}).get("BucketName")) or (
            f"{stack}-{logical_id}".lower()
        )
        refs[logical_id] = name
        attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
        attributes[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"
    elif kind == "AWS::IAM::Role":
        name = (
            resolver.resolve(resource.get("Properties", {}).get("RoleName")) or f"{stack}-{logical_id}"[:64]
        )
        refs[logical_id] = name
        attributes[(logical_id, "Arn")] = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
    elif kind == "AWS::Serverless::LayerVersion":
        arn = arn_prefix.format(service="lambda") + f":layer:{stack}-{logical_id}:1"
        refs[logical_id] = arn
    elif kind == "AWS::Serverless::Api" or kind == "AWS::ApiGateway::RestApi":
        api_id = re.sub(r"[^a-z0-9]", "", f"{logical_id}".lower())[:10]
        refs[logical_id] = api_id
        stage = str(resource.get("Properties", {}).get("StageName", "Prod"))
        refs[f"{logical_id}.Stage"] = stage
        attributes[(logical_id, "RootResourceId")] = "root"
    elif kind == "AWS::Logs::LogGroup":
        refs[logical_id] = resolver.resolve(resource.get("Properties", {}).get("LogGroupName"))
    else:
        refs.setdefault(logical_id, f"{stack}-{logical_id}")


def _included(resolver: Resolver, resource: dict[str, Any]) -> bool:
    condition = resource.get("Condition")
    return condition is None or resolver.condition(condition)


def build_stack(
    template_path: Path,
    *,
    edge_url: str,
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
        for logical_id, resource in resources.items():
            try:
                _create_resource(clients, resolver, logical_id, resource, template_path.parent)
            except ClientError as error:
                # Restored state holds it already: a restart creates only what is missing.
                if error.response["Error"]["Code"] not in _ALREADY_EXISTS:
                    raise
    functions = {
        logical_id: _function_spec(resolver, logical_id, resource, template_path.parent)
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    notifications = [
        notification
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for notification in s3_notifications.function_notifications(resolver, logical_id, resource)
    ]
    if create:
        s3_notifications.record_on_buckets(clients("s3"), notifications)
    rest_api = _rest_api(resolver, resources, api_key_value)
    outputs = _outputs(resolver, rest_api, api_url)
    return LocalStack(
        name=stack_name,
        region=region,
        template_path=template_path,
        resolver=resolver,
        functions=functions,
        notifications=notifications,
        rest_api=rest_api,
        outputs=outputs,
    )


class _Clients:
    def __init__(self, edge_url: str, region: str) -> None:
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


def _globals(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template.get("Globals", {}).get("Function", {}))


def _function_spec(
    resolver: Resolver, logical_id: str, resource: dict[str, Any], base_dir: Path
) -> FunctionSpec:
    defaults = _globals(resolver.template)
    properties = dict(resource.get("Properties", {}))
    code_uri = properties.get("CodeUri", defaults.get("CodeUri"))
    handler = properties.get("Handler", defaults.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"{logical_id}: the local cloud needs a local CodeUri and a Handler")
    layer_ids = list(defaults.get("Layers", [])) + list(properties.get("Layers", []))
    layer_dirs = []
    for layer in layer_ids:
        layer_id = layer.get("Ref") if isinstance(layer, dict) else None
        layer_resource = resolver.template["Resources"].get(layer_id or "")
        if layer_resource is None:
            raise TemplateError(f"{logical_id}: only layers of this template can run locally, not {layer}")
        layer_dirs.append((base_dir / layer_resource["Properties"]["ContentUri"]).resolve())
    variables: dict[str, Any] = dict(defaults.get("Environment", {}).get("Variables", {}))
    variables.update(properties.get("Environment", {}).get("Variables", {}))
    environment = {key: str(value) for key, value in resolver.resolve(variables).items()}
    return FunctionSpec(
        logical_id=logical_id,
        name=resolver.refs[logical_id],
        arn=resolver.attributes[(logical_id, "Arn")],
        code_dir=(base_dir / code_uri).resolve(),
        handler=handler,
        layer_dirs=tuple(layer_dirs),
        environment=environment,
        timeout_s=float(resolver.resolve(properties.get("Timeout", defaults.get("Timeout", 3)))),
        memory_mb=int(resolver.resolve(properties.get("MemorySize", defaults.get("MemorySize", 128)))),
        reserved_concurrency=_optional_int(
            resolver.resolve(
                properties.get("ReservedConcurrentExecutions", defaults.get("ReservedConcurrentExecutions"))
            )
        ),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None or value is NO_VALUE else int(value)


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
