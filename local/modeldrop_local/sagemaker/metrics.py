"""Per-endpoint metrics under SageMaker's CloudWatch names (AWS/SageMaker namespace).

Latencies are in microseconds like SageMaker's ModelLatency/OverheadLatency/ModelSetupTime.
Each metric keeps SampleCount and Sum plus a bounded window of samples for p50/p99.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

METRIC_NAMES = (
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "ModelLatency",
    "OverheadLatency",
    "ModelSetupTime",
    "Throttles",
)
_WINDOW = 10_000


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[rank]


class _Series:
    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.window: deque[float] = deque(maxlen=_WINDOW)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.window.append(value)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.window)
        return {
            "SampleCount": self.count,
            "Sum": self.total,
            "p50": _percentile(ordered, 0.50),
            "p99": _percentile(ordered, 0.99),
        }


class EndpointMetrics:
    """Thread-safe counters for one endpoint; `snapshot()` is what GET /_modeldrop/metrics returns."""

    def __init__(self, endpoint_name: str) -> None:
        self.endpoint_name = endpoint_name
        self._series = {name: _Series() for name in METRIC_NAMES}
        self._lock = threading.Lock()
        self.peak_concurrency = 0

    def record(self, name: str, value: float = 1.0) -> None:
        with self._lock:
            self._series[name].add(value)

    def observe_concurrency(self, busy: int) -> None:
        with self._lock:
            self.peak_concurrency = max(self.peak_concurrency, busy)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            metrics = {name: series.summary() for name, series in self._series.items()}
            return {
                "EndpointName": self.endpoint_name,
                "Namespace": "AWS/SageMaker",
                "Metrics": metrics,
                "PeakConcurrentInvocations": self.peak_concurrency,
            }
