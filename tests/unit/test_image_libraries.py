"""The versions a model was saved with, read from its pickle, against the versions of each image."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import joblib
import pytest
from modeldrop.frameworks import Framework
from modeldrop.image_libraries import PICKLED_NUMPY_KEY, check_versions, pickled_libraries
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop_local.example_models.image_training import trained_artifact
from modeldrop_local.example_models.iris import iris_data
from modeldrop_local.packaging import build_model_tarball, describe_tarball
from sklearn.ensemble import RandomForestClassifier


def forest() -> RandomForestClassifier:
    features, targets = iris_data()
    return RandomForestClassifier(n_estimators=2, random_state=0).fit(features, targets)


@pytest.mark.parametrize("dump", ["joblib", "pickle"])
def test_a_pickle_written_here_names_its_scikit_learn_and_numpy_2(tmp_path: Path, dump: str) -> None:
    # Given a forest pickled in this environment (numpy 2, scikit-learn 1.9)
    import numpy
    import sklearn

    path = tmp_path / f"model.{'joblib' if dump == 'joblib' else 'pkl'}"
    if dump == "joblib":
        joblib.dump(forest(), path)
    else:
        path.write_bytes(pickle.dumps(forest()))

    # When read, Then it tells its scikit-learn version and that it references numpy._core
    assert numpy.__version__.startswith("2.")
    assert pickled_libraries(path) == {"scikit-learn": sklearn.__version__, PICKLED_NUMPY_KEY: "numpy._core"}


def test_the_example_pickle_names_the_image_versions(tmp_path: Path) -> None:
    # Given the example forest, pickled in the scikit-learn 1.2-1 image's environment
    path = tmp_path / "model.joblib"
    path.write_bytes(trained_artifact("forest", 3)[0])

    # Then it names scikit-learn 1.2.1 and numpy 1's module
    assert pickled_libraries(path) == {"scikit-learn": "1.2.1", PICKLED_NUMPY_KEY: "numpy.core"}


def test_a_compressed_joblib_tells_nothing(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(forest(), path, compress=3)
    assert pickled_libraries(path) == {}


def test_packaging_records_what_the_pickle_says_over_the_environment(tmp_path: Path) -> None:
    # Given a forest pickled here, packaged here
    joblib.dump(forest(), tmp_path / "model.joblib")
    tarball = build_model_tarball(tmp_path / "model.joblib", tmp_path / "out")

    # Then the recorded versions carry the pickle's evidence, and the 1.2-1 image refuses it
    report = describe_tarball(tarball)
    recorded = json.loads(report.libraries_bytes or b"{}")
    assert recorded[PICKLED_NUMPY_KEY] == "numpy._core"
    with pytest.raises(UploadRejected) as refused:
        check_versions(recorded, Framework.SKLEARN, "1.2-1")
    assert refused.value.code is RejectionCode.LIBRARIES
    assert "No module named 'numpy._core'" in refused.value.reason


@pytest.mark.parametrize(
    ("saved", "framework", "version", "refused", "warnings"),
    [
        # the image's own versions: nothing to say
        (
            {"numpy": "1.24.1", "scikit-learn": "1.2.1", PICKLED_NUMPY_KEY: "numpy.core"},
            "sklearn",
            "1.2-1",
            False,
            0,
        ),
        # numpy._core on a numpy 1.19 image: refused
        (
            {"numpy": "2.4.6", "scikit-learn": "1.9.1", PICKLED_NUMPY_KEY: "numpy._core"},
            "sklearn",
            "1.0-1",
            True,
            0,
        ),
        # numpy 2 recorded without the pickle's evidence, scikit-learn 1.9 on 1.0-1: two warnings
        ({"numpy": "2.4.6", "scikit-learn": "1.9.1"}, "sklearn", "1.0-1", False, 2),
        # an ONNX graph holds no pickles
        ({"numpy": "2.4.6", PICKLED_NUMPY_KEY: "numpy._core"}, "onnx", "1.2-1", False, 0),
        # an XGBoost pickle referencing numpy._core on the 1.5-1 image (numpy 1.19.2)
        ({"numpy": "2.4.6", PICKLED_NUMPY_KEY: "numpy._core"}, "xgboost", "1.5-1", True, 0),
        # a custom image: its libraries are unknown
        ({"numpy": "2.4.6", PICKLED_NUMPY_KEY: "numpy._core"}, "sklearn", None, False, 0),
    ],
)
def test_check_versions(
    saved: dict[str, str], framework: str, version: str | None, refused: bool, warnings: int
) -> None:
    if refused:
        with pytest.raises(UploadRejected):
            check_versions(saved, Framework(framework), version)
    else:
        assert len(check_versions(saved, Framework(framework), version)) == warnings


def test_a_refusal_names_the_image_pins() -> None:
    with pytest.raises(UploadRejected) as refused:
        check_versions({"numpy": "2.0.1", PICKLED_NUMPY_KEY: "numpy._core"}, Framework.SKLEARN, "1.2-1")
    assert "the sklearn 1.2-1 image has numpy 1.24.1" in refused.value.reason
    assert "numpy==1.24.1, scikit-learn==1.2.1" in refused.value.reason


def test_an_io_buffer_is_not_needed() -> None:
    # pickled_libraries reads files only: a name without a pickle suffix tells nothing
    assert pickled_libraries(Path(io.__file__)) == {}
