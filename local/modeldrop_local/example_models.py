"""Real example model tarballs, built from scikit-learn's bundled iris data set.

Used by examples/, the tests, the demo and the benchmarks. Everything is deterministic (fixed
random_state), so the same call builds the same model and the same predictions.

Every tarball works on AWS as it is (with_handler=False gives the bare artifact, for tests of what
OnUpload adds): scikit-learn and ONNX models carry the code/inference.py the scikit-learn image needs
and code/modeldrop-libraries.json (see modeldrop.packaging).

Pickles and boosters are made with the libraries of the image that serves them: the scikit-learn
models are trained and pickled with scikit-learn 1.2.1 and numpy 1.24.1 (the 1.2-1 image's), the
XGBoost booster with xgboost 1.7.4 (the 1.7-1 image's), by example_runner.py running in the local
SageMaker's pinned environment of that image (sagemaker/worker/image_envs.py; built on first use,
cached per machine), and code/modeldrop-libraries.json records those versions. ONNX models and the
numpy weights hold no pickled objects and are made here. predict_in_process loads a pickle in the
same pinned environment: a scikit-learn 1.2.1 forest does not unpickle under a newer scikit-learn.

What "prediction" means, per builder (the JSON a serving container returns for a JSON list of rows):
- sklearn, sklearn forest, padded: `model.predict(rows)` -> class ids, e.g. [0, 1, 2]
- onnx: the model's first output ("label") -> class ids, e.g. [0, 1, 2]
- xgboost: `Booster.predict` with objective multi:softmax -> class ids as floats, e.g. [0.0, 1.0, 2.0]
- custom inference: output_fn's JSON, {"predictions": [0, 1, 2], "labels": ["setosa", ...]}
- custom weights: output_fn's JSON, class ids from numpy weights (no framework artifact), e.g. [0, 1, 2]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from modeldrop.frameworks import Framework, default_version
from modeldrop.packaging import TARBALL_NAME, build_model_tarball
from modeldrop.tarball import TarballLimits, safe_extract

from modeldrop_local import example_runner
from modeldrop_local.sagemaker.worker.image_envs import EnvironmentCache, environment_for

RANDOM_STATE = 0
IRIS_FEATURES = 4

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


@cache
def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target)


def _spread_indices(n: int) -> list[int]:
    total = len(_iris()[1])
    return [(i * total) // n for i in range(n)] if n <= total else [i % total for i in range(n)]


def iris_payload(n: int = 4) -> list[list[float]]:
    """n iris rows spread over the three classes (a JSON-able inference payload)."""
    features, _ = _iris()
    return [[float(value) for value in features[i]] for i in _spread_indices(n)]


def iris_sample() -> list[list[float]]:
    """The default small payload: four rows covering all three classes."""
    return iris_payload(4)


def iris_targets(n: int = 4) -> list[int]:
    """The true classes of iris_payload(n), row for row."""
    _, targets = _iris()
    return [int(targets[i]) for i in _spread_indices(n)]


def _tarball(
    dest_dir: Path | str,
    files: list[Path],
    *,
    inference_py: Path | None = None,
    requirements_txt: Path | None = None,
    config: Mapping[str, Any] | None = None,
    with_handler: bool = True,
    libraries: Mapping[str, str] | None = None,
) -> Path:
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    return build_model_tarball(
        files,
        dest / TARBALL_NAME,
        inference_py=inference_py,
        requirements_txt=requirements_txt,
        config=config,
        serving_code=with_handler,
        record_libraries=with_handler,
        libraries=libraries,
    )


def image_python(framework: Framework) -> str:
    """The interpreter of the pinned environment of the framework's default image version."""
    return str(EnvironmentCache().python(environment_for(framework, default_version(framework))))


def _run_in_image(framework: Framework, request: Mapping[str, Any]) -> Any:
    completed = subprocess.run(
        [image_python(framework), example_runner.__file__],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"example_runner.py failed in the {framework.value} image environment: {completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout)


def pickle_large_knn(path: Path, n_samples: int) -> dict[str, str]:
    """A KNeighborsClassifier on n_samples synthetic rows, pickled to path in the scikit-learn image's
    environment (for the size benchmarks); returns the versions it was made with."""
    answer = _run_in_image(
        Framework.SKLEARN,
        {
            "command": "train",
            "model": "knn",
            "n_samples": n_samples,
            "random_state": RANDOM_STATE,
            "out": str(path),
        },
    )
    return dict(answer["libraries"])


@cache
def _trained(kind: str, n_estimators: int = 0) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """An example model trained in its image's pinned environment: the artifact and the versions used.

    Training is deterministic, so the result is kept beside the environment (per machine, keyed by the
    environment, example_runner.py's source and the request): later processes and test runs read it.
    """
    framework = Framework.XGBOOST if kind == "xgboost" else Framework.SKLEARN
    environment = environment_for(framework, default_version(framework))
    features, targets = _iris()
    request = {
        "command": "train",
        "model": kind,
        "n_estimators": n_estimators,
        "features": features.tolist(),
        "targets": targets.tolist(),
        "random_state": RANDOM_STATE,
    }
    digest = hashlib.sha256(Path(example_runner.__file__).read_bytes())
    digest.update(json.dumps(request, sort_keys=True).encode())
    cache = EnvironmentCache()
    kept = (
        cache.path(environment).with_name(f"{cache.path(environment).name}-examples")
        / digest.hexdigest()[:24]
    )
    if (kept / "libraries.json").is_file():
        libraries = json.loads((kept / "libraries.json").read_text())
        return (kept / "artifact").read_bytes(), tuple(sorted(libraries.items()))
    staging = Path(tempfile.mkdtemp(prefix=".train-", dir=_mkdir(kept.parent)))
    try:
        answer = _run_in_image(framework, {**request, "out": str(staging / "artifact")})
        (staging / "libraries.json").write_text(json.dumps(answer["libraries"]))
        with contextlib.suppress(OSError):  # another process kept the same result first
            staging.rename(kept)
        artifact = (kept / "artifact").read_bytes()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return artifact, tuple(sorted(answer["libraries"].items()))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_trained(path: Path, kind: str, n_estimators: int = 0) -> dict[str, str]:
    """Writes the trained artifact to path; returns the versions it was made with."""
    artifact, libraries = _trained(kind, n_estimators)
    path.write_bytes(artifact)
    return dict(libraries)


def _fit_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    features, targets = _iris()
    return LogisticRegression(max_iter=1000, random_state=RANDOM_STATE).fit(features, targets)


def build_sklearn_iris(
    dest_dir: Path | str,
    *,
    n_estimators: int | None = None,
    config: Mapping[str, Any] | None = None,
    with_handler: bool = True,
) -> Path:
    """dest_dir/model.tar.gz holding model.joblib: LogisticRegression, or a RandomForest of n_estimators.

    with_handler (default): plus the generated code/inference.py (model_fn) the scikit-learn image needs.
    """
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        artifact = Path(staging) / "model.joblib"
        if n_estimators is None:
            libraries = _write_trained(artifact, "logistic")
        else:
            libraries = _write_trained(artifact, "forest", n_estimators)
        return _tarball(dest_dir, [artifact], config=config, with_handler=with_handler, libraries=libraries)


def build_sklearn_forest(
    dest_dir: Path | str,
    n_estimators: int = 200,
    *,
    config: Mapping[str, Any] | None = None,
    with_handler: bool = True,
) -> Path:
    """The "larger" scikit-learn model: a RandomForest (200 trees is a few MB)."""
    return build_sklearn_iris(dest_dir, n_estimators=n_estimators, config=config, with_handler=with_handler)


def build_onnx_iris(
    dest_dir: Path | str, *, with_handler: bool = True, config: Mapping[str, Any] | None = None
) -> Path:
    """The iris LogisticRegression converted with skl2onnx: model.onnx, outputs label and probabilities.

    with_handler (default) adds modeldrop's ONNX code/inference.py and requirements.txt (what AWS needs).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(
        _fit_logistic(),
        initial_types=[("input", FloatTensorType([None, IRIS_FEATURES]))],
        options={"zipmap": False},
        target_opset=17,
    )
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        artifact = Path(staging) / "model.onnx"
        artifact.write_bytes(onnx_model.SerializeToString())
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        return _tarball(dest, [artifact], config=config, with_handler=with_handler)


def build_xgboost_iris(
    dest_dir: Path | str,
    *,
    artifact_name: str = "xgboost-model",
    config: Mapping[str, Any] | None = None,
) -> Path:
    """An XGBoost Booster (multi:softmax, UBJSON) saved as xgboost-model, as SageMaker's container expects."""
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        artifact = Path(staging) / artifact_name
        _write_trained(artifact, "xgboost")  # the booster file records its XGBoost version itself
        return _tarball(dest_dir, [artifact], config=config)


def build_custom_inference(dest_dir: Path | str, *, config: Mapping[str, Any] | None = None) -> Path:
    """model.joblib (scaler + LogisticRegression) with code/inference.py: JSON in, JSON out with names."""
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        root = Path(staging)
        libraries = _write_trained(root / "model.joblib", "pipeline")
        (root / "inference.py").write_text(CUSTOM_INFERENCE_PY)
        (root / "requirements.txt").write_text(CUSTOM_REQUIREMENTS_TXT)
        return _tarball(
            dest_dir,
            [root / "model.joblib"],
            inference_py=root / "inference.py",
            requirements_txt=root / "requirements.txt",
            config=config,
            libraries=libraries,
        )


def build_padded_model(
    dest_dir: Path | str,
    size_mb: float,
    *,
    config: Mapping[str, Any] | None = None,
    with_handler: bool = True,
) -> Path:
    """The iris model plus an incompressible padding.bin, so the tarball is about size_mb MB.

    For the pipeline and cold-start size benchmarks: download, extraction and memory sizing see a
    big model while predictions stay those of build_sklearn_iris.
    """
    padding_bytes = max(0, int(size_mb * 2**20))
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        root = Path(staging)
        libraries = _write_trained(root / "model.joblib", "logistic")
        generator = np.random.default_rng(RANDOM_STATE)
        chunk = 4 * 2**20
        with (root / "padding.bin").open("wb") as padding:
            remaining = padding_bytes
            while remaining > 0:
                padding.write(generator.bytes(min(chunk, remaining)))
                remaining -= chunk
        limits = TarballLimits(
            max_uncompressed_bytes=max(TarballLimits().max_uncompressed_bytes, padding_bytes + 2**20),
            max_member_bytes=max(TarballLimits().max_member_bytes, padding_bytes + 1),
        )
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        # Deflate stores random data uncompressed at any level, so level 0 gives the same bytes to
        # inflate, ten times faster to build.
        return build_model_tarball(
            [root / "model.joblib", root / "padding.bin"],
            dest / TARBALL_NAME,
            config=config,
            limits=limits,
            compresslevel=0,
            serving_code=with_handler,
            record_libraries=with_handler,
            libraries=libraries,
        )


def build_custom_weights(dest_dir: Path | str, *, config: Mapping[str, Any] | None = None) -> Path:
    """weights.npz (the iris LogisticRegression's weights) and code/inference.py: no framework artifact."""
    model = _fit_logistic()
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        root = Path(staging)
        np.savez(root / "weights.npz", coef=model.coef_, intercept=model.intercept_)
        (root / "inference.py").write_text(WEIGHTS_INFERENCE_PY)
        return _tarball(dest_dir, [root / "weights.npz"], inference_py=root / "inference.py", config=config)


def predict_in_process(tarball_path: Path | str, rows: list[list[float]]) -> Any:
    """Load the tarball's model as its serving container would, and predict rows.

    A pickle is loaded in the scikit-learn image's pinned environment, as the endpoint loads it (the
    handler code of the tarball runs there too); ONNX and XGBoost models load here. Returns the
    decoded JSON the endpoint is expected to answer (see the module docstring).
    """
    with tempfile.TemporaryDirectory(prefix="modeldrop-predict-") as tmp:
        model_dir = Path(tmp) / "model"
        with Path(tarball_path).open("rb") as stream:
            report = safe_extract(stream, model_dir, TarballLimits(max_uncompressed_bytes=2**40))
        request = {
            "command": "predict",
            "model_dir": str(model_dir),
            "rows": rows,
            "has_code": report.has_inference_code,
            "artifact": str(model_dir / report.artifacts[0]) if report.artifacts else None,
            "framework": report.framework.value if report.framework else None,
        }
        if report.framework in (Framework.ONNX, Framework.XGBOOST):
            return example_runner.predict(request)
        return _run_in_image(Framework.SKLEARN, request)["prediction"]
