"""The one reader of template.yaml: the local cloud builds its stack from it (stack.py), and the
tests read the template and create its tables, bucket and state machine in moto through it too.

It loads the template (AWS::Include inlined), refuses resource types the local cloud does not run,
decides every physical name and attribute first (deterministic, like CloudFormation's), so intrinsics
resolve whatever order the resources are declared in, and resolves the intrinsics this kind of
template uses.

The functions are read by SAM CLI's own function provider (samcli.lib.providers), as `sam local invoke`
reads them: Globals merged into each function (Layers appended, Environment merged key by key),
CodeUri, Handler, the template's own layers, Timeout and MemorySize. Its intrinsic resolver is given
the physical names decided here, so the environment holds real names and ARNs (on its own it resolves
a Ref to the logical id and every GetAtt Arn to a Lambda ARN).

A resource type the local cloud neither creates nor deliberately ignores stops the stack with an
error naming it: nothing of the template is skipped silently.

Why `Resolver` is not SAM CLI's IntrinsicResolver (samcli.lib.intrinsic_resolver, aws-sam-cli 1.170.0)
for the rest of the template: given the same physical names (`_logical_id_translator`), it resolves
every resource of template.yaml to the same values, but it differs from CloudFormation where a
template may go next, and the local cloud must fail where AWS fails:
- `AWS::NoValue` is not removed (CloudFormation drops the property): it resolves to None, kept in
  place; `{"Fn::If": [cond, {"Ref": "AWS::NoValue"}, x]}` raises InvalidIntrinsicException ("Missing
  Intrinsic property in Fn::If": handle_fn_if resolves that None again), and every NoValue after the
  first raises AttributeError (the symbol table caches None as its translation, then calls .get on it).
- `Fn::Select` refuses a string index ("must resolve to a <class 'int'> type"), which CloudFormation
  takes (the AWS docs' own Fn::Select examples write `"1"`).
- An unknown name resolves silently (its default attribute resolvers): `Ref Missing` to "Missing",
  `Fn::GetAtt Missing.Arn` to a Lambda ARN, `${Missing}` in a Fn::Sub to "Missing", so a typo would
  become a wrong physical name instead of an error naming it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samcli.lib.providers.provider import Function
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samtranslator.yaml_helper import yaml_parse

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_STACK_NAME = "modeldrop-local"
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
NO_VALUE = object()

SUPPORTED_TYPES = frozenset(
    {
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::IAM::Role",
        "AWS::Logs::LogGroup",
        "AWS::Serverless::Function",  # run by the functions host
        "AWS::Serverless::LayerVersion",  # put on each function's sys.path by the functions host
        "AWS::Serverless::StateMachine",  # moto's Step Functions runs its ASL
        "AWS::Serverless::Api",  # served by the REST front from its DefinitionBody
        "AWS::ApiGateway::ApiKey",  # its value is the key the REST front checks
    }
)
# Types with no local meaning: declared on AWS, nothing for one machine to do. Each says why.
IGNORED_TYPES = {
    "AWS::S3::BucketPolicy": "bucket policies are not enforced locally (no IAM evaluation)",
    "AWS::ApiGateway::UsagePlan": "the REST front applies no usage-plan throttling",
    "AWS::ApiGateway::UsagePlanKey": "the REST front checks the API key itself, without usage plans",
}


class TemplateError(ValueError):
    """The template uses something the local cloud cannot resolve; the message names it."""


def check_resource_types(template: dict[str, Any]) -> None:
    """Refuse a template with a resource type the local cloud does not run, naming each one."""
    unsupported = [
        f"{logical_id} ({resource.get('Type')})"
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") not in SUPPORTED_TYPES and resource.get("Type") not in IGNORED_TYPES
    ]
    if unsupported:
        raise TemplateError(
            f"resource types the local cloud does not support: {', '.join(unsupported)} "
            f"(supported: {', '.join(sorted(SUPPORTED_TYPES))}; ignored as meaningless locally: "
            f"{', '.join(sorted(IGNORED_TYPES))})"
        )


def load_template(path: Path, *, inline_includes: bool = True) -> dict[str, Any]:
    """The template as a dict, each `Fn::Transform: AWS::Include` replaced by the local file it names
    (inline_includes=False: as written, the way CloudFormation receives it before the transform)."""
    template = dict(yaml_parse(path.read_text()))
    return _inline_includes(template, path.parent) if inline_includes else template


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
    check_resource_types(template)
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


def function_specs(
    resolver: Resolver, template_path: Path, included: set[str] | None = None
) -> dict[str, FunctionSpec]:
    """Each AWS::Serverless::Function as SAM CLI's function provider reads it, with this stack's names."""
    template_path = template_path.resolve()
    stacks, _ = SamLocalStackProvider.get_stacks(
        str(template_path), parameter_overrides=_logical_id_translator(resolver)
    )
    provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
    # Globals merged in by SAM's plugins; its resolver renames each resource key to the Ref it was given.
    processed = stacks[0].resources
    specs = {}
    for function in provider.get_all():
        logical_id = function.function_id
        if included is not None and logical_id not in included:
            continue
        properties = processed[resolver.refs[logical_id]].get("Properties", {})
        specs[logical_id] = _function_spec(resolver, function, properties, template_path.parent)
    return specs


def _logical_id_translator(resolver: Resolver) -> dict[str, Any]:
    """Parameters, pseudo parameters and every resource's Ref and attributes, for SAM CLI's resolver.

    The template's layers are left out: given an ARN for them, SAM CLI would take them for published
    layers and lose their ContentUri.
    """
    layers = {
        logical_id
        for logical_id, resource in resolver.template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::LayerVersion"
    }
    translator: dict[str, Any] = {
        name: value for name, value in resolver.refs.items() if name not in layers and "." not in name
    }
    for (logical_id, attribute), value in resolver.attributes.items():
        entry = translator.get(logical_id)
        if not isinstance(entry, dict):
            entry = {} if entry is None else {"Ref": entry}
        entry[attribute] = value
        translator[logical_id] = entry
    return translator


def _function_spec(
    resolver: Resolver, function: Function, properties: dict[str, Any], base_dir: Path
) -> FunctionSpec:
    logical_id = function.function_id
    if function.packagetype != "Zip" or not function.codeuri or not function.handler:
        raise TemplateError(f"{logical_id}: the local cloud needs a local CodeUri and a Handler (Zip)")
    layer_dirs = []
    for layer in function.layers:
        if layer.codeuri is None:
            raise TemplateError(
                f"{logical_id}: only layers of this template can run locally, not {layer.arn}"
            )
        layer_dirs.append((base_dir / layer.codeuri).resolve())
    variables = (function.environment or {}).get("Variables", {})
    unresolved = sorted(key for key, value in variables.items() if isinstance(value, dict | list))
    if unresolved:
        raise TemplateError(f"{logical_id}: cannot resolve the environment variables {', '.join(unresolved)}")
    return FunctionSpec(
        logical_id=logical_id,
        name=resolver.refs[logical_id],
        arn=resolver.attributes[(logical_id, "Arn")],
        code_dir=(base_dir / function.codeuri).resolve(),
        handler=function.handler,
        layer_dirs=tuple(layer_dirs),
        environment={key: str(value) for key, value in variables.items()},
        timeout_s=float(function.timeout if function.timeout is not None else 3),
        memory_mb=int(function.memory if function.memory is not None else 128),
        reserved_concurrency=_optional_int(resolver.resolve(properties.get("ReservedConcurrentExecutions"))),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None or value is NO_VALUE else int(value)
