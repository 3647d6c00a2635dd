"""The functions host behind the edge's Lambda Invoke API, S3 notifications and the state machine engine."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldrop_local.cloud import LocalCloud

from tests.integration.local_cloud.conftest import echo_function_environment, wait_for


def _invoke(client: Callable[[str], Any], payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client("lambda").invoke(FunctionName="fixture-EchoFunction", Payload=json.dumps(payload))
    return response, json.loads(response["Payload"].read())


def test_function_runs_with_its_template_environment_layer_and_context(
    cloud: LocalCloud, client: Callable[[str], Any]
) -> None:
    # When EchoFunction is invoked through the edge's Lambda Invoke API
    response, answer = _invoke(client, {"ping": 1})
    # Then it ran from its CodeUri with the layer, resolved environment and a Lambda-shaped context
    assert "FunctionError" not in response
    assert answer["event"] == {"ping": 1}
    assert answer["layer"] == "from-the-layer"
    assert answer["env"] == echo_function_environment(cloud)
    context = answer["context"]
    assert context["function_name"] == "fixture-EchoFunction"
    assert context["memory_limit_in_mb"] == 256
    assert context["invoked_function_arn"].endswith(":function:fixture-EchoFunction")
    assert 0 < context["remaining_ms"] <= 2000


def test_worker_stays_warm_between_invocations(client: Callable[[str], Any]) -> None:
    # When the function is invoked twice in a row
    _, first = _invoke(client, {})
    _, second = _invoke(client, {})
    # Then the same warm process answered both
    assert first["pid"] == second["pid"]
    assert first["context"]["aws_request_id"] != second["context"]["aws_request_id"]


def test_exception_comes_back_in_lambdas_error_shape(client: Callable[[str], Any]) -> None:
    # When the handler raises
    response, answer = _invoke(client, {"fail": "on purpose"})
    # Then Invoke reports an Unhandled function error with Lambda's error document
    assert response["FunctionError"] == "Unhandled"
    assert answer["errorType"] == "ValueError"
    assert answer["errorMessage"] == "asked to fail: on purpose"
    assert isinstance(answer["stackTrace"], list) and answer["stackTrace"]


def test_timeout_kills_the_worker_and_the_next_call_starts_fresh(client: Callable[[str], Any]) -> None:
    # Given a warm worker
    _, before = _invoke(client, {})
    # When an invocation outlives the template's Timeout (2 s)
    response, answer = _invoke(client, {"sleep": 5})
    # Then it fails as Lambda's timeout, and the next invocation runs in a new process
    assert response["FunctionError"] == "Unhandled"
    assert answer["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in answer["errorMessage"]
    _, after = _invoke(client, {})
    assert after["pid"] != before["pid"]


def test_unknown_function_is_a_404(client: Callable[[str], Any]) -> None:
    # When a function the template does not declare is invoked
    lambda_client = client("lambda")
    try:
        lambda_client.invoke(FunctionName="nope", Payload=b"{}")
    except lambda_client.exceptions.ResourceNotFoundException as error:
        # Then Lambda's ResourceNotFoundException comes back
        assert "nope" in str(error)
    else:
        raise AssertionError("expected ResourceNotFoundException")


def test_s3_upload_notifies_the_subscribed_function_like_s3(
    cloud: LocalCloud, client: Callable[[str], Any]
) -> None:
    # Given the bucket whose notification targets RecorderFunction for in/*.bin
    bucket = "fixture-uploads-123456789012"
    s3 = client("s3")
    table = "fixture-EventsTable"
    # When one object outside the filter and then one inside it are uploaded
    s3.put_object(Bucket=bucket, Key="other/skip.bin", Body=b"x")
    put = s3.put_object(Bucket=bucket, Key="in/data.bin", Body=b"12345")
    # Then RecorderFunction receives S3's event shape for the matching object only
    item = wait_for(
        lambda: client("dynamodb").get_item(TableName=table, Key={"id": {"S": "in/data.bin"}}).get("Item")
    )
    record = json.loads(item["record"]["S"])
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == bucket
    assert record["s3"]["object"]["size"] == 5
    assert record["s3"]["object"]["versionId"] == put["VersionId"]
    assert record["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    assert len(record["s3"]["object"]["sequencer"]) == 18
    assert record["s3"]["configurationId"] == "fixture-Uploaded"
    skipped = client("dynamodb").get_item(TableName=table, Key={"id": {"S": "other/skip.bin"}})
    assert "Item" not in skipped


def test_state_machine_runs_the_asl_and_calls_back_through_the_edge(client: Callable[[str], Any]) -> None:
    # Given the fixture state machine whose Task invokes EchoFunction
    sfn = client("stepfunctions")
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:fixture-Flow"
    # When one execution succeeds and one makes the function raise
    run = uuid.uuid4().hex[:8]
    good = sfn.start_execution(stateMachineArn=arn, name=f"good-{run}", input=json.dumps({"x": 1}))[
        "executionArn"
    ]
    bad = sfn.start_execution(stateMachineArn=arn, name=f"bad-{run}", input=json.dumps({"fail": "in-asl"}))[
        "executionArn"
    ]

    def finished(execution_arn: str) -> dict[str, Any] | None:
        described = sfn.describe_execution(executionArn=execution_arn)
        return None if described["status"] == "RUNNING" else described

    # Then the first returns the function's answer, the second is caught with Lambda's error type
    assert json.loads(wait_for(lambda: finished(good))["output"]) == {"greeting": "hi-from-params"}
    bad_result = wait_for(lambda: finished(bad))
    assert bad_result["status"] == "SUCCEEDED"
    error = json.loads(bad_result["output"])["error"]
    assert error["Error"] == "ValueError"
    assert "asked to fail: in-asl" in error["Cause"]


def test_multipart_upload_notifies_with_the_whole_objects_size(client: Callable[[str], Any]) -> None:
    # Given an object big enough for a multipart upload (two parts)
    bucket, key = "fixture-uploads-123456789012", "in/big.bin"
    s3 = client("s3")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, size in ((1, 5 * 2**20), (2, 1024)):
        etag = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=b"x" * size
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    # When the upload is completed
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    # Then one CompleteMultipartUpload notification carries the whole object's size
    table = "fixture-EventsTable"
    item = wait_for(lambda: client("dynamodb").get_item(TableName=table, Key={"id": {"S": key}}).get("Item"))
    record = json.loads(item["record"]["S"])
    assert record["eventName"] == "ObjectCreated:CompleteMultipartUpload"
    assert record["s3"]["object"]["size"] == 5 * 2**20 + 1024


def test_event_invocation_is_accepted_and_runs_in_the_background(client: Callable[[str], Any]) -> None:
    # Given an S3-shaped event for RecorderFunction
    event = {"Records": [{"s3": {"object": {"key": f"async-{uuid.uuid4().hex}"}}}]}
    key = event["Records"][0]["s3"]["object"]["key"]
    # When it is invoked with InvocationType=Event
    response = client("lambda").invoke(
        FunctionName="fixture-RecorderFunction", InvocationType="Event", Payload=json.dumps(event)
    )
    # Then Lambda's 202 comes back at once and the function still runs
    assert response["StatusCode"] == 202
    table = "fixture-EventsTable"
    assert wait_for(lambda: client("dynamodb").get_item(TableName=table, Key={"id": {"S": key}}).get("Item"))


def test_import_failure_is_lambdas_import_module_error(client: Callable[[str], Any]) -> None:
    # When a function whose module fails to import is invoked
    response = client("lambda").invoke(FunctionName="fixture-BrokenFunction", Payload=b"{}")
    answer = json.loads(response["Payload"].read())
    # Then Lambda's Runtime.ImportModuleError comes back with the import's message
    assert response["FunctionError"] == "Unhandled"
    assert answer["errorType"] == "Runtime.ImportModuleError"
    assert "a_missing_dependency" in answer["errorMessage"]


def test_emf_records_in_a_functions_log_become_cloudwatch_metrics(
    cloud: LocalCloud, client: Callable[[str], Any]
) -> None:
    # Given a function that logs two EMF records (one with a list of values) and one that is not valid
    namespace = f"emf-{uuid.uuid4().hex[:8]}"
    now_ms = int(time.time() * 1000)

    def record(values: Any, version: Any = "7") -> str:
        return json.dumps(
            {
                "_aws": {
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": namespace,
                            "Dimensions": [["Model", "Version"]],
                            "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}],
                        }
                    ],
                },
                "Model": "iris",
                "Version": version,
                "Latency": values,
            }
        )

    lines = [record(list(range(1, 100))), record(1000), record(5000, version=7), "not json"]
    # When it is invoked and its log has gone through the host
    response, _ = _invoke(client, {"log_lines": lines})
    assert "FunctionError" not in response

    # Then GetMetricData sees 100 values (the record whose Version is a number is not EMF: no metric)
    def query(stat: str) -> dict[str, Any]:
        return {
            "Id": stat.replace(".", "_").lower(),
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": "Latency",
                    "Dimensions": [{"Name": "Model", "Value": "iris"}, {"Name": "Version", "Value": "7"}],
                },
                "Period": 300,
                "Stat": stat,
            },
        }

    start = datetime.fromtimestamp(now_ms / 1000 - 120, tz=UTC)

    def metrics() -> dict[str, list[float]] | None:
        answer = client("cloudwatch").get_metric_data(
            MetricDataQueries=[query("SampleCount"), query("p50"), query("p99"), query("Maximum")],
            StartTime=start,
            EndTime=start + timedelta(minutes=5),
        )
        found = {result["Id"]: result["Values"] for result in answer["MetricDataResults"]}
        # Extraction is asynchronous, on AWS too: wait until both valid records are in.
        return found if found["samplecount"] == [100.0] else None

    values = wait_for(metrics)
    # and the percentiles are nearest-rank over the raw values: p50 of 1..99,1000 is 50, p99 is 99
    assert values == {"samplecount": [100.0], "p50": [50.0], "p99": [99.0], "maximum": [1000.0]}
