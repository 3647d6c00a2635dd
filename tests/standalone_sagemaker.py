"""moto (S3, STS, CloudWatch Logs) and the local SageMaker on free loopback ports, for the tests whose
clients run in another virtualenv (tests/sdk, tests/conformance): they get plain URLs to talk to."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldrop_local.sagemaker import LocalSageMakerSettings, start_in_thread
from moto.server import ThreadedMotoServer

from tests.utils import REPO_ROOT, free_port

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/modeldrop-sagemaker"
# The prebuilt images, as the SDK's image_uris.retrieve(..., serverless_inference_config=...) names them.
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@dataclass(frozen=True)
class Cloud:
    s3_url: str  # moto: S3, STS, CloudWatch Logs
    sagemaker_url: str  # the local SageMaker: control plane and runtime

    def client_env(self) -> dict[str, str]:
        """Environment for a client process: fake credentials, each service at its loopback URL."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_ENDPOINT_URL_STS": self.s3_url,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker_url,
        }


@contextmanager
def standalone_cloud(state_dir: Path, **settings: Any) -> Iterator[Cloud]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    s3_url = f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "s3_endpoint_url": s3_url,
        "port": 0,
        "region": REGION,
        "cloudwatch_logs_endpoint_url": s3_url,
        **settings,
    }
    server = start_in_thread(LocalSageMakerSettings(**values))
    try:
        yield Cloud(s3_url=s3_url, sagemaker_url=server.url)
    finally:
        server.stop()
        moto.stop()


def venv_python(name: str) -> Path:
    """The interpreter of a side virtualenv the Makefile builds (.venv-sdk, .venv-oracle)."""
    python = REPO_ROOT / name / "bin" / "python"
    if not python.exists():
        raise AssertionError(f"{python} is missing: run `make sdk-test` (it builds {name})")
    return python


def run_json(python: Path, script: Path, request: Any, env: dict[str, str], timeout_s: float) -> Any:
    """Run script under python with the JSON request on stdin; its stdout is one JSON document."""
    import json
    import os

    completed = subprocess.run(
        [str(python), str(script)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env},
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"{script.name} exited {completed.returncode}\n--- stderr ---\n{completed.stderr[-6000:]}"
        )
    return json.loads(completed.stdout)


def wait_until_settled(sm: Any, name: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll DescribeEndpoint (what the deploy state machine does) until it leaves Creating/Updating."""
    deadline = time.monotonic() + timeout_s
    while True:
        description: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if description["EndpointStatus"] not in {"Creating", "Updating"}:
            return description
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} still {description['EndpointStatus']} after {timeout_s} s")
        time.sleep(0.05)
