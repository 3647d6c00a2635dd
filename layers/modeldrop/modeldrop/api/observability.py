"""Logger, Tracer and Metrics for the Api function (service name and namespace from POWERTOOLS_* env).

Kept in the api package until the layer's shared observability module exists.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
