"""Where the time goes on the REST path: REST front → Api function → DynamoDB GetItem + InvokeEndpoint.

The whole local cloud runs in this process (`modeldrop_local.demo.throwaway_cloud`, the iris model with
MaxConcurrency 2, ProvisionedConcurrency 2); the load comes from a child process with the benchmarks'
HTTP client, as in `benchmarks.rest_path`. Two passes:
1. stage timers: wrappers around the REST front app, the functions host's invoke, the worker round trip
   (the Api function in its own process, seen from the host) and the edge, per AWS call. The Api
   function's own work is the worker round trip minus the two edge calls it makes (p50s subtracted:
   the stages run on different threads and processes).
2. the Api function's handler in a child process of its own (as in its worker: same code, environment
   and edge, the proxy event the REST front builds), timed per call and around its InvokeEndpoint
   call and its record read, then under cProfile, to say what its own share is made of.

Run: `python -m benchmarks.profile_rest [--requests 1000] [--concurrency 1] [--top 25]`
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import importlib.util
import io
import json
import os
import pstats
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from modeldrop_local import edge, rest_front
from modeldrop_local.example_models import iris_payload
from modeldrop_local.functions_host.runtime import LambdaContext
from modeldrop_local.functions_host.worker import FunctionWorker
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from benchmarks.common import http_load_in_child, percentile, profile_command_line
from benchmarks.local_cloud import edge_invocations, rest_invocations, warm_iris_on_local_cloud

MODEL = "iris"


class Timers:
    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        self.undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, method: str, label: Callable[..., str | None]) -> None:
        original = getattr(owner, method)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                name = label(*args)
                if name:
                    with self.lock:
                        self.samples[name].append((time.perf_counter() - started) * 1e6)

        setattr(owner, method, timed)
        if isinstance(owner, type):
            self.undo.append(lambda: setattr(owner, method, original))
        else:  # an instance attribute (a bound method handed over at construction)
            self.undo.append(lambda: delattr(owner, method) if method in vars(owner) else None)

    def uninstall(self) -> None:
        for step in self.undo:
            step()


def _edge_label(_app: Any, environ: dict[str, Any], *_: Any) -> str | None:
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target.endswith(".GetItem"):
        return "edge GetItem"
    if environ.get("PATH_INFO", "").endswith("/invocations") and "/endpoints/" in environ["PATH_INFO"]:
        return "edge InvokeEndpoint"
    return None


def _row(name: str, value: float | None, note: str = "") -> str:
    return f"| {name} | {'' if value is None else f'{value:.0f}'} | {note} |"


def _profile_handler_in_child(spec: Any, event: dict[str, Any], requests: int, top: int) -> dict[str, Any]:
    """Run `_handler_child` in a new process with the function's environment; its JSON report."""
    job = {
        "spec": {
            "name": spec.name,
            "arn": spec.arn,
            "memory_mb": spec.memory_mb,
            "handler": spec.handler,
            "code_dir": str(spec.code_dir),
            "layer_dirs": [str(p) for p in spec.layer_dirs],
            "environment": dict(spec.environment),
        },
        "event": event,
        "requests": requests,
        "top": top,
    }
    environment = {**os.environ, **spec.environment, "POWERTOOLS_TRACE_DISABLED": "true"}
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile_rest", "--handler-child"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    report: dict[str, Any] = json.loads(finished.stdout.strip().splitlines()[-1])
    return report


def _handler_child() -> None:
    """In a child process: the Api handler called `requests` times, timed, then profiled."""
    job = json.loads(sys.stdin.read())
    spec = job["spec"]
    for path in [spec["code_dir"], *spec["layer_dirs"]]:
        sys.path.insert(0, path)
    from modeldrop.api.record_cache import CachedModelRecords
    from modeldrop.api.runtime import SageMakerRuntime

    spans: dict[str, list[float]] = defaultdict(list)

    def timed(owner: Any, method: str, name: str) -> None:
        original = getattr(owner, method)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spans[name].append((time.perf_counter() - started) * 1e6)

        setattr(owner, method, wrapper)

    timed(SageMakerRuntime, "invoke", "invoke")
    timed(CachedModelRecords, "get_model", "get_model")
    module_name, _, function_name = spec["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    context = LambdaContext(spec, "profile", time.time() + 600)
    event, requests = job["event"], int(job["requests"])
    per_call: list[float] = []
    profile = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):  # its logs and metrics lines
        for _ in range(50):
            handler(event, context)
        spans.clear()
        for _ in range(requests):
            started = time.perf_counter()
            handler(event, context)
            per_call.append((time.perf_counter() - started) * 1e6)
        profile.enable()
        for _ in range(requests):
            handler(event, context)
        profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).strip_dirs().sort_stats("cumulative").print_stats(int(job["top"]))
    report = {
        "handler_p50_us": percentile(per_call, 50),
        "invoke_p50_us": percentile(spans["invoke"][:requests], 50),
        "get_model_p50_us": percentile(spans["get_model"][:requests], 50) if spans["get_model"] else 0.0,
        "profile": stream.getvalue(),
    }
    print(json.dumps(report))


def run(requests: int, concurrency: int, top: int) -> str:
    body = json.dumps(iris_payload(4)).encode()
    with warm_iris_on_local_cloud(MODEL, prefix="modeldrop-profile-rest-") as (cloud, stack):
        on_rest, stage = rest_invocations(stack, MODEL)
        port, path, headers = on_rest.port, on_rest.path, on_rest.headers
        direct_path = edge_invocations(cloud, MODEL).path
        http_load_in_child("warm-up", port, path, body, headers, concurrency, 100)

        timers = Timers()
        timers.wrap(rest_front.RestFrontApp, "__call__", lambda *_: "REST front app")
        assert cloud.rest is not None
        # The REST front holds the host's bound invoke: time that attribute of its app.
        timers.wrap(cloud.rest.app, "invoke", lambda *_: "functions host invoke")
        timers.wrap(FunctionWorker, "invoke", lambda *_: "worker round trip")
        timers.wrap(edge.EdgeApp, "__call__", _edge_label)
        try:
            rest = http_load_in_child("REST", port, path, body, headers, concurrency, requests)
            rest_samples = dict(timers.samples)
            timers.samples.clear()
            direct = http_load_in_child(
                "direct", cloud.edge_port, direct_path, body, headers, concurrency, requests
            )
            direct_samples = dict(timers.samples)
        finally:
            timers.uninstall()

        assert cloud.stack is not None and cloud.rest is not None
        spec = next(s for s in cloud.stack.functions.values() if s.logical_id == "ApiFunction")
        request = Request(EnvironBuilder(path=path, method="POST", data=body, headers=headers).get_environ())
        route = next(r for r in cloud.rest.app.routes if r.method == "POST")
        event = cloud.rest.app.proxy_event(request, route, path.split(stage, 1)[-1], {"name": MODEL})
        handler_report = _profile_handler_in_child(spec, event, requests, top)

    def p50(samples: dict[str, list[float]], name: str) -> float | None:
        values = samples.get(name)
        return percentile(values, 50) if values else None

    client = percentile([ms * 1000 for ms in rest.latencies_ms], 50)
    direct_client = percentile([ms * 1000 for ms in direct.latencies_ms], 50)
    app = p50(rest_samples, "REST front app") or 0.0
    host = p50(rest_samples, "functions host invoke") or 0.0
    worker = p50(rest_samples, "worker round trip") or 0.0
    # The Api function reads the record on a cache miss only (a warm container keeps it a few seconds):
    # its cost per REST request is the GetItem time spread over all of them.
    get_items = rest_samples.get("edge GetItem", [])
    get_item = sum(get_items) / len(rest.latencies_ms) if rest.latencies_ms else 0.0
    invoke = p50(rest_samples, "edge InvokeEndpoint") or 0.0
    lines = [
        f"requests={requests} concurrency={concurrency} errors={rest.errors} "
        f"REST rps={rest.rps:.0f}, direct rps={direct.rps:.0f}",
        "",
        "| stage (REST path) | p50 µs | note |",
        "|---|---:|---|",
        _row("client-observed latency, REST path", client),
        _row("client-observed latency, InvokeEndpoint on the edge", direct_client, "the baseline"),
        _row("  of which in the edge (local SageMaker app)", p50(direct_samples, "edge InvokeEndpoint")),
        _row("HTTP server + client + loopback, REST front", client - app, "client p50 - app p50"),
        _row("REST front: route, proxy event, response", app - host),
        _row("functions host: checkout, JSON line to the worker and back", host - worker),
        _row(
            "Api function's own work",
            worker - get_item - invoke,
            "Powertools, resolver, pydantic, botocore for 2 calls, its HTTP client",
        ),
        _row(
            "edge: DynamoDB GetItem (moto), per REST request",
            get_item,
            f"the record, ConsistentRead: {len(get_items)} GetItem for {len(rest.latencies_ms)} requests",
        ),
        _row("edge: InvokeEndpoint (local SageMaker)", invoke),
        "",
        "The Api handler in a process of its own (as in its worker), against the same edge, "
        f"{requests} calls: p50 {handler_report['handler_p50_us']:.0f} µs per call, of which "
        f"{handler_report['invoke_p50_us']:.0f} µs in its InvokeEndpoint call (botocore, HTTP, the edge) "
        f"and {handler_report['get_model_p50_us']:.0f} µs reading the model's record; "
        f"then under cProfile, top {top} by cumulative time:",
        "",
        "```",
        str(handler_report["profile"]).strip(),
        "```",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--handler-child"]:
        _handler_child()
        sys.exit(0)
    profile_command_line(run, __doc__, requests=1000, top=25)
