"""Rollouts: what a canary or shadow bake adds to each request on the REST path, in the same run.

One throwaway local cloud, the iris model live (two warm workers). The same client (a child process,
concurrency 1) measures the REST path with no bake, during a 20% canary bake (the candidate, the same
model, on its own warm endpoint), during a shadow bake (each request also sends its copy to the Shadow
function, an asynchronous Lambda invocation), then with no bake again. Ratios are against the mean of
the two no-bake runs. Also timed in-process: the per-version EMF record every answer writes
(modeldrop.guardrails.metrics.record_answer), which runs whether or not a bake is on.
On this machine the Shadow function and the candidate share the two cores with the client and the
cloud, which AWS would not: the shadow row is an upper bound of what the Api function itself adds.
Run alone: `python -m benchmarks.rollout_overhead [--requests N]`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from modeldrop_local.example_models import build_sklearn_iris, iris_payload
from modeldrop_local.stack_client import StackClient

from benchmarks.common import command_line, http_load_in_child, percentile, write_result
from benchmarks.local_cloud import rest_invocations, upload_and_follow

MODEL = "iris"
WARM = {"provisioned_concurrency": 2, "max_concurrency": 2}
# Long enough that the bake is still on while measured; the benchmark aborts it.
BAKE = {"bake_seconds": 3600, "min_requests": 1_000_000}


def _bake(stack: StackClient, tarball: Path, version: int, timeout_s: float = 300) -> None:
    stack.upload(tarball, MODEL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = stack.describe_model(MODEL)
        rollout = detail.rollout if detail else None
        if rollout is not None and rollout.candidate_version == version and rollout.state == "Baking":
            return
        time.sleep(0.2)
    raise TimeoutError(f"v{version} of {MODEL} did not start baking")


def _record_answer_us(samples: int = 2000) -> float:
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "modeldrop")  # as template.yaml's Globals set it
    from modeldrop.guardrails.metrics import record_answer

    with contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        for _ in range(samples):
            record_answer(MODEL, 1, latency_ms=12.5, error=False)
        elapsed = time.perf_counter() - started
    return elapsed / samples * 1e6


def run(requests: int = 200) -> dict[str, Any]:
    from modeldrop_local.demo import throwaway_cloud

    body = json.dumps(iris_payload(4)).encode()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modeldrop-rollout-") as tmp:
        workdir = Path(tmp)
        live = build_sklearn_iris(workdir / "v1", config=WARM)
        canary = build_sklearn_iris(
            workdir / "v2", config={**WARM, "rollout": {"strategy": "canary", "canary_percent": 20, **BAKE}}
        )
        shadow = build_sklearn_iris(
            workdir / "v3", config={**WARM, "rollout": {"strategy": "shadow", **BAKE}}
        )
        with throwaway_cloud(workdir) as (_cloud, stack):
            upload_and_follow(stack, live, MODEL)
            route, _stage = rest_invocations(stack, MODEL)

            def measure(label: str) -> dict[str, Any]:
                result = http_load_in_child(label, route.port, route.path, body, route.headers, 1, requests)
                return result.summary() | {"latencies": result.latencies_ms}

            rows.append(measure("no bake"))
            _bake(stack, canary, 2)
            rows.append(measure("canary 20% baking"))
            stack.end_bake(MODEL, "abort")
            _bake(stack, shadow, 3)
            rows.append(measure("shadow baking"))
            stack.end_bake(MODEL, "abort")
            time.sleep(6)  # the Api function's record cache (5 s) forgets the bake
            rows.append(measure("no bake (again)"))
    baseline = (percentile(rows[0]["latencies"], 50) + percentile(rows[-1]["latencies"], 50)) / 2
    for row in rows:
        row["p50_vs_no_bake"] = round(row["p50_ms"] / baseline, 3)
        del row["latencies"]
    result = {
        "requests_per_phase": requests,
        "rows": rows,
        "record_answer_us": round(_record_answer_us(), 1),
        "note": "a loaded shared machine (2 cores, other work running): ratios matter, not the milliseconds",
    }
    write_result("rollout_overhead", result)
    return result


if __name__ == "__main__":
    command_line(run, __doc__, "--requests", 200)
