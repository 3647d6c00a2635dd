"""Each loader serves the same predictions as the model loaded in-process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from modeldrop_local import example_models
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerStartError

from tests.integration.worker.conftest import (
    CUSTOM_IMAGE,
    XGBOOST_IMAGE,
    CustomModel,
    SpecFactory,
    extract,
    iris_body,
    write_tarball,
)

ROWS = example_models.iris_payload(12)


@pytest.mark.parametrize(
    ("model", "image"),
    [
        # A custom image: modeldrop's generic contract, where the files choose the built-in loader
        # (the prebuilt images' own behaviour is in test_container_profiles.py).
        ("sklearn", CUSTOM_IMAGE),
        ("xgboost", CUSTOM_IMAGE),
        ("onnx", CUSTOM_IMAGE),
        ("onnx-handler", CUSTOM_IMAGE),
        ("custom", CUSTOM_IMAGE),
    ],
)
def test_each_loader_predicts_like_the_model_in_process(
    start: Callable[..., Worker],
    model_dirs: dict[str, Path],
    tarballs: dict[str, Path],
    model: str,
    image: str,
) -> None:
    # Given a worker for a real example tarball
    worker = start(model_dirs[model], image=image)

    # When it is invoked with JSON rows
    result = worker.invoke(json.dumps(ROWS).encode(), "application/json", "application/json", "req-1")

    # Then it answers what the model predicts in-process
    assert result.status == 200, result.body
    assert result.content_type == "application/json"
    assert json.loads(result.body) == example_models.predict_in_process(tarballs[model], ROWS)
    assert result.model_latency_us > 0
    assert worker.setup_time_ms > 0


def test_second_cold_start_reuses_the_fork_server(
    launcher: WorkerLauncher, start: Callable[..., Worker], model_dirs: dict[str, Path]
) -> None:
    # Given a first worker (its fork server is now running)
    first = start(model_dirs["sklearn"])
    server = launcher.fork_server("sklearn")

    # When a second worker starts for the same framework
    second = start(model_dirs["sklearn"])

    # Then both are forks of the same preloaded server, distinct processes
    assert launcher.fork_server("sklearn") is server
    assert first.pid != second.pid
    assert server.ready is not None and "sklearn" in server.ready["loaded"]
    assert server.ready["threads"] == 1  # nothing but imports: safe to fork
    assert second.invoke(iris_body(), "application/json", "*/*", "req-2").status == 200


def test_transform_fn_with_context(start: Callable[..., Worker], custom_model: CustomModel) -> None:
    # Given an inference.py with a model_fn and a transform_fn that both take the context argument
    model_dir = custom_model(
        """
        import json, os
        import joblib
        import numpy as np

        def model_fn(model_dir, context):
            assert context.system_properties["model_dir"] == model_dir
            return joblib.load(os.path.join(model_dir, "model.joblib"))

        def transform_fn(model, body, content_type, accept, context):
            rows = np.asarray(json.loads(body), dtype=float)
            answer = {"labels": model.predict(rows).tolist(), "request": context.request_id}
            return json.dumps(answer), "application/vnd.iris+json"
        """
    )
    worker = start(model_dir)

    # When it is invoked
    result = worker.invoke(iris_body(), "application/json", "*/*", "req-ctx")

    # Then transform_fn answered, with its own content type and the request id from the context
    assert result.status == 200, result.body
    assert result.content_type == "application/vnd.iris+json"
    assert json.loads(result.body) == {"labels": [0, 0, 1, 2], "request": "req-ctx"}
    assert set(result.timings_ms) == {"transform"}


def test_partial_inference_py_falls_back_to_defaults(
    start: Callable[..., Worker], custom_model: CustomModel
) -> None:
    # Given an inference.py with only predict_fn (context-aware); model_fn, input_fn, output_fn default
    model_dir = custom_model(
        """
        import helper  # code/ is on sys.path

        def predict_fn(data, model, context):
            return helper.double(model.predict(data))
        """,
        {"code/helper.py": "def double(values):\n    return values * 2\n"},
    )
    worker = start(model_dir)

    # When it is invoked with CSV and asks for CSV
    result = worker.invoke(b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", "text/csv", "text/csv", "req-3")

    # Then the built-in sklearn loader, CSV decoder and encoder wrap the user's predict_fn
    assert result.status == 200, result.body
    assert result.body.decode().split() == ["0", "4"]
    assert set(result.timings_ms) == {"input", "predict", "output"}


def test_model_fn_only_with_a_callable_model(start: Callable[..., Worker], custom_model: CustomModel) -> None:
    # Given an inference.py whose model_fn returns a plain function (no predict method) on a custom image
    model_dir = custom_model(
        """
        def model_fn(model_dir):
            return lambda rows: [sum(row) for row in rows.tolist()]
        """
    )
    worker = start(model_dir, image=CUSTOM_IMAGE)

    # When it is invoked
    result = worker.invoke(b"[[1, 2], [3, 4]]", "application/json", "application/json", "req-4")

    # Then the default predict_fn calls the model
    assert result.status == 200, result.body
    assert json.loads(result.body) == [3, 7]


def test_predict_proba_when_the_environment_asks(
    start: Callable[..., Worker], model_dirs: dict[str, Path]
) -> None:
    # Given a scikit-learn worker whose environment asks for probabilities
    worker = start(model_dirs["sklearn"], environment={"MODELDROP_PREDICT_METHOD": "predict_proba"})

    # When it is invoked
    result = worker.invoke(iris_body(), "application/json", "application/json", "req-5")

    # Then each row is a probability distribution that favours the predicted class
    rows = json.loads(result.body)
    assert result.status == 200
    assert [len(row) for row in rows] == [3, 3, 3, 3]
    assert all(abs(sum(row) - 1.0) < 1e-6 for row in rows)
    assert [row.index(max(row)) for row in rows] == [0, 0, 1, 2]


def test_torchscript_without_torch_is_a_clear_start_error(
    launcher: WorkerLauncher, make_spec: SpecFactory, tmp_path: Path
) -> None:
    # Given a tarball with a TorchScript artifact, and no PyTorch installed here
    model_dir = extract(write_tarball(tmp_path / "tar", {"model.pt": b"not really"}), tmp_path / "torch")

    # When it is prepared, Then the reason says PyTorch is needed
    with pytest.raises(WorkerStartError, match=r"PyTorch, which is not installed in this local SageMaker"):
        launcher.prepare(make_spec(model_dir, image=CUSTOM_IMAGE))


def test_unknown_framework_is_a_clear_start_error(
    launcher: WorkerLauncher, make_spec: SpecFactory, tmp_path: Path
) -> None:
    # Given a model dir with no recognisable artifact and no inference.py (safe_extract refuses such
    # a tarball upstream, so the directory is written directly: the launcher must still say why)
    model_dir = tmp_path / "unknown"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"\0" * 16)

    # When it is prepared, Then the reason names the problem and the files
    with pytest.raises(WorkerStartError, match=r"unknown framework.*weights\.bin"):
        launcher.prepare(make_spec(model_dir, image=CUSTOM_IMAGE))


def test_a_root_file_that_is_no_booster_fails_the_xgboost_image_health_check(
    launcher: WorkerLauncher, make_spec: SpecFactory, tmp_path: Path, tarballs: dict[str, Path]
) -> None:
    # Given the XGBoost example with a modeldrop.json beside the booster, on the XGBoost image
    # (aws/sagemaker-xgboost-container algorithm_mode/serve_utils.py loads every root file as a booster)
    model_dir = extract(tarballs["xgboost"], tmp_path / "m")
    (model_dir / "modeldrop.json").write_text('{"memory_mb": 2048}')

    # When it is prepared, Then it fails as the image's /ping does, naming the file
    with pytest.raises(WorkerStartError, match=r"Unable to load model: modeldrop\.json at the model root"):
        launcher.prepare(make_spec(model_dir, image=XGBOOST_IMAGE))


def test_load_exception_reports_where_it_was_raised_in_one_line(
    launcher: WorkerLauncher, make_spec: SpecFactory, custom_model: CustomModel
) -> None:
    # Given a model_fn that raises
    model_dir = custom_model(
        """
        def model_fn(model_dir):
            raise RuntimeError("the weights are corrupt")
        """
    )

    # When it is prepared
    with pytest.raises(WorkerStartError) as raised:
        launcher.prepare(make_spec(model_dir))

    # Then the reason has the exception and where in the model's code it came from, on one line
    assert raised.value.reason == (
        "the model failed to load: RuntimeError: the weights are corrupt "
        "(at code/inference.py, line 3, in model_fn)"
    )
    # and the trace is in the worker's log (written by the log pump's thread, which may still be at it)
    log_path = make_spec(model_dir).log_path
    deadline = time.monotonic() + 10
    while "Traceback (most recent call last)" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Traceback (most recent call last)" in log_path.read_text()


def test_prepare_loads_then_stops_the_worker(
    launcher: WorkerLauncher, make_spec: SpecFactory, model_dirs: dict[str, Path]
) -> None:
    # Given a good model
    spec = make_spec(model_dirs["xgboost"], image=XGBOOST_IMAGE)

    # When it is prepared
    launcher.prepare(spec)

    # Then the log shows a worker that loaded and was stopped (no worker is left running)
    log = spec.log_path.read_text()
    assert "worker ready: setup" in log
    assert "XGBoost image, xgboost-algorithm on the xgboost-1.7-1/xgboost fork server" in log
