"""Shadow function: a copy of a request, invoked asynchronously by the Api function during a shadow bake,
sent to the candidate and compared with the live answer. Logic: modeldrop.guardrails.shadow."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.api.dependencies import sagemaker_runtime_client
from modeldrop.api.runtime import SageMakerRuntime
from modeldrop.api.settings import ApiSettings
from modeldrop.guardrails.serving import ShadowRequest
from modeldrop.guardrails.shadow import compare_with_candidate
from modeldrop.observability import logger, metrics, tracer


@cache
def _runtime() -> SageMakerRuntime:
    return SageMakerRuntime(sagemaker_runtime_client(ApiSettings.from_env()))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ShadowRequest)
def lambda_handler(event: ShadowRequest, context: LambdaContext) -> dict[str, Any]:
    return compare_with_candidate(event, _runtime()).model_dump()
