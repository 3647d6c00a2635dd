"""Where the time goes on a warm InvokeEndpoint of the standalone local SageMaker.

The server runs in this process, built by the same `start_in_thread` as `python -m modeldrop_local.sagemaker`
(moto's S3 runs as a subprocess, as in the benchmarks); the load comes from a child process with the
benchmarks' HTTP client (`benchmarks.common.http_load`), so the client does not share the server's GIL.

Two passes on the iris endpoint (MaxConcurrency 2, ProvisionedConcurrency 2, warm):
1. stage timers (cheap wrappers around the layers of the request path), per request:
   app entry -> DataPlane.invoke -> ServerlessPool.invoke -> Worker.invoke (the frame round trip)
   -> the model's handler in the worker (model_latency_us, with its input/predict/output timings);
   "HTTP server + client + loopback" is the client's latency minus the time inside the WSGI app.
2. cProfile of every request on the server's waitress worker threads (one profiler per request, merged).

Run: `python -m benchmarks.profile_invoke [--requests 2000] [--concurrency 1] [--top 30]`
"""

from __future__ import annotations

import cProfile
import functools
import io
import json
import os
import pstats
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
from modeldrop_local import example_models
from modeldrop_local.sagemaker import LocalSageMakerSettings, start_in_thread
from modeldrop_local.sagemaker.app import LocalSageMakerApp
from modeldrop_local.sagemaker.data_plane import DataPlane
from modeldrop_local.sagemaker.pool import ServerlessPool
from modeldrop_local.sagemaker.worker.process import Worker
from waitress.channel import HTTPChannel

from benchmarks.common import JSON_HEADERS, LoadResult, http_load_in_child, percentile, profile_command_line
from benchmarks.local_cloud import CREDENTIALS, SERVER_ENV, moto_s3_server
from benchmarks.local_cloud import LocalSageMaker as Clients

ENDPOINT = "iris"
# Fake credentials (typed for boto3.client): the server and moto run on loopback only.
AUTH: dict[str, Any] = dict(CREDENTIALS)


def drive_load(port: int, body: bytes, concurrency: int, requests: int) -> LoadResult:
    """The load, from a child process with the benchmarks' HTTP client (as in the warm-serving benchmark)."""
    path = f"/endpoints/{ENDPOINT}/invocations"
    return http_load_in_child("local SageMaker", port, path, body, JSON_HEADERS, concurrency, requests)


# ------------------------------------------------------------------------------ stage timers


class StageTimers:
    """Per-request timestamps from wrappers around each layer (all on the request's own thread)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.records: list[dict[str, float]] = []
        self.lock = threading.Lock()

    def _current(self) -> dict[str, float]:
        record: dict[str, float] | None = getattr(self.local, "record", None)
        if record is None:
            record = self.local.record = {}
        return record

    def wrap(self, owner: type, method: str, stage: str) -> Callable[[], None]:
        original = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            record = self._current()
            record[f"{stage}_start"] = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                record[f"{stage}_end"] = time.perf_counter()
            if stage == "worker":
                record["model_us"] = float(result.model_latency_us)
                for name, ms in result.timings_ms.items():
                    record[f"model_{name}_us"] = ms * 1000
            if stage == "app":  # the outermost layer: the request is complete
                with self.lock:
                    self.records.append(dict(record))
                record.clear()
            return result

        setattr(owner, method, timed)
        return lambda: setattr(owner, method, original)

    def install(self) -> Callable[[], None]:
        undo = [
            self.wrap(LocalSageMakerApp, "__call__", "app"),
            self.wrap(DataPlane, "invoke", "service"),
            self.wrap(ServerlessPool, "invoke", "pool"),
            self.wrap(Worker, "invoke", "worker"),
        ]

        def uninstall() -> None:
            for step in undo:
                step()

        return uninstall

    def stages_us(self) -> dict[str, list[float]]:
        """Each request split into non-overlapping stages, in microseconds."""
        stages: dict[str, list[float]] = {
            name: []
            for name in (
                "routing + validation (app, before DataPlane.invoke)",
                "endpoint lookup + metrics (DataPlane.invoke, outside the pool)",
                "pool checkout + check-in (ServerlessPool.invoke, outside the worker)",
                "worker round trip: frames, wake-ups, log note (Worker.invoke minus the handler)",
                "model handler in the worker (input_fn + predict_fn + output_fn)",
                "response: status and headers (after DataPlane.invoke)",
                "WSGI app total",
            )
        }
        keys = list(stages)
        for r in self.records:
            if "worker_end" not in r:
                continue
            values = [
                r["service_start"] - r["app_start"],
                (r["service_end"] - r["service_start"]) - (r["pool_end"] - r["pool_start"]),
                (r["pool_end"] - r["pool_start"]) - (r["worker_end"] - r["worker_start"]),
                (r["worker_end"] - r["worker_start"]) - r["model_us"] / 1e6,
                r["model_us"] / 1e6,
                r["app_end"] - r["service_end"],
                r["app_end"] - r["app_start"],
            ]
            for key, value in zip(keys, values, strict=True):
                stages[key].append(value * 1e6)
        for name in ("input", "predict", "output"):
            stages[f"  of which {name}_fn"] = [
                r[f"model_{name}_us"] for r in self.records if f"model_{name}_us" in r
            ]
        return stages


# ---------------------------------------------------------------------------------- cProfile


class ThreadProfiles:
    """One cProfile.Profile per request served by a waitress worker thread (`HTTPChannel.service`:
    cProfile sees only its own thread), merged at the end. The event loop's reading and parsing of the
    request, on waitress's main thread, is not in it."""

    def __init__(self) -> None:
        self.done: list[cProfile.Profile] = []
        self.running = 0
        self.changed = threading.Condition()

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = HTTPChannel.service

        def profiled(channel: HTTPChannel) -> None:
            profile = cProfile.Profile()
            with self.changed:
                self.running += 1
            profile.enable()
            try:
                original(channel)
            finally:
                profile.disable()
                with self.changed:
                    self.running -= 1
                    self.done.append(profile)
                    self.changed.notify_all()

        HTTPChannel.service = profiled  # type: ignore[method-assign]
        try:
            yield
        finally:
            HTTPChannel.service = original  # type: ignore[method-assign]

    def wait_finished(self, timeout_s: float = 30.0) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.running == 0, timeout_s)

    def report(self, top: int) -> str:
        stream = io.StringIO()
        stats = pstats.Stats(self.done[0], stream=stream)
        for profile in self.done[1:]:
            stats.add(profile)
        stats.strip_dirs().sort_stats("cumulative").print_stats(top)
        return stream.getvalue()


# ---------------------------------------------------------------------------------------- run


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | - | - | - |"
    mean = sum(values) / len(values)
    return f"| {name} | {percentile(values, 50):.0f} | {mean:.0f} | {percentile(values, 95):.0f} |"


def run(requests: int, concurrency: int, top: int) -> str:
    os.environ.update(SERVER_ENV)  # the in-process server signs its own S3 calls
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modeldrop-profile-")))
        tarball = example_models.build_sklearn_iris(workdir / "iris")
        s3_url = stack.enter_context(moto_s3_server("profile-moto"))
        settings = LocalSageMakerSettings(state_dir=workdir / "state", s3_endpoint_url=s3_url, port=0)
        server = start_in_thread(settings)
        stack.callback(server.stop)
        s3 = boto3.client("s3", endpoint_url=s3_url, **AUTH)
        s3.create_bucket(Bucket="bench-models")
        clients = Clients(
            port=0,
            s3_url=s3_url,
            state_dir=settings.state_dir,
            sagemaker=boto3.client("sagemaker", endpoint_url=server.url, **AUTH),
            runtime=None,
            s3=s3,
        )
        clients.deploy(ENDPOINT, tarball, max_concurrency=2, provisioned=2)
        port = int(server.url.rsplit(":", 1)[1])
        body = json.dumps(example_models.iris_payload(4)).encode()
        drive_load(port, body, concurrency, 200)  # warm the workers, the server and the page cache

        timers = StageTimers()
        uninstall = timers.install()
        try:
            timed = drive_load(port, body, concurrency, requests)
        finally:
            uninstall()

        profiles = ThreadProfiles()
        with profiles.installed():
            profiled = drive_load(port, body, concurrency, requests)
            profiles.wait_finished()

    latencies_us = [ms * 1000 for ms in timed.latencies_ms]
    stages = timers.stages_us()
    app_total = stages["WSGI app total"]
    http_rest = [
        percentile(latencies_us, 50) - percentile(app_total, 50),
    ]
    lines = [
        f"requests={requests} concurrency={concurrency} errors={timed.errors} rps={timed.rps:.0f} "
        f"(with cProfile on: rps={profiled.rps:.0f})",
        "",
        "| stage | p50 µs | mean µs | p95 µs |",
        "|---|---:|---:|---:|",
        _row("client-observed latency", latencies_us),
        *(_row(name, values) for name, values in stages.items()),
        f"| HTTP server + client + loopback (client p50 - app p50) | {http_rest[0]:.0f} | | |",
        "",
        f"cProfile, the server's waitress worker threads, top {top} by cumulative time:",
        "",
        "```",
        profiles.report(top).strip(),
        "```",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    profile_command_line(run, __doc__, requests=2000, top=30)
