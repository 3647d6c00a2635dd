"""InvokeEndpoint through boto3: serverless semantics, limits, model errors, metrics and logs."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from modeldrop_local.example_models import iris_sample

from tests.integration.local_sagemaker.conftest import (
    ModelUrls,
    create_serverless_endpoint,
    invoke_json,
)
from tests.standalone_sagemaker import wait_until_settled
from tests.utils import ManualClock

IRIS_PREDICTIONS = [0, 0, 1, 2]


@pytest.fixture(scope="module")
def behaviour_endpoint(sm: Any, model_urls: ModelUrls) -> str:
    create_serverless_endpoint(sm, "rt-behaviour", model_urls.behaviour, max_concurrency=2)
    assert wait_until_settled(sm, "rt-behaviour")["EndpointStatus"] == "InService"
    return "rt-behaviour"


@pytest.fixture(scope="module")
def iris_endpoint(sm: Any, model_urls: ModelUrls) -> str:
    create_serverless_endpoint(sm, "rt-iris", model_urls.iris, max_concurrency=1)
    assert wait_until_settled(sm, "rt-iris")["EndpointStatus"] == "InService"
    return "rt-iris"


def _metrics(local_sagemaker: Any, name: str) -> dict[str, Any]:
    response = httpx.get(f"{local_sagemaker.url}/_modeldrop/metrics/{name}")
    assert response.status_code == 200
    return dict(response.json())


def _wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_max_concurrency_holds_and_no_request_is_lost(
    local_sagemaker: Any, runtime: Any, behaviour_endpoint: str
) -> None:
    # Given an endpoint with MaxConcurrency 2 and a model that takes 1 s per request
    before = _metrics(local_sagemaker, behaviour_endpoint)["Metrics"]
    requests = 8
    start = threading.Barrier(requests)

    def call(_: int) -> tuple[str, Any]:
        start.wait()
        try:
            return "ok", invoke_json(runtime, behaviour_endpoint, {"rows": iris_sample(), "sleep": 1.0})
        except ClientError as error:
            return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]

    # When 8 requests arrive at once
    with ThreadPoolExecutor(max_workers=requests) as pool:
        outcomes = list(pool.map(call, range(requests)))
    # Then each got its prediction or SageMaker's throttling error, none lost, none other
    answered = [body for kind, body in outcomes if kind == "ok"]
    throttled = [status for kind, status in outcomes if kind == "ThrottlingException"]
    assert len(answered) + len(throttled) == requests, outcomes
    assert all(body == {"predictions": IRIS_PREDICTIONS} for body in answered)
    assert throttled and set(throttled) == {400}
    assert 1 <= len(answered) <= requests - 1
    # And never more than 2 ran at once, and the metrics count the same throttles
    after = _metrics(local_sagemaker, behaviour_endpoint)
    assert after["PeakConcurrentInvocations"] <= 2
    assert after["Workers"]["workers"] <= 2
    counted = after["Metrics"]["Throttles"]["SampleCount"] - before["Throttles"]["SampleCount"]
    assert counted == len(throttled)
    served = after["Metrics"]["Invocations"]["SampleCount"] - before["Invocations"]["SampleCount"]
    assert served == len(answered)


def test_idle_workers_scale_to_zero_and_cold_start_again(
    local_sagemaker: Any, clock: ManualClock, runtime: Any, iris_endpoint: str
) -> None:
    lifecycle = local_sagemaker.app.service.lifecycle
    # Given a served request (one warm worker)
    assert invoke_json(runtime, iris_endpoint, iris_sample()) == IRIS_PREDICTIONS
    cold_starts = _metrics(local_sagemaker, iris_endpoint)["Metrics"]["ModelSetupTime"]["SampleCount"]
    # When the reaper runs before the idle timeout (1 s here) is over
    clock.advance(0.5)
    lifecycle.reap()
    # Then the worker stays
    assert _metrics(local_sagemaker, iris_endpoint)["Workers"]["workers"] == 1
    # When it runs once nothing has arrived for the idle timeout
    clock.advance(0.5)
    lifecycle.reap()
    # Then it has stopped the worker, and says so in the endpoint's log
    assert _metrics(local_sagemaker, iris_endpoint)["Workers"]["workers"] == 0
    assert "scaled in: stopped 1 idle worker(s)" in local_sagemaker.app.service.data_plane.read_log(
        iris_endpoint
    )
    # And the next request cold-starts a new worker and is served
    assert invoke_json(runtime, iris_endpoint, iris_sample()) == IRIS_PREDICTIONS
    metrics = _metrics(local_sagemaker, iris_endpoint)["Metrics"]
    assert metrics["ModelSetupTime"]["SampleCount"] == cold_starts + 1
    assert metrics["ModelSetupTime"]["p50"] > 0


def test_provisioned_workers_stay_warm(
    local_sagemaker: Any, clock: ManualClock, sm: Any, runtime: Any, model_urls: ModelUrls
) -> None:
    # Given an endpoint with ProvisionedConcurrency 1
    create_serverless_endpoint(sm, "rt-warm", model_urls.iris, max_concurrency=2, provisioned=1)
    assert wait_until_settled(sm, "rt-warm")["EndpointStatus"] == "InService"
    # Then its worker is up before any request
    assert _metrics(local_sagemaker, "rt-warm")["Workers"] == {
        "busy": 0,
        "idle": 1,
        "workers": 1,
        "provisioned": 1,
    }
    setup = _metrics(local_sagemaker, "rt-warm")["Metrics"]["ModelSetupTime"]["SampleCount"]
    # When it stays idle for ten idle timeouts, and the reaper runs
    clock.advance(10.0)
    local_sagemaker.app.service.lifecycle.reap()
    # Then the worker is still up, and a request is served without a cold start
    assert _metrics(local_sagemaker, "rt-warm")["Workers"]["workers"] == 1
    assert invoke_json(runtime, "rt-warm", iris_sample()) == IRIS_PREDICTIONS
    assert _metrics(local_sagemaker, "rt-warm")["Metrics"]["ModelSetupTime"]["SampleCount"] == setup


def test_payload_over_4_mb_is_refused(local_sagemaker: Any, runtime: Any, iris_endpoint: str) -> None:
    # When a request carries more than 4 MB
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName=iris_endpoint, Body=b"1" * (4 * 1024 * 1024 + 1), ContentType="text/csv"
        )
    # Then it is SageMaker's ValidationError, before any model sees it
    error: dict[str, Any] = dict(caught.value.response)
    assert error["Error"]["Code"] == "ValidationError"
    assert error["Error"]["Message"].endswith("has oversize body.")
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_endpoint(runtime: Any) -> None:
    with pytest.raises(ClientError) as caught:
        invoke_json(runtime, "rt-ghost", iris_sample())
    assert caught.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint rt-ghost of account 123456789012 not found.",
    }


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"[[1, 2, 3, 4]]", "image/png", 415), (b"not,a,number,row", "text/csv", 400)],
    ids=["unsupported-type", "bad-input"],
)
def test_handler_errors_are_model_errors(
    local_sagemaker: Any, runtime: Any, iris_endpoint: str, body: bytes, content_type: str, status: int
) -> None:
    before = _metrics(local_sagemaker, iris_endpoint)["Metrics"]["Invocation4XXErrors"]["SampleCount"]
    # When the built-in handler refuses the input
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName=iris_endpoint, Body=body, ContentType=content_type)
    # Then it is ModelError 424 carrying the handler's status and message
    error: dict[str, Any] = dict(caught.value.response)
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == status
    assert error["OriginalMessage"]
    assert error["LogStreamArn"].endswith(f"log-group:/aws/sagemaker/Endpoints/{iris_endpoint}")
    assert f"Received client error ({status}) from primary" in error["Error"]["Message"]
    after = _metrics(local_sagemaker, iris_endpoint)["Metrics"]["Invocation4XXErrors"]["SampleCount"]
    assert after == before + 1


def test_a_crashed_worker_is_replaced(local_sagemaker: Any, runtime: Any, behaviour_endpoint: str) -> None:
    # When the model kills its own process during a request
    with pytest.raises(ClientError) as caught:
        invoke_json(runtime, behaviour_endpoint, {"rows": iris_sample(), "crash": True})
    # Then that request gets a clean ModelError (server side)
    error: dict[str, Any] = dict(caught.value.response)
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    # And the next request is served by a fresh worker
    assert invoke_json(runtime, behaviour_endpoint, {"rows": iris_sample()}) == {
        "predictions": IRIS_PREDICTIONS
    }


def test_a_hung_worker_times_out_and_is_replaced(
    local_sagemaker: Any, runtime: Any, behaviour_endpoint: str
) -> None:
    # Given an invocation limit of 3 s in this server (60 s by default, as SageMaker)
    # When the model takes longer
    started = time.monotonic()
    with pytest.raises(ClientError) as caught:
        invoke_json(runtime, behaviour_endpoint, {"rows": iris_sample(), "sleep": 30})
    # Then the request fails at the limit with SageMaker's timeout ModelError
    assert time.monotonic() - started < 15
    error: dict[str, Any] = dict(caught.value.response)
    assert error["Error"]["Code"] == "ModelError"
    assert (
        "Your invocation timed out while waiting for a response from container primary"
        in error["Error"]["Message"]
    )
    # And the next request is served
    assert invoke_json(runtime, behaviour_endpoint, {"rows": iris_sample()}) == {
        "predictions": IRIS_PREDICTIONS
    }
    assert _metrics(local_sagemaker, behaviour_endpoint)["Metrics"]["Invocation5XXErrors"]["SampleCount"] >= 1


def test_metrics_and_logs_endpoints(local_sagemaker: Any, runtime: Any, iris_endpoint: str) -> None:
    # Given a served request with a known request id in its response
    response = runtime.invoke_endpoint(
        EndpointName=iris_endpoint, Body=json.dumps(iris_sample()), ContentType="application/json"
    )
    request_id = response["ResponseMetadata"]["RequestId"]
    # Then the metrics use SageMaker's names, with latencies in microseconds
    metrics = _metrics(local_sagemaker, iris_endpoint)["Metrics"]
    assert set(metrics) == {
        "Invocations",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "ModelLatency",
        "OverheadLatency",
        "ModelSetupTime",
        "Throttles",
    }
    assert metrics["Invocations"]["SampleCount"] >= 1
    assert 0 < metrics["ModelLatency"]["p50"] <= metrics["ModelLatency"]["p99"]
    # And the log shows the request id next to the worker's line for it
    log = httpx.get(f"{local_sagemaker.url}/_modeldrop/logs/{iris_endpoint}", params={"tail": 200}).text
    assert f"[{request_id}]" in log
    # And unknown endpoints are refused there too
    assert httpx.get(f"{local_sagemaker.url}/_modeldrop/metrics/rt-ghost").status_code == 400


def test_logs_reach_cloudwatch_like_sagemakers(runtime: Any, iris_endpoint: str, s3_endpoint: str) -> None:
    import boto3

    # Given a served request
    response = runtime.invoke_endpoint(
        EndpointName=iris_endpoint, Body=json.dumps(iris_sample()), ContentType="application/json"
    )
    request_id = response["ResponseMetadata"]["RequestId"]
    logs = boto3.client("logs", endpoint_url=s3_endpoint, region_name="us-east-1")
    group = f"/aws/sagemaker/Endpoints/{iris_endpoint}"

    # Then its worker's line shows up in the endpoint's CloudWatch log group, as on SageMaker
    def shipped() -> bool:
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            return False
        return any(f"[{request_id}]" in event["message"] for event in events)

    _wait_for(shipped, 10, "the request's log line in CloudWatch")
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [stream["logStreamName"] for stream in streams] == ["AllTraffic/local"]


@pytest.mark.parametrize("framework", ["onnx", "xgboost"])
def test_built_in_loaders_answer_like_the_model(
    sm: Any, runtime: Any, model_urls: ModelUrls, framework: str
) -> None:
    # Given a tarball of this framework on a custom image (modeldrop's built-in loaders)
    name = f"rt-{framework}"
    create_serverless_endpoint(sm, name, getattr(model_urls, framework))
    assert wait_until_settled(sm, name)["EndpointStatus"] == "InService"
    # When invoked with JSON, Then it answers what the model predicts in-process
    assert invoke_json(runtime, name, iris_sample()) == model_urls.expected[framework]


def test_csv_and_npy_in_and_out(runtime: Any, iris_endpoint: str, model_urls: ModelUrls) -> None:
    import io

    import numpy as np

    expected = model_urls.expected["iris"]
    # CSV in, CSV out
    csv_rows = "\n".join(",".join(str(value) for value in row) for row in iris_sample())
    response = runtime.invoke_endpoint(
        EndpointName=iris_endpoint, Body=csv_rows, ContentType="text/csv", Accept="text/csv"
    )
    assert response["ContentType"].startswith("text/csv")
    answer = response["Body"].read().decode().split()
    assert [int(float(value)) for value in answer] == expected
    # NPY in, NPY out
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(iris_sample()))
    response = runtime.invoke_endpoint(
        EndpointName=iris_endpoint,
        Body=buffer.getvalue(),
        ContentType="application/x-npy",
        Accept="application/x-npy",
    )
    assert response["ContentType"] == "application/x-npy"
    assert np.load(io.BytesIO(response["Body"].read())).tolist() == expected
