"""modeldrop's built-in loaders for a custom image: one module per framework, chosen from the files.

Each gives `load(artifact)` (the model file profiles.py picked) and `predict(data, model)`; the
contract around them (decoding, encoding, the user's overrides) is serving.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeldrop_local.sagemaker.worker.loaders import onnx, sklearn, torchscript, xgboost

Load = Callable[[Path], Any]
Predict = Callable[[Any, Any], Any]

BUILT_INS: dict[str, tuple[Load, Predict]] = {
    "sklearn": (sklearn.load, sklearn.predict),
    "xgboost": (xgboost.load, xgboost.predict),
    "onnx": (onnx.load, onnx.predict),
    "pytorch": (torchscript.load, torchscript.predict),
}
