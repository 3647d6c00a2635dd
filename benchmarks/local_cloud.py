"""Start the pieces the benchmarks measure: a standalone local SageMaker (with moto S3) as subprocesses,
and follow deployments on the whole local cloud (started by `modeldrop_local.demo.throwaway_cloud`), where
a model's invocations are reached on the REST front or on the edge."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from modeldrop.naming import endpoint_name
from modeldrop.serving_setup import sdk_environment
from modeldrop_local.stack_client import StackClient

from benchmarks.common import JSON_HEADERS, free_port, subprocess_server

if TYPE_CHECKING:
    from modeldrop_local.cloud import LocalCloud

ROLE_ARN = "arn:aws:iam::123456789012:role/modeldrop-bench"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
# The servers are separate processes: they need the same fake credentials to sign their own S3 calls.
SERVER_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class LocalSageMaker:
    port: int
    s3_url: str
    state_dir: Path
    sagemaker: Any
    runtime: Any
    s3: Any
    bucket: str = "bench-models"

    def deploy(
        self,
        name: str,
        tarball: Path,
        *,
        image: str = SKLEARN_IMAGE,
        memory_mb: int = 2048,
        max_concurrency: int = 2,
        provisioned: int = 0,
        timeout_s: float = 600,
        environment: dict[str, str] | None = None,
    ) -> float:
        """Upload the tarball and create a serverless endpoint; return seconds until InService.

        The scikit-learn image serves the user module SAGEMAKER_PROGRAM names (it has no loader of its
        own), so by default the model gets the variables the SageMaker Python SDK sets, as OnUpload does;
        the example tarballs carry that code/inference.py."""
        if environment is None:
            environment = sdk_environment(CREDENTIALS["region_name"]) if image == SKLEARN_IMAGE else {}
        key = f"models/{name}/model.tar.gz"
        self.s3.upload_file(str(tarball), self.bucket, key)
        t0 = time.perf_counter()
        self.sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE_ARN,
            PrimaryContainer={
                "Image": image,
                "ModelDataUrl": f"s3://{self.bucket}/{key}",
                "Environment": environment,
            },
        )
        serverless: dict[str, int] = {"MemorySizeInMB": memory_mb, "MaxConcurrency": max_concurrency}
        if provisioned:
            serverless["ProvisionedConcurrency"] = provisioned
        self.sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": name, "ServerlessConfig": serverless}
            ],
        )
        self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.sagemaker.describe_endpoint(EndpointName=name)
            if status["EndpointStatus"] == "InService":
                return time.perf_counter() - t0
            if status["EndpointStatus"] == "Failed":
                raise RuntimeError(f"endpoint {name} failed: {status.get('FailureReason')}")
            time.sleep(0.05)
        raise TimeoutError(f"endpoint {name} not InService after {timeout_s}s")


@contextmanager
def moto_s3_server(log_name: str = "moto") -> Iterator[str]:
    """moto's server as a subprocess on a free port (S3 for ModelDataUrl); yields its URL."""
    port = free_port()
    with subprocess_server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        env=SERVER_ENV,
        log_name=log_name,
    ):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def local_sagemaker(
    idle_timeout_s: float = 300.0, http_server: str | None = None
) -> Iterator[LocalSageMaker]:
    """A standalone local SageMaker as `python -m modeldrop_local.sagemaker` runs it; with `http_server`,
    its same app served by that candidate server instead (`benchmarks/servers/local_sagemaker_on.py`)."""
    with ExitStack() as stack:
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modeldrop-bench-")))
        s3_url = stack.enter_context(moto_s3_server())
        sm_port = free_port()
        if http_server is not None:
            command = [
                sys.executable,
                "-m",
                "benchmarks.servers.local_sagemaker_on",
                http_server,
                str(sm_port),
                str(state_dir),
                s3_url,
            ]
        else:
            command = [
                sys.executable,
                "-m",
                "modeldrop_local.sagemaker",
                "--port",
                str(sm_port),
                "--state-dir",
                str(state_dir),
                "--s3-endpoint-url",
                s3_url,
                "--idle-timeout",
                str(idle_timeout_s),
            ]
        stack.enter_context(
            subprocess_server(
                command, sm_port, env=SERVER_ENV, log_name=f"local-sagemaker-{http_server or 'cli'}"
            )
        )
        sm_url = f"http://127.0.0.1:{sm_port}"
        no_retry = Config(retries={"max_attempts": 1}, read_timeout=120)
        s3 = boto3.client("s3", endpoint_url=s3_url, **CREDENTIALS)
        s3.create_bucket(Bucket="bench-models")
        yield LocalSageMaker(
            port=sm_port,
            s3_url=s3_url,
            state_dir=state_dir,
            sagemaker=boto3.client("sagemaker", endpoint_url=sm_url, **CREDENTIALS),
            runtime=boto3.client("sagemaker-runtime", endpoint_url=sm_url, config=no_retry, **CREDENTIALS),
            s3=s3,
        )


def upload_and_follow(stack: StackClient, tarball: Path, name: str, timeout_s: float = 900) -> float:
    """Upload the tarball as models/<name>/model.tar.gz; seconds until its deployment is InService."""
    t0 = time.perf_counter()
    version = stack.upload(tarball, name)
    deployment = stack.follow(name, version, timeout_s=timeout_s, progress=lambda _line: None, poll_s=0.1)
    if deployment.status != "InService":
        raise RuntimeError(f"{name} did not reach InService: {deployment}")
    return time.perf_counter() - t0


@contextmanager
def warm_iris_on_local_cloud(model: str, prefix: str) -> Iterator[tuple[LocalCloud, StackClient]]:
    """The iris model deployed as `model` on a throwaway local cloud, its two workers kept warm
    (MaxConcurrency 2, ProvisionedConcurrency 2): what the REST path is measured on."""
    # Imported here: the benchmarks of the standalone local SageMaker need none of the whole cloud.
    from modeldrop_local.demo import throwaway_cloud
    from modeldrop_local.example_models import build_sklearn_iris

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        tarball = build_sklearn_iris(
            workdir / "build", config={"provisioned_concurrency": 2, "max_concurrency": 2}
        )
        with throwaway_cloud(workdir) as (cloud, stack):
            upload_and_follow(stack, tarball, model)
            yield cloud, stack


@dataclass(frozen=True)
class Invocations:
    """Where a model's invocations are POSTed, on the REST front or on the edge, with the headers to send."""

    port: int
    path: str
    headers: dict[str, str]


def rest_invocations(stack: StackClient, model: str) -> tuple[Invocations, str]:
    """The REST API's route for the model (with the stack's API key, if it has one), and the path of the
    API's stage on the REST front (its routes are below it)."""
    api = urlparse(stack.outputs()["ApiUrl"])
    headers = dict(JSON_HEADERS)
    key = stack.api_key()
    if key:
        headers["x-api-key"] = key
    route = Invocations(int(api.port or 80), f"{api.path.rstrip('/')}/models/{model}/invocations", headers)
    return route, api.path


def edge_invocations(cloud: LocalCloud, model: str) -> Invocations:
    """InvokeEndpoint for the model's endpoint on the edge directly: the baseline of the REST path."""
    return Invocations(cloud.edge_port, f"/endpoints/{endpoint_name(model)}/invocations", dict(JSON_HEADERS))
