"""Real example model tarballs, built from scikit-learn's bundled iris data set.

Used by examples/, the tests, the demo and the benchmarks. Everything is deterministic (fixed
random_state), so the same call builds the same model and the same predictions.

- iris.py: the data set, the payloads (iris_payload, iris_sample, iris_targets), the reference model;
- builders.py: the build_* functions, one tarball each (inference_code.py: their code/inference.py);
- image_training.py: pickles and boosters made with the libraries of the image that serves them: the
  scikit-learn models are trained and pickled with scikit-learn 1.2.1 and numpy 1.24.1 (the 1.2-1
  image's), the XGBoost booster with xgboost 1.7.4 (the 1.7-1 image's), by runner.py running in the
  local SageMaker's pinned environment of that image (sagemaker/worker/image_envs.py; built on first
  use, cached per machine); code/modeldrop-libraries.json records those versions. ONNX models and the
  numpy weights hold no pickled objects and are made in this process;
- prediction.py: predict_in_process, what the endpoint is expected to answer. It loads a pickle in the
  same pinned environment: a scikit-learn 1.2.1 forest does not unpickle under a newer scikit-learn.
"""

from modeldrop_local.example_models.builders import (
    build_custom_inference,
    build_custom_weights,
    build_onnx_iris,
    build_padded_model,
    build_sklearn_forest,
    build_sklearn_iris,
    build_xgboost_iris,
)
from modeldrop_local.example_models.image_training import image_python, pickle_large_knn
from modeldrop_local.example_models.inference_code import CUSTOM_INFERENCE_PY
from modeldrop_local.example_models.iris import iris_payload, iris_sample, iris_targets
from modeldrop_local.example_models.prediction import predict_in_process

__all__ = [
    "CUSTOM_INFERENCE_PY",
    "build_custom_inference",
    "build_custom_weights",
    "build_onnx_iris",
    "build_padded_model",
    "build_sklearn_forest",
    "build_sklearn_iris",
    "build_xgboost_iris",
    "image_python",
    "iris_payload",
    "iris_sample",
    "iris_targets",
    "pickle_large_knn",
    "predict_in_process",
]
