"""The template reader (template.py) and the stack built from it (stack.py): parameters, conditions,
intrinsics, functions, resource types, outputs and the resources it creates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modeldrop_local.cli import app
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.stack import state_machine_definition
from modeldrop_local.template import (
    IGNORED_TYPES,
    SUPPORTED_TYPES,
    Resolver,
    TemplateError,
    function_specs,
    load_template,
    plan_stack,
)
from typer.testing import CliRunner

from tests.integration.local_cloud.conftest import FIXTURE_TEMPLATE
from tests.utils import REPO_ROOT


def test_outputs_are_served_by_describe_stacks(cloud: LocalCloud, client: Callable[[str], Any]) -> None:
    # Given the fixture stack running locally
    # When a client asks CloudFormation for the stack, as it would on AWS
    stack = client("cloudformation").describe_stacks(StackName="fixture")["Stacks"][0]
    # Then the template's Outputs come back resolved, the API URL pointing at the REST front
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["BucketName"] == "fixture-uploads-123456789012"
    assert outputs["TableName"] == "fixture-EventsTable"
    assert outputs["FlowArn"] == "arn:aws:states:us-east-1:123456789012:stateMachine:fixture-Flow"
    assert outputs["ApiUrl"] == f"http://127.0.0.1:{cloud.api_port}/test"
    assert outputs["Mode"] == "with-key"
    assert {"ParameterKey": "Greeting", "ParameterValue": "hi-from-params"} in stack["Parameters"]


def test_resources_exist_as_the_template_declares(cloud: LocalCloud, client: Callable[[str], Any]) -> None:
    # Given the fixture stack; When its resources are read back through the edge
    outputs = cloud.stack.outputs if cloud.stack else {}
    versioning = client("s3").get_bucket_versioning(Bucket=outputs["BucketName"])
    table = client("dynamodb").describe_table(TableName=outputs["TableName"])["Table"]
    ttl = client("dynamodb").describe_time_to_live(TableName=outputs["TableName"])["TimeToLiveDescription"]
    key = client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)
    machine = client("stepfunctions").describe_state_machine(stateMachineArn=outputs["FlowArn"])
    notifications = client("s3").get_bucket_notification_configuration(Bucket=outputs["BucketName"])
    # Then they carry the template's properties
    assert versioning["Status"] == "Enabled"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert (
        key["value"] == cloud.stack.rest_api.api_key_value if cloud.stack and cloud.stack.rest_api else False
    )
    assert notifications["LambdaFunctionConfigurations"] == [
        {
            "Id": "fixture-Uploaded",
            "LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:fixture-RecorderFunction",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".bin"}]
                }
            },
        }
    ]
    definition = json.loads(machine["definition"])
    assert definition["States"]["CallEcho"]["Parameters"]["FunctionName"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:fixture-EchoFunction"
    )


def test_conditions_follow_parameter_overrides() -> None:
    # Given the fixture template with AuthMode=NONE
    resolver = plan_stack(FIXTURE_TEMPLATE, stack_name="other", parameters={"AuthMode": "NONE"})
    # Then the condition is false and Fn::If picks the other branch
    assert resolver.conditions == {"UseKey": False}
    assert resolver.resolve({"Fn::If": ["UseKey", "with-key", "open"]}) == "open"
    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-${Greeting}"}) == "other-hello"


def test_unknown_parameter_is_refused_by_name() -> None:
    # When a parameter the template does not declare is passed
    with pytest.raises(TemplateError, match="unknown template parameters: Nope"):
        plan_stack(FIXTURE_TEMPLATE, parameters={"Nope": "1"})


def test_definition_substitutions_are_applied() -> None:
    # Given the planned fixture stack
    resolver = plan_stack(FIXTURE_TEMPLATE, stack_name="sub")
    resource = resolver.template["Resources"]["Flow"]
    # When the state machine definition is read
    text = state_machine_definition(resolver, resource, FIXTURE_TEMPLATE.parent)
    # Then no placeholder is left
    assert "${" not in text
    assert "function:sub-EchoFunction" in text


def test_resolver_handles_the_intrinsics_and_condition_functions() -> None:
    # Given a template with parameters and composite conditions
    template = {
        "Parameters": {"Env": {"Default": "prod"}, "Size": {"Default": "3"}},
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "IsBig": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Size"}, "1"]}]},
            "Both": {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "IsBig"}]},
            "Either": {"Fn::Or": [{"Fn::Equals": ["a", "b"]}, {"Condition": "IsBig"}]},
        },
    }
    resolver = Resolver(template, {"Env": "prod", "Size": "3", "AWS::Region": "eu-west-1"})
    # When conditions and values are resolved
    resolver.evaluate_conditions()
    # Then each intrinsic gives CloudFormation's answer
    assert resolver.conditions == {"IsProd": True, "IsBig": True, "Both": True, "Either": True}
    assert resolver.resolve({"Fn::Join": ["-", ["a", {"Ref": "Env"}]]}) == "a-prod"
    assert resolver.resolve({"Fn::Select": ["1", {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert (
        resolver.resolve({"Fn::Sub": ["${Name}@${AWS::Region}", {"Name": {"Ref": "Env"}}]})
        == "prod@eu-west-1"
    )
    assert resolver.resolve({"List": ["keep", {"Fn::If": ["IsProd", {"Ref": "AWS::NoValue"}, "x"]}]}) == {
        "List": ["keep"]
    }
    with pytest.raises(TemplateError, match="cannot resolve Ref Missing"):
        resolver.resolve({"Ref": "Missing"})


def test_function_specs_merge_globals_and_carry_this_stacks_names() -> None:
    # Given the real template (Globals: Layers, Environment, Timeout, MemorySize) planned as stack "modeldrop"
    template = REPO_ROOT / "template.yaml"
    resolver = plan_stack(template, stack_name="modeldrop", parameters={"KeepVersions": "7"})

    # When its functions are read (SAM CLI's function provider, given this stack's physical names)
    functions = function_specs(resolver, template)

    # Then each has its own CodeUri, Handler, Timeout and MemorySize, the Globals' layer and environment
    # merged key by key under its own, and every Ref/GetAtt resolved to a real name or ARN
    assert set(functions) == {
        "OnUploadFunction",
        "DeploymentStatusFunction",
        "ApiFunction",
        "ModelApprovalFunction",
        "ShadowFunction",
    }
    on_upload = functions["OnUploadFunction"]
    assert (on_upload.name, on_upload.handler, on_upload.timeout_s, on_upload.memory_mb) == (
        "modeldrop-OnUploadFunction",
        "app.lambda_handler",
        300.0,
        1024,
    )
    assert on_upload.code_dir == REPO_ROOT / "functions" / "on_upload"
    assert on_upload.layer_dirs == (REPO_ROOT / "layers" / "modeldrop",)
    environment = on_upload.environment
    assert environment["POWERTOOLS_SERVICE_NAME"] == "on_upload"  # its own wins over the Globals'
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "modeldrop"  # from the Globals
    assert environment["DEPLOYMENTS_TABLE"] == "modeldrop-DeploymentsTable"
    assert environment["MODELS_BUCKET"] == "modeldrop-models-720a757e-f609-5b80-9674-385bb87e16de"
    assert environment["STATE_MACHINE_ARN"] == (
        "arn:aws:states:us-east-1:123456789012:stateMachine:modeldrop-DeployStateMachine"
    )
    assert (
        environment["SAGEMAKER_ROLE_ARN"] == "arn:aws:iam::123456789012:role/modeldrop-SageMakerExecutionRole"
    )
    assert environment["KEEP_VERSIONS"] == "7"  # the parameter override
    api = functions["ApiFunction"]
    assert (api.timeout_s, api.memory_mb, api.environment["INVOKE_READ_TIMEOUT_SECONDS"]) == (29.0, 512, "25")


def test_every_resource_type_of_the_template_is_run_or_deliberately_ignored() -> None:
    # Given the real template and the fixture
    for path in (REPO_ROOT / "template.yaml", FIXTURE_TEMPLATE):
        types = {resource["Type"] for resource in load_template(path)["Resources"].values()}
        # Then each of its types is one the local cloud runs, or one it ignores for a stated reason
        assert types <= SUPPORTED_TYPES | set(IGNORED_TYPES), types - SUPPORTED_TYPES - set(IGNORED_TYPES)
    assert all(reason for reason in IGNORED_TYPES.values())


def test_a_resource_type_the_local_cloud_does_not_support_stops_the_stack_naming_it(tmp_path: Path) -> None:
    # Given a template with a queue, which the local cloud does not create
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n"
        "  Jobs:\n    Type: AWS::SQS::Queue\n"
        "  Store:\n    Type: AWS::S3::Bucket\n"
        "  Alarms:\n    Type: AWS::SNS::Topic\n"
    )
    # When the stack is planned (as `modeldrop local up` does first)
    with pytest.raises(TemplateError) as refused:
        plan_stack(template)
    # Then it fails naming each unsupported resource with its type, and what is supported
    message = str(refused.value)
    assert message.startswith(
        "resource types the local cloud does not support: Jobs (AWS::SQS::Queue), Alarms (AWS::SNS::Topic) "
        "(supported: AWS::ApiGateway::ApiKey, "
    )
    assert "ignored as meaningless locally: AWS::ApiGateway::UsagePlan" in message


def test_local_up_fails_on_an_unsupported_resource_type(tmp_path: Path) -> None:
    # Given a template with a resource type the local cloud does not run
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n  Jobs:\n    Type: AWS::SQS::Queue\n")
    # When `modeldrop local up` starts it
    result = CliRunner().invoke(
        app, ["local", "up", "--template", str(template), "--edge-port", "0", "--api-port", "0"]
    )
    # Then it exits 1 with one line naming the resource and its type
    assert result.exit_code == 1
    assert "resource types the local cloud does not support: Jobs (AWS::SQS::Queue)" in result.output
