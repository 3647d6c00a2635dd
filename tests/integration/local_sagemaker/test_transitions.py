"""Transitions that the real workers pass too quickly to observe, made observable with a gated launcher.

The launcher here is a stand-in with the worker API (prepare/start/close; invoke/is_alive/stop):
its prepare blocks until the test opens the gate of that deployment, so Creating and Updating can be
held open while the tests invoke and describe through boto3. Downloads and extraction are real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from modeldrop_local.sagemaker import start_in_thread
from modeldrop_local.sagemaker.metrics import EndpointMetrics
from modeldrop_local.sagemaker.pool import MaxConcurrencyReached, ServerlessPool
from modeldrop_local.sagemaker.records import EndpointDeployment
from modeldrop_local.sagemaker.server import RunningServer
from modeldrop_local.sagemaker.worker import WorkerAnswer, WorkerSpec, WorkerStartError

from tests.integration.local_sagemaker.conftest import (
    CLIENT_CONFIG,
    ModelUrls,
    create_serverless_endpoint,
    settings_for,
)
from tests.standalone_sagemaker import wait_until_settled


class FakeWorker:
    def __init__(self, spec: WorkerSpec, pid: int) -> None:
        self.spec = spec
        self.pid = pid
        self.setup_time_ms = 1.0
        self.alive = True

    def invoke(
        self, body: bytes, content_type: str, accept: str, request_id: str, timeout_s: float = 60.0
    ) -> WorkerAnswer:
        answer = json.dumps({"tag": self.spec.environment.get("TAG"), "pid": self.pid}).encode()
        return WorkerAnswer(status=200, body=answer, content_type="application/json", model_latency_us=5)

    def is_alive(self) -> bool:
        return self.alive

    def stop(self) -> None:
        self.alive = False

    def rss_bytes(self) -> int:
        return 0


class GatedLauncher:
    """prepare() waits for the gate named by the spec's TAG; start() hands out FakeWorkers."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.workers: list[FakeWorker] = []
        self.refuse_starts = False
        self._lock = threading.Lock()

    def gate(self, tag: str) -> threading.Event:
        with self._lock:
            return self.gates.setdefault(tag, threading.Event())

    def prepare(self, spec: WorkerSpec) -> None:
        if not self.gate(str(spec.environment["TAG"])).wait(timeout=30):
            raise WorkerStartError("gate never opened")

    def start(self, spec: WorkerSpec) -> FakeWorker:
        if self.refuse_starts:
            raise WorkerStartError("over memory (9000 MB > MemorySizeInMB 1024)")
        with self._lock:
            worker = FakeWorker(spec, pid=len(self.workers) + 1)
            self.workers.append(worker)
            return worker

    def alive(self, tag: str) -> list[FakeWorker]:
        return [w for w in self.workers if w.alive and w.spec.environment.get("TAG") == tag]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture(scope="module")
def launcher() -> GatedLauncher:
    return GatedLauncher()


@pytest.fixture(scope="module")
def gated(
    s3_endpoint: str, model_urls: ModelUrls, launcher: GatedLauncher, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = start_in_thread(
        settings_for(tmp_path_factory.mktemp("gated-state"), s3_endpoint, idle_timeout_s=60), launcher
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clients(gated: RunningServer) -> tuple[Any, Any]:
    return (
        boto3.client("sagemaker", endpoint_url=gated.url, config=CLIENT_CONFIG),
        boto3.client("sagemaker-runtime", endpoint_url=gated.url, config=CLIENT_CONFIG),
    )


def _invoke(runtime: Any, name: str) -> dict[str, Any]:
    response = runtime.invoke_endpoint(
        EndpointName=name, Body=b"[[1, 2, 3, 4]]", ContentType="application/json"
    )
    return dict(json.loads(response["Body"].read()))


def test_creating_endpoint_is_not_ready(
    clients: tuple[Any, Any], launcher: GatedLauncher, model_urls: ModelUrls
) -> None:
    sm, runtime = clients
    # Given an endpoint whose model is still loading
    create_serverless_endpoint(sm, "tr-create", model_urls.iris, environment={"TAG": "create"})
    assert sm.describe_endpoint(EndpointName="tr-create")["EndpointStatus"] == "Creating"
    # When it is invoked, Then SageMaker's ModelNotReadyException (429) answers
    with pytest.raises(ClientError) as caught:
        _invoke(runtime, "tr-create")
    assert caught.value.response["Error"]["Code"] == "ModelNotReadyException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # When the model finishes loading, Then it is InService and serves
    launcher.gate("create").set()
    assert wait_until_settled(sm, "tr-create")["EndpointStatus"] == "InService"
    assert _invoke(runtime, "tr-create")["tag"] == "create"


def test_the_old_config_serves_until_the_new_one_is_ready(
    clients: tuple[Any, Any], launcher: GatedLauncher, model_urls: ModelUrls
) -> None:
    sm, runtime = clients
    # Given an InService endpoint on config v1
    launcher.gate("v1").set()
    create_serverless_endpoint(
        sm, "tr-update", model_urls.iris, environment={"TAG": "v1"}, config_name="tr-v1"
    )
    assert wait_until_settled(sm, "tr-update")["EndpointStatus"] == "InService"
    assert _invoke(runtime, "tr-update")["tag"] == "v1"
    # When it is updated to v2, whose model is still loading
    create_serverless_endpoint(
        sm,
        "tr-update",
        model_urls.iris,
        environment={"TAG": "v2"},
        config_name="tr-v2",
        create_endpoint=False,
    )
    sm.update_endpoint(EndpointName="tr-update", EndpointConfigName="tr-v2")
    # Then it is Updating, says what is pending, and v1 still answers
    description = sm.describe_endpoint(EndpointName="tr-update")
    assert description["EndpointStatus"] == "Updating"
    assert description["EndpointConfigName"] == "tr-v1"
    assert description["PendingDeploymentSummary"]["EndpointConfigName"] == "tr-v2"
    assert _invoke(runtime, "tr-update")["tag"] == "v1"
    # And a second update is refused while this one runs
    with pytest.raises(ClientError) as caught:
        sm.update_endpoint(EndpointName="tr-update", EndpointConfigName="tr-v1")
    assert "Cannot update in-progress endpoint" in caught.value.response["Error"]["Message"]
    # When v2 is ready, Then v2 answers and v1's workers are stopped
    launcher.gate("v2").set()
    description = wait_until_settled(sm, "tr-update")
    assert (description["EndpointStatus"], description["EndpointConfigName"]) == ("InService", "tr-v2")
    assert _invoke(runtime, "tr-update")["tag"] == "v2"
    assert launcher.alive("v1") == []


def test_deleting_a_creating_endpoint_leaves_nothing(
    gated: RunningServer, clients: tuple[Any, Any], launcher: GatedLauncher, model_urls: ModelUrls
) -> None:
    sm, _ = clients
    # Given an endpoint still Creating
    create_serverless_endpoint(sm, "tr-delete", model_urls.iris, environment={"TAG": "doomed"})
    # When it is deleted and then its model finishes loading
    sm.delete_endpoint(EndpointName="tr-delete")
    launcher.gate("doomed").set()
    gated.app.service.wait_idle()
    # Then it is gone, with no worker and no files left
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName="tr-delete")
    assert launcher.alive("doomed") == []
    assert not (Path(gated.app.service.settings.state_dir) / "model-data" / "tr-delete").exists()


def test_a_failed_update_keeps_a_failed_endpoint_out(clients: tuple[Any, Any], model_urls: ModelUrls) -> None:
    sm, _ = clients
    # Given a Failed endpoint (its tarball is not a tarball)
    create_serverless_endpoint(sm, "tr-failed", model_urls.broken, environment={"TAG": "x"})
    assert wait_until_settled(sm, "tr-failed")["EndpointStatus"] == "Failed"
    # When it is updated, Then SageMaker refuses (it must be deleted and created again)
    with pytest.raises(ClientError) as caught:
        sm.update_endpoint(EndpointName="tr-failed", EndpointConfigName="tr-failed-config")
    assert "cannot be updated" in caught.value.response["Error"]["Message"]


def test_a_cold_start_failure_is_service_unavailable(
    clients: tuple[Any, Any], launcher: GatedLauncher, model_urls: ModelUrls
) -> None:
    sm, runtime = clients
    launcher.gate("cold").set()
    create_serverless_endpoint(sm, "tr-cold", model_urls.iris, environment={"TAG": "cold"})
    assert wait_until_settled(sm, "tr-cold")["EndpointStatus"] == "InService"
    # When a worker cannot start at request time
    launcher.refuse_starts = True
    try:
        with pytest.raises(ClientError) as caught:
            _invoke(runtime, "tr-cold")
    finally:
        launcher.refuse_starts = False
    # Then the caller gets ServiceUnavailable with the reason, and the next request is served
    assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert "over memory" in caught.value.response["Error"]["Message"]
    assert _invoke(runtime, "tr-cold")["tag"] == "cold"


def test_a_deployment_interrupted_by_a_restart_resumes(
    s3_endpoint: str, model_urls: ModelUrls, tmp_path: Path
) -> None:
    # Given an endpoint still Creating when its local SageMaker stops
    stuck = GatedLauncher()
    settings = settings_for(tmp_path / "state", s3_endpoint)
    first = start_in_thread(settings, stuck)
    sm = boto3.client("sagemaker", endpoint_url=first.url, config=CLIENT_CONFIG)
    create_serverless_endpoint(sm, "tr-resume", model_urls.iris, environment={"TAG": "resume"})
    first.stop()
    stuck.gate("resume").set()  # the old process's deployment thread ends without writing anything
    # When a new process starts on the same state
    ready = GatedLauncher()
    ready.gate("resume").set()
    second = start_in_thread(settings, ready)
    try:
        sm = boto3.client("sagemaker", endpoint_url=second.url, config=CLIENT_CONFIG)
        runtime = boto3.client("sagemaker-runtime", endpoint_url=second.url, config=CLIENT_CONFIG)
        # Then it finishes the deployment and serves
        assert wait_until_settled(sm, "tr-resume")["EndpointStatus"] == "InService"
        assert _invoke(runtime, "tr-resume")["tag"] == "resume"
    finally:
        second.stop()


# ---------------------------------------------------------------- the pool on its own


def _pool(
    launcher: GatedLauncher, tmp_path: Path, *, max_concurrency: int, provisioned: int
) -> ServerlessPool:
    deployment = EndpointDeployment(
        deployment_id="d1",
        endpoint_config_name="c",
        model_name="m",
        variant_name="AllTraffic",
        image="image",
        model_data_url="s3://b/k",
        memory_mb=1024,
        max_concurrency=max_concurrency,
        provisioned_concurrency=provisioned,
        model_dir=tmp_path,
        environment={"TAG": "pool"},
    )
    return ServerlessPool(
        "e", deployment, launcher, EndpointMetrics("e"), log_path=tmp_path / "log", idle_timeout_s=10
    )


def test_pool_reaps_on_demand_workers_only(tmp_path: Path) -> None:
    launcher = GatedLauncher()
    pool = _pool(launcher, tmp_path, max_concurrency=3, provisioned=1)
    # Given one provisioned worker and one on-demand worker started by a request
    pool.warm()
    pool.invoke(b"x", "application/json", "application/json", "r1", 1.0)
    pool.invoke(b"x", "application/json", "application/json", "r2", 1.0)
    assert pool.stats()["workers"] == 1  # sequential requests reuse the provisioned worker
    # When both are idle past the timeout
    stopped = pool.reap(now=10**9)
    # Then the provisioned one is kept
    assert stopped == 0
    assert pool.stats() == {"busy": 0, "idle": 1, "workers": 1, "provisioned": 1}
    # When the provisioned worker dies, Then reaping drops it and warm() replaces it
    launcher.workers[0].alive = False
    pool.reap()
    assert pool.stats()["provisioned"] == 0
    pool.warm()
    assert pool.stats()["provisioned"] == 1
    pool.close()
    assert launcher.alive("pool") == []


def test_pool_throttles_beyond_max_concurrency(tmp_path: Path) -> None:
    launcher = GatedLauncher()
    pool = _pool(launcher, tmp_path, max_concurrency=1, provisioned=0)
    release = threading.Event()
    entered = threading.Event()
    original = FakeWorker.invoke

    def slow_invoke(self: FakeWorker, *args: Any, **kwargs: Any) -> WorkerAnswer:
        entered.set()
        release.wait(5)
        return original(self, *args, **kwargs)

    # Given one request in flight on a MaxConcurrency 1 pool
    FakeWorker.invoke = slow_invoke  # type: ignore[method-assign]
    try:
        first = threading.Thread(target=pool.invoke, args=(b"x", "a", "a", "r1", 5.0))
        first.start()
        assert entered.wait(5)
        # When another arrives, Then it is throttled at once
        with pytest.raises(MaxConcurrencyReached):
            pool.invoke(b"x", "a", "a", "r2", 5.0)
    finally:
        release.set()
        first.join()
        FakeWorker.invoke = original  # type: ignore[method-assign]
    # And once the first is done, the next is served by the same worker
    assert pool.invoke(b"x", "a", "a", "r3", 5.0).status == 200
    assert len(launcher.workers) == 1
    pool.close()
