"""CloudWatch Logs' extraction of embedded metric format (EMF) records: a function's log line that is an
EMF record becomes CloudWatch metrics, as on AWS, where Lambda's log group does it for the function.

The rules are the EMF specification's
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
a JSON object whose `_aws` member holds `Timestamp` (milliseconds since the epoch) and
`CloudWatchMetrics`, a list of directives, each with a `Namespace`, `Dimensions` (a list of
DimensionSets: lists of member names whose values are strings) and `Metrics` (definitions with `Name`,
optional `Unit` and `StorageResolution`); each metric's value is the root member of its name, a number
or a list of up to 100 numbers. Every DimensionSet gives a metric of its own. A record that breaks the
rules stays a log line and gives no metric, as in CloudWatch Logs.

`EmfSink` sends the extracted data with PutMetricData (to the local cloud's CloudWatch, moto's) from a
background thread, in batches, so a function's log is never slowed by it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

# Limits of the EMF specification and of PutMetricData (CloudWatch API reference, PutMetricData).
MAX_DIMENSIONS_PER_SET = 30
MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_METRIC = 100
MAX_DATA_PER_PUT = 1000
# How long the sink waits for more records before it sends what it has.
BATCH_WINDOW_S = 0.2

PutMetricData = Callable[..., Any]


def metric_data(record: Any) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, PutMetricData datum) for each metric of an EMF record; [] if it is not a valid one."""
    if not isinstance(record, dict):
        return []
    metadata = record.get("_aws")
    if not isinstance(metadata, dict):
        return []
    stamp = metadata.get("Timestamp")
    directives = metadata.get("CloudWatchMetrics")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool) or not isinstance(directives, list):
        return []
    timestamp = datetime.fromtimestamp(stamp / 1000, tz=UTC)
    extracted: list[tuple[str, dict[str, Any]]] = []
    for directive in directives:
        extracted.extend(_directive_data(record, directive, timestamp) or [])
    return extracted


def _directive_data(
    record: dict[str, Any], directive: Any, timestamp: datetime
) -> list[tuple[str, dict[str, Any]]] | None:
    if not isinstance(directive, dict):
        return None
    namespace, dimension_sets, metrics = (
        directive.get(key) for key in ("Namespace", "Dimensions", "Metrics")
    )
    if not isinstance(namespace, str) or not namespace or not isinstance(dimension_sets, list):
        return None
    if not isinstance(metrics, list) or len(metrics) > MAX_METRICS_PER_DIRECTIVE:
        return None
    resolved_sets: list[list[dict[str, str]]] = []
    for dimension_set in dimension_sets:
        if not isinstance(dimension_set, list) or len(dimension_set) > MAX_DIMENSIONS_PER_SET:
            return None
        dimensions = []
        for name in dimension_set:
            value = record.get(name) if isinstance(name, str) else None
            if not isinstance(value, str):
                return None  # a dimension's member must exist and be a string
            dimensions.append({"Name": name, "Value": value})
        resolved_sets.append(dimensions)
    data: list[tuple[str, dict[str, Any]]] = []
    for definition in metrics:
        if not isinstance(definition, dict) or not isinstance(definition.get("Name"), str):
            return None
        name = definition["Name"]
        values = _values(record.get(name))
        if values is None:
            continue  # a metric without a valid value is left out; the others stand
        for dimensions in resolved_sets or [[]]:
            datum: dict[str, Any] = {
                "MetricName": name,
                "Timestamp": timestamp,
                "Values": values,
                "Dimensions": dimensions,
            }
            if isinstance(definition.get("Unit"), str):
                datum["Unit"] = definition["Unit"]
            if definition.get("StorageResolution") in (1, 60):
                datum["StorageResolution"] = definition["StorageResolution"]
            data.append((namespace, datum))
    return data


def _values(value: Any) -> list[float] | None:
    if _is_number(value):
        return [float(value)]
    if isinstance(value, list) and 0 < len(value) <= MAX_VALUES_PER_METRIC and all(map(_is_number, value)):
        return [float(item) for item in value]
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def emf_record(line: str) -> Any:
    """The line's JSON object if it may be an EMF record (cheap test first: most lines are not)."""
    if '"_aws"' not in line:
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


class EmfSink:
    """Takes the functions' log lines, sends the metrics of their EMF records with PutMetricData."""

    def __init__(self, put_metric_data: PutMetricData) -> None:
        self._put = put_metric_data
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="emf-sink")
        self._thread.start()

    def offer(self, line: str) -> None:
        record = emf_record(line)
        if record is None:
            return
        data = metric_data(record)
        with self._idle:
            self._pending += len(data)
        for item in data:
            self._queue.put(item)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every metric offered so far was sent (tests; a bake's judge reads them back)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            try:
                while len(batch) < MAX_DATA_PER_PUT:
                    more = self._queue.get(timeout=BATCH_WINDOW_S)
                    if more is None:
                        self._send(batch)
                        return
                    batch.append(more)
            except queue.Empty:
                pass
            self._send(batch)

    def _send(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in batch:
            by_namespace.setdefault(namespace, []).append(datum)
        try:
            for namespace, data in by_namespace.items():
                for start in range(0, len(data), MAX_DATA_PER_PUT):
                    self._put(Namespace=namespace, MetricData=data[start : start + MAX_DATA_PER_PUT])
        except Exception:  # a metric lost is a log line's worth; the function and its log go on
            logger.warning("PutMetricData of EMF records failed", exc_info=True)
        finally:
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
