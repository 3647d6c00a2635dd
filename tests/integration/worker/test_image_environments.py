"""A model loads with the library versions of the image it runs on (worker/image_envs.py).

The scikit-learn 1.2-1 image has scikit-learn 1.2.1 and numpy 1.24.1 (aws/sagemaker-scikit-learn-container
requirements.txt at v1.2-1): a pickle that references numpy._core (written by
numpy 2) fails its health check there with `No module named 'numpy._core'`.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path

import joblib
import pytest
from modeldrop.frameworks import Framework, image_for
from modeldrop_local import example_models
from modeldrop_local.example_models.iris import iris_data
from modeldrop_local.sagemaker.worker import Worker, WorkerLauncher, WorkerStartError
from modeldrop_local.sagemaker.worker.image_envs import EnvironmentCache, ImageEnvironment
from sklearn.ensemble import RandomForestClassifier

from tests.integration.worker.conftest import (
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    SpecFactory,
    extract,
    write_tarball,
)
from tests.integration.worker.test_container_profiles import MODEL_FN_ONLY, SDK_ENV

ROWS = example_models.iris_payload(6)
# Reports the versions the worker imported, so the test sees the environment the model really ran in.
VERSIONS_INFERENCE = """\
import json
import sys

import numpy
import sklearn


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    versions = {"numpy": numpy.__version__, "scikit-learn": sklearn.__version__}
    versions["python"] = "%d.%d" % sys.version_info[:2]
    return json.dumps(versions), "application/json"
"""


def numpy2_forest_tarball(dest: Path) -> Path:
    """A RandomForest pickled here (numpy 2, scikit-learn 1.9): its tree state references numpy._core."""
    buffer = io.BytesIO()
    features, targets = iris_data()
    joblib.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(features, targets), buffer)
    assert b"numpy._core" in buffer.getvalue()
    tarball = write_tarball(dest, {"model.joblib": buffer.getvalue(), "code/inference.py": MODEL_FN_ONLY})
    return extract(tarball, dest / "model")


def test_a_numpy2_pickle_fails_on_the_1_2_1_image_with_the_real_unpickling_error(
    launcher: WorkerLauncher, make_spec: SpecFactory, tmp_path: Path
) -> None:
    # Given a scikit-learn forest pickled under numpy 2, with the SDK's model_fn
    model_dir = numpy2_forest_tarball(tmp_path)

    # When it is prepared on the scikit-learn 1.2-1 image
    with pytest.raises(WorkerStartError) as raised:
        launcher.prepare(make_spec(model_dir, image=SKLEARN_IMAGE, environment=SDK_ENV))

    # Then loading fails as in the image: numpy 1.24.1 has no numpy._core
    assert "ModuleNotFoundError: No module named 'numpy._core'" in raised.value.reason


def test_the_example_built_in_the_image_environment_serves_and_predicts_as_in_process(
    start: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given the example forest, trained and pickled in the 1.2-1 image's environment
    tarball = example_models.build_sklearn_forest(tmp_path / "forest", n_estimators=10)
    model_dir = extract(tarball, tmp_path / "model")
    recorded = json.loads((model_dir / "code" / "modeldrop-libraries.json").read_text())
    assert (recorded["scikit-learn"], recorded["numpy"]) == ("1.2.1", "1.24.1")

    # When it is served on the scikit-learn image
    worker = start(model_dir, image=SKLEARN_IMAGE, environment=SDK_ENV)
    answer = worker.invoke(json.dumps(ROWS).encode(), "application/json", "application/json", "r1")

    # Then it loads, and predicts what the model predicts where it was built
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == example_models.predict_in_process(tarball, ROWS)


def test_the_worker_runs_with_the_image_versions(start: Callable[..., Worker], tmp_path: Path) -> None:
    # Given handler code that reports the library versions it imported
    tarball = write_tarball(tmp_path, {"code/inference.py": VERSIONS_INFERENCE})
    worker = start(extract(tarball, tmp_path / "model"), image=SKLEARN_IMAGE, environment=SDK_ENV)

    # When invoked
    answer = worker.invoke(b"[]", "application/json", "application/json", "r1")

    # Then the scikit-learn 1.2-1 image's versions served it (on this machine's Python)
    assert answer.status == 200, answer.body
    versions = json.loads(answer.body)
    assert (versions["numpy"], versions["scikit-learn"]) == ("1.24.1", "1.2.1")


def test_the_xgboost_booster_built_for_1_7_loads_on_the_1_7_image(
    start: Callable[..., Worker], tmp_path: Path
) -> None:
    # Given the example booster, trained with the 1.7-1 image's xgboost 1.7.4
    tarball = example_models.build_xgboost_iris(tmp_path / "xgb")
    worker = start(extract(tarball, tmp_path / "model"), image=XGBOOST_IMAGE)
    csv_rows = "\n".join(",".join(str(cell) for cell in row) for row in ROWS).encode()

    # When invoked with CSV (the algorithm mode's input)
    answer = worker.invoke(csv_rows, "text/csv", "application/json", "r1")

    # Then it predicts what the booster predicts here
    assert answer.status == 200, answer.body
    scores = [row["score"] for row in json.loads(answer.body)["predictions"]]
    assert scores == example_models.predict_in_process(tarball, ROWS)


@pytest.mark.parametrize(
    ("framework", "version", "gap"),
    [
        (Framework.SKLEARN, "1.0-1", "runs numpy 1.19.2 and scikit-learn 1.0.2"),
        (Framework.SKLEARN, "0.23-1", "runs numpy 1.19.2 and scikit-learn 0.23.2"),
        (Framework.XGBOOST, "1.5-1", "runs numpy 1.19.2 and xgboost 1.5.2 on Python 3.8"),
    ],
)
def test_an_image_version_without_a_pinned_environment_fails_naming_the_gap(
    launcher: WorkerLauncher,
    make_spec: SpecFactory,
    model_dirs: dict[str, Path],
    framework: Framework,
    version: str,
    gap: str,
) -> None:
    # Given a model on an image version whose libraries have no wheels for this Python
    image = image_for(framework, version, "us-east-1")
    model_dir = model_dirs["custom" if framework is Framework.SKLEARN else "xgboost"]

    # When it is prepared
    with pytest.raises(WorkerStartError) as raised:
        launcher.prepare(
            make_spec(model_dir, image=image, environment=SDK_ENV if framework is Framework.SKLEARN else {})
        )

    # Then it fails, naming the image's versions and the versions the local SageMaker serves
    reason = raised.value.reason
    assert gap in reason
    assert "which have no wheels for this machine's Python 3.11" in reason
    family, served = ("scikit-learn", "1.2-1") if framework is Framework.SKLEARN else ("XGBoost", "1.7-1")
    assert f"serves the {family} image only as version {served}" in reason


# ------------------------------------------------------------------------------ the cache


def small_environment(tmp_path: Path, pins: str = "threadpoolctl==3.1.0\n") -> ImageEnvironment:
    lock = tmp_path / "small.lock"
    lock.write_text(f"# a one-wheel environment for the cache tests\n{pins}")
    return ImageEnvironment("small-1", lock)


def test_an_environment_is_built_once_reused_across_caches_and_rebuilt_for_a_new_lock(tmp_path: Path) -> None:
    # Given a fresh cache directory and a lock file
    environment = small_environment(tmp_path)
    root = tmp_path / "envs"

    # When two threads ask for it at once, then a second cache (another process, a restart) asks again
    first = EnvironmentCache(root)
    pythons: list[Path] = []
    threads = [threading.Thread(target=lambda: pythons.append(first.python(environment))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    second = EnvironmentCache(root)
    again = second.python(environment)

    # Then it was built once, holds exactly the pinned version, and the second use did not rebuild
    assert first.builds == 1
    assert second.builds == 0
    assert pythons == [again, again]
    site = second.site_packages(environment)
    assert [path.name for path in site.glob("threadpoolctl-*.dist-info")] == ["threadpoolctl-3.1.0.dist-info"]

    # And an edited lock file gets an environment of its own
    changed = small_environment(tmp_path, "threadpoolctl==3.2.0\n")
    assert second.python(changed) != again
    assert second.builds == 1
    assert len([path for path in root.iterdir() if path.name.startswith("small-1-")]) == 2


def test_a_lock_that_cannot_install_fails_saying_why_and_leaves_nothing(tmp_path: Path) -> None:
    # Given a lock naming a version that does not exist
    environment = small_environment(tmp_path, "threadpoolctl==0.0.0.404\n")
    cache = EnvironmentCache(tmp_path / "envs")

    # When it is built, Then the error names the environment and pip's reason, and no half-built env stays
    with pytest.raises(WorkerStartError, match=r"small-1 \(small.lock\) could not be built.*threadpoolctl"):
        cache.python(environment)
    assert not cache.path(environment).exists()
