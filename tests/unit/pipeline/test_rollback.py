"""Rollback on demand (modeldrop.rollback): which version it restores, what it records and starts, and
what it refuses; on moto DynamoDB and Step Functions, SageMaker stubbed with exact request shapes."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from modeldrop.api.dependencies import ApiDependencies
from modeldrop.api.routes import create_resolver
from modeldrop.deployments_table import DeploymentRecords, GoLive
from modeldrop.records import Deployment, DeploymentKind, DeploymentStatus
from modeldrop.rollback import RollbackRefused
from modeldrop.rollout import IN_FLIGHT, DeployExecutions, Rollout, resume_in_flight

from tests.unit.api.support import assert_matches_schema, fake_lambda_context
from tests.unit.pipeline.conftest import Stack, StubbedSageMaker, status_dependencies
from tests.unit.pipeline.template_resources import REGION
from tests.unit.pipeline.test_deployment_status import describe, seed
from tests.utils import load_event


def _live(stack: Stack, *versions: int) -> list[Deployment]:
    """Uploads 1..n went InService one after the other; the last one is live."""
    records = stack.records()
    deployments = [seed(stack, version, DeploymentStatus.IN_SERVICE) for version in versions]
    for deployment in deployments:
        assert records.go_live(deployment, expected=(DeploymentStatus.IN_SERVICE,)) is GoLive.LIVE
    return deployments


def _deps(stack: Stack, sagemaker: StubbedSageMaker) -> Rollout:
    executions = DeployExecutions(
        boto3.client("stepfunctions", region_name=REGION), stack.state_machine_arn, max_polls=60
    )
    return Rollout(records=stack.records(), sagemaker=sagemaker.adapter, executions=executions)


def _expect_switch(sagemaker: StubbedSageMaker, current: str, target: str) -> None:
    sagemaker.stubber.add_response(
        "describe_endpoint", describe("InService", current), {"EndpointName": "modeldrop-iris"}
    )
    sagemaker.stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/modeldrop-iris"},
        {"EndpointName": "modeldrop-iris", "EndpointConfigName": target},
    )


def test_rollback_restores_the_previous_live_version_through_the_state_machine(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    # Given v1 then v2 went live
    _live(stack, 1, 2)
    _expect_switch(sagemaker, current="modeldrop-iris-v2", target="modeldrop-iris-v1")

    # When a rollback without a version is requested
    deployment = _deps(stack, sagemaker).roll_back("iris", None)

    # Then a deployment v3 of kind Rollback switches the endpoint back to v1's config, Deploying
    sagemaker.stubber.assert_no_pending_responses()
    record = stack.records().get_deployment("iris", 3)
    assert record is not None and record == stack.records().get_deployment("iris", deployment.version)
    assert (record.kind, record.rollback_to, record.status) == (
        DeploymentKind.ROLLBACK,
        1,
        DeploymentStatus.DEPLOYING,
    )
    assert record.sagemaker_model_name == record.endpoint_config_name == "modeldrop-iris-v1"
    # And the deploy state machine follows it like an upload, on v1's config
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=record.execution_arn
    )
    assert json.loads(execution["input"]) | {"maxPolls": 60} == {
        "deploymentId": record.deployment_id,
        "modelName": "iris",
        "version": 3,
        "endpointName": "modeldrop-iris",
        "endpointConfigName": "modeldrop-iris-v1",
        "status": "Deploying",
        "maxPolls": 60,
        "rollout": None,
        "rolloutPhase": None,
    }
    model = stack.records().get_model("iris")
    assert model is not None and model.status == "Updating" and model.live_version == 2


def test_a_retried_start_of_a_rollbacks_execution_finds_the_running_one(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    # Given a rollback whose execution was started
    _live(stack, 1, 2)
    _expect_switch(sagemaker, current="modeldrop-iris-v2", target="modeldrop-iris-v1")
    rollout = _deps(stack, sagemaker)
    rollback = rollout.roll_back("iris", None)
    assert rollback.execution_arn

    # When its execution is started again (a retry: Step Functions answers ExecutionAlreadyExists)
    assert rollout.executions is not None
    again = rollout.executions.start(rollback.model_copy(update={"status": DeploymentStatus.QUEUED}))

    # Then the running execution's ARN is the answer, and there is still one execution
    assert again == rollback.execution_arn
    executions = boto3.client("stepfunctions", region_name=REGION).list_executions(
        stateMachineArn=stack.state_machine_arn
    )["executions"]
    assert [execution["name"] for execution in executions] == [rollback.deployment_id]


def test_a_second_rollback_undoes_the_first(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1, v2 live in turn, then rollback v3 (to v1) went live
    _live(stack, 1, 2)
    _expect_switch(sagemaker, current="modeldrop-iris-v2", target="modeldrop-iris-v1")
    first = _deps(stack, sagemaker).roll_back("iris", None)
    records = stack.records()
    assert records.go_live(first, expected=IN_FLIGHT) is GoLive.LIVE

    # When another rollback without a version is requested
    _expect_switch(sagemaker, current="modeldrop-iris-v1", target="modeldrop-iris-v2")
    second = _deps(stack, sagemaker).roll_back("iris", None)

    # Then it restores v2, the version live before the rollback
    sagemaker.stubber.assert_no_pending_responses()
    assert (second.version, second.rollback_to) == (4, 2)


@pytest.mark.parametrize(
    ("requested", "code", "says"),
    [
        (1, "VersionNotKept", "Version 1 of 'iris' is no longer kept"),
        (2, "VersionNotKept", "Version 2 of 'iris' never went InService (it is Failed)"),
        (9, "VersionNotKept", "Version 9 of 'iris' does not exist"),
        (4, "VersionAlreadyLive", "Version 4 of 'iris' is already live"),
    ],
)
def test_a_version_that_cannot_be_restored_is_refused_naming_the_kept_ones(
    stack: Stack, sagemaker: StubbedSageMaker, requested: int, code: str, says: str
) -> None:
    # Given v1 (deleted by the cleanup), v2 Failed, v3 and v4 live in turn
    _live(stack, 1)
    seed(stack, 2, DeploymentStatus.FAILED)
    _live(stack, 3, 4)
    stack.records().update_deployment("iris", 1, DeploymentStatus.IN_SERVICE, sagemaker_deleted=True)

    # When that version is requested
    with pytest.raises(RollbackRefused) as refused:
        _deps(stack, sagemaker).roll_back("iris", requested)

    # Then the refusal says why and which versions can be restored; nothing was recorded or switched
    assert refused.value.code == code
    assert refused.value.reason.startswith(says), refused.value.reason
    assert refused.value.kept == [3]
    if code == "VersionNotKept":
        assert "kept versions you can roll back to: v3 (v4 is live)" in refused.value.reason
    assert [d.version for d in stack.records().all_deployments("iris")] == [1, 2, 3, 4]


def test_a_single_version_has_nothing_to_roll_back_to(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given only v1, live
    _live(stack, 1)
    # When a rollback is requested / Then it is refused: no earlier kept version
    with pytest.raises(RollbackRefused) as refused:
        _deps(stack, sagemaker).roll_back("iris", None)
    assert refused.value.code == "NothingToRollBack"
    assert refused.value.kept == []


def test_cleanup_keeps_what_a_live_rollback_serves(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1..v4 live in turn, then rollback v5 (to v1) live, and KEEP_VERSIONS=2
    _live(stack, 1, 2, 3, 4)
    _expect_switch(sagemaker, current="modeldrop-iris-v4", target="modeldrop-iris-v1")
    rollback = _deps(stack, sagemaker).roll_back("iris", 1)
    records = stack.records()
    assert records.go_live(rollback, expected=IN_FLIGHT) is GoLive.LIVE
    for version in (2,):  # v3, v4 are the newest two uploads; v1 is served by the live rollback
        name = f"modeldrop-iris-v{version}"
        sagemaker.stubber.add_response("delete_endpoint_config", {}, {"EndpointConfigName": name})
        sagemaker.stubber.add_response("delete_model", {}, {"ModelName": name})

    # When the cleanup runs
    deleted = status_dependencies(stack, sagemaker, KEEP_VERSIONS="2").rollout.clean_old_versions("iris")

    # Then only v2 is deleted: v1's model and config serve the rollback, which owns nothing itself
    sagemaker.stubber.assert_no_pending_responses()
    assert deleted == ["modeldrop-iris-v2"]
    assert {d.version for d in records.all_deployments("iris") if d.sagemaker_deleted} == {2}


# ---------------------------------------------------------------- POST /models/{name}/rollback


def _api(stack: Stack, sagemaker: StubbedSageMaker, *, wired: bool = True) -> APIGatewayRestResolver:
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.deployments_table)
    dependencies = ApiDependencies(
        records=DeploymentRecords(table),
        runtime=None,  # type: ignore[arg-type]  # never invoked here
        rollbacks=_deps(stack, sagemaker) if wired else None,
    )
    return create_resolver(lambda: dependencies)


def _post(api: APIGatewayRestResolver, body: str | None) -> tuple[int, dict[str, Any]]:
    event = load_event("api_rollback")
    event["body"] = body
    response = api.resolve(event, fake_lambda_context())
    return int(response["statusCode"]), json.loads(response["body"])


def test_rollback_route_answers_202_with_the_recorded_rollback(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    # Given v1 then v2 live
    _live(stack, 1, 2)
    _expect_switch(sagemaker, current="modeldrop-iris-v2", target="modeldrop-iris-v1")

    # When the sample event POSTs {"version": 1}
    status, body = _post(_api(stack, sagemaker), load_event("api_rollback")["body"])

    # Then the answer is the rollback deployment, in the documented shape
    assert status == 202, body
    assert_matches_schema(body, "DeploymentSummary")
    assert (body["version"], body["kind"], body["rollbackTo"], body["status"]) == (
        3,
        "Rollback",
        1,
        "Deploying",
    )


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ('{"version": 7}', 409, "VersionNotKept"),
        ('{"version": 2}', 409, "VersionAlreadyLive"),
        ('{"version": "1"}', 400, "InvalidRequest"),
        ('{"versoin": 1}', 400, "InvalidRequest"),
        ("[1]", 400, "InvalidRequest"),
    ],
)
def test_rollback_route_refuses_in_the_error_shape(
    stack: Stack, sagemaker: StubbedSageMaker, body: str, status: int, error: str
) -> None:
    # Given v1 then v2 live
    _live(stack, 1, 2)
    # When a rollback it cannot do is posted / Then the status and code say why, in the Error shape
    answered, answer = _post(_api(stack, sagemaker), body)
    assert (answered, answer["error"]) == (status, error), answer
    assert_matches_schema(answer, "Error")
    if status == 409:
        assert "v1" in answer["message"]


def test_rollback_route_without_the_state_machine_is_unavailable(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    _live(stack, 1, 2)
    status, answer = _post(_api(stack, sagemaker, wired=False), None)
    assert (status, answer["error"]) == (503, "ServiceUnavailable")


def test_uploads_rejected_by_the_preflight_take_no_kept_slot(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    # Given v1, v2 live in turn, then v3 and v4 Rejected by the preflight (names recorded, nothing created)
    _live(stack, 1, 2)
    seed(stack, 3, DeploymentStatus.REJECTED)
    seed(stack, 4, DeploymentStatus.REJECTED)

    # When the cleanup runs with KEEP_VERSIONS=2
    deleted = status_dependencies(stack, sagemaker, KEEP_VERSIONS="2").rollout.clean_old_versions("iris")

    # Then nothing is deleted (the stubber would fail any SageMaker call): v1 stays a rollback target
    assert deleted == []
    _expect_switch(sagemaker, current="modeldrop-iris-v2", target="modeldrop-iris-v1")
    assert _deps(stack, sagemaker).roll_back("iris", None).rollback_to == 1


# ---------------------------------------------------------------- resuming after lost executions
def test_resume_in_flight_starts_again_the_executions_of_queued_and_deploying_deployments(
    stack: Stack,
) -> None:
    # Given v1 live, v2 Deploying and v3 Queued, whose executions were lost (none exist)
    _live(stack, 1)
    deploying = seed(stack, 2, DeploymentStatus.DEPLOYING)
    queued = seed(stack, 3, DeploymentStatus.QUEUED)
    stepfunctions = boto3.client("stepfunctions", region_name=REGION)

    # When the host's hook resumes them with OnUpload's environment
    resumed = resume_in_flight(
        stack.environment(),
        dynamodb=boto3.resource("dynamodb", region_name=REGION),
        stepfunctions=stepfunctions,
    )

    # Then exactly the two in flight have an execution again, each with the input it started with
    assert sorted(resumed) == sorted([deploying.deployment_id, queued.deployment_id])
    executions = stepfunctions.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
    inputs = {
        execution["name"]: json.loads(
            stepfunctions.describe_execution(executionArn=execution["executionArn"])["input"]
        )
        for execution in executions
    }
    assert {name: (given["status"], given["endpointConfigName"]) for name, given in inputs.items()} == {
        deploying.deployment_id: ("Deploying", "modeldrop-iris-v2"),
        queued.deployment_id: ("Queued", "modeldrop-iris-v3"),
    }
