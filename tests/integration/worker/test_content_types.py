"""Content types in and out, Accept negotiation, and handler errors with their status."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from modeldrop_local import example_models
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerSpec

from tests.integration.worker.conftest import CUSTOM_IMAGE, CustomModel, iris_body

ROWS = example_models.iris_payload(6)
EXPECTED = example_models.predict_in_process  # (tarball, rows) -> the JSON answer


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def csv_bytes(rows: list[list[float]]) -> bytes:
    return "".join(",".join(repr(value) for value in row) + "\n" for row in rows).encode()


@pytest.fixture(scope="module")
def sklearn_worker(
    launcher: WorkerLauncher, model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One scikit-learn worker for the whole module: content types do not change its state."""
    spec = WorkerSpec(
        model_dir=model_dirs["sklearn"],
        image=CUSTOM_IMAGE,  # modeldrop's generic encoders; the sklearn image's: test_container_profiles.py
        environment={},
        memory_mb=1024,
        log_path=tmp_path_factory.mktemp("logs") / "worker.log",
    )
    worker = launcher.start(spec)
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def expected(tarballs: dict[str, Path]) -> list[int]:
    return list(EXPECTED(tarballs["sklearn"], ROWS))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps(ROWS).encode(), "application/json"),
        (json.dumps({"instances": ROWS}).encode(), "application/json; charset=utf-8"),
        (json.dumps({"inputs": ROWS}).encode(), "application/json"),
        (csv_bytes(ROWS), "text/csv"),
        (npy_bytes(np.asarray(ROWS)), "application/x-npy"),
    ],
    ids=["json-rows", "json-instances", "json-inputs", "csv", "npy"],
)
def test_each_input_type(sklearn_worker: Worker, expected: list[int], body: bytes, content_type: str) -> None:
    # Given the same rows in each supported encoding
    # When the worker is asked for JSON
    result = sklearn_worker.invoke(body, content_type, "application/json", "req-in")

    # Then every encoding gives the in-process predictions
    assert result.status == 200, result.body
    assert json.loads(result.body) == expected


@pytest.mark.parametrize(
    ("accept", "content_type", "answer_type"),
    [
        ("application/json", "text/csv", "application/json"),
        ("text/csv", "application/json", "text/csv"),
        ("application/x-npy", "application/json", "application/x-npy"),
        ("*/*", "text/csv", "text/csv"),  # wildcard: the request's own type
        ("", "application/x-npy", "application/x-npy"),  # missing: the request's own type
        ("text/html;q=0.9, text/csv;q=0.5", "application/json", "text/csv"),  # first supported by q
        ("application/json;q=0.2, text/csv", "application/json", "text/csv"),
    ],
)
def test_accept_negotiation(
    sklearn_worker: Worker, expected: list[int], accept: str, content_type: str, answer_type: str
) -> None:
    # Given rows encoded as content_type
    bodies = {
        "application/json": json.dumps(ROWS).encode(),
        "text/csv": csv_bytes(ROWS),
        "application/x-npy": npy_bytes(np.asarray(ROWS)),
    }

    # When the worker is invoked with this Accept
    result = sklearn_worker.invoke(bodies[content_type], content_type, accept, "req-accept")

    # Then it answers in the negotiated type, with the same predictions
    assert result.status == 200, result.body
    assert result.content_type == answer_type
    decoded = {
        "application/json": lambda raw: json.loads(raw),
        "text/csv": lambda raw: [int(line) for line in raw.decode().split()],
        "application/x-npy": lambda raw: np.load(io.BytesIO(raw)).tolist(),
    }[answer_type](result.body)
    assert decoded == expected


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        (b"[[1, 2, 3, 4]]", "application/json", "text/html", 415, "unsupported Accept 'text/html'"),
        (b"<rows/>", "application/xml", "*/*", 415, "unsupported content type 'application/xml'"),
        (b"[[1, 2, 3", "application/json", "application/json", 400, "not valid JSON"),
        (b"", "application/json", "application/json", 400, "empty request body"),
        (b'{"rows": []}', "application/json", "application/json", 400, '"instances"'),
        (b"1,2,3\n4,5\n", "text/csv", "application/json", 400, "different numbers of columns"),
        (b"not npy", "application/x-npy", "application/json", 400, "not a .npy array"),
        (
            b"[[5.1, 3.5, 1.4]]",
            "application/json",
            "application/json",
            400,
            "X has 3 features, but LogisticRegression is expecting 4 features as input.",
        ),
    ],
)
def test_handler_errors_carry_their_status(
    sklearn_worker: Worker, body: bytes, content_type: str, accept: str, status: int, message: str
) -> None:
    # Given a request the built-in handlers cannot serve
    # When the worker is invoked
    result = sklearn_worker.invoke(body, content_type, accept, "req-bad")

    # Then the answer has the handler's status and a message that says why; the worker keeps serving
    assert result.status == status
    assert message in result.body.decode()
    assert sklearn_worker.invoke(iris_body(), "application/json", "*/*", "req-after").status == 200


def test_xgboost_and_onnx_reject_wrong_feature_counts_with_400(
    launcher: WorkerLauncher, start: Callable[..., Worker], model_dirs: dict[str, Path]
) -> None:
    # Given XGBoost and ONNX workers (modeldrop's built-in loaders, on a custom image)
    from tests.integration.worker.conftest import CUSTOM_IMAGE

    workers = [
        start(model_dirs["xgboost"], image=CUSTOM_IMAGE),
        start(model_dirs["onnx"], image=CUSTOM_IMAGE),
    ]

    for worker in workers:
        # When they get rows with three features instead of four
        result = worker.invoke(b"[[5.1, 3.5, 1.4]]", "application/json", "application/json", "req-3f")

        # Then they answer 400 with the library's message
        assert result.status == 400, result.body
        assert result.body


def test_exception_in_user_code_is_500_with_its_message(
    start: Callable[..., Worker], custom_model: CustomModel
) -> None:
    # Given a predict_fn that raises, and an input_fn that raises an error carrying status 422
    worker = start(
        custom_model(
            """
            import json

            class Unprocessable(Exception):
                status_code = 422

            def input_fn(body, content_type):
                rows = json.loads(body)
                if not rows:
                    raise Unprocessable("no rows to score")
                return rows

            def predict_fn(data, model):
                raise KeyError("feature 'petal_width' missing")
            """
        )
    )

    # When it is invoked
    failed = worker.invoke(iris_body(), "application/json", "application/json", "req-500")
    unprocessable = worker.invoke(b"[]", "application/json", "application/json", "req-422")

    # Then the status is 500 with the exception, or the status the exception carries
    assert failed.status == 500
    assert failed.body.decode() == "KeyError: \"feature 'petal_width' missing\""
    assert unprocessable.status == 422
    assert unprocessable.body.decode() == "Unprocessable: no rows to score"


def test_custom_output_fn_gets_the_resolved_accept(
    start: Callable[..., Worker], custom_model: CustomModel
) -> None:
    # Given an output_fn that echoes the accept it was given
    worker = start(
        custom_model(
            """
            def output_fn(prediction, accept):
                return f"{accept}:{prediction.tolist()}"
            """
        )
    )

    # When the caller sends */* with CSV, then a specific type
    wildcard = worker.invoke(b"5.1,3.5,1.4,0.2\n", "text/csv", "*/*", "req-w")
    specific = worker.invoke(b"[[5.1,3.5,1.4,0.2]]", "application/json", "application/vnd.custom", "req-s")

    # Then output_fn saw the request's type for */*, and the caller's own type otherwise
    assert wildcard.body == b"text/csv:[0]"
    assert wildcard.content_type == "text/csv"
    assert specific.body == b"application/vnd.custom:[0]"
    assert specific.content_type == "application/vnd.custom"
