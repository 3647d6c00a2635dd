"""OnUpload: S3 ObjectCreated (models/<name>/model.tar.gz) → inspect → SageMaker deployment.

The logic lives in the layer (modeldrop.deploy); this handler parses the event and loops over its records.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from modeldrop.deploy import DeployDependencies, idempotent_deployer, outcome_json
from modeldrop.events import S3Model, UploadedObject
from modeldrop.observability import logger, metrics, tracer


@cache
def _deployer() -> tuple[Any, IdempotencyConfig]:
    # Built on first use (not at import), so tests and the local cloud can set the environment first.
    return idempotent_deployer(DeployDependencies.from_environment())


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=S3Model)
def lambda_handler(event: S3Model, context: LambdaContext) -> dict[str, Any]:
    deploy_once, idempotency_config = _deployer()
    idempotency_config.register_lambda_context(context)
    outcomes = [deploy_once(upload=UploadedObject.from_record(record)) for record in event.Records]
    return {"outcomes": [outcome_json(outcome) for outcome in outcomes]}
