"""User code imports sagemaker_containers on the scikit-learn image, as it can on AWS.

The sagemaker-scikit-learn:1.2-1 image serves with sagemaker-containers 2.8.6.post2
(aws/sagemaker-scikit-learn-container requirements.txt at v1.2-1),
and AWS's own scikit-learn examples write `output_fn` with it:
`worker.Response(encoders.encode(prediction, accept), mimetype=accept)`. The local image environment
(local/modeldrop_local/sagemaker/images/sklearn-1.2-1.lock) installs the real package, and the answer to
a Response a handler returns is what Flask sends: its status, body and Content-Type
(sagemaker-containers `_transformer.py` transform() returns a non-tuple result as is).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

from modeldrop_local import example_models
from modeldrop_local.sagemaker.worker import Worker

from tests.integration.worker.conftest import SKLEARN_IMAGE, extract, iris_joblib_bytes, write_tarball
from tests.integration.worker.test_container_profiles import SDK_ENV, expected_predictions

ROWS = example_models.iris_payload(3)
# The output_fn of AWS's scikit-learn examples, on the image's own encoders and Response.
WORKER_RESPONSE_INFERENCE = """
import os

import joblib
from sagemaker_containers.beta.framework import content_types, encoders, worker


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    if accept == content_types.NPY:
        return worker.Response("no arrays here", status=406, mimetype="text/plain")
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
"""


def sklearn_model(tmp_path: Path, inference_py: str) -> Path:
    """An extracted iris tarball: model.joblib and code/inference.py."""
    files = {"model.joblib": iris_joblib_bytes(), "code/inference.py": textwrap.dedent(inference_py)}
    tarball = write_tarball(tmp_path / "tar", files)
    return extract(tarball, tarball.parent / "model")


def test_output_fn_with_sagemaker_containers_worker_response_is_answered_as_flask_sends_it(
    start: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given an inference.py that imports sagemaker_containers.beta.framework and answers with its Response
    model_dir = sklearn_model(tmp_path, WORKER_RESPONSE_INFERENCE)
    worker = start(model_dir, image=SKLEARN_IMAGE, environment=SDK_ENV)
    body = json.dumps(ROWS).encode()
    predictions = expected_predictions(ROWS)

    # When invoked for JSON, Then the body is _encoders.array_to_json's and the type the mimetype given
    answer = worker.invoke(body, "application/json", "application/json", "r1")
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert answer.body == json.dumps(predictions).encode()

    # And for CSV, werkzeug adds the charset to the text/* mimetype, as it does in the image
    csv_answer = worker.invoke(body, "application/json", "text/csv", "r2")
    assert (csv_answer.status, csv_answer.content_type) == (200, "text/csv; charset=utf-8")
    assert csv_answer.body == "".join(f"{value}\n" for value in predictions).encode()

    # And a Response with its own status is sent with that status, body and type
    refused = worker.invoke(body, "application/json", "application/x-npy", "r3")
    assert (refused.status, refused.content_type, refused.body) == (
        406,
        "text/plain; charset=utf-8",
        b"no arrays here",
    )


def test_sagemaker_containers_finds_the_model_under_its_opt_ml(
    start: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given a transform_fn that reports where sagemaker_containers' environment puts the model and the code
    inference = """
    import json
    import os

    from sagemaker_containers.beta.framework import env


    def model_fn(model_dir):
        return model_dir


    def transform_fn(model, body, content_type, accept):
        serving = env.ServingEnv()
        found = {
            "model_dir": os.path.samefile(serving.model_dir, model),
            "model_joblib": os.path.isfile(os.path.join(serving.model_dir, "model.joblib")),
            "code": os.path.isfile(os.path.join(env.code_dir, "inference.py")),
            "module_name": serving.module_name,
        }
        return json.dumps(found), "application/json"
    """
    worker = start(sklearn_model(tmp_path, inference), image=SKLEARN_IMAGE, environment=SDK_ENV)

    # When invoked
    answer = worker.invoke(b"[]", "application/json", "application/json", "r1")

    # Then /opt/ml/model is the model and /opt/ml/code the submit directory, as in the container
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {
        "model_dir": True,
        "model_joblib": True,
        "code": True,
        "module_name": "inference",
    }


def test_the_images_defaults_decode_and_encode_with_the_real_sagemaker_containers(
    start: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given a model with only a model_fn (the image's default input_fn, predict_fn and output_fn serve)
    # whose model reports which codecs the worker's defaults hold
    inference = """
    import os
    import sys

    import joblib


    class Reporting:
        def __init__(self, model):
            self.model = model

        def predict(self, rows):
            from sagemaker_containers import _encoders, _errors

            defaults = sys.modules["modeldrop_local.sagemaker.worker.sklearn_container"].IMAGE_ENCODERS
            real = (_encoders.decode, _encoders.encode, _errors.UnsupportedFormatError)
            assert tuple(defaults) == real, defaults
            return self.model.predict(rows)


    def model_fn(model_dir):
        return Reporting(joblib.load(os.path.join(model_dir, "model.joblib")))
    """
    files = {"model.joblib": iris_joblib_bytes(), "code/inference.py": textwrap.dedent(inference)}
    tarball = write_tarball(tmp_path / "tar", files)
    worker = start(extract(tarball, tarball.parent / "model"), image=SKLEARN_IMAGE, environment=SDK_ENV)
    body = json.dumps(ROWS).encode()

    # When invoked for CSV
    answer = worker.invoke(body, "application/json", "text/csv", "r1")

    # Then the real package decoded the JSON and encoded the CSV: the image's own bytes
    assert (answer.status, answer.content_type) == (200, "text/csv; charset=utf-8"), answer.body
    assert answer.body == "".join(f"{value}\n" for value in expected_predictions(ROWS)).encode()
