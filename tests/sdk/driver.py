"""Drive the local cloud with the SageMaker Python SDK v2 (runs under .venv-sdk/bin/python).

Reads one JSON request on stdin: {"case": ..., "bucket": ..., "model_data": s3 URL, "code_dir": path,
"rows": [[...]], "endpoint": name, "role": ARN, "image": URI}. Writes one JSON document on stdout:
what CreateModel received, the endpoint's final status, the prediction (or the error) and what
DescribeEndpoint says after delete. The service URLs come from AWS_ENDPOINT_URL_* (tests/sdk/conftest.py).

The product's .venv never imports this file: the SDK (pandas, numpy, its own boto3) lives in .venv-sdk.
"""

# ruff: noqa: E402 - stdout is set aside before the SDK is imported
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

# The SDK logs to stdout (sagemaker.config INFO ...): the JSON answer keeps the real stdout to itself.
ANSWER = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr

import boto3
import numpy as np
import sagemaker
from botocore.exceptions import ClientError
from sagemaker.deserializers import JSONDeserializer
from sagemaker.exceptions import UnexpectedStatusException
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import JSONSerializer
from sagemaker.serverless import ServerlessInferenceConfig
from sagemaker.sklearn import SKLearnModel

# The SDK's own poll is 30 s (Session.wait_for_endpoint's default); the local endpoint settles in ~1 s.
POLL_S = 0.2


def session(bucket: str) -> sagemaker.Session:
    boto_session = boto3.Session(region_name=os.environ["AWS_DEFAULT_REGION"])
    # A named default bucket: the SDK then never asks STS for the account to name one.
    return sagemaker.Session(boto_session=boto_session, default_bucket=bucket)


def build_model(request: dict[str, Any], sm_session: sagemaker.Session) -> Model:
    case = request["case"]
    common: dict[str, Any] = {
        "model_data": request["model_data"],
        "role": request["role"],
        "sagemaker_session": sm_session,
        "name": f"{request['endpoint']}-model",
    }
    if case == "sklearn_sourcedir":  # the SDK's default path: code uploaded apart as sourcedir.tar.gz
        return SKLearnModel(
            entry_point="inference.py", source_dir=request["code_dir"], framework_version="1.2-1", **common
        )
    if case == "sklearn_network_isolation":  # code repacked into the model tarball under code/
        return SKLearnModel(
            entry_point="inference.py",
            source_dir=request["code_dir"],
            framework_version="1.2-1",
            enable_network_isolation=True,
            **common,
        )
    if case == "sklearn_serve_py":  # an entry point not named inference.py
        return SKLearnModel(
            entry_point="serve.py",
            source_dir=request["code_dir"],
            framework_version="1.2-1",
            enable_network_isolation=True,
            **common,
        )
    if case in {"image_uri", "image_uri_no_program"}:  # a plain Model: the image and env are the caller's
        return Model(
            image_uri=request["image"],
            env=request.get("env") or {},
            predictor_cls=Predictor,
            **common,
        )
    raise SystemExit(f"unknown case {case!r}")


def run(request: dict[str, Any]) -> dict[str, Any]:
    sm_session = session(request["bucket"])
    model = build_model(request, sm_session)
    endpoint = request["endpoint"]
    result: dict[str, Any] = {"case": request["case"]}
    predictor = model.deploy(
        endpoint_name=endpoint,
        serverless_inference_config=ServerlessInferenceConfig(memory_size_in_mb=2048, max_concurrency=2),
        wait=False,
    )
    sm = sm_session.sagemaker_client
    described = sm.describe_model(ModelName=model.name)
    result["container"] = described["PrimaryContainer"]
    result["network_isolation"] = described.get("EnableNetworkIsolation", False)
    try:
        sm_session.wait_for_endpoint(endpoint, poll=POLL_S)
        result["status"] = "InService"
    except UnexpectedStatusException:
        pass
    description = sm.describe_endpoint(EndpointName=endpoint)
    result["status"] = description["EndpointStatus"]
    result["failure_reason"] = description.get("FailureReason")
    if result["status"] == "InService":
        rows = request["rows"]
        if request["case"] in {"sklearn_sourcedir", "sklearn_network_isolation"}:
            # SKLearnPredictor's own serializers: NPY in, NPY out.
            answer = predictor.predict(np.asarray(rows))
            result["prediction"] = np.asarray(answer).tolist()
        elif request["case"] == "sklearn_serve_py":
            predictor.deserializer = JSONDeserializer()  # serve.py's output_fn answers JSON
            result["prediction"] = predictor.predict(np.asarray(rows))
        else:
            predictor.serializer = JSONSerializer()
            predictor.deserializer = JSONDeserializer()
            result["prediction"] = predictor.predict(rows)
    # The SDK's order: delete_model reads the endpoint config, which delete_endpoint removes.
    predictor.delete_model()
    predictor.delete_endpoint()
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    try:
        after = sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    except ClientError as error:
        after = error.response["Error"]["Code"]
    result["after_delete"] = after
    return result


def main() -> None:
    """One request per case; a case that raises is reported with its traceback, the others still run."""
    results = {}
    for request in json.load(sys.stdin):
        try:
            results[request["case"]] = run(request)
        except Exception:
            results[request["case"]] = {"case": request["case"], "error": traceback.format_exc()}
    json.dump(results, ANSWER, default=str)
    ANSWER.flush()


if __name__ == "__main__":
    main()
