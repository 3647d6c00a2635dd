"""The deploy state machine: its definition against the template, and a real run in moto's ASL engine."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from modeldrop.deploy import DeployDependencies, handle_upload
from modeldrop.events import UploadedObject
from modeldrop.records import DeploymentStatus
from modeldrop.sagemaker_adapter import SageMakerAdapter
from modeldrop_local.stack import state_machine_definition
from moto import mock_aws
from moto.awslambda.models import LambdaBackend

from tests.unit.pipeline.conftest import ROLE_ARN, Stack, build_stack
from tests.unit.pipeline.template_resources import REGION, REPO_ROOT, plan

ALLOWED_RESOURCES = {
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
}


def _definition() -> str:
    """The ASL document with the template's DefinitionSubstitutions applied, as the stack creates it."""
    resolver = plan()
    return state_machine_definition(resolver, resolver.template["Resources"]["DeployStateMachine"], REPO_ROOT)


def _states(definition: dict[str, Any]) -> dict[str, Any]:
    return dict(definition["States"])


def test_every_placeholder_is_substituted_by_the_template() -> None:
    # Given the template and the ASL file it names
    resolver = plan()
    properties = resolver.template["Resources"]["DeployStateMachine"]["Properties"]

    # When the placeholders of the file are listed
    placeholders = set(
        re.findall(r"\$\{([A-Za-z0-9_]+)\}", (REPO_ROOT / properties["DefinitionUri"]).read_text())
    )

    # Then the template provides exactly those, and the substituted document is valid JSON
    assert placeholders == set(properties["DefinitionSubstitutions"])
    definition = json.loads(_definition())
    assert definition["StartAt"] in definition["States"]


def test_transitions_resources_and_retries_are_consistent() -> None:
    # Given the substituted definition
    definition = json.loads(_definition())
    states = _states(definition)

    # When every state's successors and task resources are collected
    targets: set[str] = set()
    for state in states.values():
        targets.update(filter(None, [state.get("Next"), state.get("Default")]))
        targets.update(choice["Next"] for choice in state.get("Choices", []))
        targets.update(catch["Next"] for catch in state.get("Catch", []))

    # Then every target exists, every state is reachable, tasks use only the two allowed integrations,
    # the SageMaker call retries throttling, and the Wait uses the template's poll interval
    assert targets <= set(states)
    assert set(states) - targets == {definition["StartAt"]}
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert {state["Resource"] for state in tasks.values()} == ALLOWED_RESOURCES
    describe = tasks["DescribeEndpoint"]
    # (the aws-sdk integration's name for an unmodelled SageMaker error; SageMaker models no throttling
    # error, and SageMaker.AmazonSageMakerException is the optimised integration's name, never raised here)
    retried = describe["Retry"][0]["ErrorEquals"]
    assert "SageMaker.SageMakerException" in retried
    assert not {"SageMaker.ThrottlingException", "SageMaker.AmazonSageMakerException"} & set(retried)
    assert describe["Retry"][0]["BackoffRate"] > 1
    for name, state in tasks.items():
        assert state["Retry"], f"{name} has no Retry"
    assert states["WaitForEndpoint"]["Seconds"] == 30


def _load_status_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "deployment_status_app", REPO_ROOT / "functions" / "deployment_status" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _LambdaContext:
    function_name = "modeldrop-DeploymentStatusFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:modeldrop-DeploymentStatusFunction"
    aws_request_id = "4f1e2c1a-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def engine_stack(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """moto with its ASL engine on; Lambda Invoke runs the real DeploymentStatus handler in-process."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        # Poll every second so the test takes seconds (the template's default is 30 s).
        stack = build_stack({"PollIntervalSeconds": "1"})
        for key, value in stack.environment(KEEP_VERSIONS="3").items():
            monkeypatch.setenv(key, value)
        app = _load_status_app()
        invoked: list[dict[str, Any]] = []

        def invoke(self: LambdaBackend, function_name: str, qualifier: Any, body: Any, *args: Any) -> bytes:
            # Stands in for the functions host: the engine calls Lambda Invoke, we run the real handler.
            assert function_name.endswith("DeploymentStatusFunction")
            event = json.loads(body)
            invoked.append(event)
            return json.dumps(app.lambda_handler(event, _LambdaContext())).encode()

        monkeypatch.setattr(LambdaBackend, "invoke", invoke)
        stack.invoked = invoked  # type: ignore[attr-defined]
        yield stack


def _wait_for_execution(arn: str, deadline_s: float = 30.0) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        description = sfn.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            return dict(description)
        time.sleep(0.2)  # no event to await: moto's engine runs in its own thread
    raise AssertionError(f"execution {arn} still RUNNING after {deadline_s} s")


def test_in_service_path_runs_in_moto_engine(engine_stack: Stack, iris_tarball: bytes) -> None:
    # Given a real iris tarball uploaded and deployed by OnUpload (moto's SageMaker creates it InService)
    stored = engine_stack.put_object("models/iris/model.tar.gz", iris_tarball)
    deps = DeployDependencies(
        settings=engine_stack.on_upload_settings(POLL_INTERVAL_SECONDS="1", DEPLOY_TIMEOUT_SECONDS="10"),
        s3=boto3.client("s3", region_name=REGION),
        stepfunctions=boto3.client("stepfunctions", region_name=REGION),
        sagemaker=SageMakerAdapter(boto3.client("sagemaker", region_name=REGION)),
        records=engine_stack.records(),
    )
    upload = UploadedObject(
        bucket=engine_stack.bucket,
        key="models/iris/model.tar.gz",
        object_version=stored["version"],
        etag=stored["etag"],
    )

    # When OnUpload starts the deployment and the engine runs the ASL
    outcome = handle_upload(upload, deps)
    assert outcome.status is DeploymentStatus.DEPLOYING and outcome.execution_arn
    execution = _wait_for_execution(outcome.execution_arn)

    # Then the execution succeeded through DescribeEndpoint → InService → the status function
    assert execution["status"] == "SUCCEEDED", execution
    actions = [event["action"] for event in engine_stack.invoked]  # type: ignore[attr-defined]
    assert actions == ["smoke_test", "succeeded"]
    assert engine_stack.invoked[0]["endpoint"]["EndpointStatus"] == "InService"  # type: ignore[attr-defined]
    record = engine_stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.IN_SERVICE
    model = engine_stack.records().get_model("iris")
    assert model is not None and model.live_version == 1 and model.status == "InService"
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    described = sagemaker.describe_model(ModelName="modeldrop-iris-v1")
    assert described["ExecutionRoleArn"] == ROLE_ARN
    bucket, key = described["PrimaryContainer"]["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == iris_tarball


def _moto_endpoint(name: str) -> Any:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends["123456789012"][REGION].endpoints[name]


def _deploy(stack: Stack, tarball: bytes, *, timeout_s: str = "10") -> Any:
    stored = stack.put_object("models/iris/model.tar.gz", tarball)
    deps = DeployDependencies(
        settings=stack.on_upload_settings(POLL_INTERVAL_SECONDS="1", DEPLOY_TIMEOUT_SECONDS=timeout_s),
        s3=boto3.client("s3", region_name=REGION),
        stepfunctions=boto3.client("stepfunctions", region_name=REGION),
        sagemaker=SageMakerAdapter(boto3.client("sagemaker", region_name=REGION)),
        records=stack.records(),
    )
    upload = UploadedObject(
        bucket=stack.bucket,
        key="models/iris/model.tar.gz",
        object_version=stored["version"],
        etag=stored["etag"],
    )
    return handle_upload(upload, deps), deps


def _created_endpoints_end_in(status: str, monkeypatch: Any) -> None:
    """moto's endpoints are InService at once: make every endpoint OnUpload creates stay in `status`."""
    created = SageMakerAdapter.create_endpoint

    def create(self: SageMakerAdapter, name: str, config_name: str) -> None:
        created(self, name, config_name)
        _moto_endpoint(name).endpoint_status = status

    monkeypatch.setattr(SageMakerAdapter, "create_endpoint", create)


def test_endpoint_stuck_creating_times_out(
    engine_stack: Stack, iris_tarball: bytes, monkeypatch: Any
) -> None:
    # Given an endpoint that never leaves Creating (moto's would be InService at once)
    _created_endpoints_end_in("Creating", monkeypatch)

    # When the deployment runs with a 2 s deploy timeout (2 polls of 1 s)
    outcome, _ = _deploy(engine_stack, iris_tarball, timeout_s="2")
    execution = _wait_for_execution(outcome.execution_arn)

    # Then the execution fails after counting its polls and the deployment is TimedOut
    assert execution["status"] == "FAILED"
    actions = [event["action"] for event in engine_stack.invoked]  # type: ignore[attr-defined]
    assert actions == ["timed_out"]
    record = engine_stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.TIMED_OUT
    assert record.reason == (
        "endpoint modeldrop-iris not InService after 2 polls (deploy timeout); last status Creating"
    )


def test_failed_endpoint_is_recorded_failed(
    engine_stack: Stack, iris_tarball: bytes, monkeypatch: Any
) -> None:
    # Given an endpoint that ends Failed
    _created_endpoints_end_in("Failed", monkeypatch)

    # When the deployment runs
    outcome, _ = _deploy(engine_stack, iris_tarball)
    execution = _wait_for_execution(outcome.execution_arn)

    # Then the status function recorded the failure and the execution failed
    assert execution["status"] == "FAILED"
    assert [event["action"] for event in engine_stack.invoked] == ["failed"]  # type: ignore[attr-defined]
    record = engine_stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.FAILED
    assert record.reason is not None and "Failed" in record.reason


def test_queued_deployment_starts_when_the_endpoint_is_free(
    engine_stack: Stack, iris_tarball: bytes, monkeypatch: Any
) -> None:
    # Given an endpoint busy Updating when the upload arrives (the deployment is Queued)
    from modeldrop.sagemaker_adapter import EndpointDescription

    busy = {"polls": 0}
    describe = SageMakerAdapter.describe_endpoint

    def describe_busy_twice(self: SageMakerAdapter, name: str) -> EndpointDescription | None:
        # Busy for OnUpload and the first try of the state machine, then gone (free to create).
        busy["polls"] += 1
        if busy["polls"] <= 2:
            return EndpointDescription(
                endpoint_name=name, status="Updating", endpoint_config_name="modeldrop-iris-v0"
            )
        return describe(self, name)

    monkeypatch.setattr(SageMakerAdapter, "describe_endpoint", describe_busy_twice)

    # When OnUpload queues it and the state machine waits its turn
    outcome, _ = _deploy(engine_stack, iris_tarball)
    assert outcome.status is DeploymentStatus.QUEUED
    execution = _wait_for_execution(outcome.execution_arn)

    # Then it tried, waited, started and went InService
    assert execution["status"] == "SUCCEEDED", execution
    actions = [event["action"] for event in engine_stack.invoked]  # type: ignore[attr-defined]
    assert actions == ["start", "start", "smoke_test", "succeeded"]
    assert [event["polls"] for event in engine_stack.invoked[:2]] == [0, 1]  # type: ignore[attr-defined]
    record = engine_stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.IN_SERVICE


def test_throttled_describe_endpoint_is_retried(
    engine_stack: Stack, iris_tarball: bytes, monkeypatch: Any
) -> None:
    # Given SageMaker throttles the state machine's first DescribeEndpoint
    from moto.sagemaker.exceptions import SagemakerClientError
    from moto.sagemaker.models import SageMakerModelBackend

    calls = {"count": 0}
    original = SageMakerModelBackend.describe_endpoint

    def throttle_once(self: SageMakerModelBackend, endpoint_name: str) -> dict[str, Any]:
        calls["count"] += 1
        if calls["count"] == 2:  # the first call is OnUpload's (endpoint not found yet)
            raise SagemakerClientError("ThrottlingException", "Rate exceeded")
        return original(self, endpoint_name)

    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", throttle_once)

    # When the deployment runs
    outcome, _ = _deploy(engine_stack, iris_tarball)
    execution = _wait_for_execution(outcome.execution_arn)

    # Then the Retry absorbed the throttling and the deployment went InService
    assert execution["status"] == "SUCCEEDED", execution
    assert calls["count"] == 3
    record = engine_stack.records().get_deployment("iris", 1)
    assert record is not None and record.status is DeploymentStatus.IN_SERVICE
