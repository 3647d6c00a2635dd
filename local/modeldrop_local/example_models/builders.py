"""The example model builders: each writes dest_dir/model.tar.gz and returns its path.

Every tarball works on AWS as it is (with_handler=False gives the bare artifact, for tests of what
OnUpload adds): scikit-learn and ONNX models carry the code/inference.py the scikit-learn image needs
and code/modeldrop-libraries.json (see modeldrop_local.packaging), which records the versions the artifact
was made with.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from modeldrop.tarball import TarballLimits

from modeldrop_local.example_models.image_training import write_trained
from modeldrop_local.example_models.inference_code import (
    CUSTOM_INFERENCE_PY,
    CUSTOM_REQUIREMENTS_TXT,
    WEIGHTS_INFERENCE_PY,
)
from modeldrop_local.example_models.iris import IRIS_FEATURES, RANDOM_STATE, fit_logistic
from modeldrop_local.packaging import TARBALL_NAME, build_model_tarball


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
            libraries = write_trained(artifact, "logistic")
        else:
            libraries = write_trained(artifact, "forest", n_estimators)
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
        fit_logistic(),
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
        write_trained(artifact, "xgboost")  # the booster file records its XGBoost version itself
        return _tarball(dest_dir, [artifact], config=config)


def build_custom_inference(
    dest_dir: Path | str,
    *,
    config: Mapping[str, Any] | None = None,
    inference_code: str = CUSTOM_INFERENCE_PY,
) -> Path:
    """model.joblib (scaler + LogisticRegression) with code/inference.py: JSON in, JSON out with names
    (or `inference_code`, another code/inference.py for the same model)."""
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        root = Path(staging)
        libraries = write_trained(root / "model.joblib", "pipeline")
        (root / "inference.py").write_text(inference_code)
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
        libraries = write_trained(root / "model.joblib", "logistic")
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
    model = fit_logistic()
    with tempfile.TemporaryDirectory(prefix="modeldrop-build-") as staging:
        root = Path(staging)
        np.savez(root / "weights.npz", coef=model.coef_, intercept=model.intercept_)
        (root / "inference.py").write_text(WEIGHTS_INFERENCE_PY)
        return _tarball(dest_dir, [root / "weights.npz"], inference_py=root / "inference.py", config=config)
