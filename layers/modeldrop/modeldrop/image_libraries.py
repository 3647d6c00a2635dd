"""Which library versions each prebuilt image runs, which versions a model was saved with, and the gap.

A pickled model loads only where the libraries it was pickled with can be imported: a numpy 2 pickle
names `numpy._core`, which numpy 1.x does not have, so the scikit-learn 1.2-1 image (numpy 1.24.1)
fails its health check on it (`No module named 'numpy._core'`: numpy 2.0 renamed numpy.core to
numpy._core, numpy/numpy doc/source/numpy_2_0_migration_guide.rst). OnUpload refuses
such a model; a scikit-learn version other than the image's only warns (scikit-learn unpickles other
versions with InconsistentVersionWarning and often works, but promises nothing).

The versions a model was saved with come from code/modeldrop-libraries.json (written by modeldrop's
packaging), and what a pickle says of itself wins over the packaging environment: scikit-learn
stores `_sklearn_version` in every estimator it pickles, and the numpy module path it references
tells numpy 1 (`numpy.core`) from numpy 2 (`numpy._core`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modeldrop.frameworks import Framework
from modeldrop.pickle_scan import PICKLE_SUFFIXES, PickleFacts, scan_pickle
from modeldrop.rejection import RejectionCode, UploadRejected


@dataclass(frozen=True)
class ImageLibraries:
    """The Python and the libraries of one prebuilt image version that decide what it can load."""

    framework: Framework
    version: str
    libraries: Mapping[str, str]  # distribution name -> version, as the image installs it
    source: str
    python: str | None = None  # None: not read from the image's source
    # The C library of the image's base, which decides the manylinux wheels it can install (None: unknown).
    glibc: str | None = None


_SKLEARN_SOURCE = "aws/sagemaker-scikit-learn-container"
_XGBOOST_SOURCE = "aws/sagemaker-xgboost-container"
IMAGE_LIBRARIES: dict[tuple[Framework, str], ImageLibraries] = {
    (Framework.SKLEARN, "0.23-1"): ImageLibraries(
        Framework.SKLEARN,
        "0.23-1",
        {"scikit-learn": "0.23.2", "numpy": "1.19.2"},
        f"{_SKLEARN_SOURCE} requirements.txt at v0.23-1",
    ),
    (Framework.SKLEARN, "1.0-1"): ImageLibraries(
        Framework.SKLEARN,
        "1.0-1",
        {"scikit-learn": "1.0.2", "numpy": "1.19.2"},
        f"{_SKLEARN_SOURCE} requirements.txt at v1.0-1",
    ),
    (Framework.SKLEARN, "1.2-1"): ImageLibraries(
        Framework.SKLEARN,
        "1.2-1",
        {"scikit-learn": "1.2.1", "numpy": "1.24.1"},
        f"{_SKLEARN_SOURCE} requirements.txt at v1.2-1 (numpy 1.24.1) and docker/1.2-1/base/Dockerfile.cpu "
        "(pip install scikit-learn==1.2.1; ARG PYTHON_VERSION=3.9, read at commits 89c8397 and 01d35bf: the "
        "image published as 1.2-1 was rebuilt on Python 3.9 by pull request #223, 'bump python version to "
        "3.9', merged 2024-10, whose users report 3.8 before it; the v1.2-1 tag's own copy was not read)",
        python="3.9",
        # ARG UBUNTU_VERSION=20.04 in the same Dockerfile; Ubuntu 20.04 (focal) ships libc6 2.31.
        glibc="2.31",
    ),
    (Framework.XGBOOST, "1.3-1"): ImageLibraries(
        Framework.XGBOOST,
        "1.3-1",
        {"xgboost": "1.3.3", "numpy": "1.19.2"},
        f"{_XGBOOST_SOURCE} docker/1.3-1/base/Dockerfile.cpu (XGBOOST_VERSION=1.3.3, PYTHON_VERSION=3.7.10), "
        "requirements.txt (numpy==1.19.2)",
        python="3.7",
    ),
    (Framework.XGBOOST, "1.5-1"): ImageLibraries(
        Framework.XGBOOST,
        "1.5-1",
        {"xgboost": "1.5.2", "numpy": "1.19.2"},
        f"{_XGBOOST_SOURCE} docker/1.5-1/base/Dockerfile.cpu (XGBOOST_VERSION=1.5.2, PYTHON_VERSION=3.8.13), "
        "requirements.txt (numpy==1.19.2)",
        python="3.8",
    ),
    (Framework.XGBOOST, "1.7-1"): ImageLibraries(
        Framework.XGBOOST,
        "1.7-1",
        {"xgboost": "1.7.4"},
        f"{_XGBOOST_SOURCE} docker/1.7-1/base/Dockerfile.cpu (XGBOOST_VERSION=1.7.4, PYTHON_VERSION=3.8.13)",
        python="3.8",
    ),
}
# ONNX models are hosted on the scikit-learn image (framework_images.json): the same libraries.
_HOSTED_ON = {Framework.ONNX: Framework.SKLEARN}


def image_libraries(framework: Framework | None, version: str | None) -> ImageLibraries | None:
    if framework is None or version is None:
        return None
    return IMAGE_LIBRARIES.get((_HOSTED_ON.get(framework, framework), version))


def _major(version: str) -> int | None:
    match = re.match(r"^(\d+)", version)
    return int(match[1]) if match else None


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


# The key of code/modeldrop-libraries.json naming the numpy module the pickle itself references.
PICKLED_NUMPY_KEY = "pickled-numpy-module"
NUMPY2_MODULE = "numpy._core"


def check_versions(
    saved: Mapping[str, str],
    framework: Framework | None,
    version: str | None,
    *,
    numpy_from: str | None = None,
    sklearn_from: str | None = None,
) -> list[str]:
    """Whether a model saved with `saved` versions loads on the image of framework and version: the
    warnings when it may not; UploadRejected (code libraries) when it cannot. numpy_from, sklearn_from:
    the artifact whose own opcodes gave the numpy module or the scikit-learn version, named in the reasons.

    Refused: the pickle references numpy._core and the image's numpy is 1.x (numpy 1.24 has no such
    module; numpy 1.26 added it as an alias, so the check is on the major version only where the
    image's numpy is older than 1.26). Warned: numpy 2 recorded without that evidence (joblib writes
    the arrays of a LogisticRegression without naming any numpy module, and it loads), and a
    scikit-learn version other than the image's.
    """
    image = image_libraries(framework, version)
    if image is None or framework is Framework.ONNX:  # an ONNX graph holds no pickled Python objects
        return []
    warnings: list[str] = []
    image_numpy = image.libraries.get("numpy", "")
    numpy_1 = (_major_minor(image_numpy) or (2, 0)) < (1, 26)
    family = f"{image.framework.value} {version}"
    if numpy_1 and saved.get(PICKLED_NUMPY_KEY) == NUMPY2_MODULE:
        raise UploadRejected(
            RejectionCode.LIBRARIES,
            f"{numpy_from or 'the pickle'} references {NUMPY2_MODULE} (it was written under numpy "
            f"{saved.get('numpy', '2')}); the {family} image has numpy {image_numpy}, which cannot "
            f"unpickle it (No module named '{NUMPY2_MODULE}'): the endpoint would fail its health check. "
            f"Pickle the model with numpy<2 (the image's versions: {_pins(image)}), or deploy it on an "
            "image that has numpy 2 (image in modeldrop.json)",
        )
    if numpy_1 and (_major(saved.get("numpy", "")) or 0) >= 2:
        warnings.append(
            f"saved with numpy {saved['numpy']}; the {family} image has numpy {image_numpy}: a pickle "
            f"that references {NUMPY2_MODULE} fails its health check there (No module named "
            f"'{NUMPY2_MODULE}'). Save the model with numpy<2"
        )
    saved_sklearn = _major_minor(saved.get("scikit-learn", ""))
    image_sklearn = _major_minor(image.libraries.get("scikit-learn", ""))
    if framework is Framework.SKLEARN and saved_sklearn and image_sklearn and saved_sklearn != image_sklearn:
        pinned = image.libraries["scikit-learn"]
        saved_by = f"{sklearn_from} was saved" if sklearn_from else "saved"
        warnings.append(
            f"{saved_by} with scikit-learn {saved['scikit-learn']}; the image has {pinned}: "
            "scikit-learn loads pickles only from the same version reliably. Save the model with "
            f"scikit-learn=={pinned} or choose a matching framework_version"
        )
    return warnings


def _pins(image: ImageLibraries) -> str:
    return ", ".join(f"{name}=={pinned}" for name, pinned in sorted(image.libraries.items()))


# ---------------------------------------------------------------- what a pickle says of itself
def pickle_evidence(facts: PickleFacts) -> dict[str, str]:
    """The versions a pickle's own opcodes tell (modeldrop.pickle_scan): its `_sklearn_version`, and
    numpy._core (numpy 2) or numpy.core (numpy 1) from the numpy modules it imports."""
    found: dict[str, str] = {}
    if facts.sklearn_versions:
        found["scikit-learn"] = facts.sklearn_versions[0]
    if facts.names_module(NUMPY2_MODULE):
        found[PICKLED_NUMPY_KEY] = NUMPY2_MODULE
    elif facts.names_module("numpy.core"):
        found[PICKLED_NUMPY_KEY] = "numpy.core"
    return found


def pickled_libraries(artifact: Path) -> dict[str, str]:
    """What an uncompressed pickle or joblib file on disk says of itself (nothing for a compressed one)."""
    if not artifact.name.lower().endswith(PICKLE_SUFFIXES):
        return {}
    with artifact.open("rb") as stream:
        return pickle_evidence(scan_pickle(stream))
