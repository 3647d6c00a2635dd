"""Helpers shared by every test layer: sample events, loopback ports and a local cloud on them."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest
    from modeldrop_local.cloud import LocalCloud

REPO_ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = REPO_ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    """Load a sample event from events/ (the same files `sam local invoke -e` uses)."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


def free_port() -> int:
    """A free TCP port on loopback, picked by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cloud_on_free_ports(
    tmp_path_factory: pytest.TempPathFactory,
    template_path: Path = REPO_ROOT / "template.yaml",
    **options: Any,
) -> LocalCloud:
    """A local cloud (not started) running template_path on two free loopback ports, its functions
    logging to a fresh temporary folder; options are LocalCloud's other fields."""
    # Imported here: the unit tests import this module too, and need none of the local cloud's imports.
    from modeldrop_local.cloud import LocalCloud

    return LocalCloud(
        template_path=template_path,
        edge_port=free_port(),
        api_port=free_port(),
        function_log_dir=tmp_path_factory.mktemp("function-logs"),
        **options,
    )


class ManualClock:
    """A monotonic clock that moves only when the test says so (for timeouts a test drives)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def exchange_until_closed(port: int, request: bytes) -> bytes:
    """Send raw bytes to a loopback port and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def build_wheel(folder: Path, name: str, version: str, tag: str) -> Path:
    """A minimal valid wheel (dist-info only) named for `tag`, for a local --find-links index."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel_file = f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: {tag}\n"
        wheel.writestr(f"{dist_info}/WHEEL", wheel_file)
        wheel.writestr(f"{dist_info}/RECORD", "")
    return path


def isolate_pip(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """Take the machine's pip configuration (files and PIP_* variables) out of this test's environment and
    set `settings` as PIP_* variables (no_index="1", find_links=...): pip reaches only what the test gives."""
    import os

    for key in [key for key in os.environ if key.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for key, value in settings.items():
        monkeypatch.setenv(f"PIP_{key.upper()}", value)
