"""REST path: REST front → Api function → InvokeEndpoint, against InvokeEndpoint on the edge directly.

Both run on the same local cloud, same deployed model, same payload, same HTTP client (driven from a
child process, so it does not share the cloud's GIL); the ratio is what the API Gateway + Lambda proxy
layer (REST front, the Api function's DynamoDB lookup and its InvokeEndpoint call) costs on top of
SageMaker itself. Where that time goes: `python -m benchmarks.profile_rest` (PROFILE.md).
Run alone: `python -m benchmarks.rest_path [--requests N]`.
"""

from __future__ import annotations

import json
from typing import Any

from modeldrop_local.example_models import iris_payload

from benchmarks.common import command_line, http_load_in_child, percentile, write_result
from benchmarks.local_cloud import edge_invocations, rest_invocations, warm_iris_on_local_cloud

MODEL = "iris"
CONCURRENCY = (1, 2)


def run(requests: int = 300) -> dict[str, Any]:
    body = json.dumps(iris_payload(4)).encode()
    rows = []
    with warm_iris_on_local_cloud(MODEL, prefix="modeldrop-rest-") as (cloud, stack):
        on_edge = edge_invocations(cloud, MODEL)
        on_rest, _stage = rest_invocations(stack, MODEL)
        for concurrency in CONCURRENCY:
            direct = http_load_in_child(
                "InvokeEndpoint on the edge",
                on_edge.port,
                on_edge.path,
                body,
                on_edge.headers,
                concurrency,
                requests,
            )
            rest = http_load_in_child(
                "REST front → Api function → InvokeEndpoint",
                on_rest.port,
                on_rest.path,
                body,
                on_rest.headers,
                concurrency,
                requests,
            )
            for result in (direct, rest):
                summary = result.summary()
                summary["p50_vs_direct"] = round(summary["p50_ms"] / percentile(direct.latencies_ms, 50), 2)
                rows.append(summary)
    result = {"requests_per_client": requests, "rows": rows}
    write_result("rest_path", result)
    return result


if __name__ == "__main__":
    command_line(run, __doc__, "--requests", 300)
