"""Create a serverless endpoint from a real scikit-learn tarball with plain boto3, wait, invoke.

    python -m modeldrop_local.sagemaker.quickstart                       # everything in-process
    python -m modeldrop_local.sagemaker.quickstart --sagemaker-url http://127.0.0.1:8089 \\
        --s3-url http://127.0.0.1:4566                                    # against running servers

Without URLs it starts moto's S3 and the local SageMaker on free loopback ports and stops them at
the end. It prints the endpoint's answers next to the model's own in-process predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from modeldrop_local.example_models import build_sklearn_iris, iris_sample, predict_in_process
from modeldrop_local.sagemaker.server import start_in_thread
from modeldrop_local.sagemaker.settings import LocalSageMakerSettings

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE_ARN = "arn:aws:iam::123456789012:role/modeldrop-sagemaker"


def run(
    sagemaker_url: str, s3_url: str, *, bucket: str = "quickstart", name: str = "quickstart-iris"
) -> dict[str, Any]:
    """Upload the iris model, deploy it serverless, invoke it; returns both answers and timings."""
    s3 = boto3.client("s3", endpoint_url=s3_url)
    sagemaker = boto3.client("sagemaker", endpoint_url=sagemaker_url)
    runtime = boto3.client("sagemaker-runtime", endpoint_url=sagemaker_url)
    with tempfile.TemporaryDirectory(prefix="modeldrop-quickstart-") as build:
        tarball = build_sklearn_iris(build)
        expected = predict_in_process(tarball, iris_sample())
        s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(tarball), bucket, f"models/{name}/model.tar.gz")

    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{bucket}/models/{name}/model.tar.gz",
            # What the scikit-learn image needs to import code/inference.py (the SDK sets the same).
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
        },
        ExecutionRoleArn=ROLE_ARN,
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    started = time.monotonic()
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1})
    deploy_s = time.monotonic() - started

    started = time.monotonic()
    response = runtime.invoke_endpoint(
        EndpointName=name,
        Body=json.dumps(iris_sample()),
        ContentType="application/json",
        Accept="application/json",
    )
    answer = json.loads(response["Body"].read())
    cold_ms = (time.monotonic() - started) * 1000
    started = time.monotonic()
    runtime.invoke_endpoint(EndpointName=name, Body=json.dumps(iris_sample()), ContentType="application/json")
    warm_ms = (time.monotonic() - started) * 1000
    return {
        "endpoint": name,
        "answer": answer,
        "in_process": expected,
        "same": answer == expected,
        "deploy_s": round(deploy_s, 3),
        "cold_invoke_ms": round(cold_ms, 1),
        "warm_invoke_ms": round(warm_ms, 1),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sagemaker-url", help="a running local SageMaker (or the local cloud's edge)")
    parser.add_argument("--s3-url", help="the S3 endpoint that local SageMaker reads ModelDataUrl from")
    args = parser.parse_args(argv)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if args.sagemaker_url and args.s3_url:
        print(json.dumps(run(args.sagemaker_url, args.s3_url), indent=2))
        return
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    moto.start()
    s3_url = f"http://127.0.0.1:{moto.get_host_and_port()[1]}"
    with tempfile.TemporaryDirectory(prefix="modeldrop-quickstart-state-") as state:
        server = start_in_thread(
            LocalSageMakerSettings(state_dir=Path(state), s3_endpoint_url=s3_url, port=0)
        )
        try:
            print(json.dumps(run(server.url, s3_url), indent=2))
        finally:
            server.stop()
            moto.stop()


if __name__ == "__main__":
    main()
