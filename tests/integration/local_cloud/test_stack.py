"""The template reader: parameters, conditions, intrinsics, outputs and the resources it creates."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from modeldrop_local.cloud import LocalCloud
from modeldrop_local.stack import Resolver, TemplateError, plan_stack, state_machine_definition

from tests.integration.local_cloud.conftest import FIXTURE_TEMPLATE


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
