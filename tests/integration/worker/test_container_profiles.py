"""Each prebuilt image served as its real serving code serves it (worker/profiles.py and its sources).

Every expectation cites the serving code it restates (see the modules' docstrings):
aws/sagemaker-scikit-learn-container serving.py on sagemaker-containers
2.8.6.post2, aws/sagemaker-xgboost-container algorithm_mode, aws/sagemaker-tensorflow-serving-container.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from modeldrop.frameworks import Framework, image_for
from modeldrop_local import example_models
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerStartError

from tests.integration.worker.conftest import (
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    SpecFactory,
    extract,
    iris_joblib_bytes,
    write_tarball,
)

ROWS = example_models.iris_payload(3)
SDK_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
MODEL_FN_ONLY = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


@pytest.fixture
def sklearn_model(tmp_path: Path) -> Callable[..., Path]:
    """An extracted iris tarball: model.joblib plus the given code/ files."""

    def build(**code: str) -> Path:
        files: dict[str, bytes | str] = {"model.joblib": iris_joblib_bytes()}
        files.update({f"code/{name}": textwrap.dedent(text) for name, text in code.items()})
        tarball = write_tarball(tmp_path / f"tar-{len(list(tmp_path.iterdir()))}", files)
        return extract(tarball, tarball.parent / "model")

    return build


def expected_predictions(rows: list[list[float]]) -> list[int]:
    import io

    import joblib
    import numpy as np

    model = joblib.load(io.BytesIO(iris_joblib_bytes()))
    return [int(value) for value in model.predict(np.asarray(rows, dtype=np.float32))]


# ------------------------------------------------------------------------------- scikit-learn


def test_sklearn_image_without_program_fails_its_health_check_and_says_what_to_set(
    launcher: WorkerLauncher, make_spec: SpecFactory, sklearn_model: Callable[..., Path]
) -> None:
    # Given model.joblib only, on the scikit-learn image, with no environment (serving.py main():
    # ServingEnv().module_name is None, the app cannot be built, /ping answers 500)
    spec = make_spec(sklearn_model(), image=SKLEARN_IMAGE)

    # When it is prepared, Then it fails and names the variables to set
    with pytest.raises(WorkerStartError, match="SAGEMAKER_PROGRAM is not set") as raised:
        launcher.prepare(spec)
    assert "SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code" in raised.value.reason


def test_sklearn_image_has_no_default_model_fn(
    launcher: WorkerLauncher, make_spec: SpecFactory, sklearn_model: Callable[..., Path]
) -> None:
    # Given an inference.py without model_fn (default_model_fn raises NotImplementedError)
    model_dir = sklearn_model(
        **{"inference.py": "def predict_fn(data, model):\n    return model.predict(data)\n"}
    )

    # When it is prepared on the scikit-learn image, Then it fails at /ping with the real reason
    with pytest.raises(WorkerStartError, match=r"defines no model_fn.*NotImplementedError"):
        launcher.prepare(make_spec(model_dir, image=SKLEARN_IMAGE, environment=SDK_ENV))


def test_sklearn_image_serves_model_fn_with_its_default_encoders(
    start: Callable[..., Worker], sklearn_model: Callable[..., Path]
) -> None:
    # Given model_fn only (the image's default_input_fn/predict_fn/output_fn do the rest)
    worker = start(sklearn_model(**{"inference.py": MODEL_FN_ONLY}), image=SKLEARN_IMAGE, environment=SDK_ENV)
    body = json.dumps(ROWS).encode()

    # When invoked with JSON and Accept */* (resolved to SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: JSON)
    answer = worker.invoke(body, "application/json", "*/*", "r1")
    # Then the predictions come back as sagemaker-containers' array_to_json writes them
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert answer.body == json.dumps(expected_predictions(ROWS)).encode()

    # And CSV out is one value per row, labelled as Flask labels a text/* mimetype
    csv_answer = worker.invoke(body, "application/json", "text/csv", "r2")
    assert (csv_answer.status, csv_answer.content_type) == (200, "text/csv; charset=utf-8")
    assert csv_answer.body.decode().splitlines() == [str(value) for value in expected_predictions(ROWS)]

    # And a multi-row CSV request is decoded and cast to float32
    csv_rows = "\n".join(",".join(str(cell) for cell in row) for row in ROWS).encode()
    assert json.loads(worker.invoke(csv_rows, "text/csv", "application/json", "r3").body) == (
        expected_predictions(ROWS)
    )


@pytest.mark.parametrize(
    ("body", "content_type", "why"),
    [
        # _encoders.decode looks the content type up as an exact key
        (json.dumps(ROWS), "application/json; charset=utf-8", "UnsupportedFormatError"),
        # json_to_numpy is np.array(json.loads(...)): an object is not understood
        (json.dumps({"instances": ROWS}), "application/json", "float"),
        # csv_to_numpy squeezes one row to 1-D, which predict refuses
        ("5.1,3.5,1.4,0.2", "text/csv", "2D array"),
    ],
)
def test_sklearn_image_refuses_what_its_decoders_do_not_understand_with_500(
    start: Callable[..., Worker], sklearn_model: Callable[..., Path], body: str, content_type: str, why: str
) -> None:
    # Given the model_fn-only model on the scikit-learn image
    worker = start(sklearn_model(**{"inference.py": MODEL_FN_ONLY}), image=SKLEARN_IMAGE, environment=SDK_ENV)

    # When invoked, Then the error escapes as Flask's 500 (every handler is wrapped in ClientError)
    answer = worker.invoke(body.encode(), content_type, "application/json", "r")
    assert answer.status == 500
    assert why in answer.body.decode()


def test_sklearn_image_labels_a_str_from_output_fn_text_html(
    start: Callable[..., Worker], sklearn_model: Callable[..., Path]
) -> None:
    # Given an output_fn that returns str (Flask answers a str view result as text/html)
    code = MODEL_FN_ONLY + "\n\ndef output_fn(prediction, accept):\n    return str(prediction.tolist())\n"
    worker = start(sklearn_model(**{"inference.py": code}), image=SKLEARN_IMAGE, environment=SDK_ENV)

    answer = worker.invoke(json.dumps(ROWS).encode(), "application/json", "application/json", "r")

    assert (answer.status, answer.content_type) == (200, "text/html; charset=utf-8")
    assert answer.body == str(expected_predictions(ROWS)).encode()


def test_default_invocations_accept_resolves_star_star(
    start: Callable[..., Worker], sklearn_model: Callable[..., Path]
) -> None:
    # Given SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv (sagemaker-containers _worker.py Request.accept)
    environment = {**SDK_ENV, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}
    worker = start(
        sklearn_model(**{"inference.py": MODEL_FN_ONLY}), image=SKLEARN_IMAGE, environment=environment
    )

    # When Accept is */* or absent, Then the answer is CSV
    for accept in ("*/*", ""):
        answer = worker.invoke(json.dumps(ROWS).encode(), "application/json", accept, "r")
        assert answer.content_type == "text/csv; charset=utf-8", accept


def test_program_by_any_name_is_imported_and_its_handlers_serve(
    start: Callable[..., Worker], sklearn_model: Callable[..., Path]
) -> None:
    # Given serve.py (not inference.py) whose predict_fn answers class names, and SAGEMAKER_PROGRAM=serve.py
    serve_py = MODEL_FN_ONLY + textwrap.dedent(
        """

        def predict_fn(data, model):
            return [["setosa", "versicolor", "virginica"][int(k)] for k in model.predict(data)]
        """
    )
    environment = {**SDK_ENV, "SAGEMAKER_PROGRAM": "serve.py"}
    worker = start(sklearn_model(**{"serve.py": serve_py}), image=SKLEARN_IMAGE, environment=environment)

    # When invoked, Then the answer is the script's, not a built-in predict()
    answer = worker.invoke(json.dumps(ROWS).encode(), "application/json", "application/json", "r")
    names = ["setosa", "versicolor", "virginica"]
    assert json.loads(answer.body) == [names[k] for k in expected_predictions(ROWS)]


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {**SDK_ENV, "SAGEMAKER_PROGRAM": "missing.py"},
            r"no module 'missing' \(missing.py\) in the submit directory",
        ),
        ({"SAGEMAKER_PROGRAM": "inference.py"}, r"/opt/ml/code, which is empty in a serving container"),
    ],
)
def test_a_named_program_that_is_not_there_fails_and_never_falls_back(
    launcher: WorkerLauncher,
    make_spec: SpecFactory,
    sklearn_model: Callable[..., Path],
    environment: dict[str, str],
    message: str,
) -> None:
    model_dir = sklearn_model(**{"inference.py": MODEL_FN_ONLY})
    with pytest.raises(WorkerStartError, match=message):
        launcher.prepare(make_spec(model_dir, image=SKLEARN_IMAGE, environment=environment))


def test_a_custom_image_keeps_the_generic_contract(
    start: Callable[..., Worker], sklearn_model: Callable[..., Path]
) -> None:
    # Given model.joblib only, on a custom image: modeldrop's built-in loader from the files
    worker = start(sklearn_model(), environment={})
    answer = worker.invoke(json.dumps(ROWS).encode(), "application/json", "application/json", "r")
    assert json.loads(answer.body) == expected_predictions(ROWS)


# ------------------------------------------------------------------------------------ XGBoost


@pytest.fixture(scope="module")
def xgboost_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("xgb")
    model_dir = extract(example_models.build_xgboost_iris(root / "tar"), root / "model")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text("raise SystemExit('code/ must be ignored')\n")
    return model_dir


def test_xgboost_algorithm_mode_answers_csv_and_ignores_code(
    start: Callable[..., Worker], xgboost_dir: Path, tmp_path: Path
) -> None:
    # Given the XGBoost example with a code/ folder, on the XGBoost image, no SAGEMAKER_PROGRAM
    worker = start(xgboost_dir, image=XGBOOST_IMAGE)
    csv_rows = "\n".join(",".join(str(cell) for cell in row) for row in ROWS).encode()
    expected = example_models.predict_in_process(xgboost_dir.parent / "tar" / "model.tar.gz", ROWS)

    # When invoked with CSV and Accept */*, Then the scores come back comma-joined as text/csv
    answer = worker.invoke(csv_rows, "text/csv", "*/*", "r1")
    assert (answer.status, answer.content_type) == (200, "text/csv; charset=utf-8")
    scores = [float(value) for value in answer.body.decode().split(",")]
    assert len(scores) == len(ROWS)

    # And JSON Accept gives {"predictions": [{"score": ...}]}
    as_json = json.loads(worker.invoke(csv_rows, "text/csv", "application/json", "r2").body)
    assert [item["score"] for item in as_json["predictions"]] == scores
    assert len(expected) == len(scores)

    # And a JSON body is 415, as the algorithm's get_content_type refuses it (data_utils.py's UserError,
    # raised inside serve_utils.parse_content_data)
    refused = worker.invoke(json.dumps(ROWS).encode(), "application/json", "*/*", "r3")
    assert refused.status == 415
    assert "application/json is not an accepted ContentType" in refused.body.decode()


# --------------------------------------------------------------------------------- TensorFlow


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        ("saved_model.pb", "no SavedModel bundles found!"),
        ("1/saved_model.pb", "TensorFlow Serving is not emulated"),
        ("iris/7/saved_model.pb", "TensorFlow Serving is not emulated"),
    ],
)
def test_tensorflow_layout_is_checked_as_tensorflow_serving_does(
    launcher: WorkerLauncher, make_spec: SpecFactory, tmp_path: Path, layout: str, reason: str
) -> None:
    model_dir = tmp_path / "model"
    (model_dir / layout).parent.mkdir(parents=True, exist_ok=True)
    (model_dir / layout).write_bytes(b"\x08\x01")
    image = image_for(Framework.TENSORFLOW, None, "us-east-1")
    with pytest.raises(WorkerStartError, match=reason):
        launcher.prepare(make_spec(model_dir, image=image))


# ------------------------------------------------------------------------------- PyTorch (inference toolkit)

PYTORCH_IMAGE = image_for(Framework.PYTORCH, None, "us-east-1")
# Handlers that answer with what input_fn was given: its Python type and its value, as JSON.
ECHO_INPUT_TYPE = """
import json


def model_fn(model_dir):
    return "no model needed"


def input_fn(data, content_type):
    return {"type": type(data).__name__, "value": data if isinstance(data, str) else data.hex()}


def predict_fn(data, model):
    return data


def output_fn(prediction, accept):
    return json.dumps(prediction)
"""


@pytest.mark.parametrize(
    ("body", "content_type", "received"),
    [
        # sagemaker-inference-toolkit src/sagemaker_inference/transformer.py (Transformer.transform):
        # `if content_type in content_types.UTF8_TYPES: input_data = input_data.decode("utf-8")`, and
        # content_types.py: UTF8_TYPES = [JSON, CSV]; decoder.py's _json_to_numpy / _csv_to_numpy then
        # take that text. Every other type reaches input_fn as the raw bytes.
        (b"[[5.1, 3.5, 1.4, 0.2]]", "application/json", {"type": "str", "value": "[[5.1, 3.5, 1.4, 0.2]]"}),
        (
            b"5.1,3.5,1.4,0.2\n6.7,3.1,4.4,1.4",
            "text/csv",
            {"type": "str", "value": "5.1,3.5,1.4,0.2\n6.7,3.1,4.4,1.4"},
        ),
        (b"\x93NUMPY\x01\x00", "application/x-npy", {"type": "bytes", "value": "934e554d5059" + "0100"}),
        (b"\x00\xffraw", "application/octet-stream", {"type": "bytes", "value": "00ff726177"}),
    ],
)
def test_pytorch_image_hands_json_and_csv_to_input_fn_as_str_and_the_rest_as_bytes(
    start: Callable[..., Worker],
    tmp_path: Path,
    body: bytes,
    content_type: str,
    received: dict[str, str],
) -> None:
    # Given the PyTorch image with an inference.py whose input_fn reports what it was given
    tarball = write_tarball(tmp_path / "tar", {"code/inference.py": ECHO_INPUT_TYPE})
    worker = start(extract(tarball, tmp_path / "model"), image=PYTORCH_IMAGE, environment=SDK_ENV)
    # When invoked with that content type
    answer = worker.invoke(body, content_type, "application/json", "r1")
    # Then input_fn received text for JSON and CSV, the body's bytes for anything else
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == received
