"""Per-version figures as CloudWatch metrics: one EMF record per answer, dimensions Model and Version.

Powertools' EphemeralMetrics with service "" pins the dimensions to exactly (Model, Version), the set
figures.py asks GetMetricData for (CloudWatch matches a metric's whole dimension set) and the one a
user's alarms and dashboards name. Errors are counted per answer (0 or 1) so that a version's error
rate is Sum(VersionErrors) / Sum(VersionRequests) over any window.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

VERSION_REQUESTS = "VersionRequests"
VERSION_ERRORS = "VersionErrors"
VERSION_LATENCY = "VersionLatency"
# Shadow: the candidate's answers compared with the live one, and those that agreed.
SHADOW_COMPARED = "ShadowCompared"
SHADOW_AGREED = "ShadowAgreed"
MODEL_DIMENSION = "Model"
VERSION_DIMENSION = "Version"


def _version_metrics(model: str, version: int) -> EphemeralMetrics:
    metrics = EphemeralMetrics(service="")
    metrics.add_dimension(name=MODEL_DIMENSION, value=model)
    metrics.add_dimension(name=VERSION_DIMENSION, value=str(version))
    return metrics


def record_answer(model: str, version: int, *, latency_ms: float, error: bool) -> None:
    """One answer of `version` (an error is a failure of the model or its endpoint, not a bad request)."""
    metrics = _version_metrics(model, version)
    metrics.add_metric(name=VERSION_REQUESTS, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=VERSION_ERRORS, unit=MetricUnit.Count, value=1 if error else 0)
    metrics.add_metric(name=VERSION_LATENCY, unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.flush_metrics()


def record_comparison(model: str, version: int, *, agreed: bool) -> None:
    metrics = _version_metrics(model, version)
    metrics.add_metric(name=SHADOW_COMPARED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=SHADOW_AGREED, unit=MetricUnit.Count, value=1 if agreed else 0)
    metrics.flush_metrics()
