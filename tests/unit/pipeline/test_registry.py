"""The Model Registry side (modeldrop.registry): moto's SageMaker registry engine and DynamoDB; Stubber for
the exact CreateModelPackage request."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from modeldrop.deployment_status import handle_status
from modeldrop.events import DeploymentStatusEvent
from modeldrop.frameworks import Framework
from modeldrop.model_config import ResolvedConfig
from modeldrop.records import Deployment, DeploymentKind, DeploymentStatus, utc_now
from modeldrop.registry import (
    ApprovalDependencies,
    ApprovalRefused,
    ApprovalStatus,
    ModelPackageStateChange,
    ModelPackageStateChangeEvent,
    approve_version,
    describe_outcome,
    handle_state_change,
    is_approved,
    register_upload,
    register_version,
)
from modeldrop.rollback import RollbackRefused, plan_rollback
from modeldrop.sagemaker_adapter import SageMakerAdapter

from tests.unit.pipeline.conftest import Stack, StubbedSageMaker, status_dependencies
from tests.unit.pipeline.template_resources import REGION
from tests.unit.pipeline.test_deployment_status import seed
from tests.utils import load_event

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
CONFIG = ResolvedConfig(
    framework=Framework.SKLEARN,
    framework_version="1.2-1",
    image=IMAGE,
    memory_mb=2048,
    max_concurrency=5,
    provisioned_concurrency=0,
    environment={"SAGEMAKER_PROGRAM": "inference.py"},
)
MANUAL = CONFIG.model_copy(update={"approval": "manual"})
GROUP_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:model-package-group/modeldrop-iris"


def deployment(version: int, status: DeploymentStatus = DeploymentStatus.QUEUED, **fields: Any) -> Deployment:
    now = utc_now()
    return Deployment(
        deployment_id=f"iris-v{version:06d}-abcdef12",
        model_name="iris",
        version=version,
        bucket="models-bucket",
        key="models/iris/model.tar.gz",
        object_version=f"obj-{version}",
        etag='"etag1"',
        status=status,
        endpoint_name="modeldrop-iris",
        sagemaker_model_name=f"modeldrop-iris-v{version}",
        endpoint_config_name=f"modeldrop-iris-v{version}",
        model_data_key=f"deployments/iris/iris-v{version:06d}-abcdef12/model.tar.gz",
        created_at=now,
        updated_at=now,
        **fields,
    )


@pytest.fixture
def sagemaker(stack: Stack) -> SageMakerAdapter:
    """moto's SageMaker: its Model Registry engine (groups, versioned packages, approval status)."""
    return SageMakerAdapter(boto3.client("sagemaker", region_name=REGION))


class RecordingStart:
    """The rollout's start, as the approval handler sees it: what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[Deployment] = []

    def __call__(self, queued: Deployment) -> Deployment:
        self.started.append(queued)
        return queued.model_copy(update={"status": DeploymentStatus.DEPLOYING})


def registered(stack: Stack, sagemaker: SageMakerAdapter, version: int, config: ResolvedConfig) -> Deployment:
    """A deployment recorded and registered the way OnUpload does it."""
    records = stack.records()
    queued = deployment(version)
    records.put_deployment(queued)
    return register_upload(queued, config, sagemaker, records)


def change(recorded: Deployment, status: str, description: str | None = None) -> ModelPackageStateChange:
    return ModelPackageStateChange(
        ModelPackageGroupName="modeldrop-iris",
        ModelPackageVersion=recorded.model_package_version or 1,
        ModelPackageArn=recorded.model_package_arn or "",
        ModelApprovalStatus=ApprovalStatus(status),
        ApprovalDescription=description,
    )


def test_each_upload_is_a_version_of_one_group(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given two accepted uploads of iris
    first = register_version(deployment(1), CONFIG, sagemaker)
    second = register_version(deployment(2), MANUAL, sagemaker)
    # Then one group modeldrop-iris holds them as versions 1 and 2, Approved and PendingManualApproval
    client = sagemaker.client
    groups = client.list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [group["ModelPackageGroupName"] for group in groups] == ["modeldrop-iris"]
    assert (first.version, first.approval_status) == (1, ApprovalStatus.APPROVED)
    assert (second.version, second.approval_status) == (2, ApprovalStatus.PENDING)
    # And the package carries the inference specification, the upload and the deployment id
    package = client.describe_model_package(ModelPackageName=first.arn)
    assert package["ModelPackageGroupName"] == "modeldrop-iris"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == IMAGE
    assert (
        container["ModelDataUrl"] == "s3://models-bucket/deployments/iris/iris-v000001-abcdef12/model.tar.gz"
    )
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert (container["Framework"], container["FrameworkVersion"]) == ("SKLEARN", "1.2-1")
    assert "application/json" in package["InferenceSpecification"]["SupportedContentTypes"]
    assert package["CustomerMetadataProperties"] == {
        "modeldrop:deploymentId": "iris-v000001-abcdef12",
        "modeldrop:version": "1",
        "modeldrop:uploadS3Uri": "s3://models-bucket/models/iris/model.tar.gz",
        "modeldrop:objectVersion": "obj-1",
        "modeldrop:etag": "etag1",
    }


def test_create_model_package_is_idempotent_on_the_deployment_id(stack: Stack) -> None:
    # Given SageMaker stubbed for an existing group
    client = boto3.client("sagemaker", region_name=REGION)
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:model-package/modeldrop-iris/1"
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": "modeldrop-iris",
                "ModelPackageGroupArn": GROUP_ARN,
                "CreationTime": "2026-01-01T00:00:00Z",
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
        )
        stubber.add_response(
            "create_model_package",
            {"ModelPackageArn": arn},
            {
                "ModelPackageGroupName": "modeldrop-iris",
                "ModelPackageDescription": ANY,
                "InferenceSpecification": ANY,
                "ModelApprovalStatus": "PendingManualApproval",
                "CustomerMetadataProperties": ANY,
                # a retried OnUpload gets the package of its first attempt
                "ClientToken": "iris-v000001-abcdef12",
            },
        )
        stubber.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "modeldrop-iris",
                "ModelPackageVersion": 1,
                "ModelPackageArn": arn,
                "CreationTime": "2026-01-01T00:00:00Z",
                "ModelPackageStatus": "Completed",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
            },
        )
        # When the version is registered
        version = register_version(deployment(1), MANUAL, SageMakerAdapter(client))
        # Then exactly those calls were made
        stubber.assert_no_pending_responses()
    assert version.arn == arn


def test_a_manual_upload_is_recorded_pending_approval(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # When a manual version is registered
    recorded = registered(stack, sagemaker, 1, MANUAL)
    # Then the record waits for approval, naming its package and how to approve it
    stored = stack.records().get_deployment("iris", 1)
    assert stored is not None and stored.status is DeploymentStatus.PENDING_APPROVAL
    assert stored.model_package_arn == recorded.model_package_arn
    assert stored.model_package_version == 1
    assert stored.approval_status == "PendingManualApproval"
    assert stored.reason is not None and "modeldrop approve iris --version 1" in stored.reason


def test_approval_starts_the_version_once(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given a version waiting for approval
    recorded = registered(stack, sagemaker, 1, MANUAL)
    start = RecordingStart()
    deps = ApprovalDependencies(records=stack.records(), sagemaker=sagemaker, start=start)
    # When its Approved event arrives, twice (SageMaker may send an event more than once)
    first = handle_state_change(change(recorded, "Approved"), deps)
    again = handle_state_change(change(recorded, "Approved"), deps)
    # Then its deployment was started once, from Queued, through the rollout's start
    assert first.action == "started" and first.status == "Deploying"
    assert again.action == "recorded"
    assert [(d.version, d.status, d.approval_status) for d in start.started] == [
        (1, DeploymentStatus.QUEUED, "Approved")
    ]
    stored = stack.records().get_deployment("iris", 1)
    assert stored is not None and stored.status is DeploymentStatus.QUEUED
    assert stored.approval_status == "Approved" and stored.reason is None


def test_a_start_that_fails_leaves_the_version_to_the_retried_event(
    stack: Stack, sagemaker: SageMakerAdapter
) -> None:
    # Given a version waiting for approval, and a start that fails once (throttled, say)
    recorded = registered(stack, sagemaker, 1, MANUAL)
    start = RecordingStart()

    def failing(queued: Deployment) -> Deployment:
        raise RuntimeError("throttled")

    records = stack.records()
    # When the Approved event is handled and fails, then is delivered again
    with pytest.raises(RuntimeError):
        handle_state_change(
            change(recorded, "Approved"),
            ApprovalDependencies(records=records, sagemaker=sagemaker, start=failing),
        )
    retried = handle_state_change(
        change(recorded, "Approved"), ApprovalDependencies(records=records, sagemaker=sagemaker, start=start)
    )
    # Then the retry starts it
    assert retried.action == "started" and [d.version for d in start.started] == [1]


def test_rejection_records_the_approvers_description(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given two versions waiting for approval
    first = registered(stack, sagemaker, 1, MANUAL)
    second = registered(stack, sagemaker, 2, MANUAL)
    start = RecordingStart()
    deps = ApprovalDependencies(records=stack.records(), sagemaker=sagemaker, start=start)
    # When the first is rejected with a description in the event, and the second's event carries none
    sagemaker.update_model_package(
        str(second.model_package_arn), approval_status="Rejected", approval_description="recall too low"
    )
    handle_state_change(change(first, "Rejected", "precision below 0.9"), deps)
    handle_state_change(change(second, "Rejected"), deps)
    # Then both are Rejected with the approver's words (read from the package when the event lacks them)
    records = stack.records()
    rejected = [records.get_deployment("iris", version) for version in (1, 2)]
    assert [(d.status, d.reason) for d in rejected if d] == [
        (DeploymentStatus.REJECTED, "rejected in the SageMaker Model Registry: precision below 0.9"),
        (DeploymentStatus.REJECTED, "rejected in the SageMaker Model Registry: recall too low"),
    ]
    assert start.started == []


def test_approval_after_a_newer_version_went_live_supersedes(
    stack: Stack, sagemaker: SageMakerAdapter
) -> None:
    # Given v1 waiting for approval and v2 (auto) in service since
    pending = registered(stack, sagemaker, 1, MANUAL)
    registered(stack, sagemaker, 2, CONFIG)
    records = stack.records()
    records.update_deployment("iris", 2, DeploymentStatus.IN_SERVICE)
    start = RecordingStart()
    # When v1 is approved
    outcome = handle_state_change(
        change(pending, "Approved"), ApprovalDependencies(records=records, sagemaker=sagemaker, start=start)
    )
    # Then it is not deployed over v2: it is Superseded, saying why
    assert outcome.action == "superseded" and start.started == []
    stored = records.get_deployment("iris", 1)
    assert stored is not None and stored.status is DeploymentStatus.SUPERSEDED
    assert stored.reason is not None and "v2 (InService)" in stored.reason


def test_a_later_rejection_of_a_live_version_is_mirrored(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given an auto version in service
    live = registered(stack, sagemaker, 1, CONFIG)
    records = stack.records()
    records.update_deployment("iris", 1, DeploymentStatus.IN_SERVICE)
    deps = ApprovalDependencies(records=records, sagemaker=sagemaker, start=RecordingStart())
    # When it is rejected in the registry afterwards
    outcome = handle_state_change(change(live, "Rejected", "data leak"), deps)
    # Then it stays InService, but its record says Rejected, so it is no longer offered as Approved
    stored = records.get_deployment("iris", 1)
    assert outcome.action == "recorded"
    assert stored is not None and stored.status is DeploymentStatus.IN_SERVICE
    assert stored.approval_status == "Rejected" and not is_approved(stored)


def test_events_of_other_groups_and_packages_are_ignored(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    deps = ApprovalDependencies(records=stack.records(), sagemaker=sagemaker, start=RecordingStart())
    # Given the sample event, of a group that is not modeldrop's, and of a package no deployment has
    sample = ModelPackageStateChangeEvent.model_validate(load_event("model_package_approved")).detail
    foreign = sample.model_copy(update={"ModelPackageGroupName": "team-fraud"})
    # When they are handled / Then nothing is started
    assert handle_state_change(foreign, deps).action == "ignored"
    assert handle_state_change(sample, deps).action == "ignored"


def test_sample_events_parse_as_the_rule_delivers_them() -> None:
    # Given the sample events / When parsed as the function parses them
    approved = ModelPackageStateChangeEvent.model_validate(load_event("model_package_approved"))
    rejected = ModelPackageStateChangeEvent.model_validate(load_event("model_package_rejected"))
    # Then they carry the fields the handler reads
    assert approved.detail_type == "SageMaker Model Package State Change"
    assert approved.detail.ModelApprovalStatus is ApprovalStatus.APPROVED
    assert rejected.detail.ApprovalDescription == "precision on class 2 below the 0.9 bar"
    assert approved.detail.ModelPackageVersion == 2


def test_approve_version_sets_the_package_approved(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given a version waiting for approval
    recorded = registered(stack, sagemaker, 1, MANUAL)
    # When it is approved through modeldrop
    approved = approve_version("iris", 1, "looks good", stack.records(), sagemaker)
    # Then the package is Approved with the description (the event starts the deployment)
    package = sagemaker.describe_model_package(str(recorded.model_package_arn))
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "looks good"
    assert approved.approval_status == "Approved"


@pytest.mark.parametrize(
    ("model", "version", "code"),
    [("nope", 1, "ModelNotFound"), ("iris", 9, "VersionNotFound"), ("iris", 2, "VersionNotPendingApproval")],
)
def test_approval_refusals(
    stack: Stack, sagemaker: SageMakerAdapter, model: str, version: int, code: str
) -> None:
    # Given v1 waiting and v2 approved automatically
    registered(stack, sagemaker, 1, MANUAL)
    registered(stack, sagemaker, 2, CONFIG)
    # When a model, version or state that cannot be approved is asked for / Then it is refused, saying why
    with pytest.raises(ApprovalRefused) as refused:
        approve_version(model, version, None, stack.records(), sagemaker)
    assert refused.value.code == code


def test_outcome_is_written_on_the_package(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given a registered version, and a rollback (which carries no package of its own)
    recorded = registered(stack, sagemaker, 1, CONFIG)
    rollback = deployment(2, kind=DeploymentKind.ROLLBACK)
    # When its failure is described
    assert describe_outcome(recorded, "smoke test failed: $[0] is 2, expected 0", sagemaker)
    assert not describe_outcome(rollback, "whatever", sagemaker)
    # Then the package's ApprovalDescription holds the reason (that the status stays as it was is
    # SageMaker's partial update, which moto's engine lacks and the edge restores: see
    # tests/integration/local_cloud/test_model_registry.py)
    package = sagemaker.describe_model_package(str(recorded.model_package_arn))
    assert package["ApprovalDescription"] == "modeldrop: smoke test failed: $[0] is 2, expected 0"
    # And a registry error is not the state machine's problem
    gone = recorded.model_copy(update={"model_package_arn": recorded.model_package_arn + "0"})
    assert not describe_outcome(gone, "x", sagemaker)


def _in_service(stack: Stack, version: int, approval: str) -> Deployment:
    """Upload `version` went InService and live, its package `approval` in the registry."""
    records = stack.records()
    deployment = seed(stack, version, DeploymentStatus.DEPLOYING)
    records.update_deployment("iris", version, DeploymentStatus.DEPLOYING, approval_status=approval)
    records.go_live(deployment, expected=(DeploymentStatus.DEPLOYING,))
    return deployment


def test_rollback_offers_only_versions_the_registry_approves(stack: Stack) -> None:
    # Given v1 (rejected in the registry after it served), v2 (Approved) and v3 live
    _in_service(stack, 1, "Rejected")
    _in_service(stack, 2, "Approved")
    _in_service(stack, 3, "Approved")
    records = stack.records()
    # When a rollback is planned / Then v2 is the one offered, and v1 is refused saying why
    plan = plan_rollback("iris", None, records)
    assert (plan.target.version, plan.kept) == (2, [2])
    with pytest.raises(RollbackRefused) as refused:
        plan_rollback("iris", 1, records)
    assert refused.value.code == "VersionNotKept"
    assert "is not approved in the SageMaker Model Registry (its package is Rejected)" in refused.value.reason


def test_a_failed_version_gets_the_reason_on_its_package(stack: Stack, sagemaker: SageMakerAdapter) -> None:
    # Given v1 deploying, registered in the Model Registry
    seed(stack, 1, DeploymentStatus.DEPLOYING)
    package = register_version(deployment(1), CONFIG, sagemaker)
    stack.records().update_deployment("iris", 1, DeploymentStatus.DEPLOYING, model_package_arn=package.arn)
    unstubbed = StubbedSageMaker(sagemaker, Stubber(sagemaker.client))  # moto answers: no stub is active
    # When the state machine reports its endpoint Failed
    failed = load_event("deployment_status_failed")
    failed["endpoint"]["FailureReason"] = "ping failed: No module named 'numpy._core'"
    handle_status(DeploymentStatusEvent.model_validate(failed), status_dependencies(stack, unstubbed))
    # Then the record and the package's ApprovalDescription both say why
    stored = stack.records().get_deployment("iris", 1)
    assert stored is not None and stored.status is DeploymentStatus.FAILED
    described = sagemaker.describe_model_package(package.arn)["ApprovalDescription"]
    assert described == "modeldrop: v1 Failed: ping failed: No module named 'numpy._core'"
