"""modeldrop.pickle_scan: what a pickle or joblib file names, read from its opcodes without executing them,
compared with what the real unpicklers import when they load the same bytes."""

from __future__ import annotations

import io
import pickle
import tarfile
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from joblib.numpy_pickle import NumpyUnpickler
from modeldrop.image_libraries import PICKLED_NUMPY_KEY, pickle_evidence
from modeldrop.pickle_scan import PickleFacts, scan_pickle
from modeldrop.tarball import inspect_tarball
from modeldrop_local.example_models.iris import iris_data
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier


class OneWay(io.RawIOBase):
    """A forward-only stream that counts what was read (an S3 body through the tarball's decompressor)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._data.read(size)
        self.read_bytes += len(chunk)
        return chunk


def models() -> dict[str, Any]:
    features, labels = iris_data()
    return {
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(features, labels),
        "pipeline": make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)).fit(
            features, labels
        ),
        # object-dtype arrays: joblib writes them as a nested pickle in place of the array's data
        "object-arrays": OneHotEncoder().fit(np.array([["a"], ["b"], ["c"]], dtype=object)),
    }


def imported_by_pickle(data: bytes) -> set[str]:
    class Recording(pickle.Unpickler):
        seen: set[str] = set()

        def find_class(self, module: str, name: str) -> Any:
            self.seen.add(f"{module}.{name}")
            return super().find_class(module, name)

    unpickler = Recording(io.BytesIO(data))
    unpickler.seen = set()
    unpickler.load()
    return unpickler.seen


def imported_by_joblib(data: bytes) -> set[str]:
    seen: set[str] = set()
    unpickler = NumpyUnpickler("", io.BytesIO(data), ensure_native_byte_order=False)
    real = unpickler.find_class

    def recording(module: str, name: str) -> Any:
        seen.add(f"{module}.{name}")
        return real(module, name)

    unpickler.find_class = recording  # type: ignore[method-assign]
    unpickler.load()
    return seen


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("kind", ["forest", "pipeline", "object-arrays"])
def test_the_globals_of_a_pickle_are_those_the_unpickler_imports(kind: str, protocol: int) -> None:
    # Given a real scikit-learn model pickled with each protocol
    data = pickle.dumps(models()[kind], protocol=protocol)

    # When its opcodes are scanned
    facts = scan_pickle(OneWay(data))

    # Then it names exactly what pickle.load imports, and the estimators' _sklearn_version
    assert facts.incomplete is None
    assert set(facts.globals) == imported_by_pickle(data)
    assert facts.sklearn_versions == [sklearn.__version__]


@pytest.mark.parametrize("kind", ["forest", "pipeline", "object-arrays"])
def test_joblib_array_data_is_skipped_not_read_as_opcodes(kind: str) -> None:
    # Given a joblib file (arrays written raw between the opcodes, object arrays as nested pickles)
    buffer = io.BytesIO()
    joblib.dump(models()[kind], buffer)
    data = buffer.getvalue()

    # When scanned
    facts = scan_pickle(OneWay(data))

    # Then it is read to its STOP and names what joblib.load imports, numpy._core here (numpy 2)
    assert facts.incomplete is None
    assert set(facts.globals) == imported_by_joblib(data)
    assert facts.sklearn_versions == [sklearn.__version__]
    assert pickle_evidence(facts) == {"scikit-learn": sklearn.__version__, PICKLED_NUMPY_KEY: "numpy._core"}


def test_a_long_argument_is_skipped_and_the_opcodes_read_are_bounded() -> None:
    # Given a pickle holding 8 MB of bytes, then a dict naming a version after it
    payload = {"blob": b"\0" * (8 * 2**20), "_sklearn_version": "1.2.1", "kind": np.float64}
    data = pickle.dumps(payload, protocol=4)

    # When scanned with a 64 KiB opcode budget
    facts = scan_pickle(OneWay(data), budget=64 * 1024)

    # Then the blob was skipped (not charged), and what follows it was still found
    assert facts.incomplete is None
    assert facts.sklearn_versions == ["1.2.1"]
    assert facts.names_module("numpy")

    # And a pickle of many small objects stops at the budget, keeping what it found first
    many = pickle.dumps([np.float64, *range(200_000), {"_sklearn_version": "1.2.1"}], protocol=4)
    bounded = scan_pickle(OneWay(many), budget=64 * 1024)
    assert bounded.incomplete == "stopped after 65536 bytes of pickle opcodes"
    assert bounded.names_module("numpy")
    assert bounded.sklearn_versions == []


@pytest.mark.parametrize(
    ("compress", "named"), [(3, "zlib"), (("gzip", 3), "gzip"), (("bz2", 3), "bz2"), (("xz", 3), "xz")]
)
def test_compressed_joblib_files_are_named_not_read(compress: Any, named: str) -> None:
    # Given a joblib file written with compression
    buffer = io.BytesIO()
    joblib.dump(models()["forest"], buffer, compress=compress)

    # When scanned / Then only its compressor is reported
    assert scan_pickle(OneWay(buffer.getvalue())) == PickleFacts(compression=named)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "the pickle ends before its STOP opcode"),
        (pickle.dumps({"a": 1})[:-3], "the pickle ends before its STOP opcode"),
        (b"\x80\x04\xff\xfe", "unknown opcode b'\\xff'"),
    ],
)
def test_what_is_not_a_whole_pickle_is_incomplete_never_an_error(data: bytes, says: str) -> None:
    assert scan_pickle(OneWay(data)).incomplete == says


def test_the_tarball_pass_scans_each_pickle_once_while_streaming() -> None:
    # Given a tarball holding a joblib forest next to code
    buffer = io.BytesIO()
    joblib.dump(models()["forest"], buffer)
    model = buffer.getvalue()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("model.joblib", model), ("code/inference.py", b"def model_fn(d):\n    pass\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stream = OneWay(archive.getvalue())

    # When inspected from a one-way stream
    report = inspect_tarball(stream)

    # Then the pickle's facts and the code are in the report, the stream was read once
    assert report.pickles["model.joblib"].names_module("numpy._core")
    assert report.code_sources == {"code/inference.py": b"def model_fn(d):\n    pass\n"}
    assert stream.read_bytes == len(archive.getvalue())
