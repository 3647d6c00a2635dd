"""Training in the serving image's pinned environment, so the pickles and boosters load on that image.

example_models/runner.py runs under the interpreter of the pinned environment of the framework's
default image version (sagemaker/worker/image_envs.py; built on first use, cached per machine).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from modeldrop.frameworks import Framework, default_version

from modeldrop_local.example_models import runner
from modeldrop_local.example_models.iris import RANDOM_STATE, iris_data
from modeldrop_local.sagemaker.worker.image_envs import EnvironmentCache, environment_for


def image_python(framework: Framework) -> str:
    """The interpreter of the pinned environment of the framework's default image version."""
    return str(EnvironmentCache().python(environment_for(framework, default_version(framework))))


def run_in_image(framework: Framework, request: Mapping[str, Any]) -> Any:
    completed = subprocess.run(
        [image_python(framework), runner.__file__],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"example_models/runner.py failed in the {framework.value} image environment: "
            f"{completed.stderr[-2000:]}"
        )
    return json.loads(completed.stdout)


def pickle_large_knn(path: Path, n_samples: int) -> dict[str, str]:
    """A KNeighborsClassifier on n_samples synthetic rows, pickled to path in the scikit-learn image's
    environment (for the size benchmarks); returns the versions it was made with."""
    answer = run_in_image(
        Framework.SKLEARN,
        {
            "command": "train",
            "model": "knn",
            "n_samples": n_samples,
            "random_state": RANDOM_STATE,
            "out": str(path),
        },
    )
    return dict(answer["libraries"])


@cache
def trained_artifact(kind: str, n_estimators: int = 0) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """An example model trained in its image's pinned environment: the artifact and the versions used.

    Training is deterministic, so the result is kept beside the environment (per machine, keyed by the
    environment, runner.py's source and the request): later processes and test runs read it.
    """
    framework = Framework.XGBOOST if kind == "xgboost" else Framework.SKLEARN
    environment = environment_for(framework, default_version(framework))
    features, targets = iris_data()
    request = {
        "command": "train",
        "model": kind,
        "n_estimators": n_estimators,
        "features": features.tolist(),
        "targets": targets.tolist(),
        "random_state": RANDOM_STATE,
    }
    digest = hashlib.sha256(Path(runner.__file__).read_bytes())
    digest.update(json.dumps(request, sort_keys=True).encode())
    cache = EnvironmentCache()
    kept = (
        cache.path(environment).with_name(f"{cache.path(environment).name}-examples")
        / digest.hexdigest()[:24]
    )
    if (kept / "libraries.json").is_file():
        libraries = json.loads((kept / "libraries.json").read_text())
        return (kept / "artifact").read_bytes(), tuple(sorted(libraries.items()))
    staging = Path(tempfile.mkdtemp(prefix=".train-", dir=_mkdir(kept.parent)))
    try:
        answer = run_in_image(framework, {**request, "out": str(staging / "artifact")})
        (staging / "libraries.json").write_text(json.dumps(answer["libraries"]))
        with contextlib.suppress(OSError):  # another process kept the same result first
            staging.rename(kept)
        artifact = (kept / "artifact").read_bytes()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return artifact, tuple(sorted(answer["libraries"].items()))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_trained(path: Path, kind: str, n_estimators: int = 0) -> dict[str, str]:
    """Writes the trained artifact to path; returns the versions it was made with."""
    artifact, libraries = trained_artifact(kind, n_estimators)
    path.write_bytes(artifact)
    return dict(libraries)
