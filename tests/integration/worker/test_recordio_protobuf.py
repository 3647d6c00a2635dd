"""application/x-recordio-protobuf on the XGBoost image's algorithm mode, as the real container reads it.

Sources (see local/modeldrop_local/sagemaker/worker/xgboost_container.py and recordio_protobuf.py):
aws/sagemaker-xgboost-container algorithm_mode/serve_utils.py parse_content_data, data_utils.py
get_content_type, encoder.py recordio_protobuf_to_dmatrix, algorithm_mode/serve.py invocations (a body
that fails to decode is 415). The bodies are the SageMaker Python SDK's own encoding
(recordio_golden/make_golden.py, regenerated and compared by the sdk-marked test at the end).
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from modeldrop_local import example_models
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerSpec
from modeldrop_local.sagemaker.worker.recordio_protobuf import MAGIC, read_recordio, read_records
from modeldrop_local.sagemaker.worker.xgboost_container import recordio_protobuf_to_matrix

from tests.integration.worker.conftest import XGBOOST_IMAGE, extract
from tests.integration.worker.recordio_golden.make_golden import CASES, INT_ROWS, ROWS
from tests.standalone_sagemaker import REPO_ROOT, venv_python

GOLDEN = Path(__file__).parent / "recordio_golden"
RECORDIO = "application/x-recordio-protobuf"


def golden(name: str) -> bytes:
    return (GOLDEN / f"{name}.rec").read_bytes()


def csv_body(rows: list[list[float]] | list[list[int]]) -> bytes:
    return "\n".join(",".join(str(cell) for cell in row) for row in rows).encode()


def dense_record(values: list[float]) -> bytes:
    """A Record with features["values"] a dense Float32Tensor, encoded by hand (record.proto numbers)."""

    def field(number: int, payload: bytes) -> bytes:  # a length-delimited field; lengths here are < 128
        return bytes([number << 3 | 2, len(payload)]) + payload

    tensor = field(1, struct.pack(f"<{len(values)}f", *values))
    entry = field(1, b"values") + field(2, field(2, tensor))
    return field(1, entry)


def frame(data: bytes, flag: int = 0) -> bytes:
    """One RecordIO part as dmlc-core writes it (magic, flag << 29 | length, data padded to 4)."""
    padding = b"\0" * (-len(data) % 4)
    return struct.pack("<II", MAGIC, flag << 29 | len(data)) + data + padding


@pytest.fixture(scope="module")
def xgboost_worker(launcher: WorkerLauncher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root = tmp_path_factory.mktemp("xgb-recordio")
    model_dir = extract(example_models.build_xgboost_iris(root / "tar"), root / "model")
    spec = WorkerSpec(
        model_dir=model_dir,
        image=XGBOOST_IMAGE,
        environment={},
        memory_mb=1024,
        log_path=root / "worker.log",
        startup_timeout_s=60.0,
    )
    worker = launcher.start(spec)
    yield worker
    worker.stop()


# ------------------------------------------------------------------------------- the decoder alone


def test_golden_rows_are_the_example_rows() -> None:
    assert example_models.iris_payload(3) == ROWS


@pytest.mark.parametrize("name", sorted(CASES))
def test_sdk_bodies_decode_to_the_rows_they_were_written_from(name: str) -> None:
    # Given a body the SageMaker Python SDK encoded from known rows
    rows, dtype, sparse, _ = CASES[name]
    # When it is decoded as encoder.recordio_protobuf_to_dmatrix reads it (labels ignored)
    matrix = recordio_protobuf_to_matrix(golden(name))
    # Then the matrix holds those rows, sparse (CSR) for the sparse writer
    assert hasattr(matrix, "tocsr") is sparse
    dense = matrix.toarray() if sparse else matrix
    expected = np.array(rows, dtype="int32" if dtype == "int64" else dtype)
    assert dense.dtype == expected.dtype
    assert np.array_equal(dense, expected)


def test_labels_and_the_record_fields_are_read_by_record_proto_numbers() -> None:
    records = read_records(golden("dense_float32"))
    assert [record.label["values"].values for record in records] == [[0.0], [1.0], [2.0]]
    assert all(record.features["values"].kind == "float32" for record in records)
    sparse = read_records(golden("sparse_float32"))[0].features["values"]
    assert (sparse.keys, sparse.shape) == ([0, 1, 2, 3], [4])


def test_a_record_split_at_the_magic_number_is_joined_with_it() -> None:
    # Given a record whose bytes hold the magic number (a float32 with the magic's bits), split there
    # into a first and a last part, as dmlc-core's RecordIOWriter writes it
    magic = struct.pack("<I", MAGIC)
    (magic_float,) = struct.unpack("<f", magic)
    values = [5.1, magic_float, 1.4, 0.2]
    record = dense_record(values)
    cut = record.index(magic)
    body = frame(record[:cut], 1) + frame(record[cut + 4 :], 3) + frame(dense_record(values))

    # When read, Then the parts are joined with the magic between them, and the record decodes whole
    assert list(read_recordio(body)) == [record, record]
    matrix = recordio_protobuf_to_matrix(body)
    assert np.array_equal(matrix, np.array([values, values], dtype="float32"))


# ------------------------------------------------------------------------------- through the worker


@pytest.mark.parametrize("name", sorted(CASES))
def test_recordio_protobuf_predicts_as_csv_for_the_same_rows(xgboost_worker: Worker, name: str) -> None:
    # Given the XGBoost example on the XGBoost image (algorithm mode) and an SDK-encoded body
    rows = INT_ROWS if name == "dense_int32" else ROWS
    expected = xgboost_worker.invoke(csv_body(rows), "text/csv", "text/csv", f"csv-{name}")
    assert expected.status == 200, expected.body

    # When the same rows come as recordio-protobuf
    answer = xgboost_worker.invoke(golden(name), RECORDIO, "text/csv", f"rec-{name}")

    # Then the answer is the CSV answer, byte for byte
    assert (answer.status, answer.content_type) == (200, "text/csv; charset=utf-8"), answer.body
    assert answer.body == expected.body


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        # data_utils.get_content_type: lowercased, then compared with the exact names
        ("application/x-recordio-protobuf", 200),
        ("recordio-protobuf", 200),
        ("Application/X-RecordIO-Protobuf", 200),
        ("application/x-recordio", 415),
        ("application/x-recordio-protobuf; charset=binary", 415),
        ("application/x-protobuf", 415),
    ],
)
def test_recordio_content_type_names_are_the_algorithms(
    xgboost_worker: Worker, content_type: str, status: int
) -> None:
    answer = xgboost_worker.invoke(golden("dense_float32"), content_type, "text/csv", "ct")
    assert answer.status == status, answer.body
    if status == 415:
        assert "is not an accepted ContentType" in answer.body.decode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"5.1,3.5,1.4,0.2", id="csv-bytes"),
        pytest.param(golden("dense_float32")[:-6], id="truncated"),
        pytest.param(b"\x0b" + golden("dense_float32")[1:], id="bad-magic"),
        pytest.param(frame(b"\x0a\xff\xff\xff\x0f"), id="protobuf-garbage"),
        pytest.param(frame(b"\x1a\x03uid"), id="no-values-feature"),
        pytest.param(golden("dense_float32") + golden("sparse_float32"), id="dense-then-sparse"),
    ],
)
def test_a_malformed_recordio_body_is_415_and_the_worker_keeps_serving(
    xgboost_worker: Worker, body: bytes
) -> None:
    # When a body that is not RecordIO-framed Records with a 'values' feature is sent
    answer = xgboost_worker.invoke(body, RECORDIO, "text/csv", "bad")

    # Then serve.py's answer to a parse_content_data failure: 415 with the encoder's message
    assert answer.status == 415, answer.body
    assert answer.body.decode().startswith(
        "Loading recordio-protobuf data failed with Exception, please ensure data is in "
        "recordio-protobuf format: "
    )
    assert xgboost_worker.invoke(golden("dense_float32"), RECORDIO, "text/csv", "after").status == 200


def test_recordio_rows_of_the_wrong_width_are_400(xgboost_worker: Worker) -> None:
    # Given rows with two features for the four-feature model (three would pass: one less is allowed)
    body = frame(dense_record([5.1, 3.5])) + frame(dense_record([7.0, 3.2]))
    # When invoked, Then serve_utils.predict's width check answers 400, naming the type
    answer = xgboost_worker.invoke(body, RECORDIO, "text/csv", "narrow")
    assert answer.status == 400, answer.body
    assert "Feature size of recordio-protobuf inference data 2" in answer.body.decode()


# ------------------------------------------------------------------------------- the golden bodies


@pytest.mark.sdk
def test_golden_bodies_are_what_the_sagemaker_sdk_writes(tmp_path: Path) -> None:
    # Given the SageMaker Python SDK (in .venv-sdk) writing the cases again
    script = GOLDEN / "make_golden.py"
    subprocess.run(
        [str(venv_python(".venv-sdk")), str(script), str(tmp_path)],
        check=True,
        cwd=REPO_ROOT,
        env={"SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=240,
    )
    # Then every committed body is byte for byte what it writes now
    for name in CASES:
        assert (tmp_path / f"{name}.rec").read_bytes() == golden(name), name
