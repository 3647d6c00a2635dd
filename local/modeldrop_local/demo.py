"""`make demo`: a real model through S3 → OnUpload → SageMaker → Step Functions → REST, on this machine.

Builds the scikit-learn iris tarball, starts the local cloud on free ports with a temporary state dir,
uploads the model, follows its deployment, calls the REST API with the stack's API key and checks the
predictions equal the same model's predictions in this process. Exit code 1 on any failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from modeldrop_local.cloud import LocalCloud, free_port
from modeldrop_local.example_models import build_sklearn_iris, iris_sample, predict_in_process
from modeldrop_local.stack_client import StackClient

MODEL_NAME = "iris"


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The local cloud's endpoint and fake credentials for this process's clients, only while it runs."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def throwaway_cloud(workdir: Path) -> Iterator[tuple[LocalCloud, StackClient]]:
    """The whole local cloud on free ports, its state under workdir; this process's clients reach it
    while it runs (the demo and the benchmarks use it)."""
    cloud = LocalCloud(
        edge_port=free_port(),
        api_port=free_port(),
        state_dir=workdir / "state",
        function_log_dir=workdir / "logs",
    )
    with cloud, _environment(cloud.environment()):
        yield cloud, StackClient(cloud.edge_url, cloud.stack_name)


def run(workdir: Path) -> bool:
    step("building the scikit-learn iris model tarball")
    tarball = build_sklearn_iris(workdir / "build")
    step("starting the local cloud (edge, functions host, local SageMaker, REST front)")
    with throwaway_cloud(workdir) as (cloud, stack):
        step(f"edge {cloud.edge_url}, REST API {cloud.api_url}")
        version = stack.upload(Path(tarball), MODEL_NAME)
        step(f"uploaded models/{MODEL_NAME}/model.tar.gz (S3 version {version}); following the deployment")
        deployment = stack.follow(MODEL_NAME, version, timeout_s=300, progress=lambda line: step(f"  {line}"))
        if deployment.status != "InService":
            step("FAILED: the deployment did not reach InService")
            return False
        rows = iris_sample()
        response = stack.invoke(MODEL_NAME, json.dumps(rows).encode(), "application/json")
        if response.status_code != 200:
            step(f"FAILED: REST API answered {response.status_code}: {response.text}")
            return False
        rest_predictions = response.json()
        local_predictions = predict_in_process(tarball, rows)
        step("predictions (features → REST API | in-process)")
        for features, remote, local in zip(rows, rest_predictions, local_predictions, strict=True):
            print(f"    {features} → {remote} | {local}")
        if rest_predictions != local_predictions:
            step("FAILED: REST predictions differ from the in-process predictions")
            return False
        step("OK: REST predictions equal the in-process predictions; stopping")
    return True


def main() -> int:
    logging.getLogger("modeldrop_local.access").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="modeldrop-demo-") as workdir:
        try:
            ok = run(Path(workdir))
        except Exception as error:  # the demo reports any failure as its exit code, with the reason
            step(f"FAILED: {type(error).__name__}: {error}")
            return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
