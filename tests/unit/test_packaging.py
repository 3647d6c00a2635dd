"""build_model_tarball: the SageMaker layout, reproducible bytes, and refusal of bad inputs."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from modeldrop.frameworks import Framework
from modeldrop.model_config import ConfigRejected, ModelConfig
from modeldrop.packaging import PackagingError, build_model_tarball, describe_tarball
from modeldrop.tarball import TarballLimits, TarballRejected


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "model.onnx").write_bytes(b"onnx-bytes")
    (tmp_path / "inference.py").write_text("def model_fn(model_dir):\n    return model_dir\n")
    (tmp_path / "requirements.txt").write_text("onnxruntime\n")
    return tmp_path


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as archive:
        return {info.name: info for info in archive.getmembers()}


def test_builds_the_sagemaker_layout(workdir: Path) -> None:
    # Given a model file, handler code, requirements and a config
    # When packaged
    tarball = build_model_tarball(
        workdir / "model.onnx",
        workdir / "out" / "model.tar.gz",
        inference_py=workdir / "inference.py",
        requirements_txt=workdir / "requirements.txt",
        config={"memory_mb": 2048, "max_concurrency": 3},
    )

    # Then artifacts are at the root, code under code/, and the config is modeldrop.json
    found = members(tarball)
    assert sorted(found) == [
        "code",
        "code/inference.py",
        "code/requirements.txt",
        "model.onnx",
        "modeldrop.json",
    ]
    assert found["code"].isdir()
    assert all(info.mtime == 0 and info.uid == 0 and info.uname == "" for info in found.values())
    report = describe_tarball(tarball)
    assert report.framework is Framework.ONNX
    assert report.has_inference_code and report.has_requirements
    assert json.loads(report.config_bytes or b"") == {"memory_mb": 2048, "max_concurrency": 3}


def test_packaging_is_reproducible(workdir: Path) -> None:
    first = build_model_tarball([workdir / "model.onnx"], workdir / "a.tar.gz")
    second = build_model_tarball([workdir / "model.onnx"], workdir / "b.tar.gz")
    assert first.read_bytes() == second.read_bytes()


def test_a_directory_destination_gets_model_tar_gz(workdir: Path) -> None:
    tarball = build_model_tarball(workdir / "model.onnx", workdir)
    assert tarball == workdir / "model.tar.gz"


def test_model_directories_are_added_recursively(tmp_path: Path) -> None:
    # Given a TensorFlow SavedModel directory
    saved = tmp_path / "1"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"pb")
    (saved / "variables" / "variables.index").write_bytes(b"idx")

    # When packaged
    tarball = build_model_tarball([saved], tmp_path / "model.tar.gz")

    # Then the directory tree is kept under its name and detected as TensorFlow
    assert describe_tarball(tarball).members == [
        "1",
        "1/saved_model.pb",
        "1/variables",
        "1/variables/variables.index",
    ]
    assert describe_tarball(tarball).framework is Framework.TENSORFLOW


def test_a_model_config_object_is_written_with_only_its_set_keys(workdir: Path) -> None:
    tarball = build_model_tarball(
        workdir / "model.onnx", workdir / "m.tar.gz", config=ModelConfig(framework=Framework.ONNX)
    )
    assert json.loads(describe_tarball(tarball).config_bytes or b"") == {"framework": "onnx"}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["missing.joblib"], "model file not found"),
        (["code"], "'code' is reserved at the tarball root"),
        (["modeldrop.json"], "'modeldrop.json' is reserved at the tarball root"),
        (["model.onnx", "sub/model.onnx"], "two model files are both named 'model.onnx'"),
    ],
)
def test_refuses_unusable_model_files(workdir: Path, files: list[str], message: str) -> None:
    (workdir / "code").mkdir()
    (workdir / "modeldrop.json").write_text("{}")
    (workdir / "sub").mkdir()
    (workdir / "sub" / "model.onnx").write_bytes(b"other")
    with pytest.raises(PackagingError, match=message):
        build_model_tarball([workdir / name for name in files], workdir / "out.tar.gz")
    assert not (workdir / "out.tar.gz").exists()


def test_refuses_a_missing_inference_py(workdir: Path) -> None:
    with pytest.raises(PackagingError, match=r"inference\.py not found"):
        build_model_tarball(workdir / "model.onnx", workdir / "o.tar.gz", inference_py=workdir / "nope.py")


def test_refuses_a_bad_config_before_writing(workdir: Path) -> None:
    with pytest.raises(ConfigRejected) as caught:
        build_model_tarball(workdir / "model.onnx", workdir / "o.tar.gz", config={"memory": 2048})
    assert caught.value.reason == "modeldrop.json: unknown key 'memory' (did you mean 'memory_mb'?)"
    assert not (workdir / "o.tar.gz").exists()


def test_refuses_a_layout_that_upload_would_reject(workdir: Path) -> None:
    # Given a file that is no recognisable model and no handler code
    (workdir / "notes.txt").write_text("not a model")

    # Then packaging fails the way the upload would, and leaves no file behind
    with pytest.raises(TarballRejected, match="no model artifact"):
        build_model_tarball(workdir / "notes.txt", workdir / "o.tar.gz")
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("o.tar.gz")) == []


def test_refuses_a_model_over_the_limits(workdir: Path) -> None:
    with pytest.raises(TarballRejected, match="too large uncompressed"):
        build_model_tarball(
            workdir / "model.onnx", workdir / "o.tar.gz", limits=TarballLimits(max_uncompressed_bytes=4)
        )
