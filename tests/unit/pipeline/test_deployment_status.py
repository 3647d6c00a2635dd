"""DeploymentStatus (modeldrop.deployment_status): state machine steps on moto DynamoDB, stubbed SageMaker."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from modeldrop.deployment_status import handle_status
from modeldrop.deployments_table import UnknownDeployment
from modeldrop.events import DeploymentStatusEvent
from modeldrop.records import Deployment, DeploymentStatus, utc_now

from tests.unit.pipeline.conftest import Stack, StubbedSageMaker, status_dependencies
from tests.unit.pipeline.template_resources import REGION
from tests.utils import load_event


def seed(stack: Stack, version: int, status: DeploymentStatus, *, model: str = "iris") -> Deployment:
    """A deployment as OnUpload records it (the sample events describe iris v1)."""
    records = stack.records()
    assert records.next_version(model) == version
    deployment = Deployment(
        deployment_id="iris-v000001-5b2c9e1a" if version == 1 else f"{model}-v{version:06d}-00000000",
        model_name=model,
        version=version,
        bucket=stack.bucket,
        key=f"models/{model}/model.tar.gz",
        object_version=f"object-version-{version}",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        status=status,
        created_at=utc_now(),
        updated_at=utc_now(),
    )
    assert (
        deployment.sagemaker_model_name == deployment.endpoint_config_name == f"modeldrop-{model}-v{version}"
    )
    records.put_deployment(deployment)
    assert deployment.model_data_key is not None
    stack.put_object(deployment.model_data_key, b"pinned copy")
    records.touch_model(
        model, f"modeldrop-{model}", status="Creating", last_deployment_id=deployment.deployment_id
    )
    return deployment


def describe(status: str, config: str, failure_reason: str | None = None) -> dict[str, Any]:
    response = {
        "EndpointName": "modeldrop-iris",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/modeldrop-iris",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    if failure_reason:
        response["FailureReason"] = failure_reason
    return response


def event(name: str, **changes: Any) -> DeploymentStatusEvent:
    payload = load_event(name)
    for key, value in changes.items():
        if key in payload["deployment"]:
            payload["deployment"][key] = value
        else:
            payload[key] = value
    return DeploymentStatusEvent.model_validate(payload)


def test_in_service_on_this_config_marks_the_model_live(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given deployment v1 in flight and DescribeEndpoint reporting InService on its config
    seed(stack, 1, DeploymentStatus.DEPLOYING)

    # When the state machine reports success
    result = handle_status(event("deployment_status_succeeded"), status_dependencies(stack, sagemaker))

    # Then the deployment is InService and the model item points at it
    assert result.status == "InService"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.IN_SERVICE and record.ttl is None
    model = stack.records().get_model("iris")
    assert model is not None
    assert (model.status, model.live_version, model.live_deployment_id) == (
        "InService",
        1,
        "iris-v000001-5b2c9e1a",
    )
    assert model.live_object_version == "object-version-1"


def test_failed_update_rolled_back_to_in_service_is_a_failure(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    # Given v1 in flight, but the endpoint is back InService on the previous config with a FailureReason
    seed(stack, 1, DeploymentStatus.DEPLOYING)
    payload = load_event("deployment_status_succeeded")
    payload["endpoint"]["EndpointConfigName"] = "modeldrop-iris-v0"
    sagemaker.stubber.add_response(
        "describe_endpoint",
        describe("InService", "modeldrop-iris-v0", "Ping health check failed for variant AllTraffic"),
        {"EndpointName": "modeldrop-iris"},
    )

    # When the state machine reports InService
    result = handle_status(
        DeploymentStatusEvent.model_validate(payload), status_dependencies(stack, sagemaker)
    )

    # Then the deployment failed with SageMaker's reason and the model is not marked live on it
    assert result.status == "Failed"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.FAILED
    assert record.reason == "Ping health check failed for variant AllTraffic"
    model = stack.records().get_model("iris")
    assert model is not None and model.live_version is None


def test_failed_endpoint_records_the_failure_reason(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 in flight on a first create, and SageMaker's FailureReason for it
    seed(stack, 1, DeploymentStatus.DEPLOYING)
    sagemaker.stubber.add_response(
        "describe_endpoint",
        describe("Failed", "modeldrop-iris-v1", "The primary container did not pass the ping health check."),
        {"EndpointName": "modeldrop-iris"},
    )

    # When DescribeEndpoint said Failed
    result = handle_status(event("deployment_status_failed"), status_dependencies(stack, sagemaker))

    # Then FailureReason is recorded and the model item shows the endpoint Failed
    assert result.status == "Failed"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.FAILED
    assert record.reason == "The primary container did not pass the ping health check."
    model = stack.records().get_model("iris")
    assert model is not None and model.status == "Failed"


def test_timed_out(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 in flight
    seed(stack, 1, DeploymentStatus.DEPLOYING)

    # When the deploy timeout is reached
    result = handle_status(event("deployment_status_timed_out"), status_dependencies(stack, sagemaker))

    # Then the deployment is TimedOut, saying after how long and in which status
    assert result.status == "TimedOut"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.TIMED_OUT
    assert record.reason == (
        "endpoint modeldrop-iris not InService after 60 polls (deploy timeout); last status Creating"
    )


def test_state_machine_error_is_recorded(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 in flight
    seed(stack, 1, DeploymentStatus.DEPLOYING)

    # When a step failed for good
    result = handle_status(event("deployment_status_error"), status_dependencies(stack, sagemaker))

    # Then the error is the reason
    assert result.status == "Failed"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None
    assert record.reason == "deploy state machine error SageMaker.ThrottlingException: Rate exceeded"


def test_replayed_step_changes_nothing(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 already recorded InService
    seed(stack, 1, DeploymentStatus.DEPLOYING)
    deps = status_dependencies(stack, sagemaker)
    handle_status(event("deployment_status_succeeded"), deps)

    # When a late "failed" arrives for it
    result = handle_status(event("deployment_status_failed"), deps)

    # Then the recorded outcome stands
    assert result.status == "InService"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.IN_SERVICE


def test_unknown_deployment_is_an_error(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given no deployment recorded
    # When the state machine reports on one
    # Then the function fails loudly (the state machine's Catch records it)
    with pytest.raises(UnknownDeployment):
        handle_status(event("deployment_status_succeeded"), status_dependencies(stack, sagemaker))


def test_queued_deployment_starts_when_endpoint_is_free(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 queued and the endpoint now InService on v0
    seed(stack, 1, DeploymentStatus.QUEUED)
    sagemaker.stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": "modeldrop-iris",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/modeldrop-iris",
            "EndpointConfigName": "modeldrop-iris-v0",
            "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
        },
        {"EndpointName": "modeldrop-iris"},
    )
    sagemaker.stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/modeldrop-iris"},
        {"EndpointName": "modeldrop-iris", "EndpointConfigName": "modeldrop-iris-v1"},
    )

    # When its turn comes
    result = handle_status(event("deployment_status_start"), status_dependencies(stack, sagemaker))

    # Then UpdateEndpoint is sent and the deployment is Deploying
    sagemaker.stubber.assert_no_pending_responses()
    assert result.status == "Deploying"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.DEPLOYING


def test_queued_deployment_keeps_waiting_while_busy(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 queued and the endpoint still Updating
    seed(stack, 1, DeploymentStatus.QUEUED)
    sagemaker.stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": "modeldrop-iris",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/modeldrop-iris",
            "EndpointStatus": "Updating",
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z",
        },
    )

    # When it tries its turn
    result = handle_status(event("deployment_status_start"), status_dependencies(stack, sagemaker))

    # Then it stays Queued (no UpdateEndpoint: the stubber has none queued)
    assert result.status == "Queued"


def test_older_queued_deployment_is_superseded_by_a_newer_upload(
    stack: Stack, sagemaker: StubbedSageMaker
) -> None:
    # Given v1 queued and v2 (uploaded later) queued too
    seed(stack, 1, DeploymentStatus.QUEUED)
    seed(stack, 2, DeploymentStatus.QUEUED)

    # When v1 tries its turn
    result = handle_status(event("deployment_status_start"), status_dependencies(stack, sagemaker))

    # Then the last upload wins: v1 is Superseded without any SageMaker call
    assert result.status == "Superseded"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.SUPERSEDED
    assert record.reason == "superseded by version 2 (iris-v000002-00000000), uploaded later"


def test_queued_too_long_times_out(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given v1 queued for as many polls as the deploy timeout allows
    seed(stack, 1, DeploymentStatus.QUEUED)

    # When it tries its turn once more
    result = handle_status(event("deployment_status_start", polls=60), status_dependencies(stack, sagemaker))

    # Then it is TimedOut
    assert result.status == "TimedOut"
    record = stack.records().get_deployment("iris", 1)
    assert record is not None and record.reason is not None and "still queued" in record.reason


def test_success_deletes_versions_beyond_keep_versions(stack: Stack, sagemaker: StubbedSageMaker) -> None:
    # Given versions 1-4 in SageMaker (1-3 superseded or failed), 5 just InService, and KEEP_VERSIONS=2
    for version in (1, 2, 3, 4):
        seed(stack, version, DeploymentStatus.FAILED if version == 2 else DeploymentStatus.IN_SERVICE)
    seed(stack, 5, DeploymentStatus.DEPLOYING)
    for version in (3, 2, 1):  # newest first, config before model
        name = f"modeldrop-iris-v{version}"
        sagemaker.stubber.add_response("delete_endpoint_config", {}, {"EndpointConfigName": name})
        sagemaker.stubber.add_response("delete_model", {}, {"ModelName": name})
    payload = load_event("deployment_status_succeeded")
    payload["deployment"].update(
        deploymentId="iris-v000005-00000000", version=5, endpointConfigName="modeldrop-iris-v5"
    )
    payload["endpoint"]["EndpointConfigName"] = "modeldrop-iris-v5"
    deps = status_dependencies(stack, sagemaker, KEEP_VERSIONS="2")

    # When v5 succeeds
    result = handle_status(DeploymentStatusEvent.model_validate(payload), deps)

    # Then only v5 and v4 keep their SageMaker model, config and pinned tarball copy
    sagemaker.stubber.assert_no_pending_responses()
    assert result.status == "InService"
    deleted = {d.version for d in stack.records().all_deployments("iris") if d.sagemaker_deleted}
    assert deleted == {1, 2, 3}
    s3 = boto3.client("s3", region_name=REGION)
    kept = s3.list_objects_v2(Bucket=stack.bucket, Prefix="deployments/iris/")["Contents"]
    assert sorted(item["Key"] for item in kept) == [
        "deployments/iris/iris-v000004-00000000/model.tar.gz",
        "deployments/iris/iris-v000005-00000000/model.tar.gz",
    ]

    # And a second success report deletes nothing more (the stubber has nothing left to answer)
    handle_status(DeploymentStatusEvent.model_validate(payload), deps)
