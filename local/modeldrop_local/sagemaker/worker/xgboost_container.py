"""The XGBoost image's built-in algorithm serving (no SAGEMAKER_PROGRAM), as a worker handler.

Read from aws/sagemaker-xgboost-container (1.7-1 and older):
- src/sagemaker_xgboost_container/serving.py: without SAGEMAKER_PROGRAM the algorithm-mode server
  serves and code/ is ignored.
- algorithm_mode/serve_utils.py: the model directory's regular files are each loaded as a booster
  (pickle first, then XGBoost's own format); ensemble mode (SAGEMAKER_INFERENCE_ENSEMBLE, on by
  default) averages their predictions. A file that is not a booster (say a modeldrop.json at the
  root) makes loading fail, so /ping fails and the endpoint goes Failed.
- algorithm_mode/serve.py and serve_utils.get_content_type: request types text/csv (the default),
  text/libsvm, text/x-libsvm, application/x-recordio-protobuf; anything else is 415. An empty body
  is 204. A CSV whose width is neither the model's nor one less is 400. Accept application/json
  answers {"predictions": [{"score": ...}]}, application/jsonlines one such object per line, and
  anything else (*/* included) text/csv, the scores joined by commas.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from modeldrop_local.sagemaker.worker.profiles import root_files
from modeldrop_local.sagemaker.worker.serving import ModelLoadError, Outcome

CSV = "text/csv"
LIBSVM = ("text/libsvm", "text/x-libsvm")
RECORDIO = "application/x-recordio-protobuf"
JSON = "application/json"
JSONLINES = "application/jsonlines"
ENSEMBLE_ENV = "SAGEMAKER_INFERENCE_ENSEMBLE"


def load_root_boosters(model_dir: Path) -> list[Any]:
    import xgboost

    files = root_files(model_dir)
    if not files:
        raise ModelLoadError(f"Unable to load model: no file at the model root {model_dir}")
    boosters = []
    for path in files:
        try:
            with path.open("rb") as stream:
                booster = pickle.load(stream)
        except Exception as pickle_error:
            try:
                booster = xgboost.Booster(params={"nthread": 1})
                booster.load_model(str(path))
            except Exception as xgboost_error:
                raise ModelLoadError(
                    f"Unable to load model: {path.name} at the model root is not an XGBoost booster "
                    f"(pickle: {pickle_error}; xgboost: {str(xgboost_error).splitlines()[0]}). The XGBoost "
                    "image loads every regular file at the model root as a booster: ship only the model "
                    "there (for example keep modeldrop.json out of the deployed tarball)"
                ) from None
        boosters.append(booster)
    return boosters


def media_type(content_type: str | None, default: str) -> str:
    return (content_type or default).lower().split(";", 1)[0].strip()


def decode_to_dmatrix(payload: Any, content_type: str) -> Any:
    import xgboost

    kind = media_type(content_type, CSV)
    text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else str(payload)
    if kind == CSV:
        rows = [line for line in text.strip().splitlines() if line.strip()]
        try:
            matrix = np.array([[float(cell) for cell in row.split(",")] for row in rows], dtype=float)
        except ValueError as error:
            raise UnsupportedMediaType(
                "Loading csv data failed with Exception, please ensure data is in csv format:\n"
                f" {type(error)}\n {error}"
            ) from None
        return xgboost.DMatrix(matrix)
    if kind in LIBSVM:
        from scipy.sparse import csr_matrix

        row_index, columns, values = [], [], []
        for index, line in enumerate(text.strip().split("\n")):
            for item in line.split(" "):
                if ":" in item:
                    column, value = item.split(":", 1)
                    row_index.append(index)
                    columns.append(int(column))
                    values.append(float(value))
        return xgboost.DMatrix(csr_matrix((values, (row_index, columns))))
    if kind == RECORDIO:
        raise UnsupportedMediaType("application/x-recordio-protobuf is not decoded by the local SageMaker")
    raise UnsupportedMediaType(
        f"Content-type {kind} not supported. Supported content-type is text/csv, text/libsvm, "
        "application/x-recordio-protobuf"
    )


def predict_boosters(boosters: list[Any], matrix: Any) -> Any:
    for booster in boosters:
        expected = booster.num_features()
        if expected and matrix.num_col() not in (expected, expected - 1):
            raise BadPayload(
                f"Feature size of csv inference data {matrix.num_col()} is not consistent with feature "
                f"size of trained model {expected}"
            )
    predictions = [booster.predict(matrix, validate_features=False) for booster in boosters]
    ensemble = os.environ.get(ENSEMBLE_ENV, "true").lower() != "false"
    return np.mean(predictions, axis=0) if ensemble and len(predictions) > 1 else predictions[0]


class UnsupportedMediaType(Exception):
    pass


class BadPayload(Exception):
    pass


def _encode(predictions: Any, accept: str) -> tuple[bytes, str]:
    scores = np.asarray(predictions).tolist()
    kind = media_type(accept, CSV)
    if kind == JSON:
        return json.dumps({"predictions": [{"score": score} for score in scores]}).encode(), JSON
    if kind == JSONLINES:
        lines = io.StringIO()
        for score in scores:
            lines.write(json.dumps({"score": score}) + "\n")
        return lines.getvalue().encode(), JSONLINES
    return ",".join(map(str, scores)).encode(), "text/csv; charset=utf-8"


class XGBoostAlgorithmHandler:
    """The built-in XGBoost algorithm's /invocations over the boosters at the model root."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.model = load_root_boosters(model_dir)

    def invoke(self, body: bytes, content_type: str, accept: str, request_id: str) -> Outcome:
        timings: dict[str, float] = {}
        if not body:
            return Outcome(204, b"", "text/html; charset=utf-8", timings)
        started = time.perf_counter()
        try:
            matrix = decode_to_dmatrix(body, content_type)
        except UnsupportedMediaType as error:
            return Outcome(415, str(error).encode(), "text/html; charset=utf-8", timings)
        timings["input"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        try:
            predictions = predict_boosters(self.model, matrix)
        except Exception as error:
            message = f"Unable to evaluate payload provided: {error}"
            return Outcome(400, message.encode(), "text/html; charset=utf-8", timings)
        timings["predict"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        payload, response_type = _encode(predictions, accept)
        timings["output"] = (time.perf_counter() - started) * 1000
        return Outcome(200, payload, response_type, timings)
