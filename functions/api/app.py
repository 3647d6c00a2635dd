"""Api function: API Gateway (REST, proxy) → modeldrop's routes. Logic lives in the layer (modeldrop.api)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.api.dependencies import default_dependencies
from modeldrop.api.routes import create_resolver
from modeldrop.observability import logger, metrics, tracer

app = create_resolver(default_dependencies)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
