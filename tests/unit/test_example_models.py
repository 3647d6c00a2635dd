"""The example model builders make real tarballs that upload accepts and that predict iris correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from modeldrop.frameworks import Framework
from modeldrop_local import example_models
from modeldrop_local.packaging import describe_tarball

ROWS = 30


@pytest.mark.parametrize(
    ("build", "framework", "artifact", "as_float", "has_code"),
    [
        # The scikit-learn image has no default loader: the examples carry the code/inference.py it needs.
        (example_models.build_sklearn_iris, Framework.SKLEARN, "model.joblib", False, True),
        (example_models.build_onnx_iris, Framework.ONNX, "model.onnx", False, True),
        # XGBoost's algorithm mode loads the root booster itself.
        (example_models.build_xgboost_iris, Framework.XGBOOST, "xgboost-model", True, False),
    ],
)
def test_framework_examples_predict_iris(
    tmp_path: Path,
    build: Callable[[Path], Path],
    framework: Framework,
    artifact: str,
    as_float: bool,
    has_code: bool,
) -> None:
    # Given an example tarball
    tarball = build(tmp_path)

    # When upload's inspection and an in-process load look at it
    report = describe_tarball(tarball)
    predictions = example_models.predict_in_process(tarball, example_models.iris_payload(ROWS))

    # Then it is accepted as the right framework and classifies iris (nearly) perfectly
    assert tarball == tmp_path / "model.tar.gz"
    assert (report.framework, report.artifacts, report.has_inference_code) == (
        framework,
        [artifact],
        has_code,
    )
    targets = example_models.iris_targets(ROWS)
    assert all(isinstance(value, float if as_float else int) for value in predictions)
    correct = sum(int(p) == t for p, t in zip(predictions, targets, strict=True))
    assert correct >= ROWS - 2


def test_onnx_predictions_equal_the_sklearn_model(tmp_path: Path) -> None:
    rows = example_models.iris_payload(150)
    sklearn = example_models.predict_in_process(example_models.build_sklearn_iris(tmp_path / "s"), rows)
    onnx = example_models.predict_in_process(example_models.build_onnx_iris(tmp_path / "o"), rows)
    assert onnx == sklearn


def test_custom_inference_answers_json_with_class_names(tmp_path: Path) -> None:
    tarball = example_models.build_custom_inference(tmp_path)
    report = describe_tarball(tarball)
    assert report.has_inference_code and report.has_requirements
    answer = example_models.predict_in_process(tarball, example_models.iris_sample())
    assert example_models.iris_targets(4) == [0, 0, 1, 2]
    assert answer == {
        "predictions": [0, 0, 1, 2],
        "labels": ["setosa", "setosa", "versicolor", "virginica"],
    }


def test_forest_is_bigger_and_still_right(tmp_path: Path) -> None:
    small = example_models.build_sklearn_iris(tmp_path / "small")
    forest = example_models.build_sklearn_forest(tmp_path / "forest", n_estimators=50)
    assert forest.stat().st_size > 10 * small.stat().st_size
    predictions = example_models.predict_in_process(forest, example_models.iris_payload(ROWS))
    assert predictions == example_models.iris_targets(ROWS)


def test_padded_model_has_the_requested_size_and_the_iris_predictions(tmp_path: Path) -> None:
    tarball = example_models.build_padded_model(tmp_path, 3)
    assert 3 * 2**20 <= tarball.stat().st_size < 3.1 * 2**20
    report = describe_tarball(tarball)
    assert report.artifacts == ["model.joblib"]
    assert report.uncompressed_bytes > 3 * 2**20
    rows = example_models.iris_payload(8)
    assert example_models.predict_in_process(tarball, rows) == example_models.predict_in_process(
        example_models.build_sklearn_iris(tmp_path / "plain"), rows
    )


def test_builders_are_deterministic(tmp_path: Path) -> None:
    first = example_models.build_xgboost_iris(tmp_path / "a").read_bytes()
    second = example_models.build_xgboost_iris(tmp_path / "b").read_bytes()
    assert first == second


def test_config_is_embedded_as_modeldrop_json(tmp_path: Path) -> None:
    tarball = example_models.build_sklearn_iris(tmp_path, config={"memory_mb": 2048})
    assert describe_tarball(tarball).config_bytes == b'{\n  "memory_mb": 2048\n}'


def test_payload_spreads_over_the_classes() -> None:
    assert example_models.iris_targets(3) == [0, 1, 2]
    assert len(example_models.iris_payload(200)) == 200
    assert all(len(row) == 4 for row in example_models.iris_sample())


def test_example_script_writes_the_tarball_with_an_embedded_config(tmp_path: Path) -> None:
    # Given a modeldrop.json and the example script, run as a user would
    config = tmp_path / "modeldrop.json"
    config.write_text('{"max_concurrency": 3}')
    script = Path(__file__).resolve().parents[2] / "examples" / "build_sklearn_iris.py"

    # When it runs
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then it wrote a valid tarball and printed the in-process predictions
    assert result.returncode == 0, result.stderr
    report = describe_tarball(tmp_path / "out" / "model.tar.gz")
    assert json.loads(report.config_bytes or b"") == {"max_concurrency": 3}
    assert "predictions: [0, 0, 1, 2]" in result.stdout
