"""The local SageMaker judges a model against its whole container definition, as SageMaker does.

Sources: aws/sagemaker-scikit-learn-container serving.py (no default module, no default model_fn);
sagemaker-containers 2.8.6.post2 _server.py / _modules.py / _files.py (SAGEMAKER_SUBMIT_DIRECTORY may
be an s3:// tar.gz, downloaded and extracted at start); sagemaker-python-sdk v2 (SKLearnModel uploads
the code as sourcedir.tar.gz and ships a weights-only model tarball).
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import boto3
import pytest
from modeldrop_local.example_models import iris_sample

from tests.integration.local_sagemaker.conftest import (
    BUCKET,
    SKLEARN_IMAGE,
    ModelUrls,
    create_serverless_endpoint,
    invoke_json,
)
from tests.standalone_sagemaker import wait_until_settled

SERVE_PY = b"""
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_hand_made_sklearn_model_without_environment_fails_as_on_aws(
    sm: Any, model_urls: ModelUrls
) -> None:
    # Given model.joblib only, created through boto3 on the scikit-learn image with no environment
    create_serverless_endpoint(sm, "ep-no-program", model_urls.iris, image=SKLEARN_IMAGE)

    # When it settles, Then it is Failed with SageMaker's health-check reason and what to set
    description = wait_until_settled(sm, "ep-no-program")
    assert description["EndpointStatus"] == "Failed"
    reason = description["FailureReason"]
    assert reason.startswith(
        "The primary container for production variant AllTraffic did not pass the ping health check. "
        "Please check CloudWatch logs for this endpoint."
    )
    assert "SAGEMAKER_PROGRAM is not set" in reason


def test_weights_only_model_with_an_s3_source_dir_serves_the_sdk_way(
    sm: Any, runtime: Any, model_urls: ModelUrls, s3_endpoint: str, tmp_path: Any
) -> None:
    # Given the SDK's default layout: the code in s3://.../sourcedir.tar.gz and a model tarball of weights
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="sdk/sourcedir.tar.gz", Body=tar_gz({"serve.py": SERVE_PY}))
    environment = {
        "SAGEMAKER_PROGRAM": "serve.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/sdk/sourcedir.tar.gz",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": "us-east-1",
    }
    create_serverless_endpoint(
        sm, "ep-sourcedir", model_urls.iris, image=SKLEARN_IMAGE, environment=environment
    )

    # When it settles, Then it is InService and answers the model's predictions
    assert wait_until_settled(sm, "ep-sourcedir")["EndpointStatus"] == "InService"
    assert invoke_json(runtime, "ep-sourcedir", iris_sample()) == model_urls.expected["iris"]
    # And Accept */* is resolved to application/json before the image's output_fn
    response = runtime.invoke_endpoint(
        EndpointName="ep-sourcedir",
        Body=json.dumps(iris_sample()),
        ContentType="application/json",
        Accept="*/*",
    )
    assert response["ContentType"] == "application/json"


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("sdk/missing.tar.gz", None, "Failed to download the source directory"),
        ("sdk/evil.tar.gz", tar_gz({"../evil.py": b"x"}), "is not a safe tar.gz archive"),
    ],
)
def test_a_bad_source_dir_fails_with_what_went_wrong(
    sm: Any, model_urls: ModelUrls, s3_endpoint: str, key: str, body: bytes | None, reason: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    if body is not None:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    name = f"ep-{key.split('/')[1].split('.')[0]}"
    environment = {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/{key}"}
    create_serverless_endpoint(sm, name, model_urls.iris, image=SKLEARN_IMAGE, environment=environment)

    description = wait_until_settled(sm, name)
    assert description["EndpointStatus"] == "Failed"
    assert reason in description["FailureReason"]
    assert "valid tar.gz archive: no model artifact" not in description["FailureReason"]
