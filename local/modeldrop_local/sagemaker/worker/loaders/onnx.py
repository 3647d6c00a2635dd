"""ONNX: an onnxruntime CPU session with one thread; the input cast to the graph's first input type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modeldrop_local.sagemaker.worker.handler_errors import bad_input

_INPUT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.str_,
}


def load(artifact: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])


def predict(data: Any, session: Any) -> Any:
    model_input = session.get_inputs()[0]
    dtype = _INPUT_DTYPES.get(model_input.type, np.float32)
    try:
        features = np.asarray(data).astype(dtype)
    except (ValueError, TypeError) as error:
        raise bad_input(error) from error
    try:
        return session.run(None, {model_input.name: features})[0]
    except Exception as error:
        # onnxruntime raises its own InvalidArgument / Fail classes for shapes and types it rejects.
        if type(error).__name__ in ("InvalidArgument", "Fail", "InvalidGraph"):
            raise bad_input(error) from error
        raise
