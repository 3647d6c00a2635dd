"""The SageMaker Model Registry side of modeldrop: every accepted upload is a version of its model's
Model Package Group, and a version whose modeldrop.json says `"approval": "manual"` waits for approval.

  register_version     OnUpload, once the SageMaker model and endpoint config exist: the group
                       modeldrop-<name> (created on first upload) gets one Model Package per upload, with
                       the inference specification, the upload's S3 location and object version and the
                       deployment id in its customer metadata; Approved ("auto") or PendingManualApproval.
  approve_version      POST /models/{name}/versions/{version}/approve: UpdateModelPackage(Approved), as
                       Studio, the AWS CLI or boto3 would; the state-change event does the rest.
  handle_state_change  the target of the EventBridge rule on "SageMaker Model Package State Change":
                       Approved → the version's deployment starts (through the rollout's start); Rejected
                       → the deployment is recorded Rejected with the approver's description.
  describe_outcome     a failed or rolled-back version's package gets the reason as its ApprovalDescription.

The package's ModelApprovalStatus is mirrored on the deployment record (approvalStatus), so the API and
rollbacks can tell Approved versions without asking SageMaker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from modeldrop import naming
from modeldrop.deployments_table import DeploymentRecords
from modeldrop.frameworks import Framework
from modeldrop.model_config import ResolvedConfig
from modeldrop.observability import logger
from modeldrop.records import Deployment, DeploymentStatus
from modeldrop.sagemaker_adapter import SageMakerAdapter
from modeldrop.settings import ModelApprovalSettings

STATE_CHANGE_DETAIL_TYPE = "SageMaker Model Package State Change"
# botocore: ApprovalDescription and ModelPackageDescription are at most 1024 characters.
MAX_DESCRIPTION = 1024
METADATA_DEPLOYMENT_ID = "modeldrop:deploymentId"
METADATA_VERSION = "modeldrop:version"
METADATA_UPLOAD = "modeldrop:uploadS3Uri"
METADATA_OBJECT_VERSION = "modeldrop:objectVersion"
METADATA_ETAG = "modeldrop:etag"


class ApprovalStatus(StrEnum):
    """ModelApprovalStatus (botocore's SageMaker model)."""

    APPROVED = "Approved"
    PENDING = "PendingManualApproval"
    REJECTED = "Rejected"


# The content types each image family's serving stack decodes and encodes, for the inference
# specification: sagemaker-containers 2.8.6 `_content_types.py` (scikit-learn image; also ONNX here),
# sagemaker-xgboost-container `serve_utils.py` (CSV, libsvm, recordio-protobuf in; CSV, JSON out),
# sagemaker-inference-toolkit `content_types.py` (PyTorch), TensorFlow Serving's REST API (JSON).
_NUMERIC_TYPES = (["application/json", "text/csv", "application/x-npy"], ["application/json", "text/csv"])
_CONTENT_TYPES: dict[Framework | None, tuple[list[str], list[str]]] = {
    Framework.XGBOOST: (
        ["text/csv", "text/libsvm", "application/x-recordio-protobuf"],
        ["text/csv", "application/json"],
    ),
    Framework.TENSORFLOW: (["application/json"], ["application/json"]),
}


class RegisteredVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    arn: str
    version: int
    approval_status: ApprovalStatus


def group_name(model_name: str) -> str:
    """The model's Model Package Group: named like its endpoint."""
    return naming.endpoint_name(model_name)


def register_version(
    deployment: Deployment, config: ResolvedConfig, sagemaker: SageMakerAdapter
) -> RegisteredVersion:
    """Create the upload's Model Package (and, on first upload, its group)."""
    group = group_name(deployment.model_name)
    sagemaker.ensure_model_package_group(
        group,
        f"modeldrop model '{deployment.model_name}': one version per accepted upload of "
        f"models/{deployment.model_name}/model.tar.gz",
    )
    container: dict[str, Any] = {
        "Image": config.image,
        "ModelDataUrl": f"s3://{deployment.bucket}/{deployment.model_data_key}",
    }
    if config.environment:
        container["Environment"] = dict(config.environment)
    if config.framework is not None:
        container["Framework"] = config.framework.value.upper()
        if config.framework_version:
            container["FrameworkVersion"] = config.framework_version
    content_types, response_types = _CONTENT_TYPES.get(config.framework, _NUMERIC_TYPES)
    status = ApprovalStatus.PENDING if config.approval == "manual" else ApprovalStatus.APPROVED
    metadata = {
        METADATA_DEPLOYMENT_ID: deployment.deployment_id,
        METADATA_VERSION: str(deployment.version),
        METADATA_UPLOAD: f"s3://{deployment.bucket}/{deployment.key}",
    }
    if deployment.object_version:
        metadata[METADATA_OBJECT_VERSION] = deployment.object_version
    if deployment.etag:
        metadata[METADATA_ETAG] = deployment.etag.strip('"')
    arn, version = sagemaker.create_model_package(
        group,
        description=_clip(
            f"v{deployment.version} of '{deployment.model_name}' ({deployment.deployment_id}), "
            f"uploaded as s3://{deployment.bucket}/{deployment.key}"
        ),
        container=container,
        content_types=content_types,
        response_types=response_types,
        approval_status=status.value,
        metadata=metadata,
        client_token=deployment.deployment_id,
    )
    logger.info("registered model version", extra={"model_package_arn": arn, "approval": status.value})
    return RegisteredVersion(arn=arn, version=version, approval_status=status)


def register_upload(
    deployment: Deployment, config: ResolvedConfig, sagemaker: SageMakerAdapter, records: DeploymentRecords
) -> Deployment:
    """OnUpload's step once the upload's SageMaker model and endpoint config exist: register the version
    and record its package on the deployment; a manual version is recorded PendingApproval (one write),
    and OnUpload then leaves the endpoint alone. Returns the deployment as recorded."""
    registered = register_version(deployment, config, sagemaker)
    fields = {
        "model_package_arn": registered.arn,
        "model_package_version": registered.version,
        "approval_status": registered.approval_status.value,
    }
    status, reason = deployment.status, deployment.reason
    if registered.approval_status is ApprovalStatus.PENDING:
        status = DeploymentStatus.PENDING_APPROVAL
        reason = (
            f"waiting for approval of model package version {registered.version} ({registered.arn}): "
            f"modeldrop approve {deployment.model_name} --version {deployment.version}, or "
            "UpdateModelPackage(ModelApprovalStatus='Approved')"
        )
    records.update_deployment(
        deployment.model_name,
        deployment.version,
        status,
        reason=reason,
        expected=(deployment.status,),
        **fields,
    )
    return deployment.model_copy(update={"status": status, "reason": reason, **fields})


# ------------------------------------------------------------------------------------------- approval


class ApprovalRefused(Exception):
    """The version cannot be approved; `code` says why (ModelNotFound, VersionNotFound,
    VersionNotPendingApproval)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ModelApprovals:
    """What the approve route needs: the records and SageMaker (UpdateModelPackage)."""

    records: DeploymentRecords
    sagemaker: SageMakerAdapter

    def approve(self, model_name: str, version: int, description: str | None) -> Deployment:
        return approve_version(model_name, version, description, self.records, self.sagemaker)


def approve_version(
    model_name: str,
    version: int,
    description: str | None,
    records: DeploymentRecords,
    sagemaker: SageMakerAdapter,
) -> Deployment:
    """Approve a PendingApproval version's package; its deployment starts on the state-change event."""
    deployment = records.get_deployment(model_name, version)
    if deployment is None:
        if not records.list_deployments(model_name, limit=1):
            raise ApprovalRefused("ModelNotFound", f"No model named '{model_name}'.")
        raise ApprovalRefused("VersionNotFound", f"Model '{model_name}' has no version {version}.")
    if deployment.model_package_arn is None or deployment.status is not DeploymentStatus.PENDING_APPROVAL:
        raise ApprovalRefused(
            "VersionNotPendingApproval",
            f"Version {version} of '{model_name}' is not waiting for approval "
            f"(it is {deployment.status.value}"
            + (f", its package {deployment.approval_status}" if deployment.approval_status else "")
            + '); only versions uploaded with "approval": "manual" wait for one.',
        )
    sagemaker.update_model_package(
        deployment.model_package_arn,
        approval_status=ApprovalStatus.APPROVED.value,
        approval_description=_clip(description or "approved through modeldrop's API"),
    )
    logger.info("model version approved", extra={"model": model_name, "version": version})
    return deployment.model_copy(update={"approval_status": ApprovalStatus.APPROVED.value})


# ------------------------------------------------------------------------------------ state change


class ModelPackageStateChange(BaseModel):
    """The `detail` of "SageMaker Model Package State Change": the package as DescribeModelPackage
    describes it (docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ModelPackageGroupName: str
    ModelPackageVersion: int = Field(ge=1)
    ModelPackageArn: str
    ModelApprovalStatus: ApprovalStatus
    ApprovalDescription: str | None = None


class ModelPackageStateChangeEvent(EventBridgeModel):
    detail: ModelPackageStateChange


class StateChangeOutcome(BaseModel):
    """What the approval function did with one event (its answer, and what the tests check)."""

    model_config = ConfigDict(frozen=True)

    action: str  # started | rejected | superseded | recorded | ignored
    model_name: str | None = None
    version: int | None = None
    status: str | None = None
    reason: str | None = None


# Starts a recorded Queued deployment: the rollout's one way to start one (send it to SageMaker or queue
# it, touch the model item, follow it with the deploy state machine). Returns the deployment as recorded.
StartDeployment = Callable[[Deployment], Deployment]


@dataclass(frozen=True)
class ApprovalDependencies:
    records: DeploymentRecords
    sagemaker: SageMakerAdapter
    start: StartDeployment


def handle_state_change(change: ModelPackageStateChange, deps: ApprovalDependencies) -> StateChangeOutcome:
    """Act on one approval change of a modeldrop package (see the module docstring).

    SageMaker may send an event more than once, and sends one when a package is created too: only a
    PendingApproval deployment is started or rejected, so a repeated or early event changes nothing.
    """
    prefix = naming.NAME_PREFIX
    if not change.ModelPackageGroupName.startswith(prefix):
        return StateChangeOutcome(
            action="ignored", reason=f"not a modeldrop group: {change.ModelPackageGroupName}"
        )
    model_name = change.ModelPackageGroupName[len(prefix) :]
    deployment = _deployment_of(model_name, change.ModelPackageArn, deps.records)
    logger.append_keys(model=model_name, model_package_arn=change.ModelPackageArn)
    if deployment is None:
        return StateChangeOutcome(
            action="ignored", model_name=model_name, reason="no modeldrop deployment has this package"
        )
    status = change.ModelApprovalStatus
    if deployment.status is not DeploymentStatus.PENDING_APPROVAL:
        # Approved at creation ("auto"), a repeated event, or a change after the fact: mirrored only,
        # so that a version rejected later is no longer offered for rollback.
        if deployment.approval_status != status.value:
            deps.records.update_deployment(
                model_name,
                deployment.version,
                deployment.status,
                reason=deployment.reason,
                approval_status=status.value,
            )
        return _outcome("recorded", deployment, deployment.status.value, deployment.reason)
    if status is ApprovalStatus.REJECTED:
        description = change.ApprovalDescription or _approval_description(change.ModelPackageArn, deps)
        reason = "rejected in the SageMaker Model Registry" + (f": {description}" if description else "")
        written = deps.records.update_deployment(
            model_name,
            deployment.version,
            DeploymentStatus.REJECTED,
            reason=reason,
            expected=(DeploymentStatus.PENDING_APPROVAL,),
            approval_status=status.value,
        )
        logger.info("model version rejected", extra={"reason": reason, "written": written})
        return _outcome("rejected", deployment, DeploymentStatus.REJECTED.value, reason)
    if status is ApprovalStatus.APPROVED:
        newer = _newer_deployment(deployment, deps.records)
        if newer is not None:
            # The live record follows version numbers (a newer version stays live), so deploying an older
            # one now would serve it behind the record's back.
            reason = (
                f"approved after v{newer.version} ({newer.status.value}) was deployed; "
                "upload it again to deploy it"
            )
            deps.records.update_deployment(
                model_name,
                deployment.version,
                DeploymentStatus.SUPERSEDED,
                reason=reason,
                expected=(DeploymentStatus.PENDING_APPROVAL,),
                approval_status=status.value,
            )
            return _outcome("superseded", deployment, DeploymentStatus.SUPERSEDED.value, reason)
        # PendingApproval → Queued is conditional: of two copies of the event, one starts the deployment.
        if not deps.records.update_deployment(
            model_name,
            deployment.version,
            DeploymentStatus.QUEUED,
            expected=(DeploymentStatus.PENDING_APPROVAL,),
            approval_status=status.value,
        ):
            current = deps.records.get_deployment(model_name, deployment.version) or deployment
            return _outcome("recorded", current, current.status.value, current.reason)
        queued = deployment.model_copy(
            update={"status": DeploymentStatus.QUEUED, "reason": None, "approval_status": status.value}
        )
        try:
            started = deps.start(queued)
        except Exception:
            # Unexpected (throttling, Step Functions): back to PendingApproval, so the retried event
            # (Lambda retries an asynchronous invocation) starts it from a clean slate.
            deps.records.update_deployment(
                model_name,
                deployment.version,
                DeploymentStatus.PENDING_APPROVAL,
                reason=deployment.reason,
                expected=(DeploymentStatus.QUEUED,),
            )
            raise
        logger.info("approved version started", extra={"status": started.status.value})
        return _outcome("started", started, started.status.value, started.reason)
    return _outcome("recorded", deployment, deployment.status.value, deployment.reason)


def _deployment_of(model_name: str, package_arn: str, records: DeploymentRecords) -> Deployment | None:
    """The upload whose package this is (one query of the model's deployments; rollbacks carry their
    target's package, so uploads are preferred)."""
    matching = [d for d in records.all_deployments(model_name) if d.model_package_arn == package_arn]
    uploads = [d for d in matching if not d.is_rollback]
    return next(iter(uploads or matching), None)


_LIVE_OR_ON_ITS_WAY = (DeploymentStatus.QUEUED, DeploymentStatus.DEPLOYING, DeploymentStatus.IN_SERVICE)


def _newer_deployment(deployment: Deployment, records: DeploymentRecords) -> Deployment | None:
    return next(
        (
            candidate
            for candidate in records.list_deployments(deployment.model_name, limit=50)
            if candidate.version > deployment.version and candidate.status in _LIVE_OR_ON_ITS_WAY
        ),
        None,
    )


def _approval_description(package_arn: str, deps: ApprovalDependencies) -> str | None:
    try:
        return deps.sagemaker.describe_model_package(package_arn).get("ApprovalDescription")
    except ClientError as error:
        logger.warning("could not read the approval description", extra={"error": str(error)})
        return None


def _outcome(action: str, deployment: Deployment, status: str, reason: str | None) -> StateChangeOutcome:
    return StateChangeOutcome(
        action=action,
        model_name=deployment.model_name,
        version=deployment.version,
        status=status,
        reason=reason,
    )


# ----------------------------------------------------------------------------------------- outcomes


def describe_outcome(deployment: Deployment, reason: str, sagemaker: SageMakerAdapter) -> bool:
    """Write a failed or rolled-back version's reason into its package's ApprovalDescription.

    Best effort: the deployment's own record already says it, and a registry hiccup must not fail the
    state machine's step. Returns whether the package was updated.
    """
    if deployment.is_rollback or not deployment.model_package_arn:
        return False  # a rollback carries its target's package: the outcome is not that version's
    try:
        sagemaker.update_model_package(
            deployment.model_package_arn, approval_description=_clip(f"modeldrop: {reason}")
        )
    except ClientError as error:
        logger.warning("could not describe the outcome on the model package", extra={"error": str(error)})
        return False
    return True


def is_approved(deployment: Deployment) -> bool:
    """Whether a version may serve: Approved in the registry (items from before the registry: yes)."""
    return deployment.approval_status in (None, ApprovalStatus.APPROVED.value)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def approval_dependencies(settings: ModelApprovalSettings | None = None) -> ApprovalDependencies:
    """The ModelApproval function's adapters, from its environment (template.yaml): an approved version
    starts the way every deployment does, through the rollout's `begin`."""
    # Imported here: the rollout imports modeldrop.rollback, which imports this module (is_approved).
    from modeldrop.rollout import DeployExecutions, Rollout

    settings = settings or ModelApprovalSettings.load()
    records = DeploymentRecords(boto3.resource("dynamodb").Table(settings.deployments_table))
    sagemaker = SageMakerAdapter(boto3.client("sagemaker"))
    rollout = Rollout(
        records=records,
        sagemaker=sagemaker,
        executions=DeployExecutions(
            boto3.client("stepfunctions"), settings.state_machine_arn, max_polls=settings.max_polls
        ),
    )
    return ApprovalDependencies(records=records, sagemaker=sagemaker, start=rollout.begin)
