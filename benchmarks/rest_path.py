"""REST path: REST front → Api function → InvokeEndpoint, against InvokeEndpoint on the edge directly.

Both run on the same local cloud, same deployed model, same payload, same HTTP client (driven from a
child process, so it does not share the cloud's GIL); the ratio is what the API Gateway + Lambda proxy
layer (REST front, the Api function's DynamoDB lookup and its InvokeEndpoint call) costs on top of
SageMaker itself. Where that time goes: `python -m benchmarks.profile_rest` (PROFILE.md).
Run alone: `python -m benchmarks.rest_path [--requests N]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from modeldrop.naming import endpoint_name
from modeldrop_local.demo import throwaway_cloud
from modeldrop_local.example_models import build_sklearn_iris, iris_payload

from benchmarks.common import http_load_in_child, percentile, write_result
from benchmarks.local_cloud import upload_and_follow

MODEL = "iris"
CONCURRENCY = (1, 2)


def run(requests: int = 300) -> dict[str, Any]:
    body = json.dumps(iris_payload(4)).encode()
    rows = []
    with tempfile.TemporaryDirectory(prefix="modeldrop-rest-") as tmp:
        workdir = Path(tmp)
        tarball = build_sklearn_iris(
            workdir / "build", config={"provisioned_concurrency": 2, "max_concurrency": 2}
        )
        with throwaway_cloud(workdir) as (cloud, stack):
            upload_and_follow(stack, tarball, MODEL)
            api = urlparse(stack.outputs()["ApiUrl"])
            rest_headers = {"Content-Type": "application/json", "Accept": "application/json"}
            key = stack.api_key()
            if key:
                rest_headers["x-api-key"] = key
            direct_headers = {"Content-Type": "application/json", "Accept": "application/json"}
            for concurrency in CONCURRENCY:
                direct = http_load_in_child(
                    "InvokeEndpoint on the edge",
                    cloud.edge_port,
                    f"/endpoints/{endpoint_name(MODEL)}/invocations",
                    body,
                    direct_headers,
                    concurrency,
                    requests,
                )
                rest = http_load_in_child(
                    "REST front → Api function → InvokeEndpoint",
                    int(api.port or 80),
                    f"{api.path.rstrip('/')}/models/{MODEL}/invocations",
                    body,
                    rest_headers,
                    concurrency,
                    requests,
                )
                for result in (direct, rest):
                    summary = result.summary()
                    summary["p50_vs_direct"] = round(
                        summary["p50_ms"] / percentile(direct.latencies_ms, 50), 2
                    )
                    rows.append(summary)
    result = {"requests_per_client": requests, "rows": rows}
    write_result("rest_path", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    print(json.dumps(run(parser.parse_args().requests), indent=2))
