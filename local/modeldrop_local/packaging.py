"""Build a model.tar.gz with the layout SageMaker expects, and prove it with inspect_tarball.

Layout: model artifacts at the root (extracted to /opt/ml/model), optional code/inference.py and
code/requirements.txt, optional modeldrop.json. The archive is reproducible (fixed mtimes, owners
and gzip header), so packaging the same files twice gives the same bytes and the same ETag.

The result works on AWS as it is: a scikit-learn or ONNX model without handler code gets the
code/inference.py that OnUpload would add (the scikit-learn image has no default loader), and
whenever code/ is written, code/modeldrop-libraries.json records the library versions the model was
saved with (given by the caller that trained it, else the packaging environment's, corrected by what
a pickle says of itself: modeldrop.image_libraries), so OnUpload can refuse a model the image cannot
load, or warn when it may not. Versions are provenance, not deployment settings, so not in
modeldrop.json: a modeldrop.json inside the tarball
replaces the sibling models/<name>/modeldrop.json whole. XGBoost tarballs get neither: the image loads
every root file as a booster and ignores code/ without SAGEMAKER_PROGRAM; the booster file records its
own XGBoost version.
"""

from __future__ import annotations

import gzip
import io
import json
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from modeldrop.frameworks import Framework, detect_framework
from modeldrop.image_libraries import pickled_libraries
from modeldrop.model_config import ModelConfig, parse_model_config
from modeldrop.rejection import RejectionCode, UploadRejected
from modeldrop.serving_setup import (
    ONNX_HANDLER_FILE,
    ONNX_REQUIREMENTS,
    choose_sklearn_artifact,
    onnx_code,
    sklearn_inference_py,
)
from modeldrop.tarball import (
    CONFIG_MEMBER,
    INFERENCE_CODE_MEMBER,
    LIBRARIES_MEMBER,
    REQUIREMENTS_MEMBER,
    TarballLimits,
    TarballReport,
    inspect_tarball,
)

TARBALL_NAME = "model.tar.gz"
_RESERVED_ROOT_NAMES = ("code", CONFIG_MEMBER)
__all__ = [
    "ONNX_HANDLER_FILE",
    "ONNX_REQUIREMENTS",
    "TARBALL_NAME",
    "build_model_tarball",
    "describe_tarball",
]
# The distributions whose versions decide whether a pickle loads on the image, per framework.
_RECORDED_LIBRARIES: dict[Framework | None, tuple[str, ...]] = {
    Framework.SKLEARN: ("scikit-learn", "numpy", "scipy", "joblib"),
    Framework.ONNX: ("onnx", "numpy"),
    None: ("scikit-learn", "numpy", "scipy", "joblib"),
}


class PackagingError(ValueError):
    """The inputs cannot make a valid model tarball; the message says which and why."""


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def _add_path(archive: tarfile.TarFile, source: Path, arcname: str) -> None:
    if source.is_symlink():
        raise PackagingError(f"symlinks are not packaged: {source}")
    archive.add(str(source), arcname=arcname, recursive=False, filter=_reset)
    if source.is_dir():
        for child in sorted(source.iterdir()):
            _add_path(archive, child, f"{arcname}/{child.name}")


def _add_bytes(archive: tarfile.TarFile, arcname: str, data: bytes) -> None:
    info = _reset(tarfile.TarInfo(arcname))
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _config_bytes(config: ModelConfig | Mapping[str, Any] | bytes) -> bytes:
    if isinstance(config, ModelConfig):
        raw = config.model_dump_json(exclude_unset=True, indent=2).encode()
    elif isinstance(config, bytes):
        raw = config
    else:
        raw = json.dumps(dict(config), indent=2).encode()
    parse_model_config(raw)  # UploadRejected names a bad key before anything is written
    return raw


def packaging_libraries(framework: Framework | None) -> dict[str, str]:
    """The Python and library versions of this environment that matter for the model's framework."""
    found = {"python": platform.python_version()}
    for name in _RECORDED_LIBRARIES.get(framework, _RECORDED_LIBRARIES[None]):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def saved_libraries(artifacts: list[Path], environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The versions the artifacts were saved with: `environment` (the one that trained them; default
    this one), corrected by what each pickle says of itself (modeldrop.image_libraries)."""
    found = dict(environment or packaging_libraries(detect_framework([path.name for path in artifacts])))
    for artifact in artifacts:
        if not artifact.is_file():
            continue
        pickled = pickled_libraries(artifact)
        if environment is None and pickled.get("scikit-learn", found.get("scikit-learn")) != found.get(
            "scikit-learn"
        ):
            # Pickled by another scikit-learn: this environment's numpy, scipy and Python say nothing of it.
            found = {}
        found |= pickled
    return found


def _generated_code(names: list[str]) -> dict[str, bytes]:
    """The code/ the scikit-learn image needs for these root artifacts (what OnUpload would add)."""
    framework = detect_framework(names)
    if framework is Framework.ONNX:
        return onnx_code()
    if framework is Framework.SKLEARN:
        artifact = choose_sklearn_artifact(names)
        if artifact is not None:
            return {INFERENCE_CODE_MEMBER: sklearn_inference_py(artifact)}
    return {}


def build_model_tarball(
    model_files: Path | str | Iterable[Path | str],
    dest: Path | str,
    inference_py: Path | str | None = None,
    requirements_txt: Path | str | None = None,
    config: ModelConfig | Mapping[str, Any] | bytes | None = None,
    limits: TarballLimits | None = None,
    compresslevel: int = 6,
    onnx_handler: bool = False,
    serving_code: bool = True,
    record_libraries: bool = True,
    libraries: Mapping[str, str] | None = None,
) -> Path:
    """Write model.tar.gz (dest: a file path, or a directory to hold model.tar.gz) and validate it.

    model_files are placed at the root under their own names; directories (a SavedModel) are added
    recursively. Raises PackagingError for unusable inputs, UploadRejected if the result would be
    refused on upload (a bad config included). compresslevel is gzip's (6, as `tar -czf`).
    onnx_handler adds modeldrop's ONNX handlers as code/ (required: fails without a .onnx file).
    serving_code (default): without inference_py, a scikit-learn or ONNX model gets the code/inference.py
    the scikit-learn image needs (OnUpload adds the same when it is missing). record_libraries: write
    code/modeldrop-libraries.json whenever there is a code/ folder: `libraries` when given (the versions of
    the environment that trained the model), else this environment's corrected by the artifacts' own.
    """
    sources = [Path(model_files)] if isinstance(model_files, str | Path) else [Path(p) for p in model_files]
    dest_path = Path(dest)
    if dest_path.is_dir():
        dest_path = dest_path / TARBALL_NAME
    names: dict[str, Path] = {}
    for source in sources:
        if not source.exists():
            raise PackagingError(f"model file not found: {source}")
        if source.name in _RESERVED_ROOT_NAMES:
            raise PackagingError(f"{source.name!r} is reserved at the tarball root; rename {source}")
        if source.name in names:
            raise PackagingError(
                f"two model files are both named {source.name!r}: {names[source.name]}, {source}"
            )
        names[source.name] = source
    for label, path in (("inference.py", inference_py), ("requirements.txt", requirements_txt)):
        if path is not None and not Path(path).is_file():
            raise PackagingError(f"{label} not found: {path}")
    if onnx_handler:
        if inference_py is not None or requirements_txt is not None:
            raise PackagingError(
                "onnx_handler brings its own code/: give no inference.py or requirements.txt"
            )
        if not any(name.endswith(".onnx") for name in names):
            raise PackagingError("onnx_handler needs a .onnx model file")
    config_raw = _config_bytes(config) if config is not None else None
    code: dict[str, bytes] = {}
    if inference_py is not None:
        code[INFERENCE_CODE_MEMBER] = Path(inference_py).read_bytes()
    if requirements_txt is not None:
        code[REQUIREMENTS_MEMBER] = Path(requirements_txt).read_bytes()
    if onnx_handler:
        code = onnx_code()
    elif serving_code and inference_py is None:
        code = _generated_code(list(names)) | code
    if code and record_libraries:
        recorded = saved_libraries(list(names.values()), libraries)
        code[LIBRARIES_MEMBER] = (json.dumps(recorded, indent=2, sort_keys=True) + "\n").encode()

    dest_path.parent.mkdir(parents=True, exist_ok=True)
    partial = dest_path.with_name(dest_path.name + ".partial")
    with (
        partial.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, source in names.items():
            _add_path(archive, source, name)
        if code:
            code_dir = tarfile.TarInfo("code")
            code_dir.type = tarfile.DIRTYPE
            archive.addfile(_reset(code_dir))
        for member, data in sorted(code.items()):
            _add_bytes(archive, member, data)
        if config_raw is not None:
            _add_bytes(archive, CONFIG_MEMBER, config_raw)
    try:
        with partial.open("rb") as stream:
            inspect_tarball(stream, limits)
    except UploadRejected:
        partial.unlink()
        raise
    partial.replace(dest_path)
    return dest_path


# ---------------------------------------------------------------- code/requirements.txt on the image
# The serving images install code/requirements.txt with pip when the container starts (sagemaker-containers
# _modules.py install on the scikit-learn image): a requirement with no wheel for the image's Python and
# platform is built from source there, or fails, on every cold start. pip itself answers which has one.
PIP_PLATFORM = "manylinux2014_x86_64"
_UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Could not fetch URL|connection broken|"
    r"Temporary failure in name resolution|Name or service not known|ConnectTimeoutError|ProxyError|timed out"
)
_NO_MATCH = re.compile(r"No matching distribution found for (.+)")


def pip_platforms(glibc: str | None) -> list[str]:
    """pip --platform values for an x86_64 image: manylinux2014 (pip adds 2010 and 1), and each
    manylinux_2_N up to the image's glibc (PEP 600: a wheel for glibc 2.N runs on any newer glibc)."""
    platforms = [PIP_PLATFORM]
    if glibc is not None:
        major, minor = (int(part) for part in glibc.split(".")[:2])
        platforms += [f"manylinux_{major}_{newest}_x86_64" for newest in range(minor, 4, -1)]
    return platforms


def check_requirements(
    requirements: Path, python: str, image: str, *, glibc: str | None = None, pip_options: Iterable[str] = ()
) -> list[str]:
    """Ask pip for a wheel of every line of `requirements` for the image's Python and platform.

    `pip download --only-binary :all: --python-version X.Y --platform ... --no-deps` into a temporary
    folder, with the user's pip configuration (index, find-links, proxy) and `pip_options` on top.
    Returns the wheel files found. UploadRejected (code requirements) names the first requirement with no
    wheel there; PackagingError says when no package index could be reached (nothing was checked).
    """
    with tempfile.TemporaryDirectory(prefix="modeldrop-requirements-") as folder:
        command = [
            sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
            "--only-binary", ":all:", "--no-deps", "--python-version", python,
            *(f"--platform={platform}" for platform in pip_platforms(glibc)),
            "--dest", folder, "-r", str(requirements), *pip_options,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        found = sorted(path.name for path in Path(folder).iterdir())
    if result.returncode == 0:
        return found
    output = f"{result.stdout}\n{result.stderr}"
    last_line = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "")
    if _UNREACHABLE.search(output):
        raise PackagingError(
            f"could not check {REQUIREMENTS_MEMBER} for the {image} image: no package index was reachable "
            f"({last_line.removeprefix('ERROR: ')}). Connect to your index (pip's own configuration is "
            "used), or package with --no-requirements-check"
        )
    missing = _NO_MATCH.search(output)
    if missing is not None:
        raise UploadRejected(
            RejectionCode.REQUIREMENTS,
            f"{REQUIREMENTS_MEMBER}: {missing[1].strip()} has no wheel for Python {python} on Linux x86_64 "
            f"(manylinux, glibc {glibc or '2.17'}), which the {image} image runs: it would be built from "
            "source at every start of the endpoint, or fail. Pin a version that publishes such a wheel, "
            "or leave it out",
        )
    raise PackagingError(f"pip could not check {REQUIREMENTS_MEMBER}: {last_line}")


def describe_tarball(path: Path | str, limits: TarballLimits | None = None) -> TarballReport:
    """inspect_tarball for a file on disk."""
    with Path(path).open("rb") as stream:
        return inspect_tarball(stream, limits)
