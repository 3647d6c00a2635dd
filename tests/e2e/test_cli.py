"""`modeldrop local up` as users run it (a process), driven by `modeldrop deploy/status/invoke/logs`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from modeldrop_local.cli import app
from modeldrop_local.example_models import build_sklearn_iris, iris_sample, predict_in_process
from modeldrop_local.sagemaker.worker.image_envs import CACHE_ENV, default_cache_root
from typer.testing import CliRunner, Result

from tests.utils import REPO_ROOT, build_wheel, free_port, isolate_pip

pytestmark = pytest.mark.e2e


class LocalUp:
    """`modeldrop local up` in a child process; its console (stdout and stderr) is collected line by line."""

    def __init__(self, state_dir: Path, home: Path | None = None) -> None:
        """home: run as a new user would, with no AWS variable at all and this (empty) home dir."""
        self.edge_port, self.api_port = free_port(), free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(str(REPO_ROOT / part) for part in ("local", "layers/modeldrop"))
        env.pop("AWS_ENDPOINT_URL", None)
        if home is not None:
            env = {key: value for key, value in env.items() if not key.startswith("AWS_")}
            env["HOME"] = str(home)
            # The pinned image environments are a per-machine cache, built once (make image-envs); a new
            # home would build them again inside the deployment's timeout. Credentials are the point here.
            env[CACHE_ENV] = str(default_cache_root())
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "modeldrop_local.cli", "local", "up"),
                *("--edge-port", str(self.edge_port), "--api-port", str(self.api_port)),
                *("--state-dir", str(state_dir), "-p", "PollIntervalSeconds=1"),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("ready;"):
                self._ready.set()

    def wait_ready(self, timeout_s: float = 60) -> None:
        assert self._ready.wait(timeout_s), f"local up never got ready: {self.lines}"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(app, [*args, "--endpoint-url", self.edge_url])

    def terminate(self) -> tuple[int, list[int]]:
        """SIGTERM; returns the exit code and the pids of its children still alive afterwards."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        return code, [child.pid for child in children if child.is_running() and child.status() != "zombie"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def local_up(state_dir: Path) -> Iterator[LocalUp]:
    cloud = LocalUp(state_dir)
    yield cloud
    if cloud.process.poll() is None:
        cloud.process.kill()
        cloud.process.wait(timeout=10)


def test_local_up_deploy_invoke_stop_and_restart_with_state(
    local_up: LocalUp, state_dir: Path, tmp_path: Path
) -> None:
    # Given `modeldrop local up` running with a state dir
    local_up.wait_ready()
    output = "\n".join(local_up.lines)
    assert local_up.edge_url in output and "ApiKeyId = " in output and "api key value = " in output
    # When a packaged model is deployed with the CLI
    package = CliRunner().invoke(
        app, ["package", str(_joblib_model(tmp_path)), "-o", str(tmp_path / "model.tar.gz")]
    )
    assert package.exit_code == 0, package.stdout
    deployed = local_up.cli("deploy", str(tmp_path / "model.tar.gz"), "--name", "iris")
    # Then it follows the deployment to InService, and status, invoke and logs show it
    assert deployed.exit_code == 0, deployed.stdout
    assert "InService" in deployed.stdout
    status = local_up.cli("status")
    assert status.exit_code == 0 and status.stdout.startswith("iris\tInService\tlive v1")
    invoked = local_up.cli("invoke", "iris", "--data", json.dumps(iris_sample()))
    expected = predict_in_process(tmp_path / "model.tar.gz", iris_sample())
    assert invoked.exit_code == 0 and json.loads(invoked.stdout) == expected
    logs = local_up.cli("logs", "iris")
    assert logs.exit_code == 0 and "v1 InService" in logs.stdout
    # And the console showed the deployment's progress, without an access-log line per internal call
    console = "\n".join(local_up.lines)
    assert "OnUploadFunction INFO deployment recorded model=iris" in console
    assert '"_aws"' not in console  # CloudWatch metrics are not progress
    assert "HTTP/1.1" not in console, [line for line in local_up.lines if "HTTP/1.1" in line][:3]
    # When it is stopped with SIGTERM
    code, leftovers = local_up.terminate()
    # Then it exits cleanly, leaving no process behind
    assert code == 0
    assert leftovers == []
    # When it starts again on the same state dir
    restarted = LocalUp(state_dir)
    try:
        restarted.wait_ready()
        # Then the deployed model is still there and answers, without a new upload
        assert any("restored" in line for line in restarted.lines)
        again = restarted.cli("invoke", "iris", "--data", json.dumps(iris_sample()))
        assert again.exit_code == 0, again.stdout
        assert json.loads(again.stdout) == expected
    finally:
        code, leftovers = restarted.terminate()
    assert code == 0 and leftovers == []


def test_local_up_needs_no_aws_credentials(tmp_path: Path) -> None:
    # Given `modeldrop local up` started as a new user: no AWS variable, an empty home (no ~/.aws)
    home = tmp_path / "home"
    home.mkdir()
    cloud = LocalUp(tmp_path / "state", home=home)
    try:
        cloud.wait_ready()
        # When the iris model is deployed to it
        tarball = build_sklearn_iris(tmp_path / "iris")
        deployed = cloud.cli("deploy", str(tarball), "--name", "iris", "--timeout", "120")
        # Then the local SageMaker downloads it from the local S3 and it goes InService
        assert deployed.exit_code == 0, deployed.stdout
        assert "iris v1 is InService" in deployed.stdout
    finally:
        code, leftovers = cloud.terminate()
    assert code == 0 and leftovers == []


def _joblib_model(tmp_path: Path) -> Path:
    """The iris model file alone (what a user has before packaging)."""
    import tarfile

    tarball = build_sklearn_iris(tmp_path / "built")
    with tarfile.open(tarball) as archive:
        archive.extract("model.joblib", tmp_path / "raw", filter="data")
    return tmp_path / "raw" / "model.joblib"


def test_package_refuses_a_numpy2_pickle_for_the_sklearn_image(tmp_path: Path) -> None:
    # Given a forest pickled here, under numpy 2 (its tree state references numpy._core)
    import joblib
    from modeldrop_local.example_models.iris import iris_data
    from sklearn.ensemble import RandomForestClassifier

    model = tmp_path / "model.joblib"
    joblib.dump(RandomForestClassifier(n_estimators=2, random_state=0).fit(*iris_data()), model)

    # When packaged for the default scikit-learn image (1.2-1, numpy 1.24.1)
    result = CliRunner().invoke(app, ["package", str(model), "-o", str(tmp_path / "model.tar.gz")])

    # Then nothing is written, and the reason names the gap
    assert result.exit_code != 0
    assert "No module named 'numpy._core'" in result.output
    assert "numpy 1.24.1" in result.output
    assert not (tmp_path / "model.tar.gz").exists()


def test_package_records_the_versions_a_pickle_names(tmp_path: Path) -> None:
    # Given the example model file, pickled with the 1.2-1 image's scikit-learn 1.2.1
    model = _joblib_model(tmp_path)

    # When packaged here (scikit-learn 1.9, numpy 2)
    result = CliRunner().invoke(app, ["package", str(model), "-o", str(tmp_path / "model.tar.gz")])

    # Then it is written without a warning, recording what the pickle says, not this environment
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        member = archive.extractfile("code/modeldrop-libraries.json")
        assert member is not None
        assert json.loads(member.read())["scikit-learn"] == "1.2.1"


def test_package_refuses_a_missing_inference_file(tmp_path: Path) -> None:
    # Given a model file and an inference.py that does not exist
    model = _joblib_model(tmp_path)
    # When packaging
    result = CliRunner().invoke(
        app,
        ["package", str(model), "--inference", str(tmp_path / "nope.py"), "-o", str(tmp_path / "m.tar.gz")],
    )
    # Then the command fails naming the problem, and writes nothing
    assert result.exit_code == 1
    assert f"inference file not found: {tmp_path / 'nope.py'}" in result.output
    assert not (tmp_path / "m.tar.gz").exists()


def test_local_up_refuses_an_unknown_parameter_by_name(tmp_path: Path) -> None:
    # When `local up` is given a parameter the template does not declare
    result = CliRunner().invoke(
        app,
        ["local", "up", "--edge-port", str(free_port()), "--api-port", str(free_port()), "-p", "Bogus=1"],
    )
    # Then it stops with a message naming it (and nothing keeps running)
    assert result.exit_code == 1
    assert "unknown template parameters: Bogus" in result.output


def test_package_refuses_requirements_with_no_wheel_for_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a local index with a wheel for the image's Python 3.9 and one only for Python 3.11
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "fitsimage", "1.0", "cp39-cp39-manylinux2014_x86_64")
    build_wheel(wheels, "onlycp311", "1.0", "cp311-cp311-manylinux2014_x86_64")
    isolate_pip(monkeypatch, no_index="1", find_links=str(wheels))
    model = _joblib_model(tmp_path)
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("fitsimage==1.0\n")
    bad.write_text("fitsimage==1.0\nonlycp311==1.0\n")

    def package(requirements: Path, output: Path) -> Result:
        arguments = ["package", str(model), "--requirements", str(requirements), "-o", str(output)]
        return CliRunner().invoke(app, arguments)

    # When packaged with each / Then the one pip finds wheels for is written, the other refused, unwritten
    assert package(good, tmp_path / "good.tar.gz").exit_code == 0
    refused = package(bad, tmp_path / "bad.tar.gz")
    assert refused.exit_code == 1
    assert "code/requirements.txt: onlycp311==1.0 has no wheel for Python 3.9" in refused.output
    assert not (tmp_path / "bad.tar.gz").exists()
