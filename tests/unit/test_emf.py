"""The functions host's EMF extraction (CloudWatch Logs' rules) and moto's percentiles, record by record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from modeldrop_local.cloudwatch_percentiles import nearest_rank_percentile
from modeldrop_local.functions_host.emf import emf_record, metric_data


def emf(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "modeldrop",
                    "Dimensions": [["Model", "Version"], ["Model"]],
                    "Metrics": [
                        {"Name": "VersionLatency", "Unit": "Milliseconds"},
                        {"Name": "VersionRequests"},
                    ],
                }
            ],
        },
        "Model": "iris",
        "Version": "3",
        "VersionLatency": [12.5, 13.0],
        "VersionRequests": 1,
    }
    record.update(overrides)
    return record


def test_each_dimension_set_gives_a_metric_of_its_own() -> None:
    data = metric_data(emf())
    assert [(datum["MetricName"], datum["Dimensions"]) for _, datum in data] == [
        ("VersionLatency", [{"Name": "Model", "Value": "iris"}, {"Name": "Version", "Value": "3"}]),
        ("VersionLatency", [{"Name": "Model", "Value": "iris"}]),
        ("VersionRequests", [{"Name": "Model", "Value": "iris"}, {"Name": "Version", "Value": "3"}]),
        ("VersionRequests", [{"Name": "Model", "Value": "iris"}]),
    ]
    namespace, first = data[0]
    assert namespace == "modeldrop"
    assert first["Values"] == [12.5, 13.0] and first["Unit"] == "Milliseconds"
    assert first["Timestamp"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "record",
    [
        emf(Version=3),  # a dimension value must be a string
        emf(_aws={"CloudWatchMetrics": []}),  # no Timestamp
        emf(_aws={"Timestamp": "now", "CloudWatchMetrics": []}),
        {"message": "a log line", "level": "INFO"},
        [1, 2],
    ],
)
def test_records_that_break_the_rules_give_no_metric(record: Any) -> None:
    assert metric_data(record) == []


def test_a_metric_without_a_numeric_value_is_left_out_and_the_others_stand() -> None:
    data = metric_data(emf(VersionLatency="fast"))
    assert {datum["MetricName"] for _, datum in data} == {"VersionRequests"}


def test_only_lines_naming_aws_are_parsed() -> None:
    assert emf_record('{"level": "INFO", "message": "hi"}') is None
    assert emf_record(json.dumps(emf())) == emf()


@pytest.mark.parametrize(("percent", "expected"), [(50, 50), (99, 99), (100, 100), (1, 1), (99.5, 100)])
def test_nearest_rank_percentile(percent: float, expected: float) -> None:
    assert nearest_rank_percentile([float(value) for value in range(100, 0, -1)], percent) == expected
