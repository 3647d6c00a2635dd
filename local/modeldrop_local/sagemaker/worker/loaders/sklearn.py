"""scikit-learn (and any joblib pickle): `model.joblib` loaded with joblib, `predict()` by default.

MODELDROP_PREDICT_METHOD names another method (`predict_proba`); scikit-learn's own input checks
(feature count, dtype) are the caller's fault, 400.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modeldrop_local.sagemaker.worker.handler_errors import HandlerError, bad_input

PREDICT_METHOD_ENV = "MODELDROP_PREDICT_METHOD"  # "predict" (default) or "predict_proba"


def load(artifact: Path) -> Any:
    import joblib

    return joblib.load(artifact)


def predict(data: Any, model: Any) -> Any:
    method_name = os.environ.get(PREDICT_METHOD_ENV, "predict")
    method = getattr(model, method_name, None)
    if method is None and method_name == "predict" and callable(model):  # a custom model_fn's function
        method = model
    if method is None:
        raise HandlerError(500, f"{type(model).__name__} has no {method_name}() ({PREDICT_METHOD_ENV})")
    try:
        return method(data)
    except (ValueError, TypeError) as error:  # scikit-learn's input validation (feature count, dtype)
        raise bad_input(error) from error
