"""DeploymentStatus: the deploy state machine's steps that need code. Logic: modeldrop.deployment_status,
and modeldrop.guardrails.bake for the steps of a canary or shadow bake."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.deployment_status import StatusDependencies, handle_status, result_json
from modeldrop.events import DeploymentStatusEvent
from modeldrop.guardrails.bake import BakeDependencies, handle_step
from modeldrop.observability import logger, metrics, tracer


@cache
def _dependencies() -> StatusDependencies:
    # Built on first use (not at import), so tests and the local cloud can set the environment first.
    return StatusDependencies.from_environment()


@cache
def _bake_dependencies() -> BakeDependencies:
    return BakeDependencies.from_environment()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=DeploymentStatusEvent)
def lambda_handler(event: DeploymentStatusEvent, context: LambdaContext) -> dict[str, Any]:
    result = handle_step(event, lambda step: handle_status(step, _dependencies()), _bake_dependencies)
    return result_json(result)
