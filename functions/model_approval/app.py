"""ModelApproval: "SageMaker Model Package State Change" (EventBridge) → start or reject the version.

The logic lives in the layer (modeldrop.registry); this handler parses the event and makes one call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.observability import logger, metrics, tracer
from modeldrop.registry import (
    ApprovalDependencies,
    ModelPackageStateChangeEvent,
    approval_dependencies,
    handle_state_change,
)


@cache
def _dependencies() -> ApprovalDependencies:
    # Built on first use (not at import), so tests and the local cloud can set the environment first.
    return approval_dependencies()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ModelPackageStateChangeEvent)
def lambda_handler(event: ModelPackageStateChangeEvent, context: LambdaContext) -> dict[str, Any]:
    return handle_state_change(event.detail, _dependencies()).model_dump(mode="json")
