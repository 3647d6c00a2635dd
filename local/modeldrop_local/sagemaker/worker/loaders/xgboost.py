"""XGBoost: a Booster read from the file's bytes (UBJSON, JSON or the legacy binary), one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modeldrop_local.sagemaker.worker.handler_errors import HandlerError, bad_input


def load(artifact: Path) -> Any:
    import xgboost

    booster = xgboost.Booster(params={"nthread": 1})
    # From bytes, XGBoost sniffs the format (UBJSON, JSON or the legacy binary) whatever the name.
    booster.load_model(bytearray(artifact.read_bytes()))
    return booster


def predict(data: Any, model: Any) -> Any:
    import xgboost

    try:
        matrix = (
            data if isinstance(data, xgboost.DMatrix) else xgboost.DMatrix(np.atleast_2d(data).astype(float))
        )
        expected = model.num_features()
        # XGBoost silently treats absent trailing columns as missing values; a short row is a bad request.
        if expected and matrix.num_col() != expected:
            raise HandlerError(
                400,
                f"X has {matrix.num_col()} features, but the XGBoost model is expecting {expected} features",
            )
        return model.predict(matrix)
    except (ValueError, TypeError, xgboost.core.XGBoostError) as error:
        raise bad_input(error) from error
