"""The bake's steps on moto's DynamoDB and CloudWatch: the judge reads each version's figures back,
a person's promote or abort and a newer upload end the bake, and the candidate's endpoint goes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from modeldrop.deployments_table import GoLive
from modeldrop.events import DeploymentStatusEvent
from modeldrop.guardrails.bake import (
    BakeDependencies,
    NoBakeInProgress,
    abort_for_rollback,
    handle_bake_step,
    request_decision,
)
from modeldrop.guardrails.candidate import supersede_bake
from modeldrop.guardrails.config import parse_rollout
from modeldrop.guardrails.metrics import VERSION_ERRORS, VERSION_LATENCY, VERSION_REQUESTS
from modeldrop.guardrails.routing import Routing
from modeldrop.guardrails.state import RequestedDecision, RolloutPhase, RolloutRecords
from modeldrop.model_config import ResolvedConfig
from modeldrop.records import Deployment, DeploymentStatus, utc_now
from modeldrop.rollout import Rollout, execution_input
from modeldrop_local import cloudwatch_percentiles
from moto import mock_aws

from tests.unit.pipeline.conftest import Stack, build_stack
from tests.unit.pipeline.template_resources import REGION

MODEL = "iris"
NOW = datetime.now(UTC)
CANARY = json.dumps(
    {
        "strategy": "canary",
        "canary_percent": 20,
        "bake_seconds": 60,
        "min_requests": 10,
        "max_error_rate": 0.05,
    }
)


@dataclass
class RecordingSageMaker:
    """The one SageMaker call a bake step makes: deleting the candidate's endpoint."""

    deleted: list[str] = field(default_factory=list)

    def delete_endpoint(self, name: str) -> None:
        self.deleted.append(name)


@pytest.fixture
def stack(aws_env: None) -> Iterator[Stack]:
    cloudwatch_percentiles.install()
    with mock_aws():
        yield build_stack()


@pytest.fixture
def deps(stack: Stack) -> BakeDependencies:
    table = boto3.resource("dynamodb", region_name=REGION).Table(stack.deployments_table)
    return BakeDependencies(
        records=stack.records(),
        rollouts=RolloutRecords(table),
        rollout=Rollout(records=stack.records(), sagemaker=RecordingSageMaker()),  # type: ignore[arg-type]
        cloudwatch=boto3.client("cloudwatch", region_name=REGION),
        namespace="modeldrop",
        deploy_timeout_s=120,
        clock=lambda: NOW,
    )


def seed(stack: Stack, deps: BakeDependencies) -> DeploymentStatusEvent:
    """v1 live; v2 a canary candidate whose bake began 90 s ago."""
    records = stack.records()
    for version, status in ((1, DeploymentStatus.IN_SERVICE), (2, DeploymentStatus.DEPLOYING)):
        assert records.next_version(MODEL) == version
        records.put_deployment(
            Deployment(
                deployment_id=f"{MODEL}-v{version:06d}-00000000",
                model_name=MODEL,
                version=version,
                bucket=stack.bucket,
                key=f"models/{MODEL}/model.tar.gz",
                status=status,
                config=ResolvedConfig(
                    image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
                    memory_mb=2048,
                    max_concurrency=2,
                    provisioned_concurrency=0,
                    environment={},
                    rollout=parse_rollout(CANARY) if version == 2 else None,
                ),
                candidate=version == 2 or None,
                created_at=utc_now(),
                updated_at=utc_now(),
            )
        )
    live = records.get_deployment(MODEL, 1)
    assert live is not None
    assert records.go_live(live, expected=(DeploymentStatus.IN_SERVICE,)) is not GoLive.NOT_IN_FLIGHT
    candidate = records.get_deployment(MODEL, 2)
    assert candidate is not None
    target = execution_input(candidate, max_polls=60)
    assert (target.endpoint_name, target.rollout_phase) == ("modeldrop-iris-v2", "candidate")
    step = DeploymentStatusEvent(action="bake_start", deployment=target)
    started = BakeDependencies(**{**deps.__dict__, "clock": lambda: NOW - timedelta(seconds=90)})
    assert handle_bake_step(step, started).status == "Baking"
    return step


def put_answers(deps: BakeDependencies, version: int, latencies: list[float], errors: int) -> None:
    dimensions = [{"Name": "Model", "Value": MODEL}, {"Name": "Version", "Value": str(version)}]
    stamp = NOW - timedelta(seconds=30)
    data: list[dict[str, Any]] = [
        {"MetricName": VERSION_REQUESTS, "Dimensions": dimensions, "Values": [1.0] * len(latencies)},
        {
            "MetricName": VERSION_ERRORS,
            "Dimensions": dimensions,
            "Values": [1.0] * errors + [0.0] * (len(latencies) - errors),
        },
        {
            "MetricName": VERSION_LATENCY,
            "Dimensions": dimensions,
            "Values": latencies,
            "Unit": "Milliseconds",
        },
    ]
    deps.cloudwatch.put_metric_data(
        Namespace="modeldrop", MetricData=[d | {"Timestamp": stamp} for d in data]
    )


def step(base: DeploymentStatusEvent, action: str, **fields: Any) -> DeploymentStatusEvent:
    return base.model_copy(update={"action": action, **fields})


def test_the_start_routes_a_fifth_of_the_traffic_to_the_candidate(
    stack: Stack, deps: BakeDependencies
) -> None:
    seed(stack, deps)
    model = stack.records().get_model(MODEL)
    assert model is not None
    routing = Routing.of(model)
    assert routing.candidate is not None and routing.candidate.endpoint_name == "modeldrop-iris-v2"
    assert routing.choose(0.19).version == 2 and routing.choose(0.2).version == 1


def test_the_judge_rolls_back_on_the_figures_it_reads_from_cloudwatch(
    stack: Stack, deps: BakeDependencies
) -> None:
    # Given a bake past its bake_seconds, v1 answering 40 requests cleanly, v2 failing 5 of 10
    base = seed(stack, deps)
    put_answers(deps, 1, [10.0] * 40, errors=0)
    put_answers(deps, 2, [float(value) for value in range(1, 11)], errors=5)
    # When the judge looks
    verdict = handle_bake_step(step(base, "bake_judge"), deps)
    # Then it says roll back, with the figures
    assert verdict.status == "RollBack"
    assert (
        verdict.reason is not None
        and "error rate 0.5 (5 of 10 requests) above max_error_rate 0.05" in verdict.reason
    )
    assert "p99 10.0 ms" in verdict.reason
    # And the end deletes the candidate's endpoint and records why
    ended = handle_bake_step(step(base, "bake_end", verdict=verdict.model_dump()), deps)
    assert ended.status == "RolledBack"
    assert deps.rollout.sagemaker.deleted == ["modeldrop-iris-v2"]  # type: ignore[attr-defined]
    state = deps.rollouts.get(MODEL)
    assert state is not None and state.state is RolloutPhase.ROLLED_BACK and state.candidate_weight == 0
    deployment = stack.records().get_deployment(MODEL, 2)
    assert deployment is not None and deployment.status is DeploymentStatus.FAILED
    assert deployment.reason == verdict.reason


def test_without_enough_traffic_the_bake_goes_on(stack: Stack, deps: BakeDependencies) -> None:
    base = seed(stack, deps)
    put_answers(deps, 1, [10.0] * 40, errors=0)
    put_answers(deps, 2, [10.0] * 3, errors=0)
    verdict = handle_bake_step(step(base, "bake_judge"), deps)
    assert verdict.status == "KeepBaking" and "have v2 3" in (verdict.reason or "")
    # And the figures are shown meanwhile
    state = deps.rollouts.get(MODEL)
    assert state is not None and [(f.version, f.requests) for f in state.figures] == [(1, 40), (2, 3)]


def test_a_promotion_by_hand_is_carried_out_by_the_next_judgement(
    stack: Stack, deps: BakeDependencies
) -> None:
    base = seed(stack, deps)
    request_decision(MODEL, RequestedDecision.PROMOTE, deps.rollouts)
    verdict = handle_bake_step(step(base, "bake_judge"), deps)
    assert (verdict.status, verdict.reason) == ("Promote", "v2 promoted by hand")
    promoted = handle_bake_step(step(base, "bake_promote", verdict=verdict.model_dump()), deps)
    assert promoted.status == "Promoted"
    state = deps.rollouts.get(MODEL)
    assert state is not None and state.state is RolloutPhase.PROMOTED and state.candidate_weight == 100


def test_an_abort_by_hand_stops_the_traffic_at_once(stack: Stack, deps: BakeDependencies) -> None:
    base = seed(stack, deps)
    aborted = request_decision(MODEL, RequestedDecision.ABORT, deps.rollouts)
    assert aborted.state is RolloutPhase.ABORTED and aborted.candidate_weight == 0
    verdict = handle_bake_step(step(base, "bake_judge"), deps)
    assert verdict.status == "Aborted"
    handle_bake_step(step(base, "bake_end", verdict=verdict.model_dump()), deps)
    assert deps.rollout.sagemaker.deleted == ["modeldrop-iris-v2"]  # type: ignore[attr-defined]
    with pytest.raises(NoBakeInProgress, match="the last rollout is Aborted"):
        request_decision(MODEL, RequestedDecision.PROMOTE, deps.rollouts)


def test_a_newer_upload_supersedes_the_bake_and_leaves_no_endpoint(
    stack: Stack, deps: BakeDependencies
) -> None:
    base = seed(stack, deps)
    newer = stack.records().get_deployment(MODEL, 2)
    assert newer is not None
    assert supersede_bake(
        MODEL, newer.model_copy(update={"version": 3, "deployment_id": "v3"}), deps.rollouts
    )
    verdict = handle_bake_step(step(base, "bake_judge"), deps)
    assert verdict.status == "Superseded" and "superseded by version 3" in (verdict.reason or "")
    ended = handle_bake_step(step(base, "bake_end", verdict=verdict.model_dump()), deps)
    assert ended.status == "Superseded"
    assert deps.rollout.sagemaker.deleted == ["modeldrop-iris-v2"]  # type: ignore[attr-defined]


def test_a_rollback_on_demand_during_a_bake_aborts_it(stack: Stack, deps: BakeDependencies) -> None:
    # Given a candidate baking
    base = seed(stack, deps)
    # When a rollback is asked for meanwhile (the Api function's rollback route does this first)
    assert abort_for_rollback(MODEL, deps.rollouts) is not None
    # Then the candidate's traffic stops at once, and the bake's next step ends it and drops its endpoint
    state = deps.rollouts.get(MODEL)
    assert state is not None and state.state is RolloutPhase.ABORTED and state.candidate_weight == 0
    assert "a rollback was requested during the bake" in (state.reason or "")
    verdict = handle_bake_step(step(base, "bake_judge"), deps)
    assert verdict.status == "Aborted"
    assert handle_bake_step(step(base, "bake_end", verdict=verdict.model_dump()), deps).status == "Aborted"
    assert deps.rollout.sagemaker.deleted == ["modeldrop-iris-v2"]  # type: ignore[attr-defined]
