"""Fixtures for the worker tests: real tarballs extracted to temp dirs, one launcher per module."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from modeldrop.frameworks import Framework, image_for
from modeldrop.tarball import safe_extract
from modeldrop_local import example_models
from modeldrop_local.example_models.iris import fit_logistic
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerSpec

REGION = "us-east-1"
SKLEARN_IMAGE = image_for(Framework.SKLEARN, None, REGION)
XGBOOST_IMAGE = image_for(Framework.XGBOOST, None, REGION)
ONNX_IMAGE = image_for(Framework.ONNX, None, REGION)  # the scikit-learn image (no first-party ONNX)
CUSTOM_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-container:latest"


def extract(tarball: Path, dest: Path) -> Path:
    """Extract a model tarball the way the local SageMaker does (H1's safe_extract)."""
    with tarball.open("rb") as stream:
        safe_extract(stream, dest)
    return dest


def write_tarball(dest: Path, files: Mapping[str, bytes | str]) -> Path:
    """A real model.tar.gz holding the given members (arcname -> content)."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "model.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def iris_joblib_bytes() -> bytes:
    """The example iris LogisticRegression, serialised with joblib."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(fit_logistic(), buffer)
    return buffer.getvalue()


def iris_body(rows: int = 4) -> bytes:
    return json.dumps(example_models.iris_payload(rows)).encode()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerLauncher]:
    # pip runs offline (--no-index) in the tests: hermetic, and a missing package fails at once.
    worker_launcher = WorkerLauncher(tmp_path_factory.mktemp("worker-cache"), pip_no_index=True)
    yield worker_launcher
    worker_launcher.close()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example models (H1's builders), each built and extracted once per module."""
    root = tmp_path_factory.mktemp("models")
    builders: dict[str, Callable[[Path], Path]] = {
        # The bare artifacts (no code/), as these tests were written for; the builders now add handlers.
        "sklearn": lambda dest: example_models.build_sklearn_iris(dest, with_handler=False),
        "xgboost": example_models.build_xgboost_iris,
        "onnx": lambda dest: example_models.build_onnx_iris(dest, with_handler=False),
        "onnx-handler": lambda dest: example_models.build_onnx_iris(dest, with_handler=True),
        "custom": example_models.build_custom_inference,
    }
    return {name: extract(build(root / f"{name}-tar"), root / name) for name, build in builders.items()}


@pytest.fixture(scope="module")
def tarballs(model_dirs: dict[str, Path]) -> dict[str, Path]:
    return {name: path.parent / f"{name}-tar" / "model.tar.gz" for name, path in model_dirs.items()}


SpecFactory = Callable[..., WorkerSpec]


@pytest.fixture
def make_spec(tmp_path: Path) -> SpecFactory:
    def factory(
        model_dir: Path,
        image: str = CUSTOM_IMAGE,  # the generic contract; the prebuilt images: test_container_profiles.py
        environment: Mapping[str, str] | None = None,
        memory_mb: int = 1024,
        startup_timeout_s: float = 60.0,
    ) -> WorkerSpec:
        return WorkerSpec(
            model_dir=model_dir,
            image=image,
            environment=dict(environment or {}),
            memory_mb=memory_mb,
            log_path=tmp_path / "logs" / "worker.log",
            startup_timeout_s=startup_timeout_s,
        )

    return factory


@pytest.fixture
def start(launcher: WorkerLauncher, make_spec: SpecFactory) -> Iterator[Callable[..., Worker]]:
    """Start a worker for a model dir (keyword arguments go to the spec); stopped after the test."""
    started: list[Worker] = []

    def starter(model_dir: Path, **spec_fields: object) -> Worker:
        worker = launcher.start(make_spec(model_dir, **spec_fields))
        started.append(worker)
        return worker

    yield starter
    for worker in started:
        worker.stop()


CustomModel = Callable[..., Path]


@pytest.fixture
def custom_model(tmp_path: Path) -> CustomModel:
    """A tarball with the iris model.joblib and the given code/inference.py (+ extra members), extracted."""
    counter = iter(range(1000))

    def build(inference_py: str, extra: Mapping[str, bytes | str] | None = None) -> Path:
        index = next(counter)
        files: dict[str, bytes | str] = {
            "model.joblib": iris_joblib_bytes(),
            "code/inference.py": textwrap.dedent(inference_py),
            **(extra or {}),
        }
        tarball = write_tarball(tmp_path / f"custom-{index}-tar", files)
        return extract(tarball, tmp_path / f"custom-{index}")

    return build
