"""Warm serving: the same model, payload, HTTP client and concurrency against four servers.

- local SageMaker InvokeEndpoint (MaxConcurrency 2, warmed up first)
- the floor: bare FastAPI + uvicorn with 2 workers, model loaded at start
- MLflow `mlflow models serve --env-manager local` with 2 workers (skipped, and said so, if MLflow is absent)
- in-process `model.predict` (the physical limit; no HTTP at all)

Every figure is reported with its ratio to the floor measured in the same run.
Run alone: `python -m benchmarks.warm_serving [--requests N]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from modeldrop.frameworks import Framework
from modeldrop_local import example_models

from benchmarks.common import (
    JSON_HEADERS,
    REPO_ROOT,
    LoadResult,
    command_line,
    free_port,
    http_load,
    percentile,
    subprocess_server,
    write_result,
)
from benchmarks.local_cloud import local_sagemaker

CONCURRENCY = (1, 2, 8)
ROWS_PER_REQUEST = 4
# Single-threaded math everywhere, so the servers compete on serving, not on BLAS threads.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def joblib_artifact(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    found = sorted(into.rglob("*.joblib"))
    if not found:
        raise RuntimeError(f"{tarball} holds no .joblib artifact")
    return found[0]


def image_python_command(*arguments: str) -> list[str]:
    """Run under the scikit-learn image's pinned environment (the example models are pickled there and
    a scikit-learn 1.2.1 forest does not unpickle under the project's newer one), with the project
    venv's packages added (site.addsitedir, so its .pth files count too): FastAPI, uvicorn, boto3 and the
    project's code come from there; numpy, scipy, scikit-learn and joblib still come from the image
    environment."""
    project_site = sysconfig.get_paths()["purelib"]
    # The image's scientific stack is imported first, so it stays the image's; then the project venv goes
    # first on sys.path, so its AWS and web stack wins over the image's older sagemaker-containers deps
    # (their urllib3 would otherwise import the venv's newer pyOpenSSL and fail).
    bootstrap = (
        "import runpy, site, sys; import numpy, scipy, sklearn, joblib, threadpoolctl; "
        f"before = list(sys.path); site.addsitedir({project_site!r}); "
        "sys.path[:] = [entry for entry in sys.path if entry not in before] + before; "
        f"sys.argv[1:] = {list(arguments[1:])!r}; runpy.run_module({arguments[0]!r}, run_name='__main__')"
    )
    return [example_models.image_python(Framework.SKLEARN), "-c", bootstrap]


def in_process_in_image(model_path: Path, body: bytes, concurrency: int, requests: int) -> LoadResult:
    """`in_process`, in the image environment the model was pickled in."""
    completed = subprocess.run(
        image_python_command(
            "benchmarks.warm_serving", "--in-process", str(model_path), str(concurrency), str(requests)
        ),
        input=body,
        capture_output=True,
        cwd=REPO_ROOT,
        env={**os.environ, **THREAD_ENV},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"in-process baseline failed: {completed.stderr.decode()[-2000:]}")
    answer = json.loads(completed.stdout)
    result = LoadResult(target="in-process predict", concurrency=concurrency)
    result.latencies_ms = answer["latencies_ms"]
    result.wall_s = answer["wall_s"]
    return result


def in_process(model: Any, body: bytes, concurrency: int, requests: int) -> LoadResult:
    """The physical limit: decode, predict, encode — the same work minus HTTP, on one thread."""
    result = LoadResult(target="in-process predict", concurrency=concurrency)
    t_start = time.perf_counter()
    for _ in range(requests * concurrency):
        t0 = time.perf_counter()
        json.dumps(model.predict(np.asarray(json.loads(body), dtype=float)).tolist())
        result.latencies_ms.append((time.perf_counter() - t0) * 1000)
    result.wall_s = time.perf_counter() - t_start
    return result


# `make bench` installs MLflow in a venv of its own (see the Makefile for why).
MLFLOW_BIN = REPO_ROOT / ".venv-mlflow" / "bin"
# cloudpickle, as the model's own joblib file is: MLflow's default (skops) refuses tree models.
SAVE_MLFLOW_MODEL = (
    "import sys, joblib, mlflow.sklearn; "
    "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format='cloudpickle')"
)


def mlflow_available() -> bool:
    return (MLFLOW_BIN / "mlflow").exists()


def _save_mlflow_model(model_path: Path, mlflow_dir: Path) -> bool:
    """Save the model as an MLflow model; False (and why, on stderr) when MLflow's own scikit-learn
    cannot unpickle it (the examples are pickled with the image's scikit-learn 1.2.1)."""
    completed = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", SAVE_MLFLOW_MODEL, str(model_path), str(mlflow_dir)],
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        print(f"MLflow skipped for {model_path.name}: {completed.stderr.strip()[-300:]}", file=sys.stderr)
    return completed.returncode == 0


def bench_model(label: str, tarball: Path, requests: int, workdir: Path) -> list[dict[str, Any]]:
    model_path = joblib_artifact(tarball, workdir / f"{label}-artifact")
    rows = example_models.iris_payload(ROWS_PER_REQUEST)
    body = json.dumps(rows).encode()
    results: list[LoadResult] = []

    port = free_port()
    with subprocess_server(
        image_python_command("benchmarks.servers.fastapi_floor", str(port), "2"),
        port,
        env={"MODEL_PATH": str(model_path), **THREAD_ENV},
        log_name=f"fastapi-{label}",
    ):
        for concurrency in CONCURRENCY:
            results.append(
                http_load(
                    "fastapi+uvicorn (floor)", port, "/invocations", body, JSON_HEADERS, concurrency, requests
                )
            )

    with local_sagemaker() as cloud:
        cloud.deploy(label, tarball, max_concurrency=2, provisioned=2)
        path = f"/endpoints/{label}/invocations"
        for concurrency in CONCURRENCY:
            # Above MaxConcurrency the endpoint throttles by design: count those apart from the latencies.
            results.append(
                http_load(
                    "local SageMaker InvokeEndpoint",
                    cloud.port,
                    path,
                    body,
                    JSON_HEADERS,
                    concurrency,
                    requests,
                )
            )

    mlflow_dir = workdir / f"mlflow-{label}"
    if mlflow_available() and _save_mlflow_model(model_path, mlflow_dir):
        port = free_port()
        mlflow_body = json.dumps({"inputs": rows}).encode()
        with subprocess_server(
            [
                str(MLFLOW_BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(mlflow_dir),
                "--env-manager",
                "local",
                "--workers",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            port,
            # mlflow starts `uvicorn` by name: it must be the one in its own venv.
            env={**THREAD_ENV, "PATH": f"{MLFLOW_BIN}{os.pathsep}{os.environ['PATH']}"},
            timeout_s=180,
            log_name=f"mlflow-{label}",
        ):
            for concurrency in CONCURRENCY:
                results.append(
                    http_load(
                        "mlflow models serve",
                        port,
                        "/invocations",
                        mlflow_body,
                        JSON_HEADERS,
                        concurrency,
                        requests,
                    )
                )

    for concurrency in CONCURRENCY:
        results.append(in_process_in_image(model_path, body, concurrency, requests))

    floors = {r.concurrency: r for r in results if r.target.endswith("(floor)")}
    rows_out = []
    for r in results:
        floor = floors[r.concurrency]
        summary = r.summary()
        summary["model"] = label
        summary["p50_vs_floor"] = round(summary["p50_ms"] / percentile(floor.latencies_ms, 50), 2)
        summary["rps_vs_floor"] = round(r.rps / floor.rps, 2) if floor.rps else None
        rows_out.append(summary)
    return rows_out


def run(requests: int = 300) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modeldrop-warm-") as tmp:
        workdir = Path(tmp)
        iris = example_models.build_sklearn_iris(workdir / "iris")
        forest = example_models.build_sklearn_forest(workdir / "forest", n_estimators=200)
        rows = bench_model("iris", iris, requests, workdir) + bench_model(
            "forest200", forest, requests, workdir
        )
    result = {
        "requests_per_client": requests,
        "rows_per_request": ROWS_PER_REQUEST,
        "mlflow": "measured" if mlflow_available() else "not installed (run `make bench` to install it)",
        "rows": rows,
    }
    write_result("warm_serving", result)
    return result


def _in_process_main(model_path: str, concurrency: int, requests: int) -> None:
    model = joblib.load(model_path)
    result = in_process(model, sys.stdin.buffer.read(), concurrency, requests)
    print(json.dumps({"latencies_ms": result.latencies_ms, "wall_s": result.wall_s}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--in-process"]:
        _in_process_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        sys.exit(0)
    command_line(run, __doc__, "--requests", 300, help="requests per client per measurement")
