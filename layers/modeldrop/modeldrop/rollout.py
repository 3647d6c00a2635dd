"""The rollout: the one place that switches a model's endpoint from one version to another.

Every change of what an endpoint serves goes through `Rollout`, whoever asks for it:

  begin          a recorded, Queued deployment (an upload from OnUpload, a rollback from the Api function)
                 is sent to SageMaker (CreateEndpoint / UpdateEndpoint) or queued behind the deployment in
                 flight, the model item is touched, and the deploy state machine is started to follow it
                 (execution name = deployment id: a retried start never runs two).
  take_turn      inside that execution, a Queued deployment asks again whether the endpoint is free.
  go_live        the endpoint is InService on this deployment's config: record it live (one transaction
                 with the model item), then clean old versions.
  roll_back      on demand (POST /models/{name}/rollback): restore a kept version (modeldrop.rollback
                 decides which), as a deployment of its own that `begin` starts.
  roll_back_failed  inside a failed smoke test's execution: restore the version that was live before;
                 the running execution follows the rollback (no second execution).
  clean_old_versions  delete the SageMaker models, endpoint configs and pinned tarballs beyond KeepVersions.
  resume_in_flight  (a function) for a host that lost its executions: start them again.

What stays with the callers: OnUpload (modeldrop.deploy) checks the upload and creates the new version's
SageMaker model and endpoint config; the DeploymentStatus function (modeldrop.deployment_status) runs the
state machine's steps and records their outcomes; modeldrop.rollback chooses which kept version to restore.

Where the next features plug in (the entry points' docstrings say how):
  - an approval gate (SageMaker Model Registry): the upload is recorded PendingApproval instead of being
    begun; when its model package is approved, the approval handler calls `begin` with it;
  - canary / shadow (modeldrop.guardrails): `begin_candidate` begins the candidate on its own endpoint
    (Deployment.candidate_endpoint_name); after the bake the state machine calls `promote` (switch the
    model's endpoint to it, then `go_live`) or the candidate is dropped (`drop_candidate`, the live
    version untouched). The routing of requests during the bake is modeldrop.guardrails' own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from modeldrop.deployments_table import DeploymentRecords, GoLive
from modeldrop.events import ExecutionInput
from modeldrop.observability import logger
from modeldrop.records import Deployment, DeploymentStatus
from modeldrop.rollback import plan_rollback, rollback_deployment
from modeldrop.sagemaker_adapter import (
    BROKEN_STATUSES,
    BUSY_STATUSES,
    EndpointBusy,
    SageMakerAdapter,
    client_error_text,
    is_transient,
)
from modeldrop.settings import OnUploadSettings

# A deployment in one of these states is still being rolled out: its execution may write to it.
IN_FLIGHT = (DeploymentStatus.QUEUED, DeploymentStatus.DEPLOYING)


@dataclass(frozen=True)
class DeployExecutions:
    """Starts the deploy state machine (Step Functions) that follows one deployment to its outcome."""

    stepfunctions: Any
    state_machine_arn: str
    # How many DescribeEndpoint polls an execution makes before it records TimedOut.
    max_polls: int

    def start(self, deployment: Deployment) -> str:
        """Start the execution following `deployment` (named by its deployment id); its ARN.

        StartExecution is idempotent on the name only while the input is the same, and answers
        ExecutionAlreadyExists otherwise (AWS Step Functions API Reference, StartExecution): a retried
        start (a Lambda retry, a resume after a restart) gets the running execution's ARN.
        """
        payload = execution_input(deployment, self.max_polls)
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=deployment.deployment_id,
                input=payload.model_dump_json(by_alias=True),
            )
        except self.stepfunctions.exceptions.ExecutionAlreadyExists:
            arn_prefix = self.state_machine_arn.replace(":stateMachine:", ":execution:")
            return f"{arn_prefix}:{deployment.deployment_id}"
        return str(response["executionArn"])


def resume_in_flight(environment: Mapping[str, str], *, dynamodb: Any, stepfunctions: Any) -> list[str]:
    """The hook for a host of the stack whose Step Functions executions were lost while its tables were
    kept (the local cloud restarted on its state directory): start again the execution of every
    deployment still Queued or Deploying, with the input it was started with. A Deploying one resumes
    at its poll loop, a Queued one waits for its turn. Returns the deployment ids resumed.

    `environment` is OnUpload's (the table, the state machine, the deploy timeout: modeldrop.settings);
    `dynamodb` a boto3 DynamoDB resource and `stepfunctions` a Step Functions client of that host.
    """
    settings = OnUploadSettings.load(environment)
    records = DeploymentRecords(dynamodb.Table(settings.deployments_table))
    executions = DeployExecutions(stepfunctions, settings.state_machine_arn, max_polls=settings.max_polls)
    in_flight = records.deployments_in(IN_FLIGHT)
    for deployment in in_flight:
        executions.start(deployment)
    return [deployment.deployment_id for deployment in in_flight]


def execution_input(deployment: Deployment, max_polls: int) -> ExecutionInput:
    """What an execution following `deployment` starts with (or, for a rollback after a failed smoke
    test, goes on with): it waits for its turn when the deployment is Queued, else polls the endpoint.
    A canary or shadow candidate's execution follows its own endpoint first (rolloutPhase candidate)."""
    rollout = deployment.config.rollout if deployment.candidate and deployment.config else None
    return ExecutionInput(
        deployment_id=deployment.deployment_id,
        model_name=deployment.model_name,
        version=deployment.version,
        endpoint_name=deployment.serving_endpoint_name if rollout else deployment.endpoint_name,
        endpoint_config_name=deployment.endpoint_config_name,
        status="Queued" if deployment.status is DeploymentStatus.QUEUED else "Deploying",
        max_polls=max_polls,
        rollout=rollout.strategy if rollout else None,
        rollout_phase="candidate" if rollout else None,
    )


@dataclass(frozen=True)
class Rollout:
    """Switches a model's endpoint between versions (see the module docstring).

    `executions` is None in the DeploymentStatus function: it runs inside an execution and starts none.
    `s3` and `keep_versions` serve `clean_old_versions` (pinned tarball copies are deleted with S3).
    """

    records: DeploymentRecords
    sagemaker: SageMakerAdapter
    executions: DeployExecutions | None = None
    s3: Any = None
    keep_versions: int = 3

    # ---------------------------------------------------------------- starting a deployment
    def begin(self, deployment: Deployment) -> Deployment:
        """Send a recorded Queued deployment to its endpoint (or queue it) and start the execution that
        follows it; returns the deployment as recorded (Deploying or Queued, with its execution ARN).

        The one entry point for every deployment that is to start switching the endpoint: OnUpload's
        upload once its SageMaker model and endpoint config exist, the rollback route's rollback, and —
        for an approval gate — a deployment recorded PendingApproval once its model package is approved
        (the approval handler records it Queued, then calls this; nothing else changes).

        SageMaker refusing the endpoint change is recorded: the deployment is returned Failed with the
        reason, the live version keeps serving. A transient SageMaker error (throttling, an internal
        failure) is raised for an upload, whose event Lambda retries, and recorded for a rollback, a
        request nobody retries.
        """
        if deployment.candidate:
            return self.begin_candidate(deployment)
        executions = self._executions()
        try:
            status, endpoint_status = self._start_or_queue(deployment)
        except ClientError as error:
            if is_transient(error) and not deployment.is_rollback:
                raise
            return self._refused(deployment, error)
        self._record_switch(deployment, status, endpoint_status)
        switched = deployment.model_copy(update={"status": status})
        execution_arn = executions.start(switched)
        self.records.update_deployment(
            deployment.model_name, deployment.version, status, execution_arn=execution_arn
        )
        return switched.model_copy(update={"execution_arn": execution_arn})

    def begin_candidate(self, deployment: Deployment) -> Deployment:
        """A canary or shadow candidate (modeldrop.guardrails): its config on an endpoint of its own
        (CreateEndpoint), the model's endpoint and its item untouched, and the execution that follows the
        candidate's endpoint through its smoke test and its bake. SageMaker's refusal is recorded as in
        `begin`."""
        executions = self._executions()
        endpoint_name = deployment.candidate_endpoint_name
        try:
            if self.sagemaker.describe_endpoint(endpoint_name) is None:  # a retried upload made it already
                self.sagemaker.create_endpoint(endpoint_name, deployment.endpoint_config_name)
        except ClientError as error:
            if is_transient(error):
                raise
            return self._refused(deployment, error)
        self.records.update_deployment(deployment.model_name, deployment.version, DeploymentStatus.DEPLOYING)
        baking = deployment.model_copy(update={"status": DeploymentStatus.DEPLOYING})
        execution_arn = executions.start(baking)
        self.records.update_deployment(
            deployment.model_name, deployment.version, DeploymentStatus.DEPLOYING, execution_arn=execution_arn
        )
        return baking.model_copy(update={"execution_arn": execution_arn})

    def promote(self, deployment: Deployment) -> DeploymentStatus:
        """A baked candidate goes live the way every version does: the model's endpoint takes its config
        (UpdateEndpoint, or Queued behind a deployment in flight); its execution then follows that switch
        to `go_live`. Returns Deploying or Queued."""
        status, endpoint_status = self._start_or_queue(deployment)
        self._record_switch(deployment, status, endpoint_status, expected=IN_FLIGHT)
        return status

    def drop_candidate(self, deployment: Deployment) -> None:
        """A candidate rolled back, aborted, superseded or promoted: its own endpoint goes (the model's
        endpoint is never touched here). Deleting one already gone is fine (a replayed step)."""
        self.sagemaker.delete_endpoint(deployment.candidate_endpoint_name)

    def take_turn(self, deployment: Deployment) -> DeploymentStatus:
        """A Queued deployment's execution asks again: Deploying once the endpoint took its config, else
        still Queued. Only a Queued record is moved on, so a replayed step changes nothing."""
        status, endpoint_status = self._start_or_queue(deployment)
        if status is DeploymentStatus.DEPLOYING:
            self._record_switch(deployment, status, endpoint_status, expected=(DeploymentStatus.QUEUED,))
        return status

    # ---------------------------------------------------------------- finishing one
    def go_live(self, deployment: Deployment) -> GoLive:
        """The endpoint is InService on this deployment's config: record the deployment InService and the
        model item pointing at it (one transaction), then delete versions beyond KeepVersions.

        NOT_IN_FLIGHT when a late or replayed step finds the deployment finished already (nothing
        written, nothing cleaned). A canary's promote ends here too, once the model's endpoint serves
        the candidate's config.
        """
        outcome = self.records.go_live(deployment, expected=IN_FLIGHT)
        if outcome is not GoLive.NOT_IN_FLIGHT:
            self.clean_old_versions(deployment.model_name)
        return outcome

    # ---------------------------------------------------------------- going back
    def roll_back(self, model_name: str, requested: int | None) -> Deployment:
        """Roll the model back to the kept version `requested` (None: the one live before the live one).

        The rollback is a deployment of its own (a new version number, kind Rollback) recorded Queued and
        started by `begin`. modeldrop.rollback's RollbackRefused / UnknownModel say why it cannot be done.
        """
        plan = plan_rollback(model_name, requested, self.records)
        deployment = rollback_deployment(plan.target, self.records.next_version(model_name))
        self.records.put_deployment(deployment)
        logger.info(
            "rollback requested",
            extra={"model": model_name, "rollback_to": plan.target.version, "from": plan.live.serves_version},
        )
        return self.begin(deployment)

    def roll_back_failed(self, failed: Deployment) -> Deployment | None:
        """`failed` (InService, smoke test failed) is not made live: record a rollback to the version live
        before it and send it to the endpoint (or queue it); None when there is none left to restore.

        The execution of `failed` follows the rollback next (give it `execution_input(rollback, ...)`),
        so no execution is started. The caller records `failed`'s own outcome. A canary's abort is the
        sibling of this: the candidate is dropped, but the live version was never switched away from.
        """
        model = self.records.get_model(failed.model_name)
        previous = (
            next(
                (
                    candidate
                    for candidate in self.records.all_deployments(failed.model_name)
                    if candidate.deployment_id == model.live_deployment_id
                ),
                None,
            )
            if model is not None and model.live_deployment_id
            else None
        )
        target = self.records.get_deployment(failed.model_name, previous.serves_version) if previous else None
        if target is None or target.sagemaker_deleted:
            return None
        version = self.records.next_version(failed.model_name)
        rollback = rollback_deployment(target, version).model_copy(
            update={"rolled_back_from": failed.version}
        )
        self.records.put_deployment(rollback)
        status, endpoint_status = self._start_or_queue(rollback)
        self._record_switch(rollback, status, endpoint_status, expected=IN_FLIGHT)
        return rollback.model_copy(update={"status": status})

    # ---------------------------------------------------------------- cleaning up
    def clean_old_versions(self, model_name: str) -> list[str]:
        """Delete the SageMaker models, endpoint configs and pinned tarball copies of all but the newest
        `keep_versions` uploads that reached SageMaker.

        The live deployment and in-flight ones are never deleted, nor a version a live or in-flight
        rollback serves. Returns the names deleted.
        """
        model = self.records.get_model(model_name)
        live_id = model.live_deployment_id if model else None
        newest_first = list(reversed(self.records.all_deployments(model_name)))
        # A rollback owns nothing: it reuses a kept version's model and config, which must then survive
        # for as long as the rollback is live or in flight.
        in_use = {
            deployment.endpoint_config_name
            for deployment in newest_first
            if deployment.deployment_id == live_id or deployment.status in IN_FLIGHT
        }
        # Rejected ones (the preflight refuses after the names are recorded) never created anything.
        reached_sagemaker = [
            deployment
            for deployment in newest_first
            if not deployment.is_rollback and deployment.status is not DeploymentStatus.REJECTED
        ]
        deleted: list[str] = []
        for deployment in reached_sagemaker[self.keep_versions :]:
            if (
                deployment.sagemaker_deleted
                or deployment.deployment_id == live_id
                or deployment.status in IN_FLIGHT
                # a version waiting for approval deploys its own model and config once approved
                or deployment.status is DeploymentStatus.PENDING_APPROVAL
                or deployment.endpoint_config_name in in_use
            ):
                continue
            self.sagemaker.delete_endpoint_config(deployment.endpoint_config_name)
            self.sagemaker.delete_model(deployment.sagemaker_model_name)
            if deployment.model_data_key:
                self.s3.delete_object(Bucket=deployment.bucket, Key=deployment.model_data_key)
            self.records.update_deployment(
                model_name,
                deployment.version,
                deployment.status,
                reason=deployment.reason,
                sagemaker_deleted=True,
            )
            deleted.append(deployment.sagemaker_model_name)
        if deleted:
            logger.info("deleted old SageMaker versions", extra={"deleted": deleted})
        return deleted

    # ---------------------------------------------------------------- the switch itself
    def _record_switch(
        self,
        deployment: Deployment,
        status: DeploymentStatus,
        endpoint_status: str,
        expected: tuple[DeploymentStatus, ...] = (),
    ) -> None:
        """The deployment's status, and the model item's endpoint status and last deployment."""
        self.records.update_deployment(deployment.model_name, deployment.version, status, expected=expected)
        self._touch_model(deployment, endpoint_status)

    def _start_or_queue(self, deployment: Deployment) -> tuple[DeploymentStatus, str]:
        """Send the deployment's config to the endpoint if it is free; Queued if another deployment is in
        flight. Returns the deployment status and the endpoint status to record on the model item."""
        endpoint_name, config_name = deployment.endpoint_name, deployment.endpoint_config_name
        endpoint = self.sagemaker.describe_endpoint(endpoint_name)
        if endpoint is None:
            self.sagemaker.create_endpoint(endpoint_name, config_name)
            return DeploymentStatus.DEPLOYING, "Creating"
        if endpoint.status in BUSY_STATUSES:
            return DeploymentStatus.QUEUED, endpoint.status
        if endpoint.status in BROKEN_STATUSES:
            # A Failed endpoint cannot be updated, only replaced: delete it; the queued deployment
            # creates it afresh on its next turn, once the deletion is over.
            logger.info("deleting broken endpoint", extra={"endpoint_status": endpoint.status})
            self.sagemaker.delete_endpoint(endpoint_name)
            return DeploymentStatus.QUEUED, "Deleting"
        try:
            self.sagemaker.update_endpoint(endpoint_name, config_name)
        except EndpointBusy:
            return DeploymentStatus.QUEUED, "Updating"
        return DeploymentStatus.DEPLOYING, "Updating"

    def _touch_model(self, deployment: Deployment, endpoint_status: str) -> None:
        self.records.touch_model(
            deployment.model_name,
            deployment.endpoint_name,
            status=endpoint_status,
            last_deployment_id=deployment.deployment_id,
        )

    def _refused(self, deployment: Deployment, error: ClientError) -> Deployment:
        what = "rollback" if deployment.is_rollback else "deployment"
        reason = f"SageMaker refused the {what}: {client_error_text(error)}"
        self.records.update_deployment(
            deployment.model_name, deployment.version, DeploymentStatus.FAILED, reason=reason
        )
        logger.warning(f"SageMaker refused the {what}", extra={"reason": reason})
        return deployment.model_copy(update={"status": DeploymentStatus.FAILED, "reason": reason})

    def _executions(self) -> DeployExecutions:
        if self.executions is None:
            raise RuntimeError("this Rollout starts no executions (it runs inside one)")
        return self.executions
