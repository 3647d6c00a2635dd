"""The code/inference.py (and requirements.txt) the custom example models carry: user handler modules."""

CUSTOM_INFERENCE_PY = '''\
"""Custom SageMaker inference handlers: JSON in, JSON out, with class names."""

import json
import os

import joblib
import numpy as np

CLASS_NAMES = ["setosa", "versicolor", "virginica"]


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(request_body, request_content_type):
    if request_content_type != "application/json":
        raise ValueError(f"unsupported content type {request_content_type!r}; send application/json")
    document = json.loads(request_body)
    rows = document["instances"] if isinstance(document, dict) else document
    return np.asarray(rows, dtype=float)


def predict_fn(input_data, model):
    return model.predict(input_data)


def output_fn(prediction, accept):
    ids = [int(value) for value in prediction]
    return json.dumps({"predictions": ids, "labels": [CLASS_NAMES[i] for i in ids]})
'''

CUSTOM_REQUIREMENTS_TXT = "# The serving image already has scikit-learn, joblib and numpy.\n"

# Custom code and a weights file no framework claims (served on the scikit-learn image by default).
# Python 3.8, numpy only: it runs on the image's own libraries.
WEIGHTS_INFERENCE_PY = '''\
"""A linear classifier from numpy weights: JSON rows in, JSON class ids out."""

import json
import os

import numpy as np


def model_fn(model_dir):
    with np.load(os.path.join(model_dir, "weights.npz")) as weights:
        return {"coef": weights["coef"], "intercept": weights["intercept"]}


def input_fn(request_body, request_content_type):
    if request_content_type != "application/json":
        raise ValueError("send application/json")
    return np.asarray(json.loads(request_body), dtype=float)


def predict_fn(input_data, model):
    return np.argmax(input_data @ model["coef"].T + model["intercept"], axis=1)


def output_fn(prediction, accept):
    return json.dumps([int(value) for value in prediction])
'''
