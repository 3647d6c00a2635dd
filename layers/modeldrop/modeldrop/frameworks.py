"""Which ML framework a model tarball holds, and which prebuilt SageMaker image serves it.

The image table lives in framework_images.json (data, not code) so a new version or region is a
one-line change. Detection looks only at member names: the tarball is streamed, never loaded.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from modeldrop.rejection import RejectionCode, UploadRejected

IMAGES_FILE = Path(__file__).with_name("framework_images.json")


class Framework(StrEnum):
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    ONNX = "onnx"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"


class UnknownFrameworkImage(ValueError):
    """No prebuilt image for this framework, version or region; the message says which and what exists."""


# When a tarball holds artifacts of several kinds, the most specific wins: pickles are often
# auxiliary (encoders, vocabularies) next to the real model, so scikit-learn comes last.
DETECTION_PRIORITY = (
    Framework.TENSORFLOW,
    Framework.PYTORCH,
    Framework.ONNX,
    Framework.XGBOOST,
    Framework.SKLEARN,
)

_SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
_XGBOOST_SUFFIXES = (".ubj", ".bst")
# A bare .json or .model file is ambiguous (it could be anything); only XGBoost-style names count.
_XGBOOST_NAMED = re.compile(r"^(xgboost|xgb)([-_.][\w.-]*)?$")
_PYTORCH_SUFFIXES = (".pt", ".pth", ".torchscript")


def _ignored(name: str) -> bool:
    """Handler code, macOS resource forks and config are never model artifacts."""
    parts = name.split("/")
    base = parts[-1]
    return (
        parts[0] in ("code", "__MACOSX")
        or base.startswith("._")
        or base == ""
        or (len(parts) == 1 and base == "modeldrop.json")
    )


def artifact_framework(name: str) -> Framework | None:
    """The framework a single member name (relative, '/'-separated) is an artifact of, if any."""
    name = name.removeprefix("./")
    if _ignored(name):
        return None
    base = posixpath.basename(name).lower()
    if base == "saved_model.pb":
        return Framework.TENSORFLOW
    if base.endswith(_PYTORCH_SUFFIXES):
        return Framework.PYTORCH
    if base.endswith(".onnx"):
        return Framework.ONNX
    if base.endswith(_XGBOOST_SUFFIXES) or _XGBOOST_NAMED.match(base):
        return Framework.XGBOOST
    if base.endswith(_SKLEARN_SUFFIXES):
        return Framework.SKLEARN
    return None


def model_artifacts(member_names: Iterable[str]) -> list[str]:
    """The member names that are recognisable model artifacts, in input order."""
    return [name for name in member_names if artifact_framework(name) is not None]


def detect_framework(member_names: Iterable[str]) -> Framework | None:
    """The framework of the model in a tarball from its member names; None when nothing is recognisable."""
    found = {framework for name in member_names if (framework := artifact_framework(name)) is not None}
    return next((framework for framework in DETECTION_PRIORITY if framework in found), None)


@cache
def _table() -> dict[str, Any]:
    table: dict[str, Any] = json.loads(IMAGES_FILE.read_text())
    return table


def _entry(framework: Framework) -> dict[str, Any]:
    entry: dict[str, Any] = _table()["frameworks"][framework.value]
    return entry


def supported_versions(framework: Framework) -> list[str]:
    return list(_entry(framework)["versions"])


def default_version(framework: Framework) -> str:
    return str(_entry(framework)["default_version"])


def supported_regions() -> list[str]:
    groups = _table()["accounts"].values()
    return sorted(set.intersection(*(set(group) for group in groups)))


def image_for(framework: Framework | str, version: str | None, region: str) -> str:
    """The prebuilt SageMaker CPU inference image for a framework, version (None: default) and region."""
    framework = Framework(framework)
    entry = _entry(framework)
    version = version or str(entry["default_version"])
    if version not in entry["versions"]:
        raise UnknownFrameworkImage(
            f"no prebuilt image for {framework.value} version {version!r}; "
            f"supported versions: {', '.join(entry['versions'])}"
        )
    host = entry
    if "hosted_on" in entry:
        host = _entry(Framework(entry["hosted_on"]))
    accounts: dict[str, str] = _table()["accounts"][host["account_group"]]
    if region not in accounts:
        raise UnknownFrameworkImage(
            f"no prebuilt {framework.value} image known for region {region!r}; "
            f"known regions: {', '.join(sorted(accounts))} (add it to framework_images.json)"
        )
    tag = host["tag_template"].format(version=version)
    return f"{accounts[region]}.dkr.ecr.{region}.{_table()['dns_suffix']}/{host['repository']}:{tag}"


_IMAGE_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repository>[^:@]+)"
)


def framework_from_image(image: str) -> Framework | None:
    """The framework a prebuilt SageMaker image serves; None for custom images.

    ONNX is hosted on the scikit-learn image (see framework_images.json), so that image answers
    sklearn; whoever loads the model decides ONNX from the files (detect_framework).
    """
    match = _IMAGE_URI.match(image)
    if match is None:
        return None
    repository = match["repository"]
    for framework in Framework:
        entry = _entry(framework)
        if "hosted_on" in entry:
            continue
        group = _table()["accounts"][entry["account_group"]]
        if entry["repository"] == repository and group.get(match["region"]) == match["account"]:
            return framework
    return None


def version_from_image(image: str) -> str | None:
    """The framework version of a prebuilt image (its tag, as tag_template writes it); None: not one."""
    framework = framework_from_image(image)
    if framework is None:
        return None
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    entry = _entry(framework)
    for version in entry["versions"]:
        if entry["tag_template"].format(version=version) == tag:
            return str(version)
    return None


def serving_framework(image: str, member_names: Iterable[str]) -> Framework | None:
    """Which built-in loader serves a model: the image's framework, refined by the files.

    For the local SageMaker, which has no containers: ONNX models arrive on the scikit-learn image
    (see framework_images.json), so a .onnx artifact there means ONNX; a custom image has no
    framework of its own, so the files decide. None: nothing built in can load it.
    """
    names = list(member_names)
    from_image = framework_from_image(image)
    from_files = detect_framework(names)
    if from_image is None or (from_image is Framework.SKLEARN and from_files is Framework.ONNX):
        return from_files
    return from_image


# ---------------------------------------------------------------- layouts the prebuilt images load
# TensorFlow Serving serves only a SavedModel inside a numbered version folder, optionally under one
# model-name folder: /opt/ml/model/[<name>/]<digits>/saved_model.pb; otherwise it stops with "no SavedModel
# bundles found!" (aws/sagemaker-tensorflow-serving-container docker/build_artifacts/sagemaker/tfs_utils.py
# find_models, serve.py). Handler code does not change that: inference.py only pre/post-processes.
_TF_VERSIONED = re.compile(r"^(?:[^/]+/)?\d+/saved_model\.pb$")
# The PyTorch image's default model_fn loads root model.pt, else the only root .pt/.pth, as TorchScript
# (aws/sagemaker-pytorch-inference-toolkit src/sagemaker_pytorch_serving_container/
# default_pytorch_inference_handler.py default_model_fn). A code/inference.py brings its own model_fn.
PYTORCH_DEFAULT_MODEL = "model.pt"
_PYTORCH_DEFAULT_SUFFIXES = (".pt", ".pth")


def tensorflow_saved_models(member_names: Iterable[str]) -> list[str]:
    """The saved_model.pb members TensorFlow Serving finds ([<name>/]<digits>/saved_model.pb)."""
    return [name.removeprefix("./") for name in member_names if _TF_VERSIONED.match(name.removeprefix("./"))]


def pytorch_default_model(member_names: Iterable[str]) -> str | None:
    """The file the PyTorch image's default model_fn loads: root model.pt, else the only root .pt/.pth."""
    root = [name.removeprefix("./") for name in member_names if "/" not in name.removeprefix("./")]
    if PYTORCH_DEFAULT_MODEL in root:
        return PYTORCH_DEFAULT_MODEL
    candidates = [name for name in root if name.lower().endswith(_PYTORCH_DEFAULT_SUFFIXES)]
    return candidates[0] if len(candidates) == 1 else None


def check_layout(framework: Framework | None, files: Iterable[str], has_inference_code: bool) -> None:
    """UploadRejected (code layout) saying why the prebuilt image of `framework` cannot load this layout.

    files: the tarball's non-directory member names. Only TensorFlow and PyTorch have layout rules;
    the other images load by name (a generated or the user's model_fn, or XGBoost's every root file).
    """
    names = [name.removeprefix("./") for name in files]
    if framework is Framework.TENSORFLOW and not tensorflow_saved_models(names):
        found = [name for name in names if posixpath.basename(name) == "saved_model.pb"]
        raise UploadRejected(
            RejectionCode.LAYOUT,
            "TensorFlow Serving needs the SavedModel in a numbered version folder: 1/saved_model.pb "
            "(with 1/variables/), or <model name>/1/saved_model.pb; found "
            + (", ".join(found) if found else "no saved_model.pb"),
        )
    if framework is Framework.PYTORCH and not has_inference_code and pytorch_default_model(names) is None:
        root = [
            name for name in names if "/" not in name and name.lower().endswith(_PYTORCH_DEFAULT_SUFFIXES)
        ]
        listed = ", ".join(root) if root else "none at the root"
        raise UploadRejected(
            RejectionCode.LAYOUT,
            "the PyTorch image's default model_fn loads model.pt at the tarball root, or the only .pt/.pth "
            f"file there (TorchScript); found .pt/.pth files: {listed}. Rename the model to model.pt at the "
            "root, or add code/inference.py with a model_fn",
        )
