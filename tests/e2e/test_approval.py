"""The approval gate on the local cloud with the real template: every accepted upload is a SageMaker Model
Registry version; an "approval": "manual" version waits (the old version keeps serving) until its package
is approved through boto3's update_model_package, the standard way, and a rejection is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modeldrop.api.models import DeploymentSummary
from modeldrop_local.cli import app
from modeldrop_local.example_models import (
    build_custom_inference,
    build_sklearn_iris,
    iris_sample,
    predict_in_process,
)
from modeldrop_local.stack_client import FINAL_STATUSES, StackClient
from typer.testing import CliRunner

from tests.e2e.clients import deploy, predict

pytestmark = pytest.mark.e2e
MODEL = "approval-iris"
# Every model of this module together stays within the default serverless concurrency quota (10).
SMALL = {"max_concurrency": 2}
MANUAL = {**SMALL, "approval": "manual"}


def _follow(stack: StackClient, version: int) -> DeploymentSummary:
    """Follow an approved version past PendingApproval to its final status."""
    return stack.follow(
        MODEL, version=version, until=FINAL_STATUSES, timeout_s=120, progress=lambda line: None, poll_s=0.2
    )


def _package(stack: StackClient, deployment: DeploymentSummary) -> dict[str, Any]:
    assert deployment.model_package_arn is not None
    return dict(
        stack.client("sagemaker").describe_model_package(ModelPackageName=deployment.model_package_arn)
    )


def _serving_config(stack: StackClient) -> str:
    endpoint = stack.client("sagemaker").describe_endpoint(EndpointName=f"modeldrop-{MODEL}")
    return str(endpoint["EndpointConfigName"])


@pytest.fixture(scope="module")
def live_v1(stack: StackClient, models_dir: Path) -> tuple[Path, DeploymentSummary]:
    """v1, the logistic iris model, approved automatically and live."""
    tarball = build_sklearn_iris(models_dir / "approval-v1", config=SMALL)
    deployment = deploy(stack, tarball, MODEL)
    assert deployment.status == "InService", deployment
    return tarball, deployment


def test_auto_approval_registers_the_version_and_deploys_it(
    stack: StackClient, live_v1: tuple[Path, DeploymentSummary]
) -> None:
    # Given an upload without "approval" (auto), deployed
    tarball, deployment = live_v1
    # Then GET /models/{name} names its Model Package, version 1 of the group modeldrop-<name>, Approved
    assert deployment.model_package_arn is not None
    assert deployment.model_package_arn.endswith(f":model-package/modeldrop-{MODEL}/1")
    assert (deployment.model_package_version, deployment.approval_status) == (1, "Approved")
    # And the package holds the deployed copy, the upload's S3 location and version, and the deployment id
    package = _package(stack, deployment)
    assert package["ModelApprovalStatus"] == "Approved"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"].endswith(f"/deployments/{MODEL}/{deployment.deployment_id}/model.tar.gz")
    metadata = package["CustomerMetadataProperties"]
    assert metadata["modeldrop:deploymentId"] == deployment.deployment_id
    assert metadata["modeldrop:uploadS3Uri"].endswith(f"/models/{MODEL}/model.tar.gz")
    assert metadata["modeldrop:objectVersion"] == deployment.object_version
    # And the model answers as the uploaded model does
    assert predict(stack, MODEL).json() == predict_in_process(tarball, iris_sample())


def test_a_manual_version_waits_then_deploys_once_approved_with_boto3(
    stack: StackClient, models_dir: Path, live_v1: tuple[Path, DeploymentSummary]
) -> None:
    # Given v1 live, and a different model uploaded with "approval": "manual"
    old_tarball, live = live_v1
    new_tarball = build_custom_inference(models_dir / "approval-manual", config=MANUAL)
    old, new = predict_in_process(old_tarball, iris_sample()), predict_in_process(new_tarball, iris_sample())
    assert old != new
    before = _serving_config(stack)
    # When it is uploaded
    waiting = deploy(stack, new_tarball, MODEL)
    # Then it waits for approval, its package PendingManualApproval, and the endpoint is untouched
    assert waiting.status == "PendingApproval", waiting
    assert waiting.approval_status == "PendingManualApproval"
    assert _package(stack, waiting)["ModelApprovalStatus"] == "PendingManualApproval"
    assert _serving_config(stack) == before
    assert predict(stack, MODEL).json() == old
    assert stack.describe_model(MODEL).live_version == live.version  # type: ignore[union-attr]

    # When its package is approved the standard way (boto3, as Studio or the AWS CLI would)
    stack.client("sagemaker").update_model_package(
        ModelPackageArn=waiting.model_package_arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="offline metrics reviewed",
    )
    # Then the state-change event starts its deployment through the deploy state machine: InService, live
    deployed = _follow(stack, waiting.version)
    assert deployed.status == "InService", deployed
    assert deployed.approval_status == "Approved"
    assert stack.describe_model(MODEL).live_version == waiting.version  # type: ignore[union-attr]
    assert predict(stack, MODEL).json() == new
    assert stack.records().get_deployment(MODEL, waiting.version).execution_arn  # type: ignore[union-attr]


def test_a_rejected_version_is_recorded_rejected_and_the_live_one_keeps_serving(
    stack: StackClient, models_dir: Path, live_v1: tuple[Path, DeploymentSummary]
) -> None:
    # Given a manual version waiting for approval
    serving = predict(stack, MODEL).json()
    live_version = stack.describe_model(MODEL).live_version  # type: ignore[union-attr]
    tarball = build_sklearn_iris(models_dir / "approval-rejected", config=MANUAL)
    waiting = deploy(stack, tarball, MODEL)
    assert waiting.status == "PendingApproval", waiting
    # When the approver rejects its package, saying why
    stack.client("sagemaker").update_model_package(
        ModelPackageArn=waiting.model_package_arn,
        ModelApprovalStatus="Rejected",
        ApprovalDescription="precision on class 2 below the 0.9 bar",
    )
    # Then the deployment is recorded Rejected with the approver's description, nothing else changed
    rejected = _follow(stack, waiting.version)
    assert rejected.status == "Rejected"
    assert (
        rejected.reason == "rejected in the SageMaker Model Registry: precision on class 2 below the 0.9 bar"
    )
    assert rejected.approval_status == "Rejected"
    assert stack.describe_model(MODEL).live_version == live_version  # type: ignore[union-attr]
    assert predict(stack, MODEL).json() == serving


def test_modeldrop_approve_deploys_and_refuses_a_version_not_waiting(
    stack: StackClient, models_dir: Path, live_v1: tuple[Path, DeploymentSummary]
) -> None:
    # Given a manual version waiting for approval
    tarball = build_sklearn_iris(models_dir / "approval-cli", config=MANUAL)
    waiting = deploy(stack, tarball, MODEL)
    assert waiting.status == "PendingApproval", waiting
    arguments = ["--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
    # When `modeldrop approve` approves it (POST /models/{name}/versions/{version}/approve)
    result = CliRunner().invoke(app, ["approve", MODEL, "--version", str(waiting.version), *arguments])
    # Then it deploys, and its package says who approved it
    assert result.exit_code == 0, result.output
    assert f"{MODEL} v{waiting.version} is InService" in result.stdout
    assert _package(stack, waiting)["ApprovalDescription"] == "approved through modeldrop's API"
    # And approving v1 (approved automatically) is refused, saying why
    refused = CliRunner().invoke(app, ["approve", MODEL, "--version", "1", *arguments])
    assert refused.exit_code != 0
    assert "VersionNotPendingApproval" in refused.output


def test_a_version_rolled_back_from_says_so_in_the_registry(
    stack: StackClient, live_v1: tuple[Path, DeploymentSummary]
) -> None:
    # Given the live version (approved above) and an earlier approved one still kept
    detail = stack.describe_model(MODEL)
    assert detail is not None and detail.live_version is not None
    live = next(d for d in detail.history if d.version == detail.live_version)
    arguments = ["--endpoint-url", str(stack.endpoint_url), "--stack-name", stack.stack_name]
    # When it is rolled back on demand
    result = CliRunner().invoke(app, ["rollback", MODEL, *arguments])
    # Then the rollback restored an Approved version, and the live one's package says it was rolled back
    assert result.exit_code == 0, result.output
    rollback = stack.records().list_deployments(MODEL, limit=1)[0]
    restored = stack.records().get_deployment(MODEL, int(rollback.rollback_to or 0))
    assert restored is not None and restored.approval_status == "Approved"
    description = _package(stack, live)["ApprovalDescription"]
    assert description == (
        f"modeldrop: v{live.version} rolled back to v{rollback.rollback_to} (deployment v{rollback.version})"
    )
