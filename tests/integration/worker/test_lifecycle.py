"""Crashes, hangs, memory caps, logs, stop and close: the launcher stays usable through all of them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from modeldrop_local import example_models
from modeldrop_local.sagemaker.worker import (
    Worker,
    WorkerCrashed,
    WorkerLauncher,
    WorkerStartError,
    WorkerTimeout,
)

from tests.integration.worker.conftest import CustomModel, SpecFactory, iris_body

# Model code that misbehaves when the request body asks it to; the real iris model otherwise.
MISBEHAVING_INFERENCE = """
import ctypes
import os
import sys
import time

import numpy as np

def predict_fn(data, model):
    first = float(data[0][0])
    if first == -1:
        os._exit(3)
    if first == -2:
        ctypes.string_at(0)  # segmentation fault
    if first == -3:
        print("hanging", flush=True)
        time.sleep(3600)
    if first == -4:
        hog = np.ones(int(os.environ["HOG_MB"]) * 2**20 // 8)  # touches every page
        return [float(hog.sum())]
    print("scoring", len(data), "rows")
    print("a warning on stderr", file=sys.stderr)
    return model.predict(data)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def poll_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def misbehaving(custom_model: CustomModel) -> Path:
    return custom_model(MISBEHAVING_INFERENCE)


@pytest.mark.parametrize(
    ("first_value", "exit_description"),
    [(-1, "exit code 3"), (-2, "killed by signal SIGSEGV")],
    ids=["os._exit", "segfault"],
)
def test_crash_during_a_request(
    start: Callable[..., Worker], misbehaving: Path, first_value: int, exit_description: str
) -> None:
    # Given a worker whose model code dies on this input
    worker = start(misbehaving)

    # When it is invoked
    with pytest.raises(WorkerCrashed) as crashed:
        worker.invoke(json.dumps([[first_value, 0, 0, 0]]).encode(), "application/json", "*/*", "req-crash")

    # Then the error says how it died, the worker is gone, and a new worker serves the next request
    assert exit_description in str(crashed.value)
    assert not worker.is_alive()
    assert gone(worker.pid)
    replacement = start(misbehaving)
    assert replacement.invoke(iris_body(), "application/json", "*/*", "req-next").status == 200


def test_segfault_traceback_reaches_the_log(start: Callable[..., Worker], misbehaving: Path) -> None:
    # Given a worker that segfaults on a request
    worker = start(misbehaving)
    with pytest.raises(WorkerCrashed):
        worker.invoke(b"[[-2, 0, 0, 0]]", "application/json", "*/*", "req-segv")

    # Then faulthandler's report is in the log, tagged with the request
    log = worker.spec.log_path.read_text()
    assert re.search(r"\[req-segv\] Fatal Python error: Segmentation fault", log), log


def test_hang_times_out_and_the_worker_is_killed(start: Callable[..., Worker], misbehaving: Path) -> None:
    # Given a worker whose model hangs on this input
    worker = start(misbehaving)

    # When the request exceeds its timeout
    started = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"did not answer within 0\.5 s"):
        worker.invoke(b"[[-3, 0, 0, 0]]", "application/json", "*/*", "req-hang", timeout_s=0.5)

    # Then it failed on time, the process is gone and a new worker serves
    assert time.monotonic() - started < 5
    assert gone(worker.pid)
    assert not worker.is_alive()
    assert start(misbehaving).invoke(iris_body(), "application/json", "*/*", "req-next").status == 200


def test_over_memory_during_a_request(start: Callable[..., Worker], misbehaving: Path) -> None:
    # Given a 1024 MB worker whose model allocates 1.5 GB on this input
    worker = start(misbehaving, memory_mb=1024, environment={"HOG_MB": "1536"})

    # When it is invoked
    with pytest.raises(WorkerCrashed, match=r"over memory \(\d+ MB > MemorySizeInMB 1024\)"):
        worker.invoke(b"[[-4, 0, 0, 0]]", "application/json", "*/*", "req-hog")

    # Then the worker is gone and the log says why
    assert gone(worker.pid)
    assert "worker killed: over memory" in worker.spec.log_path.read_text()


def test_over_memory_while_loading(
    launcher: WorkerLauncher, make_spec: SpecFactory, custom_model: CustomModel
) -> None:
    # Given a model_fn that needs 1.5 GB, in a 1024 MB worker
    model_dir = custom_model(
        """
        import numpy as np

        def model_fn(model_dir):
            return np.ones(1536 * 2**20 // 8)
        """
    )

    # When it is prepared, Then the start fails with the memory reason
    with pytest.raises(WorkerStartError, match=r"over memory \(\d+ MB > MemorySizeInMB 1024\)"):
        launcher.prepare(make_spec(model_dir, memory_mb=1024))


def test_a_huge_single_allocation_fails_inside_the_worker(
    start: Callable[..., Worker], misbehaving: Path
) -> None:
    # Given a worker whose model asks for far more than the address-space backstop allows at once
    worker = start(misbehaving, memory_mb=1024, environment={"HOG_MB": str(64 * 1024)})

    # When it is invoked
    result = worker.invoke(b"[[-4, 0, 0, 0]]", "application/json", "*/*", "req-huge")

    # Then the allocation fails in the worker (the host never sees it) and the worker keeps serving
    assert result.status == 500
    assert "MemoryError" in result.body.decode()
    assert worker.invoke(iris_body(), "application/json", "*/*", "req-next").status == 200


def test_startup_timeout(launcher: WorkerLauncher, make_spec: SpecFactory, custom_model: CustomModel) -> None:
    # Given a model_fn that never finishes
    model_dir = custom_model(
        """
        import time

        def model_fn(model_dir):
            time.sleep(3600)
        """
    )

    # When it is prepared with a short start-up limit, Then the reason is the timeout
    with pytest.raises(WorkerStartError, match=r"start-up timeout: the model did not load within 1 s"):
        launcher.prepare(make_spec(model_dir, startup_timeout_s=1.0))


def test_stdout_and_stderr_are_logged_with_the_request_id(
    start: Callable[..., Worker], misbehaving: Path
) -> None:
    # Given a worker whose model prints on stdout and stderr
    worker = start(misbehaving)

    # When two requests are served
    for request_id in ("req-aaa", "req-bbb"):
        assert worker.invoke(iris_body(3), "application/json", "*/*", request_id).status == 200
    worker.stop()

    # Then each line is in the log, with a timestamp, the pid and its request id
    log = worker.spec.log_path.read_text()
    pattern = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pid=%d \[%s\] %s$"
    for request_id in ("req-aaa", "req-bbb"):
        assert re.search(pattern % (worker.pid, request_id, "scoring 3 rows"), log, re.M), log
        assert re.search(pattern % (worker.pid, request_id, "a warning on stderr"), log, re.M), log
        assert re.search(pattern % (worker.pid, request_id, r"invocation status=200 .*predict=.*"), log, re.M)


def test_environment_is_exported_and_threads_are_capped(
    start: Callable[..., Worker], custom_model: CustomModel
) -> None:
    # Given a model that reports its environment
    worker = start(
        custom_model(
            """
            import json, os

            def model_fn(model_dir):
                return None

            def transform_fn(model, body, content_type, accept):
                keys = ("GREETING", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                return json.dumps({key: os.environ.get(key) for key in keys})
            """
        ),
        environment={"GREETING": "hello"},
    )

    # When it is invoked
    result = worker.invoke(b"{}", "application/json", "*/*", "req-env")

    # Then PrimaryContainer.Environment is there, and native thread pools are held to one thread
    assert json.loads(result.body) == {
        "GREETING": "hello",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def test_the_servers_own_environment_does_not_leak_into_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_spec: SpecFactory, custom_model: CustomModel
) -> None:
    # Given a server process with a variable of its own, and a launcher started in it
    monkeypatch.setenv("H5_HOST_ONLY_SECRET", "do-not-share")
    own = WorkerLauncher(tmp_path / "cache", pip_no_index=True)
    model_dir = custom_model(
        """
        import json, os

        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            keys = ("H5_HOST_ONLY_SECRET", "AWS_DEFAULT_REGION", "GREETING")
            return json.dumps({key: os.environ.get(key) for key in keys})
        """
    )
    try:
        # When a worker reports its environment
        worker = own.start(make_spec(model_dir, environment={"GREETING": "hi"}))
        result = worker.invoke(b"{}", "application/json", "*/*", "req-env")

        # Then it sees the AWS settings and its own Environment, not the host's other variables
        assert json.loads(result.body) == {
            "H5_HOST_ONLY_SECRET": None,
            "AWS_DEFAULT_REGION": "us-east-1",
            "GREETING": "hi",
        }
    finally:
        own.close()


def test_stop_is_idempotent_and_frees_the_process(
    start: Callable[..., Worker], model_dirs: dict[str, Path]
) -> None:
    # Given a live worker holding memory
    worker = start(model_dirs["sklearn"])
    assert worker.is_alive()
    assert worker.rss_bytes() > 10 * 2**20

    # When it is stopped twice
    worker.stop()
    worker.stop()

    # Then the process is gone (reaped) and its accounting is zero
    assert not worker.is_alive()
    assert gone(worker.pid)
    assert worker.rss_bytes() == 0
    with pytest.raises(WorkerCrashed, match="stopped"):
        worker.invoke(iris_body(), "application/json", "*/*", "req-after-stop")


def test_close_stops_workers_and_fork_servers(
    tmp_path: Path, make_spec: SpecFactory, model_dirs: dict[str, Path]
) -> None:
    # Given a launcher of its own, with a worker and its fork server running
    own = WorkerLauncher(tmp_path / "cache", pip_no_index=True)
    worker = own.start(make_spec(model_dirs["sklearn"]))
    fork_server_pid = own.fork_server("sklearn").process.pid

    # When it is closed
    own.close()

    # Then nothing it started is left running, and it refuses new work
    assert gone(worker.pid)
    assert poll_until(lambda: gone(fork_server_pid))
    with pytest.raises(WorkerStartError, match="shutting down"):
        own.start(make_spec(model_dirs["sklearn"]))


def test_concurrent_starts_and_large_payloads(
    launcher: WorkerLauncher, make_spec: SpecFactory, model_dirs: dict[str, Path]
) -> None:
    # Given four workers started at once from several threads (as the server does under load)
    spec = make_spec(model_dirs["sklearn"])
    with ThreadPoolExecutor(max_workers=4) as pool:
        workers = list(pool.map(lambda _: launcher.start(spec), range(4)))
    rows = example_models.iris_payload(180_000)  # about 4 MB of JSON, SageMaker's payload limit
    body = json.dumps(rows).encode()
    assert 3.5 * 2**20 < len(body) < 4.5 * 2**20
    try:
        # When each is invoked with a large payload, in parallel
        with ThreadPoolExecutor(max_workers=4) as pool:
            calls = [
                pool.submit(worker.invoke, body, "application/json", "*/*", f"req-{index}")
                for index, worker in enumerate(workers)
            ]
            results = [call.result() for call in calls]

        # Then they are distinct processes and each answers every row
        assert len({worker.pid for worker in workers}) == 4
        for result in results:
            assert result.status == 200
            assert len(json.loads(result.body)) == len(rows)
    finally:
        for worker in workers:
            worker.stop()


def test_a_model_flooding_stdout_does_not_block_the_worker(
    start: Callable[..., Worker], custom_model: CustomModel
) -> None:
    # Given a model that writes 8 MB to stdout per request, some of it without a final newline
    worker = start(
        custom_model(
            """
            import sys

            def predict_fn(data, model):
                for _ in range(8192):
                    sys.stdout.write("x" * 1023 + "\\n")
                sys.stdout.write("no newline at the end")
                return model.predict(data)
            """
        )
    )

    # When it serves two requests
    for request_id in ("req-flood-1", "req-flood-2"):
        assert worker.invoke(iris_body(), "application/json", "*/*", request_id).status == 200
    worker.stop()

    # Then every line reached the log, tagged with its request
    log = worker.spec.log_path.read_text()
    assert log.count("[req-flood-1] " + "x" * 1023 + "\n") == 8192
    assert log.count("[req-flood-2] " + "x" * 1023 + "\n") == 8192
    assert "[req-flood-1] no newline at the end\n" in log


def test_stop_during_a_request_ends_it_at_once(start: Callable[..., Worker], misbehaving: Path) -> None:
    # Given a worker busy with a request that would hang for an hour
    worker = start(misbehaving)
    with ThreadPoolExecutor(max_workers=1) as pool:
        request = pool.submit(worker.invoke, b"[[-3, 0, 0, 0]]", "application/json", "*/*", "req-busy", 20.0)
        assert poll_until(lambda: "[req-busy] hanging" in worker.spec.log_path.read_text())

        # When the server stops the worker (DeleteEndpoint) from another thread
        started = time.monotonic()
        worker.stop()

        # Then the stop does not wait for the request, which fails as stopped, and the process is gone
        assert time.monotonic() - started < 3
        with pytest.raises(WorkerCrashed, match="stopped by the server"):
            request.result(timeout=5)
    assert gone(worker.pid)


FORKING_INFERENCE = """
import os
import time

import joblib


def model_fn(model_dir):
    pid = os.fork()
    if pid == 0:
        time.sleep(600)  # a helper process the user's code starts and never stops
        os._exit(0)
    with open(os.path.join(os.environ["PID_DIR"], "forked.pid"), "w") as out:
        out.write(str(pid))
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def test_stop_also_kills_what_the_model_forked(
    start: Callable[..., Worker], custom_model: CustomModel, tmp_path: Path
) -> None:
    # Given a worker whose model_fn forked a long-lived child (found by make reliability: reparented to
    # init, it outlived the cloud)
    worker = start(custom_model(FORKING_INFERENCE), environment={"PID_DIR": str(tmp_path)})
    forked = int((tmp_path / "forked.pid").read_text())
    assert not gone(forked)
    # When the worker is stopped
    worker.stop()
    # Then the forked child is gone with it (each worker leads its own process group)
    assert poll_until(lambda: gone(forked)), f"pid {forked} outlived its worker"
