"""code/requirements.txt: installed once per content hash, offline, with pip's message on failure."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerStartError

from tests.integration.worker.conftest import CustomModel, SpecFactory, iris_body

USES_TINYPKG = """
import tinypkg

def output_fn(prediction, accept):
    return tinypkg.label(prediction.tolist())
"""


def build_wheel(dest: Path, name: str = "tinypkg", version: str = "1.0") -> Path:
    """A real, minimal pure-Python wheel (PEP 427), built by hand: no network, no build backend."""
    files = {
        f"{name}/__init__.py": (
            "import json\n\n\ndef label(values):\n"
            f"    return json.dumps({{'labelled_by': '{name}-{version}', 'values': values}})\n"
        ),
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test package\n"
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: modeldrop-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record_lines = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(text.encode())}")
    record_path = f"{name}-{version}.dist-info/RECORD"
    files[record_path] = "\n".join([*record_lines, f"{record_path},,"]) + "\n"
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def wheel_bytes(tmp_path: Path) -> bytes:
    return build_wheel(tmp_path).read_bytes()


def installs(cache_dir: Path) -> list[Path]:
    root = cache_dir / "requirements"
    return sorted(path for path in root.iterdir() if not path.name.startswith(".")) if root.exists() else []


@pytest.mark.parametrize(
    "requirement",
    ["./tinypkg-1.0-py3-none-any.whl", "tinypkg==1.0"],
    ids=["local-path", "by-name-from-code-dir"],
)
def test_requirements_are_installed_and_importable(
    tmp_path: Path,
    make_spec: SpecFactory,
    custom_model: CustomModel,
    wheel_bytes: bytes,
    requirement: str,
) -> None:
    # Given a tarball whose code/ ships a wheel and names it in requirements.txt
    launcher = WorkerLauncher(tmp_path / "cache", pip_no_index=True)
    extra = {"code/tinypkg-1.0-py3-none-any.whl": wheel_bytes, "code/requirements.txt": f"{requirement}\n"}
    model_dir = custom_model(USES_TINYPKG, extra)
    try:
        # When a worker starts
        worker = launcher.start(make_spec(model_dir))

        # Then the model's code imports the installed package
        result = worker.invoke(iris_body(), "application/json", "application/json", "req-pkg")
        assert result.status == 200, result.body
        assert json.loads(result.body) == {"labelled_by": "tinypkg-1.0", "values": [0, 0, 1, 2]}
        assert len(installs(tmp_path / "cache")) == 1
    finally:
        launcher.close()


def test_requirements_are_installed_once_per_content(
    tmp_path: Path, make_spec: SpecFactory, custom_model: CustomModel, wheel_bytes: bytes
) -> None:
    # Given two extracted copies of the same tarball (same requirements and code)
    launcher = WorkerLauncher(tmp_path / "cache", pip_no_index=True)
    extra = {"code/tinypkg-1.0-py3-none-any.whl": wheel_bytes, "code/requirements.txt": "tinypkg==1.0\n"}
    first_dir, second_dir = custom_model(USES_TINYPKG, extra), custom_model(USES_TINYPKG, extra)
    try:
        # When the first is prepared (pip runs) and then both start workers
        launcher.prepare(make_spec(first_dir))
        [install] = installs(tmp_path / "cache")
        installed_at = install.stat().st_mtime_ns
        started = time.perf_counter()
        workers = [launcher.start(make_spec(first_dir)), launcher.start(make_spec(second_dir))]
        elapsed_s = time.perf_counter() - started

        # Then the cache holds one install, untouched, and the later starts did not run pip
        assert installs(tmp_path / "cache") == [install]
        assert install.stat().st_mtime_ns == installed_at
        assert elapsed_s < 2.0
        for worker in workers:
            assert worker.invoke(iris_body(), "application/json", "*/*", "req-again").status == 200
    finally:
        launcher.close()


def test_a_missing_package_fails_fast_with_pips_message(
    launcher: WorkerLauncher, make_spec: SpecFactory, custom_model: CustomModel
) -> None:
    # Given requirements naming a package that does not exist (and pip offline)
    model_dir = custom_model(
        "def output_fn(prediction, accept):\n    return '[]'\n",
        {"code/requirements.txt": "modeldrop-no-such-package==9.9\n"},
    )

    # When it is prepared
    started = time.perf_counter()
    with pytest.raises(WorkerStartError) as raised:
        launcher.prepare(make_spec(model_dir))

    # Then it fails quickly, with pip's own verdict in one line, and all pip said for the log
    assert time.perf_counter() - started < 30
    assert raised.value.reason == (
        "pip install -r code/requirements.txt failed (exit 1): "
        "ERROR: No matching distribution found for modeldrop-no-such-package==9.9"
    )
    assert "Could not find a version that satisfies" in raised.value.log_detail


def test_requirements_the_server_satisfies_need_no_pip(
    tmp_path: Path, make_spec: SpecFactory, model_dirs: dict[str, Path], start: Callable[..., Worker]
) -> None:
    # Given the ONNX tarball with modeldrop's handler, whose requirements.txt asks for onnxruntime
    model_dir = model_dirs["onnx-handler"]
    assert "onnxruntime" in (model_dir / "code" / "requirements.txt").read_text()
    launcher = WorkerLauncher(tmp_path / "cache", pip_no_index=True)
    try:
        # When it is prepared
        launcher.prepare(make_spec(model_dir))

        # Then nothing was installed: the server's onnxruntime satisfies it
        assert installs(tmp_path / "cache") == []
    finally:
        launcher.close()
