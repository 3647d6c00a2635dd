"""The iris data set the example models learn, the payloads sent to them, and their reference model.

Everything is deterministic (fixed random_state), so the same call gives the same rows and model.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

RANDOM_STATE = 0
IRIS_FEATURES = 4


@cache
def iris_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled iris data set: the features (float64) and the class ids."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target)


def _spread_indices(n: int) -> list[int]:
    total = len(iris_data()[1])
    return [(i * total) // n for i in range(n)] if n <= total else [i % total for i in range(n)]


def iris_payload(n: int = 4) -> list[list[float]]:
    """n iris rows spread over the three classes (a JSON-able inference payload)."""
    features, _ = iris_data()
    return [[float(value) for value in features[i]] for i in _spread_indices(n)]


def iris_sample() -> list[list[float]]:
    """The default small payload: four rows covering all three classes."""
    return iris_payload(4)


def iris_targets(n: int = 4) -> list[int]:
    """The true classes of iris_payload(n), row for row."""
    _, targets = iris_data()
    return [int(targets[i]) for i in _spread_indices(n)]


def fit_logistic() -> Any:
    """The iris LogisticRegression, fitted in this process (the ONNX model and numpy weights come from it)."""
    from sklearn.linear_model import LogisticRegression

    features, targets = iris_data()
    return LogisticRegression(max_iter=1000, random_state=RANDOM_STATE).fit(features, targets)
