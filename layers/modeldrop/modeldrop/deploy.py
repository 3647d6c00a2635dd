"""OnUpload's logic: one uploaded model.tar.gz → a recorded deployment and a state machine execution.

Order of work, so that a failure anywhere leaves a record saying so and never touches the live
endpoint before the new version is known to be deployable:
  1. the key names a model (else the upload is recorded under UPLOAD#REJECTED);
  2. the tarball is streamed from S3 (pinned to the event's object version) and inspected;
     the config (modeldrop.json) is parsed and resolved — any problem: status Rejected, no SageMaker call;
  3. what the real image needs is decided (serving_setup.py: container environment, generated
     code/inference.py, root files XGBoost must not see); the inspected object version is copied to
     deployments/<name>/<deploymentId>/model.tar.gz (SageMaker cannot be given a version) — byte for byte
     by one server-side copy, or repacked (repack.py) when files are added or left out — then
     CreateModel + CreateEndpointConfig (new names per version; the live endpoint is untouched);
  4. the version is registered in the SageMaker Model Registry (modeldrop.registry); with
     "approval": "manual" it is recorded PendingApproval and OnUpload stops here (the approval's
     state-change event hands it to the rollout later);
  5. the rollout (modeldrop.rollout) takes it from there: CreateEndpoint / UpdateEndpoint, or Queued
     when the endpoint is busy with another deployment, followed by the deploy state machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from modeldrop import naming
from modeldrop.deployments_table import DeploymentRecords, deployment_item
from modeldrop.events import UploadedObject
from modeldrop.frameworks import check_layout, framework_from_image
from modeldrop.guardrails import candidate
from modeldrop.guardrails.state import RolloutRecords
from modeldrop.model_config import ModelConfig, ResolvedConfig, parse_model_config, resolve_config
from modeldrop.observability import logger, metrics
from modeldrop.preflight import check_serverless_quotas
from modeldrop.reasons import error_summary
from modeldrop.records import Deployment, DeploymentStatus, utc_now
from modeldrop.registry import register_upload
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop.repack import compress_level_for, repack_to_s3
from modeldrop.rollout import DeployExecutions, Rollout
from modeldrop.sagemaker_adapter import SageMakerAdapter, client_error_text, is_transient
from modeldrop.serving_setup import ServingPlan, plan_serving
from modeldrop.settings import OnUploadSettings
from modeldrop.tarball import inspect_tarball


@dataclass(frozen=True)
class DeployDependencies:
    settings: OnUploadSettings
    s3: Any
    stepfunctions: Any
    sagemaker: SageMakerAdapter
    records: DeploymentRecords
    # Service Quotas, for the preflight (modeldrop.preflight); None skips it.
    service_quotas: Any = None
    # The model items' rollout attribute (modeldrop.guardrails): a new upload supersedes a bake.
    rollouts: RolloutRecords | None = None

    @classmethod
    def from_environment(cls, settings: OnUploadSettings | None = None) -> DeployDependencies:
        settings = settings or OnUploadSettings.load()
        table = boto3.resource("dynamodb").Table(settings.deployments_table)
        return cls(
            settings=settings,
            s3=boto3.client("s3"),
            stepfunctions=boto3.client("stepfunctions"),
            sagemaker=SageMakerAdapter(boto3.client("sagemaker")),
            records=DeploymentRecords(table),
            service_quotas=boto3.client("service-quotas"),
            rollouts=RolloutRecords(table),
        )

    @property
    def rollout(self) -> Rollout:
        executions = DeployExecutions(
            self.stepfunctions, self.settings.state_machine_arn, max_polls=self.settings.max_polls
        )
        return Rollout(records=self.records, sagemaker=self.sagemaker, executions=executions, s3=self.s3)


class UploadOutcome(BaseModel):
    """What happened to one upload (also what the idempotency layer stores and replays)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    bucket: str
    key: str
    object_version: str | None
    status: DeploymentStatus
    model_name: str | None = None
    version: int | None = None
    deployment_id: str | None = None
    reason: str | None = None
    execution_arn: str | None = None
    # The upload's version in the SageMaker Model Registry (modeldrop.registry).
    model_package_arn: str | None = None
    model_package_version: int | None = None


@dataclass(frozen=True)
class _Inspected:
    config: ResolvedConfig
    plan: ServingPlan


def handle_upload(upload: UploadedObject, deps: DeployDependencies) -> UploadOutcome:
    """Deploy one uploaded object (see the module docstring). Never raises for a bad upload."""
    try:
        model_name = naming.model_name_from_key(upload.key)
    except UploadRejected as rejection:
        deps.records.record_rejected_key(upload.bucket, upload.key, upload.object_version, rejection.reason)
        logger.warning(
            "upload rejected", extra={"key": upload.key, "code": rejection.code, "reason": rejection.reason}
        )
        _count("UploadRejected")
        return UploadOutcome(
            bucket=upload.bucket,
            key=upload.key,
            object_version=upload.object_version,
            status=DeploymentStatus.REJECTED,
            reason=rejection.reason,
        )

    version = deps.records.next_version(model_name)
    now = utc_now()
    deployment = Deployment(
        deployment_id=naming.deployment_id(
            model_name, version, upload.bucket, upload.key, upload.object_version
        ),
        model_name=model_name,
        version=version,
        bucket=upload.bucket,
        key=upload.key,
        object_version=upload.object_version,
        etag=upload.etag,
        status=DeploymentStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    logger.append_keys(model=model_name, deployment_id=deployment.deployment_id)

    try:
        inspected = _inspect(upload, model_name, deps)
    except UploadRejected as rejection:
        deps.records.put_deployment(
            deployment.model_copy(update={"status": DeploymentStatus.REJECTED, "reason": rejection.reason})
        )
        logger.warning("upload rejected", extra={"code": rejection.code, "reason": rejection.reason})
        _count("UploadRejected")
        return _outcome(upload, deployment, DeploymentStatus.REJECTED, rejection.reason)
    except Exception as error:
        # Unexpected (reading S3, a bug): recorded, then re-raised so that Lambda retries the event.
        reason = _internal_error_reason("inspecting the tarball", error)
        deps.records.put_deployment(
            deployment.model_copy(update={"status": DeploymentStatus.FAILED, "reason": reason})
        )
        raise

    # The record's config holds what CreateModel gets: the environment includes what OnUpload added
    # (servingSetup says which keys, and which files).
    config = inspected.config.model_copy(update={"environment": inspected.plan.environment})
    deployment = deployment.model_copy(update={"config": config, "serving_setup": inspected.plan.record})
    # Recorded before any SageMaker call, so even a crash mid-way leaves the upload visible.
    deps.records.put_deployment(deployment)
    try:
        return _deploy_recorded(upload, deployment, config, inspected.plan, deps)
    except Exception as error:
        # Unexpected (S3, DynamoDB, Step Functions, SageMaker throttling): the record must not stay Queued
        # with nothing to follow it. Re-raised, so Lambda retries the event (as a new deployment: the
        # idempotency record of a failed attempt is released).
        reason = _internal_error_reason("deploying", error)
        deps.records.update_deployment(
            model_name, version, DeploymentStatus.FAILED, reason=reason, expected=(DeploymentStatus.QUEUED,)
        )
        raise


def _internal_error_reason(step: str, error: Exception) -> str:
    """One sentence for the record (the uploader reads it); the trace goes to the log."""
    logger.exception(f"internal error while {step}")
    return f"internal error while {step}, retried: {error_summary(error)}"


def _deploy_recorded(
    upload: UploadedObject,
    deployment: Deployment,
    config: ResolvedConfig,
    plan: ServingPlan,
    deps: DeployDependencies,
) -> UploadOutcome:
    model_name, version = deployment.model_name, deployment.version
    # A configured rollout bakes the new version on an endpoint of its own beside the live one.
    if candidate.bakes(config, deps.records.get_model(model_name)):
        deployment = deployment.model_copy(update={"candidate": True})
        deps.records.update_deployment(model_name, version, deployment.status, candidate=True)
    try:
        config, note = _preflight(deployment, config, deps)
    except UploadRejected as rejection:
        refusal = rejection.reason
        deps.records.update_deployment(model_name, version, DeploymentStatus.REJECTED, reason=refusal)
        logger.warning("upload rejected by the preflight", extra={"code": rejection.code, "reason": refusal})
        _count("UploadRejected")
        return _outcome(upload, deployment, DeploymentStatus.REJECTED, refusal)
    if note is not None:
        # The stack's default concurrency was lowered to fit the account: the record says what, and why.
        setup = deployment.serving_setup or plan.record
        setup = setup.model_copy(update={"notes": [*setup.notes, note]})
        deployment = deployment.model_copy(update={"config": config, "serving_setup": setup})
        item = deployment_item(deployment)
        deps.records.update_deployment(
            model_name,
            version,
            DeploymentStatus.QUEUED,
            config=item["config"],
            serving_setup=item["servingSetup"],
        )
    try:
        _pin_model_data(deployment, plan, deps)
        _create_sagemaker_resources(deployment, config, deps)
        deployment = register_upload(deployment, config, deps.sagemaker, deps.records)
    except ClientError as error:
        if is_transient(error):
            raise
        # SageMaker refused the model or config (e.g. an image it cannot use, a quota).
        reason = f"SageMaker refused the deployment: {client_error_text(error)}"
        deps.records.update_deployment(model_name, version, DeploymentStatus.FAILED, reason=reason)
        logger.warning("SageMaker refused the deployment", extra={"reason": reason})
        _count("DeploymentFailed")
        return _outcome(upload, deployment, DeploymentStatus.FAILED, reason)

    if deployment.status is DeploymentStatus.PENDING_APPROVAL:
        # "approval": "manual": the endpoint is left alone until the package is approved.
        logger.info("deployment waits for approval", extra={"package": deployment.model_package_arn})
        _count("DeploymentPendingApproval")
        return _outcome(upload, deployment, DeploymentStatus.PENDING_APPROVAL, deployment.reason)
    if deps.rollouts is not None:
        # Last upload wins: a candidate still baking stops taking traffic; its execution cleans up.
        candidate.supersede_bake(model_name, deployment, deps.rollouts)
    # A candidate (deployment.candidate) is begun on its own endpoint (Rollout.begin_candidate).
    begun = deps.rollout.begin(deployment)
    if begun.status is DeploymentStatus.FAILED:
        _count("DeploymentFailed")
        return _outcome(upload, deployment, DeploymentStatus.FAILED, begun.reason)
    _count("DeploymentStarted" if begun.status is DeploymentStatus.DEPLOYING else "DeploymentQueued")
    logger.info(
        "deployment recorded", extra={"status": begun.status.value, "execution_arn": begun.execution_arn}
    )
    result = _outcome(upload, deployment, begun.status, None)
    return result.model_copy(update={"execution_arn": begun.execution_arn})


def _preflight(
    deployment: Deployment, config: ResolvedConfig, deps: DeployDependencies
) -> tuple[ResolvedConfig, str | None]:
    """The config with a MaxConcurrency the account's serverless quotas leave room for, and a note when the
    default was lowered for it; UploadRejected when there is no room (modeldrop.preflight). A candidate's
    own endpoint comes in addition to the live one, which keeps its concurrency meanwhile."""
    if deps.service_quotas is None:
        return config, None
    fit = check_serverless_quotas(
        endpoint_name=deployment.serving_endpoint_name,
        max_concurrency=config.max_concurrency,
        sagemaker=deps.sagemaker.client,
        service_quotas=deps.service_quotas,
        fit_default=not config.max_concurrency_set,
        at_least=config.provisioned_concurrency,
    )
    if fit.max_concurrency == config.max_concurrency:
        return config, None
    return config.model_copy(update={"max_concurrency": fit.max_concurrency}), fit.note


_SINGLE_COPY_UP_TO_5_GIB = TransferConfig(multipart_threshold=5 * 2**30, multipart_chunksize=512 * 2**20)


def _pin_model_data(deployment: Deployment, plan: ServingPlan, deps: DeployDependencies) -> None:
    """Put the model SageMaker will read at deployments/<name>/<deploymentId>/model.tar.gz.

    ModelDataUrl cannot name an S3 object version (botocore's ContainerDefinition and S3ModelDataSource
    have no VersionId), and SageMaker reads the object only when the endpoint is created or updated —
    maybe much later for a queued deployment. So the exact version we inspected is copied to an
    immutable per-deployment key and SageMaker is pointed there: what it serves is what we checked.
    """
    source: dict[str, str] = {"Bucket": deployment.bucket, "Key": deployment.key}
    if deployment.object_version:
        source["VersionId"] = deployment.object_version
    key = _model_data_key(deployment)
    if plan.needs_repack:
        # Files added or left out: the copy is rewritten, streamed through this function.
        repack_to_s3(
            deps.s3,
            source,
            deployment.bucket,
            key,
            add=plan.add_members,
            leave_out=set(plan.leave_out),
            limits=deps.settings.tarball_limits(),
            compresslevel=compress_level_for(plan.uncompressed_bytes),
        )
        return
    # A single server-side CopyObject up to S3's 5 GiB limit, multipart only above (tarballs may be up to
    # MaxUncompressedMB). boto3's default threshold (8 MiB) would turn every real model into a multipart copy.
    deps.s3.copy(source, deployment.bucket, key, Config=_SINGLE_COPY_UP_TO_5_GIB)


def _create_sagemaker_resources(
    deployment: Deployment, config: ResolvedConfig, deps: DeployDependencies
) -> None:
    name = deployment.sagemaker_model_name
    deps.sagemaker.create_model(
        name,
        image=config.image,
        model_data_url=f"s3://{deployment.bucket}/{_model_data_key(deployment)}",
        role_arn=deps.settings.sagemaker_role_arn,
        environment=config.environment,
    )
    deps.sagemaker.create_endpoint_config(
        name,
        model_name=name,
        memory_mb=config.memory_mb,
        max_concurrency=config.max_concurrency,
        provisioned_concurrency=config.provisioned_concurrency,
    )


def _model_data_key(upload: Deployment) -> str:
    if upload.model_data_key is None:
        raise ValueError(f"{upload.deployment_id} is a rollback: it has no model data of its own")
    return upload.model_data_key


def _inspect(upload: UploadedObject, model_name: str, deps: DeployDependencies) -> _Inspected:
    """Stream and check the tarball, resolve its config, plan its serving; UploadRejected says why not."""
    request: dict[str, Any] = {"Bucket": upload.bucket, "Key": upload.key}
    if upload.object_version:
        request["VersionId"] = upload.object_version
    body = deps.s3.get_object(**request)["Body"]
    try:
        report = inspect_tarball(body, deps.settings.tarball_limits())
    finally:
        body.close()

    user_config = _model_config(report.config_bytes, upload, model_name, deps)
    config = resolve_config(
        user_config,
        defaults=deps.settings.config_defaults(),
        detected_framework=report.framework,
        uncompressed_bytes=report.uncompressed_bytes,
        region=deps.settings.region,
        has_inference_code=report.has_inference_code,
    )
    check_layout(framework_from_image(config.image), report.files, report.has_inference_code)
    plan = plan_serving(report, user_config, config, deps.settings.region)
    return _Inspected(config=config, plan=plan)


def _model_config(
    embedded: bytes | None, upload: UploadedObject, model_name: str, deps: DeployDependencies
) -> ModelConfig | None:
    """modeldrop.json from inside the tarball, else from the sibling object models/<name>/modeldrop.json.

    The tarball's copy wins: it is versioned together with the model it describes, whereas the
    sibling object can change independently of (and race with) the upload.
    """
    if embedded is not None:
        return parse_model_config(embedded, source="modeldrop.json in model.tar.gz")
    key = naming.config_key(model_name)
    try:
        raw = deps.s3.get_object(Bucket=upload.bucket, Key=key)["Body"].read(64 * 1024 + 1)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
            return None
        raise
    if len(raw) > 64 * 1024:
        raise UploadRejected(RejectionCode.CONFIG, f"{key}: larger than 64 KiB")
    return parse_model_config(raw, source=key)


def _outcome(
    upload: UploadedObject, deployment: Deployment, status: DeploymentStatus, reason: str | None
) -> UploadOutcome:
    return UploadOutcome(
        bucket=upload.bucket,
        key=upload.key,
        object_version=upload.object_version,
        status=status,
        model_name=deployment.model_name,
        version=deployment.version,
        deployment_id=deployment.deployment_id,
        reason=reason,
        model_package_arn=deployment.model_package_arn,
        model_package_version=deployment.model_package_version,
    )


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def outcome_json(outcome: UploadOutcome) -> dict[str, Any]:
    return dict(json.loads(outcome.model_dump_json(by_alias=True)))


# An S3 object version is immutable, so (bucket, key, version) identifies the upload for good; the
# window only bounds how long the idempotency records are kept. The ETag joins the key for buckets
# without versioning (no versionId): there a new upload of the same key differs by content.
IDEMPOTENCY_WINDOW_SECONDS = 7 * 24 * 3600


def idempotent_deployer(
    deps: DeployDependencies, persistence: Any | None = None
) -> tuple[Any, IdempotencyConfig]:
    """handle_upload made idempotent on (bucket, key, object version) with the IdempotencyTable.

    Returns the deploy function (call it with upload=...) and its config (register the Lambda context on it).
    """
    store = persistence or DynamoDBPersistenceLayer(table_name=deps.settings.idempotency_table)
    config = IdempotencyConfig(
        event_key_jmespath="[bucket, key, object_version, etag]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
    )

    @idempotent_function(
        data_keyword_argument="upload",
        persistence_store=store,
        config=config,
        output_serializer=PydanticSerializer(model=UploadOutcome),
    )
    def deploy_once(upload: UploadedObject) -> UploadOutcome:
        return handle_upload(upload, deps)

    return deploy_once, config
