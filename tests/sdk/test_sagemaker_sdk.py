"""SageMaker Python SDK v2 paths (issue 13): SKLearnModel by its default sourcedir.tar.gz path, with
network isolation (code repacked under code/), an entry point not named inference.py, and a plain
Model with an image URI; each deployed serverless, predicted, deleted. What the SDK sends is
checked against sagemaker-python-sdk v2 src/sagemaker/sklearn/model.py (prepare_container_def) and
src/sagemaker/model.py (_upload_code, _script_mode_env_vars); what the endpoint answers against the
scikit-learn container (aws/sagemaker-scikit-learn-container src/sagemaker_sklearn_container/serving.py
on sagemaker-containers 2.8.6.post2 _transformer.py, _encoders.py) and the model's own in-process
predictions.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
from modeldrop_local.example_models import build_sklearn_iris, iris_sample
from modeldrop_local.packaging import build_model_tarball

from tests.standalone_sagemaker import ROLE_ARN, SKLEARN_IMAGE, Cloud, run_json, venv_python

pytestmark = pytest.mark.sdk

BUCKET = "sdk-models"
TESTS_DIR = Path(__file__).parent
CLASS_NAMES = ["setosa", "versicolor", "virginica"]  # load_iris().target_names

# The user's entry points, as a user writes them for the scikit-learn image (it has no default model_fn).
# predict_fn answers class probabilities where the image's default predict_fn (and any built-in loader)
# would answer labels: an answer of probabilities proves this script was the one imported.
INFERENCE_PY = """\
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    return model.predict_proba(data)
"""

SERVE_PY = f"""\
import json
import os

import joblib

NAMES = {CLASS_NAMES!r}


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    return [NAMES[int(label)] for label in model.predict(data)]


def output_fn(prediction, accept):
    return json.dumps({{"species": prediction}}), "application/json"
"""


@pytest.fixture(scope="module")
def sdk_results(cloud: Cloud, build_dir: Path) -> dict[str, Any]:
    weights_only = build_sklearn_iris(build_dir / "weights")  # model.joblib alone
    code_dir = build_dir / "code"
    code_dir.mkdir()
    (code_dir / "inference.py").write_text(INFERENCE_PY)
    (code_dir / "serve.py").write_text(SERVE_PY)
    with tarfile.open(weights_only) as archive:
        archive.extract("model.joblib", build_dir / "artifact", filter="data")
    with_code = build_model_tarball(
        [build_dir / "artifact" / "model.joblib"],
        build_dir / "with-code.tar.gz",
        inference_py=code_dir / "inference.py",
    )
    s3 = boto3.client("s3", endpoint_url=cloud.s3_url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(weights_only), BUCKET, "weights/model.tar.gz")
    requests: list[dict[str, Any]] = []
    common = {"bucket": BUCKET, "role": ROLE_ARN, "rows": iris_sample(), "code_dir": str(code_dir)}
    for case in ("sklearn_sourcedir", "sklearn_network_isolation", "sklearn_serve_py"):
        requests.append(
            {
                **common,
                "case": case,
                "endpoint": case.replace("_", "-"),
                "model_data": f"s3://{BUCKET}/weights/model.tar.gz",
            }
        )
    s3.upload_file(str(with_code), BUCKET, "with-code/model.tar.gz")
    requests.append(
        {
            **common,
            "case": "image_uri",
            "endpoint": "image-uri",
            "image": SKLEARN_IMAGE,
            "model_data": f"s3://{BUCKET}/with-code/model.tar.gz",
            # What the SDK's FrameworkModel sets for a repacked model (src/sagemaker/model.py).
            "env": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        }
    )
    requests.append(
        {
            **common,
            "case": "image_uri_no_program",
            "endpoint": "image-uri-no-program",
            "image": SKLEARN_IMAGE,
            "model_data": f"s3://{BUCKET}/weights/model.tar.gz",
        }
    )
    env = {**cloud.client_env(), "SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
    results: dict[str, Any] = run_json(venv_python(".venv-sdk"), TESTS_DIR / "driver.py", requests, env, 240)
    model = joblib.load(build_dir / "artifact" / "model.joblib")
    rows = np.asarray(iris_sample())
    results["_labels"] = model.predict(rows).tolist()
    # NPY reaches predict_fn as sent (float64); JSON and CSV are cast to float32 by the image's
    # default_input_fn (serving.py: `astype(np.float32) if content_type in UTF8_TYPES`).
    results["_proba_npy"] = model.predict_proba(rows).tolist()
    results["_proba_json"] = model.predict_proba(rows.astype(np.float32)).tolist()
    return results


def _assert_same_probabilities(served: Any, expected: list[list[float]]) -> None:
    # The endpoint computes in the image's environment (scikit-learn 1.2.1), the expectation here in
    # .venv's: the same model, but the last bit of a softmax may differ between the two builds.
    np.testing.assert_allclose(np.asarray(served), np.asarray(expected), rtol=1e-12, atol=0)


def _case(results: dict[str, Any], case: str) -> dict[str, Any]:
    result: dict[str, Any] = results[case]
    assert "error" not in result, result["error"]
    return result


def _not_found_after_delete(result: dict[str, Any]) -> None:
    assert result["after_delete"] == "ValidationException", result["after_delete"]


def test_sklearn_model_default_path_uploads_sourcedir_and_serves(sdk_results: dict[str, Any]) -> None:
    result = _case(sdk_results, "sklearn_sourcedir")
    environment = result["container"]["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"].startswith(f"s3://{BUCKET}/")
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"].endswith("/sourcedir.tar.gz")
    assert result["container"]["ModelDataUrl"] == f"s3://{BUCKET}/weights/model.tar.gz"  # weights only
    assert (result["status"], result["failure_reason"]) == ("InService", None)
    _assert_same_probabilities(result["prediction"], sdk_results["_proba_npy"])
    _not_found_after_delete(result)


def test_sklearn_model_with_network_isolation_repacks_code(sdk_results: dict[str, Any]) -> None:
    result = _case(sdk_results, "sklearn_network_isolation")
    assert result["network_isolation"] is True
    assert result["container"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert result["container"]["ModelDataUrl"] != f"s3://{BUCKET}/weights/model.tar.gz"  # the repacked copy
    assert (result["status"], result["failure_reason"]) == ("InService", None)
    _assert_same_probabilities(result["prediction"], sdk_results["_proba_npy"])
    _not_found_after_delete(result)


def test_entry_point_not_named_inference_py_is_the_one_served(sdk_results: dict[str, Any]) -> None:
    result = _case(sdk_results, "sklearn_serve_py")
    assert result["container"]["Environment"]["SAGEMAKER_PROGRAM"] == "serve.py"
    assert (result["status"], result["failure_reason"]) == ("InService", None)
    # serve.py's predict_fn names the classes: a built-in loader would answer the bare labels.
    assert result["prediction"] == {"species": [CLASS_NAMES[label] for label in sdk_results["_labels"]]}
    _not_found_after_delete(result)


def test_model_with_image_uri_and_repacked_code(sdk_results: dict[str, Any]) -> None:
    result = _case(sdk_results, "image_uri")
    assert result["container"]["Image"] == SKLEARN_IMAGE
    assert (result["status"], result["failure_reason"]) == ("InService", None)
    _assert_same_probabilities(result["prediction"], sdk_results["_proba_json"])  # JSON in, JSON out
    _not_found_after_delete(result)


def test_model_on_sklearn_image_without_program_fails_as_on_aws(sdk_results: dict[str, Any]) -> None:
    """No SAGEMAKER_PROGRAM: the real image's /ping answers 500 (serving.py builds the app, and imports
    the user module, on the first request), so CreateEndpoint ends Failed."""
    result = _case(sdk_results, "image_uri_no_program")
    assert result["status"] == "Failed"
    assert "SAGEMAKER_PROGRAM" in (result["failure_reason"] or "")
    _not_found_after_delete(result)
