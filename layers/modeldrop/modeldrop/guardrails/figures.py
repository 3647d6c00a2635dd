"""Each version's figures over a bake, read back from CloudWatch with GetMetricData.

One period covering the whole window (whole minutes: GetMetricData's periods are multiples of 60 for
data older than three hours, and standard-resolution metrics are kept per minute, see
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html), so each
query returns at most one value: the window's Sum, or its p99 (extended statistic `p99`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldrop.guardrails.judge import VersionFigures
from modeldrop.guardrails.metrics import (
    MODEL_DIMENSION,
    SHADOW_AGREED,
    SHADOW_COMPARED,
    VERSION_DIMENSION,
    VERSION_ERRORS,
    VERSION_LATENCY,
    VERSION_REQUESTS,
)

_MINUTE = 60


def metric_window(started: datetime, now: datetime) -> tuple[datetime, datetime, int]:
    """(start, end, period): whole minutes around [started, now]."""
    start = started.astimezone(UTC).replace(second=0, microsecond=0)
    end = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    period = max(_MINUTE, math.ceil((end - start).total_seconds() / _MINUTE) * _MINUTE)
    return start, end, period


def read_figures(
    cloudwatch: Any,
    *,
    namespace: str,
    model: str,
    versions: list[int],
    started: datetime,
    now: datetime,
    with_agreement: bool = False,
) -> dict[int, VersionFigures]:
    start, end, period = metric_window(started, now)
    queries: list[dict[str, Any]] = []
    for version in versions:
        wanted = [(VERSION_REQUESTS, "Sum"), (VERSION_ERRORS, "Sum"), (VERSION_LATENCY, "p99")]
        if with_agreement:
            wanted += [(SHADOW_COMPARED, "Sum"), (SHADOW_AGREED, "Sum")]
        for metric, stat in wanted:
            queries.append(
                {
                    "Id": f"v{version}_{metric.lower()}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": MODEL_DIMENSION, "Value": model},
                                {"Name": VERSION_DIMENSION, "Value": str(version)},
                            ],
                        },
                        "Period": period,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    values: dict[str, list[float]] = {}
    kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    while True:
        response = cloudwatch.get_metric_data(**kwargs)
        for result in response.get("MetricDataResults", []):
            values.setdefault(result["Id"], []).extend(float(value) for value in result.get("Values", []))
        token = response.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    figures: dict[int, VersionFigures] = {}
    for version in versions:

        def total(metric: str, version: int = version) -> int:
            return round(sum(values.get(f"v{version}_{metric.lower()}", [])))

        latencies = values.get(f"v{version}_{VERSION_LATENCY.lower()}", [])
        figures[version] = VersionFigures(
            version=version,
            requests=total(VERSION_REQUESTS),
            errors=total(VERSION_ERRORS),
            # More than one period can only come back if the window was cut: the worst p99 stands.
            p99_ms=max(latencies) if latencies else None,
            agreed=total(SHADOW_AGREED) if with_agreement else None,
            compared=total(SHADOW_COMPARED) if with_agreement else None,
        )
    return figures
