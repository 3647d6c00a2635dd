"""The conformance table (issue 8): image family x tarball shape x request → what the real container
does, each deployment citing the source file its expectation was read from.

Kept as data: the test builds each shape, deploys it on the local SageMaker and checks the outcome;
for the scikit-learn image (and ONNX, which modeldrop hosts on it) it also runs the real serving stack
in-process (tests/conformance/oracle.py: sagemaker-containers 2.8.6.post2's Transformer, encoders and
Flask worker) and compares status, body bytes and Content-Type.

Bodies are named, not spelled: "json(labels)" is the image's JSON encoder applied to the model's labels
for the request's rows, computed in the test from the model itself (tests/conformance/test_conformance.py
`expected_body`).
"""

from __future__ import annotations

from dataclasses import dataclass

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310"
TENSORFLOW_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu"

# What the SageMaker Python SDK v2 sets for a repacked model (sagemaker-python-sdk src/sagemaker/model.py
# _script_mode_env_vars; sklearn/model.py prepare_container_def).
SDK_ENV = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "SAGEMAKER_REGION": "us-east-1",
}

SKLEARN_SERVING = (
    "aws/sagemaker-scikit-learn-container src/sagemaker_sklearn_container/serving.py (main, "
    "_user_module_transformer, default_*_fn) on sagemaker-containers 2.8.6.post2"
)
ENCODERS = "sagemaker-containers 2.8.6.post2 src/sagemaker_containers/_encoders.py"
WORKER = "sagemaker-containers 2.8.6.post2 src/sagemaker_containers/_worker.py (Request.accept, Response)"
TRANSFORMER = "sagemaker-containers 2.8.6.post2 src/sagemaker_containers/_transformer.py"
# Read at commit 0cccfed1 of algorithm_mode/serve.py (the newest stored copy; the 1.7-1 tag itself was not
# read): without SAGEMAKER_INFERENCE_OUTPUT the answer is the predictions joined by commas, as text/csv.
XGBOOST_SERVING = (
    "aws/sagemaker-xgboost-container src/sagemaker_xgboost_container/serving.py (main: no module_name → "
    "algorithm mode) and algorithm_mode/serve.py (invocations, parse_content_data)"
)

# ------------------------------------------------------------------------------------- user code
MODEL_FN = """\
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

PREDICT_FN_ONLY = """\
def predict_fn(data, model):
    return model.predict(data)
"""

TRANSFORM_FN = (
    MODEL_FN
    + """
import json

import numpy as np


def transform_fn(model, body, content_type, accept):
    rows = np.asarray(json.loads(body), dtype=float)
    return json.dumps({"labels": model.predict(rows).tolist(), "accept": accept}), accept
"""
)

TRANSFORM_AND_INPUT_FN = (
    TRANSFORM_FN
    + """

def input_fn(body, content_type):
    return body
"""
)

OUTPUT_FN_STR = (
    MODEL_FN
    + """
import json


def output_fn(prediction, accept):
    return json.dumps({"labels": prediction.tolist()})
"""
)

# The output_fn of AWS's scikit-learn examples: the image's own encoders and Response, imported by user code.
OUTPUT_FN_WORKER_RESPONSE = (
    MODEL_FN
    + """
from sagemaker_containers.beta.framework import content_types, encoders, worker


def output_fn(prediction, accept):
    if accept == content_types.NPY:
        return worker.Response("no arrays here", status=406, mimetype="text/plain")
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
"""
)

XGBOOST_SCRIPT = """\
def model_fn(model_dir):
    return "script"


def transform_fn(model, body, content_type, accept):
    return "from the script", "text/plain"
"""


@dataclass(frozen=True)
class Invoke:
    name: str
    body: str  # json_rows | csv_rows | csv_one_row | npy_rows | json_instances | recordio_rows
    content_type: str
    accept: str | None  # None: no Accept header
    status: int  # the container's status (the local SageMaker's OriginalStatusCode on a ModelError)
    response_type: str | None = None  # Content-Type of a 200
    response: str | None = None  # named body of a 200 (see module docstring)
    source: str = ""


@dataclass(frozen=True)
class Deployment:
    id: str
    image: str
    artifact: str  # sklearn | sklearn_numpy2 | onnx | xgboost | weights_npy
    code: str | None  # code/<program> source, or None
    env: dict[str, str]
    in_service: bool  # False: CreateEndpoint ends Failed (the real /ping does not answer 200)
    source: str
    reason_mentions: tuple[str, ...] = ()  # words a Failed endpoint's FailureReason must contain
    invokes: tuple[Invoke, ...] = ()
    program: str = "inference.py"  # the file name the code is stored under in code/
    oracle: bool = False  # the real serving stack runs here for this image (scikit-learn)


# JSON in, JSON out: the first JSON case, and alone where a deployment only has to show it serves.
JSON_IN_JSON_OUT = Invoke(
    "json-in-json-out",
    "json_rows",
    "application/json",
    "application/json",
    200,
    "application/json",
    "json(labels)",
    ENCODERS,
)


def _json_invokes() -> tuple[Invoke, ...]:
    return (
        JSON_IN_JSON_OUT,
        Invoke(
            "csv-in-csv-out",
            "csv_rows",
            "text/csv",
            "text/csv",
            200,
            "text/csv; charset=utf-8",
            "csv(labels)",
            f"{ENCODERS}; werkzeug adds the charset to text/*",
        ),
        Invoke(
            "npy-in-npy-out",
            "npy_rows",
            "application/x-npy",
            "application/x-npy",
            200,
            "application/x-npy",
            "npy(labels)",
            ENCODERS,
        ),
        Invoke(
            "json-in-csv-out",
            "json_rows",
            "application/json",
            "text/csv",
            200,
            "text/csv; charset=utf-8",
            "csv(labels)",
            ENCODERS,
        ),
        Invoke(
            "accept-any",
            "json_rows",
            "application/json",
            "*/*",
            200,
            "application/json",
            "json(labels)",
            f"{WORKER}: */* → SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        ),
        Invoke(
            "accept-absent",
            "json_rows",
            "application/json",
            None,
            200,
            "application/json",
            "json(labels)",
            WORKER,
        ),
        # The image's default input_fn is passed to Transformer explicitly, so error_wrapper turns
        # UnsupportedFormatError into ClientError: not the 415 branch, a 500.
        Invoke(
            "content-type-with-charset",
            "json_rows",
            "application/json; charset=utf-8",
            "application/json",
            500,
            source=f"{ENCODERS} decode (exact keys); {TRANSFORMER} error_wrapper",
        ),
        Invoke(
            "accept-unsupported",
            "json_rows",
            "application/json",
            "text/plain",
            500,
            source=f"{ENCODERS} encode (exact keys); {TRANSFORMER} error_wrapper",
        ),
        Invoke(
            "csv-one-row",
            "csv_one_row",
            "text/csv",
            "application/json",
            500,
            source=f"{ENCODERS} csv_to_numpy squeezes one row to 1-D; predict refuses it",
        ),
        Invoke(
            "json-instances",
            "json_instances",
            "application/json",
            "application/json",
            500,
            source=f"{ENCODERS} json_to_numpy: np.array(dict) is no table; {SKLEARN_SERVING} float32 cast",
        ),
    )


DEPLOYMENTS: tuple[Deployment, ...] = (
    # ---------------------------------------------------------------------------- scikit-learn image
    Deployment(
        "sklearn-artifact-only",
        SKLEARN_IMAGE,
        "sklearn",
        None,
        {},
        False,
        f"{SKLEARN_SERVING}: no SAGEMAKER_PROGRAM, the module import on the first request (/ping) raises",
        reason_mentions=("SAGEMAKER_PROGRAM",),
        oracle=True,
    ),
    Deployment(
        "onnx-artifact-only",
        SKLEARN_IMAGE,
        "onnx",
        None,
        {},
        False,
        f"{SKLEARN_SERVING}: the same image; nothing loads model.onnx without a user module",
        reason_mentions=("SAGEMAKER_PROGRAM",),
        oracle=True,
    ),
    Deployment(
        "sklearn-missing-model-fn",
        SKLEARN_IMAGE,
        "sklearn",
        PREDICT_FN_ONLY,
        SDK_ENV,
        False,
        f"{SKLEARN_SERVING}: default_model_fn → {TRANSFORMER} default_model_fn raises NotImplementedError",
        reason_mentions=("model_fn",),
        oracle=True,
    ),
    Deployment(
        "sklearn-program-not-found",
        SKLEARN_IMAGE,
        "sklearn",
        MODEL_FN,
        {**SDK_ENV, "SAGEMAKER_PROGRAM": "serve.py"},
        False,
        f"{SKLEARN_SERVING} import_module: importlib finds no module serve",
        reason_mentions=("serve",),
        oracle=True,
    ),
    Deployment(
        "sklearn-numpy2-pickle",
        SKLEARN_IMAGE,
        "sklearn_numpy2",
        MODEL_FN,
        SDK_ENV,
        False,
        f"{SKLEARN_SERVING}: model_fn runs at /ping; the image's numpy 1.24.1 (requirements.txt at v1.2-1) "
        "has no numpy._core, which a forest pickled under numpy 2 references",
        reason_mentions=("No module named 'numpy._core'",),
        oracle=True,
    ),
    Deployment(
        "sklearn-model-fn",
        SKLEARN_IMAGE,
        "sklearn",
        MODEL_FN,
        SDK_ENV,
        True,
        SKLEARN_SERVING,
        invokes=_json_invokes(),
        oracle=True,
    ),
    Deployment(
        "sklearn-model-fn-program-serve",
        SKLEARN_IMAGE,
        "sklearn",
        MODEL_FN,
        {**SDK_ENV, "SAGEMAKER_PROGRAM": "serve"},
        True,
        f"{SKLEARN_SERVING}; sagemaker-containers _env.py _parse_module_name (.py optional)",
        program="serve.py",
        oracle=True,
        invokes=(JSON_IN_JSON_OUT,),
    ),
    Deployment(
        "sklearn-transform-fn",
        SKLEARN_IMAGE,
        "sklearn",
        TRANSFORM_FN,
        SDK_ENV,
        True,
        f"{SKLEARN_SERVING}; {TRANSFORMER} transform (a tuple is body, mimetype)",
        oracle=True,
        invokes=(
            Invoke(
                "json-accept-json",
                "json_rows",
                "application/json",
                "application/json",
                200,
                "application/json",
                "transform(labels, application/json)",
                TRANSFORMER,
            ),
            Invoke(
                "accept-any-resolved",
                "json_rows",
                "application/json",
                "*/*",
                200,
                "application/json",
                "transform(labels, application/json)",
                f"{WORKER}: transform_fn sees the resolved Accept",
            ),
        ),
    ),
    Deployment(
        "sklearn-transform-and-input-fn",
        SKLEARN_IMAGE,
        "sklearn",
        TRANSFORM_AND_INPUT_FN,
        SDK_ENV,
        False,
        f"{SKLEARN_SERVING} _user_module_transformer: transform_fn with input_fn is refused",
        reason_mentions=("transform_fn",),
        oracle=True,
    ),
    Deployment(
        "sklearn-output-fn-str",
        SKLEARN_IMAGE,
        "sklearn",
        OUTPUT_FN_STR,
        SDK_ENV,
        True,
        f"{TRANSFORMER} transform returns the str; Flask makes it text/html",
        oracle=True,
        invokes=(
            Invoke(
                "json-in",
                "json_rows",
                "application/json",
                "application/json",
                200,
                "text/html; charset=utf-8",
                "labels_object(labels)",
                "Flask 1.1.1 make_response",
            ),
        ),
    ),
    Deployment(
        "sklearn-output-fn-worker-response",
        SKLEARN_IMAGE,
        "sklearn",
        OUTPUT_FN_WORKER_RESPONSE,
        SDK_ENV,
        True,
        "the image's requirements.txt installs sagemaker-containers 2.8.6.post2, so user code imports it; "
        f"{TRANSFORMER} transform returns the handler's Response as is; {WORKER} Response",
        oracle=True,
        invokes=(
            Invoke(
                "json-in-json-out",
                "json_rows",
                "application/json",
                "application/json",
                200,
                "application/json",
                "json(labels)",
                f"{ENCODERS} array_to_json; the Response's mimetype",
            ),
            Invoke(
                "json-in-csv-out",
                "json_rows",
                "application/json",
                "text/csv",
                200,
                "text/csv; charset=utf-8",
                "csv(labels)",
                f"{ENCODERS} array_to_csv; werkzeug adds the charset to text/*",
            ),
            Invoke(
                "response-status",
                "json_rows",
                "application/json",
                "application/x-npy",
                406,
                source="Flask sends the Response's own status (locally: ModelError, OriginalStatusCode)",
            ),
        ),
    ),
    Deployment(
        "sklearn-default-accept-env",
        SKLEARN_IMAGE,
        "sklearn",
        MODEL_FN,
        {**SDK_ENV, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"},
        True,
        f"{WORKER}; sagemaker-containers _env.py ServingEnv.default_accept",
        oracle=True,
        invokes=(
            Invoke(
                "accept-any",
                "json_rows",
                "application/json",
                "*/*",
                200,
                "text/csv; charset=utf-8",
                "csv(labels)",
                WORKER,
            ),
        ),
    ),
    # --------------------------------------------------------------------------------- XGBoost image
    Deployment(
        "xgboost-artifact-only",
        XGBOOST_IMAGE,
        "xgboost",
        None,
        {},
        True,
        XGBOOST_SERVING,
        invokes=(
            Invoke(
                "csv-in",
                "csv_rows",
                "text/csv",
                "text/csv",
                200,
                "text/csv; charset=utf-8",
                "joined(xgboost)",
                "algorithm_mode/serve.py invocations: ','.join(map(str, preds))",
            ),
            Invoke(
                "json-in",
                "json_rows",
                "application/json",
                "text/csv",
                415,
                source="algorithm_mode/serve.py: parse_content_data refuses JSON → 415",
            ),
            Invoke(
                "recordio-protobuf-in",
                "recordio_rows",
                "application/x-recordio-protobuf",
                "text/csv",
                200,
                "text/csv; charset=utf-8",
                "joined(xgboost)",
                "algorithm_mode/serve_utils.py parse_content_data → encoder.py recordio_protobuf_to_dmatrix "
                "(the SDK's write_numpy_to_dense_tensor body: the same scores as the CSV rows)",
            ),
        ),
    ),
    Deployment(
        "xgboost-code-without-program",
        XGBOOST_IMAGE,
        "xgboost",
        XGBOOST_SCRIPT,
        {},
        True,
        f"{XGBOOST_SERVING}: code/ is ignored without SAGEMAKER_PROGRAM",
        invokes=(
            Invoke(
                "csv-in",
                "csv_rows",
                "text/csv",
                "text/csv",
                200,
                "text/csv; charset=utf-8",
                "joined(xgboost)",
                "algorithm_mode/serve.py invocations",
            ),
        ),
    ),
    # ------------------------------------------------------------------------- PyTorch, TensorFlow
    Deployment(
        "pytorch-no-model-pt",
        PYTORCH_IMAGE,
        "weights_npy",
        None,
        {},
        False,
        "aws/sagemaker-pytorch-inference-toolkit src/sagemaker_pytorch_serving_container/"
        "default_pytorch_inference_handler.py default_model_fn: needs model.pt (or one .pt/.pth)",
        reason_mentions=("model.pt",),
    ),
    Deployment(
        "tensorflow-no-savedmodel",
        TENSORFLOW_IMAGE,
        "sklearn",
        None,
        {},
        False,
        "aws/sagemaker-tensorflow-serving-container docker/build_artifacts/sagemaker/tfs_utils.py: "
        "no <digits>/saved_model.pb under /opt/ml/model",
        reason_mentions=("SavedModel",),
    ),
)

# ----------------------------------------------------------------------------- refused at the door
# What OnUpload (or `modeldrop package`) can already know the image will not run: refused, or noted on the
# deployment, before any SageMaker call (tests/unit/pipeline/test_upload_checks.py runs each row through
# OnUpload on moto; the exact reasons are in the unit tests of each check).
SKLEARN_1_2_1_REQUIREMENTS = "aws/sagemaker-scikit-learn-container requirements.txt at v1.2-1 (numpy==1.24.1)"
SKLEARN_1_2_1_PYTHON = (
    "aws/sagemaker-scikit-learn-container docker/1.2-1/base/Dockerfile.cpu (ARG PYTHON_VERSION=3.9, "
    "rebuilt so by pull request #223; ARG UBUNTU_VERSION=20.04: glibc 2.31)"
)


@dataclass(frozen=True)
class UploadCheck:
    id: str
    artifact: str  # sklearn_numpy2 (a forest pickled under numpy 2) | sklearn_logistic | sklearn_compressed
    outcome: str  # "Rejected", or "noted": deployed, the note on the record's servingSetup.notes
    mentions: tuple[str, ...]  # words the reason (or the note) must contain
    source: str
    code: str | None = None  # code/inference.py
    requirements: str | None = None  # code/requirements.txt, checked by `modeldrop package`
    # (total serverless concurrency quota, MaxConcurrency allocated to the account's other endpoints)
    quota: tuple[int, int] | None = None
    config: dict[str, int] | None = None  # modeldrop.json in the tarball
    stage: str = "upload"  # upload (OnUpload) | package (`modeldrop package`)


UPLOAD_CHECKS: tuple[UploadCheck, ...] = (
    UploadCheck(
        "numpy2-pickle",
        "sklearn_numpy2",
        "Rejected",
        ("model.joblib references numpy._core", "numpy 1.24.1", "No module named 'numpy._core'", "numpy<2"),
        f"{SKLEARN_1_2_1_REQUIREMENTS}: numpy 1.24 has no numpy._core (numpy 1.26 added it); the deployment "
        "row sklearn-numpy2-pickle is the endpoint that would fail its health check",
    ),
    UploadCheck(
        "sklearn-minor-gap",
        "sklearn_logistic",
        "noted",
        ("warning: model.joblib was saved with scikit-learn", "the image has 1.2.1"),
        "scikit-learn sklearn/base.py BaseEstimator.__setstate__: another version's pickle loads with "
        "InconsistentVersionWarning (no promise), so a warning, not a refusal; "
        "docker/1.2-1/base/Dockerfile.cpu pip install scikit-learn==1.2.1",
    ),
    UploadCheck(
        "compressed-joblib",
        "sklearn_compressed",
        "noted",
        ("model.joblib is compressed (zlib)", "joblib.dump(model, path, compress=0)"),
        "joblib joblib/compressor.py (the zlib prefix 0x78) and numpy_pickle.py dump (compress=0 by default)",
    ),
    UploadCheck(
        "match-on-python-3-9",
        "sklearn_logistic",
        "Rejected",
        ("code/inference.py line 2", "Pattern matching", "Python 3.9"),
        f"{SKLEARN_1_2_1_PYTHON}; Python's ast feature_version gates match below 3.10",
        code="def model_fn(model_dir):\n    match model_dir:\n        case _:\n            return None\n",
    ),
    UploadCheck(
        "requirement-without-wheel",
        "sklearn_logistic",
        "Rejected",
        ("code/requirements.txt: onlycp311==1.0 has no wheel for Python 3.9",),
        f"{SKLEARN_1_2_1_PYTHON}; sagemaker-containers 2.8.6.post2 _modules.py install: "
        "pip install -r requirements.txt at start-up",
        requirements="onlycp311==1.0\n",
        stage="package",
    ),
    UploadCheck(
        "default-concurrency-fits-the-quota",
        "sklearn_logistic",
        "noted",
        ("max_concurrency 3, not the default 5", "is 10", "7 is allocated to the other serverless endpoints"),
        "Service Quotas L-96300102 (total serverless concurrency, default 10) and the stack's "
        "DefaultMaxConcurrency 5 (template.yaml): without max_concurrency the default becomes what is left",
        quota=(10, 7),
    ),
    UploadCheck(
        "explicit-concurrency-beyond-the-quota",
        "sklearn_logistic",
        "Rejected",
        ("account quota 'Maximum total concurrency", "this deployment needs 11"),
        "Service Quotas L-96300102: a max_concurrency the user set is never lowered",
        config={"max_concurrency": 4},
        quota=(10, 7),
    ),
)
upload_checks_by_id = {check.id: check for check in UPLOAD_CHECKS}
assert len(upload_checks_by_id) == len(UPLOAD_CHECKS), "upload check ids are unique"

# Rows the local SageMaker does not match yet (none since the container profiles landed): `make sdk-test`
# deselects them through the fidelity_pending marker, `make sdk-test-pending` runs them.
PENDING: frozenset[str] = frozenset()

by_id = {deployment.id: deployment for deployment in DEPLOYMENTS}
assert len(by_id) == len(DEPLOYMENTS), "deployment ids are unique"
assert all(row.split("/")[0] in by_id for row in PENDING), "PENDING names existing rows"
