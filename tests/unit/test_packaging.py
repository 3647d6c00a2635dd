"""build_model_tarball: the SageMaker layout, reproducible bytes, and refusal of bad inputs."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from modeldrop.frameworks import Framework
from modeldrop.model_config import ModelConfig
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop.tarball import TarballLimits
from modeldrop_local.packaging import (
    PackagingError,
    build_model_tarball,
    check_requirements,
    describe_tarball,
)

from tests.utils import build_wheel, free_port, isolate_pip


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

    # Then artifacts are at the root, code under code/ (with the versions it was packaged with), and the
    # config is modeldrop.json
    found = members(tarball)
    assert sorted(found) == [
        "code",
        "code/inference.py",
        "code/modeldrop-libraries.json",
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
    with pytest.raises(UploadRejected) as caught:
        build_model_tarball(workdir / "model.onnx", workdir / "o.tar.gz", config={"memory": 2048})
    assert caught.value.reason == "modeldrop.json: unknown key 'memory' (did you mean 'memory_mb'?)"
    assert not (workdir / "o.tar.gz").exists()


def test_refuses_a_layout_that_upload_would_reject(workdir: Path) -> None:
    # Given a file that is no recognisable model and no handler code
    (workdir / "notes.txt").write_text("not a model")

    # Then packaging fails the way the upload would, and leaves no file behind
    with pytest.raises(UploadRejected, match="no model artifact"):
        build_model_tarball(workdir / "notes.txt", workdir / "o.tar.gz")
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("o.tar.gz")) == []


def test_refuses_a_model_over_the_limits(workdir: Path) -> None:
    with pytest.raises(UploadRejected, match="too large uncompressed"):
        build_model_tarball(
            workdir / "model.onnx", workdir / "o.tar.gz", limits=TarballLimits(max_uncompressed_bytes=4)
        )


def test_onnx_handler_adds_code_that_serves_the_model(tmp_path: Path) -> None:
    # Given the iris ONNX model packaged with modeldrop's ONNX handlers
    from modeldrop_local import example_models

    with_handler = example_models.build_onnx_iris(tmp_path / "h", with_handler=True)
    plain = example_models.build_onnx_iris(tmp_path / "p", with_handler=False)

    # When the handlers (as the container would run them) and the built-in loader predict
    rows = example_models.iris_payload(20)
    report = describe_tarball(with_handler)

    # Then the layout carries code/ and both give the same predictions
    assert report.has_inference_code and report.has_requirements
    assert example_models.predict_in_process(with_handler, rows) == example_models.predict_in_process(
        plain, rows
    )


def test_onnx_handler_reads_csv_and_npy_and_writes_csv(tmp_path: Path) -> None:
    import numpy as np
    from modeldrop import onnx_handler
    from modeldrop.tarball import safe_extract
    from modeldrop_local import example_models

    with example_models.build_onnx_iris(tmp_path).open("rb") as stream:
        safe_extract(stream, tmp_path / "model")
    session = onnx_handler.model_fn(str(tmp_path / "model"))
    rows = np.asarray(example_models.iris_payload(3))
    npy = io.BytesIO()
    np.save(npy, rows)

    from_csv = onnx_handler.predict_fn(
        onnx_handler.input_fn(b"5.1,3.5,1.4,0.2\n6.6,3.0,4.4,1.4\n", "text/csv"), session
    )
    from_npy = onnx_handler.predict_fn(onnx_handler.input_fn(npy.getvalue(), "application/x-npy"), session)

    assert (
        onnx_handler.output_fn(from_csv, "text/csv") == "0.000000000000000000e+00\n1.000000000000000000e+00\n"
    )
    assert json.loads(onnx_handler.output_fn(from_npy, "application/json")) == example_models.iris_targets(3)
    with pytest.raises(ValueError, match="unsupported content type 'image/png'"):
        onnx_handler.input_fn(b"", "image/png")


def test_onnx_handler_needs_an_onnx_file_and_no_other_code(workdir: Path) -> None:
    (workdir / "model.joblib").write_bytes(b"x")
    with pytest.raises(PackagingError, match=r"onnx_handler needs a \.onnx model file"):
        build_model_tarball(workdir / "model.joblib", workdir / "o.tar.gz", onnx_handler=True)
    with pytest.raises(PackagingError, match="onnx_handler brings its own code/"):
        build_model_tarball(
            workdir / "model.onnx",
            workdir / "o.tar.gz",
            inference_py=workdir / "inference.py",
            onnx_handler=True,
        )


# ---------------------------------------------------------------- code/requirements.txt on the image
@pytest.fixture
def wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local index (--find-links) of hand-built wheels, and pip told to use nothing else."""
    folder = tmp_path / "wheels"
    build_wheel(folder, "fitsimage", "1.0", "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64")
    build_wheel(folder, "newglibc", "1.0", "cp39-cp39-manylinux_2_27_x86_64")
    build_wheel(folder, "tooneglibc", "1.0", "cp39-cp39-manylinux_2_34_x86_64")
    build_wheel(folder, "onlycp311", "1.0", "cp311-cp311-manylinux2014_x86_64")
    build_wheel(folder, "pure", "2.0", "py3-none-any")
    isolate_pip(monkeypatch, no_index="1", find_links=str(folder))
    return folder


def test_requirements_with_wheels_for_the_image_pass(tmp_path: Path, wheels: Path) -> None:
    # Given requirements whose wheels fit Python 3.9 on glibc 2.31 (manylinux2014, manylinux_2_27, pure)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fitsimage==1.0\nnewglibc==1.0\npure\n")

    # When checked for the scikit-learn 1.2-1 image / Then pip found a wheel for each
    found = check_requirements(requirements, "3.9", "sklearn 1.2-1", glibc="2.31")
    assert found == [
        "fitsimage-1.0-cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "newglibc-1.0-cp39-cp39-manylinux_2_27_x86_64.whl",
        "pure-2.0-py3-none-any.whl",
    ]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("onlycp311==1.0", "onlycp311==1.0 has no wheel for Python 3.9"),  # built for another Python
        ("tooneglibc==1.0", "tooneglibc==1.0 has no wheel for Python 3.9"),  # needs glibc 2.34
        ("missing", "missing has no wheel for Python 3.9"),  # not on the index at all
    ],
)
def test_a_requirement_without_a_wheel_for_the_image_is_refused(
    tmp_path: Path, wheels: Path, line: str, why: str
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"fitsimage==1.0\n{line}\n")
    with pytest.raises(UploadRejected) as refused:
        check_requirements(requirements, "3.9", "sklearn 1.2-1", glibc="2.31")
    assert refused.value.code is RejectionCode.REQUIREMENTS
    assert refused.value.reason == (
        f"code/requirements.txt: {why} on Linux x86_64 (manylinux, glibc 2.31), which the sklearn 1.2-1 "
        "image runs: it would be built from source at every start of the endpoint, or fail. Pin a version "
        "that publishes such a wheel, or leave it out"
    )


@pytest.mark.allow_hosts(["127.0.0.1"])  # free_port finds a loopback port nothing listens on
def test_an_unreachable_index_is_said_so_not_taken_for_a_missing_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given pip pointed at an index on a loopback port nothing listens on
    port = free_port()
    isolate_pip(monkeypatch, index_url=f"http://127.0.0.1:{port}/simple", retries="1", timeout="2")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("fitsimage==1.0\n")

    # When checked / Then the message says nothing could be checked, and how to go on
    with pytest.raises(PackagingError) as unchecked:
        check_requirements(requirements, "3.9", "sklearn 1.2-1", glibc="2.31")
    assert str(unchecked.value).startswith(
        "could not check code/requirements.txt for the sklearn 1.2-1 image: no package index was reachable"
    )
    assert str(unchecked.value).endswith("or package with --no-requirements-check")
