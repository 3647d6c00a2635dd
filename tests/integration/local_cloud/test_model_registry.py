"""The SageMaker Model Registry on the edge (moto's engine, model_registry.py) and its state-change events,
delivered to the template's EventBridge rule (eventbridge.py) with EventBridge's pattern semantics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from modeldrop_local.cloud import LocalCloud

from tests.integration.local_cloud.conftest import wait_for

TABLE = "fixture-EventsTable"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _package(sagemaker: Any, group: str, status: str) -> str:
    if group not in {
        g["ModelPackageGroupName"]
        for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    }:
        sagemaker.create_model_package_group(ModelPackageGroupName=group, ModelPackageGroupDescription="test")
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus=status,
            CustomerMetadataProperties={"modeldrop:deploymentId": "d-1"},
        )["ModelPackageArn"]
    )


def _recorded(client: Callable[[str], Any], arn: str, status: str) -> dict[str, Any] | None:
    item = (
        client("dynamodb").get_item(TableName=TABLE, Key={"id": {"S": f"event/{arn}/{status}"}}).get("Item")
    )
    return json.loads(item["record"]["S"]) if item else None


def test_approval_change_reaches_the_rule_in_sagemakers_event_shape(
    cloud: LocalCloud, client: Callable[[str], Any]
) -> None:
    # Given a package waiting for approval in a group the rule watches (prefix watched-)
    sagemaker = client("sagemaker")
    arn = _package(sagemaker, "watched-iris", "PendingManualApproval")
    # When it is approved through boto3, as Studio or the AWS CLI would
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok"
    )
    # Then the rule's function receives "SageMaker Model Package State Change" for it
    event = wait_for(lambda: _recorded(client, arn, "Approved"))
    assert event["source"] == "aws.sagemaker"
    assert event["detail-type"] == "SageMaker Model Package State Change"
    assert event["resources"] == [arn]
    assert event["account"] == "123456789012" and event["region"] == "us-east-1"
    detail = event["detail"]
    assert detail["ModelPackageGroupName"] == "watched-iris"
    assert detail["ModelPackageVersion"] == 1
    assert detail["ModelPackageArn"] == arn
    assert detail["ModelApprovalStatus"] == "Approved"
    assert detail["ApprovalDescription"] == "ok"
    assert detail["CustomerMetadataProperties"] == {"modeldrop:deploymentId": "d-1"}
    assert isinstance(detail["CreationTime"], int)  # epoch milliseconds, as SageMaker sends it
    # And the pending creation was not delivered (the pattern asks for Approved or Rejected)
    assert _recorded(client, arn, "PendingManualApproval") is None


def test_update_changes_only_what_it_carries(cloud: LocalCloud, client: Callable[[str], Any]) -> None:
    # Given an approved package with metadata and an approval description
    sagemaker = client("sagemaker")
    arn = _package(sagemaker, "watched-kept", "PendingManualApproval")
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok"
    )
    wait_for(lambda: _recorded(client, arn, "Approved"))
    # When only its ApprovalDescription is updated
    sagemaker.update_model_package(ModelPackageArn=arn, ApprovalDescription="failed its smoke test")
    # Then the status and the metadata are as they were (botocore: every member but the ARN is optional)
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "failed its smoke test"
    assert described["CustomerMetadataProperties"] == {"modeldrop:deploymentId": "d-1"}
    # And a second version of the group is numbered 2
    second = _package(sagemaker, "watched-kept", "Approved")
    assert sagemaker.describe_model_package(ModelPackageName=second)["ModelPackageVersion"] == 2


def test_groups_outside_the_pattern_get_no_event(cloud: LocalCloud, client: Callable[[str], Any]) -> None:
    # Given one package in an unwatched group and one in a watched group
    sagemaker = client("sagemaker")
    unwatched = _package(sagemaker, "other-iris", "PendingManualApproval")
    watched = _package(sagemaker, "watched-late", "PendingManualApproval")
    # When the unwatched one is rejected, then the watched one
    sagemaker.update_model_package(ModelPackageArn=unwatched, ModelApprovalStatus="Rejected")
    sagemaker.update_model_package(ModelPackageArn=watched, ModelApprovalStatus="Rejected")
    # Then only the watched group's rejection reaches the function
    assert (
        wait_for(lambda: _recorded(client, watched, "Rejected"))["detail"]["ModelApprovalStatus"]
        == "Rejected"
    )
    assert _recorded(client, unwatched, "Rejected") is None


def test_a_group_is_created_once_and_the_rule_is_listed(
    cloud: LocalCloud, client: Callable[[str], Any]
) -> None:
    # Given a group
    sagemaker = client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="watched-once")
    # When it is created again
    with pytest.raises(ClientError) as refused:
        sagemaker.create_model_package_group(ModelPackageGroupName="watched-once")
    # Then SageMaker's ValidationException says it exists
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "already exists" in refused.value.response["Error"]["Message"]
    # And EventBridge lists the template's rule with the function as its target
    events = client("events")
    rule = next(r for r in events.list_rules()["Rules"] if r["Name"].endswith("PackageApprovalChanged"))
    assert json.loads(rule["EventPattern"])["detail-type"] == ["SageMaker Model Package State Change"]
    targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert [target["Arn"] for target in targets] == [
        "arn:aws:lambda:us-east-1:123456789012:function:fixture-EventRecorderFunction"
    ]
