"""Pinned environments: a model loads with the library versions of the prebuilt image it runs on.

The scikit-learn 1.2-1 image has scikit-learn 1.2.1 and numpy 1.24.1 (modeldrop.image_libraries has
each image's versions and sources), so a model pickled under numpy 2 fails its health check there.
The local SageMaker serves such an image from a virtualenv holding exactly those versions: one per
image family and version, described by a lock file in ../images/, built on first use with
`python -m venv` and `pip install --no-deps --only-binary :all: -r <lock>` (a lock may name, in a
`--no-binary NAME` line, the few packages that ship only as an sdist and are built from source: the
scikit-learn image's sagemaker-containers 2.8.6.post2), and cached per machine
(MODELDROP_IMAGE_ENVS, default ~/.cache/modeldrop/images/<name>-<digest of lock and Python>), so
test runs and restarts of the local cloud reuse it. The fork server of that image runs under the
environment's interpreter, with the worker code on its PYTHONPATH (the worker needs only numpy and the
standard library besides what it serves; see fork_servers.py).

What is not pinned, and why:
- The Python version: the images run Python 3.7-3.9, this machine has 3.11 (the lock files say so).
- Image versions whose libraries have no wheel for this Python (numpy 1.19.2 in scikit-learn 0.23-1
  and 1.0-1, XGBoost 1.3-1 and 1.5-1): a model on them goes Failed with a reason naming the gap,
  rather than loading with other versions and passing where AWS may not.
- ONNX models on the scikit-learn image, PyTorch and custom images: the project's own environment.
  An ONNX graph holds no pickled Python objects, and the image installs onnxruntime from
  code/requirements.txt at start; PyTorch is not emulated beyond TorchScript; a custom image has
  whatever its owner built, so the generic contract runs with modeldrop's libraries, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modeldrop.frameworks import Framework, framework_from_image, version_from_image
from modeldrop.image_libraries import image_libraries

from modeldrop_local.sagemaker.worker.requirements import pip_error_tail
from modeldrop_local.sagemaker.worker.types import WorkerStartError

LOCKS_DIR = Path(__file__).resolve().parents[1] / "images"
CACHE_ENV = "MODELDROP_IMAGE_ENVS"
BUILD_TIMEOUT_S = 900.0
_COMPLETE = ".modeldrop-complete"


@dataclass(frozen=True)
class ImageEnvironment:
    """One pinned environment: a name (family-version) and the lock file that lists it whole."""

    name: str
    lock: Path

    def pins(self) -> dict[str, str]:
        pins: dict[str, str] = {}
        for raw in self.lock.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):  # a pip option line (--no-binary NAME) pins nothing
                name, _, version = line.partition("==")
                pins[name.strip().lower()] = version.strip()
        return pins

    def digest(self) -> str:
        """Changes with the lock file and the interpreter, so an edit builds a fresh environment."""
        content = hashlib.sha256(self.lock.read_bytes())
        content.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
        return content.hexdigest()[:12]


# The image versions served with their own libraries; the others of modeldrop.image_libraries fail.
LOCAL_ENVIRONMENTS: dict[tuple[Framework, str], ImageEnvironment] = {
    (Framework.SKLEARN, "1.2-1"): ImageEnvironment("sklearn-1.2-1", LOCKS_DIR / "sklearn-1.2-1.lock"),
    (Framework.XGBOOST, "1.7-1"): ImageEnvironment("xgboost-1.7-1", LOCKS_DIR / "xgboost-1.7-1.lock"),
}
_FAMILY = {Framework.SKLEARN: "scikit-learn", Framework.XGBOOST: "XGBoost"}


def environment_for(framework: Framework, version: str) -> ImageEnvironment:
    """The pinned environment of a prebuilt image version; WorkerStartError naming the gap if none."""
    environment = LOCAL_ENVIRONMENTS.get((framework, version))
    if environment is not None:
        return environment
    family = _FAMILY.get(framework, framework.value)
    served = ", ".join(v for (f, v) in LOCAL_ENVIRONMENTS if f is framework) or "none"
    image = image_libraries(framework, version)
    runs = ""
    if image is not None:
        pins = " and ".join(f"{name} {pinned}" for name, pinned in sorted(image.libraries.items()))
        on_python = f" on Python {image.python}" if image.python else ""
        runs = f" runs {pins}{on_python} ({image.source}), which have no wheels for this machine's Python"
        runs += f" {sys.version_info.major}.{sys.version_info.minor}; it"
    raise WorkerStartError(
        f"the {family} {version} image{runs} is not emulated with its own library versions by the local "
        f"SageMaker, which serves the {family} image only as version {served}: a model that loads here "
        f"with other versions could still fail on AWS. Set framework_version to {served} in "
        "modeldrop.json, or test this version on AWS"
    )


def environment_for_image(image: str, *, pickled_model: bool = True) -> ImageEnvironment | None:
    """The pinned environment a model on `image` is served from; None: the project's own environment.

    pickled_model=False (an ONNX model on the scikit-learn image) keeps the project's environment.
    """
    framework = framework_from_image(image)
    if framework not in _FAMILY or not pickled_model:
        return None
    version = version_from_image(image)
    if version is None:
        family = _FAMILY[framework]
        raise WorkerStartError(f"the image {image} is not a {family} image version modeldrop knows")
    assert framework is not None
    return environment_for(framework, version)


def default_cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "modeldrop" / "images"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An flock held across processes (test workers, local clouds) and threads alike."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EnvironmentCache:
    """Builds each pinned environment once per machine; concurrent first uses wait for one build."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_cache_root()
        self.builds = 0  # environments this instance built (a cached one is not rebuilt)

    def path(self, environment: ImageEnvironment) -> Path:
        return self.root / f"{environment.name}-{environment.digest()}"

    def python(self, environment: ImageEnvironment) -> Path:
        """The environment's interpreter, building the environment first if it is not there yet."""
        target = self.path(environment)
        if not (target / _COMPLETE).is_file():
            with _exclusive(self.root / f".{target.name}.lock"):
                if not (target / _COMPLETE).is_file():  # another process built it while we waited
                    self._build(environment, target)
        return target / "bin" / "python"

    def site_packages(self, environment: ImageEnvironment) -> Path:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        return self.path(environment) / "lib" / version / "site-packages"

    def _build(self, environment: ImageEnvironment, target: Path) -> None:
        if target.exists():  # an incomplete build (a killed process): start again
            shutil.rmtree(target)
        try:
            self._run([sys.executable, "-m", "venv", str(target)], environment)
            self._run(
                [
                    str(target / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                    "--requirement",
                    str(environment.lock),
                ],
                environment,
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        (target / _COMPLETE).write_text(environment.lock.read_text())
        self.builds += 1

    def _run(self, command: list[str], environment: ImageEnvironment) -> None:
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                env={**os.environ, "PIP_NO_INPUT": "1"},
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise WorkerStartError(
                f"building the pinned environment {environment.name} did not finish within "
                f"{BUILD_TIMEOUT_S:.0f} s ({' '.join(command[:4])} ...)"
            ) from error
        if completed.returncode != 0:
            raise WorkerStartError(
                f"the pinned environment {environment.name} ({environment.lock.name}) could not be built "
                f"(exit {completed.returncode}): {pip_error_tail(completed)}"
            )


def main() -> None:
    """`python -m modeldrop_local.sagemaker.worker.image_envs`: build every pinned environment now."""
    cache = EnvironmentCache()
    for environment in LOCAL_ENVIRONMENTS.values():
        print(f"{environment.name}: {cache.python(environment)}")


if __name__ == "__main__":
    main()
