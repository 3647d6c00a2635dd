"""Build moto resources from template.yaml, so tests run against the tables, bucket and state machine
the template declares (not a hand-written twin). Generic on purpose: it can move to a shared place.

Only the intrinsics these resources use are resolved: Ref, Fn::Sub (both forms), Fn::GetAtt (…Arn),
Fn::Select, Fn::Split; Fn::If-free values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.yaml_helper import yaml_parse

REPO_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
STACK_NAME = "modeldrop"
# The UUID CloudFormation puts at the end of a stack's id (a new one for every stack it creates); this
# one is the local cloud's for a stack "modeldrop" in us-east-1, so the sample events name the same bucket.
STACK_UUID = "720a757e-f609-5b80-9674-385bb87e16de"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/{STACK_UUID}"
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return dict(yaml_parse(path.read_text()))


@dataclass
class Resolver:
    """Resolves Ref/Sub/GetAtt against parameter defaults, pseudo parameters and created resources."""

    template: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, parameter in self.template.get("Parameters", {}).items():
            self.refs.setdefault(name, str(parameter.get("Default", "")))
        self.refs.update(
            {
                "AWS::StackName": STACK_NAME,
                "AWS::StackId": STACK_ID,
                "AWS::AccountId": ACCOUNT_ID,
                "AWS::Region": REGION,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )
        # Functions are not created in moto (their code runs in-process); their ARNs are still known.
        for logical_id, definition in self.template.get("Resources", {}).items():
            if definition.get("Type") == "AWS::Serverless::Function":
                self.arns.setdefault(logical_id, function_arn(logical_id))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.refs[value["Ref"]]
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            logical, attribute = target if isinstance(target, list) else target.split(".", 1)
            if attribute != "Arn":
                raise KeyError(f"cannot resolve GetAtt {logical}.{attribute}")
            return self.arns[logical]
        if set(value) == {"Fn::Sub"}:
            argument = value["Fn::Sub"]
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            local = {name: str(self.resolve(item)) for name, item in variables.items()}
            return _SUB_VARIABLE.sub(lambda match: self._sub_variable(match.group(1), local), text)
        if set(value) == {"Fn::Select"}:
            index, items = value["Fn::Select"]
            return self.resolve(items)[int(index)]
        if set(value) == {"Fn::Split"}:
            delimiter, text = value["Fn::Split"]
            return str(self.resolve(text)).split(delimiter)
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub_variable(self, name: str, local: dict[str, str] | None = None) -> str:
        if local and name in local:
            return local[name]
        if "." in name:
            logical, attribute = name.split(".", 1)
            return str(self.resolve({"Fn::GetAtt": [logical, attribute]}))
        return self.refs[name]


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return dict(template["Resources"][logical_id])


def create_table(template: dict[str, Any], logical_id: str, resolver: Resolver) -> str:
    """A DynamoDB table with the template's keys, billing mode and TTL; returns its name."""
    properties = resolver.resolve(resource(template, logical_id)["Properties"])
    name = properties.get("TableName", f"{STACK_NAME}-{logical_id}")
    client = boto3.client("dynamodb", region_name=REGION)
    response = client.create_table(
        TableName=name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        BillingMode=properties.get("BillingMode", "PROVISIONED"),
    )
    if "TimeToLiveSpecification" in properties:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
        )
    resolver.refs[logical_id] = name
    resolver.arns[logical_id] = response["TableDescription"]["TableArn"]
    return str(name)


def create_bucket(template: dict[str, Any], logical_id: str, resolver: Resolver) -> str:
    """The S3 bucket with the template's name and versioning; returns its name."""
    properties = resolver.resolve(resource(template, logical_id)["Properties"])
    name = properties.get("BucketName", f"{STACK_NAME}-{logical_id.lower()}")
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=name)
    if "VersioningConfiguration" in properties:
        client.put_bucket_versioning(
            Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"]
        )
    resolver.refs[logical_id] = name
    resolver.arns[logical_id] = f"arn:aws:s3:::{name}"
    return str(name)


def function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{STACK_NAME}-{logical_id}"


def state_machine_definition(
    template: dict[str, Any], logical_id: str, resolver: Resolver, overrides: dict[str, str] | None = None
) -> str:
    """The ASL file named by DefinitionUri with the template's DefinitionSubstitutions applied."""
    properties = resource(template, logical_id)["Properties"]
    text = (REPO_ROOT / properties["DefinitionUri"]).read_text()
    substitutions = {
        key: str(resolver.resolve(value))
        for key, value in properties.get("DefinitionSubstitutions", {}).items()
    }
    substitutions.update(overrides or {})
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    json.loads(text)  # fails loudly if a substitution left the document invalid
    return text


def definition_placeholders(template: dict[str, Any], logical_id: str) -> set[str]:
    properties = resource(template, logical_id)["Properties"]
    text = (REPO_ROOT / properties["DefinitionUri"]).read_text()
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))


def create_state_machine(
    template: dict[str, Any], logical_id: str, resolver: Resolver, overrides: dict[str, str] | None = None
) -> str:
    client = boto3.client("stepfunctions", region_name=REGION)
    role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{STACK_NAME}-{logical_id}Role"
    arn = client.create_state_machine(
        name=f"{STACK_NAME}-{logical_id}",
        definition=state_machine_definition(template, logical_id, resolver, overrides),
        roleArn=role_arn,
    )["stateMachineArn"]
    resolver.refs[logical_id] = arn
    resolver.arns[logical_id] = arn
    return str(arn)
