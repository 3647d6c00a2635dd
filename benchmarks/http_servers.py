"""HTTP server candidates: the standalone local SageMaker's own app, served by each one, in one run.

The ports (edge, REST front, standalone SageMaker) all serve through `modeldrop_local/http_server.py`
(waitress today). This runs the standalone local SageMaker's real WSGI app under each candidate
(`benchmarks/servers/local_sagemaker_on.py`: waitress, granian's WSGI interface, uvicorn+httptools via
a2wsgi, cheroot), deploys the iris model on it (MaxConcurrency 2, two provisioned workers), and drives
InvokeEndpoint with the warm-serving client at each concurrency. The floor is warm_serving's: bare
FastAPI + uvicorn (2 workers) serving the same joblib file, measured in the same run; every row has its
ratio to it. Candidates alternate with the floor in rounds, so a change in the machine's load falls on
all of them alike; each figure is the median over rounds.

The edge (the local cloud's port that answers InvokeEndpoint) is measured too, with the servers that can
serve an app from inside the process that holds its state (`benchmarks/servers/in_process.py`): the
edge's own app object, on a throwaway local cloud with the iris model deployed, served on a second port
by each one, the client in a child process (as rest_path does). Its baseline is the edge's own port.

Run alone: `python -m benchmarks.http_servers [--requests N]`.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from modeldrop_local import example_models

from benchmarks.common import (
    JSON_HEADERS,
    LoadResult,
    command_line,
    free_port,
    http_load,
    http_load_in_child,
    percentile,
    subprocess_server,
    write_result,
)
from benchmarks.local_cloud import edge_invocations, local_sagemaker, warm_iris_on_local_cloud
from benchmarks.servers.in_process import IN_PROCESS_SERVERS, serving
from benchmarks.servers.local_sagemaker_on import SERVERS
from benchmarks.warm_serving import ROWS_PER_REQUEST, THREAD_ENV, image_python_command, joblib_artifact

CONCURRENCY = (1, 2)
ROUNDS = 3
FLOOR = "fastapi+uvicorn (floor)"
EDGE_OWN = "edge's own port (waitress)"


def _measure_floor(model_path: Path, body: bytes, requests: int) -> list[LoadResult]:
    port = free_port()
    with subprocess_server(
        image_python_command("benchmarks.servers.fastapi_floor", str(port), "2"),
        port,
        env={"MODEL_PATH": str(model_path), **THREAD_ENV},
        log_name="http-servers-floor",
    ):
        return [
            http_load(FLOOR, port, "/invocations", body, JSON_HEADERS, concurrency, requests)
            for concurrency in CONCURRENCY
        ]


def _measure_candidate(server: str, tarball: Path, body: bytes, requests: int) -> list[LoadResult]:
    with local_sagemaker(http_server=server) as cloud:
        cloud.deploy("iris", tarball, max_concurrency=2, provisioned=2)
        return [
            http_load(
                server, cloud.port, "/endpoints/iris/invocations", body, JSON_HEADERS, concurrency, requests
            )
            for concurrency in CONCURRENCY
        ]


def _measure_edge(body: bytes, requests: int) -> list[dict[str, Any]]:
    """InvokeEndpoint through the edge's app, served by each in-process candidate on its own port."""
    measured: dict[str, list[LoadResult]] = {}
    with warm_iris_on_local_cloud("iris", prefix="modeldrop-http-servers-edge-") as (cloud, _stack):
        on_edge = edge_invocations(cloud, "iris")
        for _ in range(ROUNDS):
            for concurrency in CONCURRENCY:
                own = http_load_in_child(
                    EDGE_OWN, on_edge.port, on_edge.path, body, on_edge.headers, concurrency, requests
                )
                measured.setdefault(EDGE_OWN, []).append(own)
            for server in IN_PROCESS_SERVERS:
                with serving(server, cloud.edge.app) as port:
                    for concurrency in CONCURRENCY:
                        result = http_load_in_child(
                            server, port, on_edge.path, body, on_edge.headers, concurrency, requests
                        )
                        measured.setdefault(server, []).append(result)
    rows = _rows(measured, (EDGE_OWN, *IN_PROCESS_SERVERS))
    own_rows = {row["concurrency"]: row for row in rows if row["target"] == EDGE_OWN}
    for row in rows:
        row["p50_vs_edge_port"] = round(row["p50_ms"] / own_rows[row["concurrency"]]["p50_ms"], 2)
    return rows


def _rows(measured: dict[str, list[LoadResult]], targets: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "target": target,
            "concurrency": concurrency,
            **_median_row([r for r in measured[target] if r.concurrency == concurrency]),
        }
        for target in targets
        for concurrency in CONCURRENCY
    ]


def _median_row(results: list[LoadResult]) -> dict[str, Any]:
    p50s = [percentile(r.latencies_ms, 50) for r in results]
    return {
        "p50_ms": round(statistics.median(p50s), 3),
        "p95_ms": round(statistics.median(percentile(r.latencies_ms, 95) for r in results), 3),
        "rps": round(statistics.median(r.rps for r in results), 1),
        "errors": sum(r.errors for r in results),
        "requests": sum(len(r.latencies_ms) for r in results),
    }


def run(requests: int = 1000) -> dict[str, Any]:
    measured: dict[str, list[LoadResult]] = {}
    with tempfile.TemporaryDirectory(prefix="modeldrop-http-servers-") as tmp:
        workdir = Path(tmp)
        tarball = example_models.build_sklearn_iris(workdir / "iris")
        model_path = joblib_artifact(tarball, workdir / "artifact")
        body = json.dumps(example_models.iris_payload(ROWS_PER_REQUEST)).encode()
        for _ in range(ROUNDS):
            for result in _measure_floor(model_path, body, requests):
                measured.setdefault(result.target, []).append(result)
            for server in SERVERS:
                for result in _measure_candidate(server, tarball, body, requests):
                    measured.setdefault(result.target, []).append(result)
        edge_rows = _measure_edge(body, requests)
    rows = _rows(measured, (FLOOR, *SERVERS))
    floors = {row["concurrency"]: row for row in rows if row["target"] == FLOOR}
    for row in rows:
        floor = floors[row["concurrency"]]
        row["p50_vs_floor"] = round(row["p50_ms"] / floor["p50_ms"], 2)
        row["rps_vs_floor"] = round(row["rps"] / floor["rps"], 2)
    result = {
        "model": "iris (standalone local SageMaker, InvokeEndpoint)",
        "requests_per_client": requests,
        "rounds": ROUNDS,
        "rows_per_request": ROWS_PER_REQUEST,
        "rows": rows,
        "edge_rows": edge_rows,
    }
    write_result("http_servers", result)
    return result


if __name__ == "__main__":
    command_line(run, __doc__, "--requests", 1000, help="requests per client per measurement")
