"""Cold start: a request to a scaled-to-zero endpoint, until its answer, against a fresh process.

The baseline is what a naive server pays on every cold start: a new Python process that imports the
framework, loads the same artifact and predicts once. The local SageMaker forks a worker from a server
with the imports preloaded, so it should pay only the model load.

Models: scikit-learn iris (joblib), the same model as ONNX, and a ~100 MB scikit-learn model (a
k-nearest-neighbours classifier keeps its training set, so its size is real model state, not padding).
Run alone: `python -m benchmarks.cold_start [--samples N]`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from modeldrop.frameworks import Framework
from modeldrop_local import example_models

from benchmarks.common import NoDelayHTTPConnection, command_line, percentile, write_result
from benchmarks.local_cloud import LocalSageMaker, local_sagemaker

IDLE_TIMEOUT_S = 1.0
FRESH_PROCESS = {
    "sklearn": (
        "import json, sys, joblib, numpy as np; m = joblib.load(sys.argv[1]); "
        "print(json.dumps(m.predict(np.asarray(json.loads(sys.argv[2]), dtype=float)).tolist()))"
    ),
    "onnx": (
        "import json, sys, numpy as np, onnxruntime as ort; s = ort.InferenceSession(sys.argv[1]); "
        "x = np.asarray(json.loads(sys.argv[2]), dtype=np.float32); "
        "print(json.dumps(s.run(None, {s.get_inputs()[0].name: x})[0].tolist()))"
    ),
}


def build_large_knn(dest_dir: Path, target_mb: int = 100) -> Path:
    """A real ~target_mb scikit-learn model: KNN stores its (synthetic, iris-shaped) training set.

    Pickled with the scikit-learn 1.2-1 image's libraries (example_models.pickle_large_knn), which the
    local SageMaker serves that image with.
    """
    from modeldrop_local.example_models import pickle_large_knn
    from modeldrop_local.packaging import build_model_tarball

    n_samples = target_mb * 2**20 // (4 * 8 * 2)  # 4 float64 features, plus the tree's copy
    dest_dir.mkdir(parents=True, exist_ok=True)
    model_file = dest_dir / "model.joblib"
    libraries = pickle_large_knn(model_file, n_samples)
    return build_model_tarball([model_file], dest_dir / "model.tar.gz", libraries=libraries)


def artifact(tarball: Path, suffix: str, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return sorted(into.rglob(f"*{suffix}"))[0]


def invoke_ms(port: int, endpoint: str, body: bytes) -> float:
    conn = NoDelayHTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.perf_counter()
    conn.request(
        "POST",
        f"/endpoints/{endpoint}/invocations",
        body=body,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    response = conn.getresponse()
    payload = response.read()
    elapsed = (time.perf_counter() - t0) * 1000
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{endpoint} answered {response.status}: {payload[:300]!r}")
    return elapsed


def fresh_process_ms(kind: str, artifact_path: Path, rows: list[list[float]]) -> float:
    # The pickles load with the libraries the local SageMaker serves them with (the scikit-learn 1.2-1
    # image's pinned environment): the same imports on both sides. ONNX is served from this environment.
    python = example_models.image_python(Framework.SKLEARN) if kind == "sklearn" else sys.executable
    t0 = time.perf_counter()
    subprocess.run(
        [python, "-c", FRESH_PROCESS[kind], str(artifact_path), json.dumps(rows)],
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return (time.perf_counter() - t0) * 1000


def cold_samples(cloud: LocalSageMaker, endpoint: str, body: bytes, samples: int) -> list[float]:
    results = []
    for _ in range(samples):
        # Benchmarks may wait on the clock: the endpoint scales to zero only after its idle time passes.
        time.sleep(IDLE_TIMEOUT_S + 1.5)
        results.append(invoke_ms(cloud.port, endpoint, body))
    return results


def run(samples: int = 8) -> dict[str, Any]:
    from modeldrop.frameworks import image_for

    rows = example_models.iris_payload(4)
    body = json.dumps(rows).encode()
    table = []
    with (
        tempfile.TemporaryDirectory(prefix="modeldrop-cold-") as tmp,
        local_sagemaker(IDLE_TIMEOUT_S) as cloud,
    ):
        workdir = Path(tmp)
        cases = [
            (
                "sklearn-iris",
                "sklearn",
                example_models.build_sklearn_iris(workdir / "iris"),
                ".joblib",
                image_for(Framework.SKLEARN, None, "us-east-1"),
            ),
            (
                "onnx-iris",
                "onnx",
                example_models.build_onnx_iris(workdir / "onnx"),
                ".onnx",
                image_for(Framework.ONNX, None, "us-east-1"),
            ),
            (
                "sklearn-knn-100MB",
                "sklearn",
                build_large_knn(workdir / "knn", 100),
                ".joblib",
                image_for(Framework.SKLEARN, None, "us-east-1"),
            ),
        ]
        for name, kind, tarball, suffix, image in cases:
            cloud.deploy(name, tarball, image=image, memory_mb=2048 if "100MB" not in name else 3072)
            invoke_ms(cloud.port, name, body)  # first call also warms the fork server's page cache
            cold = cold_samples(cloud, name, body, samples)
            warm = [invoke_ms(cloud.port, name, body) for _ in range(samples)]
            path = artifact(tarball, suffix, workdir / f"{name}-artifact")
            fresh = [fresh_process_ms(kind, path, rows) for _ in range(samples)]
            table.append(
                {
                    "model": name,
                    "tarball_mb": round(tarball.stat().st_size / 2**20, 1),
                    "cold_p50_ms": round(statistics.median(cold), 1),
                    "cold_p95_ms": round(percentile(cold, 95), 1),
                    "fresh_process_p50_ms": round(statistics.median(fresh), 1),
                    "speedup_vs_fresh": round(statistics.median(fresh) / statistics.median(cold), 1),
                    "warm_p50_ms": round(statistics.median(warm), 2),
                }
            )
    result = {"samples": samples, "idle_timeout_s": IDLE_TIMEOUT_S, "rows": table}
    write_result("cold_start", result)
    return result


if __name__ == "__main__":
    command_line(run, __doc__, "--samples", 8)
