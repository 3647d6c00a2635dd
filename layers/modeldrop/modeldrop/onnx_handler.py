"""SageMaker inference handlers for an ONNX model (copied into a tarball as code/inference.py).

ONNX has no first-party SageMaker image; modeldrop hosts it on the scikit-learn container, which
loads these handlers and installs onnxruntime from code/requirements.txt. This module is never
imported by the Lambda functions; `modeldrop package --onnx-handler` (build_model_tarball with
onnx_handler=True) ships it. JSON, CSV and NPY in; JSON or CSV out: the model's first output.
"""

from __future__ import annotations

import io
import json
import os
from email.message import Message
from typing import Any

import numpy as np

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def model_fn(model_dir: str) -> Any:
    import onnxruntime

    models = sorted(name for name in os.listdir(model_dir) if name.endswith(".onnx"))
    if not models:
        raise FileNotFoundError(f"no .onnx file in {model_dir}")
    return onnxruntime.InferenceSession(
        os.path.join(model_dir, models[0]), providers=["CPUExecutionProvider"]
    )


def _media_type(value: str | None) -> str:
    """The media type of a Content-Type or Accept value, as given (`text/csv; header=present` →
    `text/csv`), read by the standard library's MIME parser: this file ships alone as the model's
    code/inference.py, where modeldrop.content_types is not installed."""
    header = Message()
    header["Content-Type"] = value or "application/json"
    return str(header.get_params(header="Content-Type", failobj=[("", "")])[0][0]).strip()


def input_fn(request_body: bytes | str, request_content_type: str) -> np.ndarray:
    content_type = _media_type(request_content_type)
    if content_type == "application/x-npy":
        raw = request_body if isinstance(request_body, bytes) else request_body.encode()
        return np.asarray(np.load(io.BytesIO(raw), allow_pickle=False))
    text = request_body.decode() if isinstance(request_body, bytes) else request_body
    if content_type == "application/json":
        document = json.loads(text)
        rows = document["instances"] if isinstance(document, dict) else document
        return np.asarray(rows)
    if content_type == "text/csv":
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    raise ValueError(f"unsupported content type {content_type!r}: send application/json, text/csv or npy")


def predict_fn(input_data: np.ndarray, session: Any) -> np.ndarray:
    model_input = session.get_inputs()[0]
    dtype = _ONNX_DTYPES.get(model_input.type, np.float32)
    return np.asarray(session.run(None, {model_input.name: input_data.astype(dtype)})[0])


def output_fn(prediction: np.ndarray, accept: str) -> str:
    accept = _media_type(accept)
    if accept == "text/csv":
        buffer = io.StringIO()
        np.savetxt(buffer, np.atleast_2d(prediction).T if prediction.ndim == 1 else prediction, delimiter=",")
        return buffer.getvalue()
    return json.dumps(prediction.tolist())
