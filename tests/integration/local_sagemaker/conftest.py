"""Fixtures for the local SageMaker tests: moto's S3 on a loopback port holding real model tarballs,
the local SageMaker served by werkzeug on another, and boto3 clients pointed at both.

Clients skip botocore's client-side parameter validation so that the server's own validation is
what the tests see, and never retry, so that every throttle is counted once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from modeldrop_local.example_models import (
    build_onnx_iris,
    build_sklearn_iris,
    build_xgboost_iris,
    iris_sample,
    predict_in_process,
)
from modeldrop_local.packaging import build_model_tarball
from modeldrop_local.sagemaker import LocalSageMakerSettings, start_in_thread
from modeldrop_local.sagemaker.server import RunningServer
from moto.server import ThreadedMotoServer

from reliability.tarballs import file_member, tar_gz
from tests.utils import ManualClock, free_port

BUCKET = "models"
ROLE_ARN = "arn:aws:iam::123456789012:role/modeldrop-sagemaker"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
# Endpoints of these tests run modeldrop's generic contract (a custom image: the files choose the
# loader); how each prebuilt image serves is tested in test_container_profiles.py.
CUSTOM_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-container:latest"
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, parameter_validation=False)

# A model whose behaviour each request chooses (sleep, crash the process) or its environment does
# (FAIL_TO_LOAD, LOAD_SLEEP, LOAD_ALLOCATE_MB).
BEHAVIOUR_INFERENCE_PY = """
import json
import os
import time

import joblib


def model_fn(model_dir):
    if os.environ.get("FAIL_TO_LOAD"):
        raise RuntimeError("model_fn refused to load because FAIL_TO_LOAD is set")
    time.sleep(float(os.environ.get("LOAD_SLEEP", "0")))
    ballast = b"x" * (int(os.environ.get("LOAD_ALLOCATE_MB", "0")) * 2**20)
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    model.ballast_ = ballast
    return model


def input_fn(body, content_type):
    return json.loads(body)


def predict_fn(data, model):
    if data.get("crash"):
        os._exit(3)
    time.sleep(float(data.get("sleep", 0)))
    if data.get("allocate_mb"):
        ballast = b"x" * (int(data["allocate_mb"]) * 2**20)
        time.sleep(1)  # hold it for the memory watchdog to see
        del ballast
    return model.predict(data["rows"]).tolist()


def output_fn(prediction, accept):
    return json.dumps({"predictions": prediction})
"""


@dataclass(frozen=True)
class ModelUrls:
    iris: str  # built-in scikit-learn loader: answers [0, 0, 1, 2] for iris_sample()
    behaviour: str  # code/inference.py: answers {"predictions": [...]}; sleep/crash on request
    broken: str  # not a gzip file
    traversal: str  # a member that climbs out of the model directory
    missing: str  # no object at this key
    onnx: str  # model.onnx (built-in onnxruntime loader)
    xgboost: str  # xgboost-model (built-in XGBoost loader)
    expected: dict[str, Any]  # in-process predictions of iris_sample(), by model


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def model_urls(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> ModelUrls:
    build = tmp_path_factory.mktemp("tarballs")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    # The bare artifacts (no code/), as these tests were written for; the builders now add handlers.
    iris = build_sklearn_iris(build / "iris", with_handler=False)
    staging = build / "behaviour-src"
    staging.mkdir()
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    joblib.dump(LogisticRegression(max_iter=1000).fit(data.data, data.target), staging / "model.joblib")
    (staging / "inference.py").write_text(BEHAVIOUR_INFERENCE_PY)
    behaviour = build_model_tarball(
        [staging / "model.joblib"], build / "behaviour.tar.gz", inference_py=staging / "inference.py"
    )
    onnx = build_onnx_iris(build / "onnx", with_handler=False)
    xgboost = build_xgboost_iris(build / "xgboost")
    s3.upload_file(str(onnx), BUCKET, "onnx/model.tar.gz")
    s3.upload_file(str(xgboost), BUCKET, "xgboost/model.tar.gz")
    s3.upload_file(str(iris), BUCKET, "iris/model.tar.gz")
    s3.upload_file(str(behaviour), BUCKET, "behaviour/model.tar.gz")
    s3.put_object(Bucket=BUCKET, Key="broken/model.tar.gz", Body=b"this is not a tarball")
    s3.put_object(
        Bucket=BUCKET, Key="traversal/model.tar.gz", Body=tar_gz([file_member("../../escape.txt", b"owned")])
    )
    return ModelUrls(
        iris=f"s3://{BUCKET}/iris/model.tar.gz",
        behaviour=f"s3://{BUCKET}/behaviour/model.tar.gz",
        broken=f"s3://{BUCKET}/broken/model.tar.gz",
        traversal=f"s3://{BUCKET}/traversal/model.tar.gz",
        missing=f"s3://{BUCKET}/missing/model.tar.gz",
        onnx=f"s3://{BUCKET}/onnx/model.tar.gz",
        xgboost=f"s3://{BUCKET}/xgboost/model.tar.gz",
        expected={
            name: predict_in_process(path, iris_sample())
            for name, path in {"iris": iris, "onnx": onnx, "xgboost": xgboost}.items()
        },
    )


def settings_for(state_dir: Path, s3_endpoint: str, **overrides: Any) -> LocalSageMakerSettings:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "s3_endpoint_url": s3_endpoint,
        "port": 0,
        "idle_timeout_s": 1.0,
        "invocation_timeout_s": 3.0,
        "cloudwatch_logs_endpoint_url": s3_endpoint,  # moto serves CloudWatch Logs on the same port
        "log_ship_interval_s": 0.2,
        **overrides,
    }
    return LocalSageMakerSettings(**values)


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    """What the local SageMaker times idle workers on: the tests move it and run the reaper."""
    return ManualClock()


@pytest.fixture(scope="module")
def local_sagemaker(
    s3_endpoint: str, model_urls: ModelUrls, tmp_path_factory: pytest.TempPathFactory, clock: ManualClock
) -> Iterator[RunningServer]:
    state_dir = tmp_path_factory.mktemp("sagemaker-state")
    server = start_in_thread(settings_for(state_dir, s3_endpoint), clock=clock)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sm(local_sagemaker: RunningServer) -> Any:
    return boto3.client("sagemaker", endpoint_url=local_sagemaker.url, config=CLIENT_CONFIG)


@pytest.fixture(scope="module")
def runtime(local_sagemaker: RunningServer) -> Any:
    return boto3.client("sagemaker-runtime", endpoint_url=local_sagemaker.url, config=CLIENT_CONFIG)


def create_serverless_endpoint(
    sm: Any,
    name: str,
    model_data_url: str,
    *,
    environment: dict[str, str] | None = None,
    memory_mb: int = 2048,
    max_concurrency: int = 2,
    provisioned: int | None = None,
    config_name: str | None = None,
    create_endpoint: bool = True,
    image: str = CUSTOM_IMAGE,
) -> str:
    """CreateModel + CreateEndpointConfig (+ CreateEndpoint); returns the config name."""
    config_name = config_name or f"{name}-config"
    model_name = f"{config_name}-model"
    container: dict[str, Any] = {"Image": image, "ModelDataUrl": model_data_url}
    if environment:
        container["Environment"] = environment
    sm.create_model(ModelName=model_name, PrimaryContainer=container, ExecutionRoleArn=ROLE_ARN)
    serverless: dict[str, int] = {"MemorySizeInMB": memory_mb, "MaxConcurrency": max_concurrency}
    if provisioned:
        serverless["ProvisionedConcurrency"] = provisioned
    sm.create_endpoint_config(
        EndpointConfigName=config_name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model_name, "ServerlessConfig": serverless}
        ],
    )
    if create_endpoint:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config_name)
    return config_name


def invoke_json(runtime: Any, name: str, payload: Any) -> Any:
    response = runtime.invoke_endpoint(
        EndpointName=name, Body=json.dumps(payload), ContentType="application/json", Accept="application/json"
    )
    return json.loads(response["Body"].read())
