"""The XGBoost image's built-in algorithm serving (no SAGEMAKER_PROGRAM), as a worker handler.

Read from aws/sagemaker-xgboost-container (1.7-1 and older):
- src/sagemaker_xgboost_container/serving.py: without SAGEMAKER_PROGRAM the algorithm-mode server
  serves and code/ is ignored.
- algorithm_mode/serve_utils.py: the model directory's regular files are each loaded as a booster
  (pickle first, then XGBoost's own format); ensemble mode (SAGEMAKER_INFERENCE_ENSEMBLE, on by
  default) averages their predictions. A file that is not a booster (say a modeldrop.json at the
  root) makes loading fail, so /ping fails and the endpoint goes Failed.
- algorithm_mode/serve.py and serve_utils.parse_content_data: the request type goes through
  data_utils.get_content_type (see `algorithm_content_type` below); a body that does not decode, or
  a type the algorithm does not take, is 415. An empty body is 204. A CSV whose width is neither the
  model's nor one less is 400. Accept application/json answers {"predictions": [{"score": ...}]},
  application/jsonlines one such object per line, and anything else (*/* included) text/csv, the
  scores joined by commas.
- encoder.py recordio_protobuf_to_dmatrix: an application/x-recordio-protobuf body is read with mlio's
  RecordIOProtobufReader (here: recordio_protobuf.py, standard library only); see
  `recordio_protobuf_to_matrix` below.

Not emulated: selectable inference (SAGEMAKER_INFERENCE_OUTPUT), the only mode in which the real
container answers application/x-recordio-protobuf (serve_utils.encode_selected_predictions, one Record
per prediction with each selected key in label[key].float32_tensor); without it an Accept of
recordio-protobuf gets text/csv, as here.
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
from modeldrop.content_types import essence, parse

from modeldrop_local.sagemaker.worker.profiles import root_files
from modeldrop_local.sagemaker.worker.recordio_protobuf import (
    FLOAT32,
    FLOAT64,
    INT32,
    RecordIOProtobufError,
    Tensor,
    read_records,
)
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


# aws/sagemaker-xgboost-container src/sagemaker_xgboost_container/data_utils.py (the mlio-era copy of
# the 1.x line, beside constants/xgb_content_types.py at commit 3e77dcef): the names get_content_type
# takes, and the message of the UserError it raises for any other.
_ACCEPTED_TYPES = (
    "csv, libsvm, parquet, recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, "
    "application/x-parquet, application/x-recordio-protobuf"
)
_SERVED = {"csv": CSV, "libsvm": LIBSVM[0], "recordio-protobuf": RECORDIO}


def algorithm_content_type(content_type: str | None) -> str:
    """The algorithm's reading of a request's Content-Type, as a media type decode_to_dmatrix knows.

    data_utils.get_content_type: libsvm and recordio-protobuf only by their exact names (lowercased,
    no parameters: `application/x-recordio-protobuf; charset=binary` and `application/x-recordio` are
    refused); anything containing "csv" is CSV if it is `csv`, `text/csv`, or `text/csv` with
    parameters whose label_size, if any, is 1; parquet is a known name that
    serve_utils.parse_content_data then refuses ("Content-type ... is not supported."). Every refusal
    is raised inside parse_content_data, which serve.py answers with 415.
    """
    if content_type is None:  # the local SageMaker's default; data_utils reads None as libsvm
        return CSV
    lowered = content_type.lower()
    if lowered in ("libsvm", *LIBSVM):
        return _SERVED["libsvm"]
    if "csv" in lowered:
        if lowered in ("csv", CSV):
            return CSV
        # Upstream reads the parameters with cgi.parse_header; email.message is its documented
        # replacement (PEP 594 removed cgi), and modeldrop.content_types parses with it.
        parsed = parse(lowered)
        if parsed.essence == CSV:
            if parsed.parameter("label_size", "1") != "1":
                raise UnsupportedMediaType(
                    f"{lowered} is not an accepted csv ContentType. Optional parameter label_size must be "
                    "equal to 1"
                )
            return CSV
    elif lowered in ("parquet", "application/x-parquet"):
        raise UnsupportedMediaType(f"Content-type {content_type} is not supported.")
    elif lowered in ("recordio-protobuf", RECORDIO):
        return RECORDIO
    raise UnsupportedMediaType(f"{lowered} is not an accepted ContentType: {_ACCEPTED_TYPES}.")


_DTYPES = {FLOAT32: np.float32, FLOAT64: np.float64, INT32: np.int32}


def recordio_protobuf_to_matrix(payload: bytes) -> Any:
    """The feature matrix of a RecordIO-protobuf body, as encoder.recordio_protobuf_to_dmatrix builds it.

    aws/sagemaker-xgboost-container src/sagemaker_xgboost_container/encoder.py (the mlio copy of the
    1.x line): every record's `values` feature is one row, labels are ignored; the first record
    decides between dense (np.vstack of the rows) and sparse (scipy vstack of 1-row COO matrices, as
    CSR). A tensor with keys is sparse, its width the first entry of its shape (record.proto: "this
    must be specified if the tensor is sparse"; without one, the largest key + 1, as the mlio-free
    recordio_protobuf.py at commit a10575db reads it); a tensor with neither keys nor values but a
    shape is an all-zero sparse row (what the SageMaker Python SDK writes for an empty CSR row).
    Anything mlio cannot read raises, and parse_content_data turns that into a 415.
    """
    records = read_records(payload)
    if not records:
        raise RecordIOProtobufError("No records found in RecordIO-Protobuf data")
    tensors = [_features(record.features, index) for index, record in enumerate(records)]
    if not _is_sparse(tensors[0]):
        rows = [_dense_row(tensor, index) for index, tensor in enumerate(tensors)]
        try:
            return np.vstack(rows)
        except ValueError as error:
            raise RecordIOProtobufError(f"The records' dense tensors differ in size: {error}") from None
    from scipy.sparse import csr_matrix
    from scipy.sparse import vstack as sparse_vstack

    sparse_rows = []
    for index, tensor in enumerate(tensors):
        if not _is_sparse(tensor):
            raise RecordIOProtobufError(f"Record {index} is dense where the first record is sparse")
        if len(tensor.keys) != len(tensor.values):
            raise RecordIOProtobufError(
                f"Record {index} has {len(tensor.keys)} keys for {len(tensor.values)} values"
            )
        width = int(tensor.shape[0]) if tensor.shape else max(tensor.keys) + 1
        if tensor.keys and max(tensor.keys) >= width:
            raise RecordIOProtobufError(f"Record {index} has a key beyond its shape {tensor.shape}")
        values = np.asarray(tensor.values, dtype=_DTYPES[tensor.kind])
        keys = np.asarray(tensor.keys, dtype=np.int64)
        sparse_rows.append(csr_matrix((values, keys, [0, len(keys)]), shape=(1, width)))
    try:
        return sparse_vstack(sparse_rows).tocsr()
    except ValueError as error:
        raise RecordIOProtobufError(f"The records' sparse tensors differ in shape: {error}") from None


def _features(features: dict[str, Tensor], index: int) -> Tensor:
    tensor = features.get("values")
    if tensor is None:
        raise RecordIOProtobufError(f"Record {index} has no 'values' feature")
    if tensor.kind not in _DTYPES:
        raise RecordIOProtobufError(
            f"Record {index}'s 'values' feature is not a numeric tensor ({tensor.kind})"
        )
    return tensor


def _is_sparse(tensor: Tensor) -> bool:
    return tensor.sparse or (not tensor.values and bool(tensor.shape))


def _dense_row(tensor: Tensor, index: int) -> Any:
    if _is_sparse(tensor):
        raise RecordIOProtobufError(f"Record {index} is sparse where the first record is dense")
    if tensor.shape and list(tensor.shape) != [len(tensor.values)]:
        raise RecordIOProtobufError(
            f"Record {index}'s dense tensor has shape {tensor.shape} for {len(tensor.values)} values"
        )
    return np.asarray(tensor.values, dtype=_DTYPES[tensor.kind]).reshape(1, -1)


def decode_to_dmatrix(payload: Any, content_type: str) -> Any:
    import xgboost

    kind = essence(content_type or CSV)
    if kind == RECORDIO:
        # serve_utils.parse_content_data: the raw bytes go to encoder.recordio_protobuf_to_dmatrix
        try:
            raw = bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()
            return xgboost.DMatrix(recordio_protobuf_to_matrix(raw))
        except Exception as error:
            raise UnsupportedMediaType(
                "Loading recordio-protobuf data failed with Exception, please ensure data is in "
                f"recordio-protobuf format: {type(error)} {error}"
            ) from None
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
    raise UnsupportedMediaType(
        f"Content-type {kind} not supported. Supported content-type is text/csv, text/libsvm, "
        "application/x-recordio-protobuf"
    )


def predict_boosters(boosters: list[Any], matrix: Any, data_format: str = "csv") -> Any:
    for booster in boosters:
        expected = booster.num_features()
        if expected and matrix.num_col() not in (expected, expected - 1):
            # serve_utils.predict: 'Feature size of {} inference data ...' with data_utils' name of the type
            raise BadPayload(
                f"Feature size of {data_format} inference data {matrix.num_col()} is not consistent with "
                f"feature size of trained model {expected}"
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
    kind = essence(accept or CSV)
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
            kind = algorithm_content_type(content_type)
            matrix = decode_to_dmatrix(body, kind)
        except UnsupportedMediaType as error:
            return Outcome(415, str(error).encode(), "text/html; charset=utf-8", timings)
        timings["input"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        try:
            data_format = "recordio-protobuf" if kind == RECORDIO else "csv"
            predictions = predict_boosters(self.model, matrix, data_format)
        except Exception as error:
            message = f"Unable to evaluate payload provided: {error}"
            return Outcome(400, message.encode(), "text/html; charset=utf-8", timings)
        timings["predict"] = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        payload, response_type = _encode(predictions, accept)
        timings["output"] = (time.perf_counter() - started) * 1000
        return Outcome(200, payload, response_type, timings)
