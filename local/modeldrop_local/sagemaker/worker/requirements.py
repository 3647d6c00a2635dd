"""code/requirements.txt, installed once per content hash into a cache (`pip install --target`).

pip runs with the server's interpreter, with `--find-links code/` so wheels shipped in the tarball
are found. A requirement the server's own environment already satisfies (`onnxruntime>=1.16` when
onnxruntime is installed) is not installed again: in the container pip would answer "Requirement
already satisfied" for the image's packages, and the fork servers have those preloaded anyway.
Offline mode (`--no-index`) is opt-in: WorkerLauncher(pip_no_index=True), or
MODELDROP_PIP_NO_INDEX=1. By default pip may reach its index, as the real container does; the
tests run offline so that they are hermetic and a missing package fails in a second.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from modeldrop_local.sagemaker.worker.types import WorkerStartError

NO_INDEX_ENV = "MODELDROP_PIP_NO_INDEX"
PIP_TIMEOUT_S = 600.0
PIP_ERROR_TAIL_LINES = 15
_COMPLETE = ".modeldrop-complete"


def pip_error_tail(completed: subprocess.CompletedProcess[str]) -> str:
    """The end of what a failed pip said (its error is last): stderr, or stdout when that is empty."""
    output = (completed.stderr.strip() or completed.stdout.strip()).splitlines()
    return "\n".join(output[-PIP_ERROR_TAIL_LINES:])


def pip_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    """pip's own verdict in one line: its last ERROR line (e.g. "No matching distribution found for
    x==1"), else the last line it printed."""
    output = (completed.stderr.strip() or completed.stdout.strip()).splitlines() or ["(no output)"]
    errors = [line for line in output if line.startswith("ERROR:")]
    return (errors or output)[-1].strip()


def effective_lines(requirements: Path) -> list[str]:
    lines = []
    for raw in requirements.read_text(errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _installed_version(name: str, site_packages: Path | None) -> str:
    """The version installed here, or in site_packages (a pinned image environment's)."""
    if site_packages is None:
        return metadata.version(name)
    for distribution in metadata.distributions(name=name, path=[str(site_packages)]):
        return distribution.version
    raise metadata.PackageNotFoundError(name)


def _already_satisfied(line: str, site_packages: Path | None = None) -> bool:
    """A plain `name[extras] specifier; marker` line that the serving environment's packages satisfy."""
    if line.startswith("-") or "/" in line or line.startswith("."):
        return False
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return False
    if requirement.url:
        return False
    if requirement.marker is not None and not requirement.marker.evaluate():
        return True
    try:
        installed = _installed_version(requirement.name, site_packages)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(installed, prereleases=True)


def still_needed(lines: list[str], site_packages: Path | None = None) -> list[str]:
    return [line for line in lines if not _already_satisfied(line, site_packages)]


def _references_local_files(lines: list[str]) -> bool:
    return any(line.startswith((".", "/", "file:", "-e .", "-e /")) or ".whl" in line for line in lines)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_key(code_dir: Path, lines: list[str]) -> str:
    """requirements.txt content (plus code/ when it names local files) and the interpreter version."""
    digest = hashlib.sha256((code_dir / "requirements.txt").read_bytes())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    if _references_local_files(lines):
        digest.update(_tree_digest(code_dir).encode())
    return digest.hexdigest()[:32]


class RequirementsCache:
    """Installs each distinct requirements.txt once; concurrent callers of one key wait for it."""

    def __init__(
        self,
        root: Path,
        *,
        no_index: bool | None = None,
        python: str = sys.executable,
        site_packages: Path | None = None,
    ) -> None:
        """python and site_packages: a pinned image environment's (image_envs.py); default this one."""
        self.root = root
        self.site_packages = site_packages
        self.no_index = os.environ.get(NO_INDEX_ENV, "") in ("1", "true") if no_index is None else no_index
        self.python = python
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def install(self, code_dir: Path) -> Path | None:
        """The directory to put on sys.path, or None when there is nothing to install."""
        requirements = code_dir / "requirements.txt"
        if not requirements.is_file():
            return None
        lines = still_needed(effective_lines(requirements), self.site_packages)
        if not lines:
            return None
        key = cache_key(code_dir, lines)
        target = self.root / key
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if (target / _COMPLETE).is_file():
                return target
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
            try:
                self._run_pip(code_dir, staging, lines)
                (staging / _COMPLETE).write_text("\n".join(lines) + "\n")
                if target.exists():  # a stale, incomplete install from a killed server
                    shutil.rmtree(target)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def _run_pip(self, code_dir: Path, staging: Path, lines: list[str]) -> None:
        needed = staging.parent / f"{staging.name}.requirements.txt"
        needed.write_text("\n".join(lines) + "\n")
        try:
            self._pip(code_dir, staging, needed)
        finally:
            needed.unlink(missing_ok=True)

    def _pip(self, code_dir: Path, staging: Path, requirements: Path) -> None:
        command = [
            self.python,
            "-m",
            "pip",
            "install",
            "--target",
            str(staging),
            "--requirement",
            str(requirements),
            "--find-links",
            str(code_dir),
            "--disable-pip-version-check",
            "--no-input",
            "--no-warn-script-location",
            "--progress-bar",
            "off",
        ]
        command += ["--no-index"] if self.no_index else ["--timeout", "15", "--retries", "1"]
        try:
            completed = subprocess.run(
                command,
                cwd=code_dir,  # relative paths in requirements.txt (./mypkg, ./x.whl) are relative to code/
                capture_output=True,
                text=True,
                timeout=PIP_TIMEOUT_S,
                env={**os.environ, "PIP_NO_INPUT": "1"},
            )
        except subprocess.TimeoutExpired as error:
            raise WorkerStartError(
                f"pip install -r code/requirements.txt did not finish within {PIP_TIMEOUT_S:.0f} s"
            ) from error
        if completed.returncode != 0:
            raise WorkerStartError(
                f"pip install -r code/requirements.txt failed (exit {completed.returncode}): "
                f"{pip_error_line(completed)}",
                log_detail=f"pip's output:\n{pip_error_tail(completed)}",
            )
